"""The shared start of every hashing method: one face embedding network per
training set, trained once with a float loss and frozen under the hash heads.

Why: on a laptop CPU a face CNN trained from scratch per method, per code
length and per seed stays under-trained (the book's first comparisons did).
Trained once on the training identities (CosFace, aspect-kept 64x48 input,
flips and shifts, selected on ``val_query``), its embedding turns each
method's training into a hash head on fixed features: seconds per run, so
every method can be tuned on validation and run with three seeds from the
same start. Its own cosine ranking is the tables' float ceiling. Queries are
never seen: like any method, it trains on ``splits.train`` only.

Content-addressed: a backbone is stored as
``<cache>/backbones/<id>/embedding.pt`` with ``id`` a hash of its weights, and
every head's config names that id, so a head is never loaded on another
backbone.
"""
from __future__ import annotations

import hashlib
import math
from pathlib import Path

import torch

from ..core.data.dataset import RetrievalSplits
from ..core.data.paths import cache_dir
from ..core.embedding_metrics import cosine_mean_average_precision
from ..core.profiles import get_profile
from ..core.runtime import seed_everything
from ..nn.losses.embedding import CosFaceLoss
from ..nn.models import SmallResNet, load_face_embedding, weights_id
from . import distributed
from .cost import announce
from .encoding import encode
from .train import History, TrainConfig, fit

__all__ = ["EMBEDDING_DIM", "BACKBONE_WIDTHS", "backbone_config", "shared_backbone",
           "train_backbone", "backbone_history", "embedding_map"]

#: width of the shared face embedding
EMBEDDING_DIM = 128
#: stage widths of the backbone per profile (tiny: a toy, so CI stays fast)
BACKBONE_WIDTHS = {"tiny": (8, 16, 32, 64)}


def backbone_config(profile=None, train_size: int = 1000, **overrides) -> TrainConfig:
    """The backbone's run: SmallResNet (32-64-128-256) at the profile's input,
    a 128-d embedding, CosFace, AdamW with cosine decay, flips and shifts,
    kept on the float validation mAP; epochs from ``profile.backbone_steps``
    (cpu: 1,200 steps, 67 epochs on LFW: validation mAP flat over the last
    fifth of training, within 0.2 points of its best)."""
    profile = get_profile(profile)
    batch = overrides.get("batch_size", 128)
    epochs = max(1, math.ceil(profile.backbone_steps / math.ceil(train_size / batch)))
    base = dict(method="cosface", bits=EMBEDDING_DIM, network="small_resnet", epochs=epochs,
                batch_size=batch, lr=2e-3, weight_decay=5e-4, optimizer="adamw", augment=True,
                image_size=profile.image_size, eval_every=max(1, epochs // 10),
                select_metric="val_float_mAP", amp=profile.amp, seed=0)
    return TrainConfig(**{**base, **overrides})


def _widths(profile) -> tuple[int, ...]:
    return BACKBONE_WIDTHS.get(get_profile(profile).name, (32, 64, 128, 256))


def _splits_id(splits: RetrievalSplits) -> str:
    digest = hashlib.sha1()
    for part in (splits.train, splits.val_query):
        digest.update(part.labels.tobytes())
        digest.update(hashlib.sha1(part.images.tobytes()).digest())
    return digest.hexdigest()[:12]


def train_backbone(splits: RetrievalSplits, profile=None, run_dir=None, progress: bool = True,
                   callback=None, start: SmallResNet | None = None,
                   **overrides) -> tuple[SmallResNet, History]:
    """Train (or load from ``run_dir``) the embedding network on ``splits.train``.

    ``start``: a face embedding network whose weights the trunk starts from
    (fine-tuning; a new CosFace layer for these identities). ``callback`` as
    in :func:`~dfh_lib.engine.train.fit`; ``overrides`` change the config.
    """
    config = backbone_config(profile, len(splits.train), **overrides)
    announce(run_dir, config, splits)
    seed_everything(config.seed, config.deterministic)
    widths = _widths(profile) if start is None else \
        tuple(block.conv2.out_channels for block in start.blocks)
    model = SmallResNet(config.bits, config.image_size, activation=None, widths=widths)
    if start is not None:
        model.load_state_dict(start.state_dict())
    loss = CosFaceLoss(config.bits, splits.train.num_identities)
    history = fit(model, loss, splits, config, run_dir=run_dir, progress=progress,
                  callback=callback)
    return model.eval(), history


def shared_backbone(splits: RetrievalSplits, profile=None, progress: bool = True) -> str:
    """The id of the shared backbone of ``splits`` in ``profile``: trained on
    first use (run folder ``<cache>/backbones/runs/<profile>-<splits id>``),
    then loaded. Its file is ``<cache>/backbones/<id>/embedding.pt``."""
    profile = get_profile(profile)
    run_dir = cache_dir() / "backbones" / "runs" / f"{profile.name}-{_splits_id(splits)}"
    done = run_dir / "backbone_id.txt"
    if done.exists():
        backbone = done.read_text().strip()
        if (cache_dir() / "backbones" / backbone / "embedding.pt").exists():
            return backbone
    model, history = train_backbone(splits, profile, run_dir, progress)
    ctx = distributed.from_env()  # under torchrun every rank trained it together
    backbone = "".join(f"{int(v) & 0xffffffff:08x}" for v in weights_id(model))
    if ctx.enabled:
        backbone = distributed.broadcast_object(backbone)  # rank 0's name for it
        if not ctx.is_main:
            distributed.broadcast_object(None)  # wait until rank 0 has written it
            return backbone
    out = cache_dir() / "backbones" / backbone
    out.mkdir(parents=True, exist_ok=True)
    best = history.records[history.best_epoch - 1]
    torch.save({"format": "dfh_lib.face_embedding/1", "dim": model.bits,
                "widths": list(_widths(profile)),
                "image_size": list(model.image_size), "config": history.config,
                "best_epoch": history.best_epoch, "val_float_mAP": best.get("val_float_mAP"),
                "model": {k: v.detach().cpu() for k, v in model.state_dict().items()}},
               out / "embedding.pt")
    history.to_csv(out / "log.csv")
    done.write_text(backbone)
    if ctx.enabled:
        distributed.broadcast_object(None)
    return backbone


def backbone_history(backbone: str) -> History:
    """The training history of a shared backbone (from its ``log.csv``)."""
    import pandas as pd

    frame = pd.read_csv(cache_dir() / "backbones" / backbone / "log.csv")
    records = [{k: v for k, v in row.items() if v == v} for row in frame.to_dict("records")]
    return History(records=records, select_metric="val_float_mAP")


def embedding_map(backbone: str, splits: RetrievalSplits) -> float:
    """The float ceiling: mAP of the backbone's embedding of the queries
    against the database, ranked by cosine similarity."""
    trunk = load_face_embedding(backbone)
    query, database = encode(trunk, splits.query), encode(trunk, splits.database)
    return cosine_mean_average_precision(query, database, splits.query.labels,
                                         splits.database.labels)
