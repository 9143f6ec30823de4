"""Retrieval metrics for binary hash codes: Hamming distance, ranking, mAP,
precision/recall. Taught in Chapter 1 (book/01_face_retrieval.ipynb).

Conventions shared by every function here:

* Codes are ``(N, bits)`` arrays or tensors with values in {-1, +1} (any real
  dtype); :func:`binarize` turns network outputs into codes.
* Labels are ``(N,)`` integers (relevant = same label) or ``(N, C)`` 0/1
  matrices (relevant = at least one shared label).
* A query ranks the database by Hamming distance and breaks ties by database
  index (the "stable" order), so every number is deterministic. The
  tie-aware mAP (``ties="average"``) is the expectation over random orders
  within ties instead (McSherry & Najork, ECIR 2008).
* A query without any relevant database item scores 0 (AP, recall, top-k).
* Metrics are python floats (curves: numpy arrays); distances and rankings are
  torch tensors on the device of ``db_codes``.

Queries are processed in chunks, so memory stays bounded for any database
size. Distances are integers 0..bits, so most metrics only need per-query
counts per distance value instead of a sort of the database.
"""
from __future__ import annotations

from functools import partial
from typing import Callable, Sequence

import numpy as np
import torch

__all__ = ["binarize", "check_codes", "hamming_distance", "hamming_ranking",
           "mean_average_precision", "precision_at_k", "precision_recall_within_radius",
           "pr_curve", "topk_accuracy", "evaluate_retrieval"]

# Query x database entries per chunk: temporaries stay a few MiB, so the
# allocator reuses them instead of mapping fresh pages for every chunk
_CHUNK_ELEMENTS = 1 << 21
# The counting path of the stable ranks needs a (relevant + 1, bits + 1)
# histogram per query; past this multiple of the chunk size, sorting is cheaper
_COUNTING_MAX_RATIO = 4
_MAX_EXACT = 1 << 24  # float32 holds every integer up to here
_MAX_INT32 = (1 << 31) - 1


# --------------------------------------------------------------------------
# codes, labels, distances
# --------------------------------------------------------------------------

def binarize(u) -> torch.Tensor:
    """Hash codes from real-valued outputs: ``+1`` where ``u >= 0``, else ``-1``.

    Zero maps to +1 on purpose: ``sign(0) = 0``, used by published hashing
    code, leaves a third value in the codes and corrupts Hamming distances.

    Shapes: ``u`` (N, bits) real -> codes (N, bits) int8 in {-1, +1}.
    """
    u = torch.as_tensor(u)
    if u.ndim != 2:
        raise ValueError(f"u must have shape (N, bits); got {tuple(u.shape)} "
                         "(flatten the network output, e.g. u.flatten(1))")
    if u.is_floating_point() and torch.isnan(u).any():
        raise ValueError("u contains NaN, which has no sign; check the model "
                         "output (e.g. a diverged loss) before binarizing")
    return torch.where(u >= 0, 1, -1).to(torch.int8)


def check_codes(codes, name: str = "codes", bits: int | None = None) -> torch.Tensor:
    """Validate ±1 codes and return them as float32, the matmul dtype.

    Shapes: ``codes`` (N, bits) in {-1, +1}, N >= 1 -> (N, bits) float32.
    Raises ``ValueError`` naming ``name`` for a wrong shape, a code length
    other than ``bits`` (when given), NaN or values other than ±1.
    """
    t = torch.as_tensor(codes)
    if t.ndim != 2 or 0 in t.shape:
        raise ValueError(f"{name} must have shape (N, bits) with N, bits >= 1; "
                         f"got {tuple(t.shape)}")
    if bits is not None and t.shape[1] != bits:
        raise ValueError(f"{name} must have {bits} bits per code (like the "
                         f"database codes); got {t.shape[1]}")
    if t.shape[1] > _MAX_EXACT:
        raise ValueError(f"{name} has {t.shape[1]} bits; at most 2**24 are supported")
    t = t.to(torch.float32)
    if torch.isnan(t).any():
        raise ValueError(f"{name} contains NaN; codes must be -1/+1 "
                         "(binarize(u) rejects NaN outputs too)")
    bad = (t != 1) & (t != -1)
    if bad.any():
        found = sorted(set(t[bad].tolist()))[:3]
        fix = ("0/1 bits? map them with 2 * bits - 1" if found == [0.0]
               else "real-valued outputs? use dfh_lib.core.metrics.binarize(u)")
        raise ValueError(f"{name} must hold only -1 and +1; found {found} ({fix})")
    return t


def _check_labels(labels, name: str, num_codes: int) -> torch.Tensor:
    """(N,) integer labels -> int64; (N, C) 0/1 labels -> float32."""
    t = torch.as_tensor(labels)
    if t.ndim not in (1, 2) or t.shape[0] != num_codes:
        raise ValueError(f"{name} must have shape ({num_codes},) (one integer label per "
                         f"code) or ({num_codes}, C) (0/1 multi-label); got {tuple(t.shape)}")
    if t.ndim == 1:
        if t.is_floating_point() or t.is_complex():
            raise ValueError(f"{name} must be integer class labels; got dtype {t.dtype} "
                             "(cast with labels.astype(int) if the values are whole)")
        return t.to(torch.int64)
    if ((t != 0) & (t != 1)).any():
        raise ValueError(f"{name} is a (N, C) multi-label matrix and must hold only 0/1")
    return t.to(torch.float32)


def _check_inputs(query_codes, db_codes, query_labels, db_labels):
    """Validated (query, db, query_labels, db_labels) tensors on db's device."""
    db = check_codes(db_codes, "db_codes")
    query = check_codes(query_codes, "query_codes", bits=db.shape[1]).to(db.device)
    q_labels = _check_labels(query_labels, "query_labels", len(query)).to(db.device)
    db_labels = _check_labels(db_labels, "db_labels", len(db)).to(db.device)
    if q_labels.shape[1:] != db_labels.shape[1:]:
        raise ValueError(f"query_labels {tuple(q_labels.shape)} and db_labels "
                         f"{tuple(db_labels.shape)} must be the same kind: both (N,) or "
                         "both (N, C) with the same C")
    return query, db, q_labels, db_labels


def _check_k(k, name: str, low: int = 1, high: int | None = None) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < low \
            or (high is not None and k > high):
        limit = "" if high is None else f" and <= {high} (the database size)"
        raise ValueError(f"{name} must be an integer >= {low}{limit}; got {k!r}")
    return int(k)


class _Scratch:
    """Reusable (rows, N) buffers for the temporaries of the chunk loop.

    A fresh multi-MiB tensor per chunk costs more in page faults than the
    arithmetic done on it, so chunks write into these buffers instead.
    """

    def __init__(self, rows: int, cols: int, bits: int, device: torch.device):
        self.shape, self.device, self._buffers = (rows, cols), device, {}
        exact32 = cols * (bits + 1) <= _MAX_EXACT
        self.positions = torch.arange(cols, dtype=torch.float32 if exact32 else torch.float64,
                                      device=device)

    def __call__(self, name: str, dtype: torch.dtype, rows: int) -> torch.Tensor:
        if name not in self._buffers:
            self._buffers[name] = torch.empty(self.shape, dtype=dtype, device=self.device)
        return self._buffers[name][:rows]


def _chunk_rows(num_queries: int, num_db: int, bits: int) -> int:
    # rows * (bits + 1) <= _CHUNK_ELEMENTS too, so the per-chunk histogram
    # keys row * (bits + 1) + distance fit in int32
    return max(1, min(num_queries, _CHUNK_ELEMENTS // max(num_db, bits + 1)))


def _distances(query: torch.Tensor, db: torch.Tensor, scratch: _Scratch) -> torch.Tensor:
    """Hamming distances ``(bits - q . d) / 2`` of ±1 codes, one fused matmul.

    Shapes: query (Q, bits), db (N, bits) float32 -> (Q, N) float32 holding
    exact integers 0..bits (sums of ±1 products are exact below 2**24).
    """
    half_bits = torch.tensor(db.shape[1] / 2, device=db.device)
    out = scratch("dist", torch.float32, len(query))
    return torch.addmm(half_bits, query, db.T, alpha=-0.5, out=out)


def _chunks(query: torch.Tensor, db: torch.Tensor):
    """Yield (query rows, distances (Q, N), scratch) over chunks of queries."""
    rows = _chunk_rows(len(query), len(db), db.shape[1])
    scratch = _Scratch(rows, len(db), db.shape[1], db.device)
    for start in range(0, len(query), rows):
        chunk = slice(start, start + rows)
        yield chunk, _distances(query[chunk], db, scratch), scratch


def hamming_distance(query_codes, db_codes) -> torch.Tensor:
    """Hamming distances between every query and database code.

    Shapes: query_codes (Nq, bits), db_codes (Ndb, bits) in {-1, +1}
    -> (Nq, Ndb) int32 in 0..bits.
    """
    db = check_codes(db_codes, "db_codes")
    query = check_codes(query_codes, "query_codes", bits=db.shape[1]).to(db.device)
    out = torch.empty(len(query), len(db), dtype=torch.int32, device=db.device)
    for rows, dist, _ in _chunks(query, db):
        out[rows] = dist
    return out


def _ranked_indices(dist, k: int, scratch: _Scratch) -> torch.Tensor:
    """First ``k`` database indices per row by (distance, index): (Q, N) -> (Q, k)."""
    # distance * N + index is unique per item, so any sort or top-k of it is
    # the stable order; float32 when exact (< 2**24), else float64
    positions = scratch.positions
    key = torch.add(positions, dist, alpha=dist.shape[1],
                    out=scratch("rank_key", positions.dtype, len(dist)))
    if k >= dist.shape[1]:
        return key.argsort(dim=1)
    return key.topk(k, dim=1, largest=False, sorted=True).indices


def hamming_ranking(query_codes, db_codes, topk: int | None = None) -> torch.Tensor:
    """Database indices of each query ordered by Hamming distance, ties by index.

    Shapes: query_codes (Nq, bits), db_codes (Ndb, bits) in {-1, +1}
    -> (Nq, k) int64 with k = topk (1..Ndb) or Ndb when topk is None.
    """
    db = check_codes(db_codes, "db_codes")
    query = check_codes(query_codes, "query_codes", bits=db.shape[1]).to(db.device)
    k = len(db) if topk is None else _check_k(topk, "topk", high=len(db))
    return torch.cat([_ranked_indices(dist, k, scratch) for _, dist, scratch in _chunks(query, db)])


# --------------------------------------------------------------------------
# per-chunk statistics: dist (Q, N) float32 exact integers, rel (Q, N) bool
# --------------------------------------------------------------------------

def _relevance(query_labels, db_labels, scratch: _Scratch) -> torch.Tensor:
    out = scratch("rel", torch.bool, len(query_labels))
    if query_labels.ndim == 1:
        return torch.eq(query_labels[:, None], db_labels[None, :], out=out)
    shared = scratch("shared", torch.float32, len(query_labels))
    return torch.gt(torch.mm(query_labels, db_labels.T, out=shared), 0, out=out)


def _scan(query, db, query_labels, db_labels, per_chunk: Callable) -> list[torch.Tensor]:
    """Run ``per_chunk(dist, rel, scratch)`` over query chunks and concatenate
    each of its (Q, ...) outputs along the queries."""
    outputs = [per_chunk(dist, _relevance(query_labels[rows], db_labels, scratch), scratch)
               for rows, dist, scratch in _chunks(query, db)]
    return [torch.cat(parts) for parts in zip(*outputs)]


def _int_distances(dist, scratch: _Scratch) -> torch.Tensor:
    """The (Q, N) distances as int32, the cheapest dtype ``bincount`` takes."""
    return scratch("dist_int", torch.int32, len(dist)).copy_(dist)


def _ranks_by_sort(dist, rel):
    """(query row, rank, hits) of every relevant pair, by a stable sort."""
    order = torch.sort(dist, dim=1, stable=True).indices
    rel_sorted = rel.gather(1, order)
    hits = rel_sorted.cumsum(1)
    row, position = rel_sorted.nonzero(as_tuple=True)
    return row, position + 1, hits[row, position]


def _ranks_by_counting(dist, rel, scratch: _Scratch, num_rel, num_bins: int):
    """(query row, rank, hits) of every relevant pair, by counting.

    rank_j = #(dist < d_j) + #(dist == d_j, index < j) + 1. The second count
    comes from a histogram over (segment, distance), where segment m holds the
    items between the (m-1)-th and m-th relevant item of the query: items
    before relevant item m are exactly segments 0..m. O(N + R * bins) per query.
    """
    segments = num_rel + 1
    first = segments.cumsum(0) - segments  # first histogram row of each query
    # key = (first row + segment) * bins + distance < counting bins, in int32
    key = torch.cumsum(rel, 1, dtype=torch.int32, out=scratch("key_int", torch.int32, len(rel)))
    key.add_(first[:, None].int())
    key = torch.add(_int_distances(dist, scratch), key, alpha=num_bins, out=key)
    hist = torch.bincount(key.view(-1), minlength=int(segments.sum()) * num_bins)
    # cum[r] = counts summed over the histogram rows < r
    cum = torch.cat([hist.new_zeros(1, num_bins), hist.view(-1, num_bins).cumsum(0)])
    row, j = rel.nonzero(as_tuple=True)
    rel_start = num_rel.cumsum(0) - num_rel
    m = torch.arange(len(row), device=row.device) - rel_start[row]
    d_j = dist[row, j].long()
    same_before = cum[first[row] + m + 1, d_j] - cum[first[row], d_j]
    totals = cum[first + segments] - cum[first]  # (Q, bins) items per distance
    rank = (totals.cumsum(1) - totals)[row, d_j] + same_before + 1
    # hits: position among the query's relevant items sorted by (distance, index)
    order = ((row * num_bins + d_j) * dist.shape[1] + j).argsort()
    hits = torch.empty_like(rank)
    hits[order] = torch.arange(len(row), device=row.device) - rel_start[row[order]] + 1
    return row, rank, hits


def _average_precision(dist, rel, scratch: _Scratch, num_bins: int, topk: int | None):
    """Stable-order AP (or AP@topk) per query: (Q,) float64."""
    num_rel = rel.sum(1)
    counting_bins = int(num_rel.sum() + len(rel)) * num_bins
    # the counting path keys its histogram in int32
    if counting_bins > min(_COUNTING_MAX_RATIO * rel.numel(), _MAX_INT32):
        row, rank, hits = _ranks_by_sort(dist, rel)
    else:
        row, rank, hits = _ranks_by_counting(dist, rel, scratch, num_rel, num_bins)
    if topk is not None:
        keep = rank <= topk
        row, rank, hits = row[keep], rank[keep], hits[keep]
        num_rel = torch.bincount(row, minlength=len(rel))
    precision_sum = torch.zeros(len(rel), dtype=torch.float64, device=rel.device)
    precision_sum.index_add_(0, row, hits.double() / rank)
    return (precision_sum / num_rel.clamp(min=1),)


def _distance_counts(dist, rel, scratch: _Scratch, num_bins: int):
    """Items and relevant items per distance value: two (Q, bins) int64."""
    num_q = len(dist)
    offsets = torch.arange(num_q, device=dist.device, dtype=torch.int32)[:, None] * num_bins
    key = torch.add(_int_distances(dist, scratch), offsets,
                    out=scratch("key_int", torch.int32, num_q))
    total = torch.bincount(key.view(-1), minlength=num_q * num_bins)
    row, j = rel.nonzero(as_tuple=True)
    relevant = torch.bincount(row * num_bins + dist[row, j].long(), minlength=num_q * num_bins)
    return total.view(num_q, num_bins), relevant.view(num_q, num_bins)


def _relevant_in_topk(dist, rel, scratch: _Scratch, k: int):
    """Relevant items among the first 1..k of the stable order: (Q, k) int64."""
    return (rel.gather(1, _ranked_indices(dist, k, scratch)).cumsum(1),)


def _tie_aware_ap(total: torch.Tensor, relevant: torch.Tensor) -> torch.Tensor:
    """Expected AP over uniformly random orders within each distance tie.

    A tie group of c items (r relevant) after n items (R relevant) fills ranks
    n+1..n+c; rank n+i is relevant with probability r/c, and then holds on
    average R + 1 + (i-1)(r-1)/(c-1) relevant items so far, so the group adds
    (r/c) * [(R+1) S0 + (r-1)/(c-1) S1] with S0 = sum_i 1/(n+i) =
    H(n+c) - H(n) and S1 = sum_i (i-1)/(n+i) = c - (n+1) S0.

    Shapes: per-distance counts (Q, bins) -> (Q,) float64.
    """
    c, r = total.double(), relevant.double()
    n, r_before = c.cumsum(1) - c, r.cumsum(1) - r
    # harmonic numbers H(x) = digamma(x + 1) + Euler's gamma, which cancels
    s0 = torch.digamma(n + c + 1) - torch.digamma(n + 1)
    s1 = c - (n + 1) * s0
    group = r / c.clamp(min=1) * ((r_before + 1) * s0 + (r - 1) / (c - 1).clamp(min=1) * s1)
    return torch.where(r > 0, group, 0).sum(1) / r.sum(1).clamp(min=1)


def _within_radius(total, relevant, radius: int):
    """Per-query precision and recall of the items at distance <= radius."""
    retrieved = total[:, :radius + 1].sum(1).double()
    hits = relevant[:, :radius + 1].sum(1).double()
    # a query retrieving nothing scores precision 0 (DDH / DCDH convention)
    return hits / retrieved.clamp(min=1), hits / relevant.sum(1).clamp(min=1)


# --------------------------------------------------------------------------
# public metrics
# --------------------------------------------------------------------------

def mean_average_precision(query_codes, db_codes, query_labels, db_labels,
                           topk: int | None = None, ties: str = "stable") -> float:
    """Mean over queries of the average precision of the Hamming ranking.

    AP = mean over the relevant retrieved items of (hits so far / rank).
    ``topk=None``: mAP@all, over all relevant items of the database.
    ``topk=k``: mAP@k as in DeepHash: the mean over the relevant items within
    the top k (a query with none there scores 0).
    ``ties="stable"`` breaks distance ties by database index; ``ties="average"``
    is the tie-aware AP, the exact expectation over uniformly random orders
    within ties (McSherry & Najork 2008); it is defined for mAP@all only.

    Shapes: codes (Nq, bits) / (Ndb, bits) in {-1, +1}; labels (N,) int or
    (N, C) 0/1.
    """
    query, db, q_labels, db_labels = _check_inputs(query_codes, db_codes, query_labels, db_labels)
    if ties not in ("stable", "average"):
        raise ValueError(f"ties must be 'stable' or 'average'; got {ties!r}")
    if topk is not None:
        topk = _check_k(topk, "topk")
        if ties == "average":
            raise ValueError("ties='average' is defined for mAP@all only (topk=None): with "
                             "a cut-off its denominator depends on the order; use ties='stable'")
    num_bins = db.shape[1] + 1
    if ties == "average":
        counts = _scan(query, db, q_labels, db_labels,
                       partial(_distance_counts, num_bins=num_bins))
        return float(_tie_aware_ap(*counts).mean())
    (ap,) = _scan(query, db, q_labels, db_labels,
                  partial(_average_precision, num_bins=num_bins, topk=topk))
    return float(ap.mean())


def precision_at_k(query_codes, db_codes, query_labels, db_labels, k: int = 100) -> float:
    """Mean fraction of relevant items among the first k (stable tie order)."""
    query, db, q_labels, db_labels = _check_inputs(query_codes, db_codes, query_labels, db_labels)
    k = _check_k(k, "k", high=len(db))
    (hits,) = _scan(query, db, q_labels, db_labels, partial(_relevant_in_topk, k=k))
    return float((hits[:, -1].double() / k).mean())


def topk_accuracy(query_codes, db_codes, query_labels, db_labels,
                  k: Sequence[int] = (1, 5, 10)) -> dict[int, float]:
    """Fraction of queries with a relevant item among their first k (stable
    tie order), for each k: identification accuracy as reported by DCDH."""
    query, db, q_labels, db_labels = _check_inputs(query_codes, db_codes, query_labels, db_labels)
    ks = [_check_k(value, "k", high=len(db)) for value in np.atleast_1d(k).tolist()]
    (hits,) = _scan(query, db, q_labels, db_labels,
                    partial(_relevant_in_topk, k=max(ks)))
    return {value: float((hits[:, value - 1] > 0).double().mean()) for value in ks}


def precision_recall_within_radius(query_codes, db_codes, query_labels, db_labels,
                                   radius: int = 2) -> tuple[float, float]:
    """Macro precision and recall of the items within Hamming radius (P@H<=r).

    A query retrieving nothing counts precision 0 (the DDH / DCDH convention,
    which penalises codes that scatter queries far from everything).
    """
    query, db, q_labels, db_labels = _check_inputs(query_codes, db_codes, query_labels, db_labels)
    radius = _check_k(radius, "radius", low=0)
    num_bins = db.shape[1] + 1
    counts = _scan(query, db, q_labels, db_labels,
                   partial(_distance_counts, num_bins=num_bins))
    precision, recall = _within_radius(*counts, radius)
    return float(precision.mean()), float(recall.mean())


def pr_curve(query_codes, db_codes, query_labels, db_labels) -> tuple[np.ndarray, np.ndarray]:
    """Macro precision and recall within Hamming radius r, for r = 0..bits.

    Returns two float64 arrays of shape (bits + 1,); recall is non-decreasing.
    Empty retrievals count precision 0, as in
    :func:`precision_recall_within_radius`.
    """
    query, db, q_labels, db_labels = _check_inputs(query_codes, db_codes, query_labels, db_labels)
    num_bins = db.shape[1] + 1
    total, relevant = _scan(query, db, q_labels, db_labels,
                            partial(_distance_counts, num_bins=num_bins))
    retrieved, hits = total.cumsum(1).double(), relevant.cumsum(1).double()
    precision = hits / retrieved.clamp(min=1)
    recall = hits / relevant.sum(1, keepdim=True).clamp(min=1)
    return precision.mean(0).cpu().numpy(), recall.mean(0).cpu().numpy()


def evaluate_retrieval(query_codes, db_codes, query_labels, db_labels,
                       ks: Sequence[int] = (10, 50, 100), radius: int = 2,
                       accuracy_ks: Sequence[int] = (1, 5, 10)) -> dict[str, float]:
    """All the retrieval numbers of a results table, in one pass over the data.

    Keys: ``mAP`` (stable ties), ``mAP_tie_aware``, ``P@H<=r``, ``R@H<=r``,
    ``P@k`` for k in ``ks`` and ``topk`` (top-k accuracy) for k in
    ``accuracy_ks``; values as the functions of the same names compute them.
    ``ks`` and ``accuracy_ks`` larger than the database are left out.
    """
    query, db, q_labels, db_labels = _check_inputs(query_codes, db_codes, query_labels, db_labels)
    radius = _check_k(radius, "radius", low=0)
    ks = [k for k in (_check_k(k, "ks") for k in ks) if k <= len(db)]
    accuracy_ks = [k for k in (_check_k(k, "accuracy_ks") for k in accuracy_ks) if k <= len(db)]
    kmax, num_bins = max(ks + accuracy_ks + [1]), db.shape[1] + 1

    def per_chunk(dist, rel, scratch):
        return (*_average_precision(dist, rel, scratch, num_bins, None),
                *_distance_counts(dist, rel, scratch, num_bins),
                *_relevant_in_topk(dist, rel, scratch, kmax))

    ap, total, relevant, hits = _scan(query, db, q_labels, db_labels, per_chunk)
    precision, recall = _within_radius(total, relevant, radius)
    result = {"mAP": ap.mean(), "mAP_tie_aware": _tie_aware_ap(total, relevant).mean(),
              f"P@H<={radius}": precision.mean(), f"R@H<={radius}": recall.mean()}
    result.update({f"P@{k}": (hits[:, k - 1].double() / k).mean() for k in ks})
    result.update({f"top{k}": (hits[:, k - 1] > 0).double().mean() for k in accuracy_ks})
    return {name: float(value) for name, value in result.items()}
