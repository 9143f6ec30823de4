"""dfh_lib.core.index: bit packing and the torch / faiss Hamming search."""
import numpy as np
import pytest
import torch

from dfh_lib import index as index_module
from dfh_lib.core.index import HammingIndex, pack_bits, unpack_bits
from dfh_lib.core.metrics import hamming_distance, hamming_ranking

needs_faiss = pytest.mark.skipif(index_module.faiss is None,
                                 reason="faiss not installed (pip install faiss-cpu)")


def _codes(num, bits, pool=None, seed=0):
    """Random ±1 codes; ``pool`` draws them from that many distinct codes."""
    rng = np.random.default_rng(seed)
    if pool is None:
        return rng.choice([-1, 1], (num, bits)).astype(np.int8)
    return rng.choice([-1, 1], (pool, bits)).astype(np.int8)[rng.integers(0, pool, num)]


def test_pack_bits_maps_plus_one_to_bit_one():
    codes = np.array([[1, -1, -1, -1, -1, -1, -1, -1, 1, 1], [-1] * 10])
    packed = pack_bits(codes)
    assert packed.dtype == np.uint8
    # first code: 1000 0000 | 11 + six 0s of padding
    assert packed.tolist() == [[0b10000000, 0b11000000], [0, 0]]


@pytest.mark.parametrize("bits", [1, 8, 12, 36, 48])
def test_pack_unpack_round_trip(bits):
    codes = _codes(20, bits, seed=bits)
    packed = pack_bits(torch.as_tensor(codes))
    assert packed.shape == (20, -(-bits // 8))
    restored = unpack_bits(packed, bits)
    assert restored.dtype == torch.int8
    np.testing.assert_array_equal(restored.numpy(), codes)


@pytest.mark.parametrize("bits", [12, 36])
def test_popcount_of_packed_codes_is_hamming_distance(bits):
    query, db = _codes(6, bits, seed=1), _codes(30, bits, seed=2)
    xor = pack_bits(query)[:, None, :] ^ pack_bits(db)[None, :, :]
    popcount = np.unpackbits(xor, axis=2).sum(2)
    np.testing.assert_array_equal(popcount, hamming_distance(query, db).numpy())


def test_unpack_bits_rejects_bad_shapes():
    with pytest.raises(ValueError, match=r"shape \(N, 2\) for 12 bits"):
        unpack_bits(np.zeros((3, 3), np.uint8), 12)
    with pytest.raises(ValueError, match="uint8"):
        unpack_bits(np.zeros((3, 2), np.int64), 12)
    with pytest.raises(ValueError, match="bits must be a positive integer"):
        unpack_bits(np.zeros((3, 2), np.uint8), 0)


def _naive_search(query, db, k):
    dist = hamming_distance(query, db).numpy()
    order = np.stack([np.lexsort((np.arange(len(db)), row))[:k] for row in dist])
    return np.take_along_axis(dist, order, 1), order


@pytest.mark.parametrize("bits, pool, k", [(12, 6, 40), (36, None, 7), (48, None, 1)])
def test_torch_backend_matches_naive_stable_search(bits, pool, k):
    db, query = _codes(300, bits, pool, seed=3), _codes(25, bits, seed=4)
    index = HammingIndex(bits, backend="torch")
    index.add(db[:100])
    index.add(db[100:])  # incremental adds keep the database order
    dist, idx = index.search(query, k)
    assert dist.dtype == torch.int32 and idx.dtype == torch.int64
    expected_dist, expected_idx = _naive_search(query, db, k)
    np.testing.assert_array_equal(dist.numpy(), expected_dist)
    np.testing.assert_array_equal(idx.numpy(), expected_idx)


@needs_faiss
@pytest.mark.parametrize("bits, pool, k", [(12, 6, 40), (12, 40, 300), (36, None, 7), (48, 50, 100),
                                           (48, None, 1)])
def test_faiss_and_torch_backends_are_identical(bits, pool, k):
    db, query = _codes(1000, bits, pool, seed=bits), _codes(40, bits, seed=5)
    results = []
    for backend in ("torch", "faiss"):
        index = HammingIndex(bits, backend=backend)
        index.add(db)
        results.append(index.search(query, k))
    assert torch.equal(results[0][0], results[1][0])
    assert torch.equal(results[0][1], results[1][1])
    assert torch.equal(results[0][1], hamming_ranking(query, db, topk=k))


class _LargestIdFirst:
    """A faiss index whose k-NN breaks distance ties towards larger ids."""

    def __init__(self, index):
        self.index, self.ntotal = index, index.ntotal

    def search(self, x, k):
        dist, ids = self.index.search(x, self.ntotal)
        order = np.lexsort((-ids, dist), axis=1)[:, :k]
        return np.take_along_axis(dist, order, 1), np.take_along_axis(ids, order, 1)

    def range_search(self, x, radius):
        return self.index.range_search(x, radius)


@needs_faiss
def test_faiss_result_does_not_depend_on_its_tie_breaking():
    db, query = _codes(500, 12, pool=10, seed=6), _codes(30, 12, seed=7)
    index = HammingIndex(12, backend="faiss")
    index.add(db)
    index._faiss = _LargestIdFirst(index._faiss)
    _, idx = index.search(query, 50)
    assert torch.equal(idx, hamming_ranking(query, db, topk=50))


def test_auto_backend_prefers_faiss_when_importable():
    expected = "torch" if index_module.faiss is None else "faiss"
    assert HammingIndex(16).backend == expected


def test_index_rejects_bad_input(monkeypatch):
    with pytest.raises(ValueError, match="backend must be one of"):
        HammingIndex(12, backend="annoy")
    with pytest.raises(ValueError, match="bits must be a positive integer"):
        HammingIndex(0)
    index = HammingIndex(12, backend="torch")
    with pytest.raises(ValueError, match="index is empty"):
        index.search(_codes(2, 12), 1)
    with pytest.raises(ValueError, match="codes must have 12 bits"):
        index.add(_codes(5, 16))
    index.add(_codes(5, 12))
    with pytest.raises(ValueError, match=r"k must be an integer in 1..5"):
        index.search(_codes(2, 12), 6)
    with pytest.raises(ValueError, match=r"-1 and \+1"):
        index.search(np.zeros((2, 12)), 1)
    monkeypatch.setattr(index_module, "faiss", None)
    with pytest.raises(ImportError, match="pip install faiss-cpu"):
        HammingIndex(12, backend="faiss")
