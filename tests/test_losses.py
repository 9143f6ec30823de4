"""Tests for dfh_lib.nn.losses: hand-computed values, gradients, training signal, bad inputs."""
import math

import pytest
import torch
from torch import nn
from torch.func import functional_call

from dfh_lib.nn.losses import (LOSSES, METHOD_DEFAULTS, CSQLoss, DCDHLoss, DDHLoss, DPSHLoss,
                            DSHLoss, GreedyHashLoss, HashLoss, HashNetLoss, build_loss,
                            hash_centers)

pytestmark = pytest.mark.usefixtures("one_thread")


# three samples, two bits; samples 0 and 1 share identity 0
TOY_U = [[0.5, -0.9], [0.2, 0.4], [-0.3, 0.8]]
TOY_Y = [0, 0, 1]
TOY_PAIRS = [(0, 1, 1), (0, 2, 0), (1, 2, 0)]  # (i, j, similar)


def toy(dtype=torch.float64):
    return torch.tensor(TOY_U, dtype=dtype), torch.tensor(TOY_Y)


def dot(a, b):
    return sum(x * y for x, y in zip(a, b))


def softplus(x):
    return math.log1p(math.exp(x))


def cross_entropy(logits, label):
    return math.log(sum(math.exp(v) for v in logits)) - logits[label]


def small_batch(bits=4, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    u = (torch.rand(6, bits, generator=g, dtype=dtype) * 1.6 - 0.8)
    return u, torch.tensor([0, 0, 1, 1, 2, 0])


# ----------------------------------------------------------------------------
# hand-computed values on the toy batch
# ----------------------------------------------------------------------------

def test_dpsh_hand_value():
    expected_pair = sum(softplus(0.5 * dot(TOY_U[i], TOY_U[j])) - s * 0.5 * dot(TOY_U[i], TOY_U[j])
                        for i, j, s in TOY_PAIRS) / 3
    # (|u| - 1)^2 over the six entries: .25 + .01 + .64 + .36 + .49 + .04 = 1.79
    expected_quant = 0.1 * 1.79 / 6
    loss, terms = DPSHLoss()(*toy())
    assert terms["pairwise"].item() == pytest.approx(expected_pair, rel=1e-12)
    assert terms["quant"].item() == pytest.approx(expected_quant, rel=1e-12)
    assert loss.item() == pytest.approx(expected_pair + expected_quant, rel=1e-12)


def test_dsh_hand_value():
    # D01 = .3² + 1.3² = 1.78 (similar: 1.78 / 2); D02 = 3.53, D12 = .41 (dissimilar, m = 4)
    expected_pair = (0.89 + 0.5 * (4 - 3.53) + 0.5 * (4 - 0.41)) / 3
    # Σ_k ||u| - 1| per sample: .6, 1.4, .9
    expected_quant = 0.01 * (0.6 + 1.4 + 0.9) / 3
    loss, terms = DSHLoss(bits=2)(*toy())
    assert terms["pairwise"].item() == pytest.approx(expected_pair, rel=1e-12)
    assert terms["quant"].item() == pytest.approx(expected_quant, rel=1e-12)
    assert loss.item() == pytest.approx(0.983, rel=1e-12)


def test_dsh_margin_caps_dissimilar_pairs():
    u = torch.tensor([[3.0, 3.0], [-3.0, -3.0]], dtype=torch.float64)  # D = 72 > m = 4
    _, terms = DSHLoss(bits=2)(u, torch.tensor([0, 1]))
    assert terms["pairwise"].item() == 0.0


def test_hashnet_hand_value_is_balanced_mean():
    alpha = 10 / 2
    h = [[math.tanh(v) for v in row] for row in TOY_U]
    pair = {(i, j): softplus(alpha * dot(h[i], h[j])) - s * alpha * dot(h[i], h[j])
            for i, j, s in TOY_PAIRS}
    expected = pair[0, 1] + (pair[0, 2] + pair[1, 2]) / 2  # mean similar + mean dissimilar
    loss, terms = HashNetLoss(bits=2)(*toy())
    assert set(terms) == {"pairwise"}
    assert loss.item() == pytest.approx(expected, rel=1e-12)


def test_hashnet_beta_schedule():
    loss = HashNetLoss(bits=12)
    loss.on_epoch_start(0, 10)
    assert loss.beta == 1.0
    loss.on_epoch_start(5, 10)  # t = 5000 -> (1 + 25) ** 0.5
    assert loss.beta == pytest.approx(math.sqrt(26))
    with pytest.raises(ValueError, match="epoch"):
        loss.on_epoch_start(10, 10)


def test_hashnet_beta_sharpens_codes():
    u, y = toy()
    loss = HashNetLoss(bits=2)
    loss.beta = 50.0  # tanh(50 z) ≈ sgn z
    signs = [[math.copysign(1, v) for v in row] for row in TOY_U]
    pair = {(i, j): softplus(5 * dot(signs[i], signs[j])) - s * 5 * dot(signs[i], signs[j])
            for i, j, s in TOY_PAIRS}
    expected = pair[0, 1] + (pair[0, 2] + pair[1, 2]) / 2
    assert loss(u, y)[0].item() == pytest.approx(expected, rel=1e-6)


def test_greedyhash_hand_value():
    loss = GreedyHashLoss(bits=2, num_classes=2).double()
    weight = [[1.0, 2.0], [-1.0, 0.5]]
    with torch.no_grad():
        loss.classifier.weight.copy_(torch.tensor(weight, dtype=torch.float64))
    codes = [[1, -1], [1, 1], [-1, 1]]  # sgn of TOY_U
    expected_ce = sum(cross_entropy([dot(w, b) for w in weight], y)
                      for b, y in zip(codes, TOY_Y)) / 3
    # ||u| - 1|^3: .125 + .001 + .512 + .216 + .343 + .008 = 1.205
    expected_quant = 0.1 * 1.205 / 6
    _, terms = loss(*toy())
    assert terms["classify"].item() == pytest.approx(expected_ce, rel=1e-12)
    assert terms["quant"].item() == pytest.approx(expected_quant, rel=1e-12)


def test_greedyhash_straight_through_gradient():
    loss = GreedyHashLoss(bits=2, num_classes=2).double()
    u, y = toy()
    u.requires_grad_(True)
    loss(u, y)[0].backward()
    # reference: gradient of CE w.r.t. the codes b = sgn u, passed straight to u
    b = torch.sign(u.detach()).requires_grad_(True)
    nn.functional.cross_entropy(loss.classifier(b), y).backward()
    cubic = [[0.1 * 3 * (abs(v) - 1) ** 2 * math.copysign(1, abs(v) - 1) * math.copysign(1, v) / 6
              for v in row] for row in TOY_U]
    torch.testing.assert_close(u.grad, b.grad + torch.tensor(cubic, dtype=torch.float64))


def test_sign_of_zero_is_plus_one():
    loss = GreedyHashLoss(bits=2, num_classes=2).double()
    weight = [[1.0, 1.0], [-1.0, 0.0]]
    with torch.no_grad():
        loss.classifier.weight.copy_(torch.tensor(weight, dtype=torch.float64))
    _, terms = loss(torch.zeros(1, 2, dtype=torch.float64), torch.tensor([1]))
    assert terms["classify"].item() == pytest.approx(cross_entropy([2.0, -1.0], 1))  # b = [+1, +1]


def test_hash_centers_hand_case_and_hadamard_distances():
    h4 = [[1, 1, 1, 1], [1, -1, 1, -1], [1, 1, -1, -1], [1, -1, -1, 1]]
    torch.testing.assert_close(hash_centers(4, 4), torch.tensor(h4, dtype=torch.float32))
    # two classes in two bits: Hadamard rows are 1 bit apart, a balanced draw is antipodal
    centers = hash_centers(2, 2)
    torch.testing.assert_close(centers[0], -centers[1])
    centers = hash_centers(32, 16)  # rows of [H16; -H16]: distances 8, or 16 for h vs -h
    dist = (16 - centers @ centers.T) / 2
    off = dist[~torch.eye(32, dtype=torch.bool)]
    assert set(off.tolist()) == {8.0, 16.0}


def test_hash_centers_keeps_truncated_hadamard_only_when_better():
    from scipy.linalg import hadamard
    h16 = torch.from_numpy(hadamard(16)).float()
    torch.testing.assert_close(hash_centers(24, 12), torch.cat([h16, -h16])[:24, :12])  # min 4 vs 2
    centers = hash_centers(72, 36)  # truncating H64 to 36 columns leaves min distance 4
    dist = (36 - centers @ centers.T) / 2
    assert dist[~torch.eye(72, dtype=torch.bool)].min() > 4
    assert (centers.sum(1) == 0).all()  # balanced random rows
    torch.testing.assert_close(centers, hash_centers(72, 36))  # seeded


def test_hash_centers_warn_when_classes_collide():
    with pytest.warns(RuntimeWarning, match="coincide"):
        hash_centers(20, 2)


def test_csq_hand_value():
    loss = CSQLoss(bits=2, num_classes=2).double()
    with torch.no_grad():
        loss.centers.copy_(torch.tensor([[1.0, 1.0], [1.0, -1.0]]))
    targets = {0: [1.0, 1.0], 1: [1.0, 0.0]}
    bce = 0.0
    for row, y in zip(TOY_U, TOY_Y):
        for v, t in zip(row, targets[y]):
            p = (v + 1) / 2
            bce -= t * math.log(p) + (1 - t) * math.log(1 - p)
    _, terms = loss(*toy())
    assert terms["center"].item() == pytest.approx(bce / 6, rel=1e-12)
    assert terms["quant"].item() == pytest.approx(1e-4 * 1.79 / 6, rel=1e-12)


def test_csq_rejects_unbounded_codes():
    with pytest.raises(ValueError, match="activation='tanh'"):
        CSQLoss(bits=2, num_classes=2)(torch.tensor([[2.0, 0.1], [0.1, 0.1]]), torch.tensor([0, 1]))


def test_ddh_hand_value():
    loss = DDHLoss(bits=2, num_classes=2).double()
    weight, bias = [[1.0, -2.0], [0.5, 0.5]], [0.1, -0.2]
    with torch.no_grad():
        loss.classifier.weight.copy_(torch.tensor(weight, dtype=torch.float64))
        loss.classifier.bias.copy_(torch.tensor(bias, dtype=torch.float64))
    expected_ce = sum(cross_entropy([dot(w, u) + c for w, c in zip(weight, bias)], y)
                      for u, y in zip(TOY_U, TOY_Y)) / 3
    _, terms = loss(*toy())
    assert terms["classify"].item() == pytest.approx(expected_ce, rel=1e-12)
    assert terms["quant"].item() == pytest.approx(0.01 * 2.9 / 6, rel=1e-12)  # Σ||u|-1| = 2.9


def test_dcdh_hand_value():
    loss = DCDHLoss(bits=2, num_classes=2).double()
    centers = [[1.0, -1.0], [-1.0, 1.0]]
    with torch.no_grad():
        loss.centers.copy_(torch.tensor(centers))

    def sqdist(a, b):
        return sum((x - y) ** 2 for x, y in zip(a, b))

    expected_center = sum(cross_entropy([-0.125 * sqdist(u, m) for m in centers], y)
                          for u, y in zip(TOY_U, TOY_Y)) / 3
    expected_sep = 0.1 * softplus(0.5 * dot(*centers))  # both off-diagonal pairs equal
    # class 0 votes on sgn u: bit 0 -> +2, bit 1 -> 0 (a tie, broken by each sample's own u);
    # class 1 is sample 2 alone: B = [[1, -1], [1, 1], [-1, 1]]
    codes = [[1, -1], [1, 1], [-1, 1]]
    expected_reg = 0.01 * sum(sqdist(u, b) for u, b in zip(TOY_U, codes)) / 3
    _, terms = loss(*toy())
    assert terms["center"].item() == pytest.approx(expected_center, rel=1e-12)
    assert terms["separation"].item() == pytest.approx(expected_sep, rel=1e-12)
    assert terms["regression"].item() == pytest.approx(expected_reg, rel=1e-12)
    assert expected_reg == pytest.approx(0.01 * 1.79 / 3)


# ----------------------------------------------------------------------------
# properties of every loss
# ----------------------------------------------------------------------------

def make(name, bits=4, num_classes=3):
    return build_loss(name, bits, num_classes)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_shapes_finite_and_gradients(name):
    loss = make(name, bits=12, num_classes=5)
    u = torch.randn(16, 12).tanh().requires_grad_(True)
    labels = torch.arange(16) % 5
    value, terms = loss(u, labels)
    assert value.ndim == 0 and torch.isfinite(value)
    assert terms and all(t.ndim == 0 and not t.requires_grad for t in terms.values())
    assert value.item() == pytest.approx(sum(t.item() for t in terms.values()), rel=1e-6)
    value.backward()
    assert torch.isfinite(u.grad).all() and u.grad.abs().sum() > 0
    for p in loss.parameters():
        if p.requires_grad:  # DFH's proxies are fixed codes by default
            assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0


@pytest.mark.parametrize("name", sorted(set(LOSSES) - {"greedyhash"}))  # sign has no true gradient
def test_gradcheck_float64(name):
    loss = make(name).double()
    u, labels = small_batch()
    params = dict(loss.named_parameters())

    def fn(u, *values):
        return functional_call(loss, dict(zip(params, values)), (u, labels))[0]

    values = (p.detach().clone().requires_grad_(True) for p in params.values())
    inputs = (u.requires_grad_(True), *values)
    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_optimising_free_codes_decreases_loss(name):
    torch.manual_seed(0)
    loss = make(name, bits=12, num_classes=4)
    raw = nn.Parameter(0.5 * torch.randn(8, 12))
    squash = torch.tanh if METHOD_DEFAULTS[name]["activation"] == "tanh" else (lambda z: z)
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    optimizer = torch.optim.Adam([raw, *loss.parameters()], lr=0.05)
    values = []
    for _ in range(50):
        value, _ = loss(squash(raw), labels)
        optimizer.zero_grad()
        value.backward()
        optimizer.step()
        values.append(value.item())
    assert values[-1] < 0.7 * values[0], values[::10]


# ----------------------------------------------------------------------------
# bad inputs
# ----------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(LOSSES))
def test_bad_inputs_raise_clear_errors(name):
    loss = make(name)
    u, labels = small_batch(dtype=torch.float32)
    with pytest.raises(ValueError, match=r"u must have shape \(N, bits\); got \(4,\).*flatten"):
        loss(u[0], labels[:1])
    with pytest.raises(ValueError, match=r"labels must have shape \(N,\) = \(6,\)"):
        loss(u, labels[:5])
    with pytest.raises(ValueError, match="NaN"):
        loss(torch.where(u > 0.5, float("nan"), u), labels)
    with pytest.raises(ValueError, match="int64"):
        loss(u, labels.float())
    with pytest.raises(ValueError, match="labels.to"):
        loss(u, labels.to("meta"))
    if loss.bits is not None:
        with pytest.raises(ValueError, match="bits=4"):
            loss(u[:, :3], labels)
    if loss.num_classes is not None:
        with pytest.raises(ValueError, match=r"labels must lie in 0\.\.2"):
            loss(u, labels + 1)


def test_pairwise_losses_handle_batches_without_pairs():
    u = torch.tensor([[0.5, -0.5]])
    for loss in (DPSHLoss(), DSHLoss(bits=2), HashNetLoss(bits=2)):
        value, terms = loss(u, torch.tensor([0]))
        assert torch.isfinite(value) and terms["pairwise"].item() == 0.0


def test_registry_and_build_loss():
    assert set(METHOD_DEFAULTS) == set(LOSSES)
    assert all(d["activation"] in ("tanh", None) for d in METHOD_DEFAULTS.values())
    assert not any("network" in d for d in METHOD_DEFAULTS.values())  # one start for all
    assert build_loss("dsh", bits=12, num_classes=10).margin == 24.0
    assert build_loss("hashnet", bits=48, num_classes=10).alpha == pytest.approx(10 / 48)
    assert build_loss("dpsh", bits=12, num_classes=10, eta=0.5).eta == 0.5
    assert all(isinstance(build_loss(n, 12, 10), HashLoss) for n in LOSSES)
    with pytest.raises(ValueError, match="unknown loss 'dtsh'.*'dpsh'"):
        build_loss("dtsh", 12, 10)
    with pytest.raises(ValueError, match="eta must be a number >= 0"):
        DPSHLoss(eta=-1)
    with pytest.raises(ValueError, match="num_classes must be a positive int"):
        DDHLoss(bits=12, num_classes=0)
    with pytest.raises(TypeError):
        HashLoss()


def test_loss_state_moves_and_saves():
    csq = CSQLoss(bits=16, num_classes=4)
    assert "centers" in csq.state_dict()
    assert "centers" in dict(DCDHLoss(bits=16, num_classes=4).named_parameters())
    assert csq.double().centers.dtype == torch.float64


def test_softmax_loss_hand_value():
    from dfh_lib.nn.losses import SoftmaxLoss

    loss = SoftmaxLoss(bits=2, num_classes=2)
    with torch.no_grad():
        loss.classifier.weight.copy_(torch.eye(2))
        loss.classifier.bias.zero_()
    u = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    value, terms = loss(u, torch.tensor([0, 0]))
    # sample 1: logits (1, 0) -> -log(e/(e+1)); sample 2: logits (0, 2) -> -log(1/(1+e^2))
    expected = (math.log(1 + math.exp(-1)) + math.log(1 + math.exp(2))) / 2
    assert value.item() == pytest.approx(expected, rel=1e-6)
    assert set(terms) == {"classify"}
