"""The shared experiment runner and the command line, on tiny synthfaces."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from dfh_lib import experiments
from dfh_lib.core.data import load_synthfaces, retrieval_protocol
from dfh_lib.core.profiles import get_profile
from dfh_lib.engine.encoding import encode


@pytest.fixture(scope="module")
def splits():
    return retrieval_protocol(load_synthfaces(8, 8, size=32), num_query=2, num_val=1)


def test_run_methods_trains_then_loads(splits, tmp_path):
    tiny = get_profile("tiny").with_overrides(epochs=1)
    first = experiments.run_methods(splits, ("ddh",), (12,), tiny, tmp_path, progress=False)
    row = first.rows[0]
    assert (row["method"], row["bits"]) == ("ddh", 12) and 0 < row["mAP"] <= 1
    query_codes, db_codes = first.codes[("ddh", 12)]
    assert query_codes.shape == (16, 12) and set(np.unique(db_codes)) <= {-1, 1}
    assert (tmp_path / "ddh-12" / "best.pt").exists()
    again = experiments.run_methods(splits, ("ddh",), (12,), tiny, tmp_path, progress=False)
    assert again.rows[0]["mAP"] == row["mAP"]  # loaded, not retrained
    np.testing.assert_array_equal(again.codes[("ddh", 12)][0], query_codes)
    # every row carries the same network's float ceiling, as the benchmark measures it
    from dfh_lib.experiments.benchmark import evaluate_model

    model = experiments.trained_model("ddh", splits, 12, tiny, tmp_path)
    numbers = evaluate_model(model, splits)
    for key in ("mAP", "float_mAP", "ratio", "undecided"):
        assert row[key] == pytest.approx(numbers[key]), key
    assert row["ratio"] == pytest.approx(row["mAP"] / row["float_mAP"])
    u = encode(model, splits.query)  # undecided by hand: |u| < 0.5 of the query outputs
    assert row["undecided"] == pytest.approx(float((u.abs() < 0.5).float().mean()))


def test_baselines_train_with_the_given_settings_in_the_benchmark_folders(splits, tmp_path):
    from dfh_lib.experiments import benchmark

    tiny = get_profile("tiny").with_overrides(epochs=1)
    settings = {("dpsh", 12): {"lr": 1e-3, "loss_kwargs": {"eta": 0.01}}}
    result = experiments.baselines(splits, (12,), tiny, tmp_path / "seed0", ("dpsh", "csq"),
                                   progress=False, settings=settings)
    assert result.histories[("dpsh", 12)].config["lr"] == 1e-3
    assert result.histories[("csq", 12)].config["lr"] == tiny.lr  # no setting: defaults
    # the benchmark's run of the same setting is that folder's run: loaded, not retrained
    rows, _ = benchmark.benchmark(["dpsh"], splits, (12,), tiny, tmp_path, seeds=(0,),
                                  settings=settings)
    assert rows.loc[0, "mAP"] == pytest.approx(
        next(r["mAP"] for r in result.rows if r["method"] == "dpsh"))


def test_variants_get_their_own_rows_and_runs(splits, tmp_path):
    tiny = get_profile("tiny").with_overrides(epochs=1)
    variants = (experiments.Variant("dfh-metric", "dfh", {"sign_weight": 0}), "dfh")
    result = experiments.run_methods(splits, variants, (12,), tiny, tmp_path, progress=False)
    assert [r["method"] for r in result.rows] == ["dfh-metric", "dfh"]
    assert "sign" not in result.histories[("dfh-metric", 12)].records[0]
    assert "sign" in result.histories[("dfh", 12)].records[0]
    assert (tmp_path / "dfh-metric-12" / "best.pt").exists()
    model = experiments.trained_model(variants[0], splits, 12, tiny, tmp_path)  # loads
    codes = np.sign(encode(model, splits.query).numpy())
    np.testing.assert_array_equal(codes, result.codes[("dfh-metric", 12)][0])


def test_feature_hashing_prefixes_names(splits):
    features = {part: getattr(splits, part).images.reshape(len(getattr(splits, part)), -1)
                .astype(np.float32) for part in ("train", "query", "database")}
    result = experiments.run_feature_hashing(features, splits, bits=(12,), prefix="pixel ")
    assert [r["method"] for r in result.rows] == ["pixel LSH", "pixel PCA-ITQ"]


def test_baselines_command_writes_the_table(tmp_path):
    out = tmp_path / "table"
    env = {**os.environ, "DFH_RUNS_DIR": str(tmp_path / "runs"), "DFH_DATASET": "synthfaces"}
    done = subprocess.run(
        [sys.executable, "-m", "dfh_lib", "baselines", "--profile", "tiny", "--bits", "12",
         "--methods", "ddh,csq", "--out", str(out)],
        capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    table = json.loads(out.with_suffix(".json").read_text())
    methods = {row["method"] for row in table["rows"]}
    assert methods == {"ddh", "csq", "deep LSH", "deep PCA-ITQ"}
    assert table["provenance"]["profile"] == "tiny"
    assert out.with_suffix(".png").exists() and "| ('ddh', 12)" in done.stdout


def test_command_line_help_and_unknown_command():
    ok = subprocess.run([sys.executable, "-m", "dfh_lib", "--help"], capture_output=True,
                        text=True, timeout=60)
    assert ok.returncode == 0 and "baselines" in ok.stdout
    bad = subprocess.run([sys.executable, "-m", "dfh_lib", "fly"], capture_output=True,
                         text=True, timeout=60)
    assert bad.returncode == 2
