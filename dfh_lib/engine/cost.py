"""What a train-or-load is about to cost, said before it trains.

A chapter opened alone (a fresh Colab runtime) retrains the runs it reuses
from earlier chapters. :func:`announce` prints one line first, naming the
run, its size (epochs × images) and roughly how long it takes; it says
nothing when the run is finished and just loads. The time comes from
:func:`estimate_seconds` and the throughput table
``dfh_lib/reference_results/throughput.json`` (images/s measured with the
real loop by ``bench/bench_throughput.py``).
"""
from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from pathlib import Path

import torch

from ..core.runtime import get_device
from .train import CHECKPOINT, TrainConfig, run_status

__all__ = ["throughput_table", "estimate_seconds", "announce"]


@lru_cache(maxsize=1)
def throughput_table() -> dict:
    """The shipped throughput table (``entries``: network, image_size,
    device, train_images_per_s, encode_images_per_s; ``measured``: how)."""
    path = resources.files("dfh_lib").joinpath("reference_results", "throughput.json")
    return json.loads(path.read_text())


def _device_kind(device) -> str:
    return get_device().type if device is None else torch.device(device).type


def estimate_seconds(config: TrainConfig, num_train_images: int, num_val_images: int,
                     device=None, done_epochs: int = 0) -> float | None:
    """Rough seconds to train ``config`` from epoch ``done_epochs``:
    epochs × training images / training throughput, plus each validation
    (the validation queries and the training set encoded) / encoding
    throughput. None when the table has no entry for the network, input
    size and device kind (e.g. ``"cuda"``: no GPU was measured)."""
    kind = _device_kind(device)
    rates = next(((e["train_images_per_s"], e["encode_images_per_s"])
                  for e in throughput_table()["entries"]
                  if (e["network"], tuple(e["image_size"]), e["device"])
                  == (config.network, config.image_size, kind)), None)
    if rates is None:
        return None
    epochs = range(done_epochs + 1, config.epochs + 1)
    validations = sum(1 for e in epochs if e % config.eval_every == 0 or e == config.epochs)
    return (len(epochs) * num_train_images / rates[0]
            + validations * (num_train_images + num_val_images) / rates[1])


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


def announce(run_dir, config: TrainConfig, splits, device=None) -> str | None:
    """Print (and return) one line before a train-or-load trains: what, how
    big and about how long; None, printing nothing, when ``run_dir`` holds
    the finished run (or another run's checkpoint, which :func:`fit` refuses)."""
    status, done = run_status(run_dir, config)
    if status == "finished" or (status == "missing" and run_dir is not None
                                and (Path(run_dir) / CHECKPOINT).exists()):
        return None
    n_train, n_val = len(splits.train), len(splits.val_query)
    kind = _device_kind(device)
    seconds = estimate_seconds(config, n_train, n_val, kind, done)
    h, w = config.image_size
    what = f"training {config.method} at {config.bits} bits ({config.network} {h}×{w}"
    what += "; not saved: no runs_dir)" if run_dir is None else ")"
    epochs = config.epochs - done
    size = f"{epochs} epoch{'s' * (epochs != 1)} × {n_train:,} images"
    left = ""
    if status == "partial":
        size = f"resuming at epoch {done + 1} of {config.epochs}: {size}"
        left = " left"
    cost = "" if seconds is None else f" (about {_duration(seconds)}{left} on {kind})"
    line = f"{what}, {size}{cost}"
    if run_dir is not None:
        line = f"no finished run in {run_dir}: {line}"
    print(line, flush=True)
    return line
