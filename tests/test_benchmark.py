"""The comparison machinery: per-query AP, paired differences, convergence, tuning grid."""
import numpy as np
import pandas as pd
import pytest
import torch

from dfh_lib.core.metrics import mean_average_precision
from dfh_lib.core.embedding_metrics import cosine_mean_average_precision
from dfh_lib.engine.train import History
from dfh_lib.experiments.benchmark import (convergence, paired_difference, per_query_ap,
                                           tuning_settings)


def random_codes(n, bits, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 2, (n, bits), generator=g).float() * 2 - 1


@pytest.mark.parametrize("bits", [4, 12, 48])  # 4 bits: many distance ties
def test_per_query_ap_averages_to_the_library_map(bits):
    q, d = random_codes(40, bits, 0), random_codes(300, bits, 1)
    ql, dl = torch.arange(40) % 7, torch.arange(300) % 7
    aps = per_query_ap(q, d, ql, dl)
    assert aps.shape == (40,)
    assert aps.mean() == pytest.approx(mean_average_precision(q, d, ql, dl), abs=1e-9)


def test_cosine_map_hand_value_and_sklearn():
    from sklearn.metrics import average_precision_score

    q = torch.tensor([[1.0, 0.0]])
    d = torch.tensor([[0.9, 0.1], [0.0, 1.0], [0.8, -0.3], [-1.0, 0.0]])
    # ranking by cosine: item 0, item 2, item 1, item 3; relevant: items 2 and 3
    assert cosine_mean_average_precision(q, d, [1], [0, 0, 1, 1]) == pytest.approx(
        (1 / 2 + 2 / 4) / 2)
    g = torch.Generator().manual_seed(0)
    q, d = torch.randn(20, 8, generator=g), torch.randn(200, 8, generator=g)
    ql, dl = torch.arange(20) % 5, torch.arange(200) % 5
    scores = torch.nn.functional.normalize(q, dim=1) @ torch.nn.functional.normalize(d, dim=1).T
    expected = np.mean([average_precision_score((dl == ql[i]).numpy(), scores[i].numpy())
                        for i in range(20)])
    assert cosine_mean_average_precision(q, d, ql, dl) == pytest.approx(expected, abs=1e-6)
    with pytest.raises(ValueError, match="NaN"):
        cosine_mean_average_precision(q * float("nan"), d, ql, dl)


def test_paired_difference_interval_and_detectable_size():
    rng = np.random.default_rng(0)
    b = rng.uniform(0.2, 0.8, size=(3, 600))
    a = b + 0.03 + rng.normal(0, 0.05, size=b.shape)
    out = paired_difference(a, b)
    assert out["low"] < 0.03 < out["high"] and out["low"] > 0
    assert out["detectable"] == pytest.approx(2.8 * (out["high"] - out["difference"]) / 1.964,
                                              rel=0.01)
    with pytest.raises(ValueError, match="same shape"):
        paired_difference(a, b[:, :10])


def test_convergence_compares_the_last_fifth_with_the_best():
    def history(scores):
        return History(records=[{"epoch": i + 1, "val_mAP": s} for i, s in enumerate(scores)])

    assert convergence(history([0.1, 0.5, 0.6, 0.61, 0.605]))["converged"]
    late_drop = convergence(history([0.1, 0.7, 0.6, 0.6, 0.6]))
    assert not late_drop["converged"] and late_drop["gap"] == pytest.approx(0.1)
    with pytest.raises(ValueError, match="no validation"):
        convergence(History(records=[{"epoch": 1}]))


def test_every_method_gets_the_same_search_budget():
    sizes = {m: len(tuning_settings(m)) for m in ("dpsh", "hashnet", "csq", "dfh")}
    assert set(sizes.values()) == {6}
    with pytest.raises(ValueError, match="no search space"):
        tuning_settings("nonsense")


@pytest.fixture(scope="module")
def tiny_splits():
    from dfh_lib.interfaces.book_data import book_splits

    return book_splits("tiny", "synthfaces", verbose=False)


def test_compare_tunes_on_validation_then_runs_seeds_from_one_backbone(tiny_splits, tmp_path,
                                                                       monkeypatch):
    from dfh_lib.experiments import benchmark as bm

    monkeypatch.setattr(bm, "LEARNING_RATES", (1e-3,))  # 2 settings per method here
    rows, aps, log = bm.compare(["dpsh", "dfh"], tiny_splits, bits=(12,), profile="tiny",
                                runs_dir=tmp_path, seeds=(0, 1))
    assert len(log) == 4 and set(log["method"]) == {"dpsh", "dfh"}
    assert len(rows) == 4 and set(rows["seed"]) == {0, 1}
    for key, ap in aps.items():
        assert ap.shape == (len(tiny_splits.query),)
    row = rows.iloc[0]
    assert 0 <= row["mAP"] <= 1 and 0 <= row["float_mAP"] <= 1 and 0 <= row["undecided"] <= 1
    assert row["ratio"] == pytest.approx(row["mAP"] / row["float_mAP"])
    # training time from the run's history: the same when the run is loaded again
    again, _, _ = bm.compare(["dpsh", "dfh"], tiny_splits, bits=(12,), profile="tiny",
                             runs_dir=tmp_path, seeds=(0, 1), log=log)
    assert list(again["train_s"]) == list(rows["train_s"]) and (rows["train_s"] > 0).all()
    # one shared backbone: every run's config names the same one
    backbones = {torch.load(p, weights_only=False)["config"]["backbone"]
                 for p in tmp_path.glob("*/*/checkpoint.pt")}
    assert len(backbones) == 1 and None not in backbones
    summary = bm.summarize(rows)
    assert set(summary["converged"]) <= {"0/2", "1/2", "2/2"}
    path = bm.write_results(rows, "03", "tiny", "synthfaces", folder=tmp_path / "results")
    assert path.name == "03-tiny-synthfaces.csv" and len(path.read_text().splitlines()) == 5


def test_feature_hashing_rows_match_the_benchmark_format(tiny_splits, tmp_path):
    from dfh_lib.experiments import benchmark as bm

    rows, aps = bm.feature_hashing(tiny_splits, bits=(12,), profile="tiny", runs_dir=tmp_path,
                                   seeds=(0, 1))
    assert sorted(set(rows["method"])) == ["deep LSH", "deep PCA-ITQ"]
    assert len(rows) == 4 and set(rows["seed"]) == {0, 1}
    for (method, bits, seed), ap in aps.items():
        row = rows[(rows["method"] == method) & (rows["seed"] == seed)].iloc[0]
        assert ap.mean() == pytest.approx(row["mAP"], abs=1e-6)  # per-query APs average to mAP
        assert row["ratio"] == pytest.approx(row["mAP"] / row["float_mAP"])
    assert rows["undecided"].isna().all()
    assert 0 < rows["float_mAP"].iloc[0] <= 1


def test_compare_searches_only_the_methods_a_given_log_lacks(tiny_splits, tmp_path,
                                                             monkeypatch):
    from dfh_lib.experiments import benchmark as bm

    monkeypatch.setattr(bm, "LEARNING_RATES", (1e-3,))
    first = bm.tune("dpsh", tiny_splits, 12, "tiny", tmp_path)
    rows, _, log = bm.compare(["dpsh", "csq"], tiny_splits, bits=(12,), profile="tiny",
                              runs_dir=tmp_path, seeds=(0,), log=first)
    assert (log["method"] == "dpsh").sum() == 2 and (log["method"] == "csq").sum() == 2
    assert len(pd.read_csv(tmp_path / "tuning.csv")) == 4  # written beside the runs
    assert set(rows["method"]) == {"dpsh", "csq"}
