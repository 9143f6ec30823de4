"""Quantization in deep hashing: one interface, every scheme, its gradient.

The one public home of sign, the straight-through estimator, every
quantization penalty and HashNet's continuation schedule: the baseline
losses (:mod:`dfh_lib.nn.losses`) and the DFH quantizers use these.

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

Taught in Chapter 4. ``sgn`` maps 0 to +1 everywhere.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..core.checks import non_negative, positive_int

__all__ = [
    "sign", "sign_ste", "l2_penalty", "l1_penalty", "cubic_penalty", "hashnet_beta",
    "Quantizer", "L2Quantizer", "L1Quantizer", "LogCoshQuantizer", "CubicQuantizer",
    "DoubleWellQuantizer", "TanhContinuation", "SignSTE", "NoQuantizer",
    "QuadraticQuantizer", "QUANTIZERS", "build_quantizer",
]


# ----------------------------------------------------------------------------
# sign, straight-through, element-wise penalties (callers reduce)
# ----------------------------------------------------------------------------

def sign(x: torch.Tensor) -> torch.Tensor:
    """sgn with sgn(0) = +1, so every code bit is ±1."""
    return torch.where(x >= 0, 1.0, -1.0).to(x.dtype)


def sign_ste(z: torch.Tensor) -> torch.Tensor:
    """sgn(z) forward, identity backward (straight-through estimator)."""
    return z + (sign(z) - z).detach()


def l2_penalty(x: torch.Tensor) -> torch.Tensor:
    """(|x| − 1)² = (x − sgn x)²: DPSH's ‖u − b‖², CSQ's term, :class:`L2Quantizer`."""
    return (x.abs() - 1).pow(2)


def l1_penalty(x: torch.Tensor) -> torch.Tensor:
    """| |x| − 1 |: DSH's and DDH's term, :class:`L1Quantizer`."""
    return (x.abs() - 1).abs()


def cubic_penalty(x: torch.Tensor) -> torch.Tensor:
    """| |x| − 1 |³: GreedyHash's penalty, flat near ±1, :class:`CubicQuantizer`."""
    return (x.abs() - 1).abs().pow(3)


def _check_epoch(epoch: int, num_epochs: int) -> None:
    if not isinstance(epoch, int) or not isinstance(num_epochs, int) \
            or not 0 <= epoch < num_epochs:
        raise ValueError(f"need ints 0 <= epoch < num_epochs; got epoch={epoch!r}, "
                         f"num_epochs={num_epochs!r}")


def hashnet_beta(epoch: int, num_epochs: int, gamma: float = 0.005, power: float = 0.5,
                 iterations: int = 10_000) -> float:
    """HashNet's continuation β at the start of ``epoch`` (0-based) of ``num_epochs``.

    Cao et al., "HashNet", ICCV 2017; the authors' code sets
    β = (1 + γ t)^p at iteration t of a 10 000-iteration run (γ = 0.005,
    p = 0.5). The run is mapped onto that range, t = iterations · epoch /
    num_epochs, so β goes from 1 towards √51 ≈ 7.1 whatever the run length.
    The one schedule of :class:`~dfh_lib.nn.losses.HashNetLoss` and
    :class:`TanhContinuation`.
    """
    _check_epoch(epoch, num_epochs)
    return (1 + gamma * iterations * epoch / num_epochs) ** power

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
        weight = self.default_weight if weight is None else non_negative("weight", weight)
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
        return l2_penalty(x)

    def gradient(self, x):
        return 2 * (x - sign(x))


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
        return l1_penalty(x)

    def gradient(self, x):
        return sign(x.abs() - 1) * sign(x)


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
        return torch.tanh(x.abs() - 1) * sign(x)


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
        return sign_ste(z)

    def code_gradient(self, z):
        return torch.ones_like(z)

    def elementwise(self, x):
        return cubic_penalty(x)

    def gradient(self, x):
        d = x.abs() - 1
        return 3 * d * d.abs() * sign(x)


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
        return 2 * (x.abs() - self.alpha) * sign(x)

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
            return sign_ste(z)
        relaxed = z.clamp(-1, 1)  # hard tanh: gradient 1[|z| <= 1]
        return relaxed + (sign(z) - relaxed).detach()

    def code_gradient(self, z):
        return (z.abs() <= 1).to(z.dtype) if self.clip else torch.ones_like(z)

    def extra_repr(self) -> str:
        return f"clip={self.clip}"


class TanhContinuation(Quantizer):
    """HashNet's continuation: u = tanh(β z), β growing, no penalty.

        u = tanh(β z),   du/dz = β (1 − tanh²(β z))

    β follows :func:`hashnet_beta` (``on_epoch_start``), the schedule of the
    authors' code mapped onto the run: from 1 at the first epoch towards
    √51 ≈ 7.1 — the same schedule as :class:`~dfh_lib.nn.losses.HashNetLoss`.
    As β grows tanh(βz) approaches sgn z and its gradient concentrates into a
    spike of height β at z = 0 and vanishes elsewhere: bits are frozen where
    they are.
    """

    default_weight = 0.0
    has_penalty = False

    def __init__(self, weight: float | None = None, gamma: float = 0.005,
                 power: float = 0.5, iterations: int = 10_000):
        super().__init__(weight)
        if not isinstance(power, (int, float)) or not power > 0:
            raise ValueError(f"power must be a number > 0; got {power!r}")
        self.gamma, self.power = non_negative("gamma", gamma), float(power)
        self.iterations = positive_int("iterations", iterations)
        self.beta = 1.0

    def on_epoch_start(self, epoch: int, num_epochs: int) -> None:
        self.beta = hashnet_beta(epoch, num_epochs, self.gamma, self.power, self.iterations)

    def codes(self, z):
        return torch.tanh(self.beta * z)

    def code_gradient(self, z):
        return self.beta * (1 - torch.tanh(self.beta * z).pow(2))

    def extra_repr(self) -> str:
        return (f"beta={self.beta:.4g}, gamma={self.gamma:g}, power={self.power:g}, "
                f"iterations={self.iterations}")


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


