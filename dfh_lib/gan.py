"""Attribute-conditional face editing with a StarGAN, and GAN augmentation.

StarGAN (Choi et al., *StarGAN: Unified Generative Adversarial Networks for
Multi-Domain Image-to-Image Translation*, CVPR 2018) edits a face ``x`` towards
a target attribute vector ``c`` (``n_attrs`` values in {0, 1}) with one
generator ``G(x, c)``. A PatchGAN discriminator ``D`` has two heads: a
real/fake score ``D_src`` and attribute logits ``D_cls``. Losses (the paper's
Eq. 1-7, WGAN-GP form, which the official code trains):

* ``L_D = -E[D_src(x)] + E[D_src(G(x, c'))] + λ_cls L_cls^r + λ_gp L_gp``
* ``L_G = -E[D_src(G(x, c'))] + λ_cls L_cls^f + λ_rec E|x - G(G(x, c'), c)|_1``
* ``L_gp = E[(||∇_x̂ D_src(x̂)||_2 - 1)^2]`` with ``x̂ = a x + (1 - a) G(x, c')``,
  ``a ~ U(0, 1)`` per image (Gulrajani et al., 2017);
* ``L_cls^r = BCE(D_cls(x), c)``, ``L_cls^f = BCE(D_cls(G(x, c')), c')``
  (summed over attributes, mean over the batch, as the official code).

``c`` are the source attributes of ``x`` and ``c'`` the targets, drawn as in the
official code by shuffling the attribute vectors within the batch (so target
hair colours stay mutually exclusive). λ_cls = 1, λ_rec = 10, λ_gp = 10,
n_critic = 5 (``G`` is updated after every 5th ``D`` update; one *step* is one
``D`` update, the official ``num_iters``), Adam(1e-4, betas (0.5, 0.999)),
learning rates decayed linearly to 0 over the second half of the steps.
No mixed precision: the gradient penalty's double backward is fragile in fp16.

**Framing.** CelebA's aligned faces and LFW's scikit-learn crops frame a face
differently. Every image goes through one *face box* (:data:`FRAMINGS`): the
region of the LFW scikit-learn crop (rows 70-195, columns 78-172 of the
250×250 deep-funneled image: eyebrows to chin, 4:3), found in CelebA's aligned
images by matching the mean faces (normalised cross-correlation). The box is
resized to ``image_size × image_size`` (stretched 4:3 -> 1:1), so the GAN sees
the same face region from both datasets (the book's hash networks stretch the
62×47 LFW crops to squares the same way). :func:`edit` resizes the edited box
back and pastes it into the image, so edits keep the dataset's size.

**Attributes.** :data:`DEFAULT_ATTRIBUTES` are visible attributes that do not
change who a person is (no ``Male``, ``Young``, beards), and which the embedded
synthfaces dataset also carries, so the tiny profile runs offline.

Main entry points: :func:`train_gan`, :func:`load_generator`, :func:`edit`,
:func:`flip_attribute`, :func:`augment`; the independent judge of edits:
:func:`train_attribute_classifier`, :func:`attribute_accuracy`,
:func:`edit_success_rate`; the checkpoints shipped with the library:
:func:`pretrained` (:data:`PRETRAINED`); what edits do to retrieval:
:func:`identity_preservation`, :func:`augmentation_experiment` (low-shot
LFW, see :func:`dfh_lib.data.low_shot`). Taught in the GAN
attribute-augmentation chapter (book/05_gan_augmentation.ipynb).
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .data.dataset import FaceDataset
from .profiles import Profile, get_profile
from .runtime import get_device, seed_everything
from .train import _FORMAT, _load, _rng_state, _save_atomic, _set_rng_state

__all__ = ["DEFAULT_ATTRIBUTES", "HAIR_COLOURS", "FRAMINGS", "GANConfig",
           "ClassifierConfig", "Generator", "Discriminator", "AttributeClassifier",
           "ResidualBlock", "build_gan", "gradient_penalty", "discriminator_loss", "generator_loss", "face_crops",
           "framing_for", "attribute_matrix", "flip_targets", "split_by_identity",
           "train_gan", "load_generator", "edit", "flip_attribute", "augment",
           "train_attribute_classifier", "load_attribute_classifier",
           "predict_attributes", "attribute_accuracy", "edit_success_rate",
           "GANResult", "ClassifierResult", "main_gan", "PRETRAINED", "pretrained",
           "pretrained_log", "held_out_faces", "show_edits", "identity_preservation",
           "AUGMENTATIONS", "IMAGES_SEEN", "augmentation_experiment"]

DEFAULT_ATTRIBUTES = ("Black_Hair", "Blond_Hair", "Brown_Hair", "Bangs",
                      "Eyeglasses", "Smiling", "Mouth_Slightly_Open")
# a person has at most one hair colour: setting one on switches the others off
HAIR_COLOURS = ("Black_Hair", "Blond_Hair", "Brown_Hair", "Gray_Hair")
# face box (top, left, bottom, right) as fractions of the stored image
FRAMINGS = {
    "celeba": (37.5 / 109, 23.45 / 89, 93.5 / 109, 65.55 / 89),  # aligned, any scale
    "lfw": (0.0, 0.0, 1.0, 1.0),            # load_lfw's default crop, any resize
    "lfw_full": (70 / 250, 78 / 250, 195 / 250, 172 / 250),  # slice_=(0:250, 0:250)
    "full": (0.0, 0.0, 1.0, 1.0),           # the whole image (synthfaces)
}
CHECKPOINT = "checkpoint.pt"
GENERATOR = "generator.pt"
CLASSIFIER = "classifier.pt"
LOG = "log.csv"


# ----------------------------------------------------------------------------
# framing and attributes
# ----------------------------------------------------------------------------

def framing_for(dataset_or_name) -> str:
    """The framing of a dataset by its name: ``celeba``, ``lfw``, else ``full``."""
    name = getattr(dataset_or_name, "name", dataset_or_name)
    return name if name in ("celeba", "lfw") else "full"


def _box(framing, height: int, width: int) -> tuple[int, int, int, int]:
    """The face box of ``framing`` (a name or fractions) in whole pixels."""
    if isinstance(framing, str):
        if framing not in FRAMINGS:
            raise ValueError(f"framing must be one of {sorted(FRAMINGS)} or a (top, left, "
                             f"bottom, right) tuple of fractions; got {framing!r}")
        framing = FRAMINGS[framing]
    top, left, bottom, right = framing
    box = (round(top * height), round(left * width), round(bottom * height),
           round(right * width))
    if not (0 <= box[0] < box[2] <= height and 0 <= box[1] < box[3] <= width):
        raise ValueError(f"framing {framing} gives an empty or outside box {box} "
                         f"in a {height}x{width} image")
    return box


def face_crops(images: np.ndarray, size: int, framing="full") -> np.ndarray:
    """The face box of each image resized to ``size × size`` (bicubic).

    Args:
        images: (N, H, W, 3) uint8 (a FaceDataset's ``images``).
        framing: a name in :data:`FRAMINGS` or (top, left, bottom, right)
            fractions of the image.
    Returns:
        (N, size, size, 3) uint8.
    """
    from PIL import Image

    _check_images(images)
    top, left, bottom, right = _box(framing, *images.shape[1:3])
    out = np.empty((len(images), size, size, 3), np.uint8)
    for i, image in enumerate(images):
        out[i] = np.asarray(Image.fromarray(image).resize(
            (size, size), Image.BICUBIC, box=(left, top, right, bottom)))
    return out


def _paste_back(images: np.ndarray, crops: np.ndarray, framing) -> np.ndarray:
    """``images`` with their face box replaced by ``crops`` resized back."""
    from PIL import Image

    top, left, bottom, right = _box(framing, *images.shape[1:3])
    out = images.copy()
    for i, crop in enumerate(crops):
        out[i, top:bottom, left:right] = np.asarray(
            Image.fromarray(crop).resize((right - left, bottom - top), Image.BICUBIC))
    return out


def _check_images(images) -> None:
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 \
            or images.ndim != 4 or images.shape[-1] != 3:
        got = getattr(images, "shape", type(images).__name__)
        raise ValueError(f"images must be uint8 (N, H, W, 3) as in a FaceDataset; got "
                         f"{got} {getattr(images, 'dtype', '')}")


def attribute_matrix(dataset: FaceDataset, attributes: Sequence[str]) -> np.ndarray:
    """The columns ``attributes`` of ``dataset.attributes``: (N, A) float32 in {0, 1}."""
    names = list(dataset.attribute_names or [])
    missing = [a for a in attributes if a not in names]
    if dataset.attributes is None or missing:
        raise ValueError(f"dataset {dataset.name!r} has no attribute(s) "
                         f"{missing or list(attributes)}; it has {names or 'no attributes'}. "
                         f"Pick attributes it has, or predict them with an attribute "
                         f"classifier")
    return dataset.attributes[:, [names.index(a) for a in attributes]].astype(np.float32)


def _set_attribute(targets: np.ndarray, rows, column: int, value, attributes) -> None:
    """Set one attribute in place; switching a hair colour on turns the others off."""
    value = np.asarray(value, np.float32)
    if attributes[column] in HAIR_COLOURS:
        others = [j for j, a in enumerate(attributes) if a in HAIR_COLOURS and j != column]
        for j in others:
            targets[rows, j] = np.where(value > 0.5, 0.0, targets[rows, j])
    targets[rows, column] = value


def flip_targets(source: np.ndarray, attribute: str | int,
                 attributes: Sequence[str]) -> np.ndarray:
    """``source`` (N, A) with one attribute flipped (0 <-> 1) for every row,
    keeping hair colours mutually exclusive. Returns a new float32 array."""
    column = attributes.index(attribute) if isinstance(attribute, str) else int(attribute)
    targets = np.array(source, np.float32, copy=True)
    _set_attribute(targets, slice(None), column, 1.0 - targets[:, column], attributes)
    return targets


def split_by_identity(dataset: FaceDataset, test_fraction: float = 0.1,
                      seed: int = 0) -> tuple[FaceDataset, FaceDataset]:
    """(train, test): a seeded ``test_fraction`` of the identities is held out,
    so no test face belongs to a person seen in training."""
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must lie in (0, 1); got {test_fraction}")
    ids = np.unique(dataset.labels)
    rng = np.random.default_rng(seed)
    test_ids = rng.choice(ids, max(1, round(test_fraction * len(ids))), replace=False)
    is_test = np.isin(dataset.labels, test_ids)
    return dataset.subset(~is_test), dataset.subset(is_test)


# ----------------------------------------------------------------------------
# networks
# ----------------------------------------------------------------------------

def _conv_block(cin, cout, kernel, stride, padding, transpose=False) -> list[nn.Module]:
    conv = (nn.ConvTranspose2d if transpose else nn.Conv2d)(
        cin, cout, kernel, stride, padding, bias=False)
    return [conv, nn.InstanceNorm2d(cout, affine=True), nn.ReLU(inplace=True)]


class ResidualBlock(nn.Module):
    """x + (conv3×3 → IN → ReLU → conv3×3 → IN)(x), channels kept."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(*_conv_block(channels, channels, 3, 1, 1)[:3],
                                  nn.Conv2d(channels, channels, 3, 1, 1, bias=False),
                                  nn.InstanceNorm2d(channels, affine=True))

    def forward(self, x):
        return x + self.body(x)


class Generator(nn.Module):
    """StarGAN's generator ``G(x, c)``: (N, 3, S, S) in [-1, 1] and targets
    (N, A) in {0, 1} -> edited (N, 3, S, S) in [-1, 1] (tanh).

    ``c`` is tiled to A extra input channels; a 7×7 conv, two stride-2 4×4
    down-sampling convs, ``res_blocks`` residual blocks, two transposed-conv
    up-samplings and a 7×7 conv; instance norm + ReLU between. ``width`` is
    the first layer's channels (StarGAN: 64, 6 blocks); S must be a multiple of 4.
    """

    def __init__(self, attributes: Sequence[str], width: int = 32, res_blocks: int = 4,
                 image_size: int = 64):
        super().__init__()
        if image_size % 4:
            raise ValueError(f"image_size must be a multiple of 4; got {image_size}")
        self.attribute_names = tuple(attributes)
        self.image_size = image_size
        n = len(self.attribute_names)
        w = width
        self.body = nn.Sequential(
            *_conv_block(3 + n, w, 7, 1, 3), *_conv_block(w, 2 * w, 4, 2, 1),
            *_conv_block(2 * w, 4 * w, 4, 2, 1),
            *[ResidualBlock(4 * w) for _ in range(res_blocks)],
            *_conv_block(4 * w, 2 * w, 4, 2, 1, transpose=True),
            *_conv_block(2 * w, w, 4, 2, 1, transpose=True),
            nn.Conv2d(w, 3, 7, 1, 3, bias=False), nn.Tanh())

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        if c.shape != (len(x), len(self.attribute_names)):
            raise ValueError(f"targets c must be (N={len(x)}, A={len(self.attribute_names)}); "
                             f"got {tuple(c.shape)}")
        c = c.to(x.dtype)[:, :, None, None].expand(-1, -1, *x.shape[2:])
        return self.body(torch.cat([x, c], dim=1))


class Discriminator(nn.Module):
    """StarGAN's PatchGAN discriminator: (N, 3, S, S) -> (src (N, 1, 2, 2)
    real/fake scores, cls (N, A) attribute logits).

    ``log2(S) - 1`` stride-2 4×4 convs with leaky ReLU (slope 0.01), channels
    doubling from ``width`` up to ``max_width``, leave a 2×2 map; a 3×3 conv
    gives one score per patch and a 2×2 conv the attribute logits. No
    normalisation (the gradient penalty is per image). S: a power of 2 >= 16.
    """

    def __init__(self, num_attributes: int, image_size: int = 64, width: int = 32,
                 max_width: int = 512):
        super().__init__()
        depth = int(round(math.log2(image_size))) - 1
        if image_size < 16 or 2 ** (depth + 1) != image_size:
            raise ValueError(f"image_size must be a power of 2 >= 16; got {image_size}")
        layers, cin = [], 3
        for i in range(depth):
            cout = min(width * 2 ** i, max_width)
            layers += [nn.Conv2d(cin, cout, 4, 2, 1), nn.LeakyReLU(0.01)]
            cin = cout
        self.body = nn.Sequential(*layers)
        self.src = nn.Conv2d(cin, 1, 3, 1, 1, bias=False)
        self.cls = nn.Conv2d(cin, num_attributes, 2, bias=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.body(x)
        return self.src(h), self.cls(h).flatten(1)


class AttributeClassifier(nn.Module):
    """A small independent CNN judging edits: (N, 3, S, S) in [-1, 1] -> (N, A)
    attribute logits. Four stages of two (conv3×3 → BN → ReLU) and a 2×2 max
    pool, channels ``width``·(1, 2, 4, 8), global average pool, linear."""

    def __init__(self, attributes: Sequence[str], width: int = 16, image_size: int = 32):
        super().__init__()
        self.attribute_names = tuple(attributes)
        self.image_size = image_size
        layers, cin = [], 3
        for i in range(4):
            cout = width * 2 ** i
            layers += [nn.Conv2d(cin, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout),
                       nn.ReLU(inplace=True), nn.Conv2d(cout, cout, 3, 1, 1, bias=False),
                       nn.BatchNorm2d(cout), nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            cin = cout
        self.body = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(cin, len(self.attribute_names))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


# ----------------------------------------------------------------------------
# losses
# ----------------------------------------------------------------------------

def gradient_penalty(critic: Callable, real: torch.Tensor, fake: torch.Tensor,
                     alpha: torch.Tensor) -> torch.Tensor:
    """WGAN-GP: ``mean((||∇_x̂ critic(x̂)||_2 - 1)^2)`` with ``x̂ = a·real +
    (1 - a)·fake`` per image (``alpha``: (N,) in [0, 1]). ``critic`` maps
    (N, ...) to scores; their sum is differentiated (one gradient per image,
    as in StarGAN's code). Differentiable (``create_graph``) for the D step."""
    a = alpha.view(-1, *([1] * (real.ndim - 1))).to(real)
    mixed = (a * real.detach() + (1 - a) * fake.detach()).requires_grad_(True)
    grad, = torch.autograd.grad(critic(mixed).sum(), mixed, create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()


def _bce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Attribute BCE summed over attributes, averaged over images (StarGAN)."""
    return F.binary_cross_entropy_with_logits(logits, target, reduction="sum") / len(logits)


def discriminator_loss(D: nn.Module, real, fake, c_real, alpha, config: "GANConfig"):
    """``L_D = -E[D_src(x)] + E[D_src(fake)] + λ_cls BCE(D_cls(x), c) + λ_gp L_gp``.

    Returns (loss, terms) with terms ``d_real``, ``d_fake``, ``d_cls``, ``d_gp``
    (floats, before weighting)."""
    src_real, cls_real = D(real)
    src_fake, _ = D(fake.detach())
    d_real, d_fake = -src_real.mean(), src_fake.mean()
    d_cls = _bce(cls_real, c_real)
    d_gp = gradient_penalty(lambda x: D(x)[0], real, fake, alpha)
    loss = d_real + d_fake + config.lambda_cls * d_cls + config.lambda_gp * d_gp
    return loss, {"d_loss": loss, "d_real": d_real, "d_fake": d_fake, "d_cls": d_cls,
                  "d_gp": d_gp}


def generator_loss(G: nn.Module, D: nn.Module, real, c_real, c_target, config: "GANConfig"):
    """``L_G = -E[D_src(G(x, c'))] + λ_cls BCE(D_cls(G(x, c')), c')
    + λ_rec mean|x - G(G(x, c'), c)|``. Returns (loss, terms): ``g_adv``,
    ``g_cls``, ``g_rec``."""
    fake = G(real, c_target)
    src_fake, cls_fake = D(fake)
    g_adv = -src_fake.mean()
    g_cls = _bce(cls_fake, c_target)
    g_rec = (real - G(fake, c_real)).abs().mean()
    loss = g_adv + config.lambda_cls * g_cls + config.lambda_rec * g_rec
    return loss, {"g_loss": loss, "g_adv": g_adv, "g_cls": g_cls, "g_rec": g_rec}


# ----------------------------------------------------------------------------
# configurations
# ----------------------------------------------------------------------------

class _Config:
    """Shared helpers of the frozen config dataclasses below."""

    _PROFILES: dict = {}
    _NOT_IN_FINGERPRINT = ("log_every", "checkpoint_every")

    @classmethod
    def from_profile(cls, profile: Profile | str | None = None, **overrides):
        """The profile's settings (tiny / cpu / gpu), with ``overrides``."""
        name = get_profile(profile).name
        known = {f.name for f in fields(cls)}
        unknown = set(overrides) - known
        if unknown:
            raise ValueError(f"unknown {cls.__name__} fields {sorted(unknown)}; "
                             f"known: {sorted(known)}")
        return cls(**{**cls._PROFILES.get(name, {}), **overrides})

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    def fingerprint(self) -> str:
        """16 hex digits over the fields that define the trained weights."""
        defining = {k: v for k, v in self.to_dict().items()
                    if k not in self._NOT_IN_FINGERPRINT}
        return hashlib.sha256(json.dumps(defining, sort_keys=True).encode()).hexdigest()[:16]

    def _check_common(self) -> None:
        object.__setattr__(self, "attributes", tuple(self.attributes))
        for name in ("steps", "batch_size", "log_every", "checkpoint_every", "image_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int; got {value!r}")
        if not self.attributes or len(set(self.attributes)) != len(self.attributes):
            raise ValueError(f"attributes must be distinct names; got {self.attributes}")


@dataclass(frozen=True)
class GANConfig(_Config):
    """A StarGAN training run (defaults: StarGAN's settings, gpu-profile sizes).

    Attributes:
        image_size: side S of the square face crops (power of 2, 32 or 64).
        attributes: the A attributes G edits (CelebA names).
        steps: discriminator updates (G every ``n_critic``-th).
        batch_size: images per step.
        g_width / g_res_blocks: generator width and residual blocks.
        d_width / d_max_width: discriminator first and largest width.
        g_lr / d_lr / beta1 / beta2: Adam settings.
        decay_from: fraction of ``steps`` after which both learning rates
            decay linearly to 0 (StarGAN: 0.5).
        n_critic, lambda_cls, lambda_rec, lambda_gp: the loss settings.
        augment_flip: random horizontal flips of the real images.
        seed / deterministic: seeding; deterministic kernels (exact resume).
        log_every / checkpoint_every: steps between log rows / checkpoints
            (not part of the fingerprint).
    """

    image_size: int = 64
    attributes: tuple[str, ...] = DEFAULT_ATTRIBUTES
    steps: int = 15_000
    batch_size: int = 16
    g_width: int = 32
    g_res_blocks: int = 4
    d_width: int = 32
    d_max_width: int = 512
    g_lr: float = 1e-4
    d_lr: float = 1e-4
    beta1: float = 0.5
    beta2: float = 0.999
    decay_from: float = 0.5
    n_critic: int = 5
    lambda_cls: float = 1.0
    lambda_rec: float = 10.0
    lambda_gp: float = 10.0
    augment_flip: bool = True
    seed: int = 0
    deterministic: bool = False
    log_every: int = 100
    checkpoint_every: int = 1000

    def __post_init__(self):
        self._check_common()
        if not (self.g_lr > 0 and self.d_lr > 0 and 0 <= self.decay_from <= 1):
            raise ValueError(f"need g_lr, d_lr > 0 and 0 <= decay_from <= 1; got "
                             f"{self.g_lr}, {self.d_lr}, {self.decay_from}")
        if self.n_critic < 1 or min(self.g_width, self.d_width, self.d_max_width) < 1:
            raise ValueError("n_critic and the widths must be >= 1")


GANConfig._PROFILES = {
    # CI: seconds. 30 D steps, 6 G steps.
    "tiny": dict(image_size=32, steps=30, batch_size=8, g_width=8, g_res_blocks=1,
                 d_width=8, d_max_width=64, log_every=5, checkpoint_every=15),
    # a laptop (2 cores): 6000 steps at 8-13 steps/s, about 8-12 minutes (bench_gan.py)
    "cpu": dict(image_size=32, steps=6000, batch_size=16, g_width=16, g_res_blocks=3,
                d_width=16, d_max_width=128, log_every=50, checkpoint_every=500),
    # one GPU: 64 px, no AMP; estimated 2.5-5 min on an H100 (50-100x the 1 step/s
    # of one CPU thread); set steps to ~6 min x the rate bench_gan.py --device cuda shows
    "gpu": dict(image_size=64, steps=15_000, batch_size=16, g_width=32, g_res_blocks=4,
                d_width=32, d_max_width=512, log_every=100, checkpoint_every=2000),
}


@dataclass(frozen=True)
class ClassifierConfig(_Config):
    """Training of the independent :class:`AttributeClassifier` (BCE, AdamW,
    cosine-free constant lr; ``steps`` mini-batches)."""

    image_size: int = 64
    attributes: tuple[str, ...] = DEFAULT_ATTRIBUTES
    steps: int = 3000
    batch_size: int = 64
    width: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-4
    augment_flip: bool = True
    seed: int = 0
    deterministic: bool = False
    log_every: int = 100
    checkpoint_every: int = 1000

    def __post_init__(self):
        self._check_common()
        if not self.lr > 0 or self.weight_decay < 0 or self.width < 1:
            raise ValueError(f"need lr > 0, weight_decay >= 0, width >= 1; got "
                             f"{self.lr}, {self.weight_decay}, {self.width}")


ClassifierConfig._PROFILES = {
    "tiny": dict(image_size=32, steps=20, batch_size=16, width=8, log_every=5,
                 checkpoint_every=10),
    "cpu": dict(image_size=32, steps=1500, batch_size=64, width=16, log_every=50,
                checkpoint_every=500),
    "gpu": dict(image_size=64, steps=3000, batch_size=128, width=32, log_every=100,
                checkpoint_every=1000),
}


def _config_of(cls, config) -> _Config:
    """``config`` itself, or the config of a profile (None = the active one)."""
    if config is None or isinstance(config, (str, Profile)):
        return cls.from_profile(config)
    if not isinstance(config, cls):
        raise ValueError(f"config must be a {cls.__name__} or a profile name; got "
                         f"{type(config).__name__}")
    return config


# ----------------------------------------------------------------------------
# the step loop shared by the GAN and the classifier
# ----------------------------------------------------------------------------

def _to_unit(images: torch.Tensor, device) -> torch.Tensor:
    """uint8 (N, S, S, 3) -> float (N, 3, S, S) in [-1, 1] on ``device``."""
    return images.to(device).permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)


def _from_unit(x: torch.Tensor) -> np.ndarray:
    """float (N, 3, S, S) in [-1, 1] -> uint8 (N, S, S, 3) numpy."""
    return ((x.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(
        torch.uint8).permute(0, 2, 3, 1).numpy()


def _batch_index(step: int, batch_size: int, n: int, seed: int) -> torch.Tensor:
    """Images of ``step``: consecutive slices of per-epoch permutations, each
    seeded by (seed, epoch), so the order needs no saved state."""
    start = step * batch_size
    parts, done = [], 0
    while done < batch_size:
        epoch, offset = divmod(start + done, n)
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(
            seed * 1_000_003 + epoch))
        take = perm[offset:offset + batch_size - done]
        parts.append(take)
        done += len(take)
    return torch.cat(parts)


def _real_batch(data: dict, step: int, config, generator, device):
    """(x, c): a real batch in [-1, 1] (randomly flipped) and its attributes."""
    index = _batch_index(step, config.batch_size, len(data["attrs"]), config.seed)
    x = _to_unit(data["images"][index.to(data["images"].device)], device)
    if config.augment_flip:
        flip = (torch.rand(len(x), generator=generator) < 0.5).to(device)
        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    return x, data["attrs"][index].to(device)


def _to_floats(pending: list[tuple[int, dict]], steps: int, last_saved: int) -> list[dict]:
    """The loss terms of the steps since the last flush as floats, in one
    device-to-host copy (no sync per step); stop at the first NaN/inf step."""
    flat = [v.detach().float().reshape(()) for _, terms in pending for v in terms.values()]
    values = iter(torch.stack(flat).cpu().tolist() if flat else [])
    rows = [{k: next(values) for k in terms} for _, terms in pending]
    for (step, _), row in zip(pending, rows):
        if not all(math.isfinite(v) for v in row.values()):
            named = ", ".join(f"{k}={v:.4g}" for k, v in row.items())
            raise FloatingPointError(
                f"a loss is not finite at step {step} of {steps}: {named}. The last "
                f"checkpoint (step {last_saved}) is untouched; try lower learning rates, "
                f"check the images, or change the seed.")
    return rows


def _data_summary(crops: np.ndarray, attrs: np.ndarray, framing) -> dict:
    return {"images": len(crops), "crop_size": int(crops.shape[1]), "framing": framing,
            "images_sha1": hashlib.sha1(crops.tobytes()).hexdigest()[:12],
            "attributes_sha1": hashlib.sha1(attrs.tobytes()).hexdigest()[:12]}


def _check_same_run(state: dict, config: _Config, data: dict, path: Path) -> None:
    if state["fingerprint"] == config.fingerprint() and state["data"] == data:
        return
    old, new = {**state["config"], **state["data"]}, {**config.to_dict(), **data}
    changed = [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in sorted(new)
               if k not in config._NOT_IN_FINGERPRINT and old.get(k) != new.get(k)]
    raise ValueError(f"{path} belongs to a different run ({'; '.join(changed)}); use "
                     f"another run_dir, delete the checkpoint, or pass resume=False")


def _write_log(log: list[dict], path: Path) -> None:
    keys = list(dict.fromkeys(k for row in log for k in row))
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, keys)
        writer.writeheader()
        writer.writerows(log)
    os.replace(tmp, path)


@dataclass
class _Loop:
    """Steps, logs, checkpoints and resume for :func:`train_gan` and
    :func:`train_attribute_classifier`: ``step_fn(step)`` does one update and
    returns its loss terms as 0-d tensors. They are read back (and checked
    for NaN/inf) once per log row or checkpoint, so a GPU never waits per step.

    The checkpoint holds the modules, optimizers, every RNG state, the step,
    the log, the partial log window and the training time so far, so a
    resumed run continues exactly (weights and log)."""

    kind: str
    config: _Config
    modules: dict[str, nn.Module]
    optimizers: dict[str, torch.optim.Optimizer]
    data: dict
    run_dir: Path | None
    generator: torch.Generator
    meta: dict
    step: int = 0
    saved: int = 0
    log: list = field(default_factory=list)
    window: dict = field(default_factory=dict)  # term -> [sum, count] since the last row
    elapsed: float = 0.0  # training seconds before this session
    row_extra: Callable[[int], dict] | None = None  # e.g. the learning rate of a step

    def resume(self) -> None:
        path = self.run_dir / CHECKPOINT
        state = _load(path, (self.kind,))
        _check_same_run(state, self.config, self.data, path)
        for name, part in {**self.modules, **self.optimizers}.items():
            part.load_state_dict(state[name])
        _set_rng_state(state["rng"], self.generator)
        self.step = self.saved = state["step"]
        self.log, self.window, self.elapsed = state["log"], state["window"], state["elapsed"]

    def save(self, elapsed: float) -> None:
        parts = {k: v.state_dict() for k, v in {**self.modules, **self.optimizers}.items()}
        common = {"format": _FORMAT, "step": self.step, "config": self.config.to_dict(),
                  "data": self.data}
        _save_atomic({**common, "kind": self.kind, "fingerprint": self.config.fingerprint(),
                      "log": self.log, "window": self.window, "elapsed": elapsed,
                      "rng": _rng_state(self.generator), **parts}, self.run_dir / CHECKPOINT)
        first = next(iter(self.modules))  # the model a user loads: G or the classifier
        _save_atomic({**common, "kind": self.meta["export_kind"],
                      "model": self.modules[first].state_dict()},
                     self.run_dir / self.meta["export_name"])
        _write_log(self.log, self.run_dir / LOG)
        self.saved = self.step

    def _flush(self, pending: list, elapsed: float, log_due: bool) -> None:
        for terms in _to_floats(pending, self.config.steps, self.saved):
            for k, v in terms.items():
                total = self.window.setdefault(k, [0.0, 0])
                total[0], total[1] = total[0] + v, total[1] + 1
        pending.clear()
        if log_due:
            extra = self.row_extra(self.step - 1) if self.row_extra else {}
            self.log.append({"step": self.step, "time_s": elapsed, **extra,
                             **{k: v / n for k, (v, n) in self.window.items()}})
            self.window = {}

    def run(self, step_fn: Callable, resume: bool, progress: bool, desc: str) -> list[dict]:
        if self.run_dir is not None:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            if resume and (self.run_dir / CHECKPOINT).exists():
                self.resume()
        cfg, start, pending = self.config, time.perf_counter(), []
        with tqdm(total=cfg.steps, initial=self.step, unit="step", desc=desc,
                  disable=not progress, dynamic_ncols=True, leave=False) as bar:
            while self.step < cfg.steps:
                pending.append((self.step + 1, step_fn(self.step)))
                self.step += 1
                bar.update()
                last = self.step == cfg.steps
                log_due = self.step % cfg.log_every == 0 or last
                save_due = self.step % cfg.checkpoint_every == 0 or last
                if log_due or save_due:
                    elapsed = self.elapsed + time.perf_counter() - start
                    self._flush(pending, elapsed, log_due)
                    if log_due:
                        bar.set_postfix({k: f"{v:.3f}" for k, v in self.log[-1].items()
                                         if k.endswith("loss")})
                    if save_due and self.run_dir is not None:
                        self.save(elapsed)
        return self.log


def _lr_at(step: int, config: GANConfig, base: float) -> float:
    """Constant, then linear decay to 0 from ``decay_from * steps`` (StarGAN)."""
    start = config.decay_from * config.steps
    if step < start or config.steps <= start:
        return base
    return base * (config.steps - step) / (config.steps - start)


# ----------------------------------------------------------------------------
# GAN training
# ----------------------------------------------------------------------------

@dataclass
class GANResult:
    """What :func:`train_gan` returns: both networks (G in eval mode), the
    config and the loss log (one dict per ``log_every`` steps: window means)."""

    generator: Generator
    discriminator: Discriminator
    config: GANConfig
    log: list[dict]

    def log_frame(self):
        """The log as a ``pandas.DataFrame`` indexed by step."""
        import pandas as pd

        return pd.DataFrame(self.log).set_index("step")


def _training_data(dataset: FaceDataset, config, framing, device) -> tuple[dict, dict]:
    """Face crops (uint8, on the device when it is a GPU) and attributes."""
    if not isinstance(dataset, FaceDataset):
        raise ValueError(f"dataset must be a FaceDataset; got {type(dataset).__name__}")
    framing = framing or framing_for(dataset)
    attrs = attribute_matrix(dataset, config.attributes)
    crops = face_crops(dataset.images, config.image_size, framing)
    images = torch.from_numpy(crops)
    if device.type != "cpu":
        images = images.to(device)
    framing = framing if isinstance(framing, str) else list(framing)
    return {"images": images, "attrs": torch.from_numpy(attrs)}, \
        _data_summary(crops, attrs, framing)


def build_gan(config: GANConfig) -> tuple[Generator, Discriminator]:
    """G and D of ``config`` (initialised from the current torch seed)."""
    G = Generator(config.attributes, config.g_width, config.g_res_blocks, config.image_size)
    D = Discriminator(len(config.attributes), config.image_size, config.d_width,
                      config.d_max_width)
    return G, D


def _gan_step(G, D, opt_g, opt_d, data, config: GANConfig, generator, device):
    """The step function of :class:`_Loop` for StarGAN (one D update, and one
    G update on every ``n_critic``-th step)."""
    def step_fn(step: int) -> dict:
        for opt, base in ((opt_g, config.g_lr), (opt_d, config.d_lr)):
            for group in opt.param_groups:
                group["lr"] = _lr_at(step, config, base)
        x, c = _real_batch(data, step, config, generator, device)
        c_target = c[torch.randperm(len(c), generator=generator).to(device)]
        alpha = torch.rand(len(x), generator=generator).to(device)
        with torch.no_grad():
            fake = G(x, c_target)
        d_loss, terms = discriminator_loss(D, x, fake, c, alpha, config)
        logged = {k: v.detach() for k, v in terms.items()}
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
        if (step + 1) % config.n_critic == 0:
            D.requires_grad_(False)  # G's step needs no D weight gradients
            g_loss, g_terms = generator_loss(G, D, x, c, c_target, config)
            logged.update({k: v.detach() for k, v in g_terms.items()})
            opt_g.zero_grad(set_to_none=True)
            g_loss.backward()
            opt_g.step()
            D.requires_grad_(True)
        return logged
    return step_fn


def train_gan(dataset: FaceDataset, config: GANConfig | str | None = None, run_dir=None,
              resume: bool = True, progress: bool = True, device=None,
              framing=None) -> GANResult:
    """Train a StarGAN on ``dataset`` (CelebA; its attributes are the labels).

    Args:
        dataset: a FaceDataset with the config's attributes.
        config: a :class:`GANConfig`, or a profile name (``tiny``/``cpu``/``gpu``).
        run_dir: with it, writes ``checkpoint.pt`` (G, D, both Adam states,
            every RNG state, step, log) every ``checkpoint_every`` steps and
            at the end, ``generator.pt`` (G only, for :func:`load_generator`)
            and ``log.csv``. An existing checkpoint of the same config and
            data is resumed exactly (``resume=True``); a finished run loads.
        framing: the face box (default: by dataset name, see :data:`FRAMINGS`).
        device: None = ``$DFH_DEVICE``, else cuda / mps / cpu.

    Raises:
        ValueError: unreadable checkpoint, or one of another config / data
            (names the differing fields).
        FloatingPointError: a loss became NaN/inf (names the step and losses).
    """
    config = _config_of(GANConfig, config)
    device = get_device(device)
    data, summary = _training_data(dataset, config, framing, device)
    seed_everything(config.seed, config.deterministic)
    G, D = (m.to(device) for m in build_gan(config))
    betas = (config.beta1, config.beta2)
    opt_g = torch.optim.Adam(G.parameters(), config.g_lr, betas)
    opt_d = torch.optim.Adam(D.parameters(), config.d_lr, betas)
    generator = torch.Generator().manual_seed(config.seed)
    loop = _Loop("gan_checkpoint", config, {"generator": G, "discriminator": D},
                 {"opt_g": opt_g, "opt_d": opt_d}, summary,
                 Path(run_dir) if run_dir is not None else None, generator,
                 {"export_kind": "generator", "export_name": GENERATOR},
                 row_extra=lambda step: {"lr": _lr_at(step, config, config.g_lr)})
    step_fn = _gan_step(G, D, opt_g, opt_d, data, config, generator, device)
    log = loop.run(step_fn, resume, progress, f"StarGAN {config.image_size}px")
    G.eval().config = config
    G.framing = summary["framing"]
    return GANResult(G, D, config, log)


def _export_path(path, name: str) -> Path:
    path = Path(path)
    return path / name if path.is_dir() else path


def load_generator(path) -> Generator:
    """The generator of a run folder (its ``generator.pt``) or of a
    ``generator.pt`` / ``checkpoint.pt`` file, on the CPU in eval mode, with
    ``.config`` (its :class:`GANConfig`) and ``.framing`` (of its training data)."""
    path = _export_path(path, GENERATOR)
    state = _load(path, ("generator", "gan_checkpoint"))
    config = GANConfig(**state["config"])
    G = build_gan(config)[0]
    G.load_state_dict(state["model"] if state["kind"] == "generator" else state["generator"])
    G.eval().config = config
    G.framing = state["data"]["framing"]
    return G


# ----------------------------------------------------------------------------
# editing and augmentation
# ----------------------------------------------------------------------------

@torch.no_grad()
def _edit_crops(generator: Generator, crops: np.ndarray, targets: np.ndarray,
                batch_size: int = 256) -> torch.Tensor:
    """G applied to uint8 crops (N, S, S, 3) with targets (N, A): float
    (N, 3, S, S) in [-1, 1] on the CPU."""
    device = next(generator.parameters()).device
    was_training = generator.training
    generator.eval()
    parts = []
    try:
        for i in range(0, len(crops), batch_size):
            x = _to_unit(torch.from_numpy(crops[i:i + batch_size]), device)
            c = torch.from_numpy(targets[i:i + batch_size]).float().to(device)
            parts.append(generator(x, c).float().cpu())
    finally:
        generator.train(was_training)
    return torch.cat(parts) if parts else torch.empty(0, 3, *crops.shape[1:3])


def _targets(generator: Generator, attributes, n: int, source) -> np.ndarray:
    """(N, A) float32 targets from an array, or from a {name: 0/1} dict
    applied to every image on top of ``source`` (N, A)."""
    names = list(generator.attribute_names)
    if isinstance(attributes, Mapping):
        unknown = [a for a in attributes if a not in names]
        if unknown:
            raise ValueError(f"generator edits {names}; got unknown {unknown}")
        if source is None and set(attributes) != set(names):
            raise ValueError(f"a dict that sets only {sorted(attributes)} needs the "
                             f"images' current attributes: pass source (N, {len(names)})")
        targets = np.zeros((n, len(names)), np.float32) if source is None else \
            np.array(source, np.float32, copy=True)
        for name, value in attributes.items():
            _set_attribute(targets, slice(None), names.index(name), float(value), names)
    else:
        targets = np.asarray(attributes, np.float32)
    if targets.shape != (n, len(names)):
        raise ValueError(f"targets must be (N={n}, A={len(names)}) for {names}; "
                         f"got {targets.shape}")
    return targets


def edit(generator: Generator, images: np.ndarray, attributes, source=None,
         framing="full", batch_size: int = 256) -> np.ndarray:
    """Edit faces towards target attributes.

    Args:
        images: (N, H, W, 3) uint8 (FaceDataset convention), any size.
        attributes: targets (N, A) in {0, 1} for ``generator.attribute_names``,
            or a dict ``{name: 0/1}`` applied to every image (then ``source``,
            the current (N, A) attributes, gives the unnamed ones).
        framing: the images' face box (``"celeba"``, ``"lfw"``, ``"full"``, ...):
            the box is cut out, resized to G's size, edited, resized back and
            pasted in place.
    Returns:
        (N, H, W, 3) uint8, pixels outside the face box unchanged.
    """
    _check_images(images)
    targets = _targets(generator, attributes, len(images), source)
    crops = face_crops(images, generator.image_size, framing)
    edited = _from_unit(_edit_crops(generator, crops, targets, batch_size))
    return _paste_back(images, edited, framing)


def flip_attribute(generator: Generator, images: np.ndarray, source,
                   attributes: Sequence[str] | None = None, framing="full") -> np.ndarray:
    """One edit per attribute, each flipping that attribute of ``source``
    (N, A) (hair colours stay exclusive): (N, len(attributes), H, W, 3) uint8,
    the gallery of faces (rows) × flipped attribute (columns)."""
    names = list(generator.attribute_names)
    attributes = names if attributes is None else list(attributes)
    source = np.asarray(source, np.float32)
    out = [edit(generator, images, flip_targets(source, a, names), framing=framing)
           for a in attributes]
    return np.stack(out, axis=1) if out else np.zeros((len(images), 0, *images.shape[1:]),
                                                        np.uint8)


def show_edits(images: np.ndarray, edits: np.ndarray, columns: Sequence[str],
               switched_on=None, row_labels: Sequence[str] | None = None,
               title: str | None = None, input_title: str = "input"):
    """A gallery of edits: one row per face, the input then one column per
    edit (e.g. :func:`flip_attribute`'s ``(N, E, H, W, 3)``).

    ``switched_on`` (N, E) marks each edited cell ``+`` (1: the attribute
    switched on), ``−`` (0: off) or nothing (NaN); ``row_labels`` go on the left; column titles
    break at ``_``. Returns the figure (wrap it in :func:`dfh_lib.viz.as_jpeg`)."""
    from .viz import _face_axes

    _check_images(images)
    if edits.shape[:2] != (len(images), len(columns)) or edits.shape[2:] != images.shape[1:]:
        raise ValueError(f"edits must be (N={len(images)}, E={len(columns)}, "
                         f"{', '.join(map(str, images.shape[1:]))}); got {edits.shape}")
    fig, axes = _face_axes(len(images), len(columns) + 1, images.shape[1:3],
                           left=0.9 if row_labels is not None else 0.2)
    for r, row in enumerate(axes):
        row[0].imshow(images[r])
        for c, ax in enumerate(row[1:]):
            ax.imshow(edits[r, c])
            mark = None if switched_on is None else np.asarray(switched_on, float)[r, c]
            if mark is not None and not np.isnan(mark):
                on = bool(mark)
                ax.text(0.04, 0.04, "+" if on else "−", transform=ax.transAxes,
                        color="white", fontsize=6, fontweight="bold", va="bottom",
                        bbox=dict(boxstyle="square,pad=0.1", lw=0,
                                  fc="tab:green" if on else "tab:red"))
        if row_labels is not None:
            row[0].set_ylabel(str(row_labels[r])[:16], rotation=0, ha="right", va="center",
                              fontsize=7)
    for ax, name in zip(axes[0], [input_title, *columns]):
        name = str(name).replace("Mouth_Slightly_Open", "Mouth_open")
        ax.set_title(name.replace("_", "\n"), fontsize=6.5)
    if title:
        fig.suptitle(title, fontsize=9, y=1.0)
    return fig


def _source_attributes(dataset: FaceDataset, names, classifier, framing) -> np.ndarray:
    if dataset.attributes is not None and set(names) <= set(dataset.attribute_names):
        return attribute_matrix(dataset, names)
    if classifier is None:
        raise ValueError(f"dataset {dataset.name!r} has no labels for {list(names)}: pass "
                         f"classifier= (see train_attribute_classifier) to predict them")
    return predict_attributes(classifier, dataset, framing, names)


def _random_flips(source: np.ndarray, names, flippable, copies: int, rng,
                  max_flips: int) -> np.ndarray:
    """(N * copies, A) targets: each copy flips 1..max_flips distinct
    attributes, at most one of them a hair colour (two could cancel out)."""
    targets = np.repeat(source, copies, axis=0)
    columns = [names.index(a) for a in flippable]
    for row in range(len(targets)):
        k = rng.integers(1, min(max_flips, len(columns)) + 1)
        chosen, hair = [], False
        for column in rng.permutation(columns):
            if len(chosen) < k and not (hair and names[column] in HAIR_COLOURS):
                chosen.append(column)
                hair = hair or names[column] in HAIR_COLOURS
        for column in chosen:
            _set_attribute(targets, row, column, 1.0 - targets[row, column], names)
    return targets


def augment(dataset: FaceDataset, generator: Generator, copies_per_image: int = 1,
            attributes: Sequence[str] | None = None, seed: int = 0, max_flips: int = 2,
            framing=None, classifier=None, max_identity_size: int | None = None
            ) -> FaceDataset:
    """``dataset`` followed by GAN-edited copies of its images.

    Each copy of image i flips 1 to ``max_flips`` distinct ``attributes``
    (default: all the generator's), drawn with ``seed``, relative to the
    image's attributes (the dataset's labels, else ``classifier``'s
    predictions). Copies keep the **source** label and identity names (they
    show the same person), come image by image after the originals, have
    ``source_index`` = their source image's, and, where the dataset has
    attributes, the source's attributes with the edited ones set to the
    targets. ``max_identity_size``: only identities with fewer images get
    copies (the few-shot identities).
    """
    if not isinstance(copies_per_image, int) or copies_per_image < 0:
        raise ValueError(f"copies_per_image must be an int >= 0; got {copies_per_image!r}")
    names = list(generator.attribute_names)
    flippable = names if attributes is None else list(attributes)
    if not set(flippable) <= set(names) or not flippable:
        raise ValueError(f"attributes must be some of {names}; got {flippable}")
    framing = framing or framing_for(dataset)
    chosen = np.arange(len(dataset))
    if max_identity_size is not None:
        counts = np.bincount(dataset.labels, minlength=dataset.num_identities)
        chosen = np.flatnonzero(counts[dataset.labels] < max_identity_size)
    source = dataset.subset(chosen)
    if copies_per_image == 0 or len(source) == 0:
        return dataset
    current = _source_attributes(source, names, classifier, framing)
    targets = _random_flips(current, names, flippable, copies_per_image,
                            np.random.default_rng(seed), max_flips)
    images = np.repeat(source.images, copies_per_image, axis=0)
    copies = source.subset(np.repeat(np.arange(len(source)), copies_per_image))
    attrs = copies.attributes
    if attrs is not None and set(names) <= set(dataset.attribute_names):
        attrs = attrs.copy()
        attrs[:, [list(dataset.attribute_names).index(a) for a in names]] = targets
    edited = FaceDataset(edit(generator, images, targets, framing=framing), copies.labels,
                         dataset.identity_names, dataset.name, attrs,
                         dataset.attribute_names if attrs is not None else None,
                         copies.source_index)
    return dataset.concat(edited)


# ----------------------------------------------------------------------------
# the independent attribute classifier
# ----------------------------------------------------------------------------

@dataclass
class ClassifierResult:
    """What :func:`train_attribute_classifier` returns (classifier in eval mode)."""

    classifier: AttributeClassifier
    config: ClassifierConfig
    log: list[dict]


def _classifier_step(model, optimizer, data, config, generator, device):
    def step_fn(step: int) -> dict:
        x, c = _real_batch(data, step, config, generator, device)
        loss = F.binary_cross_entropy_with_logits(model(x), c)
        logged = {"loss": loss.detach()}
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return logged
    return step_fn


def train_attribute_classifier(dataset: FaceDataset, config: ClassifierConfig | str | None = None,
                               run_dir=None, resume: bool = True, progress: bool = True,
                               device=None, framing=None) -> ClassifierResult:
    """Train the independent :class:`AttributeClassifier` on real faces.

    Same checkpoint conventions as :func:`train_gan` (``checkpoint.pt`` with
    exact resume, ``classifier.pt``, ``log.csv``). Train on real CelebA
    images that the evaluation does not use (see :func:`split_by_identity`).
    """
    config = _config_of(ClassifierConfig, config)
    device = get_device(device)
    data, summary = _training_data(dataset, config, framing, device)
    seed_everything(config.seed, config.deterministic)
    model = AttributeClassifier(config.attributes, config.width, config.image_size).to(device)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), config.lr,
                                  weight_decay=config.weight_decay)
    generator = torch.Generator().manual_seed(config.seed)
    loop = _Loop("classifier_checkpoint", config, {"classifier": model},
                 {"optimizer": optimizer}, summary,
                 Path(run_dir) if run_dir is not None else None, generator,
                 {"export_kind": "classifier", "export_name": CLASSIFIER})
    step_fn = _classifier_step(model, optimizer, data, config, generator, device)
    log = loop.run(step_fn, resume, progress, f"attribute classifier {config.image_size}px")
    model.eval().config = config
    return ClassifierResult(model, config, log)


def load_attribute_classifier(path) -> AttributeClassifier:
    """The classifier of a run folder or file, on the CPU in eval mode (``.config``)."""
    state = _load(_export_path(path, CLASSIFIER), ("classifier", "classifier_checkpoint"))
    config = ClassifierConfig(**state["config"])
    model = AttributeClassifier(config.attributes, config.width, config.image_size)
    model.load_state_dict(state["model"] if state["kind"] == "classifier"
                          else state["classifier"])
    model.eval().config = config
    return model


@torch.no_grad()
def _classify(classifier: AttributeClassifier, x: torch.Tensor,
              batch_size: int = 512) -> np.ndarray:
    """Predicted attributes (N, A) in {0, 1} of float images (N, 3, S, S) in [-1, 1]."""
    device = next(classifier.parameters()).device
    was_training = classifier.training
    classifier.eval()
    size = classifier.image_size
    try:
        out = []
        for i in range(0, len(x), batch_size):
            batch = x[i:i + batch_size].to(device)
            if batch.shape[-1] != size:
                batch = F.interpolate(batch, size=(size, size), mode="bilinear",
                                      antialias=True, align_corners=False)
            out.append((classifier(batch) > 0).cpu().numpy())
    finally:
        classifier.train(was_training)
    return np.concatenate(out).astype(np.float32) if out else \
        np.zeros((0, len(classifier.attribute_names)), np.float32)


def predict_attributes(classifier: AttributeClassifier, dataset: FaceDataset, framing=None,
                       attributes: Sequence[str] | None = None) -> np.ndarray:
    """The classifier's attributes of ``dataset``: (N, len(attributes)) in {0, 1}."""
    names = list(classifier.attribute_names)
    attributes = names if attributes is None else list(attributes)
    if not set(attributes) <= set(names):
        raise ValueError(f"the classifier knows {names}; asked for {attributes}")
    crops = face_crops(dataset.images, classifier.image_size, framing or framing_for(dataset))
    pred = _classify(classifier, _to_unit(torch.from_numpy(crops), "cpu"))
    return pred[:, [names.index(a) for a in attributes]]


def attribute_accuracy(classifier: AttributeClassifier, dataset: FaceDataset,
                       framing=None) -> dict[str, float]:
    """Per-attribute accuracy (and ``"mean"``) on labelled held-out real faces."""
    names = list(classifier.attribute_names)
    correct = predict_attributes(classifier, dataset, framing) == attribute_matrix(dataset, names)
    result = {a: float(correct[:, j].mean()) for j, a in enumerate(names)}
    return {**result, "mean": float(np.mean(list(result.values())))}


def edit_success_rate(classifier: AttributeClassifier, generator: Generator,
                      dataset: FaceDataset, attributes: Sequence[str] | None = None,
                      framing=None) -> dict[str, float]:
    """Per attribute a (and ``"mean"``): the fraction of images whose edit
    flipping a (from the dataset's labels) the classifier reads as the target
    value of a. Use labelled held-out real faces; the classifier judges the
    edited face crops at G's size."""
    names = list(generator.attribute_names)
    attributes = names if attributes is None else list(attributes)
    if not set(attributes) <= set(names) & set(classifier.attribute_names):
        raise ValueError(f"attributes must be known to both the generator {names} and the "
                         f"classifier {list(classifier.attribute_names)}; got {attributes}")
    source = attribute_matrix(dataset, names)
    crops = face_crops(dataset.images, generator.image_size, framing or framing_for(dataset))
    result = {}
    for a in attributes:
        targets = flip_targets(source, a, names)
        pred = _classify(classifier, _edit_crops(generator, crops, targets))
        column = list(classifier.attribute_names).index(a)
        result[a] = float((pred[:, column] == targets[:, names.index(a)]).mean())
    return {**result, "mean": float(np.mean(list(result.values())))}


# ----------------------------------------------------------------------------
# shipped checkpoints (package data)
# ----------------------------------------------------------------------------

PRETRAINED = {
    "stargan-gpu-celeba": {
        "kind": "generator", "file": GENERATOR,
        "what": "StarGAN face-attribute editor, 64 px, the 7 DEFAULT_ATTRIBUTES",
        "command": "python -m dfh_lib gan train --profile gpu --dataset celeba --device cuda "
                   "--steps 8000 --run-dir runs/gan/gpu-celeba",
        "data": "CelebA subset (first 5,000 aligned images): 4,506 training images, 10 % "
                "of the identities held out (seed 0)",
        "device": "NVIDIA H100 80GB HBM3, torch 2.11: 8,000 steps (batch 16) in 167 s",
    },
    "attributes-gpu-celeba": {
        "kind": "classifier", "file": CLASSIFIER,
        "what": "independent attribute classifier, 64 px, the same 7 attributes",
        "command": "python -m dfh_lib gan classifier --profile gpu --dataset celeba "
                   "--device cuda --run-dir runs/gan/gpu-celeba-classifier",
        "data": "the same CelebA split as the generator (held-out identities unseen)",
        "device": "NVIDIA H100 80GB HBM3: 3,000 steps (batch 128) in 35 s; held-out "
                  "accuracy 0.900 mean",
    },
}


def _pretrained_entry(name: str) -> dict:
    if name not in PRETRAINED:
        raise ValueError(f"unknown pretrained checkpoint {name!r}; shipped: {sorted(PRETRAINED)}")
    return PRETRAINED[name]


def pretrained(name: str = "stargan-gpu-celeba"):
    """A checkpoint shipped with the library (``dfh_lib/pretrained/<name>``,
    package data, so it also loads from an installed package, e.g. on Colab):
    the :class:`Generator` or :class:`AttributeClassifier` of :data:`PRETRAINED`,
    on the CPU in eval mode, with ``.pretrained`` = its entry (command, data,
    device). Retrain it with the entry's ``command`` (a GPU: minutes)."""
    from importlib.resources import as_file, files

    entry = _pretrained_entry(name)
    resource = files("dfh_lib").joinpath("pretrained", name, entry["file"])
    with as_file(resource) as path:
        model = load_generator(path) if entry["kind"] == "generator" \
            else load_attribute_classifier(path)
    model.pretrained = {"name": name, **entry}
    return model


def pretrained_log(name: str = "stargan-gpu-celeba"):
    """The training log (``log.csv``) of a shipped checkpoint as a
    ``pandas.DataFrame`` indexed by step (window means of the loss terms)."""
    from importlib.resources import files

    import pandas as pd

    _pretrained_entry(name)
    with files("dfh_lib").joinpath("pretrained", name, LOG).open() as f:
        return pd.read_csv(f).set_index("step")


# tiny (CI) keeps the held-out evaluation to this many faces
_HELD_OUT_CAP = {"tiny": 48}


def held_out_faces(profile: Profile | str | None = None, holdout: float = 0.1,
                   seed: int = 0) -> FaceDataset:
    """Labelled faces that neither shipped checkpoint saw: the held-out
    identities of CelebA (the split of ``python -m dfh_lib gan ...``: 494
    images of the 5,000-image subset) when CelebA is present in
    ``DFH_DATA_DIR``, else of the embedded synthfaces (which carry the same
    attribute names). The ``tiny`` profile keeps the first 48."""
    from .data import available

    profile = get_profile(profile)
    name = "celeba" if available("celeba") else "synthfaces"
    if name == "synthfaces":
        print("No local CelebA copy (DFH_DATA_DIR): held-out faces from the embedded "
              "synthfaces.")
    test = _cli_dataset(name, profile, holdout, seed)[1]
    cap = _HELD_OUT_CAP.get(profile.name)
    return test.subset(np.arange(min(cap, len(test)))) if cap else test


# ----------------------------------------------------------------------------
# identity preservation: does an edited face still find its own person?
# ----------------------------------------------------------------------------

def _with_images(dataset: FaceDataset, images: np.ndarray) -> FaceDataset:
    return FaceDataset(images, dataset.labels, dataset.identity_names, dataset.name,
                       dataset.attributes, dataset.attribute_names, dataset.source_index)


def identity_preservation(model, generator: Generator, splits, classifier=None,
                          attributes: Sequence[str] | None = None, framing=None) -> list[dict]:
    """How often an edited query face still retrieves its own identity first.

    Each query of ``splits`` is edited once per attribute (that attribute
    flipped relative to its labels, else ``classifier``'s predictions) and
    searched, like the original, in ``splits.database`` with ``model``'s
    binary codes (Hamming ranking, ties by database index). One row per
    attribute, then ``"all"`` (every edit pooled):

    * ``top1_original`` / ``top1_edited``: fraction of queries whose rank-1
      database face has the query's identity;
    * ``kept``: of the queries whose original is right at rank 1, the
      fraction whose edit is right too (the identity-preservation rate);
    * ``mAP_original`` / ``mAP_edited``: query-vs-database mAP;
    * ``bits_changed``: mean Hamming distance between the codes of a face
      and of its edit.

    Two control rows come first, not part of ``"all"``: ``"(resize only)"``
    pastes back the unedited face box (what the resizing to and from the
    generator's size costs) and ``"(no flip)"`` passes each query through
    the generator with its own attributes (what the generator's
    reconstruction costs when no attribute is asked to change).
    """
    from .metrics import evaluate_retrieval, hamming_ranking
    from .train import binary_codes

    names = list(generator.attribute_names)
    attributes = names if attributes is None else list(attributes)
    if not set(attributes) <= set(names) or not attributes:
        raise ValueError(f"attributes must be some of {names}; got {attributes}")
    query, database = splits.query, splits.database
    framing = framing or framing_for(query)
    source = _source_attributes(query, names, classifier, framing)
    db_codes = binary_codes(model, database)

    def search(images):
        codes = binary_codes(model, _with_images(query, images))
        top = hamming_ranking(codes, db_codes, topk=1)[:, 0].numpy()
        mAP = evaluate_retrieval(codes, db_codes, query.labels, database.labels)["mAP"]
        return codes, database.labels[top] == query.labels, mAP

    codes0, hit0, map0 = search(query.images)
    crops = face_crops(query.images, generator.image_size, framing)
    rows, hits = [], []
    for a in ["(resize only)", "(no flip)", *attributes]:
        if a == "(resize only)":
            edited = crops
        else:
            targets = source if a == "(no flip)" else flip_targets(source, a, names)
            edited = _from_unit(_edit_crops(generator, crops, targets))
        codes, hit, mAP = search(_paste_back(query.images, edited, framing))
        if a in attributes:
            hits.append(hit)
        rows.append({"attribute": a, "top1_original": float(hit0.mean()),
                     "top1_edited": float(hit.mean()),
                     "kept": float((hit & hit0).sum() / max(hit0.sum(), 1)),
                     "mAP_original": float(map0), "mAP_edited": float(mAP),
                     "bits_changed": float((codes != codes0).sum(1).float().mean())})
    pooled = np.concatenate(hits)
    both = np.tile(hit0, len(attributes))
    rows.append({"attribute": "all", "top1_original": float(hit0.mean()),
                 "top1_edited": float(pooled.mean()),
                 "kept": float((pooled & both).sum() / max(both.sum(), 1)),
                 "mAP_original": float(map0),
                 "mAP_edited": float(np.mean([r["mAP_edited"] for r in rows[2:]])),
                 "bits_changed": float(np.mean([r["bits_changed"] for r in rows[2:]]))})
    return rows


# ----------------------------------------------------------------------------
# the augmentation experiment (low-shot LFW)
# ----------------------------------------------------------------------------

# condition -> (classic flip + crop augmentation, GAN-edited copies)
AUGMENTATIONS = {"none": (False, False), "classic": (True, False),
                 "gan": (False, True), "gan+classic": (True, True)}
# training images every run of the experiment sees, per profile (others: 400 x epochs)
IMAGES_SEEN = {"tiny": 200, "cpu": 12_000, "gpu": 40_000}


def _short_hash(images: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(images).tobytes()).hexdigest()[:8]


def augmentation_experiment(splits, generator: Generator | None = None, classifier=None,
                            shots: Sequence[int] = (1, 2, 5), bits=(12, 24, 36, 48),
                            profile: Profile | str | None = None, runs_dir=None,
                            method: str = "dfh", conditions: Sequence[str] = tuple(AUGMENTATIONS),
                            copies_per_image: int = 4, images_seen: int | None = None,
                            seed: int = 0, framing=None, progress: bool = False):
    """Hashing with few training images per person, with and without augmentation.

    For each ``k`` in ``shots`` the training set is
    :func:`dfh_lib.data.low_shot` ``(splits, k, seed)`` (query, database and
    validation unchanged), and ``method`` is trained through the one loop
    (:func:`dfh_lib.experiments.run_methods`, train-or-load under
    ``runs_dir/k<k>/``) at every code length in ``bits`` under each condition
    of :data:`AUGMENTATIONS`:

    * ``none``: the k real images;
    * ``classic``: the same with random flips and padded random crops
      (``TrainConfig.augment``);
    * ``gan``: the k real images plus ``copies_per_image`` GAN edits of each
      (:func:`augment`: 1-2 random attribute flips relative to the image's
      attributes, its labels or ``classifier``'s predictions), labelled with
      the source identity;
    * ``gan+classic``: both.

    **Equal budget.** Every run sees the same number of training images,
    ``images_seen`` (default :data:`IMAGES_SEEN` of the profile: 12,000 in
    the cpu profile), so ``epochs = round(images_seen / len(train))``:
    a GAN-augmented set gets fewer epochs, not more updates. Validation
    (model selection) runs about 10 times per run.

    The edits are made once, for the largest k (the smaller k's training
    images are a subset, see :func:`~dfh_lib.data.low_shot`), and each k
    keeps the copies of its own images.

    Returns:
        :class:`~dfh_lib.experiments.ExperimentResult` with rows
        ``condition, k, bits, mAP, P@H<=2, ..., train_images, epochs,
        best_epoch, seconds``; ``codes`` and ``histories`` keyed by
        ``(condition, k, bits)``; ``gan_train``: the largest k's training
        set with its GAN copies (None without GAN conditions);
        ``images_seen``: the budget used.
    """
    from .data import low_shot
    from .experiments import ExperimentResult, Variant, run_methods

    unknown = [c for c in conditions if c not in AUGMENTATIONS]
    if unknown or not conditions:
        raise ValueError(f"conditions must be some of {list(AUGMENTATIONS)}; got {list(conditions)}")
    shots = sorted({int(k) for k in shots})
    if not shots or shots[0] < 1:
        raise ValueError(f"shots must be positive ints; got {shots}")
    wants_gan = any(AUGMENTATIONS[c][1] for c in conditions)
    if wants_gan and generator is None:
        raise ValueError(f"conditions {list(conditions)} need a generator (e.g. "
                         f"dfh.gan.pretrained())")
    profile = get_profile(profile)
    images_seen = images_seen or IMAGES_SEEN.get(profile.name, 400 * profile.epochs)
    pool = tag = None
    if wants_gan:
        largest = low_shot(splits, shots[-1], seed).train
        pool = augment(largest, generator, copies_per_image, seed=seed, framing=framing,
                       classifier=classifier)
        tag = _short_hash(pool.images[len(largest):])  # names the runs of these edits
    result = ExperimentResult()
    result.gan_train, result.images_seen = pool, images_seen
    for k in shots:
        small = low_shot(splits, k, seed)
        for condition in conditions:
            classic, gan = AUGMENTATIONS[condition]
            train = small.train
            if gan:
                train = pool.subset(np.isin(pool.source_index, small.train.source_index))
            split_k = small if train is small.train else \
                type(small)(train, small.val_query, small.query, small.database, small.seed,
                            small.description + f"; + {copies_per_image} GAN edits per image")
            epochs = max(1, round(images_seen / len(train)))
            label = condition if not gan else f"{condition}-{copies_per_image}x{tag}"
            runs = None if runs_dir is None else Path(runs_dir) / f"k{k}"
            part = run_methods(split_k, (Variant(label, method),), bits, profile, runs,
                               progress, epochs=epochs, eval_every=max(1, epochs // 10),
                               augment=classic)
            for row in part.rows:
                key = (condition, k, row["bits"])
                result.rows.append({"condition": condition, "k": k,
                                    **{n: v for n, v in row.items() if n != "method"},
                                    "train_images": len(train), "epochs": epochs})
                result.codes[key] = part.codes[(label, row["bits"])]
                result.histories[key] = part.histories[(label, row["bits"])]
    return result


# ----------------------------------------------------------------------------
# command line
# ----------------------------------------------------------------------------

def _cli_dataset(name: str, profile: Profile, holdout: float, seed: int):
    """(train, test) of the CLI's dataset: CelebA from DFH_DATA_DIR, or synthfaces."""
    from .data import load_dataset, load_synthfaces

    if name == "synthfaces":
        faces = load_synthfaces(profile.synth_identities, profile.synth_images_per_identity,
                                size=max(profile.synth_size, 32))
    else:
        faces = load_dataset(name)
    return split_by_identity(faces, holdout, seed)


def main_gan(argv=None):
    """``python -m dfh_lib gan {train,classifier} --profile cpu --dataset celeba``."""
    parser = argparse.ArgumentParser(prog="python -m dfh_lib gan", description=(
        "Train the StarGAN face editor or the independent attribute classifier on the "
        "identities not held out (held-out: --holdout of them, seeded)."))
    parser.add_argument("what", choices=("train", "classifier"))
    parser.add_argument("--profile", default=None, help="tiny, cpu or gpu (default: "
                        "$DFH_PROFILE, else gpu with CUDA, else cpu)")
    parser.add_argument("--dataset", default="celeba", help="celeba (DFH_DATA_DIR) or synthfaces")
    parser.add_argument("--steps", type=int, default=None, help="override the profile")
    parser.add_argument("--batch-size", type=int, default=None, help="override the profile")
    parser.add_argument("--run-dir", default=None,
                        help="default: runs/gan/<profile>-<dataset>[-classifier]")
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: best)")
    parser.add_argument("--holdout", type=float, default=0.1, help="identities held out")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    profile = get_profile(args.profile)
    train, test = _cli_dataset(args.dataset, profile, args.holdout, 0)
    overrides = {k: v for k, v in (("steps", args.steps), ("batch_size", args.batch_size))
                 if v is not None}
    suffix = "" if args.what == "train" else "-classifier"
    run_dir = Path(args.run_dir or f"runs/gan/{profile.name}-{args.dataset}{suffix}")
    start, accuracy = time.perf_counter(), None
    if args.what == "train":
        config = GANConfig.from_profile(profile, **overrides)
        result = train_gan(train, config, run_dir, progress=not args.no_progress,
                           device=args.device)
    else:
        config = ClassifierConfig.from_profile(profile, **overrides)
        result = train_attribute_classifier(train, config, run_dir,
                                            progress=not args.no_progress, device=args.device)
        accuracy = attribute_accuracy(result.classifier.cpu(), test)
    last = {k: round(v, 4) for k, v in result.log[-1].items()} if result.log else {}
    print(f"{args.what} on {len(train)} {args.dataset} images ({len(test)} held out), "
          f"{config.steps} steps in {time.perf_counter() - start:.0f} s -> {run_dir}\n"
          f"last log row: {last}")
    if accuracy is not None:
        print("held-out accuracy: " + ", ".join(f"{k} {v:.3f}" for k, v in accuracy.items()))
    return result
