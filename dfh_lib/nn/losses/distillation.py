"""Distillation losses and the multi-head hash loss (Chapter 6).

* :class:`SimilarityDistillLoss` (relational: the batch's cosine-similarity
  matrix) and :class:`SoftTargetLoss` (Hinton's soft targets), from a teacher
  to a head's codes;
* :class:`MultiHeadLoss` (one registered hash loss per head of a
  :class:`~dfh_lib.nn.multihead.MultiHeadHashNet`) and
  :class:`DistillationLoss` (+ the two KD terms), in the
  :class:`~dfh_lib.nn.losses.base.HashLoss` contract.

**Teacher outputs are precomputed**: once per stage, the frozen teacher
embeds every training image; :class:`DistillationLoss` sets
``needs_index = True`` so the loop passes each batch's training-set indices,
and looks the targets up (one teacher pass instead of one per epoch).
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..multihead import FINAL
from .base import HashLoss, check_inputs
from .registry import build_loss

__all__ = ["SimilarityDistillLoss", "SoftTargetLoss", "MultiHeadLoss", "DistillationLoss"]


class SimilarityDistillLoss(nn.Module):
    """Relational distillation: the student's cosine similarities of a batch
    match the teacher's.

        C^s_ij = cos(u_i, u_j),   C^t_ij = cos(t_i, t_j)
        L = mean_{i≠j} (C^s_ij − C^t_ij)²

    Similarity-Preserving KD (Tung & Mori, ICCV 2019) matches batch Gram
    matrices, L = ‖norm(SSᵀ) − norm(TTᵀ)‖²_F / N² with rows L2-normalised
    *after* the product; RKD (Park et al., CVPR 2019) matches normalised
    pairwise distances. Here the vectors are normalised *before* the product
    (a cosine matrix), because that is what Hamming retrieval ranks by: for
    ±1 codes cos(b_i, b_j) = 1 − 2 d_H(b_i, b_j) / K, so matching cosines
    teaches the codes the teacher's Hamming distances directly, whatever K
    and the teacher's dimension D. The diagonal (always 1) is left out.

    Shapes: ``u`` (N, K), ``teacher`` (N, D) -> scalar (0 when N < 2).
    """

    def forward(self, u: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        if u.ndim != 2 or teacher.ndim != 2 or len(u) != len(teacher):
            raise ValueError(f"u (N, K) and teacher (N, D) need the same N; got "
                             f"{tuple(u.shape)} and {tuple(teacher.shape)}")
        s, t = F.normalize(u, dim=1), F.normalize(teacher, dim=1)
        off = ~torch.eye(len(u), dtype=torch.bool, device=u.device)
        return ((s @ s.T - t @ t.T)[off]).pow(2).sum() / max(len(u) * (len(u) - 1), 1)


class SoftTargetLoss(nn.Module):
    """Logit distillation: a classifier on the student's codes learns the
    teacher's softened identity posterior.

        p^t = softmax(z^t / T),   p^s = softmax((W u + c) / T)
        L = T² · mean_i KL(p^t_i ‖ p^s_i)

    Hinton, Vinyals, Dean, "Distilling the Knowledge in a Neural Network",
    2015 (T² keeps the gradient scale independent of T). ``W, c`` (a
    ``Linear(K, C)``) belong to the loss; ``z^t`` are the teacher's logits
    over the same C training identities.

    Why soft targets rather than FitNets' feature regression (Romero et al.,
    ICLR 2015): a K-bit code cannot linearly reproduce a 128-d real
    embedding (that is the information loss distillation is meant to soften),
    and regressing it pulls u away from ±1; the soft targets ask only which
    *identities* a face resembles — C numbers the code must separate anyway —
    and the relational term already carries the embedding's geometry.

    Shapes: ``u`` (N, K), ``teacher_logits`` (N, C) -> scalar.
    """

    def __init__(self, bits: int, num_classes: int, temperature: float = 4.0):
        super().__init__()
        if not isinstance(temperature, (int, float)) or not temperature > 0:
            raise ValueError(f"temperature must be a number > 0; got {temperature!r}")
        self.temperature = float(temperature)
        self.classifier = nn.Linear(bits, num_classes)

    def forward(self, u: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
        logits = self.classifier(u)
        if teacher_logits.shape != logits.shape:
            raise ValueError(f"teacher_logits must be (N, C) = {tuple(logits.shape)}; got "
                             f"{tuple(teacher_logits.shape)} — teacher and student need the "
                             f"same training identities")
        t = self.temperature
        log_s = F.log_softmax(logits / t, dim=1)
        log_t = F.log_softmax(teacher_logits / t, dim=1)
        return t * t * F.kl_div(log_s, log_t, log_target=True, reduction="batchmean")

    def extra_repr(self) -> str:
        return f"temperature={self.temperature:g}"


# ----------------------------------------------------------------------------
# multi-head losses
# ----------------------------------------------------------------------------

class MultiHeadLoss(HashLoss):
    """Σ_h w_h · base_loss_h(u_h): one hash loss per head, weighted.

    ``u`` is :class:`~dfh_lib.nn.multihead.MultiHeadHashNet`'s training output (N, H·K), split into
    the H heads; each head has its own base loss (built by
    :func:`~dfh_lib.nn.losses.build_loss`: its own DFH proxies, classifier...).
    Terms are named ``"<head>/<term>"`` (``"block3/metric"``, ``"final/sign"``)
    and already weighted, so ``loss == sum(terms)``.

    Args:
        base: a registered loss name ("dfh", "dfhq", "dpsh", ...).
        heads: the head names, in the model's ``head_names`` order.
        aux_weight: w_h of every head but ``"final"`` (weight 1).
        base_kwargs: keyword arguments of the base loss.
    """

    def __init__(self, base: str, bits: int, num_classes: int, heads: Sequence[str] = (FINAL,),
                 aux_weight: float = 0.5, base_kwargs: dict | None = None):
        super().__init__(num_classes=num_classes)
        self.bits_per_head = bits
        self.head_names = tuple(heads)
        if FINAL not in self.head_names:
            raise ValueError(f"heads must include {FINAL!r}; got {self.head_names!r}")
        if not isinstance(aux_weight, (int, float)) or not aux_weight >= 0:
            raise ValueError(f"aux_weight must be a number >= 0; got {aux_weight!r}")
        self.head_weights = {h: 1.0 if h == FINAL else float(aux_weight) for h in self.head_names}
        self.base = nn.ModuleDict({h: build_loss(base, bits, num_classes, **(base_kwargs or {}))
                                   for h in self.head_names})

    def split(self, u: torch.Tensor) -> dict[str, torch.Tensor]:
        """(N, H·K) -> ``{head: (N, K)}``."""
        width = len(self.head_names) * self.bits_per_head
        if u.shape[1] != width:
            raise ValueError(f"u must be (N, heads·bits) = (N, {width}) for heads "
                             f"{self.head_names} at {self.bits_per_head} bits; got "
                             f"{tuple(u.shape)} — is the model a MultiHeadHashNet in train mode "
                             f"with the same heads?")
        return dict(zip(self.head_names, u.split(self.bits_per_head, dim=1)))

    def compute(self, u, labels, **kwargs):
        terms = {}
        for head, codes in self.split(u).items():
            if self.head_weights[head]:
                base = self.base[head]
                check_inputs(codes, labels, base.bits, base.num_classes)
                # compute, not forward: forward returns the terms detached
                for name, value in base.compute(codes, labels).items():
                    terms[f"{head}/{name}"] = self.head_weights[head] * value
        return terms

    def on_epoch_start(self, epoch: int, num_epochs: int) -> None:
        for loss in self.base.values():
            loss.on_epoch_start(epoch, num_epochs)

    def extra_repr(self) -> str:
        return f"bits={self.bits_per_head}, heads={self.head_names}, weights={self.head_weights}"


class DistillationLoss(MultiHeadLoss):
    """Multi-head hash loss + distillation from a frozen teacher:

        L = Σ_h w_h · base(u_h) + Σ_{h ∈ kd_heads} [w_sim · SimilarityDistill(u_h, t)
                                                    + w_soft · SoftTarget_h(u_h, z^t)]

    ``t`` (N_train, D) and ``z^t`` (N_train, C) are the teacher's embeddings
    and logits of every training image, precomputed (:meth:`Teacher.targets`)
    and kept as non-persistent buffers (moved with ``.to``, not written into
    checkpoints); ``needs_index = True`` makes the loop pass each batch's
    training indices to look them up. KD terms are named
    ``"<head>/kd_similarity"`` and ``"<head>/kd_soft"``.

    Args:
        teacher_embeddings / teacher_logits: (N_train, D) / (N_train, C).
        similarity_weight / soft_weight: w_sim, w_soft (0 drops a term).
        temperature: T of :class:`SoftTargetLoss`.
        kd_heads: heads distilled (None = all).
    """

    needs_index = True

    def __init__(self, base: str, bits: int, num_classes: int, heads: Sequence[str],
                 teacher_embeddings: torch.Tensor, teacher_logits: torch.Tensor,
                 aux_weight: float = 0.5, similarity_weight: float = 1.0,
                 soft_weight: float = 1.0, temperature: float = 4.0,
                 kd_heads: Sequence[str] | None = None, base_kwargs: dict | None = None):
        super().__init__(base, bits, num_classes, heads, aux_weight, base_kwargs)
        if teacher_embeddings.ndim != 2 or teacher_logits.shape != (len(teacher_embeddings),
                                                                    num_classes):
            raise ValueError(f"teacher_embeddings must be (N, D) and teacher_logits (N, "
                             f"{num_classes}); got {tuple(teacher_embeddings.shape)} and "
                             f"{tuple(teacher_logits.shape)}")
        self.kd_heads = self.head_names if kd_heads is None else tuple(kd_heads)
        if not set(self.kd_heads) <= set(self.head_names):
            raise ValueError(f"kd_heads must be among {self.head_names}; got {self.kd_heads!r}")
        self.similarity_weight = float(similarity_weight)
        self.soft_weight = float(soft_weight)
        self.similarity = SimilarityDistillLoss()
        self.soft = nn.ModuleDict({h: SoftTargetLoss(bits, num_classes, temperature)
                                   for h in self.kd_heads})
        self.register_buffer("teacher_embeddings", teacher_embeddings.detach().float(),
                             persistent=False)
        self.register_buffer("teacher_logits", teacher_logits.detach().float(), persistent=False)

    def compute(self, u, labels, index=None):
        if index is None:
            raise ValueError("DistillationLoss needs index= (N,) training-set indices to look "
                             "up the teacher's outputs; train it with dfh_lib.engine.train.fit")
        terms = super().compute(u, labels)
        heads = self.split(u)
        t, z = self.teacher_embeddings[index], self.teacher_logits[index]
        for h in self.kd_heads:
            if self.similarity_weight:
                terms[f"{h}/kd_similarity"] = self.similarity_weight * self.similarity(heads[h], t)
            if self.soft_weight:
                terms[f"{h}/kd_soft"] = self.soft_weight * self.soft[h](heads[h], z)
        return terms

    def extra_repr(self) -> str:  # fit records the repr: a run resumes only with these
        return (f"{super().extra_repr()}, similarity_weight={self.similarity_weight:g}, "
                f"soft_weight={self.soft_weight:g}, kd_heads={self.kd_heads}")

