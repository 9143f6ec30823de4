"""Multi-layer supervised DFH with knowledge distillation, trained in stages.

The thesis: compressing a face to a few bits loses information, so DFH-GANs
"draws on the idea of knowledge distillation and proposes a multi-layer
supervised DFH structure. Through multi-stage training, it helps the network
learn better features and thus more discriminating hash codes." This module
is the book's reading of that sentence, from published pieces:

* :class:`MultiHeadHashNet` — K-bit hash heads at several depths of one
  backbone (deep supervision: Lee et al., "Deeply-Supervised Nets",
  AISTATS 2015; GoogLeNet's auxiliary classifiers, Szegedy et al., CVPR 2015).
  Every head is trained with the hash loss; retrieval uses the last one.
* a **teacher**, a larger real-valued identity network (:func:`train_teacher`),
* two distillation losses from the teacher to every head:
  :class:`SimilarityDistillLoss` (relational: the batch's cosine-similarity
  matrix) and :class:`SoftTargetLoss` (Hinton's soft targets),
* :class:`MultiHeadLoss` / :class:`DistillationLoss`, their weighted sum in
  the :class:`~dfh_lib.losses.HashLoss` contract,
* a declarative :class:`Recipe` of :class:`Stage` s (teacher → student →
  fine-tune with quantization and GAN-augmented data) run by
  :func:`run_recipe`, train-or-load stage by stage, and :func:`ablation`.

**How multi-head training goes through the one loop.** :func:`dfh_lib.train.fit`
calls ``u = model(x)`` and ``loss(u, labels[, index=...])``, and evaluates
with ``model.eval()``. :class:`MultiHeadHashNet` follows torchvision's
GoogLeNet/Inception convention (auxiliary outputs in training mode only): in
training mode ``forward`` returns every head's codes side by side, (N, H·K),
which :class:`MultiHeadLoss` splits again; in eval mode it returns the final
head's (N, K) codes, so ``encode``/``binary_codes``/``evaluate`` and the
loop's model selection see an ordinary hash network. Nothing in ``fit`` is
changed or duplicated.

**Teacher outputs are precomputed**: once per stage, the frozen teacher
(eval mode, ``torch.no_grad``) embeds every training image;
:class:`DistillationLoss` sets ``needs_index = True`` so the loop passes each
batch's training-set indices, and looks the targets up. That costs one
teacher pass instead of one per epoch (the teacher is the larger network).
The targets are of the un-augmented images: with ``TrainConfig.augment``
(flip/crop, identity-preserving) the student sees a slightly different view.

Taught in Chapter 6 (multi-layer distillation) and Chapter 7 (reproduction).
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import train as _train
from .experiments import ExperimentResult, Variant, run_methods
from .losses import LOSSES, METHOD_DEFAULTS, HashLoss, SoftmaxLoss, _check_inputs, build_loss
from .metrics import binarize, evaluate_retrieval
from .models import HashHead, HashNetwork, build_model
from .profiles import get_profile
from .runtime import seed_everything

__all__ = ["FINAL", "TEACHER_NETWORK", "ABLATION", "MultiHeadHashNet", "build_multihead",
           "encode_heads", "copy_weights", "SimilarityDistillLoss", "SoftTargetLoss",
           "MultiHeadLoss", "DistillationLoss", "Teacher", "train_teacher", "load_teacher",
           "Distill", "Stage", "Recipe", "dfh_gans_recipe", "ablation_recipe", "RecipeResult",
           "run_recipe", "ablation", "head_maps", "similarity_matrices", "REPRODUCE_PARTS",
           "reproduce", "gan_augment_fn", "main_reproduce"]

FINAL = "final"  # the name of the backbone's own hash layer, the retrieval head
#: teacher network, one size up from the student's
TEACHER_NETWORK = {"ddh": "small_resnet", "small_resnet": "resnet18", "resnet18": "resnet50",
                   "resnet50": "resnet50"}
STAGE_FILE = "stage.json"


# ----------------------------------------------------------------------------
# the multi-head network
# ----------------------------------------------------------------------------

class MultiHeadHashNet(nn.Module):
    """A hash network with K-bit heads at several depths.

    Each auxiliary head maps a feature map (N, C, H, W) of the backbone by
    global average pooling -> :class:`~dfh_lib.models.HashHead` (Linear ->
    BN -> the backbone's activation) to (N, K); a vector feature (N, D), e.g.
    ``"embedding"``, skips the pooling. ``"final"`` is the backbone's own hash
    layer (its ``"u"``) and the retrieval head.

    ``forward(x)``: eval mode -> the final head's codes (N, K), what
    :func:`~dfh_lib.train.encode` uses; training mode -> all heads side by
    side (N, H·K) in ``head_names`` order, for :class:`MultiHeadLoss`
    (torchvision's GoogLeNet likewise returns auxiliary outputs only when
    training). ``forward_heads(x)`` -> ``{name: (N, K)}`` in either mode.

    Args:
        backbone: a :class:`~dfh_lib.models.HashNetwork` (``bits``, ``features``).
        heads: depth names from ``backbone.feature_names`` (not ``"u"``) plus
            ``"final"``, which is required; kept in depth order.
    """

    def __init__(self, backbone: HashNetwork, heads: Sequence[str] = ("block2", "block3", FINAL)):
        super().__init__()
        if not isinstance(backbone, HashNetwork):
            raise ValueError(f"backbone must be a dfh_lib.models HashNetwork; got "
                             f"{type(backbone).__name__} (use build_model(...))")
        heads = (heads,) if isinstance(heads, str) else tuple(heads)
        depths = tuple(n for n in backbone.feature_names if n != "u")
        unknown = [h for h in heads if h not in (*depths, FINAL)]
        if unknown or FINAL not in heads or len(set(heads)) != len(heads):
            raise ValueError(f"heads must be distinct names from {(*depths, FINAL)} including "
                             f"{FINAL!r} (the retrieval head); got {heads!r}")
        self.backbone = backbone
        self.bits, self.image_size = backbone.bits, backbone.image_size
        self.activation = backbone.activation
        self.head_names = tuple(n for n in depths if n in heads) + (FINAL,)
        with torch.no_grad():  # the feature sizes, from one probe image
            was = backbone.training
            probe = torch.zeros(1, 3, *backbone.image_size,
                                device=next(backbone.parameters()).device)
            shapes = {k: v.shape[1:] for k, v in backbone.eval().features(
                probe, self.head_names[:-1] or "u").items()}
            backbone.train(was)
        self.heads = nn.ModuleDict({name: _aux_head(shapes[name], self.bits, self.activation)
                                    for name in self.head_names[:-1]})

    def forward_heads(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """``x`` (N, 3, H, W) in [0, 1] -> ``{head: (N, K)}`` in depth order."""
        feats = self.backbone.features(x, (*self.head_names[:-1], "u"))
        out = {name: self.heads[name](feats[name]) for name in self.head_names[:-1]}
        out[FINAL] = feats["u"]
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return self.backbone(x)
        return torch.cat(list(self.forward_heads(x).values()), dim=1)

    def features(self, x, depths=None):
        """The backbone's named features (see :class:`~dfh_lib.models.HashNetwork`)."""
        return self.backbone.features(x, depths)

    def extra_repr(self) -> str:
        return f"bits={self.bits}, heads={self.head_names}"


def _aux_head(shape, bits: int, activation) -> nn.Module:
    if len(shape) == 1:  # a vector feature
        return HashHead(shape[0], bits, activation)
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         HashHead(shape[0], bits, activation))


def build_multihead(network: str, bits: int, heads: Sequence[str] = ("block2", "block3", FINAL),
                    image_size=(32, 32), activation: str | None = "tanh") -> MultiHeadHashNet:
    """:func:`~dfh_lib.models.build_model` + heads at ``heads``.

    >>> build_multihead("ddh", 12).eval()(torch.rand(2, 3, 32, 32)).shape
    torch.Size([2, 12])
    """
    backbone = build_model(network, bits, image_size=image_size, activation=activation)
    return MultiHeadHashNet(backbone, heads)


@torch.no_grad()
def encode_heads(model: MultiHeadHashNet, data, batch_size: int = 512) -> dict[str, torch.Tensor]:
    """Every head's relaxed codes of ``data`` (a FaceDataset or (N, 3, H, W)
    tensor): ``{head: float (N, K)}`` on the CPU, in eval mode (restored after)."""
    images = _train._image_tensor(data, model.image_size)
    device = next(model.parameters()).device
    was = model.training
    model.eval()
    try:
        parts = [model.forward_heads(_train._as_input(images[i:i + batch_size], device))
                 for i in range(0, len(images), batch_size)]
    finally:
        model.train(was)
    return {h: torch.cat([p[h].float().cpu() for p in parts]) for h in model.head_names}


def copy_weights(target: nn.Module, source: nn.Module) -> list[str]:
    """Copy every parameter/buffer of ``source`` whose name and shape exist in
    ``target`` (e.g. a student's backbone and heads into a fine-tuning model
    whose activation differs); returns the copied names. Raises ValueError
    when nothing matches (different networks or bits)."""
    mine = target.state_dict()
    shared = {k: v for k, v in source.state_dict().items()
              if k in mine and mine[k].shape == v.shape}
    if not shared:
        raise ValueError(f"no weights of {type(source).__name__} fit {type(target).__name__}: "
                         f"init_from needs the same network and bits")
    target.load_state_dict(shared, strict=False)
    return sorted(shared)


# ----------------------------------------------------------------------------
# distillation losses
# ----------------------------------------------------------------------------

class SimilarityDistillLoss(nn.Module):
    """Relational distillation: the student's cosine similarities of a batch
    match the teacher's.

        C^s_ij = cos(u_i, u_j),   C^t_ij = cos(t_i, t_j)
        L = mean_{i≠j} (C^s_ij − C^t_ij)²

    Similarity-Preserving KD (Tung & Mori, ICCV 2019) matches batch Gram
    matrices, L = ‖norm(SSᵀ) − norm(TTᵀ)‖²_F / N² with rows L2-normalised
    *after* the product; RKD (Park et al., CVPR 2019) matches normalised
    pairwise distances. Here the vectors are normalised *before* the product
    (a cosine matrix), because that is what Hamming retrieval ranks by: for
    ±1 codes cos(b_i, b_j) = 1 − 2 d_H(b_i, b_j) / K, so matching cosines
    teaches the codes the teacher's Hamming distances directly, whatever K
    and the teacher's dimension D. The diagonal (always 1) is left out.

    Shapes: ``u`` (N, K), ``teacher`` (N, D) -> scalar (0 when N < 2).
    """

    def forward(self, u: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        if u.ndim != 2 or teacher.ndim != 2 or len(u) != len(teacher):
            raise ValueError(f"u (N, K) and teacher (N, D) need the same N; got "
                             f"{tuple(u.shape)} and {tuple(teacher.shape)}")
        s, t = F.normalize(u, dim=1), F.normalize(teacher, dim=1)
        off = ~torch.eye(len(u), dtype=torch.bool, device=u.device)
        return ((s @ s.T - t @ t.T)[off]).pow(2).sum() / max(len(u) * (len(u) - 1), 1)


class SoftTargetLoss(nn.Module):
    """Logit distillation: a classifier on the student's codes learns the
    teacher's softened identity posterior.

        p^t = softmax(z^t / T),   p^s = softmax((W u + c) / T)
        L = T² · mean_i KL(p^t_i ‖ p^s_i)

    Hinton, Vinyals, Dean, "Distilling the Knowledge in a Neural Network",
    2015 (T² keeps the gradient scale independent of T). ``W, c`` (a
    ``Linear(K, C)``) belong to the loss; ``z^t`` are the teacher's logits
    over the same C training identities.

    Why soft targets rather than FitNets' feature regression (Romero et al.,
    ICLR 2015): a K-bit code cannot linearly reproduce a 128-d real
    embedding (that is the information loss distillation is meant to soften),
    and regressing it pulls u away from ±1; the soft targets ask only which
    *identities* a face resembles — C numbers the code must separate anyway —
    and the relational term already carries the embedding's geometry.

    Shapes: ``u`` (N, K), ``teacher_logits`` (N, C) -> scalar.
    """

    def __init__(self, bits: int, num_classes: int, temperature: float = 4.0):
        super().__init__()
        if not isinstance(temperature, (int, float)) or not temperature > 0:
            raise ValueError(f"temperature must be a number > 0; got {temperature!r}")
        self.temperature = float(temperature)
        self.classifier = nn.Linear(bits, num_classes)

    def forward(self, u: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
        logits = self.classifier(u)
        if teacher_logits.shape != logits.shape:
            raise ValueError(f"teacher_logits must be (N, C) = {tuple(logits.shape)}; got "
                             f"{tuple(teacher_logits.shape)} — teacher and student need the "
                             f"same training identities")
        t = self.temperature
        log_s = F.log_softmax(logits / t, dim=1)
        log_t = F.log_softmax(teacher_logits / t, dim=1)
        return t * t * F.kl_div(log_s, log_t, log_target=True, reduction="batchmean")

    def extra_repr(self) -> str:
        return f"temperature={self.temperature:g}"


# ----------------------------------------------------------------------------
# multi-head losses
# ----------------------------------------------------------------------------

class MultiHeadLoss(HashLoss):
    """Σ_h w_h · base_loss_h(u_h): one hash loss per head, weighted.

    ``u`` is :class:`MultiHeadHashNet`'s training output (N, H·K), split into
    the H heads; each head has its own base loss (built by
    :func:`~dfh_lib.losses.build_loss`: its own DFH proxies, classifier...).
    Terms are named ``"<head>/<term>"`` (``"block3/metric"``, ``"final/sign"``)
    and already weighted, so ``loss == sum(terms)``.

    Args:
        base: a registered loss name ("dfh", "dfhq", "dpsh", ...).
        heads: the head names, in the model's ``head_names`` order.
        aux_weight: w_h of every head but ``"final"`` (weight 1).
        base_kwargs: keyword arguments of the base loss.
    """

    def __init__(self, base: str, bits: int, num_classes: int, heads: Sequence[str] = (FINAL,),
                 aux_weight: float = 0.5, base_kwargs: dict | None = None):
        super().__init__(num_classes=num_classes)
        self.bits_per_head = bits
        self.head_names = tuple(heads)
        if FINAL not in self.head_names:
            raise ValueError(f"heads must include {FINAL!r}; got {self.head_names!r}")
        if not isinstance(aux_weight, (int, float)) or not aux_weight >= 0:
            raise ValueError(f"aux_weight must be a number >= 0; got {aux_weight!r}")
        self.head_weights = {h: 1.0 if h == FINAL else float(aux_weight) for h in self.head_names}
        self.base = nn.ModuleDict({h: build_loss(base, bits, num_classes, **(base_kwargs or {}))
                                   for h in self.head_names})

    def split(self, u: torch.Tensor) -> dict[str, torch.Tensor]:
        """(N, H·K) -> ``{head: (N, K)}``."""
        width = len(self.head_names) * self.bits_per_head
        if u.shape[1] != width:
            raise ValueError(f"u must be (N, heads·bits) = (N, {width}) for heads "
                             f"{self.head_names} at {self.bits_per_head} bits; got "
                             f"{tuple(u.shape)} — is the model a MultiHeadHashNet in train mode "
                             f"with the same heads?")
        return dict(zip(self.head_names, u.split(self.bits_per_head, dim=1)))

    def compute(self, u, labels, **kwargs):
        terms = {}
        for head, codes in self.split(u).items():
            if self.head_weights[head]:
                base = self.base[head]
                _check_inputs(codes, labels, base.bits, base.num_classes)
                # compute, not forward: forward returns the terms detached
                for name, value in base.compute(codes, labels).items():
                    terms[f"{head}/{name}"] = self.head_weights[head] * value
        return terms

    def on_epoch_start(self, epoch: int, num_epochs: int) -> None:
        for loss in self.base.values():
            loss.on_epoch_start(epoch, num_epochs)

    def extra_repr(self) -> str:
        return f"bits={self.bits_per_head}, heads={self.head_names}, weights={self.head_weights}"


class DistillationLoss(MultiHeadLoss):
    """Multi-head hash loss + distillation from a frozen teacher:

        L = Σ_h w_h · base(u_h) + Σ_{h ∈ kd_heads} [w_sim · SimilarityDistill(u_h, t)
                                                    + w_soft · SoftTarget_h(u_h, z^t)]

    ``t`` (N_train, D) and ``z^t`` (N_train, C) are the teacher's embeddings
    and logits of every training image, precomputed (:meth:`Teacher.targets`)
    and kept as non-persistent buffers (moved with ``.to``, not written into
    checkpoints); ``needs_index = True`` makes the loop pass each batch's
    training indices to look them up. KD terms are named
    ``"<head>/kd_similarity"`` and ``"<head>/kd_soft"``.

    Args:
        teacher_embeddings / teacher_logits: (N_train, D) / (N_train, C).
        similarity_weight / soft_weight: w_sim, w_soft (0 drops a term).
        temperature: T of :class:`SoftTargetLoss`.
        kd_heads: heads distilled (None = all).
    """

    needs_index = True

    def __init__(self, base: str, bits: int, num_classes: int, heads: Sequence[str],
                 teacher_embeddings: torch.Tensor, teacher_logits: torch.Tensor,
                 aux_weight: float = 0.5, similarity_weight: float = 1.0,
                 soft_weight: float = 1.0, temperature: float = 4.0,
                 kd_heads: Sequence[str] | None = None, base_kwargs: dict | None = None):
        super().__init__(base, bits, num_classes, heads, aux_weight, base_kwargs)
        if teacher_embeddings.ndim != 2 or teacher_logits.shape != (len(teacher_embeddings),
                                                                    num_classes):
            raise ValueError(f"teacher_embeddings must be (N, D) and teacher_logits (N, "
                             f"{num_classes}); got {tuple(teacher_embeddings.shape)} and "
                             f"{tuple(teacher_logits.shape)}")
        self.kd_heads = self.head_names if kd_heads is None else tuple(kd_heads)
        if not set(self.kd_heads) <= set(self.head_names):
            raise ValueError(f"kd_heads must be among {self.head_names}; got {self.kd_heads!r}")
        self.similarity_weight = float(similarity_weight)
        self.soft_weight = float(soft_weight)
        self.similarity = SimilarityDistillLoss()
        self.soft = nn.ModuleDict({h: SoftTargetLoss(bits, num_classes, temperature)
                                   for h in self.kd_heads})
        self.register_buffer("teacher_embeddings", teacher_embeddings.detach().float(),
                             persistent=False)
        self.register_buffer("teacher_logits", teacher_logits.detach().float(), persistent=False)

    def compute(self, u, labels, index=None):
        if index is None:
            raise ValueError("DistillationLoss needs index= (N,) training-set indices to look "
                             "up the teacher's outputs; train it with dfh_lib.train.fit")
        terms = super().compute(u, labels)
        heads = self.split(u)
        t, z = self.teacher_embeddings[index], self.teacher_logits[index]
        for h in self.kd_heads:
            if self.similarity_weight:
                terms[f"{h}/kd_similarity"] = self.similarity_weight * self.similarity(heads[h], t)
            if self.soft_weight:
                terms[f"{h}/kd_soft"] = self.soft_weight * self.soft[h](heads[h], z)
        return terms

    def extra_repr(self) -> str:  # fit records the repr: a run resumes only with these
        return (f"{super().extra_repr()}, similarity_weight={self.similarity_weight:g}, "
                f"soft_weight={self.soft_weight:g}, kd_heads={self.kd_heads}")


# ----------------------------------------------------------------------------
# the teacher
# ----------------------------------------------------------------------------

TEACHER_FILE = "teacher.json"


@dataclass
class Teacher:
    """A trained, frozen identity network.

    ``model``: images -> real embeddings (N, D) (``activation=None``);
    ``loss``: its :class:`~dfh_lib.losses.SoftmaxLoss`, whose ``classifier``
    gives the identity logits; ``history``: the training run.
    """

    model: nn.Module
    loss: SoftmaxLoss
    history: _train.History

    @torch.no_grad()
    def targets(self, data, batch_size: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
        """``(embeddings (N, D), logits (N, C))`` of ``data`` on the CPU (eval mode)."""
        embeddings = _train.encode(self.model, data, batch_size)
        classifier = self.loss.classifier
        logits = classifier(embeddings.to(classifier.weight.device)).cpu()
        return embeddings, logits


def train_teacher(splits, profile=None, run_dir=None, network: str | None = None,
                  dim: int = 128, progress: bool = True, **overrides) -> Teacher:
    """Train (or load, from a finished ``run_dir``) the teacher through
    :func:`dfh_lib.train.fit`: ``network`` (default one size up from the
    profile's, :data:`TEACHER_NETWORK`: ``small_resnet`` for ``ddh``) with a
    ``dim``-d real embedding and the ``"softmax"`` identity loss, the
    profile's loop settings (``overrides`` change any TrainConfig field).
    The returned model is frozen (eval mode, no gradients)."""
    profile = get_profile(profile)
    network = network or TEACHER_NETWORK.get(profile.network, profile.network)
    config = _train.TrainConfig.from_profile(profile, **{
        "method": "softmax", "bits": dim, "network": network, **overrides})
    return _fit_teacher(config, splits, run_dir, progress)


def _fit_teacher(config, splits, run_dir, progress) -> Teacher:
    seed_everything(config.seed, config.deterministic)
    model = build_model(config.network, config.bits, image_size=config.image_size,
                        activation=None)
    loss = SoftmaxLoss(config.bits, splits.train.num_identities)
    history = _train.fit(model, loss, splits, config, run_dir=run_dir, progress=progress)
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
    if not (run_dir / _train.CHECKPOINT).exists() or not spec.exists():
        raise ValueError(f"no teacher checkpoint in {run_dir} (need {_train.CHECKPOINT} and "
                         f"{TEACHER_FILE}); train one with train_teacher(splits, profile, "
                         f"run_dir={str(run_dir)!r}) or add Stage('teacher', kind='teacher') "
                         f"to the recipe")
    config = _train.TrainConfig(**json.loads(spec.read_text())["config"])
    return _fit_teacher(config, splits, run_dir, progress)


# ----------------------------------------------------------------------------
# the recipe
# ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Distill:
    """Distillation settings of a stage: weights of the relational and the
    soft-target terms, the temperature, the heads distilled (None = all)."""

    similarity: float = 1.0
    soft: float = 1.0
    temperature: float = 4.0
    heads: tuple[str, ...] | None = None

    def __post_init__(self):
        for name in ("similarity", "soft"):
            if not isinstance(getattr(self, name), (int, float)) or getattr(self, name) < 0:
                raise ValueError(f"Distill.{name} must be a number >= 0; got "
                                 f"{getattr(self, name)!r}")
        if self.heads is not None:
            object.__setattr__(self, "heads", tuple(self.heads))


_KINDS = ("hash", "teacher")
_AUGMENTS = (None, "gan")


@dataclass(frozen=True)
class Stage:
    """One training stage of a :class:`Recipe`.

    Attributes:
        name: the stage's name and folder (``runs_dir/<name>``).
        kind: ``"hash"`` (a :class:`MultiHeadHashNet` with a hash loss) or
            ``"teacher"`` (:func:`train_teacher`).
        method: the base hash loss, a registered name ("dfh", "dfhq", ...);
            the network's activation follows ``METHOD_DEFAULTS[method]``.
        heads / aux_weight: the heads (``"final"`` included) and the weight
            of the auxiliary ones (see :class:`MultiHeadLoss`).
        distill: :class:`Distill` settings (or a dict of them), None = no KD.
        teacher: the teacher stage's name (an earlier stage, else a finished
            teacher run in ``runs_dir/<teacher>``).
        loss_kwargs: keyword arguments of the base loss.
        init_from: an earlier hash stage whose weights start this one.
        augment: ``"gan"`` trains on GAN-augmented data (``augment_fn``).
        network: hash stages: None = the method's or the profile's; teacher:
            None = :data:`TEACHER_NETWORK`. ``dim``: the teacher's embedding.
        lr_scale / epochs_scale: relative to the profile's lr and epochs.
        overrides: TrainConfig fields set outright (e.g. ``{"seed": 1}``).
        label: the stage's name in results tables (default ``name``).
    """

    name: str
    kind: str = "hash"
    method: str = "dfh"
    heads: tuple[str, ...] = (FINAL,)
    aux_weight: float = 0.5
    distill: Distill | None = None
    teacher: str = "teacher"
    loss_kwargs: dict = field(default_factory=dict)
    init_from: str | None = None
    augment: str | None = None
    network: str | None = None
    dim: int = 128
    lr_scale: float = 1.0
    epochs_scale: float = 1.0
    overrides: dict = field(default_factory=dict)
    label: str | None = None

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name or "/" in self.name \
                or self.name.startswith("."):
            raise ValueError(f"Stage name must be a non-empty folder name; got {self.name!r}")
        if self.kind not in _KINDS:
            raise ValueError(f"stage {self.name!r}: kind must be one of {_KINDS}; "
                             f"got {self.kind!r}")
        if self.augment not in _AUGMENTS:
            raise ValueError(f"stage {self.name!r}: augment must be one of {_AUGMENTS}; "
                             f"got {self.augment!r}")
        heads = (self.heads,) if isinstance(self.heads, str) else tuple(self.heads)
        if FINAL not in heads:
            raise ValueError(f"stage {self.name!r}: heads must include {FINAL!r}; got {heads!r}")
        object.__setattr__(self, "heads", heads)
        if isinstance(self.distill, dict):
            object.__setattr__(self, "distill", Distill(**self.distill))
        if not (self.lr_scale > 0 and self.epochs_scale > 0):
            raise ValueError(f"stage {self.name!r}: lr_scale and epochs_scale must be > 0")

    @property
    def title(self) -> str:
        return self.label or self.name


@dataclass(frozen=True)
class Recipe:
    """Stages run in order by :func:`run_recipe` (a teacher once, every hash
    stage at every code length). Checked when built: unique names, known
    kinds and methods, ``init_from`` naming an earlier hash stage."""

    stages: tuple[Stage, ...]
    name: str = "DFH-GANs"

    def __post_init__(self):
        stages = tuple(self.stages)
        object.__setattr__(self, "stages", stages)
        if not stages or not all(isinstance(s, Stage) for s in stages):
            raise ValueError("a Recipe needs one or more Stage objects")
        seen: dict[str, Stage] = {}
        for stage in stages:
            if stage.name in seen:
                raise ValueError(f"two stages are named {stage.name!r}; names must be unique")
            if stage.kind == "hash":
                _check_method(stage.method, stage.name)
            if stage.init_from is not None and (stage.init_from not in seen
                                                or seen[stage.init_from].kind != "hash"):
                raise ValueError(f"stage {stage.name!r}: init_from={stage.init_from!r} is not an "
                                 f"earlier hash stage; earlier: {tuple(seen)}")
            if stage.distill is not None and stage.teacher in seen \
                    and seen[stage.teacher].kind != "teacher":
                raise ValueError(f"stage {stage.name!r}: teacher={stage.teacher!r} is not a "
                                 f"teacher stage")
            seen[stage.name] = stage

    def stage(self, name: str) -> Stage:
        """The stage called ``name`` (ValueError listing the names otherwise)."""
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise ValueError(f"unknown stage {name!r}; this recipe has "
                         f"{tuple(s.name for s in self.stages)}")


def _has_method(name: str) -> bool:
    if name not in LOSSES:
        try:  # later chapters register their losses on import
            from . import quantization  # noqa: F401
        except ImportError:
            pass
    return name in LOSSES


def _check_method(method: str, stage: str) -> None:
    if not _has_method(method):
        raise ValueError(f"stage {stage!r}: unknown method {method!r}; registered losses: "
                         f"{tuple(LOSSES)}")


def dfh_gans_recipe(heads: Sequence[str] = ("block2", "block3", FINAL),
                    finetune_method: str | None = None, gan: bool = True,
                    distill: Distill | None = None) -> Recipe:
    """The DFH-GANs recipe, three stages:

    1. ``teacher``: a larger identity network (:func:`train_teacher`);
    2. ``student``: DFH on every head + distillation from the teacher;
    3. ``finetune``: from the student's weights, the quantization loss
       (``"dfhq"`` with quadratic quantization where registered, else plain
       ``"dfh"``, with a note) on GAN-augmented data (``gan=True``; else
       labelled "DFH-GANs (no GAN data)"), at a tenth of the learning rate
       for half the epochs.
    """
    method = finetune_method or ("dfhq" if _has_method("dfhq") else "dfh")
    if finetune_method is None and method == "dfh":
        print("note: 'dfhq' (dfh_lib.quantization) is not available: the fine-tuning stage "
              "uses 'dfh'")
    kwargs = {"quantization": "quadratic"} if method == "dfhq" else {}
    return Recipe((
        Stage("teacher", kind="teacher"),
        Stage("student", heads=heads, distill=distill or Distill(),
              label="DFH multi-layer + KD"),
        Stage("finetune", method=method, loss_kwargs=kwargs, heads=heads, init_from="student",
              augment="gan" if gan else None, lr_scale=0.1, epochs_scale=0.5,
              label="DFH-GANs" if gan else "DFH-GANs (no GAN data)"),
    ))


@dataclass
class RecipeResult(ExperimentResult):
    """:class:`~dfh_lib.experiments.ExperimentResult` (rows keyed by the
    stage's label) plus ``models[(stage, bits)]`` and ``teachers[name]``."""

    models: dict = field(default_factory=dict)
    teachers: dict = field(default_factory=dict)


def _jsonable(value):
    def name(obj):
        return getattr(obj, "__qualname__", type(obj).__qualname__)

    return json.loads(json.dumps(value, default=name, sort_keys=True))


def _check_spec(run_dir: Path, spec: dict) -> None:
    """Write ``stage.json``, or refuse a folder trained by another spec."""
    path = run_dir / STAGE_FILE
    spec = _jsonable(spec)
    if path.exists():
        old = json.loads(path.read_text())
        if old != spec:
            changed = sorted(k for k in set(old) | set(spec) if old.get(k) != spec.get(k))
            raise ValueError(f"{run_dir} was trained by another stage spec (differs in "
                             f"{changed}); use another runs_dir or delete the folder")
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(spec, indent=1, sort_keys=True))


@dataclass
class _Context:
    """The state of one :func:`run_recipe` call."""

    recipe: Recipe
    splits: object
    profile: object
    runs_dir: Path | None
    augment_fn: Callable | None
    progress: bool
    teachers: dict = field(default_factory=dict)
    trained: dict = field(default_factory=dict)
    _augmented: object = None

    def augmented(self, stage: Stage) -> bool:
        return stage.augment == "gan" and self.augment_fn is not None

    def splits_for(self, stage: Stage):
        if not self.augmented(stage):
            return self.splits
        if self._augmented is None:  # once per run, shared by every code length
            train = self.augment_fn(self.splits.train)
            if not isinstance(train, type(self.splits.train)):
                raise ValueError(f"augment_fn must return a FaceDataset; got "
                                 f"{type(train).__name__}")
            self._augmented = replace(self.splits, train=train)
        return self._augmented

    def run_dir(self, stage: Stage, bits: int | None) -> Path | None:
        if self.runs_dir is None:
            return None
        folder = self.runs_dir / (stage.name + ("-gan" if self.augmented(stage) else ""))
        return folder if bits is None else folder / f"{bits}bits"

    def spec(self, stage: Stage, bits: int | None) -> dict:
        """What defines a stage's weights: its fields (not label/augment),
        the code length, whether GAN data was used, and its upstream stages."""
        fields_ = {k: v for k, v in asdict(stage).items() if k not in ("label", "augment")}
        upstream = [stage.init_from] + ([stage.teacher] if stage.distill else [])
        names = {s.name for s in self.recipe.stages}
        return {"stage": fields_, "bits": bits, "gan_augmented": self.augmented(stage),
                "upstream": {u: self.spec(self.recipe.stage(u), None if self.recipe.stage(
                    u).kind == "teacher" else bits) for u in upstream if u in names}}


def _stage_config(stage: Stage, bits: int, network: str, profile) -> _train.TrainConfig:
    base = {"method": "softmax" if stage.kind == "teacher" else stage.method, "bits": bits,
            "network": network, "lr": profile.lr * stage.lr_scale,
            "epochs": max(1, round(profile.epochs * stage.epochs_scale))}
    return _train.TrainConfig.from_profile(profile, **{**base, **stage.overrides})


def _teacher_for(stage: Stage, ctx: _Context) -> Teacher:
    """Train-or-load a teacher stage, or load the teacher a stage distills from."""
    name = stage.name if stage.kind == "teacher" else stage.teacher
    if name in ctx.teachers:
        return ctx.teachers[name]
    names = {s.name for s in ctx.recipe.stages}
    if name in names:
        spec = ctx.recipe.stage(name)
        run_dir = ctx.run_dir(spec, None)
        if run_dir is not None:
            _check_spec(run_dir, ctx.spec(spec, None))
        network = spec.network or TEACHER_NETWORK.get(ctx.profile.network, ctx.profile.network)
        config = _stage_config(spec, spec.dim, network, ctx.profile)
        teacher = _fit_teacher(config, ctx.splits, run_dir, ctx.progress)
    elif ctx.runs_dir is None:
        raise ValueError(f"stage {stage.name!r} distills from teacher {name!r}, which is not a "
                         f"stage of this recipe, and no runs_dir was given to load it from; "
                         f"add Stage({name!r}, kind='teacher') before {stage.name!r}")
    else:
        teacher = load_teacher(ctx.runs_dir / name, ctx.splits, ctx.progress)
    ctx.teachers[name] = teacher
    return teacher


def _stage_loss(stage: Stage, bits: int, splits, heads, teacher: Teacher | None) -> HashLoss:
    num_classes = splits.train.num_identities
    common = dict(aux_weight=stage.aux_weight, base_kwargs=stage.loss_kwargs)
    if stage.distill is None:
        return MultiHeadLoss(stage.method, bits, num_classes, heads, **common)
    embeddings, logits = teacher.targets(splits.train)
    d = stage.distill
    return DistillationLoss(stage.method, bits, num_classes, heads, embeddings, logits,
                            similarity_weight=d.similarity, soft_weight=d.soft,
                            temperature=d.temperature, kd_heads=d.heads, **common)


def _run_hash_stage(stage: Stage, bits: int, ctx: _Context):
    """Build, initialise and fit one hash stage; ``(model, history)``."""
    splits = ctx.splits_for(stage)
    model_kwargs = dict(METHOD_DEFAULTS.get(stage.method, {}))
    network = stage.network or model_kwargs.pop("network", None) or ctx.profile.network
    config = _stage_config(stage, bits, network, ctx.profile)
    run_dir = ctx.run_dir(stage, bits)
    if run_dir is not None:
        _check_spec(run_dir, ctx.spec(stage, bits))
    teacher = _teacher_for(stage, ctx) if stage.distill is not None else None
    seed_everything(config.seed, config.deterministic)
    model = build_multihead(network, bits, stage.heads, config.image_size,
                            model_kwargs.get("activation", "tanh"))
    if stage.init_from is not None:
        copy_weights(model, ctx.trained[(stage.init_from, bits)])
    loss = _stage_loss(stage, bits, splits, model.head_names, teacher)
    history = _train.fit(model, loss, splits, config, run_dir=run_dir, progress=ctx.progress)
    return model, history


def run_recipe(recipe: Recipe, splits, bits=(12, 24, 36, 48), profile=None, runs_dir=None,
               augment_fn: Callable | None = None, progress: bool = True) -> RecipeResult:
    """Run ``recipe`` at every code length; a row per hash stage and length.

    Train-or-load: each stage trains through :func:`dfh_lib.train.fit` in
    ``runs_dir/<stage>/<bits>bits`` (the teacher in ``runs_dir/teacher``,
    once for all lengths), so a finished stage is loaded, not retrained, and
    an interrupted one resumes. ``stage.json`` records what defines the
    stage (its fields, upstream stages); a folder of another spec is
    refused. GAN stages (``augment="gan"``) train on
    ``augment_fn(splits.train)`` (computed once; folder ``<stage>-gan``);
    without ``augment_fn`` they train on the plain data and say so.
    Rows (query vs database, as :func:`~dfh_lib.experiments.run_methods`)
    are named by the stage's label, with ``stage``, ``gan_augmented``,
    ``best_epoch`` and ``seconds``.
    """
    if not isinstance(recipe, Recipe):
        raise ValueError(f"recipe must be a Recipe; got {type(recipe).__name__}")
    bits = (bits,) if isinstance(bits, int) else tuple(bits)
    profile = get_profile(profile)
    ctx = _Context(recipe, splits, profile, None if runs_dir is None else Path(runs_dir),
                   augment_fn, progress)
    for stage in recipe.stages:
        if stage.augment == "gan" and augment_fn is None:
            print(f"note: stage {stage.name!r} asks for GAN augmentation but no augment_fn "
                  f"was given: it trains on the plain training set")
    result = RecipeResult()
    for k in bits:
        for stage in recipe.stages:
            start = time.perf_counter()
            if stage.kind == "teacher":
                result.teachers[stage.name] = _teacher_for(stage, ctx)
                continue
            model, history = _run_hash_stage(stage, k, ctx)
            ctx.trained[(stage.name, k)] = model
            result.add(stage.title, k, _train.binary_codes(model, splits.query),
                       _train.binary_codes(model, splits.database), splits, stage=stage.name,
                       gan_augmented=ctx.augmented(stage), best_epoch=history.best_epoch,
                       seconds=round(time.perf_counter() - start, 1))
            result.histories[(stage.title, k)] = history
            result.models[(stage.name, k)] = model
    result.teachers.update(ctx.teachers)
    return result


# ----------------------------------------------------------------------------
# analysis helpers for the chapter
# ----------------------------------------------------------------------------

ABLATION = ("DFH (single head)", "+ multi-layer heads", "+ distillation", "+ multi-stage")


def ablation_recipe(heads: Sequence[str] = ("block2", "block3", FINAL),
                    finetune_method: str | None = None) -> Recipe:
    """Teacher, multi-layer heads without KD, + distillation, + multi-stage
    (fine-tuning without GAN data): the stages of :func:`dfh_gans_recipe`
    (same folders) plus ``heads``, labelled as in :data:`ABLATION`."""
    teacher, student, finetune = dfh_gans_recipe(heads, finetune_method, gan=False).stages
    return Recipe((teacher, Stage("heads", heads=heads, label=ABLATION[1]),
                   replace(student, label=ABLATION[2]), replace(finetune, label=ABLATION[3])),
                  name="ablation")


def ablation(splits, bits=(12, 24, 36, 48), profile=None, runs_dir=None,
             heads: Sequence[str] = ("block2", "block3", FINAL), progress: bool = True,
             reuse: dict | None = None) -> RecipeResult:
    """Single head (plain ``"dfh"`` via :func:`~dfh_lib.experiments.run_methods`)
    → multi-layer heads → + distillation → + multi-stage, at every length;
    rows ``(method, bits, mAP, P@H<=2, ...)`` in :data:`ABLATION` order.

    ``reuse``: ``{"dfh": folder, "recipe": folder}`` trains-or-loads that part
    in another folder (e.g. the single-head runs of an earlier chapter,
    ``<folder>/dfh-<bits>``) instead of ``runs_dir``.
    """
    dirs = _part_dirs(reuse, ("dfh", "recipe"), runs_dir)
    single = run_methods(splits, ("dfh",), bits, profile, dirs["dfh"], progress)
    result = run_recipe(ablation_recipe(heads), splits, bits, profile, dirs["recipe"],
                        progress=progress)
    for row in single.rows:
        row["method"] = ABLATION[0]
    result.codes.update({(ABLATION[0], k): v for (_, k), v in single.codes.items()})
    result.histories.update({(ABLATION[0], k): v for (_, k), v in single.histories.items()})
    result.rows = sorted(single.rows + result.rows,
                         key=lambda r: (ABLATION.index(r["method"]), r["bits"]))
    return result


def _part_dirs(reuse, parts: Sequence[str], runs_dir) -> dict:
    """``{part: folder}``: ``reuse[part]`` where given, else ``runs_dir``."""
    reuse = dict(reuse or {})
    unknown = sorted(set(reuse) - set(parts))
    if unknown:
        raise ValueError(f"reuse keys must be among {tuple(parts)}; got {unknown}")
    default = None if runs_dir is None else Path(runs_dir)
    return {part: default if reuse.get(part) is None else Path(reuse[part]) for part in parts}


def head_maps(model: MultiHeadHashNet, splits, metric: str = "mAP") -> dict[str, float]:
    """``{head: metric}`` of each head's own ±1 codes, query vs database —
    what every depth has learnt to hash."""
    query, database = encode_heads(model, splits.query), encode_heads(model, splits.database)
    return {h: evaluate_retrieval(binarize(query[h]), binarize(database[h]), splits.query.labels,
                                  splits.database.labels)[metric] for h in model.head_names}


def similarity_matrices(teacher, student: nn.Module, data, n: int = 64) -> dict[str, np.ndarray]:
    """Cosine-similarity matrices of ``n`` images of ``data`` (a FaceDataset,
    the first ``n`` in identity order, so identities form diagonal blocks):

    ``"teacher"`` (teacher embeddings), ``"student"`` (relaxed codes),
    ``"codes"`` (±1 codes: 1 − 2 d_H / K), each (n, n); ``"labels"`` (n,).
    ``teacher`` is a :class:`Teacher` or an embedding network.
    """
    order = np.argsort(data.labels, kind="stable")[:n]
    subset = data.subset(order)
    t = _train.encode(teacher.model if isinstance(teacher, Teacher) else teacher, subset)
    s = _train.encode(student, subset)
    b = binarize(s).float()

    def cosine(x):
        x = F.normalize(x, dim=1)
        return (x @ x.T).numpy()

    return {"teacher": cosine(t), "student": cosine(s), "codes": (b @ b.T / b.shape[1]).numpy(),
            "labels": subset.labels}


# ----------------------------------------------------------------------------
# the full reproduction (python -m dfh_lib reproduce)
# ----------------------------------------------------------------------------

def _relabel(result: ExperimentResult, old: str, new: str) -> ExperimentResult:
    """Rename method ``old`` to ``new`` in rows, codes and histories."""
    for row in result.rows:
        row["method"] = new if row["method"] == old else row["method"]
    for table in (result.codes, result.histories):
        for key in [k for k in table if k[0] == old]:
            table[(new, *key[1:])] = table.pop(key)
    return result


#: the parts of :func:`reproduce`'s table, each trained-or-loaded in one folder
REPRODUCE_PARTS = ("baselines", "dfh", "dfhq", "recipe")


def reproduce(splits, bits=(12, 24, 36, 48), profile=None, runs_dir=None,
              methods: Sequence[str] | None = None, augment_fn: Callable | None = None,
              progress: bool = True, reuse: dict | None = None) -> RecipeResult:
    """The reproduction table, every part train-or-load, query vs database:

    * ``"baselines"``: the Chapter-2 baselines
      (:func:`~dfh_lib.experiments.baselines`: ``methods``, default all deep
      baselines, plus deep-feature LSH / PCA-ITQ);
    * ``"dfh"``: plain DFH, one head (row ``dfh``);
    * ``"dfhq"``: one head, DFH + quadratic quantization (row ``dfhq``,
      where :mod:`dfh_lib.quantization` is available; folders
      ``quadratic-<bits>``, those of
      :func:`~dfh_lib.quantization.compare_quantizers`' quadratic scheme);
    * ``"recipe"``: :func:`dfh_gans_recipe` without GAN data (rows
      ``DFH multi-layer + KD`` and ``DFH-GANs (no GAN data)``) and, with
      ``augment_fn``, its GAN-augmented fine-tuning (row ``DFH-GANs``; the
      teacher and student are loaded from the first run's folders — without
      a folder they are trained twice).

    Each part lives in ``runs_dir`` (folder layout of ``run_methods`` /
    :func:`run_recipe`) unless ``reuse`` maps the part's name to another
    folder, e.g. ``reuse={"baselines": "runs/ch2/cpu-lfw"}`` loads the
    baselines a chapter already trained instead of training them again.
    Returns a :class:`RecipeResult` (recipe models and teachers included).
    """
    from .experiments import DEEP_BASELINES, baselines

    dirs = _part_dirs(reuse, REPRODUCE_PARTS, runs_dir)
    methods = DEEP_BASELINES if methods is None else tuple(methods)
    result = RecipeResult()
    result.extend(baselines(splits, bits, profile, dirs["baselines"], methods, progress))
    result.extend(run_methods(splits, ("dfh",), bits, profile, dirs["dfh"], progress))
    if _has_method("dfhq"):  # folders quadratic-<bits>, as quantization.compare_quantizers
        qq = run_methods(splits, (Variant("quadratic", "dfhq", {"quantization": "quadratic"}),),
                         bits, profile, dirs["dfhq"], progress)
        result.extend(_relabel(qq, "quadratic", "dfhq"))
    recipes = [run_recipe(dfh_gans_recipe(gan=False), splits, bits, profile, dirs["recipe"],
                          progress=progress)]
    if augment_fn is not None:
        gan = run_recipe(dfh_gans_recipe(gan=True), splits, bits, profile, dirs["recipe"],
                         augment_fn, progress)
        gan.rows = [r for r in gan.rows if r["stage"] == "finetune"]  # the rest: as above
        keep = {(r["method"], r["bits"]) for r in gan.rows}
        gan.codes = {k: v for k, v in gan.codes.items() if k in keep}
        gan.histories = {k: v for k, v in gan.histories.items() if k in keep}
        gan.models = {("finetune-gan", k): m for (s, k), m in gan.models.items()
                      if s == "finetune"}
        recipes.append(gan)
    for part in recipes:
        result.extend(part)
        result.models.update(part.models)
        result.teachers.update(part.teachers)
    return result


PRETRAINED_GAN = ("stargan-gpu-celeba", "attributes-gpu-celeba")  # dfh_lib/pretrained/


def gan_augment_fn(checkpoint="pretrained", classifier=None):
    """``(augment_fn or None, note)`` for :func:`reproduce`: ``augment_fn(train)``
    is :func:`dfh_lib.gan.augment` (one edited copy of every training image,
    1-2 attributes flipped, labelled with its source identity) with

    * ``checkpoint="pretrained"``: the StarGAN shipped with the library
      (:func:`dfh_lib.gan.pretrained`) and, unless ``classifier`` is given,
      the shipped attribute classifier, which predicts the attributes of
      faces that carry none (e.g. LFW);
    * a generator checkpoint path (:func:`~dfh_lib.gan.load_generator`), with
      ``classifier`` an attribute-classifier checkpoint path or None;
    * None or ``"none"``: no GAN data (``augment_fn`` is None).

    The networks run on :func:`~dfh_lib.runtime.get_device`. The augmented
    set of the last training set seen is kept, so a chapter can look at it
    and then pass ``augment_fn`` on without editing twice.
    """
    if checkpoint is None or str(checkpoint).lower() == "none":
        return None, "no GAN augmentation (--gan-checkpoint none)"
    try:
        from . import gan
    except ImportError as err:
        return None, f"no GAN (dfh_lib.gan unavailable: {err})"
    if str(checkpoint) == "pretrained":
        generator = gan.pretrained(PRETRAINED_GAN[0])
        judge = gan.pretrained(PRETRAINED_GAN[1]) if classifier is None \
            else gan.load_attribute_classifier(classifier)
        note = f"GAN-augmented fine-tuning (shipped {PRETRAINED_GAN[0]})"
    else:
        generator = gan.load_generator(checkpoint)
        judge = None if classifier is None else gan.load_attribute_classifier(classifier)
        note = f"GAN-augmented fine-tuning ({Path(checkpoint).name})"
    from .runtime import get_device

    device = get_device()  # editing tens of thousands of faces wants the GPU where there is one
    generator, judge = (m.to(device) if isinstance(m, nn.Module) else m for m in (generator, judge))
    last: list = []  # [(train, augmented)]

    def augment_fn(train):
        if not last or last[0][0] is not train:
            last[:] = [(train, gan.augment(train, generator, classifier=judge))]
        return last[0][1]

    return augment_fn, note


def main_reproduce(argv=None) -> ExperimentResult:
    """``python -m dfh_lib reproduce --dataset lfw --bits 12,24,36,48 --profile cpu``:
    trains (or loads) DFH-GANs and the baselines, writes ``<out>.csv/.md/.json``
    and ``<out>.png`` (mAP against bits) and prints the Markdown table."""
    import argparse

    from .data import book_splits
    from .experiments import DEEP_BASELINES
    from .results import Provenance, results_table, save_results
    from .runtime import setup_notebook
    from .viz import plot_metric_vs_bits

    parser = argparse.ArgumentParser(prog="python -m dfh_lib reproduce",
                                     description=main_reproduce.__doc__.split("\n")[0])
    parser.add_argument("--dataset", default=None, help="lfw, facescrub, youtube_faces, "
                        "synthfaces, ... (default: $DFH_DATASET, else lfw when present, "
                        "else synthfaces)")
    parser.add_argument("--bits", default="12,24,36,48", help="comma-separated code lengths")
    parser.add_argument("--profile", default=None, help="tiny, cpu or gpu")
    parser.add_argument("--methods", default=",".join(DEEP_BASELINES),
                        help="deep baselines to compare (comma-separated; '' for none)")
    parser.add_argument("--gan-checkpoint", default="pretrained",
                        help="generator for the GAN-augmented fine-tuning: 'pretrained' "
                        "(the StarGAN shipped in dfh_lib/pretrained, default), a checkpoint "
                        "path (dfh_lib.gan), or 'none'")
    parser.add_argument("--gan-classifier", default=None, help="attribute classifier "
                        "checkpoint, for datasets without attribute labels (e.g. lfw; "
                        "default with 'pretrained': the shipped one)")
    parser.add_argument("--seed", type=int, default=0, help="training seed of every run "
                        "(the split stays the same; a seed other than 0 adds -seed<N> to "
                        "the run and output names)")
    parser.add_argument("--out", default=None, help="output path without suffix "
                        "(default: results/reproduce-<profile>-<dataset>[-seed<N>])")
    parser.add_argument("--runs-dir", default=None, help="checkpoint folder (default: "
                        "runs/reproduce, or $DFH_RUNS_DIR/reproduce)")
    parser.add_argument("--reuse", action="append", default=[], metavar="PART=DIR",
                        help="train-or-load one part of the table in DIR instead, e.g. "
                        "baselines=runs/ch2/cpu-lfw (the book's chapter runs); parts: "
                        + ", ".join(REPRODUCE_PARTS) + "; repeatable")
    args = parser.parse_args(argv)
    try:
        bits = tuple(int(b) for b in args.bits.split(","))
    except ValueError:
        parser.error(f"--bits must be comma-separated integers such as 12,24; got {args.bits!r}")
    reuse = {}
    for item in args.reuse:
        part, _, folder = item.partition("=")
        if part not in REPRODUCE_PARTS or not folder:
            parser.error(f"--reuse takes PART=DIR with PART one of {REPRODUCE_PARTS}; "
                         f"got {item!r}")
        reuse[part] = Path(folder)
    run = setup_notebook("reproduce", args.profile, seed=args.seed)
    profile = run.profile.with_overrides(seed=args.seed)
    splits = book_splits(profile, args.dataset)
    dataset = splits.train.name
    suffix = f"-seed{args.seed}" if args.seed else ""
    runs_dir = Path(args.runs_dir) if args.runs_dir else run.runs_dir
    runs_dir = runs_dir / f"{dataset}-{profile.name}{suffix}"
    augment_fn, gan_note = gan_augment_fn(args.gan_checkpoint, args.gan_classifier)
    if augment_fn is None:
        print(f"note: {gan_note}: DFH-GANs' last stage fine-tunes on the plain training set")
    methods = tuple(m for m in args.methods.split(",") if m)
    result = reproduce(splits, bits, profile, runs_dir, methods, augment_fn, reuse=reuse)
    h, w = profile.image_size
    provenance = Provenance.of(run, splits, "query vs database", epochs=profile.epochs,
                               input=f"{h}x{w}", seed=args.seed, gan=gan_note)
    rows = [{k: v for k, v in r.items() if k not in ("stage", "gan_augmented")}
            for r in result.rows]  # the provenance line says whether GAN data was used
    table = results_table(rows, provenance, index=["method", "bits"])
    out = Path(args.out or f"results/reproduce-{profile.name}-{dataset}{suffix}")
    save_results(table, out)
    plot_metric_vs_bits(table).savefig(out.with_suffix(".png"), dpi=100)
    print(out.with_suffix(".md").read_text())
    return result
