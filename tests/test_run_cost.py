"""Train-or-load says what it is about to train and roughly what it costs,
before it trains, and nothing when it just loads a finished run."""
import json
from importlib import resources

import pytest

from dfh_lib.core.data import load_synthfaces, retrieval_protocol
from dfh_lib.core.profiles import get_profile
from dfh_lib.engine.cost import announce, estimate_seconds, throughput_table
from dfh_lib.engine.teacher import train_teacher
from dfh_lib.engine.train import TrainConfig, method_config, run_status
from dfh_lib.experiments.runs import fit_or_load, train_or_load
from dfh_lib.nn.losses import build_loss
from dfh_lib.nn.models import build_model

pytestmark = pytest.mark.usefixtures("one_thread")

# 2 epochs, validation after every epoch; the DDH network, whose cost the shipped table holds
TINY = get_profile("tiny").with_overrides(network="ddh", image_size=(32, 32))


@pytest.fixture(autouse=True)
def _cpu(monkeypatch):
    monkeypatch.setenv("DFH_DEVICE", "cpu")


@pytest.fixture(scope="module")
def splits():  # 40 training images, 8 validation queries
    return retrieval_protocol(load_synthfaces(8, 8, size=32), num_query=2, num_val=1)


def stop_after_first_epoch(history):
    return True


def test_run_status_missing_partial_finished_and_other_config(splits, tmp_path):
    run_dir, config = tmp_path / "ddh-12", method_config("ddh", 12, TINY)
    assert run_status(run_dir, config) == ("missing", 0)
    assert run_status(None, config) == ("missing", 0)
    train_or_load("ddh", splits, 12, TINY, run_dir=run_dir, progress=False,
                  callback=stop_after_first_epoch)
    assert run_status(run_dir, config) == ("partial", 1)
    train_or_load("ddh", splits, 12, TINY, run_dir=run_dir, progress=False)
    assert run_status(run_dir, config) == ("finished", 2)
    other = method_config("ddh", 12, TINY, epochs=3)
    assert run_status(run_dir, other) == ("missing", 0)


def test_announced_before_training_and_silent_when_loading(splits, tmp_path, capsys):
    run_dir = tmp_path / "dfh-12"
    seen = []
    train_or_load("dfh", splits, 12, TINY, run_dir=run_dir, progress=False,
                  callback=lambda history: seen.append(capsys.readouterr().out) or True)
    head = f"no finished run in {run_dir}: training dfh at 12 bits (ddh 32×32), "
    assert seen[0].startswith(head + "2 epochs × 40 images (about ")  # before epoch 1 ended
    assert seen[0].endswith(" s on cpu)\n") and seen[0].count("\n") == 1
    train_or_load("dfh", splits, 12, TINY, run_dir=run_dir, progress=False)
    out = capsys.readouterr().out
    assert out.startswith(head + "resuming at epoch 2 of 2: 1 epoch × 40 images (about ")
    assert out.endswith(" s left on cpu)\n")
    loaded = train_or_load("dfh", splits, 12, TINY, run_dir=run_dir, progress=False)
    assert capsys.readouterr().out == "" and len(loaded.history) == 2
    with pytest.raises(ValueError, match="belongs to a different run"):
        train_or_load("dfh", splits, 12, TINY, run_dir=run_dir, progress=False, epochs=3)
    assert capsys.readouterr().out == ""  # fit's refusal is all the user sees


def test_fit_or_load_and_the_teacher_announce_too(splits, tmp_path, capsys):
    config = TrainConfig.from_profile(TINY, method="ddh", bits=12)
    model = build_model("ddh", 12, image_size=config.image_size)
    loss = build_loss("ddh", 12, splits.train.num_identities)
    fit_or_load(model, loss, splits, config, None, progress=False,
                callback=stop_after_first_epoch)
    out = capsys.readouterr().out
    assert out.startswith("training ddh at 12 bits (ddh 32×32; not saved: no runs_dir), "
                          "2 epochs × 40 images (about ")
    train_teacher(splits, TINY, tmp_path / "teacher", network="ddh", dim=16, epochs=1,
                  progress=False)
    out = capsys.readouterr().out
    assert out.startswith(f"no finished run in {tmp_path / 'teacher'}: training softmax at "
                          f"16 bits (ddh 32×32), 1 epoch × 40 images")
    train_teacher(splits, TINY, tmp_path / "teacher", network="ddh", dim=16, epochs=1,
                  progress=False)
    assert capsys.readouterr().out == ""


def test_estimate_seconds_from_the_shipped_table(splits):
    text = resources.files("dfh_lib").joinpath("reference_results", "throughput.json").read_text()
    table = json.loads(text)
    assert table == throughput_table()
    assert {"hardware", "threads", "torch", "date"} <= set(table["measured"]["cpu"])
    assert {(e["network"], e["device"]) for e in table["entries"]} >= {
        ("ddh", "cpu"), ("small_resnet", "cpu"), ("resnet18", "cpu")}
    config = method_config("dfh", 12, "cpu", network="ddh", image_size=(32, 32), epochs=30)
    seconds = estimate_seconds(config, 2713, 124, "cpu")
    assert seconds > 0
    assert 0 < estimate_seconds(config, 2713, 124, "cpu", done_epochs=12) < seconds
    unknown = TrainConfig(method="dfh", bits=12, network="no_such_net")
    assert estimate_seconds(unknown, 2713, 124, "cpu") is None
    assert estimate_seconds(config, 2713, 124, "cuda") is None  # no GPU measured
    line = announce(None, config, splits, device="cuda")
    assert line.endswith("30 epochs × 40 images")  # the size only, no time
