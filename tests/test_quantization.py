"""Quantization schemes: hand-derived gradients vs autograd, hand values,
straight-through codes, schedules, the "dfhq" method, code statistics, the
toy convergence experiment and the robustness helpers."""
import math

import numpy as np
import pytest
import torch

from dfh_lib import quantization as Q
from dfh_lib.core.data.dataset import FaceDataset
from dfh_lib.nn.losses import LOSSES, METHOD_DEFAULTS, build_loss

pytestmark = pytest.mark.usefixtures("one_thread")

PENALTIES = ["l2", "l1", "logcosh", "cubic", "double_well", "quadratic"]


def _away_from_kinks(quantizer, n=400, seed=0):
    """float64 z (n, 4) whose variable avoids 0 and |x| = 1 (and |z| = α)."""
    z = torch.randn(n, 4, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 2
    x = quantizer.variable(z)
    keep = (x.abs() > 0.05) & ((x.abs() - 1).abs() > 0.05)
    if isinstance(quantizer, Q.QuadraticQuantizer):
        keep &= (z.abs() - quantizer.alpha).abs() > 0.05
    return z[keep.all(1)]


# ----------------------------------------------------------------------------
# analytic gradients
# ----------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(Q.QUANTIZERS))
def test_analytic_gradients_match_autograd(name):
    q = Q.build_quantizer(name)
    z = _away_from_kinks(q).requires_grad_(True)
    (g_codes,) = torch.autograd.grad(q.codes(z).sum(), z)
    torch.testing.assert_close(q.code_gradient(z.detach()), g_codes)
    if not q.has_penalty:
        assert not q.gradient(z).any() and not q.grad_wrt_z(z).any()
        return
    x = q.variable(z)
    (g_x,) = torch.autograd.grad(q.elementwise(x).sum(), x, retain_graph=True)
    torch.testing.assert_close(q.gradient(x.detach()), g_x)
    (g_z,) = torch.autograd.grad(q.elementwise(q.variable(z)).sum(), z)
    torch.testing.assert_close(q.grad_wrt_z(z.detach()), g_z)


@pytest.mark.parametrize("name", PENALTIES)
def test_penalty_is_weighted_mean_and_its_gradient_is_grad_wrt_z(name):
    q = Q.build_quantizer(name, weight=0.3)
    z = _away_from_kinks(q).requires_grad_(True)
    u, penalty = q(z)
    torch.testing.assert_close(penalty, 0.3 * q.elementwise(q.variable(z)).mean())
    (g,) = torch.autograd.grad(penalty, z)
    torch.testing.assert_close(g, 0.3 / z.numel() * q.grad_wrt_z(z.detach()))


@pytest.mark.parametrize("name, x, value, grad", [
    ("l2", 0.5, 0.25, -1.0),
    ("l2", -0.5, 0.25, 1.0),
    ("l1", 0.5, 0.5, -1.0),
    ("l1", -1.5, 0.5, -1.0),
    ("logcosh", 0.5, math.log(math.cosh(0.5)), -math.tanh(0.5)),
    ("double_well", 0.5, 0.5625, -1.5),
    ("cubic", 0.5, 0.125, -0.75),
    ("cubic", -3.0, 8.0, -12.0),
    ("quadratic", 1.0, 1.0, -2.0),
    ("quadratic", -3.0, 1.0, -2.0),
    ("quadratic", 0.0, 4.0, -4.0),  # sgn 0 = +1: the full push 2α at z = 0
])
def test_hand_values(name, x, value, grad):
    q = Q.build_quantizer(name)
    x = torch.tensor([x], dtype=torch.float64)
    torch.testing.assert_close(q.elementwise(x), torch.tensor([value], dtype=torch.float64))
    torch.testing.assert_close(q.gradient(x), torch.tensor([grad], dtype=torch.float64))


def test_quadratic_target_margin_and_epsilon():
    q = Q.QuadraticQuantizer()
    assert q.alpha == 2.0 and q.space == "z" and q.weight == 0.1
    z = torch.tensor([[-2.0, 2.0]])
    assert q.grad_wrt_z(z).abs().max() == 0
    torch.testing.assert_close(q.codes(z).abs(), torch.full((1, 2), math.tanh(2.0)))
    assert Q.QuadraticQuantizer(epsilon=0.01).alpha == pytest.approx(math.atanh(0.99))


def test_u_space_gradients_vanish_in_saturation_quadratic_restores():
    z = torch.tensor([6.0, 10.0], dtype=torch.float64)
    for name in ("l2", "l1", "logcosh", "double_well"):
        assert Q.build_quantizer(name).grad_wrt_z(z).abs().max() < 1e-4
    assert (Q.build_quantizer("quadratic").grad_wrt_z(z) > 0).all()  # pulls |z| back to α


# ----------------------------------------------------------------------------
# codes: straight-through and continuation
# ----------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["cubic", "sign_ste"])
def test_sign_codes_forward_straight_through_backward(name):
    z = torch.tensor([[-2.0, -0.1, 0.0, 0.3, 5.0]], requires_grad=True)
    u, _ = Q.build_quantizer(name)(z)
    assert u.tolist() == [[-1.0, -1.0, 1.0, 1.0, 1.0]]
    w = torch.arange(5.0)
    (g,) = torch.autograd.grad((u * w).sum(), z)
    torch.testing.assert_close(g, w[None])


def test_clipped_ste_is_zero_outside_unit_interval():
    z = torch.tensor([[-2.0, 0.5, 3.0]], requires_grad=True)
    u, _ = Q.SignSTE(clip=True)(z)
    (g,) = torch.autograd.grad(u.sum(), z)
    assert g.tolist() == [[0.0, 1.0, 0.0]]


def test_tanh_continuation_follows_hashnets_one_schedule():
    q = Q.build_quantizer("tanh_continuation")
    hashnet = build_loss("hashnet", 8, 3)
    betas = []
    for epoch in range(10):
        q.on_epoch_start(epoch, 10)
        hashnet.on_epoch_start(epoch, 10)
        betas.append(q.beta)
        assert q.beta == hashnet.beta  # one schedule for both
    # the authors' beta = (1 + 0.005 t)^0.5, t = 10 000 * epoch / epochs
    assert betas[0] == 1.0 and betas[5] == pytest.approx(math.sqrt(26))
    assert betas[-1] == pytest.approx(math.sqrt(1 + 0.005 * 9_000))
    assert all(a < b for a, b in zip(betas, betas[1:]))
    q.beta = 10.0
    z = torch.tensor([[0.1]])
    torch.testing.assert_close(q.codes(z), torch.tanh(10 * z))
    with pytest.raises(ValueError, match="epoch"):
        q.on_epoch_start(10, 10)


@pytest.mark.parametrize("name", ["none", "sign_ste", "tanh_continuation"])
def test_schemes_without_penalty(name):
    q = Q.build_quantizer(name)
    _, penalty = q(torch.randn(3, 4))
    assert q.weight == 0 and penalty.item() == 0
    with pytest.raises(ValueError, match="no penalty"):
        Q.build_quantizer(name, weight=0.1)


def test_bad_names_weights_and_inputs():
    with pytest.raises(ValueError, match="unknown quantization 'l3'.*quadratic"):
        Q.build_quantizer("l3")
    for weight in (-1.0, float("nan"), "0.1"):
        with pytest.raises(ValueError, match="weight"):
            Q.build_quantizer("l2", weight=weight)
    with pytest.raises(ValueError, match="alpha"):
        Q.QuadraticQuantizer(alpha=0)
    with pytest.raises(ValueError, match="not both"):
        Q.QuadraticQuantizer(alpha=2, epsilon=0.1)
    with pytest.raises(ValueError, match="activation=None"):
        Q.build_quantizer("l2")(torch.randn(4))


# ----------------------------------------------------------------------------
# the "dfhq" method
# ----------------------------------------------------------------------------

def test_dfhq_is_registered_and_adds_the_quantizer_penalty():
    assert LOSSES["dfhq"] is Q.DFHQLoss and METHOD_DEFAULTS["dfhq"] == {"activation": None}
    loss = build_loss("dfhq", 8, 3, quantization_weight=0.5)
    z = 3 * torch.randn(12, 8, generator=torch.Generator().manual_seed(0))
    labels = torch.arange(12) % 3
    value, terms = loss(z, labels)
    assert set(terms) == {"metric", "sign", "balance", "decorrelation", "quant"}
    torch.testing.assert_close(terms["quant"], 0.5 * ((z.abs() - 2) ** 2).mean())
    plain = build_loss("dfh", 8, 3)
    _, dfh_terms = plain(torch.tanh(z), labels)
    torch.testing.assert_close(terms["metric"], dfh_terms["metric"])
    assert "quant" not in build_loss("dfhq", 8, 3, quantization="none")(z, labels)[1]


def test_dfhq_forwards_the_schedule_and_checks_weights():
    loss = build_loss("dfhq", 8, 3, quantization="tanh_continuation")
    loss.on_epoch_start(4, 5)
    assert loss.quantizer.beta == pytest.approx(math.sqrt(1 + 0.005 * 8_000))
    zero = dict(metric_weight=0, sign_weight=0, balance_weight=0, decorrelation_weight=0)
    only_quant = build_loss("dfhq", 8, 3, **zero)
    assert set(only_quant(torch.randn(6, 8), torch.arange(6) % 3)[1]) == {"quant"}
    with pytest.raises(ValueError, match="weight 0"):
        build_loss("dfhq", 8, 3, quantization="none", **zero)


@pytest.fixture(scope="module")
def tiny_splits():
    from dfh_lib.interfaces.book_data import book_splits

    return book_splits("tiny", "synthfaces", verbose=False)


@pytest.fixture(scope="module")
def tiny_model(tiny_splits):
    from dfh_lib.engine.train import train_method

    model, _, history = train_method("dfhq", tiny_splits, 12, "tiny", epochs=1, network="ddh",
                                     progress=False, loss_kwargs={"quantization": "l1"})
    return model, history


def test_dfhq_trains_one_epoch_on_tiny_synthfaces(tiny_model):
    model, history = tiny_model
    record = history.records[0]
    assert model.activation is None and len(history) == 1
    assert {"metric", "sign", "balance", "decorrelation", "quant"} <= set(record)
    assert math.isfinite(record["loss"]) and 0 <= record["val_mAP"] <= 1


# ----------------------------------------------------------------------------
# statistics and the toy experiment
# ----------------------------------------------------------------------------

def test_code_statistics_hand_values():
    u = torch.tensor([[0.2, -0.995], [-0.6, 1.0], [0.0, -0.3]])
    stats = Q.code_statistics(u)
    assert stats["quantization_error"] == pytest.approx((0.8 + 0.005 + 0.4 + 0 + 1 + 0.7) / 6)
    assert stats["undecided"] == pytest.approx(3 / 6)
    assert stats["saturated"] == pytest.approx(2 / 6)
    # bit 0 signs +, -, + (0 -> +1): |mean| = 1/3; bit 1: -, +, -: 1/3
    assert stats["bit_balance"] == pytest.approx(2 / 3)
    assert Q.code_statistics(np.ones((4, 2)))["bit_balance"] == 0.0


def test_toy_convergence_quadratic_is_fastest_and_bounded():
    runs = {name: Q.toy_convergence(name, steps=300, n=100, bits=48)
            for name in ("l2", "l1", "logcosh", "double_well", "quadratic")}
    first = {name: int(df.index[df.quantization_error < 0.1][0]) for name, df in runs.items()}
    assert all(first["quadratic"] < first[name] for name in first if name != "quadratic")
    quad = runs["quadratic"].iloc[-1]
    assert quad.mean_abs_z == pytest.approx(2.0, abs=1e-3)
    assert quad.quantization_error == pytest.approx(1 - math.tanh(2), abs=1e-3)
    assert quad.undecided == 0 and quad.saturated == 0
    for name in ("l2", "l1", "logcosh", "double_well"):  # |z| still growing: no finite rest
        assert runs[name].mean_abs_z.iloc[-1] > runs[name].mean_abs_z.iloc[-50] + 0.01
    assert runs["l1"].saturated.iloc[-1] > 0.9  # lowest error, but every bit is dead


def test_toy_convergence_records_and_leaves_the_quantizer_alone():
    q = Q.build_quantizer("tanh_continuation")
    df = Q.toy_convergence(q, steps=20, n=10, bits=4, pull=0.1)
    assert len(df) == 21 and q.beta == 1.0
    assert {"penalty", "quantization_error", "undecided", "saturated", "mean_abs_z",
            "agreement"} <= set(df.columns)


# ----------------------------------------------------------------------------
# robustness helpers
# ----------------------------------------------------------------------------

def _images():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (4, 16, 16, 3), dtype=np.uint8)


@pytest.mark.parametrize("kind, strength", [("noise", 0.1), ("blur", 1.5), ("shift", 2),
                                            ("jpeg", 20)])
def test_perturb_keeps_type_and_layout(kind, strength):
    images = _images()
    out = Q.perturb(images, kind, strength)
    assert out.shape == images.shape and out.dtype == np.uint8 and (out != images).any()
    assert (Q.perturb(images, kind, 0) == images).all()
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    y = Q.perturb(x, kind, strength)
    assert y.shape == x.shape and y.dtype == torch.float32 and 0 <= y.min() <= y.max() <= 1
    assert torch.equal(Q.perturb(x, kind, 0), x)
    faces = FaceDataset(images, np.arange(4), list("abcd"))
    perturbed = Q.perturb(faces, kind, strength)
    assert isinstance(perturbed, FaceDataset) and (perturbed.labels == faces.labels).all()


def test_shift_is_a_translation_by_the_strength_with_edge_padding():
    x = torch.rand(6, 3, 5, 7, generator=torch.Generator().manual_seed(0))
    y = Q.perturb(x, "shift", 2, seed=0)
    rows, cols = torch.arange(5), torch.arange(7)

    def moved(image, dy, dx):  # naive reference: out[i, j] = in[clamp(i - dy), clamp(j - dx)]
        return image[:, (rows - dy).clamp(0, 4)][:, :, (cols - dx).clamp(0, 6)]

    shifts = [(dy, dx) for dy in (-2, 2) for dx in (-2, 2)]
    found = [[s for s in shifts if torch.equal(y[i], moved(x[i], *s))] for i in range(6)]
    assert all(len(f) == 1 for f in found)


def test_perturb_rejects_bad_arguments():
    with pytest.raises(ValueError, match="unknown perturbation kind 'rotate'"):
        Q.perturb(_images(), "rotate", 1)
    with pytest.raises(ValueError, match="strength"):
        Q.perturb(_images(), "noise", -0.1)
    with pytest.raises(ValueError, match="whole number"):
        Q.perturb(_images(), "shift", 1.5)
    with pytest.raises(ValueError, match="quality"):
        Q.perturb(_images(), "jpeg", 101)
    with pytest.raises(ValueError, match="images must be"):
        Q.perturb(np.zeros((2, 3, 8, 8), np.float32), "noise", 0.1)


def test_bit_flip_rate_and_robustness_on_a_tiny_model(tiny_model, tiny_splits):
    model, _ = tiny_model
    query = tiny_splits.query
    assert Q.bit_flip_rate(model, query, "noise", 0) == 0.0
    rate = Q.bit_flip_rate(model, query, "noise", 0.2)
    assert 0 <= rate <= 1
    table = Q.robustness(model, tiny_splits, [("noise", 0.2), ("jpeg", 10)])
    assert list(table.kind) == ["clean", "noise", "jpeg"]
    assert table.bit_flip_rate.iloc[0] == 0 and table.bit_flip_rate.iloc[1] == pytest.approx(rate)
    assert table.mAP.between(0, 1).all()


# ----------------------------------------------------------------------------
# the per-scheme experiment
# ----------------------------------------------------------------------------

def test_epochs_to_fraction_hand_values():
    from dfh_lib.engine.train import History

    history = History([{"epoch": 1}, {"epoch": 2, "val_mAP": 0.5}, {"epoch": 3},
                       {"epoch": 4, "val_mAP": 0.96}, {"epoch": 6, "val_mAP": 1.0}])
    assert Q.epochs_to_fraction(history) == 4           # 0.96 >= 0.95 * 1.0
    assert Q.epochs_to_fraction(history, 0.5) == 2
    assert Q.epochs_to_fraction(History([{"epoch": 1}])) is None
    with pytest.raises(ValueError, match="fraction"):
        Q.epochs_to_fraction(history, 0)


def test_epochs_to_target_uses_one_bar_per_code_length():
    from dfh_lib.engine.train import History

    fast_low = History([{"epoch": 1, "val_mAP": 0.50}, {"epoch": 2, "val_mAP": 0.52}])
    slow_high = History([{"epoch": 1, "val_mAP": 0.30}, {"epoch": 2, "val_mAP": 0.80}])
    other_length = History([{"epoch": 1, "val_mAP": 0.10}])
    epochs = Q.epochs_to_target({("a", 12): fast_low, ("b", 12): slow_high,
                                 ("a", 48): other_length})
    # bar at 12 bits: 0.95 x 0.80; the run that plateaus at 0.52 never reaches it
    assert epochs == {("a", 12): None, ("b", 12): 2, ("a", 48): 1}
    assert Q.epochs_to_fraction(fast_low) == 1           # its own-final measure rewards it
    with pytest.raises(ValueError, match="fraction"):
        Q.epochs_to_target({}, 1.5)


def test_compare_quantizers_rows_match_the_library_pieces(tiny_splits, tmp_path):
    from dfh_lib.experiments import Variant, trained_model
    from dfh_lib.engine.train import encode

    kwargs = dict(perturbations=[("noise", 0.2)], epochs=2, eval_every=1)
    result, robust = Q.compare_quantizers(tiny_splits, ("tanh_continuation", "cubic"), 8,
                                          "tiny", tmp_path, **kwargs)
    rows = {r["method"]: r for r in result.rows}
    assert set(rows) == {"tanh_continuation", "cubic"} and set(result.histories) == {
        ("tanh_continuation", 8), ("cubic", 8)}
    cubic, tanh = rows["cubic"], rows["tanh_continuation"]
    assert cubic["quantization_error"] == 0 and cubic["undecided"] == 0  # ±1 codes
    assert cubic["weight"] == pytest.approx(0.1) and tanh["weight"] == 0
    assert 0 < tanh["float_mAP"] <= 1  # the raw outputs ranked by cosine: the codes' ceiling
    assert tanh["ratio"] == pytest.approx(tanh["mAP"] / tanh["float_mAP"])
    # the row's statistics are those of the scheme's codes at the best epoch's β
    model = trained_model(Variant("tanh_continuation", "dfhq",
                                  {"quantization": "tanh_continuation"}),
                          tiny_splits, 8, "tiny", tmp_path, epochs=2)
    q = Q.build_quantizer("tanh_continuation")
    q.on_epoch_start(tanh["best_epoch"] - 1, 2)
    stats = Q.code_statistics(q.codes(encode(model, tiny_splits.query)))
    assert tanh["quantization_error"] == pytest.approx(stats["quantization_error"])
    history = result.histories[("tanh_continuation", 8)]
    assert tanh["final_val_mAP"] == history.records[-1]["val_mAP"]
    assert tanh["epochs_to_95"] == Q.epochs_to_fraction(history)
    # robustness: a clean row and a perturbed row per run; the means are in the rows
    assert list(robust.kind) == ["clean", "noise"] * 2
    noisy = robust[(robust.method == "cubic") & (robust.kind == "noise")].iloc[0]
    assert cubic["bit_flip_rate"] == pytest.approx(noisy.bit_flip_rate)
    assert robust[robust.kind == "clean"].mAP.tolist() == [tanh["mAP"], cubic["mAP"]]
    assert cubic["mAP_drop"] == pytest.approx(cubic["mAP"] - noisy.mAP)
    # a second call loads the finished runs: same numbers; a weight gets its own label
    again, _ = Q.compare_quantizers(tiny_splits, "cubic", 8, "tiny", tmp_path, **kwargs)
    assert again.rows[0]["mAP"] == cubic["mAP"]
    weighted, none = Q.compare_quantizers(tiny_splits, "l2", 8, "tiny", None, weight=0.5,
                                          epochs=1)
    row = weighted.rows[0]
    assert row["method"] == "l2-w0.5" and row["weight"] == 0.5
    assert math.isnan(row["bit_flip_rate"]) and list(none.kind) == ["clean"]
    with pytest.raises(ValueError, match="unknown quantization"):
        Q.compare_quantizers(tiny_splits, ("l3",), 8, "tiny", tmp_path)
    with pytest.raises(ValueError, match="unknown perturbation"):
        Q.compare_quantizers(tiny_splits, ("l2",), 8, "tiny", tmp_path,
                             perturbations=[("rotate", 1)])
