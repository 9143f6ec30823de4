"""What Chapter 4 reaches as ``dfh.quantization``: re-exports only, each
name lives in its layer — the quantizers in :mod:`dfh_lib.nn.quantizers`,
``DFHQLoss`` in :mod:`dfh_lib.nn.losses.dfh`, the measurements in
:mod:`dfh_lib.analysis.codes` and :mod:`dfh_lib.analysis.robustness`, the
experiment in :mod:`dfh_lib.experiments.quantizers`."""
from ...analysis.codes import code_statistics, epochs_to_fraction, epochs_to_target, toy_convergence
from ...analysis.robustness import PERTURBATIONS, bit_flip_rate, perturb, robustness
from ...experiments.quantizers import compare_quantizers
from ...nn.losses.dfh import DFHQLoss
from ...nn.quantizers import (QUANTIZERS, CubicQuantizer, DoubleWellQuantizer, L1Quantizer,
                              L2Quantizer, LogCoshQuantizer, NoQuantizer, QuadraticQuantizer,
                              Quantizer, SignSTE, TanhContinuation, build_quantizer,
                              cubic_penalty, hashnet_beta, l1_penalty, l2_penalty, sign,
                              sign_ste)

__all__ = [
    "sign", "sign_ste", "l2_penalty", "l1_penalty", "cubic_penalty", "hashnet_beta",
    "Quantizer", "L2Quantizer", "L1Quantizer", "LogCoshQuantizer", "CubicQuantizer",
    "DoubleWellQuantizer", "TanhContinuation", "SignSTE", "NoQuantizer",
    "QuadraticQuantizer", "QUANTIZERS", "build_quantizer", "DFHQLoss",
    "code_statistics", "toy_convergence", "PERTURBATIONS", "perturb", "bit_flip_rate",
    "robustness", "epochs_to_fraction", "epochs_to_target", "compare_quantizers",
]
