"""Layer 1, what everything else stands on: profiles and runtime, retrieval
metrics and Hamming indexes, code files (:mod:`.code_file`), classic
(non-deep) hashing, argument checks and the face datasets (:mod:`.data`:
loaders, download and verification, face detection). Imports nothing else of
``dfh_lib``."""
