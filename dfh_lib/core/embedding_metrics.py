"""Retrieval metrics of real-valued embeddings ranked by cosine similarity.

The float ceiling of every table: the same network's embedding before it is
cut to bits, ranked by cosine similarity instead of Hamming distance. Ties
have probability zero for float scores, so plain average precision is exact.
"""
from __future__ import annotations

import numpy as np
import torch

__all__ = ["cosine_mean_average_precision", "best_threshold", "verification_accuracy"]


def _as_float(x, name: str) -> torch.Tensor:
    x = torch.as_tensor(x)
    if x.ndim != 2 or not x.is_floating_point():
        raise ValueError(f"{name} must be a float (N, D) embedding; got "
                         f"{tuple(x.shape)} {x.dtype}")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN/inf values")
    return torch.nn.functional.normalize(x.float(), dim=1)


@torch.no_grad()
def cosine_mean_average_precision(query, database, query_labels, db_labels,
                                  chunk: int = 1024, per_query: bool = False):
    """Mean average precision of ``query`` (Q, D) against ``database`` (N, D)
    ranked by cosine similarity; a query's relevant items share its label.

    Queries with no relevant item score 0 (as in
    :func:`~dfh_lib.core.metrics.mean_average_precision`). With
    ``per_query=True`` returns the (Q,) tensor of APs instead of the mean.
    """
    q, d = _as_float(query, "query"), _as_float(database, "database")
    if q.shape[1] != d.shape[1]:
        raise ValueError(f"query and database widths differ: {q.shape[1]} vs {d.shape[1]}")
    ql, dl = torch.as_tensor(query_labels).long(), torch.as_tensor(db_labels).long()
    if ql.shape != (len(q),) or dl.shape != (len(d),):
        raise ValueError("labels must have one entry per embedding")
    positions = torch.arange(1, len(d) + 1, dtype=torch.float32)
    aps = []
    for start in range(0, len(q), chunk):
        order = (q[start:start + chunk] @ d.T).argsort(dim=1, descending=True, stable=True)
        rel = (dl[order] == ql[start:start + chunk, None]).float()
        hits = rel.cumsum(dim=1)
        total = rel.sum(dim=1)
        aps.append((rel * hits / positions).sum(dim=1) / total.clamp(min=1))
    aps = torch.cat(aps) if aps else torch.zeros(0)
    return aps if per_query else float(aps.mean()) if len(aps) else float("nan")


def best_threshold(similarity, same) -> float:
    """The threshold ``t`` that maximises the accuracy of "same person iff
    similarity > t" on these pairs (midway between two neighbouring scores;
    the lowest such ``t`` on ties of accuracy)."""
    s, y = np.asarray(similarity, float), np.asarray(same, bool)
    if s.shape != y.shape or s.ndim != 1 or len(s) == 0:
        raise ValueError(f"need one similarity per pair; got {s.shape} and {y.shape}")
    order = np.argsort(s, kind="stable")
    s, y = s[order], y[order]
    # predicting "different" for the first k pairs: correct = different among
    # them + same among the rest
    k = np.arange(len(s) + 1)
    different_below = np.concatenate([[0], np.cumsum(~y)])
    same_above = y.sum() - np.concatenate([[0], np.cumsum(y)])
    correct = different_below + same_above
    cut_between_values = np.ones(len(s) + 1, bool)
    cut_between_values[1:-1] = s[1:] > s[:-1]  # never split equal scores
    correct = np.where(cut_between_values, correct, -1)
    best = int(k[np.argmax(correct)])
    if best == 0:
        return float(s[0] - 1.0)
    if best == len(s):
        return float(s[-1])
    return float((s[best - 1] + s[best]) / 2)


def verification_accuracy(similarity, same, fold) -> dict[int, float]:
    """LFW's verification protocol: for each fold, the accuracy of "same
    person iff similarity > t" with ``t`` chosen on the other folds.

    Returns ``{fold: accuracy}``; report the mean and standard deviation.
    """
    s, y, f = (np.asarray(similarity, float), np.asarray(same, bool), np.asarray(fold))
    if not (s.shape == y.shape == f.shape) or s.ndim != 1:
        raise ValueError(f"similarity, same and fold need one entry per pair; got "
                         f"{s.shape}, {y.shape}, {f.shape}")
    if not np.isfinite(s).all():
        raise ValueError("similarity contains NaN/inf values")
    folds = np.unique(f)
    if len(folds) < 2:
        raise ValueError("need at least two folds (the threshold is chosen on the others)")
    out = {}
    for test in folds:
        t = best_threshold(s[f != test], y[f != test])
        out[int(test)] = float(((s[f == test] > t) == y[f == test]).mean())
    return out
