"""Tests for dfh_lib.engine.train: the loop, checkpoints, resume, History.

Small stand-ins (a two-layer net, a centre loss with learnable centres)
keep every run to a fraction of a second on CPU; one integration test uses
the real DDH network and DPSH loss when those modules exist.
"""
import dataclasses
import math
import pickle

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from dfh_lib import train as train_module
from dfh_lib.engine import checkpoint, encoding
from dfh_lib.interfaces import cli
from dfh_lib.core.data.dataset import FaceDataset, retrieval_protocol
from dfh_lib.core.metrics import evaluate_retrieval
from dfh_lib.core.profiles import get_profile
from dfh_lib.engine.train import (BEST, CHECKPOINT, History, TrainConfig, encode, evaluate, fit)

SIZE, BITS, IDS, PER_ID = 16, 8, 10, 8


@pytest.fixture(autouse=True)
def _cpu_and_restore_determinism(cpu_deterministic_guard):
    """Every test here trains on the CPU (see conftest)."""


def make_faces(ids=IDS, per_id=PER_ID, size=SIZE, seed=0) -> FaceDataset:
    """Identity = a random prototype image; each image adds noise to it."""
    rng = np.random.default_rng(seed)
    protos = rng.integers(0, 256, (ids, size, size, 3))
    labels = np.repeat(np.arange(ids), per_id)
    noise = rng.integers(-40, 41, (len(labels), size, size, 3))
    images = np.clip(protos[labels] + noise, 0, 255).astype(np.uint8)
    return FaceDataset(images, labels, [f"id{i}" for i in range(ids)], name="toy")


@pytest.fixture(scope="module")
def splits():
    return retrieval_protocol(make_faces(), num_query=2, num_val=1, seed=0)


class TinyNet(nn.Module):
    """(N, 3, S, S) -> (N, bits) in [-1, 1]; dropout exercises the torch RNG."""

    def __init__(self, bits=BITS, size=SIZE):
        super().__init__()
        self.bits = bits
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(3 * size * size, 32),
                                  nn.BatchNorm1d(32), nn.ReLU(), nn.Dropout(0.2),
                                  nn.Linear(32, bits), nn.Tanh())

    def forward(self, x):
        return self.body(x)


class CentreLoss(nn.Module):
    """Pull u to learnable class centres + a quantization term whose weight
    follows the epoch (via on_epoch_start). ``fail_at`` / ``nan_at`` inject
    a kill (KeyboardInterrupt) or a NaN at that forward call (1-based)."""

    needs_index = False

    def __init__(self, num_classes=IDS, bits=BITS, fail_at=None, nan_at=None):
        super().__init__()
        self.centres = nn.Parameter(torch.zeros(num_classes, bits))
        self.fail_at, self.nan_at = fail_at, nan_at
        self.calls, self.epochs_started, self.indices = 0, [], []
        self.quant_weight = 0.0

    def on_epoch_start(self, epoch, num_epochs):
        self.epochs_started.append((epoch, num_epochs))
        self.quant_weight = 0.1 * (epoch + 1) / num_epochs

    def forward(self, u, labels, index=None):
        self.calls += 1
        if self.calls == self.fail_at:
            raise KeyboardInterrupt("simulated kill")
        if index is not None:
            self.indices.append(index.clone())
        centre = (u - torch.tanh(self.centres[labels])).pow(2).mean()
        if self.calls == self.nan_at:
            centre = centre * float("nan")
        quant = self.quant_weight * (u.abs() - 1).pow(2).mean()
        return centre + quant, {"centre": centre.detach(), "quant": quant.detach()}


class IndexedCentreLoss(CentreLoss):
    needs_index = True


def make_config(**changes) -> TrainConfig:
    base = dict(method="centre", bits=BITS, network="tiny", epochs=3, batch_size=16,
                lr=1e-2, eval_every=1, seed=0, deterministic=True, image_size=(SIZE, SIZE))
    return TrainConfig(**{**base, **changes})


def new_model(seed=0) -> TinyNet:
    torch.manual_seed(seed)
    return TinyNet()


def state_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def load(path):
    return torch.load(path, weights_only=True)


# ---------------------------------------------------------------- config


def test_config_from_profile_takes_loop_settings_and_overrides():
    config = TrainConfig.from_profile("tiny", method="dpsh", bits=12, lr=5e-4)
    loop = (config.epochs, config.batch_size, config.eval_every, config.network)
    assert loop == (2, 64, 1, "face_embedding")
    assert (config.lr, config.image_size, config.schedule, config.augment) == (5e-4, (64, 48),
                                                                               "cosine", False)
    with pytest.raises(ValueError, match=r"unknown TrainConfig fields \['lrr'\]"):
        TrainConfig.from_profile("tiny", method="dpsh", bits=12, lrr=1)
    seeded = get_profile("tiny").with_overrides(seed=3)
    assert TrainConfig.from_profile(seeded, method="dpsh", bits=12).seed == 3
    assert TrainConfig.from_profile(seeded, method="dpsh", bits=12, seed=4).seed == 4
    assert config.seed == 0


@pytest.mark.parametrize("bad, message", [
    (dict(bits=0), "bits must be a positive int; got 0"),
    (dict(epochs=2.5), "epochs must be a positive int; got 2.5"),
    (dict(lr=0.0), "need lr > 0"),
    (dict(optimizer="rmsprop"), r"optimizer must be one of .*'rmsprop'"),
    (dict(schedule="step"), r"schedule must be one of .*'step'"),
    (dict(image_size=(32,)), "image_size must be"),
])
def test_config_rejects_bad_values(bad, message):
    with pytest.raises(ValueError, match=message):
        make_config(**bad)


def test_views_reach_a_frozen_trunk_and_only_it():
    from dfh_lib.engine.train import build_method_model

    with pytest.raises(ValueError, match="views must be None or a positive int"):
        make_config(views=0)
    with pytest.raises(ValueError, match="views is for a frozen face_embedding trunk"):
        build_method_model(make_config(network="ddh", views=1))


def test_fingerprint_covers_defining_fields_only():
    config = make_config()
    assert config.fingerprint() == make_config().fingerprint()
    assert len(config.fingerprint()) == 16
    assert config.fingerprint() == make_config(eval_every=2).fingerprint()
    for change in (dict(lr=2e-2), dict(seed=1), dict(bits=16), dict(epochs=4),
                   dict(augment=True), dict(image_size=(8, 8)), dict(views=1)):
        assert make_config(**change).fingerprint() != config.fingerprint(), change


# ---------------------------------------------------------------- history


def test_history_best_epoch_and_round_trip(tmp_path):
    history = History(records=[{"epoch": 1, "loss": 2.0, "val_mAP": 0.5},
                               {"epoch": 2, "loss": 1.5},
                               {"epoch": 3, "loss": 1.0, "val_mAP": 0.7},
                               {"epoch": 4, "loss": 0.9, "val_mAP": 0.7}],
                      config={"bits": 12})
    assert history.best_epoch == 3  # the earliest of the tied best
    assert History().best_epoch is None
    assert history.column("val_mAP") == [0.5, None, 0.7, 0.7]
    history.to_json(tmp_path / "h.json")
    assert History.from_json(tmp_path / "h.json") == history
    history.to_csv(tmp_path / "h.csv")
    frame = pd.read_csv(tmp_path / "h.csv")
    assert list(frame.columns) == ["epoch", "loss", "val_mAP"]
    assert frame["loss"].tolist() == [2.0, 1.5, 1.0, 0.9]
    assert math.isnan(frame["val_mAP"][1])


# ---------------------------------------------------------------- fit


def test_fit_trains_model_and_loss_parameters(splits):
    model, loss = new_model(), CentreLoss()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    history = fit(model, loss, splits, make_config(), progress=False)
    assert loss.centres.abs().sum() > 0  # the centres started at exactly 0
    assert not torch.equal(model.body[1].weight, before["body.1.weight"])
    assert loss.epochs_started == [(0, 3), (1, 3), (2, 3)]
    assert [r["epoch"] for r in history.records] == [1, 2, 3]
    assert history.records[-1]["loss"] < history.records[0]["loss"]
    assert set(history.records[0]) >= {"lr", "time_s", "loss", "centre", "quant", "val_mAP",
                                       "val_mAP_tie_aware"}
    lrs = history.column("lr")  # per-epoch cosine decay from lr to 0 over 3 epochs
    assert lrs == pytest.approx([1e-2, 1e-2 * (1 + math.cos(math.pi / 3)) / 2,
                                 1e-2 * (1 + math.cos(2 * math.pi / 3)) / 2])


@pytest.fixture
def validation_sizes(monkeypatch):
    """(queries, database) sizes of every validation fit() runs."""
    seen = []

    def spy(q_codes, d_codes, q_labels, d_labels):
        seen.append((len(q_codes), len(d_codes)))
        return evaluate_retrieval(q_codes, d_codes, q_labels, d_labels)

    monkeypatch.setattr(train_module, "evaluate_retrieval", spy)
    return seen


def test_validation_is_val_query_against_train_never_query(splits, validation_sizes):
    seen = validation_sizes
    history = fit(new_model(), CentreLoss(), splits, make_config(eval_every=2), progress=False)
    # evaluated at epoch 2 (eval_every) and 3 (the last), not at epoch 1
    assert seen == [(len(splits.val_query), len(splits.train))] * 2
    assert history.column("val_mAP")[0] is None


def test_validation_ranks_against_val_database_when_the_splits_name_one(splits,
                                                                          validation_sizes):
    seen = validation_sizes
    grown = dataclasses.replace(splits, train=splits.train.concat(splits.train),
                                val_database=splits.train)  # e.g. GAN edits added
    assert grown.validation_database is splits.train and splits.validation_database is splits.train
    fit(new_model(), CentreLoss(), grown, make_config(epochs=1), progress=False)
    assert seen == [(len(splits.val_query), len(splits.train))]


def test_needs_index_gets_each_training_index_once_per_epoch(splits):
    loss = IndexedCentreLoss()
    fit(new_model(), loss, splits, make_config(epochs=2), progress=False)
    steps = math.ceil(len(splits.train) / 16)
    assert len(loss.indices) == 2 * steps
    for epoch in range(2):
        batch = loss.indices[epoch * steps:(epoch + 1) * steps]
        assert min(len(b) for b in batch) >= len(splits.train) // steps  # no tiny last batch
        assert sorted(torch.cat(batch).tolist()) == list(range(len(splits.train)))
    assert not torch.equal(loss.indices[0], loss.indices[steps])  # reshuffled


def test_same_seed_reproduces_other_seed_differs(splits):
    def run(seed):
        model = new_model()
        fit(model, CentreLoss(), splits, make_config(seed=seed, augment=True), progress=False)
        return model.state_dict()

    assert state_equal(run(0), run(0))
    assert not state_equal(run(0), run(1))


def test_progress_false_prints_nothing_and_true_shows_bars(splits, capfd):
    fit(new_model(), CentreLoss(), splits, make_config(epochs=1), progress=False)
    assert capfd.readouterr() == ("", "")
    fit(new_model(), CentreLoss(), splits, make_config(epochs=1), progress=True)
    err = capfd.readouterr().err
    assert "centre 8 bits" in err and "val_mAP" in err


def test_nan_loss_stops_naming_epoch_step_and_terms(splits, tmp_path):
    steps = math.ceil(len(splits.train) / 16)
    loss = CentreLoss(nan_at=steps + 2)  # epoch 2, step 2
    with pytest.raises(FloatingPointError,
                       match=rf"loss is nan at epoch 2, step 2 of {steps}; "
                             r"terms: centre=nan, quant=0\.\d+"):
        fit(new_model(), loss, splits, make_config(), run_dir=tmp_path, progress=False)
    assert load(tmp_path / CHECKPOINT)["epoch"] == 1  # the last good epoch is kept


# ---------------------------------------------------------------- checkpoints


def test_killed_and_resumed_run_equals_uninterrupted_run(splits, tmp_path):
    config = make_config(augment=True)  # augment + dropout use both generators
    model_a = new_model()
    history_a = fit(model_a, CentreLoss(), splits, config, run_dir=tmp_path / "a",
                    progress=False)

    steps = math.ceil(len(splits.train) / 16)
    with pytest.raises(KeyboardInterrupt):  # killed in the middle of epoch 2
        fit(new_model(), CentreLoss(fail_at=steps + 3), splits, config,
            run_dir=tmp_path / "b", progress=False)
    assert load(tmp_path / "b" / CHECKPOINT)["epoch"] == 1
    model_b, loss_b = new_model(seed=99), CentreLoss()  # other init: must be overwritten
    history_b = fit(model_b, loss_b, splits, config, run_dir=tmp_path / "b", progress=False)

    assert loss_b.epochs_started == [(1, 3), (2, 3)]
    last_a, last_b = load(tmp_path / "a" / CHECKPOINT), load(tmp_path / "b" / CHECKPOINT)
    for part in ("model", "loss"):
        assert state_equal(last_a[part], last_b[part]), part
    assert state_equal(model_a.state_dict(), model_b.state_dict())
    assert torch.equal(encode(model_a, splits.query), encode(model_b, splits.query))
    drop_time = [{k: v for k, v in r.items() if k != "time_s"} for r in history_a.records]
    assert drop_time == [{k: v for k, v in r.items() if k != "time_s"}
                         for r in history_b.records]


def test_checkpoint_after_each_validation_the_last_epoch_and_every_30_s(splits, tmp_path,
                                                                      monkeypatch):
    from dfh_lib.engine import train as train_module

    saved = []
    real = train_module._save_checkpoint
    monkeypatch.setattr(train_module, "_save_checkpoint",
                        lambda path, run, history, *a: (saved.append(len(history)),
                                                        real(path, run, history, *a)))
    fit(new_model(), CentreLoss(), splits, make_config(epochs=5, eval_every=2),
        run_dir=tmp_path / "a", progress=False)
    assert saved == [2, 4, 5]  # validated epochs and the last: not one file per epoch
    saved.clear()
    monkeypatch.setattr(train_module, "CHECKPOINT_SECONDS", 0.0)  # slow epochs: every one
    fit(new_model(), CentreLoss(), splits, make_config(epochs=3, eval_every=3),
        run_dir=tmp_path / "b", progress=False)
    assert saved == [1, 2, 3]


def test_model_is_left_with_best_weights_and_finished_run_just_loads(splits, tmp_path):
    model = new_model()
    history = fit(model, CentreLoss(), splits, make_config(), run_dir=tmp_path, progress=False)
    best = load(tmp_path / BEST)
    assert set(best) >= {"model", "loss", "epoch", "metrics"} and "optimizer" not in best
    assert best["epoch"] == history.best_epoch
    assert best["metrics"]["val_mAP"] == max(history.column("val_mAP"))
    assert state_equal(model.state_dict(), best["model"])

    again, loss = new_model(seed=5), CentreLoss()
    history_again = fit(again, loss, splits, make_config(), run_dir=tmp_path, progress=False)
    assert loss.calls == 0 and history_again == history
    assert state_equal(again.state_dict(), best["model"])


def test_checkpoint_of_another_config_or_data_is_refused(splits, tmp_path):
    fit(new_model(), CentreLoss(), splits, make_config(epochs=1), run_dir=tmp_path,
        progress=False)
    with pytest.raises(ValueError, match=r"different run \(lr: 0\.01 -> 0\.02\).*resume=False"):
        fit(new_model(), CentreLoss(), splits, make_config(epochs=1, lr=2e-2),
            run_dir=tmp_path, progress=False)
    other = retrieval_protocol(make_faces(ids=9), num_query=2, num_val=1, seed=0)
    with pytest.raises(ValueError, match=r"train_images: 50 -> 45"):
        fit(new_model(), CentreLoss(num_classes=9), other, make_config(epochs=1),
            run_dir=tmp_path, progress=False)
    history = fit(new_model(), CentreLoss(), splits, make_config(epochs=1, lr=2e-2),
                  run_dir=tmp_path, resume=False, progress=False)  # starts fresh
    assert history.config["lr"] == 2e-2 and load(tmp_path / CHECKPOINT)["config"]["lr"] == 2e-2


class MarginCentreLoss(CentreLoss):
    """CentreLoss with a setting that shows in its repr (as a real loss's margin does)."""

    def __init__(self, margin=0.5, **kwargs):
        super().__init__(**kwargs)
        self.margin = margin

    def extra_repr(self):
        return f"margin={self.margin}"


def test_checkpoint_of_other_loss_settings_is_refused(splits, tmp_path):
    fit(new_model(), MarginCentreLoss(0.5), splits, make_config(epochs=1), run_dir=tmp_path,
        progress=False)
    with pytest.raises(ValueError, match=r"different run \(loss: .*margin=0\.5.* -> "
                                         r".*margin=0\.8"):
        fit(new_model(), MarginCentreLoss(0.8), splits, make_config(epochs=1),
            run_dir=tmp_path, progress=False)
    again = fit(new_model(), MarginCentreLoss(0.5), splits, make_config(epochs=1),
                run_dir=tmp_path, progress=False)  # same settings: loads
    assert len(again) == 1


def test_checkpoint_without_a_loss_record_still_loads(splits, tmp_path):
    fit(new_model(), CentreLoss(), splits, make_config(epochs=1), run_dir=tmp_path,
        progress=False)
    state = load(tmp_path / CHECKPOINT)
    del state["data"]["loss"]  # as written before losses were recorded
    torch.save(state, tmp_path / CHECKPOINT)
    assert len(fit(new_model(), CentreLoss(), splits, make_config(epochs=1),
                   run_dir=tmp_path, progress=False)) == 1


@pytest.mark.parametrize("content, message", [
    (b"not a checkpoint at all", "is not a readable dfh_lib checkpoint"),
    (b"", "is not a readable dfh_lib checkpoint"),
    ("torch-dict", "is not a dfh_lib checkpoint file"),
])
def test_corrupt_or_foreign_checkpoint_is_refused(splits, tmp_path, content, message):
    path = tmp_path / CHECKPOINT
    if content == "torch-dict":
        torch.save({"model": {}, "epoch": 3}, path)
    else:
        path.write_bytes(content)
    with pytest.raises(ValueError, match=message + ".*start fresh"):
        fit(new_model(), CentreLoss(), splits, make_config(), run_dir=tmp_path, progress=False)


class _Payload:
    """Unpickling this creates a file: evidence that pickled code ran."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


@pytest.mark.parametrize("writer", ["torch.save", "pickle.dump"])
def test_malicious_checkpoint_is_refused_without_running_it(splits, tmp_path, writer):
    marker = tmp_path / "pwned"
    path = tmp_path / "run" / CHECKPOINT
    path.parent.mkdir()
    payload = {"format": "dfh_lib.checkpoint/1", "x": _Payload(marker)}
    with open(path, "wb") as f:
        if writer == "torch.save":
            torch.save(payload, f)
        else:
            pickle.dump(payload, f, protocol=2)
    with pytest.raises(ValueError, match="not a readable dfh_lib checkpoint.*Unpickling"):
        fit(new_model(), CentreLoss(), splits, make_config(), run_dir=path.parent,
            progress=False)
    assert not marker.exists()
    with open(path, "rb") as f:  # the payload is real: a plain unpickle runs it
        (torch.load(f, weights_only=False) if writer == "torch.save" else pickle.load(f))
    assert marker.exists()


def test_rng_state_round_trip_through_weights_only_file(tmp_path):
    import random

    generator = torch.Generator().manual_seed(3)
    path = tmp_path / "rng.pt"
    torch.save(checkpoint.rng_state(generator), path)

    def draw():
        return (random.random(), np.random.rand(), torch.rand(1).item(),
                torch.rand(1, generator=generator).item())

    first = draw()
    checkpoint.set_rng_state(load(path), generator)
    assert draw() == first


# ---------------------------------------------------------------- encode / evaluate


def test_encode_inputs_modes_and_batches(splits):
    model = new_model().train()
    codes = encode(model, splits.query, batch_size=7)
    assert codes.shape == (len(splits.query), BITS) and codes.dtype == torch.float32
    assert model.training  # mode restored
    images = torch.from_numpy(splits.query.images).permute(0, 3, 1, 2)
    torch.testing.assert_close(encode(model, images), codes)  # uint8 tensor
    torch.testing.assert_close(encode(model, images.float() / 255), codes)  # float
    assert encode(model, images[:0]).shape == (0, BITS)
    with pytest.raises(ValueError, match=r"tensor of shape \(N, 3, H, W\); got \(4, 16, 16\)"):
        encode(model, images[:4, 0])
    with pytest.raises(ValueError, match="batch_size must be a positive int; got 0"):
        encode(model, images, batch_size=0)


class OracleNet(nn.Module):
    """Reads the label written into pixel (0, 0) and returns its code."""

    def __init__(self, codes):
        super().__init__()
        self.bits = codes.shape[1]
        self.register_buffer("codes", codes)
        self.anchor = nn.Parameter(torch.zeros(()))  # gives encode a device

    def forward(self, x):
        return self.codes[(x[:, 0, 0, 0] * 255).round().long()] + 0 * self.anchor


def test_evaluate_oracle_codes_give_perfect_map(splits):
    def tagged(dataset):
        images = dataset.images.copy()
        images[:, 0, 0, 0] = dataset.labels
        return FaceDataset(images, dataset.labels, dataset.identity_names)

    codes = torch.tensor([[1 if (i >> b) & 1 else -1 for b in range(4)] for i in range(IDS)],
                         dtype=torch.float32)
    metrics = evaluate(OracleNet(codes), tagged(splits.query), tagged(splits.database))
    assert metrics["mAP"] == pytest.approx(1.0)
    collapsed = evaluate(OracleNet(torch.ones(IDS, 4)), tagged(splits.query),
                         tagged(splits.database))
    assert collapsed["mAP"] < 0.5


def test_augment_is_a_flipped_or_not_shifted_crop():
    x = torch.arange(2 * 3 * 16 * 16, dtype=torch.float32).reshape(2, 3, 16, 16)
    out = train_module._augment(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2), mode="reflect")
    for i in range(2):
        candidates = [src[:, dy:dy + 16, dx:dx + 16]
                      for src in (padded[i], torch.nn.functional.pad(
                          x[i:i + 1].flip(-1), (2, 2, 2, 2), mode="reflect")[0])
                      for dy in range(5) for dx in range(5)]
        assert any(torch.equal(out[i], c) for c in candidates)
    again = train_module._augment(x, torch.Generator().manual_seed(0))
    assert torch.equal(out, again)


# ---------------------------------------------------------------- real models and losses


def test_fit_with_ddh_network_and_dpsh_loss(splits, tmp_path):
    models = pytest.importorskip("dfh_lib.nn.models")
    losses = pytest.importorskip("dfh_lib.nn.losses")
    torch.manual_seed(0)
    model = models.build_model("ddh", bits=12, image_size=(32, 32))
    loss = losses.build_loss("dpsh", bits=12, num_classes=IDS)
    config = make_config(method="dpsh", bits=12, network="ddh", epochs=2, image_size=(32, 32))
    history = fit(model, loss, splits, config, run_dir=tmp_path, progress=False)
    assert len(history) == 2 and all(math.isfinite(v) for v in history.column("loss"))
    assert 0 <= history.records[-1]["val_mAP"] <= 1


def test_train_method_builds_and_trains(splits, tmp_path):
    pytest.importorskip("dfh_lib.nn.models")
    pytest.importorskip("dfh_lib.nn.losses")
    model, loss, history = train_module.train_method(
        "dpsh", splits, 12, "tiny", run_dir=tmp_path, progress=False, epochs=1, network="ddh")
    assert model.bits == 12 and len(history) == 1 and history.config["method"] == "dpsh"
    assert (tmp_path / CHECKPOINT).exists() and (tmp_path / BEST).exists()
    assert type(loss).__name__ == "DPSHLoss"


def test_main_train_command_line(tmp_path, capsys):
    pytest.importorskip("dfh_lib.nn.losses")
    history = cli.main_train(["--method", "dpsh", "--dataset", "synthfaces",
                                       "--bits", "12", "--profile", "tiny", "--epochs", "1",
                                       "--run-dir", str(tmp_path)])
    assert len(history) == 1 and (tmp_path / CHECKPOINT).exists()
    assert "dpsh 12 bits on synthfaces" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        cli.main_train(["--bits", "12"])  # --method is required


def test_identity_sampling_visits_each_image_once_in_same_identity_groups():
    from dfh_lib.engine.train import epoch_order

    labels = torch.tensor([0] * 9 + [1] * 5 + [2] * 2)
    order = epoch_order(labels, torch.Generator().manual_seed(0), images_per_identity=4)
    assert sorted(order.tolist()) == list(range(16))
    # groups of up to 4 consecutive same-identity images: 3 + 2 + 1 = 6 runs at most
    runs = 1 + int((labels[order][1:] != labels[order][:-1]).sum())
    assert runs <= 6
    plain = epoch_order(labels, torch.Generator().manual_seed(0))
    assert sorted(plain.tolist()) == list(range(16))
