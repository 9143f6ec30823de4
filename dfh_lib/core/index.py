"""Exact Hamming k-NN search over binary codes: packed bits, torch or faiss.

Both backends return the same neighbours in the same order as
:func:`dfh_lib.core.metrics.hamming_ranking`: by distance, ties by database index
(the order the codes were added in).
"""
from __future__ import annotations

import numpy as np
import torch

from .metrics import check_codes, hamming_ranking

try:  # optional dependency: pip install faiss-cpu
    import faiss
except ImportError:
    faiss = None

__all__ = ["pack_bits", "unpack_bits", "HammingIndex"]

_BACKENDS = ("auto", "torch", "faiss")
_QUERY_BLOCK = 1024  # queries per block when gathering distances
_RANGE_ENTRIES = 1 << 22  # queries x database items per faiss range search


def pack_bits(codes) -> np.ndarray:
    """Pack ±1 codes into bytes, 8 bits per byte: bit 1 for +1, bit 0 for -1.

    The explicit mapping is the point: DDH's released code packed ±1 codes
    as if they were 0/1 bits, which miscounts Hamming distances. Here
    ``popcount(a XOR b)`` of two packed codes is their Hamming distance. A
    code length that is not a multiple of 8 is padded with 0 bits at the end;
    the padding is the same for every code, so distances do not change.

    Shapes: codes (N, bits) in {-1, +1} -> (N, ceil(bits / 8)) uint8.
    """
    bits_set = check_codes(codes, "codes").cpu().numpy() > 0
    return np.packbits(bits_set, axis=1)


def unpack_bits(packed, bits: int) -> torch.Tensor:
    """Inverse of :func:`pack_bits`: (N, ceil(bits / 8)) uint8 -> (N, bits)
    int8 codes in {-1, +1}."""
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or bits < 1:
        raise ValueError(f"bits must be a positive integer; got {bits!r}")
    packed = np.asarray(packed)
    num_bytes = -(-bits // 8)
    if packed.dtype != np.uint8 or packed.ndim != 2 or packed.shape[1] != num_bytes:
        raise ValueError(f"packed must be a uint8 array of shape (N, {num_bytes}) for "
                         f"{bits} bits; got {packed.shape} {packed.dtype}")
    unpacked = np.unpackbits(packed, axis=1, count=bits).astype(np.int8)
    return torch.from_numpy(2 * unpacked - 1)


class HammingIndex:
    """Exact k-nearest-neighbour search over ±1 codes by Hamming distance.

    Args:
        bits: code length K.
        backend: ``"torch"`` (float32 matmul on the device of the added
            codes), ``"faiss"`` (packed bits and popcount in
            ``faiss.IndexBinaryFlat``) or ``"auto"`` (faiss when it is
            importable, else torch).

    Both backends give identical results: neighbours sorted by distance,
    ties by database index. How faiss's k-NN heap breaks ties depends on its
    version, so the faiss path keeps only the distance of the k-th neighbour
    and re-reads the items up to that distance (a range search) in stable
    order.

    Example::

        index = HammingIndex(48)
        index.add(db_codes)                       # (Ndb, 48) in {-1, +1}
        dist, idx = index.search(query_codes, k=100)
    """

    def __init__(self, bits: int, backend: str = "auto"):
        if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or bits < 1:
            raise ValueError(f"bits must be a positive integer; got {bits!r}")
        if backend not in _BACKENDS:
            raise ValueError(f"backend must be one of {_BACKENDS}; got {backend!r}")
        if backend == "faiss" and faiss is None:
            raise ImportError("backend='faiss' needs the faiss package: pip install "
                              "faiss-cpu (or use backend='torch')")
        self.bits = int(bits)
        self.backend = backend if backend != "auto" else ("torch" if faiss is None else "faiss")
        if self.backend == "faiss":
            # whole 64-bit words take faiss's fast popcount paths; the zero
            # padding is the same for every code, so distances are unchanged
            self._faiss_bytes = 8 * -(-self.bits // 64)
            self._faiss = faiss.IndexBinaryFlat(8 * self._faiss_bytes)
        else:
            self._codes = torch.empty(0, self.bits)

    def __len__(self) -> int:
        return self._faiss.ntotal if self.backend == "faiss" else len(self._codes)

    def __repr__(self) -> str:
        return f"HammingIndex(bits={self.bits}, backend={self.backend!r}, size={len(self)})"

    def add(self, codes) -> None:
        """Append database codes (N, bits) in {-1, +1}; they get the next indices."""
        codes = check_codes(codes, "codes", bits=self.bits)
        if self.backend == "faiss":
            self._faiss.add(self._pack_for_faiss(codes))
        else:
            self._codes = torch.cat([self._codes.to(codes.device), codes])

    def search(self, query_codes, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The k nearest database codes of each query, ties by database index.

        Shapes: query_codes (Nq, bits) in {-1, +1} -> distances (Nq, k)
        int32 and database indices (Nq, k) int64, both sorted.
        """
        query = check_codes(query_codes, "query_codes", bits=self.bits)
        if len(self) == 0:
            raise ValueError("the index is empty: call add(db_codes) before search")
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= len(self):
            raise ValueError(f"k must be an integer in 1..{len(self)} (the index size); got {k!r}")
        if self.backend == "faiss":
            return self._search_faiss(self._pack_for_faiss(query), int(k))
        return self._search_torch(query, int(k))

    def _search_torch(self, query: torch.Tensor, k: int):
        query = query.to(self._codes.device)
        indices = hamming_ranking(query, self._codes, topk=k)
        dist = torch.cat([self._distances_to(query[s:s + _QUERY_BLOCK], indices[s:s + _QUERY_BLOCK])
                          for s in range(0, len(query), _QUERY_BLOCK)])
        return dist, indices

    def _distances_to(self, query: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        """Distances of each query (Q, bits) to its found items (Q, k) -> (Q, k) int32."""
        dots = torch.einsum("qb,qkb->qk", query, self._codes[indices])
        return ((self.bits - dots) / 2).to(torch.int32)

    def _pack_for_faiss(self, codes: torch.Tensor) -> np.ndarray:
        packed = pack_bits(codes)
        return np.pad(packed, ((0, 0), (0, self._faiss_bytes - packed.shape[1])))

    def _search_faiss(self, packed: np.ndarray, k: int):
        kth = self._faiss.search(packed, k)[0][:, -1]
        dist = np.empty((len(packed), k), dtype=np.int32)
        indices = np.empty((len(packed), k), dtype=np.int64)
        for radius in np.unique(kth):
            rows = np.flatnonzero(kth == radius)
            # a query may find every database item, so bound queries x database per call
            block_size = max(1, _RANGE_ENTRIES // len(self))
            for block in np.array_split(rows, -(-len(rows) // block_size)):
                dist[block], indices[block] = self._first_within(packed[block], int(radius), k)
        return torch.from_numpy(dist), torch.from_numpy(indices)

    def _first_within(self, packed: np.ndarray, radius: int, k: int):
        """First k items at distance <= radius in (distance, index) order; each
        query has at least k of them (radius is its k-th neighbour's distance)."""
        lims, dist, ids = self._faiss.range_search(packed, radius + 1)  # keeps dist < radius + 1
        lims = lims.astype(np.int64)
        query = np.repeat(np.arange(len(packed)), np.diff(lims))
        order = np.lexsort((ids, dist, query))  # each query's block keeps its lims
        take = order[lims[:-1, None] + np.arange(k)]
        return dist[take], ids[take]
