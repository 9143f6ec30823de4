"""Layer 1, what everything else stands on: profiles and runtime, retrieval
metrics and Hamming indexes, classic (non-deep) hashing, argument checks and
the face datasets (:mod:`.data`). Imports nothing else of ``dfh_lib``."""
