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
size. Distances are integers 0..bits (one byte each; on the CPU a popcount of
XOR-ed 64-bit words), so no metric sorts the database: counts per distance
value give the radius metrics and the tie-aware mAP, and the stable rank of a
relevant item is the number of items closer to the query plus the number at
the same distance before it in the database (see :class:`_Scan`). With
integer labels the relevant items of a query are read off the database
grouped by label, so the work beyond the distances grows with the number of
relevant items, not with the database.
"""
from __future__ import annotations

import math
from typing import Callable, NamedTuple, Sequence

import numpy as np
import torch

__all__ = ["binarize", "check_codes", "hamming_distance", "hamming_ranking",
           "mean_average_precision", "precision_at_k", "precision_recall_within_radius",
           "pr_curve", "topk_accuracy", "evaluate_retrieval"]

# Query x database entries per chunk: temporaries stay a few MiB, so the
# allocator reuses them instead of mapping fresh pages for every chunk
_CHUNK_ELEMENTS = 1 << 21
_MAX_EXACT = 1 << 24  # float32 holds every integer up to here
_MAX_TABLE_BLOCK = 2048  # blocks up to this size use a (block, block) mask table
_USE_POPCOUNT = hasattr(np, "bitwise_count")  # numpy >= 2.0


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


# --------------------------------------------------------------------------
# distances of query chunks, as small integers
# --------------------------------------------------------------------------

def _pack_words(codes: torch.Tensor) -> np.ndarray:
    """(N, bits <= 64) ±1 codes -> (N,) uint64, bit i set where entry i is +1."""
    packed = np.packbits(codes.cpu().numpy() > 0, axis=1, bitorder="little")
    words = np.zeros((len(packed), 8), np.uint8)
    words[:, :packed.shape[1]] = packed
    return words.view(np.uint64).ravel()


class _Distances:
    """Hamming distances from chunks of queries to one database.

    On the CPU, codes of at most 64 bits become one uint64 word each and
    ``d = popcount(q XOR x)`` (numpy >= 2): one byte written per pair.
    Elsewhere (GPU, longer codes, older numpy) ``d = (bits - q . x) / 2`` by
    a float32 matmul, exact below 2**24. Distances are uint8 up to 254 bits,
    else int32.
    """

    def __init__(self, query: torch.Tensor, db: torch.Tensor):
        self.bits, self.num_db = db.shape[1], len(db)
        self.dtype = torch.uint8 if self.bits < 255 else torch.int32
        self.popcount = _USE_POPCOUNT and db.device.type == "cpu" and self.bits <= 64
        if self.popcount:
            self.query, self.db = _pack_words(query), _pack_words(db)
        else:
            self.query, self.db = query, db
        self._scratch = None  # (rows, Ndb) uint64 XORs or float32 products

    def __call__(self, rows: slice, out: torch.Tensor) -> torch.Tensor:
        """Write the distances of ``query[rows]`` into ``out``: (Q, Ndb)."""
        query = self.query[rows]
        if self._scratch is None:  # the first chunk is the largest
            self._scratch = (np.empty((len(query), self.num_db), np.uint64) if self.popcount
                             else torch.empty(len(query), self.num_db, device=out.device))
        scratch = self._scratch[:len(query)]
        if self.popcount:
            xor = np.bitwise_xor(query[:, None], self.db[None, :], out=scratch)
            np.bitwise_count(xor, out=out.numpy())
        else:
            half_bits = torch.tensor(self.bits / 2, device=out.device)
            out.copy_(torch.addmm(half_bits, query, self.db.T, alpha=-0.5, out=scratch))
        return out


def _chunk_rows(num_queries: int, num_db: int, width: int = 1) -> int:
    """Queries per chunk: (Q, Ndb) distances and (Q, width) histograms stay
    near _CHUNK_ELEMENTS entries, so temporaries stay a few MiB and the
    allocator reuses them."""
    return max(1, min(num_queries, _CHUNK_ELEMENTS // num_db, _CHUNK_ELEMENTS // width))


def _distance_chunks(query: torch.Tensor, db: torch.Tensor):
    """Yield (query rows, (Q, Ndb) uint8/int32 distances) over query chunks."""
    distances = _Distances(query, db)
    rows = _chunk_rows(len(query), len(db), db.shape[1] + 1)
    out = torch.empty(rows, len(db), dtype=distances.dtype, device=db.device)
    for start in range(0, len(query), rows):
        chunk = slice(start, min(start + rows, len(query)))
        yield chunk, distances(chunk, out[:chunk.stop - start])


def hamming_distance(query_codes, db_codes) -> torch.Tensor:
    """Hamming distances between every query and database code.

    Shapes: query_codes (Nq, bits), db_codes (Ndb, bits) in {-1, +1}
    -> (Nq, Ndb) int32 in 0..bits.
    """
    db = check_codes(db_codes, "db_codes")
    query = check_codes(query_codes, "query_codes", bits=db.shape[1]).to(db.device)
    out = torch.empty(len(query), len(db), dtype=torch.int32, device=db.device)
    for rows, dist in _distance_chunks(query, db):
        out[rows] = dist
    return out


def hamming_ranking(query_codes, db_codes, topk: int | None = None) -> torch.Tensor:
    """Database indices of each query ordered by Hamming distance, ties by index.

    Shapes: query_codes (Nq, bits), db_codes (Ndb, bits) in {-1, +1}
    -> (Nq, k) int64 with k = topk (1..Ndb) or Ndb when topk is None.
    """
    db = check_codes(db_codes, "db_codes")
    query = check_codes(query_codes, "query_codes", bits=db.shape[1]).to(db.device)
    k = len(db) if topk is None else _check_k(topk, "topk", high=len(db))
    # distance * Ndb + index is unique per item, so any sort or top-k of it is
    # the stable order; float32 when exact (< 2**24), else float64
    exact32 = len(db) * (db.shape[1] + 1) <= _MAX_EXACT
    positions = torch.arange(len(db), dtype=torch.float32 if exact32 else torch.float64,
                             device=db.device)
    ranked, keys = [], None
    for _, dist in _distance_chunks(query, db):
        if keys is None:  # the first chunk is the largest
            keys = torch.empty(dist.shape, dtype=positions.dtype, device=db.device)
        # cast, then scale and shift in place: a mixed-dtype add is ~20x slower
        key = keys[:len(dist)].copy_(dist).mul_(len(db)).add_(positions)
        ranked.append(key.argsort(dim=1) if k >= len(db)
                      else key.topk(k, dim=1, largest=False, sorted=True).indices)
    return torch.cat(ranked)


# --------------------------------------------------------------------------
# one scan over the queries: ranks of the relevant items, counts per distance
# --------------------------------------------------------------------------

class _RelevantPairs:
    """The relevant (query row, database item) pairs of a chunk of queries,
    in (row, item) order.

    Integer labels: the database is grouped by label once, so the relevant
    items of a query are read off its group, with no pass over the database.
    Multi-label (N, C) 0/1 labels: a matmul per chunk (shared label > 0).
    """

    def __init__(self, query_labels: torch.Tensor, db_labels: torch.Tensor):
        self.query_labels, self.db_labels = query_labels, db_labels
        if query_labels.ndim == 1:
            sorted_labels, self.order = torch.sort(db_labels, stable=True)
            keys, counts = torch.unique_consecutive(sorted_labels, return_counts=True)
            group = torch.searchsorted(keys, query_labels).clamp(max=len(keys) - 1)
            self.count = torch.where(keys[group] == query_labels, counts[group], 0)
            self.start = (counts.cumsum(0) - counts)[group]

    def mean_count(self) -> float:
        """Relevant items per query (multi-label: estimated on a few queries)."""
        if self.query_labels.ndim == 1:
            return self.count.double().mean().item()
        sample = self.query_labels[:max(1, _CHUNK_ELEMENTS // len(self.db_labels))]
        return (sample @ self.db_labels.T > 0).sum(1).double().mean().item()

    def __call__(self, rows: slice) -> tuple[torch.Tensor, torch.Tensor]:
        if self.query_labels.ndim == 2:
            shared = self.query_labels[rows] @ self.db_labels.T
            return torch.nonzero(shared > 0, as_tuple=True)
        count, start = self.count[rows], self.start[rows]
        row = torch.repeat_interleave(torch.arange(len(count), device=count.device), count)
        first = count.cumsum(0) - count
        position = torch.arange(len(row), device=row.device) - first[row] + start[row]
        return row, self.order[position]


class _Plan(NamedTuple):
    """Chunking of one scan: ``rows`` queries per chunk; the database in
    ``num_blocks`` blocks of ``block`` items (padding after the last item
    has distance ``num_bins``, a bin of its own)."""
    rows: int
    block: int
    num_blocks: int
    num_bins: int  # distances 0..bits


def _plan(num_queries: int, num_db: int, bits: int, mean_relevant: float | None) -> _Plan:
    """The cheapest block size for ranks (``mean_relevant`` per query), or
    one block when only counts per distance are needed (None)."""
    num_bins = bits + 1
    block = num_db
    if mean_relevant is not None:
        # per query: histogram entries ~ Ndb * bins / block, in-block
        # comparisons ~ relevant * block; the sum is least at the geometric mean
        block = int(math.sqrt(num_db * num_bins / max(mean_relevant, 1.0)))
        # one query's histogram stays within a chunk (and its keys in int32)
        block = min(num_db, max(block, -(-num_db * (num_bins + 1) // _CHUNK_ELEMENTS), 1))
    num_blocks = -(-num_db // block)
    rows = _chunk_rows(num_queries, num_blocks * block, num_blocks * (num_bins + 1))
    return _Plan(rows, block, num_blocks, num_bins)


class _Chunk(NamedTuple):
    """What every metric of a chunk of Q queries derives from.

    ``totals`` (Q, bins): database items per distance. Per relevant pair
    (P,), in (row, item) order: ``row`` (query row), ``dist`` (its distance),
    ``rank`` (1-based, stable order) and ``hits`` (relevant items up to and
    including it); ``rank`` and ``hits`` are None when not asked for.
    """
    totals: torch.Tensor
    row: torch.Tensor
    dist: torch.Tensor
    rank: torch.Tensor | None
    hits: torch.Tensor | None


def _earlier_table(block: int, device) -> torch.Tensor | None:
    """(block, block) bool, row o = (position < o): a lookup is cheaper than
    the compare. None for large blocks (compared directly)."""
    if block > _MAX_TABLE_BLOCK:
        return None
    positions = torch.arange(block, device=device)
    return positions[None, :] < positions[:, None]


def _same_distance_in_block(dist, row, item, dist_j, plan: _Plan, earlier) -> torch.Tensor:
    """Per pair: items of its block before it with the same distance (P,)."""
    blocks = dist.view(len(dist) * plan.num_blocks, plan.block)
    block = torch.div(item, plan.block, rounding_mode="floor")
    offset = item - block * plan.block
    positions = torch.arange(plan.block, device=dist.device)
    out = torch.empty_like(row)
    step = max(1, _CHUNK_ELEMENTS // plan.block)  # pairs at once: bounded memory
    for s in range(0, len(row), step):
        p = slice(s, s + step)
        items = blocks[row[p] * plan.num_blocks + block[p]]  # (p, block)
        before = positions < offset[p, None] if earlier is None else earlier[offset[p]]
        out[p] = ((items == dist_j[p, None].to(items.dtype)) & before).sum(1)
    return out


class _Scan:
    """One pass over the queries in chunks, yielding a :class:`_Chunk` each.

    rank_j = #(d < d_j) + #(d == d_j, index < j) + 1. One histogram over
    (query, block, distance) gives the totals and, by prefix sums over
    blocks, the items at d_j in the blocks before j's; the items of j's own
    block before j are compared directly. Beyond the distances this costs
    O(N bins / block + R block) per query with R relevant items, instead of
    a sort of the N database items.
    """

    def __init__(self, query, db, query_labels, db_labels, with_ranks: bool):
        self.pairs = _RelevantPairs(query_labels, db_labels)
        self.plan = plan = _plan(len(query), len(db), db.shape[1],
                                 self.pairs.mean_count() if with_ranks else None)
        self.distances, self.num_queries = _Distances(query, db), len(query)
        padded, device = plan.num_blocks * plan.block, db.device
        # padding after the last database item: distance num_bins, own bin
        self.dist = torch.full((plan.rows, padded), plan.num_bins,
                               dtype=self.distances.dtype, device=device)
        # histogram key of (row, block, distance) = base + distance
        row_of = torch.arange(plan.rows, device=device)[:, None] * plan.num_blocks
        block_of = torch.arange(padded, device=device) // plan.block
        self.base = ((row_of + block_of) * (plan.num_bins + 1)).int()
        self.keys = torch.empty_like(self.base)
        self.with_ranks = with_ranks
        self.earlier = _earlier_table(plan.block, device) if with_ranks else None

    def __iter__(self):
        num_db = self.distances.num_db
        for start in range(0, self.num_queries, self.plan.rows):
            rows = slice(start, min(start + self.plan.rows, self.num_queries))
            dist = self.dist[:rows.stop - start]
            self.distances(rows, dist[:, :num_db])
            yield self._chunk(dist, *self.pairs(rows))

    def _chunk(self, dist, row, item) -> _Chunk:
        plan, num_q, width = self.plan, len(dist), self.plan.num_bins + 1
        # cast, then add in place: a mixed-dtype add is several times slower
        key = self.keys[:num_q].copy_(dist).add_(self.base[:num_q])
        hist = torch.bincount(key.view(-1), minlength=num_q * plan.num_blocks * width)
        # running totals over the blocks; the last block's are the totals
        running = hist.view(num_q, plan.num_blocks, width).cumsum(1)
        totals = running[:, -1, :plan.num_bins]
        dist_j = dist.view(-1).take(row * dist.shape[1] + item).long()
        if not self.with_ranks:
            return _Chunk(totals, row, dist_j, None, None)
        # flat index of (row, block of the item, its distance) in the histogram
        block = torch.div(item, plan.block, rounding_mode="floor")
        at = (row * plan.num_blocks + block) * width + dist_j
        in_earlier_blocks = running.view(-1).take(at) - hist.take(at)
        in_block = _same_distance_in_block(dist, row, item, dist_j, plan, self.earlier)
        closer = (totals.cumsum(1) - totals).view(-1).take(row * plan.num_bins + dist_j)
        rank = closer + in_earlier_blocks + in_block + 1
        # hits: position among the query's relevant items by (distance, index);
        # a stable sort keeps the item order within a (row, distance) key
        order = torch.sort(row * plan.num_bins + dist_j, stable=True).indices
        num_rel = torch.bincount(row, minlength=num_q)
        rel_start = num_rel.cumsum(0) - num_rel
        hits = torch.empty_like(rank)
        hits[order] = torch.arange(len(row), device=row.device) - rel_start[row[order]] + 1
        return _Chunk(totals, row, dist_j, rank, hits)


def _scan(query, db, query_labels, db_labels, per_chunk: Callable,
          with_ranks: bool = True) -> list[torch.Tensor]:
    """Run ``per_chunk(chunk: _Chunk)`` over query chunks and concatenate
    each of its (Q, ...) outputs along the queries."""
    outputs = [per_chunk(chunk)
               for chunk in _Scan(query, db, query_labels, db_labels, with_ranks)]
    return [torch.cat(parts) for parts in zip(*outputs)]


# --------------------------------------------------------------------------
# per-chunk statistics, from a _Chunk
# --------------------------------------------------------------------------

def _average_precision(chunk: _Chunk, topk: int | None = None) -> torch.Tensor:
    """Stable-order AP (or AP@topk) per query: (Q,) float64."""
    row, rank, hits = chunk.row, chunk.rank, chunk.hits
    if topk is not None:
        keep = rank <= topk
        row, rank, hits = row[keep], rank[keep], hits[keep]
    num_q = len(chunk.totals)
    precision_sum = torch.zeros(num_q, dtype=torch.float64, device=row.device)
    precision_sum.index_add_(0, row, hits.double() / rank)
    return precision_sum / torch.bincount(row, minlength=num_q).clamp(min=1)


def _distance_counts(chunk: _Chunk) -> tuple[torch.Tensor, torch.Tensor]:
    """Items and relevant items per distance value: two (Q, bins) int64."""
    num_q, num_bins = chunk.totals.shape
    relevant = torch.bincount(chunk.row * num_bins + chunk.dist, minlength=num_q * num_bins)
    return chunk.totals, relevant.view(num_q, num_bins)


def _relevant_in_topk(chunk: _Chunk, ks: Sequence[int]) -> torch.Tensor:
    """Relevant items among the first k of the stable order: (Q, len(ks)) int64."""
    num_q = len(chunk.totals)
    counts = [torch.bincount(chunk.row[chunk.rank <= k], minlength=num_q) for k in ks]
    return torch.stack(counts, 1) if counts else chunk.totals.new_zeros(num_q, 0)


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
    if ties == "average":
        counts = _scan(query, db, q_labels, db_labels, _distance_counts, with_ranks=False)
        return float(_tie_aware_ap(*counts).mean())
    (ap,) = _scan(query, db, q_labels, db_labels,
                  lambda chunk: (_average_precision(chunk, topk),))
    return float(ap.mean())


def precision_at_k(query_codes, db_codes, query_labels, db_labels, k: int = 100) -> float:
    """Mean fraction of relevant items among the first k (stable tie order)."""
    query, db, q_labels, db_labels = _check_inputs(query_codes, db_codes, query_labels, db_labels)
    k = _check_k(k, "k", high=len(db))
    (hits,) = _scan(query, db, q_labels, db_labels,
                    lambda chunk: (_relevant_in_topk(chunk, [k]),))
    return float((hits[:, 0].double() / k).mean())


def topk_accuracy(query_codes, db_codes, query_labels, db_labels,
                  k: Sequence[int] = (1, 5, 10)) -> dict[int, float]:
    """Fraction of queries with a relevant item among their first k (stable
    tie order), for each k: identification accuracy as reported by DCDH."""
    query, db, q_labels, db_labels = _check_inputs(query_codes, db_codes, query_labels, db_labels)
    ks = [_check_k(value, "k", high=len(db)) for value in np.atleast_1d(k).tolist()]
    (hits,) = _scan(query, db, q_labels, db_labels,
                    lambda chunk: (_relevant_in_topk(chunk, ks),))
    return {value: float((hits[:, i] > 0).double().mean()) for i, value in enumerate(ks)}


def precision_recall_within_radius(query_codes, db_codes, query_labels, db_labels,
                                   radius: int = 2) -> tuple[float, float]:
    """Macro precision and recall of the items within Hamming radius (P@H<=r).

    A query retrieving nothing counts precision 0 (the DDH / DCDH convention,
    which penalises codes that scatter queries far from everything).
    """
    query, db, q_labels, db_labels = _check_inputs(query_codes, db_codes, query_labels, db_labels)
    radius = _check_k(radius, "radius", low=0)
    counts = _scan(query, db, q_labels, db_labels, _distance_counts, with_ranks=False)
    precision, recall = _within_radius(*counts, radius)
    return float(precision.mean()), float(recall.mean())


def pr_curve(query_codes, db_codes, query_labels, db_labels) -> tuple[np.ndarray, np.ndarray]:
    """Macro precision and recall within Hamming radius r, for r = 0..bits.

    Returns two float64 arrays of shape (bits + 1,); recall is non-decreasing.
    Empty retrievals count precision 0, as in
    :func:`precision_recall_within_radius`.
    """
    query, db, q_labels, db_labels = _check_inputs(query_codes, db_codes, query_labels, db_labels)
    total, relevant = _scan(query, db, q_labels, db_labels, _distance_counts, with_ranks=False)
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

    def per_chunk(chunk):
        return (_average_precision(chunk), *_distance_counts(chunk),
                _relevant_in_topk(chunk, ks + accuracy_ks))

    ap, total, relevant, hits = _scan(query, db, q_labels, db_labels, per_chunk)
    precision, recall = _within_radius(total, relevant, radius)
    result = {"mAP": ap.mean(), "mAP_tie_aware": _tie_aware_ap(total, relevant).mean(),
              f"P@H<={radius}": precision.mean(), f"R@H<={radius}": recall.mean()}
    result.update({f"P@{k}": (hits[:, i].double() / k).mean() for i, k in enumerate(ks)})
    result.update({f"top{k}": (hits[:, len(ks) + i] > 0).double().mean()
                   for i, k in enumerate(accuracy_ks)})
    return {name: float(value) for name, value in result.items()}
