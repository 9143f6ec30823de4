"""Train-or-load: the one way experiments get a trained network.

Every experiment names its runs' folders under a ``runs_dir`` and calls
:func:`train_or_load` (a registered method or :class:`Variant`, folder
``runs_dir/<label>-<bits>``) or :func:`fit_or_load` (a model and loss it
built itself, e.g. a multi-head stage). Both go through the one loop,
:func:`dfh_lib.engine.train.fit`, which resumes an interrupted run from its
checkpoint, loads a finished one instead of retraining it, and refuses a
folder that belongs to another run (config, data or loss settings). Before
training (not before loading) both print one line saying what they train
and about how long it takes (:func:`dfh_lib.engine.cost.announce`): a
chapter opened alone retrains the earlier chapters' runs it reuses.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..engine.backbone import shared_backbone
from ..engine.cost import announce
from ..engine.encoding import binary_codes
from ..engine.train import History, TrainConfig, fit, method_config, train_method

__all__ = ["Variant", "TrainedRun", "run_folder", "train_or_load", "fit_or_load"]


@dataclass(frozen=True)
class Variant:
    """A method with non-default loss settings under a name of its own, for
    ablations: ``Variant("dfh-metric", "dfh", {"sign_weight": 0})``. The
    label names the table row and the run folder (keep it path-safe)."""

    label: str
    method: str
    loss_kwargs: dict = field(default_factory=dict)

    @classmethod
    def of(cls, spec) -> "Variant":
        """A Variant from a Variant or a plain method name."""
        return spec if isinstance(spec, Variant) else cls(spec, spec)


@dataclass
class TrainedRun:
    """A trained (or loaded) run: the best-on-validation ``model`` and its
    ``loss``, the ``history``, the ``seconds`` this call took and its folder."""

    model: torch.nn.Module
    loss: torch.nn.Module
    history: History
    seconds: float
    run_dir: Path | None

    def codes(self, data) -> torch.Tensor:
        """±1 codes of ``data`` (:func:`~dfh_lib.engine.encoding.binary_codes`)."""
        return binary_codes(self.model, data)


def run_folder(runs_dir, *names: str) -> Path | None:
    """``runs_dir/<names...>``, or None (train without saving) without ``runs_dir``."""
    return None if runs_dir is None else Path(runs_dir).joinpath(*names)


def train_or_load(spec, splits, bits: int, profile=None, runs_dir=None, *, run_dir=None,
                  progress: bool = True, callback=None, **overrides) -> TrainedRun:
    """Train-or-load a registered method or :class:`Variant` at ``bits``.

    The folder is ``run_dir`` when given, else ``runs_dir/<label>-<bits>``
    (None: nothing saved). ``overrides`` change TrainConfig fields (e.g.
    ``epochs``); the variant's ``loss_kwargs`` go to the loss; ``callback``
    goes to :func:`~dfh_lib.engine.train.fit` (called after every epoch).
    """
    variant = Variant.of(spec)
    run_dir = run_dir if run_dir is not None else run_folder(runs_dir, f"{variant.label}-{bits}")
    network = overrides.get("network") or method_config(variant.method, bits, profile).network
    if network.startswith("face_embedding") and overrides.get("backbone") is None:
        overrides["backbone"] = shared_backbone(splits, profile, progress)
    start = time.perf_counter()
    announce(run_dir, method_config(variant.method, bits, profile, len(splits.train),
                                    **overrides), splits)
    model, loss, history = train_method(variant.method, splits, bits, profile, run_dir=run_dir,
                                        loss_kwargs=variant.loss_kwargs, progress=progress,
                                        callback=callback, **overrides)
    return TrainedRun(model, loss, history, time.perf_counter() - start, run_dir)


def fit_or_load(model: torch.nn.Module, loss: torch.nn.Module, splits, config: TrainConfig,
                run_dir=None, progress: bool = True, callback=None) -> TrainedRun:
    """Train-or-load a model and loss an experiment built itself, in ``run_dir``."""
    start = time.perf_counter()
    announce(run_dir, config, splits)
    history = fit(model, loss, splits, config, run_dir=run_dir, progress=progress,
                  callback=callback)
    return TrainedRun(model, loss, history, time.perf_counter() - start,
                      None if run_dir is None else Path(run_dir))
