"""Tests for dfh_lib.nn.losses.dfh: hand-computed terms, gradients, ablation switches,
bad inputs, and the direction each term moves free codes."""
import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.func import functional_call

from dfh_lib.core.data.dataset import FaceDataset, retrieval_protocol
from dfh_lib.nn.losses.dfh import (BitBalanceLoss, BitDecorrelationLoss, DFHLoss, HammingProxyLoss,
                              SignControlLoss)
from dfh_lib.engine.train import TrainConfig, fit

pytestmark = pytest.mark.usefixtures("one_thread")


# three faces, two bits; faces 0 and 1 are identity 0
TOY_U = [[0.5, -0.9], [0.2, 0.4], [-0.3, 0.8]]
TOY_Y = [0, 0, 1]
TOY_PROXIES = [[1.0, 1.0], [1.0, -1.0]]  # targets: t_0 = (+, +), t_1 = (+, −)


def toy(dtype=torch.float64):
    return torch.tensor(TOY_U, dtype=dtype), torch.tensor(TOY_Y)


def dot(a, b):
    return sum(x * y for x, y in zip(a, b))


def cosine(a, b):
    return dot(a, b) / math.sqrt(dot(a, a) * dot(b, b))


def cross_entropy(logits, label):
    return math.log(sum(math.exp(v) for v in logits)) - logits[label]


def with_proxies(loss, proxies):
    """Set a loss's (or metric term's) proxies (C, K) in place."""
    metric = loss.metric if isinstance(loss, DFHLoss) else loss
    with torch.no_grad():
        metric.cosface.W.copy_(torch.tensor(proxies, dtype=metric.cosface.W.dtype).T)
    return loss


# ----------------------------------------------------------------------------
# each term against a hand-computed value
# ----------------------------------------------------------------------------

def test_metric_term_hand_value():
    # K = 2, margin_bits = 0.5 -> m = 2 * 0.5 / 2 = 0.5; scale s = 4
    metric = with_proxies(HammingProxyLoss(2, 2, margin_bits=0.5, scale=4.0).double(),
                          TOY_PROXIES)
    expected = sum(cross_entropy([4 * (cosine(u, w) - 0.5 * (c == y))
                                  for c, w in enumerate(TOY_PROXIES)], y)
                   for u, y in zip(TOY_U, TOY_Y)) / 3
    assert metric(*toy()).item() == pytest.approx(expected, rel=1e-12)


def test_metric_margin_is_in_hamming_bits():
    # ±1 code b at Hamming distance 1 from its own proxy and 3 from the other:
    # with margin_bits = 2 both logits are s (1 - 2·1/8 - 0.5) = s (1 - 2·3/8) -> CE = log 2
    own = [1.0] * 8
    other = [1.0, -1.0, -1.0] + [1.0] * 5
    code = torch.tensor([[-1.0] + [1.0] * 7], dtype=torch.float64)
    metric = with_proxies(HammingProxyLoss(8, 2, margin_bits=2, scale=10.0).double(), [own, other])
    assert metric(code, torch.tensor([0])).item() == pytest.approx(math.log(2), rel=1e-12)
    default = HammingProxyLoss(48, 5)  # default margin: half the proxies' minimum distance
    assert default.cosface.margin == pytest.approx(2 * (default.min_distance / 2) / 48)


@pytest.mark.parametrize("bits", [12, 24, 36, 48])
def test_metric_term_is_satisfied_at_the_target_codes(bits):
    # 62 identities (LFW >= 20 images): every face exactly on its identity's code
    metric = HammingProxyLoss(bits, 62)
    labels = torch.arange(62).repeat(2)
    targets = metric.target_codes(labels)
    assert metric(targets, labels).item() <= 0.1
    # the margin stays below the proxies' minimum distance, which is what was promised
    codes = metric.target_codes(torch.arange(62))
    dist = (bits - codes @ codes.T) / 2
    assert dist.fill_diagonal_(bits).min().item() == metric.min_distance
    assert metric.margin_bits < metric.min_distance
    assert metric.min_distance >= {12: 4, 24: 8, 36: 14, 48: 22}[bits]


def test_sign_term_hand_value():
    # m = 0.5, targets (+,+), (+,+), (+,-): hinge entries 0, 1.4, .3, .1, .8, 1.3 -> 3.9 / 6
    u, labels = toy()
    targets = torch.tensor([TOY_PROXIES[y] for y in TOY_Y], dtype=torch.float64)
    expected = sum(max(0.0, 0.5 - v * t) for row, y in zip(TOY_U, TOY_Y)
                   for v, t in zip(row, TOY_PROXIES[y])) / 6
    assert expected == pytest.approx(0.65)
    assert SignControlLoss(0.5)(u, targets).item() == pytest.approx(expected, rel=1e-12)


def test_balance_term_hand_value():
    # bit means 0.4/3 and 0.3/3 -> (0.16/9 + 0.09/9) / 2 = 1/72
    u, _ = toy()
    expected = sum((sum(row[k] for row in TOY_U) / 3) ** 2 for k in range(2)) / 2
    assert expected == pytest.approx(1 / 72)
    assert BitBalanceLoss()(u).item() == pytest.approx(expected, rel=1e-12)


def test_decorrelation_term_hand_value():
    # bit means 0: cov = Uᵀ U / 4 has off-diagonal (0, .5, .5) twice -> (0 + .25 + .25) * 2 / 6
    rows = [[1, 1, 1], [1, -1, 0], [-1, 1, 0], [-1, -1, -1]]
    assert BitDecorrelationLoss()(torch.tensor(rows, dtype=torch.float64)).item() \
        == pytest.approx(1 / 6, rel=1e-12)
    # the toy batch, by the definition with explicit loops (K = 2: both entries equal)
    means = [sum(row[k] for row in TOY_U) / 3 for k in range(2)]
    cov01 = sum((row[0] - means[0]) * (row[1] - means[1]) for row in TOY_U) / 3
    assert cov01 == pytest.approx(-0.65 / 3)
    assert BitDecorrelationLoss()(toy()[0]).item() == pytest.approx(cov01 ** 2, rel=1e-12)
    assert BitDecorrelationLoss()(torch.ones(4, 1)).item() == 0.0  # one bit: nothing to decorrelate


def test_dfh_loss_is_the_weighted_sum_of_the_terms():
    loss = with_proxies(DFHLoss(2, 2, metric_weight=2.0, sign_weight=0.5, balance_weight=3.0,
                                decorrelation_weight=4.0, margin_bits=0.5, scale=4.0,
                                sign_margin=0.5).double(), TOY_PROXIES)
    u, labels = toy()
    value, terms = loss(u, labels)
    metric = with_proxies(HammingProxyLoss(2, 2, margin_bits=0.5, scale=4.0).double(), TOY_PROXIES)
    assert terms["metric"].item() == pytest.approx(2.0 * metric(u, labels).item(), rel=1e-12)
    assert terms["sign"].item() == pytest.approx(0.5 * 0.65, rel=1e-12)  # targets = proxy signs
    assert terms["balance"].item() == pytest.approx(3.0 / 72, rel=1e-12)
    assert terms["decorrelation"].item() == pytest.approx(4.0 * (0.65 / 3) ** 2, rel=1e-12)
    assert value.item() == pytest.approx(sum(t.item() for t in terms.values()), rel=1e-12)


def test_target_codes_are_proxy_signs_without_gradient():
    metric = with_proxies(HammingProxyLoss(3, 2), [[0.2, -0.1, 0.0], [-3.0, 5.0, -0.5]])
    codes = metric.target_codes(torch.tensor([1, 0, 1]))
    expected = [[-1.0, 1.0, -1.0], [1.0, -1.0, 1.0], [-1.0, 1.0, -1.0]]  # sgn 0 = +1
    torch.testing.assert_close(codes, torch.tensor(expected))
    assert not codes.requires_grad


def test_proxies_are_fixed_well_separated_unit_length_codes():
    from dfh_lib.nn.losses import separated_codes

    metric = HammingProxyLoss(15, 10)
    torch.testing.assert_close(metric.proxies * math.sqrt(15), separated_codes(10, 15))
    assert not metric.proxies.requires_grad
    assert HammingProxyLoss(15, 10, learn_proxies=True).proxies.requires_grad
    assert (metric.target_codes(torch.arange(10)).mean(0).abs() < 1).all()  # no constant bit


# ----------------------------------------------------------------------------
# ablation switches and the optional quantization term
# ----------------------------------------------------------------------------

@pytest.mark.parametrize("weights, names", [
    (dict(sign_weight=0, balance_weight=0, decorrelation_weight=0), {"metric"}),
    (dict(balance_weight=0, decorrelation_weight=0), {"metric", "sign"}),
    (dict(), {"metric", "sign", "balance", "decorrelation"}),
    (dict(metric_weight=0, balance_weight=0), {"sign", "decorrelation"}),
])
def test_zero_weights_drop_their_terms(weights, names):
    u, labels = toy(torch.float32)
    _, terms = DFHLoss(2, 2, **weights)(u, labels)
    assert set(terms) == names


def test_quantization_callable_adds_a_quant_term():
    u, labels = toy()
    _, terms = DFHLoss(2, 2, quantization=lambda v: 0.1 * (v.abs() - 1).pow(2).mean()).double()(
        u, labels)
    assert terms["quant"].item() == pytest.approx(0.1 * 1.79 / 6, rel=1e-12)  # Σ(|u|-1)² = 1.79


def test_quantization_module_is_registered():
    class Scaled(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("lam", torch.tensor(0.5))

        def forward(self, u):
            return self.lam * u.abs().mean()

    loss = DFHLoss(2, 2, quantization=Scaled())
    assert "quantization.lam" in loss.state_dict()
    assert loss.double().quantization.lam.dtype == torch.float64


def test_metric_weight_zero_freezes_proxies_at_the_centres():
    loss = DFHLoss(4, 2, metric_weight=0)
    u = torch.tanh(torch.randn(4, 4)).requires_grad_(True)
    loss(u, torch.tensor([0, 0, 1, 1]))[0].backward()
    assert loss.metric.cosface.W.grad is None and u.grad.abs().sum() > 0


# ----------------------------------------------------------------------------
# gradients
# ----------------------------------------------------------------------------

def small_batch(bits=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    u = torch.rand(6, bits, generator=g, dtype=torch.float64) * 1.6 - 0.8
    return u, torch.tensor([0, 0, 1, 1, 2, 0])


def test_gradcheck_dfh_loss_float64():
    loss = DFHLoss(4, 3, balance_weight=0.5, decorrelation_weight=0.5,
                   quantization=lambda v: 0.1 * (v.abs() - 1).pow(2).mean()).double()
    u, labels = small_batch()
    params = dict(loss.named_parameters())
    assert list(params) == ["metric.cosface.W"]

    def fn(u, proxies):
        return functional_call(loss, {"metric.cosface.W": proxies}, (u, labels))[0]

    proxies = params["metric.cosface.W"].detach().clone().requires_grad_(True)
    assert torch.autograd.gradcheck(fn, (u.requires_grad_(True), proxies), eps=1e-6, atol=1e-6)


@pytest.mark.parametrize("term", [BitBalanceLoss(), BitDecorrelationLoss()])
def test_gradcheck_code_terms_float64(term):
    u, _ = small_batch()
    assert torch.autograd.gradcheck(term, (u.requires_grad_(True),), eps=1e-6, atol=1e-6)


def test_gradcheck_sign_term_float64():
    u, _ = small_batch()
    targets = torch.where(torch.arange(24).reshape(6, 4) % 3 == 0, -1.0, 1.0).double()
    assert torch.autograd.gradcheck(lambda v: SignControlLoss(0.5)(v, targets),
                                    (u.requires_grad_(True),), eps=1e-6, atol=1e-6)


# ----------------------------------------------------------------------------
# each term moves free codes the intended way (50 Adam steps)
# ----------------------------------------------------------------------------

def optimise(objective, raw, extra=(), steps=50, lr=0.1):
    """Minimise objective(tanh(raw)) with Adam; returns the loss values."""
    optimizer = torch.optim.Adam([raw, *extra], lr=lr)
    values = []
    for _ in range(steps):
        value = objective(torch.tanh(raw))
        optimizer.zero_grad()
        value.backward()
        optimizer.step()
        values.append(value.item())
    return values


def test_sign_term_gives_every_bit_its_target_sign_with_margin():
    torch.manual_seed(0)
    raw = nn.Parameter(torch.randn(8, 12))
    targets = torch.where(torch.rand(8, 12) < 0.5, -1.0, 1.0)
    assert ((torch.tanh(raw) * targets) < 0.5).float().mean() > 0.5  # most bits start wrong
    optimise(lambda u: SignControlLoss(0.5)(u, targets), raw)
    assert (torch.tanh(raw) * targets > 0.5).all()


def test_balance_term_drives_bit_means_to_zero():
    torch.manual_seed(0)
    raw = nn.Parameter(torch.randn(16, 12) + 1.0)  # most bits start at +1
    assert torch.tanh(raw).mean(0).abs().min() > 0.2
    optimise(BitBalanceLoss(), raw)
    assert torch.tanh(raw).mean(0).abs().max() < 0.05


def test_decorrelation_term_drives_off_diagonal_covariance_to_zero():
    torch.manual_seed(0)
    base = torch.randn(16, 1)
    raw = nn.Parameter(base + 0.3 * torch.randn(16, 6))  # six copies of one bit

    def off_diagonal(u):
        centred = u - u.mean(0)
        cov = centred.T @ centred / len(u)
        return cov[~torch.eye(6, dtype=torch.bool)].abs().max().item()

    before = off_diagonal(torch.tanh(raw.detach()))
    optimise(BitDecorrelationLoss(), raw)
    assert before > 0.3 and off_diagonal(torch.tanh(raw.detach())) < 0.05 * before


def test_metric_term_separates_identities_by_the_margin():
    torch.manual_seed(0)
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    metric = HammingProxyLoss(12, 4, margin_bits=3)
    raw = nn.Parameter(0.5 * torch.randn(8, 12))
    optimise(lambda u: metric(u, labels), raw, extra=metric.parameters())
    u = nn.functional.normalize(torch.tanh(raw.detach()), dim=1)
    cos = u @ nn.functional.normalize(metric.proxies.detach(), dim=1).T
    own = cos[torch.arange(8), labels]
    others = cos.masked_fill(nn.functional.one_hot(labels, 4).bool(), -2).max(1).values
    assert (own - others > metric.cosface.margin).all()


def test_whole_loss_decreases():
    torch.manual_seed(0)
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    # a sharp softmax (s = 8) and a small margin, so the floor of the metric term is near 0
    loss = DFHLoss(12, 4, scale=8.0, margin_bits=1.5, sign_margin=0.5, balance_weight=0.1)
    raw = nn.Parameter(0.5 * torch.randn(8, 12))
    values = optimise(lambda u: loss(u, labels)[0], raw, extra=loss.parameters(), lr=0.05)
    assert values[-1] < 0.05 * values[0], values[::10]


def test_terms_agree_on_the_codes():
    # 16 identities in 15 bits: the targets are H16 without its constant column, every
    # bit balanced over identities: with the proxies held still, the codes reach their
    # targets, where the sign hinge is 0, balance is 0 and the metric is at its floor
    torch.manual_seed(0)
    labels = torch.arange(16).repeat(2)
    loss = DFHLoss(15, 16, margin_bits=3)
    raw = nn.Parameter(0.5 * torch.randn(32, 15))
    optimise(lambda u: loss(u, labels)[0], raw)
    u = torch.tanh(raw.detach())
    assert (u * loss.metric.target_codes(labels) > 0.5).all()
    _, terms = loss(u, labels)
    assert terms["sign"].item() < 1e-3
    assert terms["balance"].item() < 1e-3
    targets = loss.metric.target_codes(labels)
    assert terms["metric"].item() < 0.1
    assert loss.metric(targets, labels).item() < 0.1


# ----------------------------------------------------------------------------
# bad inputs
# ----------------------------------------------------------------------------

def test_bad_inputs_raise_clear_errors():
    loss = DFHLoss(4, 3)
    u, labels = small_batch()
    u = u.float()
    with pytest.raises(ValueError, match=r"u must have shape \(N, bits\); got \(4,\)"):
        loss(u[0], labels[:1])
    with pytest.raises(ValueError, match="NaN"):
        loss(torch.where(u > 0.5, float("nan"), u), labels)
    with pytest.raises(ValueError, match="bits=4"):
        loss(u[:, :3], labels)
    with pytest.raises(ValueError, match=r"labels must lie in 0\.\.2"):
        loss(u, labels + 1)
    with pytest.raises(ValueError, match=r"u in \[-1, 1\].*activation='tanh'"):
        loss(u * 2, labels)
    with pytest.raises(ValueError, match=r"shape of u \(6, 4\); got \(6, 3\)"):
        SignControlLoss()(u, torch.ones(6, 3))
    with pytest.raises(ValueError, match=r"must return a scalar tensor; got \(6, 4\)"):
        DFHLoss(4, 3, quantization=lambda v: v.abs())(u, labels)


@pytest.mark.parametrize("kwargs, message", [
    (dict(sign_weight=-1), "sign_weight must be a number >= 0"),
    (dict(metric_weight=0, sign_weight=0, balance_weight=0, decorrelation_weight=0),
     "every DFH term has weight 0"),
    (dict(sign_margin=1.5), r"margin must be a number in \(0, 1\]"),
    (dict(margin_bits=5), "must be below the proxies' minimum distance"),
    (dict(quantization="quadratic"), "quantization must be None or a callable"),
    (dict(scale=-1.0), "scale must be a number >= 0"),
])
def test_bad_arguments_raise_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DFHLoss(4, 3, **kwargs)


# ----------------------------------------------------------------------------
# through the training loop (checkpoint holds the proxies)
# ----------------------------------------------------------------------------

def test_fit_trains_and_resumes_with_dfh_loss(tmp_path, monkeypatch):
    monkeypatch.setenv("DFH_DEVICE", "cpu")
    rng = np.random.default_rng(0)
    protos = rng.integers(0, 256, (6, 8, 8, 3))
    labels = np.repeat(np.arange(6), 6)
    images = np.clip(protos[labels] + rng.integers(-30, 31, (36, 8, 8, 3)), 0, 255)
    faces = FaceDataset(images.astype(np.uint8), labels, [f"id{i}" for i in range(6)], name="toy")
    splits = retrieval_protocol(faces, num_query=1, num_val=1, seed=0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(192, 8), nn.Tanh())
    loss = DFHLoss(8, splits.train.num_identities)
    config = TrainConfig(method="dfh", bits=8, epochs=2, batch_size=8, image_size=(8, 8),
                         eval_every=1)
    history = fit(model, loss, splits, config, run_dir=tmp_path, progress=False)
    assert {"metric", "sign", "balance", "decorrelation"} <= set(history.records[0])
    assert all(math.isfinite(r["loss"]) for r in history.records)
    again = fit(model, DFHLoss(8, splits.train.num_identities), splits, config,
                run_dir=tmp_path, progress=False)  # finished run: loads the checkpoint
    assert again.records == history.records


def test_margin_fraction_is_a_fraction_of_the_proxies_minimum_distance():
    for bits in (12, 48):
        loss = DFHLoss(bits, 62, margin_fraction=0.25)
        assert loss.metric.margin_bits == 0.25 * loss.metric.min_distance
    with pytest.raises(ValueError, match=r"in \[0, 1\)"):
        DFHLoss(12, 3, margin_fraction=1.0)
    with pytest.raises(ValueError, match="not both"):
        DFHLoss(12, 3, margin_bits=2, margin_fraction=0.25)
