"""dfh_lib.core.metrics against hand-computed cases, scikit-learn and naive loops."""
import itertools

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score

from dfh_lib import metrics
from dfh_lib.core.metrics import (binarize, evaluate_retrieval, hamming_distance, hamming_ranking,
                             mean_average_precision, pr_curve, precision_at_k,
                             precision_recall_within_radius, topk_accuracy)

# --------------------------------------------------------------------------
# hand-computed case: 2-bit codes, 4 database items, ties at distance 1
#   db:      item0 (+,-)  item1 (+,+)  item2 (-,+)  item3 (-,-)
#   labels:      1            1            0            0
# query A (+,+), label 0: distances [1, 0, 1, 2], relevant {2, 3}
#   stable order 1, 0, 2, 3 -> AP = (1/3 + 2/4) / 2 = 5/12
#   tie {0, 2} at distance 1 in random order: item2 at rank 2 or 3, so
#   AP = ((1/2 + 1/3) / 2 + 2/4) / 2 = 11/24
# query B (-,-), label 1: distances [1, 2, 1, 0], relevant {0, 1}
#   stable order 3, 0, 2, 1 -> AP = (1/2 + 2/4) / 2 = 1/2; tie-aware 11/24
# --------------------------------------------------------------------------
DB = np.array([[1, -1], [1, 1], [-1, 1], [-1, -1]])
DB_LABELS = np.array([1, 1, 0, 0])
QUERY = np.array([[1, 1], [-1, -1]])
QUERY_LABELS = np.array([0, 1])


def _one(i):
    return QUERY[i:i + 1], DB, QUERY_LABELS[i:i + 1], DB_LABELS


def test_binarize_maps_zero_to_plus_one():
    codes = binarize(torch.tensor([[-0.5, 0.0, 2.0], [-0.0, -3.0, 1e-9]]))
    assert codes.dtype == torch.int8
    assert codes.tolist() == [[-1, 1, 1], [1, -1, 1]]
    assert binarize(np.zeros((1, 4))).tolist() == [[1, 1, 1, 1]]


@pytest.mark.parametrize("bad, match", [(np.zeros(4), "shape"), (np.array([[0.1, np.nan]]), "NaN")])
def test_binarize_rejects_bad_input(bad, match):
    with pytest.raises(ValueError, match=match):
        binarize(bad)


def test_hand_computed_distances_and_ranking():
    assert hamming_distance(QUERY, DB).tolist() == [[1, 0, 1, 2], [1, 2, 1, 0]]
    assert hamming_ranking(QUERY, DB).tolist() == [[1, 0, 2, 3], [3, 0, 2, 1]]
    assert hamming_ranking(QUERY, DB, topk=2).tolist() == [[1, 0], [3, 0]]


def test_hand_computed_average_precision():
    assert mean_average_precision(*_one(0)) == pytest.approx(5 / 12)
    assert mean_average_precision(*_one(1)) == pytest.approx(1 / 2)
    assert mean_average_precision(QUERY, DB, QUERY_LABELS, DB_LABELS) == pytest.approx(11 / 24)
    assert mean_average_precision(*_one(0), ties="average") == pytest.approx(11 / 24)
    assert mean_average_precision(*_one(1), ties="average") == pytest.approx(11 / 24)
    # mAP@k: mean over the relevant items within the top k; none there -> 0
    assert mean_average_precision(*_one(0), topk=3) == pytest.approx(1 / 3)
    assert mean_average_precision(*_one(0), topk=2) == 0.0
    assert mean_average_precision(*_one(1), topk=2) == pytest.approx(1 / 2)


def test_hand_computed_precision_recall_and_accuracy():
    # radius 1: A retrieves {1, 0, 2} with relevant {2}; B retrieves {3, 0, 2} with {0}
    assert precision_recall_within_radius(QUERY, DB, QUERY_LABELS, DB_LABELS, radius=1) \
        == pytest.approx((1 / 3, 1 / 2))
    assert precision_recall_within_radius(QUERY, DB, QUERY_LABELS, DB_LABELS, radius=0) \
        == (0.0, 0.0)
    assert precision_at_k(*_one(0), k=3) == pytest.approx(1 / 3)
    assert precision_at_k(*_one(1), k=2) == pytest.approx(1 / 2)
    assert topk_accuracy(QUERY, DB, QUERY_LABELS, DB_LABELS, k=(1, 2, 3)) \
        == {1: 0.0, 2: 0.5, 3: 1.0}


def test_query_retrieving_nothing_counts_precision_zero():
    db = np.array([[1, 1, 1], [1, 1, -1]])
    query = np.array([[-1, -1, -1], [1, 1, 1]])  # first: nearest item at distance 2
    labels = np.array([0, 0])
    precision, recall = precision_recall_within_radius(query, db, labels, labels, radius=1)
    assert precision == pytest.approx((0 + 1) / 2)
    assert recall == pytest.approx((0 + 1) / 2)


def test_query_without_relevant_items_scores_zero():
    result = evaluate_retrieval(QUERY, DB, np.array([7, 7]), DB_LABELS, ks=(2,), accuracy_ks=(4,))
    assert all(value == 0.0 for value in result.values())


# --------------------------------------------------------------------------
# independent references on random codes, with heavy ties
# --------------------------------------------------------------------------

def _random_case(bits, num_labels, num_db=400, num_query=30, pool=None, seed=0):
    """Random ±1 codes; ``pool`` draws the database from that many distinct
    codes (heavy ties); every query label occurs in the database."""
    rng = np.random.default_rng(seed)
    if pool is None:
        db = rng.choice([-1, 1], (num_db, bits))
    else:
        db = rng.choice([-1, 1], (pool, bits))[rng.integers(0, pool, num_db)]
    query = rng.choice([-1, 1], (num_query, bits))
    db_labels = rng.integers(0, num_labels, num_db)
    return query, db, db_labels[rng.integers(0, num_db, num_query)], db_labels


def _naive_distances(query, db):
    # popcount of XOR on the 0/1 bit strings
    pack = [int("".join("1" if v > 0 else "0" for v in row), 2) for row in np.asarray(query)]
    pack_db = [int("".join("1" if v > 0 else "0" for v in row), 2) for row in np.asarray(db)]
    return np.array([[bin(a ^ b).count("1") for b in pack_db] for a in pack])


def _stable_order(dist_row):
    return np.lexsort((np.arange(len(dist_row)), dist_row))


def _naive_ap_at_k(relevant_sorted, k):
    hits, total, count = 0, 0.0, 0
    for rank, is_rel in enumerate(relevant_sorted[:k], start=1):
        if is_rel:
            hits += 1
            total += hits / rank
            count += 1
    return total / count if count else 0.0


CASES = [(12, 5, 20), (12, 2, 6), (24, 40, None), (36, 10, None), (48, 3, None), (48, 200, 50)]


@pytest.mark.parametrize("bits, num_labels, pool", CASES)
def test_map_matches_sklearn_average_precision(bits, num_labels, pool):
    query, db, q_labels, db_labels = _random_case(bits, num_labels, pool=pool)
    dist = _naive_distances(query, db)
    n = len(db)
    # a score encoding the stable order: distance first, then database index
    expected = np.mean([average_precision_score(db_labels == q_labels[i],
                                                -(dist[i] * n + np.arange(n)))
                        for i in range(len(query))])
    got = mean_average_precision(query, db, q_labels, db_labels)
    assert got == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("bits, num_labels, pool", CASES)
@pytest.mark.parametrize("topk", [1, 10, 57])
def test_map_at_k_matches_naive_loop(bits, num_labels, pool, topk):
    query, db, q_labels, db_labels = _random_case(bits, num_labels, pool=pool, seed=1)
    dist = _naive_distances(query, db)
    expected = np.mean([_naive_ap_at_k((db_labels == q_labels[i])[_stable_order(dist[i])], topk)
                        for i in range(len(query))])
    got = mean_average_precision(query, db, q_labels, db_labels, topk=topk)
    assert got == pytest.approx(expected, abs=1e-12)


def _tie_aware_ap_by_groups(dist_row, relevant):
    """Expected AP over random orders within ties, summed rank by rank: rank
    n+i of a tie group (c items, r relevant, after n items of which R are
    relevant) is relevant with probability r/c and then holds on average
    R + 1 + (i-1)(r-1)/(c-1) relevant items so far."""
    total, n, before = 0.0, 0, 0
    for d in np.unique(dist_row):
        group = dist_row == d
        c, r = int(group.sum()), int(relevant[group].sum())
        for i in range(1, c + 1):
            hits = before + 1 + ((i - 1) * (r - 1) / (c - 1) if c > 1 else 0)
            total += r / c * hits / (n + i)
        n, before = n + c, before + r
    return total / max(relevant.sum(), 1)


def _evaluate_by_stable_sort(query, db, q_labels, db_labels, ks, radius, accuracy_ks):
    """Every key of evaluate_retrieval by its definition: one full stable
    sort (distance, then database index) per query, in plain numpy loops."""
    dist = _naive_distances(query, db)
    relevant = (q_labels[:, None] == db_labels[None, :] if q_labels.ndim == 1
                else q_labels @ db_labels.T > 0)
    rows = [(relevant[i][_stable_order(dist[i])], dist[i], relevant[i])
            for i in range(len(query))]
    within = [(d <= radius, rel) for _, d, rel in rows]
    result = {
        "mAP": np.mean([_naive_ap_at_k(rel_sorted, len(db)) for rel_sorted, _, _ in rows]),
        "mAP_tie_aware": np.mean([_tie_aware_ap_by_groups(d, rel) for _, d, rel in rows]),
        f"P@H<={radius}": np.mean([(w & rel).sum() / max(w.sum(), 1) for w, rel in within]),
        f"R@H<={radius}": np.mean([(w & rel).sum() / max(rel.sum(), 1) for w, rel in within])}
    result.update({f"P@{k}": np.mean([r[0][:k].mean() for r in rows]) for k in ks})
    result.update({f"top{k}": np.mean([r[0][:k].any() for r in rows]) for k in accuracy_ks})
    return result


@pytest.mark.parametrize("bits", [12, 24, 48, 64])
@pytest.mark.parametrize("num_labels, pool, rows_per_chunk", [
    (3, 7, 7), (40, 25, 4), (400, None, 30)])
@pytest.mark.parametrize("popcount", [True, False])
def test_fast_scan_matches_the_stable_sort_definition(monkeypatch, bits, num_labels, pool,
                                                      rows_per_chunk, popcount):
    # a database size that splits into uneven blocks, chunks of 7 or 4 queries
    # (uneven too); pool: codes drawn from a few distinct ones, so heavy ties
    query, db, q_labels, db_labels = _random_case(bits, num_labels, num_db=301, pool=pool,
                                                  seed=bits)
    query[:5] = db[:5]  # distance-0 matches, so P@H<=2 is not always 0
    monkeypatch.setattr(metrics, "_CHUNK_ELEMENTS", rows_per_chunk * 301 + 1)
    monkeypatch.setattr(metrics, "_USE_POPCOUNT", popcount and metrics._USE_POPCOUNT)
    options = dict(ks=(1, 10, 57), radius=2, accuracy_ks=(1, 5, 301))
    got = evaluate_retrieval(query, db, q_labels, db_labels, **options)
    expected = _evaluate_by_stable_sort(query, db, q_labels, db_labels, **options)
    assert got.keys() == expected.keys()
    assert got == pytest.approx(expected, abs=1e-12)


def test_fast_scan_matches_the_definition_for_multi_label_relevance(monkeypatch):
    rng = np.random.default_rng(7)
    query, db, _, _ = _random_case(24, 2, num_db=301, pool=30, seed=7)
    q_labels, db_labels = rng.integers(0, 2, (len(query), 5)), rng.integers(0, 2, (301, 5))
    monkeypatch.setattr(metrics, "_CHUNK_ELEMENTS", 6 * 301 + 1)
    options = dict(ks=(10, 50), radius=3, accuracy_ks=(1, 5))
    got = evaluate_retrieval(query, db, q_labels, db_labels, **options)
    expected = _evaluate_by_stable_sort(query, db, q_labels, db_labels, **options)
    assert got == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("bits", [12, 64])
def test_popcount_and_matmul_distances_give_identical_numbers(monkeypatch, bits):
    args = _random_case(bits, 20, num_db=500, pool=40, seed=2)
    fast = evaluate_retrieval(*args)
    monkeypatch.setattr(metrics, "_USE_POPCOUNT", False)
    assert evaluate_retrieval(*args) == fast
    assert hamming_distance(*args[:2]).tolist() == _naive_distances(*args[:2]).tolist()


def test_hamming_distance_matches_popcount_loop():
    query, db, _, _ = _random_case(36, 2, num_db=50, num_query=7)
    got = hamming_distance(torch.as_tensor(query, dtype=torch.int8), db)
    assert got.dtype == torch.int32
    np.testing.assert_array_equal(got.numpy(), _naive_distances(query, db))


def test_ranking_is_stable_under_heavy_ties():
    query, db, _, _ = _random_case(12, 2, pool=5)
    dist = _naive_distances(query, db)
    expected = np.stack([_stable_order(row) for row in dist])
    np.testing.assert_array_equal(hamming_ranking(query, db).numpy(), expected)
    np.testing.assert_array_equal(hamming_ranking(query, db, topk=25).numpy(), expected[:, :25])


def _tie_aware_by_enumeration(dist_row, relevant):
    """Exact mean AP over every order that permutes items within distance ties."""
    groups = [np.flatnonzero(dist_row == d) for d in np.unique(dist_row)]
    aps = [_naive_ap_at_k(relevant[np.concatenate(order)], len(relevant))
           for order in itertools.product(*(itertools.permutations(g) for g in groups))]
    return np.mean(aps)


@pytest.mark.parametrize("seed", range(4))
def test_tie_aware_map_matches_exact_enumeration(seed):
    query, db, q_labels, db_labels = _random_case(3, 2, num_db=8, num_query=3, seed=seed)
    dist = _naive_distances(query, db)
    for i in range(len(query)):
        relevant = db_labels == q_labels[i]
        expected = _tie_aware_by_enumeration(dist[i], relevant)
        got = mean_average_precision(query[i:i + 1], db, q_labels[i:i + 1], db_labels,
                                     ties="average")
        assert got == pytest.approx(expected, abs=1e-12)


def test_tie_aware_map_ignores_database_order_but_stable_does_not():
    query, db, q_labels, db_labels = _random_case(12, 4, num_db=300, pool=10, seed=3)
    perm = np.random.default_rng(0).permutation(len(db))
    tie_aware = mean_average_precision(query, db, q_labels, db_labels, ties="average")
    assert mean_average_precision(query, db[perm], q_labels, db_labels[perm], ties="average") \
        == pytest.approx(tie_aware, abs=1e-12)
    stable = mean_average_precision(query, db, q_labels, db_labels)
    permuted = mean_average_precision(query, db[perm], q_labels, db_labels[perm])
    assert stable != pytest.approx(permuted)


def test_multi_label_relevance_is_one_shared_label():
    rng = np.random.default_rng(5)
    query, db, _, _ = _random_case(24, 2, num_db=200, seed=5)
    q_labels, db_labels = rng.integers(0, 2, (len(query), 6)), rng.integers(0, 2, (200, 6))
    q_labels[:, 0] = 1  # every query has a relevant item
    db_labels[0] = 1
    relevant = q_labels @ db_labels.T > 0
    dist = _naive_distances(query, db)
    expected = np.mean([average_precision_score(relevant[i], -(dist[i] * 200 + np.arange(200)))
                        for i in range(len(query))])
    got = mean_average_precision(query, db, q_labels, db_labels)
    assert got == pytest.approx(expected, abs=1e-12)


def test_one_hot_labels_give_the_same_numbers_as_integer_labels():
    query, db, q_labels, db_labels = _random_case(12, 6, pool=30)
    one_hot = np.eye(6, dtype=np.int64)
    assert evaluate_retrieval(query, db, one_hot[q_labels], one_hot[db_labels]) \
        == pytest.approx(evaluate_retrieval(query, db, q_labels, db_labels))


def test_results_do_not_depend_on_chunk_size(monkeypatch):
    query, db, q_labels, db_labels = _random_case(12, 5, pool=20)
    full = evaluate_retrieval(query, db, q_labels, db_labels)
    monkeypatch.setattr(metrics, "_CHUNK_ELEMENTS", 3 * len(db) + 1)  # 3 queries per chunk
    assert evaluate_retrieval(query, db, q_labels, db_labels) == pytest.approx(full, abs=1e-12)


def test_precision_recall_and_pr_curve_match_naive_loop():
    query, db, q_labels, db_labels = _random_case(12, 4, pool=40)
    dist = _naive_distances(query, db)
    precision, recall = pr_curve(query, db, q_labels, db_labels)
    assert precision.shape == recall.shape == (13,)
    for radius in (0, 2, 5, 12):
        retrieved = dist <= radius
        hits = (retrieved & (q_labels[:, None] == db_labels[None, :])).sum(1)
        num_relevant = (q_labels[:, None] == db_labels[None, :]).sum(1)
        exp_p = np.mean(np.where(retrieved.sum(1) > 0, hits / np.maximum(retrieved.sum(1), 1), 0))
        exp_r = np.mean(hits / num_relevant)
        got = precision_recall_within_radius(query, db, q_labels, db_labels, radius=radius)
        assert got == pytest.approx((exp_p, exp_r), abs=1e-12)
        assert (precision[radius], recall[radius]) == pytest.approx((exp_p, exp_r), abs=1e-12)
    assert np.all(np.diff(recall) >= 0) and recall[-1] == pytest.approx(1.0)


def test_precision_at_k_and_topk_accuracy_match_naive_loop():
    query, db, q_labels, db_labels = _random_case(12, 8, pool=15)
    dist = _naive_distances(query, db)
    rel_sorted = np.stack([(db_labels == q_labels[i])[_stable_order(dist[i])]
                           for i in range(len(query))])
    for k in (1, 5, 40):
        got = precision_at_k(query, db, q_labels, db_labels, k=k)
        assert got == pytest.approx(rel_sorted[:, :k].mean())
    accuracy = topk_accuracy(query, db, q_labels, db_labels, k=(1, 5, 40))
    assert accuracy == pytest.approx({k: rel_sorted[:, :k].any(1).mean() for k in (1, 5, 40)})


def test_evaluate_retrieval_agrees_with_the_single_metrics():
    args = _random_case(24, 10, pool=60)
    result = evaluate_retrieval(*args, ks=(10, 50), radius=3, accuracy_ks=(1, 5))
    assert list(result) == ["mAP", "mAP_tie_aware", "P@H<=3", "R@H<=3", "P@10", "P@50",
                            "top1", "top5"]
    assert result["mAP"] == pytest.approx(mean_average_precision(*args))
    assert result["mAP_tie_aware"] == pytest.approx(mean_average_precision(*args, ties="average"))
    assert (result["P@H<=3"], result["R@H<=3"]) == pytest.approx(
        precision_recall_within_radius(*args, radius=3))
    assert result["P@50"] == pytest.approx(precision_at_k(*args, k=50))
    assert result["top5"] == pytest.approx(topk_accuracy(*args, k=(5,))[5])


def test_accepts_torch_inputs_and_int8_codes():
    query, db, q_labels, db_labels = _random_case(12, 5, pool=20)
    as_numpy = mean_average_precision(query, db, q_labels, db_labels)
    as_torch = mean_average_precision(torch.as_tensor(query, dtype=torch.int8),
                                      torch.as_tensor(db).float(), torch.as_tensor(q_labels),
                                      torch.as_tensor(db_labels))
    assert as_torch == as_numpy


# --------------------------------------------------------------------------
# bad inputs
# --------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, match", [
    (dict(query_codes=np.ones((2, 3))), "query_codes must have 2 bits"),
    (dict(db_codes=np.array([[0, 1], [1, 0], [1, 1], [0, 0]])),
     r"db_codes must hold only -1 and \+1.*2 \* bits - 1"),
    (dict(query_codes=np.array([[0.3, -1], [1, 1]])), r"binarize"),
    (dict(query_codes=np.array([[np.nan, 1], [1, 1]])), "NaN"),
    (dict(query_codes=np.ones(2)), r"query_codes must have shape \(N, bits\)"),
    (dict(query_labels=np.array([0, 1, 1])), r"query_labels must have shape \(2,\)"),
    (dict(db_labels=np.array([0.0, 1.0, 1.0, 0.0])), "integer class labels"),
    (dict(query_labels=np.eye(2, dtype=int)), "same kind"),
    (dict(query_labels=np.full((2, 3), 2), db_labels=np.ones((4, 3), int)), "only 0/1"),
])
def test_bad_inputs_raise_clear_errors(kwargs, match):
    args = dict(query_codes=QUERY, db_codes=DB, query_labels=QUERY_LABELS, db_labels=DB_LABELS)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        mean_average_precision(**args)


def test_bad_options_raise_clear_errors():
    with pytest.raises(ValueError, match="ties must be"):
        mean_average_precision(QUERY, DB, QUERY_LABELS, DB_LABELS, ties="random")
    with pytest.raises(ValueError, match="mAP@all only"):
        mean_average_precision(QUERY, DB, QUERY_LABELS, DB_LABELS, topk=2, ties="average")
    with pytest.raises(ValueError, match="topk must be an integer >= 1"):
        mean_average_precision(QUERY, DB, QUERY_LABELS, DB_LABELS, topk=0)
    with pytest.raises(ValueError, match=r"k must be an integer >= 1 and <= 4"):
        precision_at_k(QUERY, DB, QUERY_LABELS, DB_LABELS, k=5)
    with pytest.raises(ValueError, match="radius must be an integer >= 0"):
        precision_recall_within_radius(QUERY, DB, QUERY_LABELS, DB_LABELS, radius=-1)
    with pytest.raises(ValueError, match="topk must be"):
        hamming_ranking(QUERY, DB, topk=9)
