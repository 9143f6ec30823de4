"""The seven deep-hashing baseline losses, one small module each.

Contract with the training loop (:mod:`dfh_lib.train`): a loss is a
:class:`HashLoss`; ``loss(u, labels)`` returns ``(loss, terms)`` where
``loss`` is a scalar tensor to back-propagate and ``terms`` maps the name of
each *weighted* term (``"pairwise"``, ``"quant"``, ...) to its detached value,
so they can be logged and named when a loss goes NaN. ``loss == sum(terms)``.

Shapes: ``u`` (N, bits) relaxed codes (tanh outputs in [-1, 1], or raw
outputs ``z`` for the methods whose :data:`METHOD_DEFAULTS` say
``activation=None``); ``labels`` (N,) int64 identity indices in 0..C-1.
Pairs are formed within the batch (i != j), as in DeepHash-pytorch's
batch-only variants; identity-balanced batches (e.g. PML's ``MPerClassSampler``)
give the pairwise losses positive pairs to learn from.

A loss may own parameters (a classifier, class centres): optimise
``loss.parameters()`` with the model's. ``on_epoch_start(epoch, num_epochs)``
is called by the loop each epoch (HashNet's β schedule uses it).

Quantization terms are private element-wise helpers at the top, easy to move
into a module of their own. ``sgn`` maps 0 to +1 everywhere.
"""
from __future__ import annotations

import abc
import inspect
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from scipy.linalg import hadamard
from torch import nn

__all__ = [
    "HashLoss", "DPSHLoss", "DSHLoss", "HashNetLoss", "GreedyHashLoss", "CSQLoss",
    "DDHLoss", "DCDHLoss", "SoftmaxLoss", "LOSSES", "METHOD_DEFAULTS", "build_loss", "hash_centers",
]


# ----------------------------------------------------------------------------
# quantization pieces (element-wise; callers reduce)
# ----------------------------------------------------------------------------

def _sign(x: torch.Tensor) -> torch.Tensor:
    """sgn with sgn(0) = +1, so every code bit is ±1."""
    return torch.where(x >= 0, 1.0, -1.0).to(x.dtype)


def _sign_ste(z: torch.Tensor) -> torch.Tensor:
    """sgn(z) forward, identity backward (straight-through estimator)."""
    return z + (_sign(z) - z).detach()


def _quadratic_quantization(u: torch.Tensor) -> torch.Tensor:
    """(|u| - 1)^2 = (u - sgn u)^2: DPSH's ‖u - b‖² and CSQ's term."""
    return (u.abs() - 1).pow(2)


def _l1_quantization(u: torch.Tensor) -> torch.Tensor:
    """| |u| - 1 |: DSH's and DDH's term."""
    return (u.abs() - 1).abs()


def _cubic_quantization(z: torch.Tensor) -> torch.Tensor:
    """| |z| - 1 |^3: GreedyHash's penalty, flat near ±1."""
    return (z.abs() - 1).abs().pow(3)


# ----------------------------------------------------------------------------
# shared checks and pair helpers
# ----------------------------------------------------------------------------

def _positive_int(name: str, value) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive int; got {value!r}")
    return value


def _non_negative(name: str, value) -> float:
    if not isinstance(value, (int, float)) or not value >= 0:
        raise ValueError(f"{name} must be a number >= 0; got {value!r}")
    return float(value)


def _check_inputs(u, labels, bits: int | None, num_classes: int | None) -> None:
    """ValueErrors that name the argument, the expectation, what came and the fix."""
    if not isinstance(u, torch.Tensor) or u.ndim != 2:
        got = tuple(u.shape) if isinstance(u, torch.Tensor) else type(u).__name__
        raise ValueError(f"u must have shape (N, bits); got {got} — did you forget "
                         f".flatten(1) before the hash head?")
    if not u.is_floating_point():
        raise ValueError(f"u must be float relaxed codes; got {u.dtype}")
    if bits is not None and u.shape[1] != bits:
        raise ValueError(f"u has {u.shape[1]} bits but the loss was built with bits={bits}; "
                         f"build the model and the loss with the same bits")
    if not isinstance(labels, torch.Tensor) or labels.shape != (len(u),):
        got = tuple(labels.shape) if isinstance(labels, torch.Tensor) else type(labels).__name__
        raise ValueError(f"labels must have shape (N,) = ({len(u)},) to match u; got {got}")
    if labels.dtype == torch.bool or labels.is_floating_point() or labels.is_complex():
        raise ValueError(f"labels must be int64 identity indices; got {labels.dtype} — "
                         f"use labels.long() (one-hot or attribute matrices are not supported)")
    if labels.device != u.device:
        raise ValueError(f"labels are on {labels.device} but u is on {u.device}; "
                         f"move them with labels.to(u.device)")
    if not torch.isfinite(u).all():
        bad = int((~torch.isfinite(u)).sum())
        raise ValueError(f"u contains {bad} NaN/inf values; the network diverged or its "
                         f"input has NaN — lower the learning rate or check the images")
    if num_classes is not None and len(labels) \
            and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"labels must lie in 0..{num_classes - 1} (num_classes={num_classes}); "
                         f"got {int(labels.min())}..{int(labels.max())} — build the loss with "
                         f"the training set's number of identities")


def _pair_masks(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(similar, dissimilar) boolean (N, N) masks over pairs i != j."""
    same = labels[:, None] == labels[None, :]
    other = ~torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    return same & other, ~same


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` where ``mask``; 0 (with a gradient path) when empty."""
    return (values * mask).sum() / mask.sum().clamp(min=1)


# ----------------------------------------------------------------------------
# base class
# ----------------------------------------------------------------------------

class HashLoss(nn.Module, abc.ABC):
    """Base class: validates ``(u, labels)`` once and sums the weighted terms.

    Subclasses implement ``compute(u, labels, **kwargs) -> dict[str, Tensor]``
    returning each weighted scalar term. ``needs_index = True`` asks the loop
    to pass ``index=`` (N,) training-sample indices (no loss here needs it).
    """

    needs_index = False

    def __init__(self, bits: int | None = None, num_classes: int | None = None):
        super().__init__()
        self.bits = None if bits is None else _positive_int("bits", bits)
        self.num_classes = (None if num_classes is None
                            else _positive_int("num_classes", num_classes))

    def forward(self, u: torch.Tensor, labels: torch.Tensor, **kwargs
                ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        _check_inputs(u, labels, self.bits, self.num_classes)
        terms = self.compute(u, labels.long(), **kwargs)
        loss = torch.stack(list(terms.values())).sum()
        return loss, {name: value.detach() for name, value in terms.items()}

    @abc.abstractmethod
    def compute(self, u: torch.Tensor, labels: torch.Tensor, **kwargs) -> dict[str, torch.Tensor]:
        """The weighted terms of the loss for a validated batch."""

    def on_epoch_start(self, epoch: int, num_epochs: int) -> None:
        """Hook the loop calls before each epoch; most losses keep no schedule."""

    def extra_repr(self) -> str:
        return f"bits={self.bits}, num_classes={self.num_classes}"


# ----------------------------------------------------------------------------
# pairwise losses
# ----------------------------------------------------------------------------

class DPSHLoss(HashLoss):
    """DPSH: pairwise likelihood + quadratic quantization.

    Li, Wang, Kang, "Feature Learning based Deep Supervised Hashing with
    Pairwise Labels", IJCAI 2016.

        θ_ij = ½ u_iᵀu_j,   s_ij = [y_i = y_j]
        L = mean_{i≠j} [log(1 + e^θ_ij) − s_ij θ_ij] + η · mean_{i,k} (u_ik − sgn u_ik)²

    ``log(1 + e^θ)`` is ``softplus`` (stable for large |θ|). Normalisation as
    DeepHash-pytorch (mean over pairs, mean over entries), η = 0.1.
    Network: raw outputs (the paper's u = Wᵀφ(x) + v, no tanh).
    """

    def __init__(self, eta: float = 0.1):
        super().__init__()
        self.eta = _non_negative("eta", eta)

    def compute(self, u, labels):
        similar, dissimilar = _pair_masks(labels)
        theta = 0.5 * u @ u.T
        nll = F.softplus(theta) - similar * theta
        return {"pairwise": _masked_mean(nll, similar | dissimilar),
                "quant": self.eta * _quadratic_quantization(u).mean()}


class DSHLoss(HashLoss):
    """DSH: contrastive loss on squared distances + L1 pull to ±1.

    Liu, Wang, Shan, Chen, "Deep Supervised Hashing for Fast Image Retrieval",
    CVPR 2016.

        D_ij = ‖u_i − u_j‖²,   m = 2K
        L = mean_{i≠j} [½ s_ij D_ij + ½ (1 − s_ij) max(m − D_ij, 0)]
            + α · mean_i Σ_k | |u_ik| − 1 |,   α = 0.01

    Network: raw outputs (the paper's regulariser, not a tanh, keeps u near ±1).
    Plain torch: PML's ContrastiveLoss averages positive and negative pairs
    separately (and non-zero terms only by default), which is not DSH's sum.
    """

    def __init__(self, bits: int, alpha: float = 0.01, margin: float | None = None):
        super().__init__(bits=bits)
        self.alpha = _non_negative("alpha", alpha)
        self.margin = 2.0 * bits if margin is None else _non_negative("margin", margin)

    def compute(self, u, labels):
        similar, dissimilar = _pair_masks(labels)
        dist = (u[:, None, :] - u[None, :, :]).pow(2).sum(-1)
        pair = 0.5 * similar * dist + 0.5 * dissimilar * (self.margin - dist).clamp(min=0)
        return {"pairwise": _masked_mean(pair, similar | dissimilar),
                "quant": self.alpha * _l1_quantization(u).sum(1).mean()}


class HashNetLoss(HashLoss):
    """HashNet: weighted pairwise cross-entropy on h = tanh(βz), β growing.

    Cao, Long, Wang, Yu, "HashNet: Deep Learning to Hash by Continuation",
    ICCV 2017.

        h = tanh(β z),   θ_ij = α h_iᵀh_j,   α = 10 / K
        L = Σ_{i≠j} w_ij [log(1 + e^θ_ij) − s_ij θ_ij] / Σ w_ij
        w_ij = |S| / |S₁| (similar), |S| / |S₀| (dissimilar)

    which equals mean_similar + mean_dissimilar of the pair terms. Continuation:
    the authors' code sets β = (1 + 0.005 t)^0.5 at iteration t of 10 000;
    ``on_epoch_start`` maps the run onto that range, t = 10 000 · epoch /
    num_epochs, so β goes from 1 to ≈ 7.1 whatever the run length.
    Network: raw outputs z (``activation=None``); codes are sgn z.
    """

    def __init__(self, bits: int, alpha: float | None = None, gamma: float = 0.005,
                 power: float = 0.5, schedule_iterations: int = 10_000):
        super().__init__(bits=bits)
        self.alpha = 10.0 / bits if alpha is None else _non_negative("alpha", alpha)
        self.gamma, self.power = _non_negative("gamma", gamma), _non_negative("power", power)
        self.schedule_iterations = _positive_int("schedule_iterations", schedule_iterations)
        self.beta = 1.0

    def on_epoch_start(self, epoch: int, num_epochs: int) -> None:
        if not 0 <= epoch < num_epochs:
            raise ValueError(f"need 0 <= epoch < num_epochs; got epoch={epoch}, "
                             f"num_epochs={num_epochs}")
        t = self.schedule_iterations * epoch / num_epochs
        self.beta = (1 + self.gamma * t) ** self.power

    def compute(self, u, labels):
        h = torch.tanh(self.beta * u)
        similar, dissimilar = _pair_masks(labels)
        theta = self.alpha * h @ h.T
        nll = F.softplus(theta) - similar * theta
        return {"pairwise": _masked_mean(nll, similar) + _masked_mean(nll, dissimilar)}

    def extra_repr(self) -> str:
        return f"bits={self.bits}, alpha={self.alpha:.4g}, beta={self.beta:.4g}"


# ----------------------------------------------------------------------------
# classification- and centre-based losses
# ----------------------------------------------------------------------------

class GreedyHashLoss(HashLoss):
    """GreedyHash: classify the binary codes, sign with a straight-through gradient.

    Su, Zhang, Han, Tian, "Greedy Hash: Towards Fast Optimization for Accurate
    Hash Coding in CNN", NeurIPS 2018.

        b = sgn(z) forward,  ∂L/∂z := ∂L/∂b backward
        L = CE(W b, y) + α · mean_{i,k} | |z_ik| − 1 |³,   α = 0.1

    ``W`` (num_classes, K) has no bias, as in the authors' CIFAR code, whose
    penalty is ``0.1 * mean(...)`` over all N·K entries (α = 1 for ImageNet).
    Network: raw outputs z (``activation=None``).
    """

    def __init__(self, bits: int, num_classes: int, alpha: float = 0.1):
        super().__init__(bits=bits, num_classes=num_classes)
        self.alpha = _non_negative("alpha", alpha)
        self.classifier = nn.Linear(bits, num_classes, bias=False)

    def compute(self, u, labels):
        logits = self.classifier(_sign_ste(u))
        return {"classify": F.cross_entropy(logits, labels),
                "quant": self.alpha * _cubic_quantization(u).mean()}


def _hamming_separation(centers: torch.Tensor) -> tuple[float, float]:
    """(min, mean) Hamming distance between distinct rows of a ±1 matrix."""
    if len(centers) < 2:
        return float(centers.shape[1]), float(centers.shape[1])
    num, bits = centers.shape
    dist = (bits - centers @ centers.T) / 2  # zero diagonal
    mean = float(dist.sum()) / (num * (num - 1))
    return float(dist.fill_diagonal_(bits).min()), mean


def _balanced_random_centers(num_classes: int, bits: int, num_trials: int,
                             seed: int) -> torch.Tensor:
    """Best of ``num_trials`` draws (by min, then mean distance) of rows with K/2 bits at −1."""
    generator = torch.Generator().manual_seed(seed)
    best, best_key = None, None
    for _ in range(num_trials):
        flip = torch.rand(num_classes, bits, generator=generator).argsort(dim=1)[:, : bits // 2]
        centers = torch.ones(num_classes, bits).scatter_(1, flip, -1.0)
        key = _hamming_separation(centers)
        if best_key is None or key > best_key:
            best, best_key = centers, key
    return best


def hash_centers(num_classes: int, bits: int, num_trials: int = 50, seed: int = 0) -> torch.Tensor:
    """CSQ hash centres: (num_classes, bits) float in {−1, +1}, far apart in Hamming space.

    Candidates: rows of [H; −H] for the Hadamard matrix H of size
    n = 2^ceil(log2 K), truncated to K columns (possible when C <= 2n; exact
    Hadamard rows when K is a power of two), and the best of ``num_trials``
    balanced random draws (K/2 bits at −1 per row, as the authors' generator;
    the paper describes Bernoulli(0.5) bits). The candidate with the larger
    minimum pairwise Hamming distance wins, Hadamard on a tie. Measured min distances
    (truncated Hadamard vs best of 100 random) at C = 2K: K=12: 4 vs 2,
    K=24: 8 vs 6, K=36: 4 vs 10, K=48: 16 vs 14 — truncation is kept except at 36.
    Warns when two centres coincide (many classes, few bits).
    """
    _positive_int("num_classes", num_classes)
    _positive_int("bits", bits)
    candidates = []
    n = 1 << (bits - 1).bit_length()
    if num_classes <= 2 * n:
        h = hadamard(n)
        rows = np.concatenate([h, -h])[:num_classes, :bits]
        candidates.append(torch.from_numpy(rows).float())
    num_trials = _positive_int("num_trials", num_trials)
    candidates.append(_balanced_random_centers(num_classes, bits, num_trials, seed))
    # the larger minimum distance wins; on a tie the first (Hadamard) does
    centers = max(candidates, key=lambda c: _hamming_separation(c)[0])
    min_dist, _ = _hamming_separation(centers)
    if min_dist == 0:
        warnings.warn(f"{num_classes} hash centres in {bits} bits: some coincide (min Hamming "
                      f"distance 0), so their classes cannot be told apart — use more bits",
                      RuntimeWarning, stacklevel=2)
    return centers


class CSQLoss(HashLoss):
    """CSQ: pull each code to its class's hash centre, + quadratic quantization.

    Yuan, Wang, Zhang, Tay, Xie, Feng, "Central Similarity Quantization for
    Efficient Image and Video Retrieval", CVPR 2020.

        L = BCE((u + 1)/2, (c_y + 1)/2) + λ · mean_{i,k} (|u_ik| − 1)²,   λ = 1e-4

    with BCE averaged over the N·K entries and centres from :func:`hash_centers`
    (a buffer: saved with the loss, moved with ``.to``). Network: tanh outputs
    (``u`` must lie in [−1, 1]).
    """

    def __init__(self, bits: int, num_classes: int, lam: float = 1e-4, seed: int = 0):
        super().__init__(bits=bits, num_classes=num_classes)
        self.lam = _non_negative("lam", lam)
        self.register_buffer("centers", hash_centers(num_classes, bits, seed=seed))

    def compute(self, u, labels):
        if u.abs().max() > 1:
            raise ValueError(f"CSQ needs u in [-1, 1]; got max |u| = {float(u.abs().max()):.3g}"
                             f" — build the model with activation='tanh' "
                             f"(METHOD_DEFAULTS['csq'])")
        target = (self.centers[labels] + 1) / 2
        return {"center": F.binary_cross_entropy((u + 1) / 2, target),
                "quant": self.lam * _quadratic_quantization(u).mean()}


class DDHLoss(HashLoss):
    """DDH: softmax classifier over the codes + L1 pull to ±1.

    Lin, Li, Tang, "Discriminative Deep Hashing for Scalable Face Image
    Retrieval", IJCAI 2017 (weights from the released Keras code).

        L = CE(W u + c, y) + α · mean_{i,k} | |u_ik| − 1 |,   α = 0.01

    The classifier ``Linear(K, num_classes)`` belongs to the loss.
    Network: :class:`~dfh_lib.models.DDHNet` with tanh outputs.
    """

    def __init__(self, bits: int, num_classes: int, alpha: float = 0.01):
        super().__init__(bits=bits, num_classes=num_classes)
        self.alpha = _non_negative("alpha", alpha)
        self.classifier = nn.Linear(bits, num_classes)

    def compute(self, u, labels):
        return {"classify": F.cross_entropy(self.classifier(u), labels),
                "quant": self.alpha * _l1_quantization(u).mean()}


class SoftmaxLoss(HashLoss):
    """Plain identity classification: ``L = CE(W u + c, y)``, no quantization.

    Not a hashing method: it trains the "plain classification network" whose
    real-valued outputs the non-deep baselines (LSH, PCA-ITQ) then hash.
    The classifier ``Linear(K, num_classes)`` belongs to the loss; ``K`` is the
    feature dimension (e.g. 128). Network: raw outputs (no tanh).
    """

    def __init__(self, bits: int, num_classes: int):
        super().__init__(bits=bits, num_classes=num_classes)
        self.classifier = nn.Linear(bits, num_classes)

    def compute(self, u, labels):
        return {"classify": F.cross_entropy(self.classifier(u), labels)}


class DCDHLoss(HashLoss):
    """DCDH: Gaussian class-centre likelihood, centre separation, code regression.

    Zhang, Zhe, Yan, "Deep Center-Based Dual-Constrained Hashing for
    Discriminative Face Image Retrieval", Pattern Recognition 117, 2021
    (weights from the released PyTorch code).

        p(c | u_i) = softmax_c(−σ/2 ‖u_i − m_c‖²),   σ = 0.25
        L = −mean_i log p(y_i | u_i)
            + β · mean_{c≠c'} log(1 + exp(m_cᵀm_c' / 2))           β = 0.1
            + η · ‖u − B‖²_F / N,   B = sgn(Y W + η u)               η = 0.01
        W = (YᵀY + λI)⁻¹ Yᵀ sgn(u)                                   λ = 1

    ``m`` (num_classes, K) are learnable centres (randn init). Mini-batch
    B update, exactly as the released code: Y is the batch's one-hot labels, so
    YᵀY is diagonal and W[c] is the sum of sgn(u_j) over the batch's class-c
    samples / (n_c + λ); B is a per-class majority vote of bit signs, ties
    broken by η u_i, and is held constant (no gradient). The released code's
    separation term also sums the diagonal, a constant log 2 / (C − 1) left
    out here. No memory of codes,
    so ``needs_index`` stays False. Network: raw outputs (the released net ends
    in Linear -> BN, no tanh).
    """

    def __init__(self, bits: int, num_classes: int, sigma: float = 0.25, beta: float = 0.1,
                 eta: float = 0.01, ridge: float = 1.0):
        super().__init__(bits=bits, num_classes=num_classes)
        self.sigma, self.beta = _non_negative("sigma", sigma), _non_negative("beta", beta)
        self.eta, self.ridge = _non_negative("eta", eta), _non_negative("ridge", ridge)
        self.centers = nn.Parameter(torch.randn(num_classes, bits))

    def _codes(self, u, labels):
        """B = sgn(Y W + η u) for the batch (no gradient)."""
        with torch.no_grad():
            votes = u.new_zeros(self.centers.shape).index_add_(0, labels, _sign(u))
            counts = torch.bincount(labels, minlength=len(self.centers)).to(u.dtype)
            weights = votes / (counts + self.ridge)[:, None]
            return _sign(weights[labels] + self.eta * u)

    def compute(self, u, labels):
        centers = self.centers
        dist = (u.pow(2).sum(1, keepdim=True) - 2 * u @ centers.T
                + centers.pow(2).sum(1)).clamp(min=0)
        theta = 0.5 * centers @ centers.T
        off = ~torch.eye(len(centers), dtype=torch.bool, device=u.device)
        codes = self._codes(u, labels)
        return {"center": F.cross_entropy(-0.5 * self.sigma * dist, labels),
                "separation": self.beta * _masked_mean(F.softplus(theta), off),
                "regression": self.eta * (u - codes).pow(2).sum() / len(u)}


# ----------------------------------------------------------------------------
# registry
# ----------------------------------------------------------------------------

LOSSES = {"dpsh": DPSHLoss, "dsh": DSHLoss, "hashnet": HashNetLoss, "greedyhash": GreedyHashLoss,
          "csq": CSQLoss, "ddh": DDHLoss, "dcdh": DCDHLoss, "softmax": SoftmaxLoss}

#: What each method needs from the network, passed to ``build_model``:
#: ``activation`` always (None = raw outputs z, because the method squashes or
#: regularises them itself or its paper uses none), ``network`` where the
#: method prescribes one (DDH's own architecture).
METHOD_DEFAULTS = {
    "dpsh": {"activation": None},       # paper: linear outputs + quantization term
    "dsh": {"activation": None},        # paper: linear outputs + L1 regulariser
    "hashnet": {"activation": None},    # the loss applies tanh(βz)
    "greedyhash": {"activation": None},  # the loss applies sgn (straight-through)
    "csq": {"activation": "tanh"},      # BCE needs u in [-1, 1]
    "ddh": {"network": "ddh", "activation": "tanh"},
    "dcdh": {"activation": None},       # released net: Linear -> BN, no tanh
    "softmax": {"activation": None},    # real-valued features for LSH / PCA-ITQ
}


def build_loss(name: str, bits: int, num_classes: int, **kwargs) -> HashLoss:
    """A baseline loss by name; ``bits``/``num_classes`` go to it where it takes them.

    >>> build_loss("dsh", bits=12, num_classes=10).margin
    24.0
    """
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; choose one of {tuple(LOSSES)}")
    cls = LOSSES[name]
    accepted = inspect.signature(cls).parameters
    sizes = {k: v for k, v in (("bits", bits), ("num_classes", num_classes)) if k in accepted}
    return cls(**sizes, **kwargs)


from . import dfh_loss  # noqa: E402,F401  (registers "dfh"; imported last: it imports HashLoss)
