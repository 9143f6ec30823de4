"""Tests for the GAN (dfh.gan, dfh_lib.interfaces.topics.gan): networks,
losses, framing, the training loop (checkpoints, exact resume, refusals, NaN
guard), editing, augmentation and the independent attribute classifier.
Everything runs on CPU in seconds."""
import csv

import numpy as np
import pytest
import torch

from dfh_lib.core.data import load_synthfaces
from dfh_lib.core.data.dataset import FaceDataset
from dfh_lib.engine import editing
from dfh_lib.interfaces.topics import gan
from dfh_lib.nn.losses import gan as gan_losses

pytestmark = pytest.mark.usefixtures("one_thread")
ATTRS = gan.DEFAULT_ATTRIBUTES


@pytest.fixture(autouse=True)
def _cpu_and_restore_determinism(cpu_deterministic_guard):
    """Every test here trains on the CPU (see conftest)."""


@pytest.fixture(scope="module")
def faces():
    return load_synthfaces(8, 4, size=32)  # 32 images, 12 CelebA-named attributes


def tiny(**changes):
    base = dict(steps=10, batch_size=4, log_every=2, checkpoint_every=5, deterministic=True)
    return gan.GANConfig.from_profile("tiny", **{**base, **changes})


def equal_states(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def trained(faces, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("gan")
    torch.set_num_threads(1)
    result = gan.train_gan(faces, tiny(), run_dir, progress=False, device="cpu")
    return result, run_dir


# ------------------------------------------------------------------ networks

@pytest.mark.parametrize("size", [32, 64])
def test_shapes_and_output_range(size):
    torch.manual_seed(0)
    G = gan.Generator(ATTRS, width=4, res_blocks=1, image_size=size)
    D = gan.Discriminator(len(ATTRS), size, width=4, max_width=16)
    x = torch.rand(3, 3, size, size) * 2 - 1
    c = torch.randint(0, 2, (3, len(ATTRS))).float()
    y = G(x, 100 * c)  # extreme inputs: tanh still bounds the output
    assert y.shape == x.shape and y.abs().max() <= 1
    src, cls = D(y)
    assert src.shape == (3, 1, 2, 2) and cls.shape == (3, len(ATTRS))
    with pytest.raises(ValueError, match=r"targets c must be \(N=3, A=7\)"):
        G(x, c[:, :3])


def test_networks_reject_bad_sizes():
    with pytest.raises(ValueError, match="multiple of 4"):
        gan.Generator(ATTRS, image_size=30)
    with pytest.raises(ValueError, match="power of 2"):
        gan.Discriminator(3, image_size=48)


def test_profile_sizes_and_checkpoint_budget():
    sizes = {}
    for profile in ("tiny", "cpu", "gpu"):
        config = gan.GANConfig.from_profile(profile)
        G, _ = gan.build_gan(config)
        sizes[profile] = sum(p.numel() for p in G.parameters())
    assert sizes["tiny"] < sizes["cpu"] < sizes["gpu"] <= 2e6  # G <= 8 MB in float32
    assert gan.GANConfig.from_profile("gpu").image_size == 64
    assert gan.GANConfig.from_profile("cpu", steps=7).steps == 7
    with pytest.raises(ValueError, match="unknown GANConfig fields"):
        gan.GANConfig.from_profile("tiny", epochs=3)
    assert {"Male", "Young"}.isdisjoint(ATTRS) and set(gan.HAIR_COLOURS) & set(ATTRS)


# ------------------------------------------------------------------ losses

def test_gradient_penalty_of_a_linear_critic_is_known():
    # critic(x) = <w, x>: the gradient is w everywhere, so GP = (||w|| - 1)^2
    w = torch.full((3, 4, 4), 0.5)  # ||w|| = 0.5 * sqrt(48)
    real, fake = torch.randn(5, 3, 4, 4), torch.randn(5, 3, 4, 4)
    gp = gan.gradient_penalty(lambda x: (x * w).sum(dim=(1, 2, 3)), real, fake,
                              torch.rand(5))
    torch.testing.assert_close(gp, (0.5 * torch.tensor(48.0).sqrt() - 1) ** 2)


def test_gradient_penalty_of_a_quadratic_critic_uses_the_mixed_point():
    # critic(x) = ||x||^2 / 2: the gradient at x̂ is x̂ = a real + (1 - a) fake
    real, fake, alpha = torch.randn(4, 6), torch.randn(4, 6), torch.tensor([0, .3, .7, 1])
    mixed = alpha[:, None] * real + (1 - alpha[:, None]) * fake
    gp = gan.gradient_penalty(lambda x: 0.5 * (x ** 2).sum(1), real, fake, alpha)
    torch.testing.assert_close(gp, ((mixed.norm(dim=1) - 1) ** 2).mean())
    assert gp.requires_grad is False or gp.grad_fn is not None


def test_losses_are_finite_and_reach_the_right_networks():
    torch.manual_seed(0)
    config = tiny()
    G, D = gan.build_gan(config)
    x = torch.rand(4, 3, 32, 32) * 2 - 1
    c = torch.randint(0, 2, (4, len(ATTRS))).float()
    d_loss, d_terms = gan.discriminator_loss(D, x, G(x, c.flip(0)), c, torch.rand(4), config)
    g_loss, g_terms = gan.generator_loss(G, D, x, c, c.flip(0), config)
    assert set(d_terms) == {"d_loss", "d_real", "d_fake", "d_cls", "d_gp"}
    assert set(g_terms) == {"g_loss", "g_adv", "g_cls", "g_rec"}
    assert all(torch.isfinite(v) for v in [*d_terms.values(), *g_terms.values()])
    torch.testing.assert_close(d_loss, d_terms["d_real"] + d_terms["d_fake"]
                               + d_terms["d_cls"] + 10 * d_terms["d_gp"])
    torch.testing.assert_close(g_loss, g_terms["g_adv"] + g_terms["g_cls"]
                               + 10 * g_terms["g_rec"])
    d_loss.backward()
    assert all(p.grad is None for p in G.parameters())  # fake is detached for D


# ------------------------------------------------------------------ framing, attributes

def test_face_crops_frame_celeba_at_any_scale():
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (2, 109, 89, 3), np.uint8)
    big = np.repeat(np.repeat(small, 2, axis=1), 2, axis=2)  # the 178x218 release
    a, b = gan.face_crops(small, 32, "celeba"), gan.face_crops(big, 32, "celeba")
    assert a.shape == (2, 32, 32, 3) and a.dtype == np.uint8
    assert np.abs(a.astype(int) - b).mean() < 25  # same region (noise images)
    full = gan.face_crops(small, 16, "full")
    assert full.shape == (2, 16, 16, 3)
    with pytest.raises(ValueError, match="framing must be one of"):
        gan.face_crops(small, 32, "passport")
    assert gan.framing_for("lfw") == "lfw" and gan.framing_for("synthfaces") == "full"


def test_flips_keep_hair_colours_exclusive():
    names = list(ATTRS)
    source = np.zeros((2, len(names)), np.float32)
    source[0, names.index("Black_Hair")] = 1
    blond = gan.flip_targets(source, "Blond_Hair", names)
    assert blond[:, names.index("Blond_Hair")].tolist() == [1, 1]
    assert blond[:, names.index("Black_Hair")].tolist() == [0, 0]
    black_off = gan.flip_targets(source, "Black_Hair", names)
    assert black_off[0].sum() == 0 and black_off[1, names.index("Black_Hair")] == 1
    rng = np.random.default_rng(0)
    many = editing._random_flips(np.repeat(source, 50, 0), names, names, 2, rng, 2)
    hair = [names.index(a) for a in gan.HAIR_COLOURS if a in names]
    assert many[:, hair].sum(1).max() <= 1
    changed = (many != np.repeat(np.repeat(source, 50, 0), 2, 0)).sum(1)
    assert changed.min() >= 1 and changed.max() <= 4


def test_split_by_identity_holds_out_whole_identities(faces):
    train, test = gan.split_by_identity(faces, 0.25, seed=1)
    assert len(train) + len(test) == len(faces)
    assert set(train.labels).isdisjoint(test.labels) and len(set(test.labels)) == 2


# ------------------------------------------------------------------ training loop

def test_tiny_train_writes_checkpoint_generator_and_log(trained, faces):
    result, run_dir = trained
    assert {p.name for p in run_dir.iterdir()} == {"checkpoint.pt", "generator.pt", "log.csv"}
    rows = list(csv.DictReader(open(run_dir / "log.csv")))
    assert [int(r["step"]) for r in rows] == [2, 4, 6, 8, 10]
    assert {"d_loss", "d_gp", "g_loss", "g_rec", "lr"} <= set(rows[-1])
    assert float(rows[0]["lr"]) == 1e-4 > float(rows[-1]["lr"])  # decays over the 2nd half
    assert rows[0]["g_loss"] == ""  # G first steps at step 5 (n_critic = 5)
    G = gan.load_generator(run_dir)
    assert not G.training and G.config == result.config and G.framing == "full"
    assert equal_states(G.state_dict(), result.generator.state_dict())
    from_checkpoint = gan.load_generator(run_dir / "checkpoint.pt")
    assert equal_states(from_checkpoint.state_dict(), G.state_dict())


def test_finished_run_loads_instead_of_training(trained, faces, monkeypatch):
    result, run_dir = trained
    monkeypatch.setattr(gan_losses, "gradient_penalty", _explode)
    again = gan.train_gan(faces, tiny(), run_dir, progress=False)
    assert again.log == result.log
    assert equal_states(again.generator.state_dict(), result.generator.state_dict())


def _explode(*args, **kwargs):
    raise AssertionError("no training step expected")


def test_killed_and_resumed_run_equals_uninterrupted_run(trained, faces, tmp_path,
                                                         monkeypatch):
    result, _ = trained
    real_gp, calls = gan.gradient_penalty, []

    def killed_at_step_8(*args):
        calls.append(1)
        if len(calls) == 8:
            raise KeyboardInterrupt
        return real_gp(*args)

    monkeypatch.setattr(gan_losses, "gradient_penalty", killed_at_step_8)
    with pytest.raises(KeyboardInterrupt):
        gan.train_gan(faces, tiny(), tmp_path, progress=False)
    monkeypatch.setattr(gan_losses, "gradient_penalty", real_gp)
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=True)["step"] == 5
    torch.manual_seed(123)  # another initialisation: must be overwritten by the checkpoint
    resumed = gan.train_gan(faces, tiny(), tmp_path, progress=False)
    assert equal_states(resumed.generator.state_dict(), result.generator.state_dict())
    assert equal_states(resumed.discriminator.state_dict(),
                        result.discriminator.state_dict())
    strip = lambda log: [{k: v for k, v in r.items() if k != "time_s"} for r in log]
    assert strip(resumed.log) == strip(result.log)


def test_checkpoint_of_another_config_or_data_is_refused(trained, faces):
    _, run_dir = trained
    with pytest.raises(ValueError, match=r"different run \(g_lr: 0\.0001 -> 0\.0002\)"
                                         r".*resume=False"):
        gan.train_gan(faces, tiny(g_lr=2e-4), run_dir, progress=False)
    with pytest.raises(ValueError, match=r"images: 32 -> 28"):
        gan.train_gan(faces.subset(np.arange(28)), tiny(), run_dir, progress=False)


@pytest.mark.parametrize("content, message", [
    (b"not a checkpoint", "is not a readable dfh_lib checkpoint"),
    ("torch-dict", "is not a dfh_lib gan_checkpoint file")])
def test_corrupt_or_foreign_checkpoint_is_refused(faces, tmp_path, content, message):
    path = tmp_path / "checkpoint.pt"
    if content == "torch-dict":
        torch.save({"generator": {}, "step": 3}, path)
    else:
        path.write_bytes(content)
    with pytest.raises(ValueError, match=message + ".*start fresh"):
        gan.train_gan(faces, tiny(), tmp_path, progress=False)
    with pytest.raises(ValueError, match=message.split(" gan_")[0]):
        gan.load_generator(path)


def test_nan_loss_stops_with_step_and_losses(faces, tmp_path, monkeypatch):
    real_gp, calls = gan.gradient_penalty, []

    def nan_at_step_7(*args):
        calls.append(1)
        value = real_gp(*args)
        return value * float("nan") if len(calls) == 7 else value

    monkeypatch.setattr(gan_losses, "gradient_penalty", nan_at_step_7)
    with pytest.raises(FloatingPointError, match=r"step 7 of 10: d_loss=nan.*d_gp=nan"
                                                 r".*checkpoint \(step 5\) is untouched"):
        gan.train_gan(faces, tiny(), tmp_path, progress=False)


def test_config_validation():
    with pytest.raises(ValueError, match="steps must be a positive int"):
        tiny(steps=0)
    with pytest.raises(ValueError, match="attributes must be distinct"):
        tiny(attributes=("Smiling", "Smiling"))
    with pytest.raises(ValueError, match="no attribute"):
        gan.train_gan(FaceDataset(np.zeros((4, 32, 32, 3), np.uint8), np.zeros(4, int),
                                  ["a"]), tiny(), progress=False)


# ------------------------------------------------------------------ editing, augmentation

def test_edit_keeps_shape_dtype_and_pixels_outside_the_face_box(trained):
    G = trained[0].generator
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 109, 89, 3), np.uint8)
    targets = rng.integers(0, 2, (3, len(ATTRS)))
    out = gan.edit(G, images, targets, framing="celeba")
    assert out.shape == images.shape and out.dtype == np.uint8
    top, left, bottom, right = editing._box("celeba", 109, 89)
    assert np.array_equal(out[:, :top], images[:, :top])
    assert not np.array_equal(out[:, top:bottom, left:right], images[:, top:bottom, left:right])
    lfw_like = rng.integers(0, 256, (2, 62, 47, 3), np.uint8)
    out = gan.edit(G, lfw_like, {"Smiling": 1}, source=targets[:2], framing="lfw")
    assert out.shape == lfw_like.shape and out.dtype == np.uint8
    with pytest.raises(ValueError, match="needs the images' current attributes"):
        gan.edit(G, lfw_like, {"Smiling": 1})
    with pytest.raises(ValueError, match=r"targets must be \(N=2, A=7\)"):
        gan.edit(G, lfw_like, targets)


def test_flip_attribute_gives_one_edit_per_attribute(trained, faces):
    G = trained[0].generator
    source = gan.attribute_matrix(faces, ATTRS)[:3]
    gallery = gan.flip_attribute(G, faces.images[:3], source, ["Smiling", "Eyeglasses"])
    assert gallery.shape == (3, 2, 32, 32, 3) and gallery.dtype == np.uint8


def test_augment_appends_edited_copies_with_source_labels(trained, faces):
    G = trained[0].generator
    out = gan.augment(faces, G, copies_per_image=2, seed=0)
    n = len(faces)
    assert len(out) == 3 * n and out.identity_names == faces.identity_names
    assert np.array_equal(out.images[:n], faces.images)
    assert np.array_equal(out.labels[n:], np.repeat(faces.labels, 2))
    assert np.array_equal(out.source_index[n:], np.repeat(faces.source_index, 2))
    before = gan.attribute_matrix(faces, ATTRS).repeat(2, 0)
    after = gan.attribute_matrix(out.subset(np.arange(n, 3 * n)), ATTRS)
    assert ((before != after).sum(1) >= 1).all()  # every copy flips something
    others = [i for i, a in enumerate(faces.attribute_names) if a not in ATTRS]
    assert np.array_equal(out.attributes[n:, others], faces.attributes.repeat(2, 0)[:, others])
    again = gan.augment(faces, G, copies_per_image=2, seed=0)
    assert np.array_equal(again.images, out.images)  # seeded


def test_augment_only_small_identities_and_needs_labels_or_a_classifier(trained, faces):
    G = trained[0].generator
    uneven = faces.subset(np.r_[0:4, 4:6])  # identity 0: 4 images, identity 1: 2
    out = gan.augment(uneven, G, copies_per_image=1, max_identity_size=3)
    assert len(out) == 8 and out.labels[6:].tolist() == [1, 1]
    unlabelled = FaceDataset(faces.images, faces.labels, faces.identity_names, name="lfw")
    with pytest.raises(ValueError, match="pass classifier="):
        gan.augment(unlabelled, G)


# ------------------------------------------------------------------ attribute classifier

def test_attribute_classifier_trains_and_judges_edits(trained, faces, tmp_path):
    config = gan.ClassifierConfig.from_profile("tiny", steps=6, batch_size=8,
                                               checkpoint_every=3, log_every=3)
    result = gan.train_attribute_classifier(faces, config, tmp_path, progress=False)
    assert {p.name for p in tmp_path.iterdir()} == {"checkpoint.pt", "classifier.pt", "log.csv"}
    assert len(result.log) == 2 and np.isfinite(result.log[-1]["loss"])
    model = gan.load_attribute_classifier(tmp_path)
    assert equal_states(model.state_dict(), result.classifier.state_dict())
    accuracy = gan.attribute_accuracy(model, faces)
    assert set(accuracy) == {*ATTRS, "mean"} and all(0 <= v <= 1 for v in accuracy.values())
    success = gan.edit_success_rate(model, trained[0].generator, faces,
                                    ["Smiling", "Black_Hair"])
    assert set(success) == {"Smiling", "Black_Hair", "mean"}
    assert all(0 <= v <= 1 for v in success.values())
    unlabelled = FaceDataset(faces.images, faces.labels, faces.identity_names, name="lfw")
    out = gan.augment(unlabelled, trained[0].generator, classifier=model, framing="full")
    assert len(out) == 2 * len(faces) and out.attributes is None


def test_command_line_trains_tiny_on_synthfaces(tmp_path, capsys):
    from dfh_lib.interfaces.cli import main

    main(["gan", "train", "--profile", "tiny", "--dataset", "synthfaces", "--steps", "5",
          "--run-dir", str(tmp_path / "g"), "--no-progress"])
    assert (tmp_path / "g" / "generator.pt").exists()
    assert "5 steps" in capsys.readouterr().out
    main(["gan", "classifier", "--profile", "tiny", "--dataset", "synthfaces", "--steps",
          "3", "--run-dir", str(tmp_path / "c"), "--no-progress"])
    assert (tmp_path / "c" / "classifier.pt").exists()
    assert "held-out accuracy: Black_Hair" in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (["--lambda-id", "-1"], "--lambda-id must be >= 0"),
    (["--lambda-mask", "0.1"], "--lambda-mask needs --masked"),
    (["--masked", "--identity-net", "/no/such/net.pt"], "--identity-net: no file"),
])
def test_gan_command_line_bad_masked_arguments_one_line(args, message):
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "dfh_lib", "gan", "train", "--profile", "tiny",
                          "--dataset", "synthfaces", *args],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and message in out.stderr.strip().splitlines()[-1]


# ------------------------------------------------------------------ real data

def test_celeba_with_default_attributes_crops_to_gan_size(real_data_dir):
    from dfh_lib.core.data import load_celeba

    celeba = load_celeba(real_data_dir)
    attrs = gan.attribute_matrix(celeba, ATTRS)
    assert attrs.shape == (len(celeba), len(ATTRS)) and 0.02 < attrs.mean(0).min()
    hair = [ATTRS.index(a) for a in gan.HAIR_COLOURS if a in ATTRS]
    assert (attrs[:, hair].sum(1) <= 1).mean() > 0.95  # nearly exclusive in the labels
    crops = gan.face_crops(celeba.images[:64], 64, gan.framing_for(celeba))
    assert crops.shape == (64, 64, 64, 3)
    # the face box frames the face as LFW's crop does: on the mean face, the eye
    # line (the darkest row in the upper half) lies about a third of the way down
    mean = gan.face_crops(celeba.images, 64, "celeba").astype(float).mean((0, 3))
    profile = mean[6:32, 10:54].mean(1)
    assert 0.27 < (6 + profile.argmin()) / 64 < 0.40
    assert abs(mean[:, :32].mean() - mean[:, 32:].mean()) < 5  # centred: left ~ right


# ------------------------------------------------------------------ shipped checkpoints

def test_pretrained_checkpoints_load_from_package_data():
    G = gan.pretrained("stargan-gpu-celeba")
    C = gan.pretrained("attributes-gpu-celeba")
    assert isinstance(G, gan.Generator) and isinstance(C, gan.AttributeClassifier)
    assert not G.training and not C.training
    assert G.attribute_names == ATTRS == C.attribute_names and G.image_size == 64
    assert G.framing == "celeba" and "--steps 8000" in G.pretrained["command"]
    assert "H100" in G.pretrained["device"] and G.pretrained["name"] == "stargan-gpu-celeba"
    log = gan.pretrained_log()
    assert log.index[-1] == 8000 and {"d_loss", "d_gp", "g_adv", "g_cls", "g_rec"} <= set(log)
    with pytest.raises(ValueError, match="unknown pretrained checkpoint 'nope'; shipped"):
        gan.pretrained("nope")


def test_shipped_masked_editor_loads_and_passes_a_face_through_where_its_mask_is_zero():
    G = gan.pretrained("masked-gan-cpu-celeba")
    assert G.masked and G.image_size == 32 and G.config.lambda_id == 5.0
    assert "--masked --lambda-id 5" in G.pretrained["command"]
    log = gan.pretrained_log("masked-gan-cpu-celeba")
    assert log.index[-1] == 20000 and {"g_mask", "g_id"} <= set(log)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    c = torch.zeros(2, len(ATTRS))
    colour, mask = G.layers(x, c)
    torch.testing.assert_close(G(x, c), mask * colour + (1 - mask) * x)


def test_held_out_faces_fall_back_to_synthfaces_and_tiny_caps(monkeypatch, capsys):
    monkeypatch.setenv("DFH_DATA_DIR", "/nonexistent")
    faces = gan.held_out_faces("tiny")
    assert "synthfaces" in capsys.readouterr().out and len(faces) <= 48
    assert set(ATTRS) <= set(faces.attribute_names)


# ------------------------------------------------------------------ identity preservation

class _NoEdit(gan.Generator):
    def forward(self, x, c):
        return x


@pytest.fixture(scope="module")
def retrieval(faces):
    from dfh_lib.core.data import retrieval_protocol
    from dfh_lib.nn.models import build_model

    torch.manual_seed(0)
    model = build_model("ddh", 12, image_size=(32, 32)).eval()
    return model, retrieval_protocol(faces, num_query=1, num_val=1, seed=0)


def test_identity_preservation_of_an_edit_that_changes_nothing_is_total(retrieval):
    model, splits = retrieval
    G = _NoEdit(ATTRS, width=4, res_blocks=1, image_size=32)
    rows = gan.identity_preservation(model, G, splits, attributes=["Smiling", "Bangs"])
    assert [r["attribute"] for r in rows] == ["(resize only)", "(no flip)", "Smiling", "Bangs",
                                               "all"]
    for r in rows:
        assert r["top1_edited"] == r["top1_original"] and r["bits_changed"] == 0
        assert r["mAP_edited"] == pytest.approx(r["mAP_original"])
        assert r["kept"] == 1.0 or r["top1_original"] == 0


def test_identity_preservation_of_real_edits(retrieval, trained):
    model, splits = retrieval
    rows = gan.identity_preservation(model, trained[0].generator, splits)
    assert len(rows) == len(ATTRS) + 3 and rows[-1]["attribute"] == "all"
    assert rows[0]["bits_changed"] == 0  # 32 px faces, a 32 px generator: no resizing
    for r in rows:
        assert all(0 <= r[k] <= 1 for k in ("top1_original", "top1_edited", "kept"))
        assert 0 <= r["bits_changed"] <= 12
    kept = [r["kept"] for r in rows[2:-1]]
    assert min(kept) - 1e-9 <= rows[-1]["kept"] <= max(kept) + 1e-9  # pooled
    with pytest.raises(ValueError, match="attributes must be some of"):
        gan.identity_preservation(model, trained[0].generator, splits, attributes=["Male"])


# ------------------------------------------------------------------ augmentation experiment

def test_augmentation_experiment_rows_budget_seeds_and_train_or_load(retrieval, trained,
                                                                   tmp_path, monkeypatch):
    from dfh_lib.engine import train as train_module

    splits = retrieval[1]  # 8 identities, 2 training images each
    G = trained[0].generator
    kwargs = dict(shots=(1, 2), bits=(12,), profile="tiny", runs_dir=tmp_path,
                  copies_per_image=2, images_seen=48, seeds=(0, 1))
    result = gan.augmentation_experiment(splits, G, **kwargs)
    rows = {(r["condition"], r["k"], r["seed"]): r for r in result.rows}
    assert set(rows) == {(c, k, s) for c in gan.AUGMENTATIONS for k in (1, 2) for s in (0, 1)}
    assert rows[("none", 1, 0)]["train_images"] == 8 and rows[("gan", 1, 1)]["train_images"] == 24
    assert rows[("gan+classic", 2, 0)]["train_images"] == 48
    assert rows[("none", 1, 0)]["epochs"] == 6 and rows[("gan", 2, 1)]["epochs"] == 1  # equal budget
    assert all(0 <= r["mAP"] <= 1 and r["bits"] == 12 for r in result.rows)
    assert set(result.aps) == {(c, k, 12, s) for c, k, s in rows}
    for (c, k, s), row in rows.items():  # the per-query APs are the row's mAP
        assert result.aps[(c, k, 12, s)].mean() == pytest.approx(row["mAP"], abs=1e-6)
    folders = sorted(p.name for p in (tmp_path / "seed1" / "k1").iterdir())
    assert folders[:2] == ["classic-12", "gan+classic-2x" + folders[1].split("x", 1)[1]]
    assert result.histories[("classic", 2, 12, 0)].config["augment"] is True
    # a frozen trunk's heads: "none" and "gan" train on the unshifted view only
    assert result.histories[("classic", 2, 12, 0)].config["views"] is None
    assert result.histories[("none", 2, 12, 0)].config["views"] == 1
    assert result.histories[("gan", 1, 12, 1)].config["views"] == 1
    assert result.histories[("none", 1, 12, 1)].config["seed"] == 1

    differences = gan.augmentation_differences(result, "gan", "none")
    assert list(zip(differences["k"], differences["bits"])) == [(1, 12), (2, 12)]
    for _, row in differences.iterrows():  # paired over the same queries, mean over seeds
        manual = np.mean([rows[("gan", row["k"], s)]["mAP"] - rows[("none", row["k"], s)]["mAP"]
                          for s in (0, 1)])
        assert row["difference"] == pytest.approx(manual, abs=1e-6)
        assert row["low"] <= row["difference"] <= row["high"] and row["seeds"] == 2

    monkeypatch.setattr(train_module, "_train_one_epoch", _explode)  # now: loaded, not trained
    again = gan.augmentation_experiment(splits, G, **kwargs)
    assert [r["mAP"] for r in again.rows] == [r["mAP"] for r in result.rows]


def test_images_seen_budget_is_the_profiles_step_budget():
    assert gan.images_seen_budget("cpu") == 1500 * 128  # what every hash head trains on
    assert gan.images_seen_budget("tiny") == 400 * 2


def test_augmentation_experiment_refuses_bad_requests(retrieval):
    splits = retrieval[1]
    with pytest.raises(ValueError, match="conditions must be some of"):
        gan.augmentation_experiment(splits, None, conditions=("mixup",))
    with pytest.raises(ValueError, match="need a generator"):
        gan.augmentation_experiment(splits, None, conditions=("gan",))
    with pytest.raises(ValueError, match="seeds must name"):
        gan.augmentation_experiment(splits, None, conditions=("none",), seeds=())


def test_pretrained_evaluation_of_the_masked_editor_and_a_clear_error_without_one():
    report = gan.pretrained_evaluation("masked-gan-cpu-celeba")
    assert report["command"].startswith("python -m dfh_lib gan evaluate")
    summary = report["summary"]["runs/gan/cpu-celeba-masked-id5"]  # the shipped editor
    assert summary["kept_hash_no_edit"] > 0.9 and 0 < summary["edit_success"] < 1
    with pytest.raises(ValueError, match="ships no evaluation.json"):
        gan.pretrained_evaluation("stargan-gpu-celeba")


def test_held_out_celeba_is_the_cli_split(real_data_dir):
    faces = gan.held_out_faces("cpu")
    assert faces.name == "celeba" and len(faces) == 494  # what the shipped runs held out
    assert len(gan.held_out_faces("tiny")) == 48


def test_show_edits_draws_one_row_per_face(trained, faces):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    source = gan.attribute_matrix(faces, ATTRS)[:2]
    grid = gan.flip_attribute(trained[0].generator, faces.images[:2], source, ["Smiling"])
    fig = gan.show_edits(faces.images[:2], grid, ["Smiling"], 1 - source[:, [5]],
                         row_labels=["a", "b"], title="t")
    assert len(fig.axes) == 4 and fig.axes[1].get_title() == "Smiling" and fig.axes[0].get_title() == "input"
    plt.close(fig)
    with pytest.raises(ValueError, match=r"edits must be \(N=2, E=2"):
        gan.show_edits(faces.images[:2], grid, ["Smiling", "Bangs"])


def test_attribute_gallery_columns_marks_and_no_change_column(trained, faces):
    G = trained[0].generator
    few = faces.subset(np.arange(3))
    edits, marks, columns = gan.attribute_gallery(G, few)
    source = gan.attribute_matrix(few, ATTRS)
    assert columns == ["no_change", *ATTRS] and edits.shape == (3, 1 + len(ATTRS), 32, 32, 3)
    assert np.array_equal(edits[:, 0], gan.edit(G, few.images, source))  # own attributes
    assert np.array_equal(edits[:, 1:], gan.flip_attribute(G, few.images, source))
    assert np.isnan(marks[:, 0]).all() and np.array_equal(marks[:, 1:], 1 - source)
    assert np.array_equal(gan.source_attributes(G, few), source)


def test_edit_gallery_and_comparison_widget_draw_every_editor(trained, faces):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import dfh_lib as dfh

    few = faces.subset(np.arange(2))
    fig = dfh.viz.edit_gallery(trained[0].generator, few, title="t")
    assert len(fig.axes) == 2 * (2 + len(ATTRS))  # input, no change, one column per attribute
    plt.close(fig)
    editors = {"plain": trained[0].generator, "masked": masked_generator(bias=-1e4)}
    widget = dfh.widgets.edit_comparison(editors, [few], per_dataset=1,
                                         extra_edits=[("Smiling", "Bangs")])
    by_face = widget.children[-1]  # nested stacks: face, then edit
    assert len(by_face.children) == 1 and len(by_face.children[0].children) == 1 + len(ATTRS) + 1


def test_plot_low_shot_draws_a_panel_per_length_with_references():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import dfh_lib as dfh

    rows = [{"condition": c, "k": k, "bits": b, "seed": s, "mAP": 0.1 * k + 0.01 * s}
            for c in ("none", "gan") for k in (1, 2) for b in (12, 48) for s in (0, 1)]
    fig = dfh.viz.plot_low_shot(rows, chance=0.02, references={"float": 0.3})
    assert [ax.get_title() for ax in fig.axes] == ["12 bits", "48 bits"]
    labels = fig.axes[-1].get_legend_handles_labels()[1]
    assert labels == ["random ranking", "float", "none", "gan"]
    plt.close(fig)


# ------------------------------------------------------------------ masked editor, identity loss

def masked_generator(bias: float | None = None):
    torch.manual_seed(0)
    G = gan.Generator(ATTRS, width=4, res_blocks=1, image_size=32, masked=True)
    if bias is not None:  # the mask channel's logit: sigmoid(-1e4) is exactly 0
        last = G.body[-1]
        with torch.no_grad():
            last.weight[3].zero_()
            last.bias[3] = bias
    return G.eval()


def test_masked_generator_with_mask_zero_returns_its_input_exactly():
    G = masked_generator(bias=-1e4)
    x = torch.rand(3, 3, 32, 32) * 2 - 1
    c = torch.randint(0, 2, (3, len(ATTRS))).float()
    colour, mask = G.layers(x, c)
    assert colour.shape == x.shape and mask.shape == (3, 1, 32, 32)
    assert torch.equal(mask, torch.zeros_like(mask))
    assert torch.equal(G(x, c), x)
    assert torch.equal(gan.Generator.compose(x, colour, torch.ones_like(mask)), colour)


def test_masked_edit_keeps_every_pixel_where_the_mask_is_zero(faces):
    G = masked_generator(bias=-1e4)
    images = np.random.default_rng(0).integers(0, 256, (4, 62, 47, 3), dtype=np.uint8)
    out = gan.edit(G, images, np.ones((4, len(ATTRS)), np.float32), framing="lfw")
    assert np.array_equal(out, images)  # no resize of the face box: blended at 62x47
    G_open = masked_generator(bias=1e4)  # mask 1: the colour image replaces the box
    assert not np.array_equal(gan.edit(G_open, images, np.ones((4, len(ATTRS)), np.float32),
                                       framing="lfw"), images)


def test_masked_generator_loss_adds_mask_and_identity_terms():
    torch.manual_seed(0)
    config = tiny(masked=True, lambda_mask=0.1, lambda_id=2.0)
    G, D = gan.build_gan(config)
    assert G.masked and G.body[-1].out_channels == 4
    x = torch.rand(4, 3, 32, 32) * 2 - 1
    c = torch.randint(0, 2, (4, len(ATTRS))).float()
    embed = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, 8))
    loss, terms = gan.generator_loss(G, D, x, c, c.flip(0), config, embed)
    assert {"g_mask", "g_id"} <= set(terms)
    torch.testing.assert_close(loss, terms["g_adv"] + terms["g_cls"] + 10 * terms["g_rec"]
                               + 0.1 * terms["g_mask"] + 2.0 * terms["g_id"])
    colour, mask = G.layers(x, c.flip(0))
    torch.testing.assert_close(terms["g_mask"], mask.mean())
    with pytest.raises(ValueError, match="needs the identity embedding network"):
        gan.generator_loss(G, D, x, c, c.flip(0), config)


def test_identity_loss_hand_values_and_gradient():
    embed = torch.nn.Identity()
    real = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    same = torch.tensor([[3.0, 0.0], [0.0, 0.5]])      # same directions: 0
    assert gan.identity_loss(embed, real, same).item() == pytest.approx(0.0, abs=1e-7)
    opposite = -real                                     # opposite: 2
    assert gan.identity_loss(embed, real, opposite).item() == pytest.approx(2.0)
    fake = torch.tensor([[1.0, 1.0], [1.0, 0.0]], requires_grad=True)  # cos 1/√2 and 0
    loss = gan.identity_loss(embed, real, fake)
    assert loss.item() == pytest.approx((1 - 2 ** -0.5 + 1) / 2)
    loss.backward()
    # d/df (1 - f·t/|f|) / 2 = -(t - (f·t) f / |f|²) / (2 |f|), t the unit target
    expected = torch.tensor([[-(1 - 0.5) / (2 * 2 ** 0.5), (0.5) / (2 * 2 ** 0.5)],
                             [0.0, -0.5]])
    torch.testing.assert_close(fake.grad, expected)
    assert gan.identity_loss(embed, fake.detach(), real).requires_grad is False


def test_masked_config_validation_and_old_fingerprints():
    with pytest.raises(ValueError, match="needs a masked generator"):
        tiny(lambda_mask=0.1)
    with pytest.raises(ValueError, match=">= 0"):
        tiny(lambda_id=-1.0)
    plain = tiny()
    legacy = {k: v for k, v in plain.to_dict().items()
              if k not in ("masked", "lambda_mask", "lambda_id")}
    assert gan.GANConfig(**legacy).fingerprint() == plain.fingerprint()
    assert tiny(masked=True).fingerprint() != plain.fingerprint()


def test_masked_gan_trains_with_the_face_net_identity_loss_and_resumes(faces, tmp_path):
    from dfh_lib.engine.face_net import shipped_face_net_file

    config = tiny(masked=True, lambda_mask=0.1, lambda_id=1.0)
    result = gan.train_gan(faces, config, tmp_path, progress=False, device="cpu")
    assert {"g_mask", "g_id"} <= set(result.log[-1])
    assert 0 <= result.log[-1]["g_id"] <= 2 and 0 <= result.log[-1]["g_mask"] <= 1
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert len(state["data"]["identity_net_sha1"]) == 12
    G = gan.load_generator(tmp_path)
    assert G.masked and equal_states(G.state_dict(), result.generator.state_dict())
    again = gan.train_gan(faces, config, tmp_path, progress=False,
                          identity_net=shipped_face_net_file())
    assert again.log == result.log  # finished: loads, same identity net


def test_face_net_view_reads_gan_crops_at_the_nets_own_size():
    from dfh_lib.engine.face_net import shipped_face_net

    face_net = shipped_face_net()
    embed = gan.face_net_view(face_net)
    x = (torch.rand(2, 3, 32, 32) * 2 - 1).requires_grad_(True)
    out = embed(x)
    assert out.shape == (2, 128) and not any(p.requires_grad for p in face_net.parameters())
    out.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_identity_by_the_face_net_of_a_masked_editor_with_mask_zero_is_total(retrieval):
    from dfh_lib.engine.face_net import shipped_face_net

    _, splits = retrieval
    rows = gan.identity_preservation(shipped_face_net(), masked_generator(bias=-1e4), splits,
                                     attributes=["Smiling"], ranking="cosine")
    assert [r["attribute"] for r in rows] == ["(resize only)", "(no flip)", "Smiling", "all"]
    for r in rows[1:]:  # exactly the input: same embedding, same neighbours
        assert r["top1_edited"] == r["top1_original"]
        assert r["cosine_to_original"] == pytest.approx(1.0, abs=1e-5)
        assert r["mAP_edited"] == pytest.approx(r["mAP_original"])


def test_cosine_identity_top1_matches_a_brute_force_search(retrieval, trained):
    from dfh_lib.engine.encoding import encode
    from dfh_lib.engine.face_net import shipped_face_net

    _, splits = retrieval
    net = shipped_face_net()
    rows = gan.identity_preservation(net, trained[0].generator, splits, attributes=["Bangs"],
                                     ranking="cosine")
    q, d = encode(net, splits.query).numpy(), encode(net, splits.database).numpy()
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    top = np.argmax(q @ d.T, axis=1)
    expected = np.mean(splits.database.labels[top] == splits.query.labels)
    assert rows[0]["top1_original"] == pytest.approx(expected)
    with pytest.raises(ValueError, match="ranking must be"):
        gan.identity_preservation(net, trained[0].generator, splits, ranking="euclid")
