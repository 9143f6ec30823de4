"""The trained hash network of a run folder, ready to encode images.

A run folder written by :func:`~.train.fit` through :func:`~.train.train_method`
(``python -m dfh_lib train --run-dir RUN``) holds ``checkpoint.pt`` (the
config, the history, the best weights so far) and ``best.pt`` (the best
weights alone). :func:`load_trained` rebuilds the network the config names,
with the method's network settings (:data:`~dfh_lib.nn.losses.METHOD_DEFAULTS`),
and loads the best weights: ``best.pt`` when it belongs to the same run, else
the copy inside ``checkpoint.pt``. Files are read with :func:`.checkpoint.load`,
so a foreign or damaged file is refused with a one-line ``ValueError``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from ..core.runtime import get_device
from . import checkpoint
from .train import BACKBONE, BEST, CHECKPOINT, TrainConfig, build_method_model

__all__ = ["LoadedRun", "load_trained"]


@dataclass(frozen=True)
class LoadedRun:
    """A run's network with its best weights (eval mode) and where they came from."""

    model: torch.nn.Module
    config: TrainConfig
    fingerprint: str
    epoch: int
    run_dir: Path

    @property
    def image_size(self) -> tuple[int, int]:
        """The network's input (height, width)."""
        return self.config.image_size


def _best_weights(run_dir: Path, state: dict) -> tuple[dict, int]:
    """(model state dict, epoch) of the run's best weights."""
    if (run_dir / BEST).exists():
        best = checkpoint.load(run_dir / BEST, "best")
        if best.get("fingerprint") == state["fingerprint"]:
            return best["model"], int(best["epoch"])
    if not state.get("best"):
        raise ValueError(f"{run_dir} has no validated weights yet (training stopped before "
                         f"its first evaluation): train longer with the same --run-dir")
    history = state.get("history", {}).get("records", [])
    scored = [(r["val_mAP"], -r["epoch"]) for r in history if r.get("val_mAP") is not None]
    return state["best"]["model"], (-max(scored)[1] if scored else int(state["epoch"]))


def load_trained(run_dir: str | os.PathLike, device=None) -> LoadedRun:
    """The best network of the run in ``run_dir``, in eval mode on ``device``
    (None = ``$DFH_DEVICE``, else the best available).

    Raises:
        FileNotFoundError: ``run_dir`` holds no ``checkpoint.pt``.
        ValueError: a file is not a dfh_lib hash-network run, or its weights
            do not fit the network its config names.
    """
    run_dir = Path(run_dir).expanduser()
    path = run_dir / CHECKPOINT
    if not path.is_file():
        raise FileNotFoundError(f"no trained run in {run_dir} (no {CHECKPOINT}): train one "
                                f"with python -m dfh_lib train --run-dir {run_dir} ...")
    state = checkpoint.load(path, "checkpoint")
    try:
        config = TrainConfig(**state["config"])
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{path} is not a hash-network run of python -m dfh_lib train "
                         f"(its config does not fit TrainConfig: {err})") from err
    weights, epoch = _best_weights(run_dir, state)
    if config.backbone is not None and (run_dir / BACKBONE).is_file():
        config = replace(config, backbone=str(run_dir / BACKBONE))  # the run's own copy
    model = build_method_model(config)
    try:
        model.load_state_dict(weights)
    except RuntimeError as err:
        first = str(err).strip().split("\n", 1)[0]
        raise ValueError(f"the weights in {run_dir} do not fit a {config.network!r} network "
                         f"for {config.method!r} ({first}); was the run trained with "
                         f"python -m dfh_lib train?") from err
    model.to(get_device(device)).eval()
    return LoadedRun(model, config, str(state["fingerprint"]), epoch, run_dir)
