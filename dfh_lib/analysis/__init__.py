"""Layer 4, measuring trained parts: code statistics, toy convergence and
robustness (:mod:`.codes`), per-head mAP and similarity matrices
(:mod:`.heads`), edit success and identity preservation
(:mod:`.gan_quality`). Imports ``core``, ``nn`` and ``engine``."""
