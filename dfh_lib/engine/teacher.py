"""The teacher of multi-layer distillation (Chapter 6): a larger real-valued
identity network, trained through the one loop and then frozen.

:meth:`Teacher.targets` gives its embeddings and identity logits of a
dataset, which :class:`~dfh_lib.nn.losses.DistillationLoss` distills into
the hash heads.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..core.profiles import get_profile
from ..core.runtime import seed_everything
from ..nn.losses.baselines import SoftmaxLoss
from ..nn.losses.embedding import CosFaceLoss
from ..nn.models import build_model
from .backbone import shared_backbone
from .cost import announce
from .encoding import encode
from .train import CHECKPOINT, History, TrainConfig, fit

__all__ = ["TEACHER_NETWORK", "TEACHER_LOSSES", "TEACHER_FILE", "Teacher", "train_teacher",
           "fit_teacher", "load_teacher"]

#: teacher network, one size up from the student's
TEACHER_NETWORK = {"ddh": "small_resnet", "small_resnet": "resnet18", "resnet18": "resnet50",
                   "resnet50": "resnet50",
                   # on the shared face embedding: the same head, real-valued
                   "face_embedding": "face_embedding", "face_embedding_ft": "face_embedding_ft"}
TEACHER_FILE = "teacher.json"
#: the teacher's identity loss by name (``TrainConfig.method`` of its run): a
#: plain softmax classifier, or CosFace's margin on cosines (a float
#: embedding ranked by cosine, as the students' codes are ranked)
TEACHER_LOSSES = {"softmax": SoftmaxLoss, "cosface": CosFaceLoss}


@dataclass
class Teacher:
    """A trained, frozen identity network.

    ``model``: images -> real embeddings (N, D) (``activation=None``);
    ``loss``: its identity loss (:data:`TEACHER_LOSSES`), which gives the
    identity logits (a softmax classifier's, or CosFace's scaled cosines to
    its proxies); ``history``: the training run.
    """

    model: nn.Module
    loss: SoftmaxLoss | CosFaceLoss
    history: History

    @torch.no_grad()
    def targets(self, data, batch_size: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
        """``(embeddings (N, D), logits (N, C))`` of ``data`` on the CPU (eval mode)."""
        embeddings = encode(self.model, data, batch_size)
        device = next(self.loss.parameters()).device
        if isinstance(self.loss, CosFaceLoss):
            logits = self.loss.logits(embeddings.to(device))
        else:
            logits = self.loss.classifier(embeddings.to(device))
        return embeddings, logits.cpu()


def train_teacher(splits, profile=None, run_dir=None, network: str | None = None,
                  dim: int = 128, loss: str = "softmax", progress: bool = True,
                  **overrides) -> Teacher:
    """Train (or load, from a finished ``run_dir``) the teacher through
    :func:`~dfh_lib.engine.train.fit`: ``network`` (default one size up from the
    profile's, :data:`TEACHER_NETWORK`: ``small_resnet`` for ``ddh``) with a
    ``dim``-d real embedding and the ``loss`` of :data:`TEACHER_LOSSES`, the
    profile's loop settings and step budget (``overrides`` change any
    TrainConfig field); a head on the shared face embedding finds its
    backbone (:func:`~dfh_lib.engine.backbone.shared_backbone`).
    The returned model is frozen (eval mode, no gradients)."""
    profile = get_profile(profile)
    network = network or TEACHER_NETWORK.get(profile.multilayer_network,
                                             profile.multilayer_network)
    if network.startswith("face_embedding") and overrides.get("backbone") is None:
        overrides["backbone"] = shared_backbone(splits, profile, progress)
    config = TrainConfig.from_profile(profile, len(splits.train), **{
        "method": loss, "bits": dim, "network": network, **overrides})
    return fit_teacher(config, splits, run_dir, progress)


def fit_teacher(config, splits, run_dir, progress) -> Teacher:
    if config.method not in TEACHER_LOSSES:
        raise ValueError(f"a teacher's loss must be one of {sorted(TEACHER_LOSSES)}; got "
                         f"{config.method!r}")
    seed_everything(config.seed, config.deterministic)
    model = build_model(config.network, config.bits, image_size=config.image_size,
                        activation=None, **({} if config.backbone is None
                                            else {"backbone": config.backbone}))
    loss = TEACHER_LOSSES[config.method](config.bits, splits.train.num_identities)
    announce(run_dir, config, splits)
    history = fit(model, loss, splits, config, run_dir=run_dir, progress=progress)
    if run_dir is not None:  # after fit, which refuses a folder of another config
        (Path(run_dir) / TEACHER_FILE).write_text(json.dumps({"config": config.to_dict()}))
    model.eval().requires_grad_(False)
    loss.eval().requires_grad_(False)
    return Teacher(model, loss, history)


def load_teacher(run_dir, splits, progress: bool = False) -> Teacher:
    """The teacher trained in ``run_dir`` by :func:`train_teacher` (its
    config is read from ``teacher.json``; an interrupted run is finished).
    Raises ValueError naming the fix when there is none."""
    run_dir = Path(run_dir)
    spec = run_dir / TEACHER_FILE
    if not (run_dir / CHECKPOINT).exists() or not spec.exists():
        raise ValueError(f"no teacher checkpoint in {run_dir} (need {CHECKPOINT} and "
                         f"{TEACHER_FILE}); train one with train_teacher(splits, profile, "
                         f"run_dir={str(run_dir)!r}) or add Stage('teacher', kind='teacher') "
                         f"to the recipe")
    config = TrainConfig(**json.loads(spec.read_text())["config"])
    return fit_teacher(config, splits, run_dir, progress)
