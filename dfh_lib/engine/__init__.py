"""Layer 3, making networks learn and run: the checkpoint format
(:mod:`.checkpoint`), encoding (:mod:`.encoding`), the one hash training loop
(:mod:`.train`), the teacher (:mod:`.teacher`), the GAN and attribute-classifier
loop (:mod:`.gan_training`) and face editing / GAN augmentation
(:mod:`.editing`). Imports ``core`` and ``nn``."""
