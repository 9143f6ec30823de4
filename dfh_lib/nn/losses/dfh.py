"""DFH: metric-learning face hashing with sign control, one small module per term.

The thesis abstract describes DFH as "a face hash algorithm based on metric
learning" that "optimizes the characteristics of the hash code and controls
the sign of the hash code". Its exact formulas are not public; this module is
the book's reading of that sentence, built from published pieces:

    L = w_metric · L_metric(u, y; W)           identity margin in Hamming terms
      + w_sign   · Lsign(u, sgn W_y)          each bit takes its identity's sign
      + w_bal    · L_balance(u)                each bit is +1 for half the faces
      + w_dec    · L_decorrelation(u)          bits carry different information
      [+ quantization(u)]                      optional, swapped in by later chapters

``u`` (N, K) are tanh relaxed codes and ``W`` (C, K) one learnable proxy per
identity, shared by the metric and the sign terms: the proxies' signs are the
identities' target codes. Faces have many identities with few images each, so
a proxy loss sees every identity in every step (through its proxy), where a
pair or triplet loss sees only the identities that happen to be in the batch.

Every term is a module of its own (pytorch-metric-learning style), so a
chapter can build, plot and ablate them one at a time; :class:`DFHLoss` is
their weighted sum in the :class:`~dfh_lib.nn.losses.base.HashLoss` contract;
:class:`DFHQLoss` (``"dfhq"``) is DFH on the codes of a quantizer (Chapter 4).
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from pytorch_metric_learning.losses import CosFaceLoss
from torch import nn

from ...core.checks import non_negative, positive_int
from ..quantizers import build_quantizer, sign
from .base import HashLoss
from .baselines import separated_codes

__all__ = ["HammingProxyLoss", "SignControlLoss", "BitBalanceLoss",
           "BitDecorrelationLoss", "DFHLoss", "DFHQLoss"]


class HammingProxyLoss(nn.Module):
    """Metric term: a cosine-margin softmax of the codes against identity proxies.

    CosFace (Wang et al., "CosFace: Large Margin Cosine Loss for Deep Face
    Recognition", CVPR 2018) applied to relaxed codes, with the margin given
    in bits:

        cos_ic = u_iᵀt_c / (‖u_i‖ ‖t_c‖)
        L = mean_i −log  e^{s(cos_iy − m)} / (e^{s(cos_iy − m)} + Σ_{c≠y} e^{s cos_ic})
        m = 2 · margin_bits / K

    Why the margin is in bits: for ±1 vectors d_H = (K − bᵀt)/2, so
    cos = 1 − 2 d_H / K and ``cos_iy − m > cos_ic`` reads
    d_H(b_i, t_c) > d_H(b_i, t_y) + margin_bits — every other identity's
    proxy at least ``margin_bits`` farther in Hamming distance than the
    face's own.

    The loss can be satisfied. The proxies ``t_c`` are fixed ±1 codes with
    a known minimum distance d_min (:func:`~dfh_lib.nn.losses.separated_codes`:
    4, 8, 14, 22 bits for 62 identities at K = 12, 24, 36, 48). A face
    placed exactly on its target code then beats every other identity by
    at least 2(d_min − margin_bits)/K in cosine, so the margin must stay
    below d_min (the default is d_min / 2, and a larger one is refused), and
    the scale is set from it so that the loss at the targets is at most
    log(1 + ε), ε = 0.05:

        s = K · ln((C − 1) / ε) / (2 (d_min − margin_bits))

    (≈ 21 at K = 12 and 17 at K = 48 for 62 identities). A fixed scale
    cannot do this at every length: the earlier s = 4 left the loss at 2.2
    to 2.8 with every face on its target, so the term never switched off.
    OrthoHash (Hoe et al., NeurIPS 2021) also uses a cosine-margin softmax
    against fixed ±1 codes. ``learn_proxies=True`` makes the proxies
    learnable (their signs then may drift and d_min is no longer known).

    Built on ``pytorch_metric_learning.losses.CosFaceLoss`` (cosine
    distance, mean reducer), whose weight ``W`` (K, C) holds the proxies.

    Args:
        bits / num_classes: K and the number of training identities C.
        margin_bits: Hamming margin (default d_min / 2); must be < d_min.
        scale: s; None derives it as above.
        seed: seed of the proxy codes.
        learn_proxies: train the proxies too (default False).
    Shapes:
        u: (N, K) float; labels: (N,) int64 in 0..C−1 → scalar.
    """

    #: the loss at the target codes is at most log(1 + TARGET_SLACK)
    TARGET_SLACK = 0.05

    def __init__(self, bits: int, num_classes: int, margin_bits: float | None = None,
                 scale: float | None = None, seed: int = 0, learn_proxies: bool = False):
        super().__init__()
        bits, num_classes = positive_int("bits", bits), positive_int("num_classes", num_classes)
        codes = separated_codes(num_classes, bits, seed=seed)
        dist = (bits - codes @ codes.T) / 2
        self.min_distance = float(dist.fill_diagonal_(bits).min()) if num_classes > 1 else bits
        self.margin_bits = (self.min_distance / 2 if margin_bits is None
                            else non_negative("margin_bits", margin_bits))
        if self.margin_bits >= self.min_distance:
            raise ValueError(
                f"margin_bits={self.margin_bits:g} must be below the proxies' minimum "
                f"distance {self.min_distance:g} bits ({num_classes} identities in {bits} "
                f"bits), or the loss can never be satisfied; use a smaller margin")
        if scale is None:
            slack = 2 * (self.min_distance - self.margin_bits) / bits
            scale = math.log(max(num_classes - 1, 1) / self.TARGET_SLACK) / slack
        self.cosface = CosFaceLoss(num_classes, bits, margin=2 * self.margin_bits / bits,
                                   scale=non_negative("scale", scale))
        with torch.no_grad():
            self.cosface.W.copy_(codes.T / math.sqrt(bits))
        self.cosface.W.requires_grad_(bool(learn_proxies))

    @property
    def proxies(self) -> torch.Tensor:
        """(C, K) proxies, one row per identity."""
        return self.cosface.W.T

    def target_codes(self, labels: torch.Tensor) -> torch.Tensor:
        """(N, K) in {−1, +1}: the signs of each face's identity proxy (no gradient)."""
        return sign(self.proxies.detach()[labels])

    def forward(self, u: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.cosface(u, labels)

    def extra_repr(self) -> str:
        return (f"margin_bits={self.margin_bits:g}, scale={self.cosface.scale:g}, "
                f"min_distance={self.min_distance:g}")


class SignControlLoss(nn.Module):
    """Sign control: a per-bit hinge towards the identity's target code.

        L = mean_{i,k} max(0, m − u_ik t_{y_i,k}),   t_y ∈ {−1, +1}^K

    Zero once every bit has its identity's sign with a margin m (|u_ik| ≥ m),
    so it controls the sign *and* pushes codes away from 0, where a flip is
    cheap; the gradient is the constant −t_k until then, so undecided bits
    (u ≈ 0) are pushed as hard as wrong ones. Keep m < 1 with tanh outputs,
    or the hinge never switches off and drives the network into saturation.

    DPN's polarization loss (Fan et al., IJCAI 2020) is the same hinge with
    fixed targets, assigned before training (random codes per class suffice,
    the paper shows), and is DPN's whole objective; here the targets are the
    signs of learned identity proxies, so they follow the metric term, and
    the hinge is one term beside it. CSQ (Yuan et al., CVPR 2020) pulls u
    to its class centre with a BCE that keeps pulling until u = t exactly
    (reached only as tanh saturates); the hinge stops at the margin and
    leaves the rest to the metric term.

    Args:
        margin: m in (0, 1] (default 0.8; Chapter 3's search tries 0.8 and 0.95).
    Shapes:
        u: (N, K) float; targets: (N, K) in {−1, +1} → scalar.
    """

    def __init__(self, margin: float = 0.8):
        super().__init__()
        if not isinstance(margin, (int, float)) or not 0 < margin <= 1:
            raise ValueError(f"margin must be a number in (0, 1] (reachable by tanh codes); "
                             f"got {margin!r}")
        self.margin = float(margin)

    def forward(self, u: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if targets.shape != u.shape:
            raise ValueError(f"targets must have the shape of u {tuple(u.shape)}; got "
                             f"{tuple(targets.shape)} — pass one ±1 code per face")
        return (self.margin - u * targets).clamp(min=0).mean()

    def extra_repr(self) -> str:
        return f"margin={self.margin:g}"


class BitBalanceLoss(nn.Module):
    """Bit balance: each bit is +1 for about half of the faces in a batch.

        L = mean_k (mean_i u_ik)²

    A bit that is +1 for every face separates nobody; a balanced bit splits
    the data in two and carries the most information (one bit of entropy).
    Spectral Hashing (Weiss, Torralba, Fergus, NIPS 2008) imposes
    Σ_i b_i = 0 as a constraint; DeepBit (Lin et al., CVPR 2016) penalises
    the same batch mean on {0, 1} bits, as here on relaxed codes. Bi-half
    (Li & van Gemert, AAAI 2021) enforces the split in the forward pass.

    Shapes:
        u: (N, K) float → scalar.
    """

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        return u.mean(dim=0).pow(2).mean()


class BitDecorrelationLoss(nn.Module):
    """Bit decorrelation: different bits answer different questions.

        Σ = (u − ū)ᵀ(u − ū) / N                 (K, K) batch covariance
        L = mean_{k≠l} Σ_kl²

    Two correlated bits split the faces the same way and waste a bit. The
    centred covariance (not the correlation, whose 1/σ explodes for a bit
    that is constant over the batch) keeps the term bounded for u ∈ [−1, 1].
    It relaxes Spectral Hashing's uncorrelated-bits constraint BᵀB / N = I
    (Weiss, Torralba, Fergus, NIPS 2008) into a penalty on the off-diagonal;
    the diagonal is left to the sign term (|u_ik| ≥ m makes it ≥ m² − ū_k²).

    Shapes:
        u: (N, K) float → scalar (0 when K = 1).
    """

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        centred = u - u.mean(dim=0)
        cov = centred.T @ centred / len(u)
        bits = u.shape[1]
        off = ~torch.eye(bits, dtype=torch.bool, device=u.device)
        return cov[off].pow(2).sum() / max(bits * (bits - 1), 1)


class DFHLoss(HashLoss):
    """DFH: metric learning + sign control + code characteristics (+ quantization).

        L = w_metric · HammingProxyLoss(u, y)
          + w_sign   · SignControlLoss(u, sgn W_y)
          + w_bal    · BitBalanceLoss(u)
          + w_dec    · BitDecorrelationLoss(u)
          + quantization(u)                                  (if given)

    Terms are named ``"metric"``, ``"sign"``, ``"balance"``,
    ``"decorrelation"`` and ``"quant"``; a weight of 0 drops its term (for the
    ablation metric → + sign → + balance/decorrelation). With
    ``metric_weight=0`` the proxies get no gradient and stay at the hash
    centres: the sign term alone is then DPN with CSQ's centres.

    No quantization term by default: the sign hinge already pushes |u| ≥ m
    with the right sign. ``quantization`` is any callable mapping u (N, K) to
    a weighted scalar tensor, e.g. ``lambda u: 0.1 * (u.abs() - 1).pow(2).mean()``;
    an ``nn.Module`` is registered (saved and moved with the loss).

    Network: tanh outputs (``METHOD_DEFAULTS["dfh"] = {"activation": "tanh"}``):
    the sign margin and the balance/decorrelation terms assume u ∈ [−1, 1].

    Args:
        bits / num_classes: K and the number of training identities.
        metric_weight / sign_weight / balance_weight / decorrelation_weight: ≥ 0
            (defaults 1, 1, 1, 0.1; Chapter 3 explores margin and sign weight).
        margin_bits / scale: :class:`HammingProxyLoss`'s Hamming margin and
            scale (None: d_min / 2 and the derived scale).
        margin_fraction: the margin as a fraction of the proxies' minimum
            distance d_min instead (``margin_bits = margin_fraction · d_min``,
            in [0, 1)), so one setting serves every code length.
        learn_proxies: :class:`HammingProxyLoss`'s option (default False).
        sign_margin: :class:`SignControlLoss`'s m (Chapter 3 tunes 0.8 vs 0.95).
        quantization: optional extra term, ``quantization(u) -> scalar``.
        seed: seed of the initial proxies (hash centres).
    """

    def __init__(self, bits: int, num_classes: int, metric_weight: float = 1.0,
                 sign_weight: float = 1.0, balance_weight: float = 1.0,
                 decorrelation_weight: float = 0.1, margin_bits: float | None = None,
                 scale: float | None = None, sign_margin: float = 0.8,
                 quantization: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 seed: int = 0, margin_fraction: float | None = None,
                 learn_proxies: bool = False):
        super().__init__(bits=bits, num_classes=num_classes)
        if margin_fraction is not None:
            if margin_bits is not None:
                raise ValueError("give margin_bits or margin_fraction, not both")
            if not 0 <= margin_fraction < 1:
                raise ValueError(f"margin_fraction is a fraction of the proxies' minimum "
                                 f"distance, in [0, 1); got {margin_fraction!r}")
        self.weights = {name: non_negative(f"{name}_weight", value) for name, value in (
            ("metric", metric_weight), ("sign", sign_weight), ("balance", balance_weight),
            ("decorrelation", decorrelation_weight))}
        if quantization is not None and not callable(quantization):
            raise ValueError(f"quantization must be None or a callable u -> scalar tensor; "
                             f"got {type(quantization).__name__}")
        if not any(self.weights.values()) and quantization is None:
            raise ValueError("every DFH term has weight 0 and no quantization is given; "
                             "set at least one weight > 0")
        if margin_fraction is not None:
            d_min = HammingProxyLoss(bits, num_classes, 0.0, 1.0, seed).min_distance
            margin_bits = margin_fraction * d_min
        self.metric = HammingProxyLoss(bits, num_classes, margin_bits, scale, seed,
                                       learn_proxies)
        self.sign = SignControlLoss(sign_margin)
        self.balance = BitBalanceLoss()
        self.decorrelation = BitDecorrelationLoss()
        self.quantization = quantization

    def compute(self, u, labels):
        if u.abs().max() > 1:
            raise ValueError(f"DFH needs u in [-1, 1]; got max |u| = {float(u.abs().max()):.3g}"
                             f" — build the model with activation='tanh' "
                             f"(METHOD_DEFAULTS['dfh'])")
        w, terms = self.weights, {}
        if w["metric"]:
            terms["metric"] = w["metric"] * self.metric(u, labels)
        if w["sign"]:
            terms["sign"] = w["sign"] * self.sign(u, self.metric.target_codes(labels))
        if w["balance"]:
            terms["balance"] = w["balance"] * self.balance(u)
        if w["decorrelation"]:
            terms["decorrelation"] = w["decorrelation"] * self.decorrelation(u)
        if self.quantization is not None:
            terms["quant"] = self._quantization_term(u)
        return terms

    def _quantization_term(self, u: torch.Tensor) -> torch.Tensor:
        value = self.quantization(u)
        if not isinstance(value, torch.Tensor) or value.ndim != 0:
            got = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            raise ValueError(f"quantization(u) must return a scalar tensor; got {got} — "
                             f"reduce it, e.g. with .mean()")
        return value

    def extra_repr(self) -> str:
        weights = ", ".join(f"{k}_weight={v:g}" for k, v in self.weights.items())
        return f"bits={self.bits}, num_classes={self.num_classes}, {weights}"


class DFHQLoss(DFHLoss):
    """DFH on the codes of a quantizer, plus its penalty as the term ``"quant"``.

        u, P = quantizer(z);   L = DFHLoss terms on u  +  P

    The network gives raw outputs z (``METHOD_DEFAULTS["dfhq"] =
    {"activation": None}``); all schemes' codes lie in [−1, 1], as the DFH
    terms need. ``"quant"`` is present when the quantizer's weight is > 0.
    ``on_epoch_start`` is forwarded to the quantizer (HashNet's β).

    Args:
        quantization: a name in :data:`~dfh_lib.nn.quantizers.QUANTIZERS` (default ``"quadratic"``).
        quantization_weight: the penalty's weight; None = the scheme's default.
        quantizer_kwargs: extra arguments of the quantizer (e.g. ``alpha``).
        **dfh_kwargs: every :class:`DFHLoss` argument.
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
