"""Layer 2, networks and their objectives: hash networks (:mod:`.models`,
:mod:`.multihead`), the StarGAN networks (:mod:`.gan`), quantizers
(:mod:`.quantizers`) and losses (:mod:`.losses`). Imports only ``core``."""
