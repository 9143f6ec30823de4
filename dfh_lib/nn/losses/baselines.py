"""The seven deep-hashing baseline losses (and the softmax feature network's),
one small class each, in the :class:`~dfh_lib.nn.losses.base.HashLoss` contract.

Pairs are formed within the batch (i != j), as in DeepHash-pytorch's
batch-only variants; identity-balanced batches give the pairwise losses
positive pairs to learn from. Quantization terms come from
:mod:`dfh_lib.nn.quantizers` (one home for every penalty); ``sgn`` maps 0 to +1.
"""
from __future__ import annotations

import functools

import warnings

import numpy as np
import torch
import torch.nn.functional as F
from scipy.linalg import hadamard
from torch import nn

from ...core.checks import non_negative, positive_int
from ..quantizers import cubic_penalty, hashnet_beta, l1_penalty, l2_penalty, sign, sign_ste
from .base import HashLoss, masked_mean, pair_masks

__all__ = ["DPSHLoss", "DSHLoss", "HashNetLoss", "GreedyHashLoss", "CSQLoss", "DDHLoss",
           "DCDHLoss", "SoftmaxLoss", "hash_centers", "separated_codes"]


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
        self.eta = non_negative("eta", eta)

    def compute(self, u, labels):
        similar, dissimilar = pair_masks(labels)
        theta = 0.5 * u @ u.T
        nll = F.softplus(theta) - similar * theta
        return {"pairwise": masked_mean(nll, similar | dissimilar),
                "quant": self.eta * l2_penalty(u).mean()}


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
        self.alpha = non_negative("alpha", alpha)
        self.margin = 2.0 * bits if margin is None else non_negative("margin", margin)

    def compute(self, u, labels):
        similar, dissimilar = pair_masks(labels)
        dist = (u[:, None, :] - u[None, :, :]).pow(2).sum(-1)
        pair = 0.5 * similar * dist + 0.5 * dissimilar * (self.margin - dist).clamp(min=0)
        return {"pairwise": masked_mean(pair, similar | dissimilar),
                "quant": self.alpha * l1_penalty(u).sum(1).mean()}


class HashNetLoss(HashLoss):
    """HashNet: weighted pairwise cross-entropy on h = tanh(βz), β growing.

    Cao, Long, Wang, Yu, "HashNet: Deep Learning to Hash by Continuation",
    ICCV 2017.

        h = tanh(β z),   θ_ij = α h_iᵀh_j,   α = 10 / K
        L = Σ_{i≠j} w_ij [log(1 + e^θ_ij) − s_ij θ_ij] / Σ w_ij
        w_ij = |S| / |S₁| (similar), |S| / |S₀| (dissimilar)

    which equals mean_similar + mean_dissimilar of the pair terms. Continuation:
    :func:`~dfh_lib.nn.quantizers.hashnet_beta` (the authors' β = (1 + 0.005 t)^0.5
    at iteration t of 10 000, mapped onto the run: β from 1 to ≈ 7.1).
    Network: raw outputs z (``activation=None``); codes are sgn z.
    """

    def __init__(self, bits: int, alpha: float | None = None, gamma: float = 0.005,
                 power: float = 0.5, schedule_iterations: int = 10_000):
        super().__init__(bits=bits)
        self.alpha = 10.0 / bits if alpha is None else non_negative("alpha", alpha)
        self.gamma, self.power = non_negative("gamma", gamma), non_negative("power", power)
        self.schedule_iterations = positive_int("schedule_iterations", schedule_iterations)
        self.beta = 1.0

    def on_epoch_start(self, epoch: int, num_epochs: int) -> None:
        self.beta = hashnet_beta(epoch, num_epochs, self.gamma, self.power,
                                 self.schedule_iterations)

    def compute(self, u, labels):
        h = torch.tanh(self.beta * u)
        similar, dissimilar = pair_masks(labels)
        theta = self.alpha * h @ h.T
        nll = F.softplus(theta) - similar * theta
        return {"pairwise": masked_mean(nll, similar) + masked_mean(nll, dissimilar)}

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
        self.alpha = non_negative("alpha", alpha)
        self.classifier = nn.Linear(bits, num_classes, bias=False)

    def compute(self, u, labels):
        logits = self.classifier(sign_ste(u))
        return {"classify": F.cross_entropy(logits, labels),
                "quant": self.alpha * cubic_penalty(u).mean()}


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
    positive_int("num_classes", num_classes)
    positive_int("bits", bits)
    candidates = []
    n = 1 << (bits - 1).bit_length()
    if num_classes <= 2 * n:
        h = hadamard(n)
        rows = np.concatenate([h, -h])[:num_classes, :bits]
        candidates.append(torch.from_numpy(rows).float())
    num_trials = positive_int("num_trials", num_trials)
    candidates.append(_balanced_random_centers(num_classes, bits, num_trials, seed))
    # the larger minimum distance wins; on a tie the first (Hadamard) does
    centers = max(candidates, key=lambda c: _hamming_separation(c)[0])
    min_dist, _ = _hamming_separation(centers)
    if min_dist == 0:
        warnings.warn(f"{num_classes} hash centres in {bits} bits: some coincide (min Hamming "
                      f"distance 0), so their classes cannot be told apart — use more bits",
                      RuntimeWarning, stacklevel=2)
    return centers


def separated_codes(num_classes: int, bits: int, seed: int = 0, restarts: int = 8,
                    max_rounds: int = 2000) -> torch.Tensor:
    """(num_classes, bits) ±1 codes whose minimum pairwise Hamming distance is
    as large as a greedy search finds: one target code per identity.

    Start from :func:`hash_centers`, then repeatedly take a code involved in
    a closest pair and flip the bit that most raises its distance to its
    nearest other code (ties: fewest codes at that distance), until no flip
    helps; best of ``restarts`` (the later ones from random balanced codes).
    For 62 identities it reaches a minimum distance of 4, 8, 14 and 22 bits
    at K = 12, 24, 36 and 48 (the largest possible at 12 and 24 is 4 and 10:
    A(12, 5) = 32 and A(25, 12) = 52 codes, both < 62), where hash centres
    give 2, 8, 10 and 16. Deterministic for a seed, and cached.
    """
    return _separated_codes(num_classes, bits, seed, restarts, max_rounds).clone()


@functools.lru_cache(maxsize=64)
def _separated_codes(num_classes: int, bits: int, seed: int, restarts: int,
                     max_rounds: int) -> torch.Tensor:
    positive_int("num_classes", num_classes)
    positive_int("bits", bits)
    generator = torch.Generator().manual_seed(seed)
    best, best_key = None, None
    for restart in range(max(1, restarts)):
        codes = (hash_centers(num_classes, bits, seed=seed) if restart == 0
                 else _balanced_random_centers(num_classes, bits, 1, seed + restart))
        codes = _improve_separation(codes.clone(), max_rounds, generator)
        dist = (bits - codes @ codes.T) / 2
        dist.fill_diagonal_(bits + 1)
        key = (float(dist.min()), -int((dist == dist.min()).sum()))
        if best_key is None or key > best_key:
            best, best_key = codes, key
    return best


def _improve_separation(codes: torch.Tensor, max_rounds: int,
                        generator: torch.Generator) -> torch.Tensor:
    """Greedy single-bit flips on the codes of closest pairs (see separated_codes)."""
    num, bits = codes.shape
    if num < 2:
        return codes
    stalled = 0
    for _ in range(max_rounds):
        dist = (bits - codes @ codes.T) / 2
        dist.fill_diagonal_(bits + 1)
        closest = torch.nonzero(dist == dist.min())[:, 0].unique()
        i = int(closest[torch.randint(len(closest), (1,), generator=generator)])
        row = dist[i]
        own = (float(row.min()), -int((row == row.min()).sum()))
        # distance to every other code after flipping each bit of code i: (C, K)
        after = row[:, None] + torch.where(codes == codes[i], 1.0, -1.0)
        after[i] = bits + 1
        low = after.min(dim=0).values
        ties = (after == low).sum(dim=0)
        score = low * (num + 1) - ties  # lexicographic: higher minimum, then fewer ties
        k = int(score.argmax())
        if (float(low[k]), -int(ties[k])) > own:
            codes[i, k] = -codes[i, k]
            stalled = 0
        else:
            stalled += 1
            if stalled > 4 * len(closest) + 10:
                break
    return codes


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
        self.lam = non_negative("lam", lam)
        self.register_buffer("centers", hash_centers(num_classes, bits, seed=seed))

    def compute(self, u, labels):
        if u.abs().max() > 1:
            raise ValueError(f"CSQ needs u in [-1, 1]; got max |u| = {float(u.abs().max()):.3g}"
                             f" — build the model with activation='tanh' "
                             f"(METHOD_DEFAULTS['csq'])")
        target = (self.centers[labels] + 1) / 2
        return {"center": F.binary_cross_entropy((u + 1) / 2, target),
                "quant": self.lam * l2_penalty(u).mean()}


class DDHLoss(HashLoss):
    """DDH: softmax classifier over the codes + L1 pull to ±1.

    Lin, Li, Tang, "Discriminative Deep Hashing for Scalable Face Image
    Retrieval", IJCAI 2017 (weights from the released Keras code).

        L = CE(W u + c, y) + α · mean_{i,k} | |u_ik| − 1 |,   α = 0.01

    The classifier ``Linear(K, num_classes)`` belongs to the loss.
    Network: :class:`~dfh_lib.nn.models.DDHNet` with tanh outputs.
    """

    def __init__(self, bits: int, num_classes: int, alpha: float = 0.01):
        super().__init__(bits=bits, num_classes=num_classes)
        self.alpha = non_negative("alpha", alpha)
        self.classifier = nn.Linear(bits, num_classes)

    def compute(self, u, labels):
        return {"classify": F.cross_entropy(self.classifier(u), labels),
                "quant": self.alpha * l1_penalty(u).mean()}


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
        self.sigma, self.beta = non_negative("sigma", sigma), non_negative("beta", beta)
        self.eta, self.ridge = non_negative("eta", eta), non_negative("ridge", ridge)
        self.centers = nn.Parameter(torch.randn(num_classes, bits))

    def _codes(self, u, labels):
        """B = sgn(Y W + η u) for the batch (no gradient)."""
        with torch.no_grad():
            votes = u.new_zeros(self.centers.shape).index_add_(0, labels, sign(u))
            counts = torch.bincount(labels, minlength=len(self.centers)).to(u.dtype)
            weights = votes / (counts + self.ridge)[:, None]
            return sign(weights[labels] + self.eta * u)

    def compute(self, u, labels):
        centers = self.centers
        dist = (u.pow(2).sum(1, keepdim=True) - 2 * u @ centers.T
                + centers.pow(2).sum(1)).clamp(min=0)
        theta = 0.5 * centers @ centers.T
        off = ~torch.eye(len(centers), dtype=torch.bool, device=u.device)
        codes = self._codes(u, labels)
        return {"center": F.cross_entropy(-0.5 * self.sigma * dist, labels),
                "separation": self.beta * masked_mean(F.softplus(theta), off),
                "regression": self.eta * (u - codes).pow(2).sum() / len(u)}
