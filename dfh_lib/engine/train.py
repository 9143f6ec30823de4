"""The one training loop every method and chapter uses.

``fit(model, loss, splits, config)`` trains a hash network with a hash loss
(see the contract in :mod:`dfh_lib.nn.losses`), selects the model on
``splits.val_query`` against ``splits.validation_database`` (the training
set unless the splits name another; never the query set), writes
a resumable checkpoint every epoch and returns a :class:`History`.

Reproducibility contract: on CPU with ``deterministic=True`` a run that is
killed and resumed from its ``run_dir`` ends with exactly the same weights
as an uninterrupted run with the same seed (the checkpoint holds the model,
loss, optimizer, scheduler, scaler and every random-number state).
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..core.data.dataset import FaceDataset, RetrievalSplits
from ..core.embedding_metrics import cosine_mean_average_precision
from ..core.metrics import binarize, evaluate_retrieval
from ..core.profiles import Profile, get_profile
from ..core.runtime import get_device, seed_everything
from ..nn.losses.registry import METHOD_DEFAULTS, build_loss
from ..nn.models import backbone_file, build_model
from . import checkpoint, distributed
from .encoding import as_input, binary_codes, encode, evaluate, image_tensor

__all__ = ["TrainConfig", "History", "fit", "encode", "binary_codes",
           "evaluate", "train_method", "method_config", "run_status", "epoch_order",
           "CHECKPOINT", "BEST", "BACKBONE"]

CHECKPOINT = "checkpoint.pt"
BEST = "best.pt"
#: a run's own link to (or copy of) the face embedding its head was trained on
BACKBONE = "backbone.pt"
CHECKPOINT_SECONDS = 30.0  # longest training time a resumed run can lose
_OPTIMIZERS = ("adam", "adamw", "sgd")
_SCHEDULES = ("cosine", "none")
_SAMPLINGS = ("identity", "random")
_SELECT_METRICS = ("val_mAP", "val_float_mAP")
# fields that only change what is measured, not the trained weights
_NOT_IN_FINGERPRINT = ("eval_every",)
# fields added after runs were shipped: left out of the fingerprint at their
# default, so older checkpoints keep resuming
_ADDED_LATER = {"select_metric": "val_mAP", "backbone": None, "views": None}


# ----------------------------------------------------------------------------
# configuration
# ----------------------------------------------------------------------------

@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run.

    Attributes:
        method: loss name (e.g. ``"dpsh"``); recorded, and used by
            :func:`train_method` to build the loss.
        bits: code length K.
        network: hash network name (see :func:`dfh_lib.nn.models.build_model`).
        epochs / batch_size / lr / weight_decay: the usual.
        optimizer: ``"adam"``, ``"adamw"`` or ``"sgd"`` (momentum 0.9).
        schedule: ``"cosine"`` (per-epoch cosine decay to 0) or ``"none"``.
        eval_every: validate every this many epochs (and after the last).
        seed: seeds python/numpy/torch and the shuffling generator.
        deterministic: force deterministic kernels (bit-exact resume).
        amp: mixed precision on CUDA (bf16 where supported, else fp16).
        image_size: (height, width) the training images are resized to.
        augment: random horizontal flip + padded random crop per batch.
        sampling: ``"identity"`` (default) shuffles groups of
            ``images_per_identity`` images of one person, so every batch holds
            positive pairs for pairwise and metric losses (each image still
            once per epoch); ``"random"`` is a plain shuffle.
        images_per_identity: group size for ``sampling="identity"``.
        select_metric: the validation metric that picks the kept weights:
            ``"val_mAP"`` (the codes, default) or ``"val_float_mAP"`` (cosine
            ranking of the float outputs, for embedding networks).
        backbone: for the ``face_embedding`` networks, the id (or file) of the
            face embedding network they start from (see
            :mod:`dfh_lib.engine.backbone`: trained once per training set);
            for an embedding network fine-tuned from another
            (:func:`dfh_lib.engine.face_net.fine_tune_face_net`), its start.
        views: on a frozen ``face_embedding`` trunk (whose heads train on
            precomputed embeddings, so ``augment`` cannot reach the images),
            how many views of each training face a step picks from: 1 = the
            image itself, no augmentation; None = the network's default (8:
            the image, its mirror, then flipped or shifted copies).
    """

    method: str
    bits: int
    network: str = "ddh"
    epochs: int = 30
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.0
    optimizer: str = "adam"
    schedule: str = "cosine"
    eval_every: int = 5
    seed: int = 0
    deterministic: bool = False
    amp: bool = False
    image_size: tuple[int, int] = (32, 32)
    augment: bool = False
    sampling: str = "identity"
    images_per_identity: int = 4
    select_metric: str = "val_mAP"
    backbone: str | None = None
    views: int | None = None

    def __post_init__(self):
        object.__setattr__(self, "image_size", tuple(int(s) for s in self.image_size))
        for name in ("bits", "epochs", "batch_size", "eval_every"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int; got {value!r}")
        if not self.lr > 0 or self.weight_decay < 0:
            raise ValueError(f"need lr > 0 and weight_decay >= 0; got lr={self.lr}, "
                             f"weight_decay={self.weight_decay}")
        if self.optimizer not in _OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {_OPTIMIZERS}; got {self.optimizer!r}")
        if self.sampling not in _SAMPLINGS or self.images_per_identity < 1:
            raise ValueError(f"sampling must be one of {_SAMPLINGS} with images_per_identity "
                             f">= 1; got {self.sampling!r}, {self.images_per_identity}")
        if self.schedule not in _SCHEDULES:
            raise ValueError(f"schedule must be one of {_SCHEDULES}; got {self.schedule!r}")
        if self.views is not None and (not isinstance(self.views, int)
                                       or isinstance(self.views, bool) or self.views < 1):
            raise ValueError(f"views must be None or a positive int; got {self.views!r}")
        if self.select_metric not in _SELECT_METRICS:
            raise ValueError(f"select_metric must be one of {_SELECT_METRICS}; "
                             f"got {self.select_metric!r}")
        if len(self.image_size) != 2 or min(self.image_size) < 1:
            raise ValueError(f"image_size must be (height, width); got {self.image_size}")

    @classmethod
    def from_profile(cls, profile: Profile | str | None = None, train_size: int | None = None,
                     **overrides) -> "TrainConfig":
        """A config with a profile's loop settings; ``overrides`` must give
        ``method`` and ``bits`` and may change any other field. With the
        profile's step budget and ``train_size`` (training images), epochs
        are ``ceil(steps / batches per epoch)`` unless ``overrides`` set them."""
        profile = get_profile(profile)
        unknown = set(overrides) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown TrainConfig fields {sorted(unknown)}; "
                             f"known: {sorted(f.name for f in fields(cls))}")
        base = dict(network=profile.network, epochs=profile.epochs,
                    batch_size=profile.batch_size, lr=profile.lr,
                    eval_every=profile.eval_every, amp=profile.amp,
                    image_size=profile.image_size, seed=profile.seed)
        if profile.steps and train_size:
            batch = overrides.get("batch_size", profile.batch_size)
            base["epochs"] = max(1, math.ceil(profile.steps / math.ceil(train_size / batch)))
        return cls(**{**base, **overrides})

    def to_dict(self) -> dict:
        """The fields as JSON-ready primitives."""
        return {**asdict(self), "image_size": list(self.image_size)}

    def fingerprint(self) -> str:
        """A stable 16-hex-digit hash of the fields that define the trained
        weights (all but ``eval_every``); a checkpoint is only resumed by a
        config with the same fingerprint."""
        defining = {k: v for k, v in self.to_dict().items() if k not in _NOT_IN_FINGERPRINT
                    and _ADDED_LATER.get(k, object()) != v}
        text = json.dumps(defining, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


# ----------------------------------------------------------------------------
# history
# ----------------------------------------------------------------------------

@dataclass
class History:
    """Per-epoch records of one run.

    Each record holds ``epoch`` (1-based, epochs completed), ``lr``,
    ``time_s`` (training time of the epoch), ``loss`` and every loss term
    (epoch means), and on evaluated epochs the validation metrics prefixed
    ``val_`` (``val_mAP``, ``val_mAP_tie_aware``, ...).
    """

    records: list[dict] = field(default_factory=list)
    config: dict = field(default_factory=dict)
    select_metric: str = "val_mAP"

    def __len__(self) -> int:
        return len(self.records)

    def append(self, record: dict) -> None:
        self.records.append(dict(record))

    def column(self, name: str) -> list:
        """Values of ``name`` per epoch (None where it was not recorded)."""
        return [r.get(name) for r in self.records]

    @property
    def best_epoch(self) -> int | None:
        """The epoch with the highest ``select_metric`` (earliest on ties),
        or None before the first evaluation."""
        scored = [(r[self.select_metric], -r["epoch"]) for r in self.records
                  if r.get(self.select_metric) is not None]
        return -max(scored)[1] if scored else None

    def to_frame(self):
        """The records as a ``pandas.DataFrame`` indexed by epoch."""
        import pandas as pd

        return pd.DataFrame(self.records).set_index("epoch")

    def to_csv(self, path) -> None:
        self.to_frame().to_csv(path)

    def to_dict(self) -> dict:
        return {"records": self.records, "config": self.config,
                "select_metric": self.select_metric}

    def to_json(self, path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1))

    @classmethod
    def from_json(cls, path) -> "History":
        return cls(**json.loads(Path(path).read_text()))


# ----------------------------------------------------------------------------
# one epoch
# ----------------------------------------------------------------------------

@dataclass
class _Run:
    """The mutable objects of a run, saved together in a checkpoint."""

    model: torch.nn.Module
    loss: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: object
    scaler: torch.amp.GradScaler
    generator: torch.Generator
    device: torch.device
    amp_dtype: torch.dtype | None

    @classmethod
    def create(cls, model, loss, config: TrainConfig, device,
               ctx: distributed.Context | None = None) -> "_Run":
        """The run's objects; under torchrun (``ctx.enabled``) also
        ``run.parallel``, the model's DistributedDataParallel side (a
        collective step: every rank at once), else ``run.parallel = None``."""
        model.to(device)
        loss.to(device)
        parallel = (distributed.DataParallel(model, loss, ctx, device)
                    if ctx is not None and ctx.enabled else None)
        params = list({id(p): p for p in [*model.parameters(), *loss.parameters()]
                       if p.requires_grad}.values())
        if not params:
            raise ValueError("model and loss have no trainable parameters")
        optimizer = _make_optimizer(params, config)
        scheduler = (torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, config.epochs)
                     if config.schedule == "cosine" else None)
        amp_dtype = None
        if config.amp and device.type == "cuda":
            amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
        generator = torch.Generator().manual_seed(config.seed)
        run = cls(model, loss, optimizer, scheduler, scaler, generator, device, amp_dtype)
        run.parallel = parallel
        return run

    def state_dict(self) -> dict:
        return {"model": self.model.state_dict(), "loss": self.loss.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict() if self.scheduler else None,
                "scaler": self.scaler.state_dict(), "rng": checkpoint.rng_state(self.generator)}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.loss.load_state_dict(state["loss"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler:
            self.scheduler.load_state_dict(state["scheduler"])
        if state["scaler"]:  # empty when saved by a run without fp16 (e.g. on CPU)
            self.scaler.load_state_dict(state["scaler"])
        checkpoint.set_rng_state(state["rng"], self.generator)


def _make_optimizer(params: list, config: TrainConfig) -> torch.optim.Optimizer:
    kw = dict(lr=config.lr, weight_decay=config.weight_decay)
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, momentum=0.9, **kw)
    return {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[config.optimizer](params, **kw)


def _augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random horizontal flip and a random crop of the image padded by 1/8
    of its side (reflect), drawn per image from ``generator``."""
    n, _, h, w = x.shape
    pad = max(1, min(h, w) // 8)
    flip = (torch.rand(n, generator=generator) < 0.5).to(x.device)
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    shift = torch.randint(0, 2 * pad + 1, (2, n), generator=generator).to(x.device)
    rows = shift[0, :, None] + torch.arange(h, device=x.device)  # (n, h)
    cols = shift[1, :, None] + torch.arange(w, device=x.device)  # (n, w)
    padded = F.pad(x, (pad, pad, pad, pad), mode="reflect").permute(0, 2, 3, 1)
    batch = torch.arange(n, device=x.device)[:, None, None]
    return padded[batch, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2).contiguous()


def _check_finite(value: float, terms: dict, epoch: int, step: int, num_steps: int):
    """Stop before a NaN/inf loss reaches the weights (and the checkpoint)."""
    if not math.isfinite(value):
        named = ", ".join(f"{k}={v:.4g}" for k, v in terms.items()) or "(no terms)"
        raise FloatingPointError(
            f"loss is {value} at epoch {epoch + 1}, step {step + 1} of {num_steps}; terms: "
            f"{named}. Try a lower lr, check the inputs for NaN, or set amp=False. "
            "The last checkpoint (end of the previous epoch) is untouched.")


def epoch_order(labels: torch.Tensor, generator: torch.Generator,
                images_per_identity: int | None = None) -> torch.Tensor:
    """A seeded permutation of ``0..N-1``. With ``images_per_identity = m``,
    each identity's images are shuffled and cut into groups of m, and the
    groups are shuffled: consecutive batches then contain same-identity
    pairs while every image is still visited exactly once."""
    order = torch.randperm(len(labels), generator=generator)
    if not images_per_identity:
        return order
    by_identity = order[torch.sort(labels[order].cpu(), stable=True).indices]
    counts = torch.bincount(labels.cpu()).tolist()
    groups = [g for chunk in torch.split(by_identity, [c for c in counts if c])
              for g in torch.split(chunk, images_per_identity)]
    shuffled = torch.randperm(len(groups), generator=generator).tolist()
    return torch.cat([groups[i] for i in shuffled])


def _train_one_epoch(run: _Run, images: torch.Tensor, labels: torch.Tensor,
                     batch_size: int, epoch: int, augment: bool = False,
                     progress: bool = True, images_per_identity: int | None = None
                     ) -> dict[str, float]:
    """One pass over the training set in a seeded order (:func:`epoch_order`).

    The set is split into ``ceil(N / batch_size)`` near-equal batches, so
    every image is used and no batch is tiny (BatchNorm and pairwise losses
    need a few samples). Returns the epoch mean of ``loss`` and each term.

    Under torchrun (``run.parallel``) every rank draws the same order and
    batches and trains on its contiguous share of each batch; the loss sees
    the whole batch (codes gathered from every rank, see
    :mod:`dfh_lib.engine.distributed`).
    """
    parallel = getattr(run, "parallel", None)
    run.model.train()
    run.loss.train()
    order = epoch_order(labels, run.generator, images_per_identity)
    batches = torch.tensor_split(order, math.ceil(len(images) / batch_size))
    needs_index = getattr(run.loss, "needs_index", False)
    sums: dict[str, float] = {}
    for step, index in enumerate(tqdm(batches, desc=f"epoch {epoch + 1}", leave=False,
                                      disable=not progress, dynamic_ncols=True)):
        # this rank's share; augmentation is drawn for the whole batch, the
        # same on every rank (one generator state), then cut
        share = slice(None) if parallel is None else parallel.share(len(index))
        x = as_input(images[(index if augment else index[share]).to(images.device)], run.device)
        if augment and x.ndim == 4:  # precomputed inputs carry their own views
            x = _augment(x, run.generator)
        if augment:
            x = x[share]
        y = labels[index].to(run.device)
        extra = {"index": index.to(run.device)} if needs_index else {}
        with torch.autocast(run.device.type, dtype=run.amp_dtype,
                            enabled=run.amp_dtype is not None):
            u = run.model(x) if parallel is None else parallel.forward(x)
        if parallel is not None:
            u = parallel.gather(u, len(index))  # the whole batch's codes, on every rank
        value, terms = run.loss(u.float(), y, **extra)  # losses run in float32
        logged = {"loss": value.item(), **{k: float(v) for k, v in terms.items()}}
        _check_finite(logged["loss"], {k: logged[k] for k in terms}, epoch, step, len(batches))
        run.optimizer.zero_grad(set_to_none=True)
        run.scaler.scale(value).backward()
        if parallel is not None:
            parallel.average_loss_gradients()
        run.scaler.step(run.optimizer)
        run.scaler.update()
        for k, v in logged.items():
            sums[k] = sums.get(k, 0.0) + v * len(index)
    return {k: v / len(images) for k, v in sums.items()}


# ----------------------------------------------------------------------------
# checkpoints
# ----------------------------------------------------------------------------

def _data_summary(train: FaceDataset) -> dict:
    """Identifies the training set, so a run is not resumed on other data."""
    return {"train_images": len(train), "train_image_size": list(train.image_size),
            "train_labels_sha1": hashlib.sha1(train.labels.tobytes()).hexdigest()[:12]}


def _loss_summary(loss: torch.nn.Module) -> str:
    """The loss and its settings (margins, weights) as its repr, so a run is
    not resumed with other loss settings under the same run_dir."""
    return " ".join(repr(loss).split())


def _snapshot(run: _Run) -> dict:
    """A CPU copy of the weights (model + loss) worth keeping as the best."""
    return {"model": {k: v.detach().cpu().clone() for k, v in run.model.state_dict().items()},
            "loss": {k: v.detach().cpu().clone() for k, v in run.loss.state_dict().items()}}


# ----------------------------------------------------------------------------
# fit
# ----------------------------------------------------------------------------

def _prepare_inputs(splits: RetrievalSplits, config: TrainConfig, device, model=None):
    """Resize once; keep uint8 images on the device when they fit in a
    quarter of its free memory (else batches are copied from pinned memory).
    A model with ``precompute_inputs`` (a frozen trunk) turns the images
    into what it trains on once, here."""
    train_x = image_tensor(splits.train, config.image_size)
    val_x = image_tensor(splits.val_query, config.image_size)
    db_x = None if splits.val_database is None else image_tensor(splits.val_database,
                                                                 config.image_size)
    if hasattr(model, "precompute_inputs"):
        model.to(device)
        train_x = model.precompute_inputs(train_x, training=True)
        val_x = model.precompute_inputs(val_x, training=False)
        if db_x is not None:
            db_x = model.precompute_inputs(db_x, training=False)
    train_y = torch.from_numpy(splits.train.labels)
    if device.type == "cuda":
        fits = train_x.numel() < 0.25 * torch.cuda.mem_get_info(device)[0]
        train_x = train_x.to(device) if fits else train_x.pin_memory()
    elif device.type != "cpu":
        train_x = train_x.to(device)
    # validation: (queries, labels, database, labels); the database is the
    # training set itself unless the splits name another (see RetrievalSplits)
    if db_x is None:
        db_x, db_y = train_x, train_y
    else:
        db_y = torch.from_numpy(splits.val_database.labels)
    return (train_x, train_y), (val_x, torch.from_numpy(splits.val_query.labels), db_x, db_y)


def run_status(run_dir, config: TrainConfig) -> tuple[str, int]:
    """Where ``run_dir`` stands for ``config``, without training:
    ``("finished", config.epochs)``, ``("partial", k)`` (k epochs of this
    config done) or ``("missing", 0)`` (no run_dir, no checkpoint, or one of
    another config or unreadable: :func:`fit` refuses that one, naming why)."""
    path = None if run_dir is None else Path(run_dir) / CHECKPOINT
    if path is None or not path.exists():
        return "missing", 0
    try:
        state = checkpoint.load(path, "checkpoint")
    except ValueError:
        return "missing", 0
    if state.get("fingerprint") != config.fingerprint():
        return "missing", 0
    done = len(state["history"]["records"])
    return ("finished", config.epochs) if done >= config.epochs else ("partial", done)


def _resume(run: _Run, path: Path, config: TrainConfig, data: dict):
    """Restore a run from ``path``; returns (history, best snapshot or None)."""
    state = checkpoint.load(path, "checkpoint")
    # runs written before the loss settings were recorded lack "loss"
    checkpoint.check_same_run(state, config.fingerprint(), config.to_dict(), data, path,
                              _NOT_IN_FINGERPRINT, recorded_later=("loss",))
    run.load_state_dict(state)
    return History(**state["history"]), state["best"]


def _save_best(run_dir: Path | None, best: dict, epoch: int, metrics: dict, config) -> None:
    if run_dir is not None:
        checkpoint.save_atomic({"format": checkpoint.FORMAT, "kind": "best", "epoch": epoch,
                                "fingerprint": config.fingerprint(), "metrics": metrics,
                                **best}, run_dir / BEST)


def _save_checkpoint(path: Path, run: _Run, history: History, best: dict | None,
                     config: TrainConfig, data: dict) -> None:
    """Everything needed to resume, with the best weights so far (so the
    file is self-contained even if ``best.pt`` is deleted)."""
    checkpoint.save_atomic({"format": checkpoint.FORMAT, "kind": "checkpoint",
                            "epoch": len(history), "fingerprint": config.fingerprint(),
                            "config": config.to_dict(), "data": data,
                            "history": history.to_dict(), "best": best,
                            **run.state_dict()}, path)


def _validate(run: _Run, val, record: dict, batch_size: int) -> None:
    """Validation metrics of the codes (``val_mAP``, ...) and, as the float
    ceiling of the same network, ``val_float_mAP`` (cosine ranking of u);
    ``val`` = (queries, their labels, database, its labels)."""
    size = max(batch_size, 256)
    val_x, val_y, db_x, db_y = val
    u_val, u_db = encode(run.model, val_x, size), encode(run.model, db_x, size)
    metrics = evaluate_retrieval(binarize(u_val), binarize(u_db), val_y, db_y)
    record.update({f"val_{k}": float(v) for k, v in metrics.items() if np.ndim(v) == 0})
    record["val_float_mAP"] = cosine_mean_average_precision(u_val, u_db, val_y, db_y)


def _check_fit_args(model, loss, splits, config) -> None:
    if not isinstance(config, TrainConfig):
        raise ValueError(f"config must be a TrainConfig; got {type(config).__name__} "
                         f"(use TrainConfig.from_profile(profile, method=..., bits=...))")
    if not isinstance(splits, RetrievalSplits):
        raise ValueError(f"splits must be RetrievalSplits (see retrieval_protocol); "
                         f"got {type(splits).__name__}")
    if len(splits.val_query) == 0:
        raise ValueError("splits.val_query is empty; model selection needs it "
                         "(retrieval_protocol(..., num_val=1))")
    if getattr(model, "bits", config.bits) != config.bits:
        raise ValueError(f"model.bits={model.bits} but config.bits={config.bits}")


def fit(model: torch.nn.Module, loss: torch.nn.Module, splits: RetrievalSplits,
        config: TrainConfig, run_dir=None, resume: bool = True, progress: bool = True,
        device=None, callback: Callable[[History], bool | None] | None = None) -> History:
    """Train ``model`` with ``loss`` on ``splits.train``.

    Validates on ``splits.val_query`` vs ``splits.validation_database`` every
    ``config.eval_every`` epochs and after the last one. With ``run_dir``,
    writes ``checkpoint.pt`` (everything needed to resume) after every epoch
    and ``best.pt`` (model + loss weights of the best validation mAP); with
    ``resume=True`` an existing checkpoint of the same config is continued
    (a finished run just loads). On return the model and loss hold the
    **best** weights (by validation mAP, earliest on ties).

    The loop seeds python/numpy/torch with ``config.seed`` when it starts,
    after the model was built: :func:`train_method` also seeds before
    building, so that the initialisation is reproducible too.

    Args:
        device: None = ``$DFH_DEVICE``, else the best available (cuda, mps, cpu).
        callback: called after every epoch with the history so far (after the
            checkpoint is written); returning True stops the run there — a
            later call with the same ``run_dir`` resumes it (live explorers).

    Under ``torchrun --nproc_per_node=N`` (``WORLD_SIZE`` > 1) every process
    calls ``fit`` alike and training is data-parallel
    (DistributedDataParallel, NCCL on CUDA with ``cuda:LOCAL_RANK``, gloo on
    CPU): each rank trains on its share of every global batch of
    ``config.batch_size`` and the loss sees the whole batch (see
    :mod:`dfh_lib.engine.distributed` for what equals one process). Rank 0
    validates, writes the files, shows progress and runs ``callback`` (its
    answer stops every rank); every rank returns the same history and weights.

    Raises:
        ValueError: the checkpoint is unreadable or from another config/data.
        FloatingPointError: the loss became NaN/inf (names epoch, step, terms).
    """
    _check_fit_args(model, loss, splits, config)
    device = get_device(device)
    ctx = distributed.setup(device)  # joins the torchrun job, if any
    device = ctx.device(device)
    if ctx.enabled:
        distributed.check_batches(len(splits.train), config.batch_size, ctx.world_size)
    seed_everything(config.seed, config.deterministic)
    run = _Run.create(model, loss, config, device, ctx)
    try:
        return _fit_loop(run, splits, config, run_dir, resume, progress, callback, ctx)
    finally:
        if run.parallel is not None:
            run.parallel.close()


def _fit_loop(run: _Run, splits, config: TrainConfig, run_dir, resume: bool, progress: bool,
              callback, ctx: distributed.Context) -> History:
    """:func:`fit` after the run is created: inputs, resume, epochs, best weights."""
    model, loss, device = run.model, run.loss, run.device
    train, val = _prepare_inputs(splits, config, device, model)
    data = {**_data_summary(splits.train), "loss": _loss_summary(loss)}
    history, best = History(config=config.to_dict(), select_metric=config.select_metric), None
    if run_dir is not None:
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        if resume and (run_dir / CHECKPOINT).exists():
            history, best = _resume(run, run_dir / CHECKPOINT, config, data)
    progress = progress and ctx.is_main
    bar = tqdm(total=config.epochs, initial=len(history), unit="epoch", dynamic_ncols=True,
               desc=f"{config.method} {config.bits} bits", disable=not progress)
    saved = time.perf_counter()
    with bar:
        for epoch in range(len(history), config.epochs):
            record = _one_epoch(run, train, val, config, epoch, progress, ctx)
            history.append(record)
            if history.best_epoch == epoch + 1:
                best = _snapshot(run)
                if ctx.is_main:
                    _save_best(run_dir, best, epoch + 1, record, config)
            # a checkpoint after every validation, the last epoch, and at least every
            # CHECKPOINT_SECONDS: runs of thousands of one-batch epochs (low-shot) would
            # otherwise spend most of their time writing checkpoints
            due = "val_mAP" in record or epoch + 1 == config.epochs \
                or time.perf_counter() - saved >= CHECKPOINT_SECONDS
            if run_dir is not None and ctx.is_main and due:
                _save_checkpoint(run_dir / CHECKPOINT, run, history, best, config, data)
                saved = time.perf_counter()
            bar.update()
            bar.set_postfix(_postfix(history))
            stop = ctx.is_main and callback is not None and callback(history)
            if ctx.enabled:  # rank 0 decides; also: every rank waits for the checkpoint
                stop = distributed.broadcast_object(bool(stop))
            if stop:
                break
    if best is not None:
        model.load_state_dict(best["model"])
        loss.load_state_dict(best["loss"])
    return history


def _one_epoch(run: _Run, train, val, config: TrainConfig, epoch: int, progress: bool,
               ctx: distributed.Context | None = None) -> dict:
    """Train one epoch, step the schedule, validate when due; the record.

    Under torchrun (``ctx.enabled``) every rank trains; then rank 0's
    BatchNorm statistics go to every rank, rank 0 validates and every rank
    returns rank 0's record (so all agree on the best epoch); the global
    torch RNG (dropout) is seeded per rank and epoch."""
    parallel = ctx is not None and ctx.enabled
    if parallel:
        torch.manual_seed(distributed.rank_seed(config.seed, epoch, ctx.rank))
    if hasattr(run.loss, "on_epoch_start"):
        run.loss.on_epoch_start(epoch, config.epochs)
    lr = run.optimizer.param_groups[0]["lr"]
    start = time.perf_counter()
    per_identity = config.images_per_identity if config.sampling == "identity" else None
    terms = _train_one_epoch(run, *train, config.batch_size, epoch, config.augment, progress,
                             per_identity)
    record = {"epoch": epoch + 1, "lr": lr, "time_s": time.perf_counter() - start, **terms}
    if run.scheduler is not None:
        run.scheduler.step()
    if parallel:
        distributed.broadcast_buffers(run.model)
    due = (epoch + 1) % config.eval_every == 0 or epoch + 1 == config.epochs
    if due and (not parallel or ctx.is_main):
        _validate(run, val, record, config.batch_size)
    return distributed.broadcast_object(record) if parallel else record


def _postfix(history: History) -> dict:
    last = history.records[-1]
    maps = [m for m in history.column(history.select_metric) if m is not None]
    return {"loss": f"{last['loss']:.4f}", "lr": f"{last['lr']:.2e}",
            "val_mAP": f"{maps[-1]:.3f}" if maps else "-"}


# ----------------------------------------------------------------------------
# convenience for chapters and the command line
# ----------------------------------------------------------------------------

def default_network(method: str, profile: Profile | str | None = None) -> str:
    """The network a method trains by default: the one its paper prescribes
    (``METHOD_DEFAULTS[method]["network"]``, e.g. DDH's), else the profile's."""
    return METHOD_DEFAULTS.get(method, {}).get("network") or get_profile(profile).network


def method_config(method: str, bits: int, profile: Profile | str | None = None,
                  train_size: int | None = None, **overrides) -> TrainConfig:
    """The config :func:`train_method` trains ``method`` at ``bits`` with: the
    profile's loop settings changed by ``overrides``; the network is
    ``overrides["network"]``, else the method's default in
    :data:`dfh_lib.nn.losses.METHOD_DEFAULTS`, else the profile's."""
    overrides.setdefault("network", default_network(method, profile))
    return TrainConfig.from_profile(profile, train_size, method=method, bits=bits, **overrides)


def build_method_model(config: TrainConfig) -> torch.nn.Module:
    """The network of ``config``: ``config.network`` with what ``config.method``
    needs from it (``METHOD_DEFAULTS``, e.g. its activation)."""
    model_kwargs = {k: v for k, v in METHOD_DEFAULTS.get(config.method, {}).items()
                    if k != "network"}
    if config.backbone is not None:
        model_kwargs["backbone"] = config.backbone
    if config.views is not None:
        if config.network != "face_embedding":
            raise ValueError(f"views is for a frozen face_embedding trunk; network "
                             f"{config.network!r} augments images (augment=True)")
        model_kwargs["views"] = config.views
    return build_model(config.network, config.bits, image_size=config.image_size,
                       **model_kwargs)


def train_method(method: str, splits: RetrievalSplits, bits: int,
                 profile: Profile | str | None = None, run_dir=None, *,
                 loss_kwargs: dict | None = None, progress: bool = True,
                 callback: Callable[[History], bool | None] | None = None, **overrides):
    """Build the method's network and loss, then :func:`fit`.

    The config is :func:`method_config`'s (it picks the network). The model is
    built after seeding with ``config.seed``, so its initialisation is
    reproducible too. Returns ``(model, loss, history)``.
    """
    config = method_config(method, bits, profile, len(splits.train), **overrides)
    if config.network.startswith("face_embedding") and config.backbone is None:
        raise ValueError(f"network {config.network!r} starts from the shared face embedding of "
                         f"the training set: pass backbone=dfh_lib.engine.backbone."
                         f"shared_backbone(splits), or use experiments' train_or_load")
    seed_everything(config.seed, config.deterministic)
    model = build_method_model(config)
    loss = build_loss(method, bits, splits.train.num_identities, **(loss_kwargs or {}))
    history = fit(model, loss, splits, config, run_dir=run_dir, progress=progress,
                  callback=callback)
    if run_dir is not None and config.backbone is not None and distributed.is_main_process():
        _keep_backbone(Path(run_dir), config.backbone)
    return model, loss, history


def _keep_backbone(run_dir: Path, backbone: str) -> None:
    """Hard-link (else copy) the run's backbone into it, so the run folder
    loads anywhere, without the cache it was trained with."""
    target, source = run_dir / BACKBONE, backbone_file(backbone)
    if target.exists() or not source.is_file():
        return
    try:
        os.link(source, target)
    except FileExistsError:  # another process (torchrun rank) linked it first
        return
    except OSError:  # another filesystem: copy
        shutil.copyfile(source, target)
