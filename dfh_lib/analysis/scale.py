"""Searching a million faces: distractor codes, approximate Hamming search
and the machine's limits. Taught in Chapter 8
(book/08_searching_a_million_faces.ipynb).

* :class:`CodeDistribution` draws distractor codes with the per-bit
  marginals and pairwise bit correlations of a model's real codes (a
  dichotomized Gaussian: Emrich & Piedmonte 1991, Macke et al. 2009);
  :class:`CodeMixture` draws them from a latent class model fitted by EM,
  which also keeps how the real codes clump.
* :func:`search_methods` lists the searches compared (the library's exact
  ranking and faiss's binary indexes), :func:`benchmark_search` times them
  on one database and scores each with :func:`tie_aware_recall`.
* :func:`memory_bandwidth` and :func:`popcount_rate` measure the two limits
  of an exhaustive scan.

Codes travel packed, 8 bits per byte as :func:`dfh_lib.core.index.pack_bits`
writes them (bit 1 for +1), so ten million 48-bit codes take 60 MB.
"""
from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
from scipy.special import ndtr, ndtri

from ..core.index import faiss, pack_bits, unpack_bits
from ..core.metrics import check_codes, hamming_ranking

__all__ = ["real_database", "search_table", "CodeDistribution", "CodeMixture", "bit_statistics", "distractor_counts", "packed_distances",
           "exact_search", "tie_aware_recall", "SearchMethod", "search_methods",
           "benchmark_search", "memory_bandwidth", "popcount_rate"]

#: distractor counts per profile (the database is the real faces plus these)
_DISTRACTORS = {"tiny": (1_000, 10_000),
                "cpu": (1_000, 10_000, 100_000, 1_000_000),
                "gpu": (1_000, 10_000, 100_000, 1_000_000, 10_000_000)}
_SAMPLE_CHUNK = 1 << 18  # codes drawn at once: ~50 MB of Gaussians at 48 bits
_EXACT_CHUNK = 1 << 20  # database codes per call of the exact ranking


# --------------------------------------------------------------------------
# distractors: a dichotomized Gaussian with the real codes' first two moments
# --------------------------------------------------------------------------

def _orthant(h: np.ndarray, k: np.ndarray, rho: np.ndarray, nodes: int = 48) -> np.ndarray:
    """P(z1 < h, z2 < k) for standard normals of correlation rho (elementwise).

    Plackett's identity with r = sin(t): Phi(h) Phi(k) + 1/(2 pi) *
    integral_0^asin(rho) exp(-(h^2 - 2 h k sin t + k^2) / (2 cos^2 t)) dt,
    by Gauss-Legendre quadrature (smooth, also near |rho| = 1).
    """
    x, w = np.polynomial.legendre.leggauss(nodes)
    top = np.arcsin(np.clip(rho, -1, 1))[..., None]
    t = top * (x + 1) / 2
    h, k = h[..., None], k[..., None]
    f = np.exp(-(h * h - 2 * h * k * np.sin(t) + k * k) / (2 * np.cos(t) ** 2 + 1e-300))
    return ndtr(h[..., 0]) * ndtr(k[..., 0]) + (f * w).sum(-1) * top[..., 0] / (4 * np.pi)


@dataclass(frozen=True)
class CodeDistribution:
    """Random ±1 codes with given per-bit marginals and pairwise correlations.

    A dichotomized Gaussian: draw ``z ~ N(0, R)`` and set bit k to +1 where
    ``z_k < t_k``. The thresholds ``t_k = Phi^-1(p_k)`` give each bit its
    share ``p_k`` of +1, and each latent correlation ``R_jk`` is solved so
    that ``P(b_j = b_k = +1)`` matches too (then R is moved to the nearest
    valid correlation matrix if needed). It is the simplest model with the
    codes' first two moments; the identity clusters of real codes (and
    anything of third order) are not in it.

    Attributes:
        plus: (bits,) share of +1 per bit, ``p_k``.
        thresholds: (bits,) ``t_k``.
        latent: (bits, bits) correlation matrix R.
    """

    plus: np.ndarray
    thresholds: np.ndarray
    latent: np.ndarray

    @property
    def bits(self) -> int:
        return len(self.plus)

    @classmethod
    def fit(cls, codes) -> "CodeDistribution":
        """The distribution of ``codes``: (N, bits) in {-1, +1}, N >= 2."""
        codes = check_codes(codes, "codes").cpu().double()
        if len(codes) < 2:
            raise ValueError(f"codes must hold at least 2 codes to estimate correlations; "
                             f"got {len(codes)}")
        plus = (codes > 0).double()
        return cls.from_moments((plus.mean(0)).numpy(), (plus.T @ plus / len(plus)).numpy())

    @classmethod
    def from_moments(cls, plus, both) -> "CodeDistribution":
        """From ``plus`` (bits,) = P(b_k = +1) and ``both`` (bits, bits) =
        P(b_j = +1 and b_k = +1) (its diagonal is ``plus``)."""
        plus, both = np.asarray(plus, np.float64), np.asarray(both, np.float64)
        if plus.ndim != 1 or not np.all((plus >= 0) & (plus <= 1)):
            raise ValueError(f"plus must be a (bits,) array of probabilities; got shape "
                             f"{plus.shape}, range [{plus.min():.3g}, {plus.max():.3g}]")
        if both.shape != (len(plus), len(plus)):
            raise ValueError(f"both must have shape ({len(plus)}, {len(plus)}); "
                             f"got {both.shape}")
        # a constant bit has an infinite threshold; keep it finite (p within 1e-9)
        p = np.clip(plus, 1e-9, 1 - 1e-9)
        t = ndtri(p)
        j, k = np.triu_indices(len(p), 1)
        target = np.clip(both[j, k], 0, np.minimum(p[j], p[k]))
        low, high = np.full(len(j), -1.0), np.full(len(j), 1.0)
        for _ in range(50):  # P(both) grows with rho: bisection, 1e-15 wide
            mid = (low + high) / 2
            above = _orthant(t[j], t[k], mid) > target
            high, low = np.where(above, mid, high), np.where(above, low, mid)
        latent = np.eye(len(p))
        latent[j, k] = latent[k, j] = (low + high) / 2
        return cls(plus.copy(), t, _nearest_correlation(latent))

    def sample(self, num_codes: int, seed: int = 0) -> np.ndarray:
        """``num_codes`` packed codes: (num_codes, ceil(bits / 8)) uint8."""
        _check_count(num_codes)
        rng = np.random.default_rng(seed)
        mix = np.linalg.cholesky(self.latent).T.astype(np.float32)
        t = self.thresholds.astype(np.float32)
        out = np.empty((num_codes, -(-self.bits // 8)), np.uint8)
        for start in range(0, num_codes, _SAMPLE_CHUNK):
            n = min(_SAMPLE_CHUNK, num_codes - start)
            z = rng.standard_normal((n, self.bits), dtype=np.float32) @ mix
            out[start:start + n] = np.packbits(z < t, axis=1)
        return out


@dataclass(frozen=True)
class CodeMixture:
    """Random ±1 codes from a mixture of product-Bernoulli classes.

    ``P(b) = sum_c weights[c] * prod_k plus[c, k]^[b_k = +1] (1 - plus[c, k])^[b_k = -1]``
    (a latent class model), fitted by EM. Each class is a cloud of codes
    around its own centre, so the mixture reproduces how real codes clump
    (faces of one person, look-alikes, collisions) — the structure that
    decides how close strangers come to a query — as well as, on average,
    the share of +1 per bit. Bits are independent *within* a class only.

    Attributes:
        weights: (C,) class probabilities.
        plus: (C, bits) P(b_k = +1 | class).
    """

    weights: np.ndarray
    plus: np.ndarray

    @property
    def bits(self) -> int:
        return self.plus.shape[1]

    @property
    def marginals(self) -> np.ndarray:
        """(bits,) share of +1 per bit of the mixture."""
        return self.weights @ self.plus

    @classmethod
    def fit(cls, codes, num_classes: int = 256, iterations: int = 100,
            seed: int = 0) -> "CodeMixture":
        """EM on ``codes`` (N, bits) in {-1, +1}; ``num_classes`` is capped
        at N / 20 (and at least 1). Each class's shares get a pseudo-count
        of 0.1 for +1 and for -1, so no bit is certain (and no log is -inf)."""
        x = (check_codes(codes, "codes").cpu().numpy() > 0).astype(np.float32)
        if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) \
                or num_classes < 1:
            raise ValueError(f"num_classes must be an integer >= 1; got {num_classes!r}")
        num_classes = max(1, min(num_classes, len(x) // 20))
        rng = np.random.default_rng(seed)
        plus = 0.25 + 0.5 * x[rng.choice(len(x), num_classes, replace=False)]
        weights = np.full(num_classes, 1 / num_classes, np.float32)
        for _ in range(iterations):
            # E step: class responsibilities of each code (log domain)
            log_p = x @ np.log(plus).T + (1 - x) @ np.log(1 - plus).T + np.log(weights)
            log_p -= log_p.max(1, keepdims=True)
            resp = np.exp(log_p)
            resp /= resp.sum(1, keepdims=True)
            # M step, with a pseudo-count of 0.1 per outcome
            counts = resp.sum(0)
            weights = counts / len(x)
            plus = (resp.T @ x + 0.1) / (counts[:, None] + 0.2)
        return cls(weights.astype(np.float64), plus.astype(np.float64))

    def sample(self, num_codes: int, seed: int = 0) -> np.ndarray:
        """``num_codes`` packed codes: (num_codes, ceil(bits / 8)) uint8."""
        _check_count(num_codes)
        rng = np.random.default_rng(seed)
        out = np.empty((num_codes, -(-self.bits // 8)), np.uint8)
        plus = self.plus.astype(np.float32)
        for start in range(0, num_codes, _SAMPLE_CHUNK):
            n = min(_SAMPLE_CHUNK, num_codes - start)
            classes = rng.choice(len(self.weights), n, p=self.weights / self.weights.sum())
            out[start:start + n] = np.packbits(
                rng.random((n, self.bits), dtype=np.float32) < plus[classes], axis=1)
        return out


def _check_count(num_codes) -> None:
    if isinstance(num_codes, bool) or not isinstance(num_codes, (int, np.integer)) \
            or num_codes < 0:
        raise ValueError(f"num_codes must be an integer >= 0; got {num_codes!r}")


def bit_statistics(codes) -> tuple[np.ndarray, np.ndarray]:
    """Share of +1 per bit (bits,) and the bit correlation matrix (bits,
    bits) of ±1 codes (N, bits); a constant bit correlates 0 with the others."""
    plus = (check_codes(codes, "codes").cpu().numpy() > 0).astype(np.float64)
    share = plus.mean(0)
    centred = plus - share
    cov = centred.T @ centred / len(plus)
    scale = np.sqrt(np.diag(cov))
    corr = np.divide(cov, np.outer(scale, scale), out=np.zeros_like(cov),
                     where=np.outer(scale, scale) > 0)
    np.fill_diagonal(corr, 1.0)
    return share, corr


def _nearest_correlation(matrix: np.ndarray, floor: float = 1e-6) -> np.ndarray:
    """``matrix`` with eigenvalues clipped at ``floor``, rescaled to a unit diagonal."""
    values, vectors = np.linalg.eigh(matrix)
    if values.min() >= floor:
        return matrix
    fixed = (vectors * np.maximum(values, floor)) @ vectors.T
    scale = np.sqrt(np.diag(fixed))
    return fixed / scale[:, None] / scale[None, :]


def distractor_counts(profile_name: str, counts: Sequence[int] | None = None) -> tuple[int, ...]:
    """The distractor counts of a profile (``counts`` overrides), checked:
    integers >= 0, increasing."""
    if counts is None:
        if profile_name not in _DISTRACTORS:
            raise ValueError(f"no distractor counts for profile {profile_name!r}; known: "
                             f"{sorted(_DISTRACTORS)} (or pass counts=...)")
        counts = _DISTRACTORS[profile_name]
    counts = tuple(counts)
    if not counts or any(isinstance(c, bool) or not isinstance(c, (int, np.integer)) or c < 0
                         for c in counts) or list(counts) != sorted(set(counts)):
        raise ValueError(f"distractor counts must be increasing integers >= 0, e.g. "
                         f"(1_000, 1_000_000); got {counts!r}")
    return tuple(int(c) for c in counts)


# --------------------------------------------------------------------------
# exact search and tie-aware recall
# --------------------------------------------------------------------------

def packed_distances(query: np.ndarray, db: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Hamming distances of each query to the database items ``ids``.

    Shapes: query (Q, B) and db (N, B) packed uint8, ids (Q, k) int with -1
    for "nothing found" -> (Q, k) int64, -1 where ids is -1.
    """
    found = ids >= 0
    xor = np.bitwise_xor(query[:, None, :], db[np.where(found, ids, 0)])
    dist = np.unpackbits(xor, axis=-1).sum(-1, dtype=np.int64)
    return np.where(found, dist, -1)


def exact_search(query_codes, db_codes, k: int) -> np.ndarray:
    """The k nearest database codes of each query by the library's exact
    ranking (:func:`dfh_lib.core.metrics.hamming_ranking`: by distance, ties
    by index), over database chunks of 2**20 codes merged in the same order,
    so memory stays bounded for any database size.

    Shapes: query_codes (Q, bits), db_codes (N, bits) in {-1, +1}
    -> (Q, k) int64 database indices.
    """
    query = check_codes(query_codes, "query_codes")
    ids, dist = [], []
    for start in range(0, len(db_codes), _EXACT_CHUNK):
        chunk = torch.as_tensor(db_codes[start:start + _EXACT_CHUNK])
        found = hamming_ranking(query, chunk, topk=min(k, len(chunk)))
        dots = torch.einsum("qb,qkb->qk", query, chunk[found].float())
        ids.append(found.numpy() + start)
        dist.append(((query.shape[1] - dots) / 2).round().long().numpy())
    ids, dist = np.concatenate(ids, 1), np.concatenate(dist, 1)
    order = np.lexsort((ids, dist), axis=-1)[:, :k]  # per row: by distance, then index
    return np.take_along_axis(ids, order, 1)


def tie_aware_recall(found_dist: np.ndarray, exact_dist: np.ndarray) -> np.ndarray:
    """Recall@k of a search against the exact k nearest, per query, tie-aware.

    Any k items at the k smallest distances are a correct answer, so the
    score counts distances, not identities: recall = sum over distances d of
    min(#found at d, #exact at d) / k. A search that returns another correct
    top k (other items in the last tie) scores 1.

    Shapes: found_dist (Q, k) true distances of the k distinct items found
    (-1: nothing found), exact_dist (Q, k) of the exact top k -> (Q,) float64.
    """
    found_dist, exact_dist = np.asarray(found_dist), np.asarray(exact_dist)
    if found_dist.shape != exact_dist.shape or found_dist.ndim != 2:
        raise ValueError(f"found_dist and exact_dist must both have shape (Q, k); got "
                         f"{found_dist.shape} and {exact_dist.shape}")
    width = int(max(found_dist.max(initial=0), exact_dist.max(initial=0))) + 1
    rows = np.arange(len(found_dist))[:, None] * width

    def counts(dist):
        keep = dist >= 0
        return np.bincount((rows + dist)[keep], minlength=len(dist) * width).reshape(-1, width)

    overlap = np.minimum(counts(found_dist), counts(exact_dist)).sum(1)
    return overlap / exact_dist.shape[1]


# --------------------------------------------------------------------------
# the searches compared
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class SearchMethod:
    """One search: ``build(db)`` makes an index of the packed database,
    each ``settings[label](index)`` prepares one search setting of it (e.g.
    IVF's nprobe), ``search(index, query, k)`` returns (Q, k) indices (-1 =
    none) and ``nbytes(index)`` its memory."""

    name: str
    build: Callable
    search: Callable
    settings: dict
    nbytes: Callable


def _require_faiss():
    if faiss is None:
        raise ImportError("the faiss searches need faiss: pip install faiss-cpu "
                          "(or dfh-book[faiss])")


def _faiss_search(index, query, k):
    return index.search(query, k)[1]


def _serialized_bytes(index) -> int:
    return int(faiss.serialize_index_binary(index).nbytes)


def _set(attribute: str, value):
    def apply(index):
        setattr(index, attribute, value)
    return apply


def _exact_method(bits: int) -> SearchMethod:
    def build(db):
        return unpack_bits(db, bits)  # the ±1 codes the library ranks

    def search(codes, query, k):
        return exact_search(unpack_bits(query, bits), codes, k)

    return SearchMethod("exact (dfh_lib)", build, search, {"": lambda index: None},
                        lambda codes: codes.element_size() * codes.numel())


def _pad(packed: np.ndarray, num_bytes: int) -> np.ndarray:
    """Packed codes with zero bytes appended (the same for every code, so
    the distances do not change)."""
    return np.pad(packed, ((0, 0), (0, num_bytes - packed.shape[1])))


def _flat_method(bits: int, num_bytes: int) -> SearchMethod:
    """Exhaustive faiss scan of the codes stored in ``num_bytes`` bytes each."""
    def build(db):
        index = faiss.IndexBinaryFlat(8 * num_bytes)
        index.add(_pad(db, num_bytes))
        return index

    def search(index, query, k):
        return index.search(_pad(query, num_bytes), k)[1]

    name = "IndexBinaryFlat" + ("" if 8 * num_bytes == bits else " 64-bit words")
    return SearchMethod(name, build, search, {"": lambda index: None}, _serialized_bytes)


def _ivf_method(bits: int, nlist: int, seed: int) -> SearchMethod:
    def build(db):
        quantizer = faiss.IndexBinaryFlat(bits)
        index = faiss.IndexBinaryIVF(quantizer, bits, nlist)
        index.cp.seed, index.cp.niter = seed, 10
        # k-means on a sample of 40 codes per list (faiss asks for >= 39)
        sample = np.random.default_rng(seed).choice(len(db), min(len(db), 40 * nlist),
                                                    replace=False)
        index.train(db[np.sort(sample)])
        index.add(db)
        index.referenced_objects = [quantizer]  # the quantizer lives as long as the index
        return index

    settings = {f"nprobe={p}": _set("nprobe", p) for p in (1, 4, 16, 64) if p <= nlist}
    return SearchMethod(f"IndexBinaryIVF nlist={nlist}", build, _faiss_search, settings,
                        _serialized_bytes)


def _hash_method(name: str, make_index, max_flips: int) -> SearchMethod:
    def build(db):
        index = make_index()
        index.add(db)
        return index

    settings = {f"nflip={f}": _set("nflip", f) for f in range(max_flips + 1)}
    return SearchMethod(name, build, _faiss_search, settings, _serialized_bytes)


def search_methods(num_db: int, bits: int, seed: int = 0) -> list[SearchMethod]:
    """The searches compared for a database of ``num_db`` codes of ``bits``
    bits (a multiple of 8): the library's exact ranking; faiss's exhaustive
    ``IndexBinaryFlat`` (and, when bits is not a multiple of 64, the same
    scan over codes padded to 64-bit words, faiss's fastest popcount loop);
    inverted lists ``IndexBinaryIVF`` (nlist ~ sqrt(N), nprobe 1..64); one
    hash table on b ~ log2(N) bits ``IndexBinaryHash``; and multi-index
    hashing ``IndexBinaryMultiHash`` (Norouzi et al. 2012) in bits / 16
    tables; the hash indexes with 0..3 (multi-index: 0..2) flipped bits."""
    _require_faiss()
    if bits % 8:
        raise ValueError(f"faiss's binary indexes need bits divisible by 8; got {bits}")
    # ~sqrt(N) lists, and at least 40 training codes per list
    nlist = 2 ** max(4, min(round(math.log2(math.sqrt(num_db))),
                            math.floor(math.log2(max(num_db, 1) / 40))))
    b = min(bits, max(8, round(math.log2(num_db))))  # ~1 code per bucket
    nhash = max(2, bits // 16)
    methods = [_exact_method(bits), _flat_method(bits, bits // 8)]
    if bits % 64:
        methods.append(_flat_method(bits, 8 * -(-bits // 64)))
    return methods + [
        _ivf_method(bits, nlist, seed),
        _hash_method(f"IndexBinaryHash b={b}", lambda: faiss.IndexBinaryHash(bits, b), 3),
        # a table of 16 bits probes 137 buckets with 2 flips, 697 with 3: at a
        # million codes (~15 a bucket) 3 flips read ~31,000 codes per query
        _hash_method(f"IndexBinaryMultiHash {nhash}x{bits // nhash}",
                     lambda: faiss.IndexBinaryMultiHash(bits, nhash, bits // nhash), 2)]


def _timed(fn, min_seconds: float = 0.2, max_repeats: int = 50):
    """(result, fastest seconds per call): repeated until ``min_seconds``
    have passed, and at least 5 times while that takes under 2 s."""
    best, total, repeats = math.inf, 0.0, 0
    while repeats < max_repeats and (total < min_seconds or (repeats < 5 and total < 2)):
        start = time.perf_counter()
        result = fn()
        elapsed = time.perf_counter() - start
        best, total, repeats = min(best, elapsed), total + elapsed, repeats + 1
    return result, best


def benchmark_search(query: np.ndarray, db: np.ndarray, bits: int, k: int = 10,
                     methods: Sequence[SearchMethod] | None = None,
                     min_seconds: float = 0.2) -> list[dict]:
    """Time every search (and setting) on one database and score it.

    Args:
        query, db: packed codes (Q, bits / 8) and (N, bits / 8) uint8.
        methods: default :func:`search_methods` for this database.
        min_seconds: each search is repeated until this much time has passed
            (and at least 5 times while that takes under 2 s; at most 50); the
            fastest call counts, the one least disturbed by other work on the
            machine.

    Returns one dict per (method, setting): ``method``, ``setting``,
    ``database size``, ``recall@k`` (mean :func:`tie_aware_recall` against
    the library's exact search), ``queries/s``, ``build s`` and
    ``bytes per face``.
    """
    if k > len(db):
        raise ValueError(f"k must be <= the database size {len(db)}; got {k}")
    methods = search_methods(len(db), bits) if methods is None else methods
    exact = None
    rows = []
    for method in methods:
        start = time.perf_counter()
        index = method.build(db)
        build_seconds = time.perf_counter() - start
        per_face = method.nbytes(index) / len(db)
        for label, prepare in method.settings.items():
            prepare(index)
            ids, seconds = _timed(lambda: method.search(index, query, k), min_seconds)
            found = packed_distances(query, db, ids)
            if exact is None:  # the first method is the exact reference
                exact = np.sort(found, 1)
            rows.append({"method": method.name, "setting": label, "database size": len(db),
                         f"recall@{k}": float(tie_aware_recall(found, exact).mean()),
                         "queries/s": len(query) / seconds, "build s": build_seconds,
                         "bytes per face": per_face})
    return rows


# --------------------------------------------------------------------------
# the machine's limits for an exhaustive scan
# --------------------------------------------------------------------------

def _threads() -> int:
    return max(1, torch.get_num_threads())


def _parallel(fn, parts: list) -> float:
    """Seconds to run ``fn(part)`` for every part, one thread each."""
    threads = [threading.Thread(target=fn, args=(part,)) for part in parts]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - start


def memory_bandwidth(num_bytes: int = 1 << 30, repeats: int = 3) -> float:
    """Read bandwidth of main memory in bytes/s: the fastest of ``repeats``
    sums of a ``num_bytes`` array (far larger than the caches), split over
    one thread per torch thread."""
    data = np.ones(num_bytes // 8, np.uint64)
    parts = np.array_split(data, _threads())
    seconds = min(_parallel(np.sum, parts) for _ in range(repeats))
    return data.nbytes / seconds


def popcount_rate(bits: int = 48, num_codes: int = 1 << 15, trials: int = 50) -> float:
    """Codes compared per second by XOR + popcount (numpy's ``bitwise_count``
    on 64-bit words) against a database small enough to stay in cache: the
    compute limit of an exhaustive scan. One core's rate — the fastest of
    ``trials`` short runs, the one least disturbed by other work — times the
    torch thread count (each core has its own popcount units)."""
    if not hasattr(np, "bitwise_count"):
        raise RuntimeError("popcount_rate needs numpy >= 2.0 (np.bitwise_count)")
    words = -(-bits // 64)
    db = np.random.default_rng(0).integers(0, 2**63, (num_codes, words), dtype=np.uint64)
    xor, count = np.empty_like(db), np.empty(db.shape, np.uint8)
    best = math.inf
    for _ in range(trials):
        start = time.perf_counter()
        np.bitwise_count(np.bitwise_xor(db[:1], db, out=xor), out=count)
        best = min(best, time.perf_counter() - start)
    return _threads() * num_codes / best


def real_database(model, splits, everyone) -> tuple[np.ndarray, np.ndarray, object]:
    """Packed codes of the queries and of the real database: the protocol's
    database faces plus every face in ``everyone`` of a person who is not a
    query identity (strangers). Without strangers (e.g. synthfaces) the
    database faces alone. Returns ``(query, real, strangers)``, the last a
    FaceDataset (possibly empty)."""
    from ..engine.encoding import binary_codes

    names = np.array(everyone.identity_names)[everyone.labels]
    others = everyone.subset(np.flatnonzero(~np.isin(names, splits.query.identity_names)))
    codes = [binary_codes(model, splits.database)]
    if len(others):
        codes.append(binary_codes(model, others))
    return pack_bits(binary_codes(model, splits.query)), pack_bits(torch.cat(codes)), others


def search_table(query: np.ndarray, real: np.ndarray, distractors: np.ndarray,
                 counts: Sequence[int], bits: int, k: int = 10) -> list[dict]:
    """:func:`benchmark_search` rows for the real database plus the first
    ``count`` distractors, for each of ``counts``; each row is named by its
    ``search`` (method and setting) and its ``index`` family."""
    rows = []
    for count in counts:
        db = np.concatenate([real, distractors[:count]])
        rows += benchmark_search(query, db, bits, k=k)
        print(f"{len(db):>12,} codes: done", flush=True)
    for row in rows:
        row["search"] = f"{row['method']} {row['setting']}".strip()
    return rows
