"""Every loss of the book, one small module per family, and the one registry.

* :mod:`.base` — the :class:`HashLoss` contract with the training loop;
* :mod:`.baselines` — DPSH, DSH, HashNet, GreedyHash, CSQ, DDH, DCDH, softmax;
* :mod:`.dfh` — the DFH terms, :class:`DFHLoss` and :class:`DFHQLoss` (Chapters 3-4);
* :mod:`.distillation` — multi-head and knowledge-distillation losses (Chapter 6);
* :mod:`.gan` — StarGAN's adversarial losses (Chapter 5; not hash losses);
* :mod:`.registry` — ``LOSSES``, ``METHOD_DEFAULTS``, :func:`build_loss`.

Quantization penalties live in :mod:`dfh_lib.nn.quantizers`.
"""
from .base import HashLoss
from .baselines import (CSQLoss, DCDHLoss, DDHLoss, DPSHLoss, DSHLoss, GreedyHashLoss,
                        HashNetLoss, SoftmaxLoss, hash_centers, separated_codes)
from .dfh import (BitBalanceLoss, BitDecorrelationLoss, DFHLoss, DFHQLoss, HammingProxyLoss,
                  SignControlLoss)
from .distillation import DistillationLoss, MultiHeadLoss, SimilarityDistillLoss, SoftTargetLoss
from .gan import discriminator_loss, generator_loss, gradient_penalty
from .embedding import CosFaceLoss
from .registry import LOSSES, METHOD_DEFAULTS, build_loss, has_method

__all__ = [
    "HashLoss", "DPSHLoss", "DSHLoss", "HashNetLoss", "GreedyHashLoss", "CSQLoss",
    "DDHLoss", "DCDHLoss", "SoftmaxLoss", "hash_centers", "separated_codes", "CosFaceLoss",
    "HammingProxyLoss", "SignControlLoss", "BitBalanceLoss", "BitDecorrelationLoss",
    "DFHLoss", "DFHQLoss",
    "MultiHeadLoss", "DistillationLoss", "SimilarityDistillLoss", "SoftTargetLoss",
    "gradient_penalty", "discriminator_loss", "generator_loss",
    "LOSSES", "METHOD_DEFAULTS", "build_loss", "has_method",
]
