"""dfh_lib.analysis.scale: distractor codes, tie-aware recall, the searches."""
import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal

from dfh_lib.analysis import scale
from dfh_lib.core.index import pack_bits, unpack_bits
from dfh_lib.core.metrics import hamming_ranking


def _plus(packed, bits):
    return unpack_bits(packed, bits).numpy() > 0


@pytest.mark.parametrize("h, k, rho", [(0.0, 0.0, 0.5), (-1.2, 0.7, -0.6), (1.5, 1.4, 0.95),
                                       (-2.0, -0.3, 0.0), (0.4, -0.4, -0.99)])
def test_orthant_probability_matches_scipy(h, k, rho):
    expected = multivariate_normal(cov=[[1, rho], [rho, 1]]).cdf([h, k])
    got = scale._orthant(np.array(h), np.array(k), np.array(rho))
    assert got == pytest.approx(expected, abs=1e-6)


def test_distractors_match_the_marginals_and_correlations_they_are_given():
    # moments of correlated codes (identity clusters), some bits far from balanced
    rng = np.random.default_rng(0)
    centres = rng.choice([-1, 1], (12, 16)) * np.where(rng.random(16) < 0.3, 1, 0.2)
    real = np.sign(centres[rng.integers(0, 12, 4000)] + rng.normal(0, 0.8, (4000, 16)))
    plus = (real > 0).astype(float)
    marginals, both = plus.mean(0), plus.T @ plus / len(plus)
    model = scale.CodeDistribution.from_moments(marginals, both)
    drawn = _plus(model.sample(200_000, seed=1), 16).astype(float)
    # 200k draws: standard errors <= 0.0012, so 0.006 is five of them
    np.testing.assert_allclose(drawn.mean(0), marginals, atol=0.006)
    np.testing.assert_allclose(drawn.T @ drawn / len(drawn), both, atol=0.006)
    assert np.abs(np.corrcoef(plus.T) - np.eye(16)).max() > 0.2  # the case has correlations


def test_mixture_keeps_the_marginals_and_draws_them():
    rng = np.random.default_rng(4)
    centres = rng.choice([-1, 1], (30, 24))
    codes = centres[rng.integers(0, 30, 6000)] * np.where(rng.random((6000, 24)) < 0.05, -1, 1)
    model = scale.CodeMixture.fit(codes, num_classes=64)
    assert len(model.weights) == 64 and model.weights.sum() == pytest.approx(1)
    np.testing.assert_allclose(model.marginals, (codes > 0).mean(0), atol=0.01)
    drawn = _plus(model.sample(200_000, seed=1), 24)
    np.testing.assert_allclose(drawn.mean(0), model.marginals, atol=0.006)
    # it keeps the clumps: a drawn code is far closer to its nearest real code
    # than a code with the same marginals but independent bits
    real = torch.as_tensor(codes[:2000])
    def nearest(packed):
        codes_drawn = unpack_bits(packed[:300], 24)
        ids = scale.exact_search(codes_drawn, real, 1)
        return scale.packed_distances(packed[:300], pack_bits(real), ids).mean()
    independent = np.packbits(rng.random((300, 24)) < model.marginals, axis=1)
    assert nearest(model.sample(300, seed=2)) < nearest(independent) - 3


def test_mixture_class_count_is_capped_and_checked():
    codes = np.random.default_rng(0).choice([-1, 1], (100, 8))
    assert len(scale.CodeMixture.fit(codes, num_classes=256).weights) == 5  # N / 20
    with pytest.raises(ValueError, match="num_classes must be an integer >= 1"):
        scale.CodeMixture.fit(codes, num_classes=0)


def test_fit_keeps_the_exact_marginals_and_handles_constant_bits():
    codes = np.array([[1, 1, -1], [1, -1, -1], [1, 1, -1], [1, -1, -1]])
    model = scale.CodeDistribution.fit(codes)
    np.testing.assert_array_equal(model.plus, [1.0, 0.5, 0.0])
    drawn = _plus(model.sample(5000, seed=0), 3)
    assert drawn[:, 0].all() and not drawn[:, 2].any()
    assert 0.45 < drawn[:, 1].mean() < 0.55
    assert np.all(np.linalg.eigvalsh(model.latent) > 0)


def test_bit_statistics_match_numpy_and_zero_a_constant_bit():
    codes = np.random.default_rng(3).choice([-1, 1], (200, 6))
    codes[:, 4] = 1
    share, corr = scale.bit_statistics(codes)
    np.testing.assert_allclose(share, (codes > 0).mean(0))
    keep = [0, 1, 2, 3, 5]
    np.testing.assert_allclose(corr[np.ix_(keep, keep)], np.corrcoef((codes[:, keep] > 0).T))
    assert corr[4, 4] == 1 and not corr[4, keep].any()


def test_sampling_is_seeded_and_packed():
    model = scale.CodeDistribution.fit(np.random.default_rng(1).choice([-1, 1], (50, 12)))
    first = model.sample(1000, seed=3)
    assert first.shape == (1000, 2) and first.dtype == np.uint8
    np.testing.assert_array_equal(first, model.sample(1000, seed=3))
    assert not np.array_equal(first, model.sample(1000, seed=4))
    assert model.sample(0).shape == (0, 2)


@pytest.mark.parametrize("counts", [(100, 10), (-1,), (1.5,), (), (10, 10), (True,)])
def test_bad_distractor_counts_raise_one_line_errors(counts):
    with pytest.raises(ValueError, match="distractor counts must be") as error:
        scale.distractor_counts("cpu", counts)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("call, match", [
    (lambda m: m.sample(-5), "num_codes must be an integer >= 0"),
    (lambda m: m.sample(2.5), "num_codes must be an integer >= 0"),
    (lambda m: scale.CodeMixture.fit(np.ones((40, 8))).sample(-1), "num_codes must be"),
    (lambda m: scale.distractor_counts("huge"), "no distractor counts for profile"),
    (lambda m: scale.CodeDistribution.fit(np.ones((1, 8))), "at least 2 codes"),
    (lambda m: scale.CodeDistribution.from_moments([0.5, 1.2], np.eye(2)), "probabilities"),
])
def test_bad_sizes_and_inputs_raise_one_line_errors(call, match):
    model = scale.CodeDistribution.fit(np.random.default_rng(1).choice([-1, 1], (50, 8)))
    with pytest.raises(ValueError, match=match) as error:
        call(model)
    assert "\n" not in str(error.value)


def test_profile_counts_grow_and_tiny_stays_small():
    assert max(scale.distractor_counts("tiny")) <= 10_000
    assert scale.distractor_counts("cpu")[-1] >= 1_000_000


def test_tie_aware_recall_hand_cases():
    exact = np.array([[0, 1, 1, 2]])  # the exact top 4: distances 0, 1, 1, 2
    assert scale.tie_aware_recall(np.array([[0, 1, 1, 2]]), exact).tolist() == [1.0]
    # another item at distance 2 (a tie of the last place) is just as right
    assert scale.tie_aware_recall(np.array([[0, 1, 2, 1]]), exact).tolist() == [1.0]
    # one item of distance 1 missed, one at distance 3 instead: 3 of 4
    assert scale.tie_aware_recall(np.array([[0, 1, 2, 3]]), exact).tolist() == [0.75]
    # nothing found (-1) counts as missed
    assert scale.tie_aware_recall(np.array([[0, -1, -1, -1]]), exact).tolist() == [0.25]


def _tied_case(bits=16, pool=30, num_db=3000, num_query=40, seed=0):
    """Packed codes drawn from a small pool: every query has large distance ties."""
    rng = np.random.default_rng(seed)
    codes = rng.choice([-1, 1], (pool, bits))
    db = codes[rng.integers(0, pool, num_db)]
    query = np.where(rng.random((num_query, bits)) < 0.1, -1, 1) * codes[:num_query % pool + 1][
        rng.integers(0, num_query % pool + 1, num_query)]
    return pack_bits(query), pack_bits(db), query, db


def test_exact_search_in_chunks_is_the_library_ranking(monkeypatch):
    _, _, query, db = _tied_case()
    monkeypatch.setattr(scale, "_EXACT_CHUNK", 700)  # 5 uneven chunks, merged
    got = scale.exact_search(query, torch.as_tensor(db, dtype=torch.int8), k=25)
    np.testing.assert_array_equal(got, hamming_ranking(query, db, topk=25).numpy())


def test_faiss_flat_has_recall_one_against_exact_despite_ties():
    pytest.importorskip("faiss")
    packed_query, packed_db, query, db = _tied_case()
    methods = {m.name: m for m in scale.search_methods(len(packed_db), 16)}
    rows = scale.benchmark_search(packed_query, packed_db, 16, k=10, min_seconds=0,
                                  methods=[methods["exact (dfh_lib)"],
                                           methods["IndexBinaryFlat"]])
    assert [r["recall@10"] for r in rows] == [1.0, 1.0]
    # the ties are real: a flat index over the database in another order
    # returns other items in the last tie, and still scores 1
    import faiss
    perm = np.random.default_rng(0).permutation(len(packed_db))
    index = faiss.IndexBinaryFlat(16)
    index.add(packed_db[perm])
    ids = perm[index.search(packed_query, 10)[1]]
    exact = scale.exact_search(query, torch.as_tensor(db, dtype=torch.int8), 10)
    assert not np.array_equal(np.sort(ids, 1), np.sort(exact, 1))
    found = scale.packed_distances(packed_query, packed_db, ids)
    expected = scale.packed_distances(packed_query, packed_db, exact)
    assert scale.tie_aware_recall(found, expected).tolist() == [1.0] * len(query)


def test_benchmark_rows_cover_every_method_and_setting():
    pytest.importorskip("faiss")
    packed_query, packed_db, _, _ = _tied_case(bits=24, pool=2000, seed=2)
    methods = scale.search_methods(len(packed_db), 24)
    rows = scale.benchmark_search(packed_query, packed_db, 24, min_seconds=0)
    assert len(rows) == sum(len(m.settings) for m in methods)
    for row in rows:
        assert set(row) == {"method", "setting", "database size", "recall@10", "queries/s",
                            "build s", "bytes per face"}
        assert 0 <= row["recall@10"] <= 1 and row["queries/s"] > 0
        assert row["database size"] == len(packed_db)
    flat = next(r for r in rows if r["method"] == "IndexBinaryFlat")
    assert flat["bytes per face"] == pytest.approx(3, abs=0.1)  # 24 bits packed
    exhaustive = [r for r in rows if r["method"].startswith(("exact", "IndexBinaryFlat"))]
    assert len(exhaustive) == 3 and all(r["recall@10"] == 1.0 for r in exhaustive)
    # multi-index hashing with 3 flips in 2 x 12-bit tables finds all within radius 7
    assert max(r["recall@10"] for r in rows if "MultiHash" in r["method"]) == 1.0


def test_machine_limits_are_positive():
    assert scale.memory_bandwidth(1 << 24, repeats=1) > 1e8  # > 100 MB/s
    assert scale.popcount_rate(48, 1 << 12, trials=3) > 1e6
