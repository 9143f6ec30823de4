"""What each head of a multi-layer hash network has learnt, and how a
student's similarities compare with its teacher's (Chapter 6)."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..core.metrics import binarize, evaluate_retrieval
from ..engine.encoding import as_input, encode, image_tensor
from ..engine.teacher import Teacher
from ..nn.multihead import MultiHeadHashNet

__all__ = ["encode_heads", "head_maps", "similarity_matrices", "teacher_agreement"]


@torch.no_grad()
def encode_heads(model: MultiHeadHashNet, data, batch_size: int = 512) -> dict[str, torch.Tensor]:
    """Every head's relaxed codes of ``data`` (a FaceDataset or (N, 3, H, W)
    tensor): ``{head: float (N, K)}`` on the CPU, in eval mode (restored after)."""
    images = image_tensor(data, model.image_size)
    device = next(model.parameters()).device
    was = model.training
    model.eval()
    try:
        parts = [model.forward_heads(as_input(images[i:i + batch_size], device))
                 for i in range(0, len(images), batch_size)]
    finally:
        model.train(was)
    return {h: torch.cat([p[h].float().cpu() for p in parts]) for h in model.head_names}


def head_maps(model: MultiHeadHashNet, splits, metric: str = "mAP") -> dict[str, float]:
    """``{head: metric}`` of each head's own ±1 codes, query vs database —
    what every depth has learnt to hash."""
    query, database = encode_heads(model, splits.query), encode_heads(model, splits.database)
    return {h: evaluate_retrieval(binarize(query[h]), binarize(database[h]), splits.query.labels,
                                  splits.database.labels)[metric] for h in model.head_names}


def similarity_matrices(teacher, student: nn.Module, data, n: int = 64) -> dict[str, np.ndarray]:
    """Cosine-similarity matrices of ``n`` images of ``data`` (a FaceDataset,
    the first ``n`` in identity order, so identities form diagonal blocks):

    ``"teacher"`` (teacher embeddings), ``"student"`` (relaxed codes),
    ``"codes"`` (±1 codes: 1 − 2 d_H / K), each (n, n); ``"labels"`` (n,).
    ``teacher`` is a :class:`Teacher` or an embedding network.
    """
    order = np.argsort(data.labels, kind="stable")[:n]
    subset = data.subset(order)
    t = encode(teacher.model if isinstance(teacher, Teacher) else teacher, subset)
    s = encode(student, subset)
    b = binarize(s).float()

    def cosine(x):
        x = F.normalize(x, dim=1)
        return (x @ x.T).numpy()

    return {"teacher": cosine(t), "student": cosine(s), "codes": (b @ b.T / b.shape[1]).numpy(),
            "labels": subset.labels}


def teacher_agreement(teacher, student: nn.Module, data, n: int | None = None) -> float:
    """Pearson correlation between the teacher's cosine similarities and the
    student's code similarities (1 − 2 d_H / K) over all pairs of the first
    ``n`` images of ``data`` (all by default) — how much of the teacher's
    geometry the codes keep; NaN when every code is the same (a collapsed
    network has no similarity structure to compare)."""
    mats = similarity_matrices(teacher, student, data, n=len(data) if n is None else n)
    off = ~np.eye(len(mats["labels"]), dtype=bool)
    with np.errstate(invalid="ignore", divide="ignore"):
        return float(np.corrcoef(mats["teacher"][off], mats["codes"][off])[0, 1])
