"""Layer 3, making networks learn and run: the checkpoint format
(:mod:`.checkpoint`), encoding (:mod:`.encoding`), the one hash training loop
(:mod:`.train`) and its torchrun data-parallel plumbing (:mod:`.distributed`), the
shared face embedding every hash head starts from (:mod:`.backbone`), the teacher (:mod:`.teacher`), the GAN and attribute-classifier
loop (:mod:`.gan_training`), face editing / GAN augmentation (:mod:`.editing`),
and trained runs put to use: load one (:mod:`.run_model`), index and search a
folder of photos (:mod:`.photo_index`). Imports ``core`` and ``nn``."""
