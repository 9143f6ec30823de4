"""Profiles, results tables with provenance, figures and widgets."""
import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from dfh_lib import profiles, results, viz, widgets  # noqa: E402
from dfh_lib.core.data.dataset import FaceDataset  # noqa: E402


def test_profiles_select_by_name_env_and_override(monkeypatch):
    assert profiles.get_profile("tiny").epochs < profiles.get_profile("cpu").epochs
    monkeypatch.setenv("DFH_PROFILE", "tiny")
    assert profiles.get_profile().name == "tiny"
    with pytest.raises(ValueError, match="unknown profile"):
        profiles.get_profile("huge")
    assert profiles.get_profile("cpu").with_overrides(epochs=3).epochs == 3
    with pytest.raises(ValueError, match="unknown profile fields"):
        profiles.get_profile("cpu").with_overrides(epoch=3)


def test_results_round_trip_keeps_provenance(tmp_path):
    prov = results.Provenance("tiny", "lfw", "query vs database", "cpu")
    df = results.results_table([{"method": "LSH", "bits": 12, "mAP": 0.1}], prov)
    paths = results.save_results(df, tmp_path / "table")
    assert [p.suffix for p in paths] == [".csv", ".md", ".json"]
    assert "profile: tiny | dataset: lfw" in (tmp_path / "table.md").read_text()
    back = results.load_results(tmp_path / "table")
    assert back.attrs["provenance"]["device"] == "cpu" and back["mAP"].iloc[0] == 0.1
    assert "profile: tiny" in viz.show_table(df).to_html()


def faces():
    rng = np.random.default_rng(0)
    return FaceDataset(rng.integers(0, 255, (12, 8, 8, 3), dtype=np.uint8),
                       np.repeat([0, 1, 2], 4), ["a", "b", "c"])


def test_galleries_and_curves_draw():
    ds = faces()
    assert len(viz.show_faces(ds, num_identities=2, per_identity=3).axes) == 6
    ranking = np.tile(np.arange(12), (12, 1))
    fig = viz.show_retrievals(ds, ds, ranking, query_indices=[0, 5], k=4)
    assert len(fig.axes) == 10
    fig = viz.plot_pr_curves({"LSH": (np.array([1, .5]), np.array([.1, 1]))})
    assert viz.figure_to_png(fig)[:4] == b"\x89PNG"


def test_distance_histogram_shares_sum_to_one_per_group():
    import matplotlib.pyplot as plt

    codes = np.array([[1, 1, 1, -1], [1, 1, -1, -1], [-1, -1, -1, 1]])
    labels = np.array([0, 0, 1])
    ax = viz.plot_distance_histogram(codes, codes, labels, labels, title="t")
    other, same = ax.containers
    # same person: distances 0, 1, 1, 0, 0 of 5 pairs; another: 3, 3, 4, 4 → density = share
    assert [round(p.get_height(), 3) for p in same][:2] == [0.6, 0.4]
    assert [round(p.get_height(), 3) for p in other][3:] == [0.5, 0.5]
    assert ax.get_title() == "t"
    plt.close("all")


def test_quantizer_and_head_panels_draw():
    import matplotlib.pyplot as plt
    from dfh_lib.nn.quantizers import build_quantizer

    fig, axes = plt.subplots(1, 4)
    viz.plot_penalties({n: build_quantizer(n) for n in ("l2", "cubic", "quadratic")}, axes[:3],
                       highlight="quadratic")
    # cubic's codes are exactly sgn z: no ∂q/∂u curve
    assert [len(ax.get_lines()) for ax in axes[:3]] == [3 + 1, 2 + 1, 3 + 1]
    viz.plot_code_gradients({"none": (build_quantizer("none"), "-")}, axes[3])
    assert axes[3].get_lines()[0].get_ydata().max() == pytest.approx(1.0, abs=1e-4)
    viz.plot_weighted_gradient(build_quantizer("quadratic"), (0.1, 1.0), 1.0, axes[0])
    ax = viz.plot_head_maps({"hidden": 0.4, "final": 0.6}, title="row")
    assert [p.get_width() for p in ax.patches] == [0.4, 0.6] and ax.get_xlim() == (0, 1)
    image = viz.plot_similarity(np.eye(3), ax, title="s")
    assert image.get_clim() == (-1, 1) and ax.get_title() == "s"
    plt.close("all")


def test_precomputed_explorer_links_selector_to_views():
    import matplotlib.pyplot as plt

    box = widgets.precomputed_explorer([12, 24], lambda k: plt.figure(), "bits")
    selector, stack = box.children
    assert list(selector.options) == ["12", "24"] and len(stack.children) == 2
    with pytest.raises(TypeError, match="matplotlib Figure"):
        widgets.precomputed_explorer([1], lambda k: 42)
    with pytest.raises(ValueError, match="at least one option"):
        widgets.precomputed_explorer([], str)


def test_precomputed_grid_links_both_selectors():
    seen = []
    box = widgets.precomputed_grid(["a", "b"], [12, 48], lambda r, c: seen.append((r, c)) or f"{r}{c}")
    rows, cols, outer = box.children
    assert seen == [("a", 12), ("a", 48), ("b", 12), ("b", 48)]
    assert len(outer.children) == 2 and len(outer.children[1].children) == 2
    assert outer.children[1].children[0].value == "b12"


def test_precomputed_product_nests_one_level_per_axis():
    box = widgets.precomputed_product({"margin": [0, 3], "sign": [0, 1, 2], "bits": [12, 48]},
                                      lambda m, s, k: f"{m}-{s}-{k}")
    margin, sign, bits, outer = box.children
    assert list(sign.options) == ["0", "1", "2"] and list(bits.options) == ["12", "48"]
    assert outer.children[1].children[2].children[0].value == "3-2-12"
    with pytest.raises(ValueError, match="at least one option"):
        widgets.precomputed_product({"a": []}, str)


def test_reference_runs_ship_with_the_library():
    from dfh_lib.interfaces.results import REFERENCE_RUNS, load_reference_run

    for name in REFERENCE_RUNS:
        df = load_reference_run(name)
        assert len(df) > 0 and df.attrs["reference"]["command"]
    search = load_reference_run("tuning-cpu-lfw")
    assert {"method", "bits", "lr", "loss_kwargs", "val_mAP", "converged"} <= set(search.columns)
    assert search["val_mAP"].between(0, 1).all()
    assert set(search.groupby(["method", "bits"]).size()) == {6}  # the same budget for all
    with pytest.raises(ValueError, match="unknown reference run"):
        load_reference_run("nope")


def test_summarize_seeds_hand_values():
    def rows(a, b, c):
        return [{"method": m, "bits": 12, "mAP": v} for m, v in (("ours", a), ("b1", b),
                                                                ("b2", c))]
    prov = results.Provenance("cpu", "lfw", "query vs database", "cpu", {"seeds": "0, 1"})
    gap = "gap: ours − best baseline"
    out = results.summarize_seeds({0: rows(0.2, 0.3, 0.1), 1: rows(0.4, 0.1, 0.5)},
                                  baselines=("b1", "b2"), provenance=prov,
                                  differences={gap: ("ours", "best baseline"),
                                               "b1 − b2": ("b1", "b2")})
    assert list(out.index) == ["ours", "b1", "b2", "best baseline", gap, "b1 − b2"]
    assert "seeds: 0, 1" in results.provenance_line(out)
    assert list(out.columns) == [(12, "mean"), (12, "std"), (12, "n"), (12, "ci95")]
    assert out.loc["ours", (12, "mean")] == pytest.approx(0.3)
    assert out.loc["ours", (12, "std")] == pytest.approx(0.2 / 2 ** 0.5)  # sample std of 2
    # 95 % t half-width, 1 degree of freedom: t = 12.7062 -> 12.7062 * 0.1414 / sqrt(2)
    assert out.loc["ours", (12, "ci95")] == pytest.approx(12.7062 * 0.1, rel=1e-4)
    # best baseline per seed: b1 (0.3), then b2 (0.5); gaps -0.1 and -0.1
    assert out.loc["best baseline", (12, "mean")] == pytest.approx(0.4)
    assert out.loc[gap, (12, "mean")] == pytest.approx(-0.1)
    assert out.loc[gap, (12, "std")] == pytest.approx(0.0, abs=1e-12)
    assert out.loc["b1 − b2", (12, "mean")] == pytest.approx(-0.1)  # (0.2 - 0.4) / 2
    assert (out.xs("n", axis=1, level="stat") == 2).all().all()
    assert results.mean_std(out).loc["ours", 12] == "0.300 ± 0.141"
    assert results.provenance_line(results.mean_std(out)) == results.provenance_line(out)
    single = results.summarize_seeds({0: rows(0.2, 0.3, 0.1)})
    assert results.mean_std(single, digits=2).loc["b2", 12] == "0.10"
    with pytest.raises(ValueError, match="at least one seed"):
        results.summarize_seeds({})
