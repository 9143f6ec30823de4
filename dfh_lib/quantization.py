"""Quantization in deep hashing: one interface, every scheme, its gradient.

A hash network ends in real numbers; retrieval needs bits. Every deep-hashing
method bridges the gap with a *quantization scheme*: what the hashing loss sees
(the relaxed codes ``u``) and what pulls ``u`` towards ±1 (a penalty). Here
every scheme is a :class:`Quantizer` that takes the RAW network outputs
``z`` (N, K) (a model built with ``activation=None``) and returns

    u, penalty = quantizer(z)        u (N, K) relaxed codes, penalty a scalar

with ``penalty = weight · mean_{i,k} q(x_ik)`` and ``x = tanh z`` (``space ==
"u"``) or ``x = z`` (``space == "z"``). Each scheme also states its
*hand-derived* gradient (tested against autograd), so the chapter can plot
what the network actually feels:

    gradient(x)     dq/dx, on the penalty's own variable
    grad_wrt_z(z)   dq(x(z))/dz, through tanh where space == "u"
    code_gradient(z) du/dz, what the backward pass of codes(z) uses

The one fact behind the whole comparison: through ``u = tanh z`` every
u-space penalty's gradient carries the factor ``du/dz = 1 − u²``. It vanishes
as ``|u| → 1``, and a penalty whose minimum is at ``|u| = 1`` has its zero
at ``|z| = ∞``: it never stops pushing bits into saturation, where their
gradient (from *every* loss term) is gone ("dead bits", growing weights).
:class:`QuadraticQuantizer`, the book's DFH quantization loss, instead puts a
spring on ``z`` with a finite rest length.

Taught in Chapter 4. Also here: :class:`DFHQLoss` (``"dfhq"``: DFH with a
quantizer), :func:`code_statistics`, :func:`toy_convergence`, and the
robustness helpers :func:`perturb`, :func:`bit_flip_rate`, :func:`robustness`,
and the per-scheme experiment :func:`compare_quantizers` (train "dfhq" with
each scheme: mAP, convergence, code statistics and robustness as rows).
"""
from __future__ import annotations

import copy
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .dfh_loss import DFHLoss
from .losses import (LOSSES, METHOD_DEFAULTS, _non_negative, _positive_int, _sign,
                     _sign_ste)

__all__ = [
    "Quantizer", "L2Quantizer", "L1Quantizer", "LogCoshQuantizer", "CubicQuantizer",
    "DoubleWellQuantizer", "TanhContinuation", "SignSTE", "NoQuantizer",
    "QuadraticQuantizer", "QUANTIZERS", "build_quantizer", "DFHQLoss",
    "code_statistics", "toy_convergence", "PERTURBATIONS", "perturb", "bit_flip_rate",
    "robustness", "epochs_to_fraction", "compare_quantizers",
]


# ----------------------------------------------------------------------------
# base class
# ----------------------------------------------------------------------------

class Quantizer(nn.Module):
    """Base class: raw outputs z (N, K) → ``(u, penalty)``.

    Subclasses set ``space`` (``"u"``: the penalty is on ``u = tanh z``;
    ``"z"``: on ``z`` itself), ``default_weight``, and implement
    ``elementwise(x)`` (the per-entry penalty q) and ``gradient(x)`` (dq/dx,
    derived by hand). ``codes(z)`` defaults to ``tanh z``, with
    ``code_gradient(z) = 1 − tanh² z``.

    Args:
        weight: the penalty's weight (≥ 0; 0 keeps the codes, drops the
            penalty); None = the scheme's ``default_weight``. Schemes without
            a penalty accept only 0 or None.
    Shapes:
        z: (N, K) float → u (N, K), penalty: scalar.
    """

    space = "u"
    default_weight = 0.1
    has_penalty = True

    def __init__(self, weight: float | None = None):
        super().__init__()
        weight = self.default_weight if weight is None else _non_negative("weight", weight)
        if weight and not self.has_penalty:
            raise ValueError(f"{type(self).__name__} has no penalty term; its weight must be "
                             f"0 or None, got {weight!r}")
        self.weight = float(weight)

    # the scheme ------------------------------------------------------------
    def codes(self, z: torch.Tensor) -> torch.Tensor:
        """Relaxed codes u fed to the hashing loss (default ``tanh z``)."""
        return torch.tanh(z)

    def code_gradient(self, z: torch.Tensor) -> torch.Tensor:
        """du/dz as the backward pass uses it (default ``1 − tanh² z``)."""
        return 1 - torch.tanh(z).pow(2)

    def elementwise(self, x: torch.Tensor) -> torch.Tensor:
        """Per-entry penalty q(x) on the scheme's variable (0 if none)."""
        return torch.zeros_like(x)

    def gradient(self, x: torch.Tensor) -> torch.Tensor:
        """Analytic dq/dx (0 if no penalty)."""
        return torch.zeros_like(x)

    # derived ------------------------------------------------------------
    def variable(self, z: torch.Tensor) -> torch.Tensor:
        """The penalty's variable: ``tanh z`` (space "u") or ``z`` (space "z")."""
        return torch.tanh(z) if self.space == "u" else z

    def grad_wrt_z(self, z: torch.Tensor) -> torch.Tensor:
        """Analytic d q(x(z)) / dz per entry (unweighted; chain rule through tanh
        where space == "u": ``gradient(u) · (1 − u²)``). The gradient of
        ``penalty`` w.r.t. z_ik is ``weight / (N·K)`` times this."""
        if self.space == "u":
            u = torch.tanh(z)
            return self.gradient(u) * (1 - u.pow(2))
        return self.gradient(z)

    def penalty(self, z: torch.Tensor) -> torch.Tensor:
        """``weight · mean q(x(z))``: a scalar (a zero with no penalty)."""
        if not self.has_penalty or not self.weight:
            return z.new_zeros(())
        return self.weight * self.elementwise(self.variable(z)).mean()

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not isinstance(z, torch.Tensor) or z.ndim != 2 or not z.is_floating_point():
            got = (f"{tuple(z.shape)} {z.dtype}" if isinstance(z, torch.Tensor)
                   else type(z).__name__)
            raise ValueError(f"z must be float raw outputs of shape (N, bits); got {got} — "
                             f"build the model with activation=None")
        return self.codes(z), self.penalty(z)

    def on_epoch_start(self, epoch: int, num_epochs: int) -> None:
        """Hook for schedules (:class:`TanhContinuation`); a no-op here."""

    def extra_repr(self) -> str:
        return f"weight={self.weight:g}, space={self.space!r}"


def _check_epoch(epoch: int, num_epochs: int) -> None:
    if not isinstance(epoch, int) or not isinstance(num_epochs, int) \
            or not 0 <= epoch < num_epochs:
        raise ValueError(f"need ints 0 <= epoch < num_epochs; got epoch={epoch!r}, "
                         f"num_epochs={num_epochs!r}")


# ----------------------------------------------------------------------------
# penalties on u = tanh z
# ----------------------------------------------------------------------------

class L2Quantizer(Quantizer):
    """Quadratic pull of u to ±1 (DPSH, CSQ).

        q(u) = (|u| − 1)² = (u − sgn u)²,      dq/du = 2(u − sgn u)
        through tanh: dq/dz = 2(u − sgn u)(1 − u²)

    DPSH (Li et al., IJCAI 2016) on raw outputs; CSQ (Yuan et al., CVPR 2020)
    on tanh outputs. Linear pull in u-space with a jump at 0 (|dq/du| = 2
    there). Through tanh the pull is |dq/dz| = 2(1 − |u|)²(1 + |u|): largest
    (2) at u = 0, *doubly* vanishing as |u| → 1, and zero only at |z| = ∞ —
    it keeps pushing bits into saturation, ever more weakly.
    """

    def elementwise(self, x):
        return (x.abs() - 1).pow(2)

    def gradient(self, x):
        return 2 * (x - _sign(x))


class L1Quantizer(Quantizer):
    """Absolute pull of u to ±1 (DSH, DDH).

        q(u) = | |u| − 1 |,       dq/du = sgn(|u| − 1) · sgn u
        through tanh: dq/dz = −sgn(u) (1 − u²)       (|u| < 1 always)

    DSH (Liu et al., CVPR 2016) on raw outputs, DDH (Lin et al., IJCAI 2017).
    On a free u the gradient has constant magnitude 1 whatever the distance:
    it overshoots and oscillates around ±1 instead of settling. Through tanh
    |u| < 1, so the sign never turns: the push is (1 − u²), vanishing in
    saturation, with its zero at |z| = ∞.
    """

    def elementwise(self, x):
        return (x.abs() - 1).abs()

    def gradient(self, x):
        return _sign(x.abs() - 1) * _sign(x)


class LogCoshQuantizer(Quantizer):
    """Smooth L1 pull of u to ±1 (DHN).

        q(u) = log cosh(|u| − 1),    dq/du = tanh(|u| − 1) · sgn u
        through tanh: dq/dz = tanh(|u| − 1) sgn(u) (1 − u²)

    DHN (Zhu et al., AAAI 2016). Quadratic near ±1, linear far away, bounded
    gradient (|dq/du| ≤ tanh 1 = 0.76 for |u| ≤ 1). Through tanh it vanishes
    in saturation like the others; on u ∈ [−1, 1] it is weaker than l2.
    """

    def elementwise(self, x):
        a = (x.abs() - 1).abs()
        return a + F.softplus(-2 * a) - math.log(2)  # log cosh a, no overflow

    def gradient(self, x):
        return torch.tanh(x.abs() - 1) * _sign(x)


class DoubleWellQuantizer(Quantizer):
    """Double-well potential with minima at u = ±1.

        q(u) = (u² − 1)²,         dq/du = 4u(u² − 1)
        through tanh: dq/dz = 4u(u² − 1)(1 − u²) = −4u(1 − u²)²

    Smooth everywhere (no kink at 0), but the push is *zero at u = 0*: an
    undecided bit (u ≈ 0) feels almost nothing and stays undecided, the
    opposite of what a hashing loss needs. Also vanishes in saturation.
    """

    def elementwise(self, x):
        return (x.pow(2) - 1).pow(2)

    def gradient(self, x):
        return 4 * x * (x.pow(2) - 1)


# ----------------------------------------------------------------------------
# penalties on z, sign-forward codes
# ----------------------------------------------------------------------------

class CubicQuantizer(Quantizer):
    """GreedyHash: sgn forward, straight-through backward, cubic penalty on z.

        u = sgn z forward, du/dz := 1 backward
        q(z) = | |z| − 1 |³,      dq/dz = 3(|z| − 1)² · sgn(|z| − 1) · sgn z

    Su et al., "Greedy Hash", NeurIPS 2018 (α = 0.1, mean over entries). The
    hashing loss sees exact ±1 codes; the penalty keeps z near ±1 so that the
    identity backward is not too wrong. The cubic is flat near ±1 (its
    gradient is quadratic in the distance: 3·0.1² = 0.03 at |z| = 0.9), so it
    barely corrects small deviations, and steep far away (3 at z = 0).
    """

    space = "z"

    def codes(self, z):
        return _sign_ste(z)

    def code_gradient(self, z):
        return torch.ones_like(z)

    def elementwise(self, x):
        return (x.abs() - 1).abs().pow(3)

    def gradient(self, x):
        d = x.abs() - 1
        return 3 * d * d.abs() * _sign(x)


class QuadraticQuantizer(Quantizer):
    """The DFH quadratic quantization loss: a spring on z with a finite rest length.

        q(z) = (|z| − α)²,        dq/dz = 2(|z| − α) · sgn z
        α = atanh(1 − ε), default α = 2  (u = tanh z → ±tanh 2 = ±0.964)
        codes u = tanh z

    The thesis names a "quadratic quantization loss" without its formula;
    this is the book's design, from the gradient analysis of Chapter 4:

    * Through tanh every u-space penalty's gradient w.r.t. z carries
      (1 − u²): it vanishes in saturation and its zero is at |z| = ∞. l2, l1
      and logcosh keep pushing bits into saturation, where *no* loss term
      can move them any more ("dead bits"), and the weights before the hash
      layer keep growing. l1 has a constant-magnitude gradient that
      oscillates on a free u; the double well has zero push at u = 0
      (undecided bits stay undecided); GreedyHash's cubic is flat near ±1.
    * Here the gradient is linear in the distance to a FINITE target, like
      a spring: the fastest non-oscillating convergence, with the strongest
      push (|dq/dz| = 2α) for undecided bits at z ≈ 0; zero at |z| = α;
      restoring beyond it (no saturation, no dead bits, bounded weights).
    * So every bit sits at a fixed margin |u| ≈ tanh α from 0: a small
      perturbation of the input cannot flip it (robustness), and the
      quantization error |u − sgn u| = 1 − tanh α ≈ 0.036 is the same for all
      bits. At z = 0 the sgn(0) = +1 convention gives −2α.

    Args:
        weight: default 0.1, as the other penalties.
        alpha: the rest length α > 0 of |z|; or
        epsilon: ε ∈ (0, 1), giving α = atanh(1 − ε) (give one, not both).
    """

    space = "z"

    def __init__(self, weight: float | None = None, alpha: float | None = None,
                 epsilon: float | None = None):
        super().__init__(weight)
        if alpha is not None and epsilon is not None:
            raise ValueError(f"give alpha or epsilon, not both; got alpha={alpha!r}, "
                             f"epsilon={epsilon!r}")
        if epsilon is not None:
            if not isinstance(epsilon, (int, float)) or not 0 < epsilon < 1:
                raise ValueError(f"epsilon must be a number in (0, 1); got {epsilon!r}")
            alpha = math.atanh(1 - epsilon)
        alpha = 2.0 if alpha is None else alpha
        if not isinstance(alpha, (int, float)) or not 0 < alpha < math.inf:
            raise ValueError(f"alpha must be a finite number > 0; got {alpha!r}")
        self.alpha = float(alpha)

    def elementwise(self, x):
        return (x.abs() - self.alpha).pow(2)

    def gradient(self, x):
        return 2 * (x.abs() - self.alpha) * _sign(x)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, alpha={self.alpha:g}"


# ----------------------------------------------------------------------------
# no penalty: the codes do the work
# ----------------------------------------------------------------------------

class NoQuantizer(Quantizer):
    """Plain tanh codes, no penalty: ``u = tanh z``, du/dz = 1 − u²."""

    default_weight = 0.0
    has_penalty = False


class SignSTE(Quantizer):
    """Pure straight-through estimator: u = sgn z forward, no penalty.

        forward u = sgn z;  backward du/dz := 1  (clip: 1[|z| ≤ 1])

    Bengio et al. 2013; the hashing loss sees exact bits. The plain identity
    backward (``clip=False``) never stops: z can drift without bound. The
    clipped variant (hard-tanh backward, as in BinaryNet) has zero gradient
    for |z| > 1 — the STE's own "dead" region.
    """

    default_weight = 0.0
    has_penalty = False
    space = "z"

    def __init__(self, weight: float | None = None, clip: bool = False):
        super().__init__(weight)
        self.clip = bool(clip)

    def codes(self, z):
        if not self.clip:
            return _sign_ste(z)
        relaxed = z.clamp(-1, 1)  # hard tanh: gradient 1[|z| <= 1]
        return relaxed + (_sign(z) - relaxed).detach()

    def code_gradient(self, z):
        return (z.abs() <= 1).to(z.dtype) if self.clip else torch.ones_like(z)

    def extra_repr(self) -> str:
        return f"clip={self.clip}"


class TanhContinuation(Quantizer):
    """HashNet's continuation: u = tanh(β z), β growing, no penalty.

        u = tanh(β z),   du/dz = β (1 − tanh²(β z))

    Cao et al., "HashNet", ICCV 2017: β = (1 + 0.005 t)^0.5 at iteration t.
    Per epoch e of E here (``on_epoch_start``):

        β_e = (1 + (β_max^{1/p} − 1) · e / (E − 1))^p,   p = 0.5, β_max = 10

    i.e. the paper's curve over t = 0 … 19 800 iterations mapped onto the
    epochs, from β = 1 at the first epoch to β_max at the last. As β grows
    tanh(βz) approaches sgn z and its gradient concentrates into a spike of
    height β at z = 0 and vanishes elsewhere: bits are frozen where they are.
    """

    default_weight = 0.0
    has_penalty = False

    def __init__(self, weight: float | None = None, beta_max: float = 10.0,
                 power: float = 0.5):
        super().__init__(weight)
        if not isinstance(beta_max, (int, float)) or not 1 <= beta_max < math.inf:
            raise ValueError(f"beta_max must be a finite number >= 1; got {beta_max!r}")
        if not isinstance(power, (int, float)) or not power > 0:
            raise ValueError(f"power must be a number > 0; got {power!r}")
        self.beta_max, self.power, self.beta = float(beta_max), float(power), 1.0

    def on_epoch_start(self, epoch: int, num_epochs: int) -> None:
        _check_epoch(epoch, num_epochs)
        fraction = epoch / (num_epochs - 1) if num_epochs > 1 else 0.0
        rate = self.beta_max ** (1 / self.power) - 1
        self.beta = (1 + rate * fraction) ** self.power

    def codes(self, z):
        return torch.tanh(self.beta * z)

    def code_gradient(self, z):
        return self.beta * (1 - torch.tanh(self.beta * z).pow(2))

    def extra_repr(self) -> str:
        return f"beta={self.beta:.4g}, beta_max={self.beta_max:g}, power={self.power:g}"


QUANTIZERS = {"l2": L2Quantizer, "l1": L1Quantizer, "logcosh": LogCoshQuantizer,
              "cubic": CubicQuantizer, "double_well": DoubleWellQuantizer,
              "tanh_continuation": TanhContinuation, "sign_ste": SignSTE,
              "none": NoQuantizer, "quadratic": QuadraticQuantizer}


def build_quantizer(name: str, **kwargs) -> Quantizer:
    """A quantizer by name (keys of :data:`QUANTIZERS`), e.g.
    ``build_quantizer("quadratic", weight=0.1, alpha=2.0)``."""
    if name not in QUANTIZERS:
        raise ValueError(f"unknown quantization {name!r}; choose one of {tuple(QUANTIZERS)}")
    return QUANTIZERS[name](**kwargs)


# ----------------------------------------------------------------------------
# DFH with a quantizer: "dfhq"
# ----------------------------------------------------------------------------

class DFHQLoss(DFHLoss):
    """DFH on the codes of a quantizer, plus its penalty as the term ``"quant"``.

        u, P = quantizer(z);   L = DFHLoss terms on u  +  P

    The network gives raw outputs z (``METHOD_DEFAULTS["dfhq"] =
    {"activation": None}``); all schemes' codes lie in [−1, 1], as the DFH
    terms need. ``"quant"`` is present when the quantizer's weight is > 0.
    ``on_epoch_start`` is forwarded to the quantizer (HashNet's β).

    Args:
        quantization: a name in :data:`QUANTIZERS` (default ``"quadratic"``).
        quantization_weight: the penalty's weight; None = the scheme's default.
        quantizer_kwargs: extra arguments of the quantizer (e.g. ``alpha``).
        **dfh_kwargs: every :class:`~dfh_lib.dfh_loss.DFHLoss` argument.
    """

    def __init__(self, bits: int, num_classes: int, quantization: str = "quadratic",
                 quantization_weight: float | None = None,
                 quantizer_kwargs: dict | None = None, **dfh_kwargs):
        quantizer = build_quantizer(quantization, weight=quantization_weight,
                                    **(quantizer_kwargs or {}))
        # a quantizer with a penalty counts as a term for DFHLoss's "all weights 0" check
        super().__init__(bits, num_classes, quantization=quantizer if quantizer.weight else None,
                         **dfh_kwargs)
        self.quantization = None  # the penalty needs z, so compute adds it
        self.quantizer = quantizer

    def compute(self, z, labels):
        u, penalty = self.quantizer(z)
        terms = super().compute(u, labels)
        if self.quantizer.weight:
            terms["quant"] = penalty
        return terms

    def on_epoch_start(self, epoch: int, num_epochs: int) -> None:
        self.quantizer.on_epoch_start(epoch, num_epochs)


LOSSES["dfhq"] = DFHQLoss
METHOD_DEFAULTS["dfhq"] = {"activation": None}  # the quantizer maps z to codes


# ----------------------------------------------------------------------------
# measuring codes
# ----------------------------------------------------------------------------

def code_statistics(u, undecided_below: float = 0.5, saturated_above: float = 0.99) -> dict:
    """How binary relaxed codes are, in numbers.

    Keys (python floats): ``quantization_error`` mean |u − sgn u|;
    ``undecided`` fraction with |u| < ``undecided_below`` (a small change
    flips them); ``saturated`` fraction with |u| > ``saturated_above``
    (tanh's gradient ≤ 0.02 there); ``mean_abs`` mean |u|; ``bit_balance``
    1 − mean_k |mean_i sgn u_ik| (1: every bit splits the set in half, 0:
    constant bits). For sign-forward schemes pass the codes (all ±1) or
    ``tanh z`` to see the margin.

    Shapes: u (N, K) float, numpy or torch.
    """
    u = torch.as_tensor(u)
    if u.ndim != 2 or not u.is_floating_point() or not len(u):
        raise ValueError(f"u must be non-empty float codes of shape (N, bits); got "
                         f"{tuple(u.shape)} {u.dtype}")
    a, size = u.abs(), u.numel()
    positive = torch.count_nonzero(u >= 0, dim=0).double() / len(u)  # sgn 0 = +1
    return {"quantization_error": float((a - 1).abs().mean()),  # |u − sgn u|
            "undecided": int(torch.count_nonzero(a < undecided_below)) / size,
            "saturated": int(torch.count_nonzero(a > saturated_above)) / size,
            "mean_abs": float(a.mean()),
            "bit_balance": float(1 - (2 * positive - 1).abs().mean())}


def toy_convergence(quantizer: Quantizer | str, steps: int = 500, n: int = 1000,
                    bits: int = 48, lr: float = 1.0, seed: int = 0, init_std: float = 0.5,
                    pull: float = 0.0):
    """Gradient descent on free outputs z under a quantizer alone: how bits settle.

    z (n, bits) starts at N(0, init_std²); each step is plain gradient
    descent on the per-entry objective ``weight · q(x(z)) − pull · t · u(z)``,
    with the hand-derived gradients (``grad_wrt_z``, ``code_gradient``) and
    t a fixed random ±1 target per entry (a linear "data" pull; 0 = none).
    Plain GD, not Adam: Adam rescales every entry's step and would hide
    exactly the vanishing gradients this experiment shows. A schedule
    (HashNet's β) runs over the steps as if each were an epoch, on a copy.

    Returns:
        a ``pandas.DataFrame``, one row per step 0..steps (before each
        update, and after the last): ``penalty`` (weight · mean q),
        :func:`code_statistics` of the codes u = codes(z) and ``mean_abs_z``
        (grows without bound when the penalty's zero is at |z| = ∞) and, with
        a pull, ``agreement``: the fraction of bits with the target's sign.
        Sign-forward codes (cubic, sign_ste) are ±1: quantization error 0.
    """
    import pandas as pd

    for name, value in (("steps", steps), ("n", n), ("bits", bits)):
        _positive_int(name, value)
    lr, pull = _non_negative("lr", lr), _non_negative("pull", pull)
    q = copy.deepcopy(build_quantizer(quantizer) if isinstance(quantizer, str) else quantizer)
    generator = torch.Generator().manual_seed(seed)
    z = init_std * torch.randn(n, bits, generator=generator)
    target = _sign(torch.randn(n, bits, generator=generator))
    rows = []
    with torch.no_grad():
        for step in range(steps + 1):
            if step < steps:
                q.on_epoch_start(step, steps)
            u = q.codes(z)
            rows.append({"step": step, "penalty": float(q.penalty(z)), **code_statistics(u),
                         "mean_abs_z": float(z.abs().mean())})
            if pull:
                rows[-1]["agreement"] = int(torch.count_nonzero(_sign(u) == target)) / u.numel()
            if step < steps:
                grad = q.weight * q.grad_wrt_z(z)
                if pull:
                    grad = grad - pull * target * q.code_gradient(z)
                z = z - lr * grad
    return pd.DataFrame(rows).set_index("step")


# ----------------------------------------------------------------------------
# robustness: perturb the images, count the flipped bits
# ----------------------------------------------------------------------------

#: perturbation kind -> what its strength means (0 always = the clean images)
PERTURBATIONS = {"noise": "Gaussian noise σ, images in [0, 1] units",
                 "blur": "Gaussian blur σ in pixels",
                 "shift": "translation by that many pixels in x and y (int), edge padding",
                 "jpeg": "JPEG quality 1..100 (lower = stronger; 0 = no compression)"}


def _check_perturbation(kind: str, strength) -> float:
    if kind not in PERTURBATIONS:
        raise ValueError(f"unknown perturbation kind {kind!r}; choose one of "
                         f"{tuple(PERTURBATIONS)}")
    if isinstance(strength, bool) or not isinstance(strength, (int, float)) \
            or not 0 <= strength < math.inf:
        raise ValueError(f"strength must be a finite number >= 0; got {strength!r}")
    if kind in ("shift", "jpeg") and strength != int(strength):
        raise ValueError(f"{kind} strength must be a whole number ({PERTURBATIONS[kind]}); "
                         f"got {strength!r}")
    if kind == "jpeg" and strength > 100:
        raise ValueError(f"jpeg strength is the JPEG quality 1..100 (0 = none); got {strength}")
    return float(strength)


def _to_float_nchw(images):
    """(float (N, 3, H, W) in [0, 1], a function that restores the input's type)."""
    from .data.dataset import FaceDataset

    if isinstance(images, FaceDataset):
        x, back = _to_float_nchw(images.images)
        return x, lambda y: FaceDataset(back(y), images.labels, images.identity_names,
                                        images.name, images.attributes,
                                        images.attribute_names, images.source_index)
    if isinstance(images, np.ndarray) and images.dtype == np.uint8 and images.ndim == 4 \
            and images.shape[-1] == 3:
        x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div(255)
        return x, lambda y: (y.mul(255).round().clamp(0, 255).to(torch.uint8)
                             .permute(0, 2, 3, 1).numpy())
    if isinstance(images, torch.Tensor) and images.ndim == 4 and images.shape[1] == 3:
        if images.dtype == torch.uint8:
            return images.float().div(255), \
                lambda y: y.mul(255).round().clamp(0, 255).to(torch.uint8)
        if images.is_floating_point():
            return images.float(), lambda y: y.to(images.dtype)
    got = getattr(images, "shape", type(images).__name__)
    raise ValueError(f"images must be a FaceDataset, a uint8 numpy array (N, H, W, 3) or a "
                     f"torch tensor (N, 3, H, W) (uint8, or float in [0, 1]); got {got} "
                     f"{getattr(images, 'dtype', '')}")


def _shift(x: torch.Tensor, pixels: int, generator: torch.Generator) -> torch.Tensor:
    """Each image moved by ±pixels in y and in x (random signs), edge padding."""
    h, w = x.shape[2:]
    if pixels >= min(h, w):
        raise ValueError(f"shift strength must be < the image size {(h, w)}; got {pixels}")
    padded = F.pad(x, (pixels,) * 4, mode="replicate")
    dy, dx = (torch.randint(0, 2, (2, len(x)), generator=generator) * 2 - 1) * pixels
    return torch.stack([p[:, pixels - a:pixels - a + h, pixels - b:pixels - b + w]
                        for p, a, b in zip(padded, dy.tolist(), dx.tolist())])


def _jpeg(x: torch.Tensor, quality: int) -> torch.Tensor:
    """Each image through a JPEG encode/decode round trip (PIL) at ``quality``."""
    import io

    from PIL import Image

    def round_trip(image: np.ndarray) -> np.ndarray:
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
        return np.asarray(Image.open(buffer).convert("RGB"))

    hwc = x.mul(255).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    out = np.stack([round_trip(image) for image in hwc])
    return torch.from_numpy(out).permute(0, 3, 1, 2).float().div(255)


def perturb(images, kind: str, strength: float, seed: int = 0):
    """A perturbed copy of ``images``, same type, layout and dtype.

    Kinds (:data:`PERTURBATIONS`): ``"noise"`` (Gaussian, σ = strength in
    [0, 1] units, clipped), ``"blur"`` (Gaussian, σ = strength pixels, kernel
    2⌈3σ⌉ + 1 capped at the image size, reflect padding), ``"shift"``
    (strength pixels in x and y, random directions, edge padding),
    ``"jpeg"`` (a PIL round trip at quality = strength).
    Strength 0 returns the images unchanged (a copy) for every kind.

    Args:
        images: a FaceDataset (its images, (N, H, W, 3) uint8 — the dataset
            convention), a uint8 numpy array (N, H, W, 3), or a torch tensor
            (N, 3, H, W), uint8 or float in [0, 1] (the network input).
        seed: the noise / shift directions.
    """
    strength = _check_perturbation(kind, strength)
    x, back = _to_float_nchw(images)
    if strength == 0 or not len(x):
        return back(x.clone())
    generator = torch.Generator().manual_seed(seed)
    if kind == "noise":
        x = (x + strength * torch.randn(x.shape, generator=generator)).clamp(0, 1)
    elif kind == "blur":
        from torchvision.transforms.functional import gaussian_blur

        size = min(2 * math.ceil(3 * strength) + 1, 2 * (min(x.shape[2:]) // 2) - 1)
        x = gaussian_blur(x, [size, size], [strength, strength]) if size > 1 else x
    elif kind == "shift":
        x = _shift(x, int(strength), generator)
    else:
        x = _jpeg(x, int(strength))
    return back(x)


def bit_flip_rate(model: nn.Module, data, kind: str, strength: float, seed: int = 0,
                  batch_size: int = 512, device=None) -> float:
    """Fraction of code bits that flip when ``data`` is perturbed.

    Encodes the clean and the perturbed images with
    :func:`dfh_lib.train.binary_codes` (sgn of the model's outputs: for raw
    outputs z the same bits as sgn tanh z) and compares. ``data``: as
    :func:`perturb` (a FaceDataset is perturbed at its stored resolution,
    then resized to the model's input size by the encoder).
    """
    from .train import binary_codes

    clean = binary_codes(model, data, batch_size, device)
    noisy = binary_codes(model, perturb(data, kind, strength, seed), batch_size, device)
    return float((clean != noisy).double().mean()) if clean.numel() else 0.0


def robustness(model: nn.Module, splits, perturbations, seed: int = 0,
               batch_size: int = 512, device=None):
    """Retrieval under perturbed queries: one row per ``(kind, strength)``.

    The queries (``splits.query``) are perturbed, the database
    (``splits.database``) stays clean; codes from
    :func:`dfh_lib.train.binary_codes`, metrics from
    :func:`dfh_lib.metrics.evaluate_retrieval`. The first row is the clean
    queries (kind ``"clean"``, strength 0).

    Returns:
        a ``pandas.DataFrame`` with columns ``kind``, ``strength``,
        ``bit_flip_rate`` (of the query codes) and ``mAP``.
    """
    import pandas as pd

    from .metrics import evaluate_retrieval
    from .train import binary_codes

    pairs = [tuple(p) for p in perturbations]
    for pair in pairs:
        if len(pair) != 2:
            raise ValueError(f"perturbations must be (kind, strength) pairs; got {pair!r}")
        _check_perturbation(*pair)
    database = binary_codes(model, splits.database, batch_size, device)
    clean = binary_codes(model, splits.query, batch_size, device)
    q_labels = torch.from_numpy(splits.query.labels)
    d_labels = torch.from_numpy(splits.database.labels)
    rows = []
    for kind, strength in [("clean", 0)] + pairs:
        codes = clean if kind == "clean" else binary_codes(
            model, perturb(splits.query, kind, strength, seed), batch_size, device)
        rows.append({"kind": kind, "strength": strength,
                     "bit_flip_rate": float((codes != clean).double().mean()),
                     "mAP": evaluate_retrieval(codes, database, q_labels, d_labels)["mAP"]})
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------
# the experiment: every scheme through the same loop, measured the same way
# ----------------------------------------------------------------------------

def epochs_to_fraction(history, fraction: float = 0.95, metric: str = "val_mAP") -> int | None:
    """Convergence speed: the first evaluated epoch whose ``metric`` reaches
    ``fraction`` × its FINAL value (the last evaluated epoch's), or None
    before any evaluation. Resolution: the run's ``eval_every``.

    Args:
        history: a :class:`dfh_lib.train.History` (or anything with ``records``).
    """
    if not isinstance(fraction, (int, float)) or not 0 < fraction <= 1:
        raise ValueError(f"fraction must be a number in (0, 1]; got {fraction!r}")
    scored = [(r["epoch"], r[metric]) for r in history.records if r.get(metric) is not None]
    if not scored:
        return None
    final = scored[-1][1]
    return next(epoch for epoch, value in scored if value >= fraction * final)


def compare_quantizers(splits, schemes=tuple(QUANTIZERS), bits=(12, 24, 36, 48), profile=None,
                       runs_dir=None, *, perturbations=(), weight: float | None = None,
                       quantizer_kwargs: dict | None = None, fraction: float = 0.95,
                       seed: int = 0, progress: bool = False, **overrides):
    """Train ``"dfhq"`` (DFH + a quantizer) once per scheme and code length —
    only the quantization term differs — and measure every run the same way.

    Train-or-load through :func:`dfh_lib.train.train_method`, in
    ``runs_dir/<label>-<bits>`` (label = the scheme's name, or
    ``"<scheme>-w<weight>"`` when ``weight`` is given; the folder names of
    :func:`dfh_lib.experiments.run_methods`, so ``trained_model`` finds them
    with ``Variant(label, "dfhq", {"quantization": scheme, ...})``).
    ``overrides`` go to the training config (e.g. ``eval_every=1``).

    Each run gives one row (the best-on-validation network, as every table):

    * retrieval on query vs database: ``mAP``, ``P@H<=2``, ... (binary codes);
    * convergence: ``final_val_mAP`` (last evaluated epoch), ``best_epoch``,
      ``epochs_to_95`` (:func:`epochs_to_fraction` with ``fraction``);
    * :func:`code_statistics` of the query codes the hashing loss saw,
      ``u = quantizer.codes(z)`` with the schedule (HashNet's β) at the best
      epoch — sign-forward schemes (cubic, sign_ste) give ±1 codes, so their
      quantization error and undecided fraction are 0 by construction —
      plus ``mean_abs_z`` of the raw outputs;
    * robustness (:func:`robustness`, queries perturbed, database clean):
      ``bit_flip_rate`` and ``mAP_drop`` (clean − perturbed), means over
      ``perturbations`` (NaN if none).

    Returns:
        ``(result, robust)``: an :class:`dfh_lib.experiments.ExperimentResult`
        (rows, codes, histories keyed by ``(label, bits)``) and a DataFrame
        with one row per run and perturbation (``method``, ``bits``,
        ``kind``, ``strength``, ``bit_flip_rate``, ``mAP``, ``mAP_drop``).
    """
    import time
    from pathlib import Path

    import pandas as pd

    from .experiments import ExperimentResult
    from .metrics import binarize
    from .train import binary_codes, encode, train_method

    schemes = [schemes] if isinstance(schemes, str) else list(schemes)
    for scheme in schemes:
        if scheme not in QUANTIZERS:
            raise ValueError(f"unknown quantization {scheme!r}; choose one of "
                             f"{tuple(QUANTIZERS)}")
    perturbations = [tuple(p) for p in perturbations]
    for pair in perturbations:
        if len(pair) != 2:
            raise ValueError(f"perturbations must be (kind, strength) pairs; got {pair!r}")
        _check_perturbation(*pair)
    bits = [bits] if isinstance(bits, int) else list(bits)
    result, robust = ExperimentResult(), []
    for k in bits:
        for scheme in schemes:
            label = scheme if weight is None else f"{scheme}-w{weight:g}"
            loss_kwargs = {"quantization": scheme}
            if weight is not None:
                loss_kwargs["quantization_weight"] = weight
            if quantizer_kwargs:
                loss_kwargs["quantizer_kwargs"] = dict(quantizer_kwargs)
            run_dir = None if runs_dir is None else Path(runs_dir) / f"{label}-{k}"
            start = time.perf_counter()
            model, loss, history = train_method("dfhq", splits, k, profile, run_dir=run_dir,
                                                loss_kwargs=loss_kwargs, progress=progress,
                                                **overrides)
            model.eval()
            quantizer = loss.quantizer
            epochs = history.config.get("epochs", len(history))
            quantizer.on_epoch_start((history.best_epoch or 1) - 1, epochs)  # β of the best net
            with torch.no_grad():
                z = encode(model, splits.query)
                stats = code_statistics(quantizer.codes(z))
            table = robustness(model, splits, perturbations, seed=seed)
            table["mAP_drop"] = table["mAP"].iloc[0] - table["mAP"]
            perturbed = table.iloc[1:]
            result.add(label, k, binarize(z),  # the query codes encoded above
                       binary_codes(model, splits.database), splits, scheme=scheme,
                       weight=quantizer.weight, best_epoch=history.best_epoch,
                       final_val_mAP=[m for m in history.column("val_mAP")
                                      if m is not None][-1],
                       epochs_to_95=epochs_to_fraction(history, fraction),
                       **stats, mean_abs_z=float(z.abs().mean()),
                       bit_flip_rate=float(perturbed["bit_flip_rate"].mean())
                       if len(perturbed) else math.nan,
                       mAP_drop=float(perturbed["mAP_drop"].mean())
                       if len(perturbed) else math.nan,
                       seconds=round(time.perf_counter() - start, 1))
            result.histories[(label, k)] = history
            robust.append(table.assign(method=label, bits=k, scheme=scheme))
    columns = ["method", "bits", "scheme", "kind", "strength", "bit_flip_rate", "mAP",
               "mAP_drop"]
    robust = pd.concat(robust, ignore_index=True)[columns] if robust \
        else pd.DataFrame(columns=columns)
    return result, robust
