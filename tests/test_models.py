"""Tests for dfh_lib.nn.models: shapes, named features, layer references, offline weights."""
import urllib.error
import warnings

import pytest
import torch
import torchvision
from torch import nn

from dfh_lib.nn.models import (MODEL_NAMES, DDHNet, DivideAndEncode, HashHead, LocallyConnected2d,
                            SmallResNet, Standardize, TorchvisionResNet, build_model,
                            count_parameters)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def offline(monkeypatch):
    """Make torchvision's weight loader fail as it does without a network."""
    calls = []

    def refuse(url, *args, **kwargs):
        calls.append(url)
        raise urllib.error.URLError("no network in tests")

    monkeypatch.setattr(torchvision.models._api, "load_state_dict_from_url", refuse)
    return calls


@pytest.mark.parametrize("size", [32, 64])
@pytest.mark.parametrize("bits", [12, 24, 36, 48])
@pytest.mark.parametrize("name", ["ddh", "small_resnet", "resnet18"])
def test_output_shape_and_range(name, bits, size):
    torch.manual_seed(0)
    model = build_model(name, bits, image_size=(size, size))
    u = model(torch.rand(3, 3, size, size))
    assert model.bits == bits
    assert u.shape == (3, bits) and torch.isfinite(u).all()
    assert u.abs().max() <= 1


def test_resnet50_and_raw_outputs():
    model = build_model("resnet50", 12, image_size=32, activation=None)
    z = model(torch.rand(4, 3, 32, 32))
    assert z.shape == (4, 12)
    assert z.abs().max() > 1  # BN outputs with unit variance, no tanh
    assert isinstance(model.head[-1], nn.Identity)


@pytest.mark.parametrize("name", ["ddh", "small_resnet", "resnet18"])
def test_backward_reaches_every_parameter(name):
    model = build_model(name, 12, image_size=32)
    model(torch.rand(4, 3, 32, 32)).pow(2).sum().backward()
    for param_name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), param_name


def test_ddh_features_hand_shapes():
    # 32 -conv3-> 30 -pool-> 15 -conv2-> 14 -pool-> 7 -conv2-> 6 -pool-> 3 -LC2-> 2
    model = DDHNet(48)
    shapes = {k: tuple(v.shape) for k, v in model.features(torch.rand(2, 3, 32, 32)).items()}
    assert shapes == {"block1": (2, 20, 15, 15), "block2": (2, 40, 7, 7), "block3": (2, 60, 3, 3),
                      "block4": (2, 80, 2, 2), "embedding": (2, 192), "u": (2, 48)}


def test_ddh_parameter_count_by_hand():
    # conv 560 + 3240 + 9660; LC 4 locations · 240 · 80 + 80 · 4 = 77 120;
    # Linear(540 + 320 -> 192) 165 312; divide-and-encode 48 · 4 + 48 = 240;
    # BatchNorm γ, β: 2 · (20 + 40 + 60 + 80 + 192 + 48) = 880
    assert count_parameters(DDHNet(48)) == 560 + 3240 + 9660 + 77_120 + 165_312 + 240 + 880


@pytest.mark.parametrize("name", ["small_resnet", "resnet18"])
def test_resnet_features_names_and_shapes(name):
    model = build_model(name, 24, image_size=64).eval()
    x = torch.rand(2, 3, 64, 64)
    feats = model.features(x)
    assert list(feats) == ["stem", "block1", "block2", "block3", "block4", "embedding", "u"]
    assert [v.shape[-1] for k, v in feats.items() if k.startswith("block")] == [32, 16, 8, 4]
    assert feats["embedding"].ndim == 2 and feats["u"].shape == (2, 24)
    torch.testing.assert_close(feats["u"], model(x))
    subset = model.features(x, depths=["block2", "embedding"])
    assert list(subset) == ["block2", "embedding"]
    torch.testing.assert_close(subset["block2"], feats["block2"])
    assert list(model.features(x, "block4")) == ["block4"]
    with pytest.raises(ValueError, match="depths must be names from"):
        model.features(x, depths=["block9"])


def test_torchvision_stem_depends_on_image_size():
    assert isinstance(TorchvisionResNet(12, 32).stem[3], nn.Identity)  # CIFAR stem, no max-pool
    mid = TorchvisionResNet(12, 64)
    assert mid.stem[0].kernel_size == (3, 3) and isinstance(mid.stem[3], nn.MaxPool2d)
    assert TorchvisionResNet(12, 96).stem[0].kernel_size == (7, 7)


def test_pretrained_offline_warns_and_runs(offline):
    match = "could not download ImageNet weights .*using random init"
    with pytest.warns(RuntimeWarning, match=match):
        model = build_model("resnet18", 12, image_size=32, pretrained=True)
    assert offline and "resnet18" in offline[0]
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 12)


def test_pretrained_weights_are_loaded(monkeypatch):
    source = torchvision.models.resnet18()
    monkeypatch.setattr(torchvision.models._api, "load_state_dict_from_url",
                        lambda url, **kwargs: source.state_dict())
    model = build_model("resnet18", 12, image_size=128, pretrained=True)
    torch.testing.assert_close(model.blocks[0][0].conv1.weight, source.layer1[0].conv1.weight)
    torch.testing.assert_close(model.stem[0].weight, source.conv1.weight)


def test_no_download_without_pretrained(offline):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        build_model("resnet18", 12)
        build_model("resnet50", 12)
    assert offline == []


def test_build_model_rejects_bad_arguments():
    with pytest.raises(ValueError, match="unknown network 'vgg'.*'ddh'"):
        build_model("vgg", 12)
    with pytest.raises(ValueError, match="no pretrained weights exist for 'ddh'"):
        build_model("ddh", 12, pretrained=True)
    with pytest.raises(ValueError, match="bits must be a positive int"):
        build_model("ddh", 0)
    with pytest.raises(ValueError, match="activation must be 'tanh' or None"):
        build_model("small_resnet", 12, activation="relu")
    with pytest.raises(ValueError, match="image_size must be a positive int"):
        build_model("ddh", 12, image_size=(32,))
    with pytest.raises(ValueError, match="at least 24x24"):
        DDHNet(12, image_size=16)
    assert set(MODEL_NAMES) == {"ddh", "small_resnet", "resnet18", "resnet50",
                                "face_embedding", "face_embedding_ft"}


def test_bad_images_raise_clear_errors():
    model = build_model("ddh", 12)
    with pytest.raises(ValueError, match=r"permute\(0, 3, 1, 2\)"):
        model(torch.rand(2, 32, 32, 3))
    with pytest.raises(ValueError, match=r"float\(\) / 255"):
        model(torch.zeros(2, 3, 32, 32, dtype=torch.uint8))
    with pytest.raises(ValueError, match="built for image_size=.32, 32."):
        model(torch.rand(2, 3, 64, 64))


def test_locally_connected_with_shared_weights_is_a_convolution():
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 5, 2)
    lc = LocallyConnected2d(3, 5, 2, (4, 6))
    with torch.no_grad():
        lc.weight.copy_(conv.weight.reshape(5, -1).T.expand_as(lc.weight))
        lc.bias.copy_(conv.bias[:, None].expand_as(lc.bias))
    x = torch.randn(2, 3, 4, 6)
    torch.testing.assert_close(lc(x), conv(x))


def test_locally_connected_weights_are_per_location():
    lc = LocallyConnected2d(1, 1, 2, (3, 3))  # 2x2 output, location p = row * 2 + col
    x = torch.randn(1, 1, 3, 3)
    before = lc(x).detach()
    with torch.no_grad():
        lc.weight[3] += 1.0  # bottom-right location only
    change = lc(x).detach() - before
    assert change[0, 0, 1, 1] == pytest.approx(x[0, 0, 1:, 1:].sum().item(), rel=1e-5)
    assert (change.flatten()[:3] == 0).all()


def test_divide_and_encode_matches_one_linear_per_bit():
    torch.manual_seed(0)
    layer = DivideAndEncode(bits=3, group_size=4)
    x = torch.randn(5, 12)
    expected = torch.cat([nn.functional.linear(x[:, 4 * k:4 * k + 4], layer.weight[k:k + 1],
                                               layer.bias[k:k + 1]) for k in range(3)], dim=1)
    torch.testing.assert_close(layer(x), expected)
    with pytest.raises(ValueError, match=r"expects \(N, 12\)"):
        layer(torch.randn(5, 8))


def test_small_blocks():
    assert count_parameters(nn.Linear(3, 2)) == 8
    frozen = nn.Linear(3, 2).requires_grad_(False)
    assert count_parameters(frozen) == 0 and count_parameters(frozen, trainable_only=False) == 8
    head = HashHead(16, 12)
    assert [type(m) for m in head] == [nn.Linear, nn.BatchNorm1d, nn.Tanh] and head.bits == 12
    assert [type(m) for m in HashHead(16, 12, None, batch_norm=False)] == [nn.Linear, nn.Identity]
    norm = Standardize()
    assert {"mean", "std"} <= set(norm.state_dict())
    assert norm(norm.mean.expand(1, 3, 2, 2)).abs().max() == 0
    assert "normalize.mean" in SmallResNet(12).state_dict()


# ---------------------------------------------------------------- the face embedding network


@pytest.fixture
def backbone(tmp_path):
    """A face embedding file as shared_backbone writes it (random weights)."""
    from dfh_lib.nn.models import SmallResNet

    torch.manual_seed(0)
    trunk = SmallResNet(16, (64, 48), activation=None, widths=(4, 8, 8, 16)).eval()
    path = tmp_path / "embedding.pt"
    torch.save({"format": "dfh_lib.face_embedding/1", "dim": 16, "image_size": [64, 48],
                "widths": [4, 8, 8, 16], "model": trunk.state_dict()}, path)
    return path


def test_face_embedding_head_trains_on_precomputed_views_and_matches_images(backbone):
    from dfh_lib.nn.models import EmbeddingHashNet

    model = build_model("face_embedding", 12, image_size=(64, 48), backbone=backbone).eval()
    assert isinstance(model, EmbeddingHashNet) and not model.fine_tune
    assert all(not p.requires_grad for p in model.trunk.parameters())
    assert not any(k.startswith("trunk") for k in model.state_dict() if k != "trunk_id")
    images = (torch.rand(5, 3, 64, 48) * 255).to(torch.uint8)
    views = model.precompute_inputs(images, training=True)
    assert views.shape == (5, model.views, 16)
    # view 0 is the image itself: precomputed and direct codes agree in eval mode
    torch.testing.assert_close(model(views), model(images.float() / 255), atol=1e-5, rtol=1e-4)
    assert model.precompute_inputs(images, training=False).shape == (5, 1, 16)
    model.train()
    assert not model.trunk.training  # frozen: BatchNorm statistics stay
    tuned = build_model("face_embedding_ft", 12, image_size=(64, 48), backbone=backbone)
    assert all(p.requires_grad for p in tuned.trunk.parameters())


def test_face_embedding_rejects_wrong_sizes_files_and_backbones(backbone, tmp_path):
    from dfh_lib.nn.models import load_face_embedding

    with pytest.raises(ValueError, match="takes"):
        build_model("face_embedding", 12, image_size=(32, 32), backbone=backbone)
    with pytest.raises(ValueError, match="needs backbone="):
        build_model("face_embedding", 12, image_size=(64, 48))
    bad = tmp_path / "bad.pt"
    torch.save({"format": "something else"}, bad)
    with pytest.raises(ValueError, match="not a face embedding file"):
        load_face_embedding(bad)
    with pytest.raises(FileNotFoundError, match="no face embedding network"):
        load_face_embedding(tmp_path / "missing.pt")
    # a head saved on one backbone refuses to load on another
    head = build_model("face_embedding", 12, image_size=(64, 48), backbone=backbone)
    state = head.state_dict()
    state["trunk_id"] = state["trunk_id"] + 1
    with pytest.raises(ValueError, match="another face embedding network"):
        build_model("face_embedding", 12, image_size=(64, 48), backbone=backbone
                    ).load_state_dict(state)


def test_config_views_1_trains_a_frozen_head_on_the_image_itself(backbone):
    from dfh_lib.engine.train import TrainConfig, build_method_model

    config = TrainConfig(method="dfh", bits=12, network="face_embedding", image_size=(64, 48),
                         backbone=str(backbone), views=1)
    model = build_method_model(config).train()
    images = (torch.rand(5, 3, 64, 48) * 255).to(torch.uint8)
    views = model.precompute_inputs(images, training=True)
    assert model.views == 1 and views.shape == (5, 1, 16)  # no flipped or shifted copies
    assert torch.equal(model._embedding(views), views[:, 0])
