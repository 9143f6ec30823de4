"""StarGAN's networks and training configurations, and the independent
attribute classifier that judges its edits.

StarGAN (Choi et al., *StarGAN: Unified Generative Adversarial Networks for
Multi-Domain Image-to-Image Translation*, CVPR 2018) edits a face ``x`` towards
a target attribute vector ``c`` (``n_attrs`` values in {0, 1}) with one
generator ``G(x, c)``. A PatchGAN discriminator ``D`` has two heads: a
real/fake score ``D_src`` and attribute logits ``D_cls`` (the losses:
:mod:`dfh_lib.nn.losses.gan`; the training loop:
:mod:`dfh_lib.engine.gan_training`). :class:`GANConfig` holds StarGAN's
settings: λ_cls = 1, λ_rec = 10, λ_gp = 10, n_critic = 5 (``G`` is updated
after every 5th ``D`` update; one *step* is one ``D`` update, the official
``num_iters``), Adam(1e-4, betas (0.5, 0.999)), learning rates decayed
linearly to 0 over the second half of the steps.

**Masked editing.** With ``masked=True`` (:class:`GANConfig`) the generator
predicts, besides a colour image ``e``, an attention mask ``m`` in [0, 1] per
pixel and returns ``m·e + (1 − m)·x`` (GANimation, Pumarola et al., ECCV
2018): where the mask is 0 the input passes through exactly, so the face is
kept by construction wherever the edit does not need to act. A mask penalty
``λ_mask·mean(m)`` keeps the edited area small, and an identity loss from a
frozen face embedding network (``λ_id``, :mod:`dfh_lib.nn.losses.gan`) keeps
the edited face the same person.

**Attributes.** :data:`DEFAULT_ATTRIBUTES` are visible attributes that do not
change who a person is (no ``Male``, ``Young``, beards), and which the embedded
synthfaces dataset also carries, so the tiny profile runs offline.

Taught in Chapter 5 (book/05_gan_augmentation.ipynb).
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, fields
from typing import Sequence

import torch
from torch import nn

from ..core.profiles import Profile, get_profile

__all__ = ["DEFAULT_ATTRIBUTES", "HAIR_COLOURS", "GANConfig", "ClassifierConfig",
           "ResidualBlock", "Generator", "Discriminator", "AttributeClassifier", "build_gan"]

DEFAULT_ATTRIBUTES = ("Black_Hair", "Blond_Hair", "Brown_Hair", "Bangs",
                      "Eyeglasses", "Smiling", "Mouth_Slightly_Open")
# a person has at most one hair colour: setting one on switches the others off
HAIR_COLOURS = ("Black_Hair", "Blond_Hair", "Brown_Hair", "Gray_Hair")


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

    ``masked=True``: the last conv gives a colour image ``e`` (tanh) and an
    attention mask ``m`` (sigmoid), and ``G(x, c) = m·e + (1 − m)·x``
    (:meth:`layers` returns ``(e, m)``, :meth:`compose` blends them).

    ``c`` is tiled to A extra input channels; a 7×7 conv, two stride-2 4×4
    down-sampling convs, ``res_blocks`` residual blocks, two transposed-conv
    up-samplings and a 7×7 conv; instance norm + ReLU between. ``width`` is
    the first layer's channels (StarGAN: 64, 6 blocks); S must be a multiple of 4.
    """

    def __init__(self, attributes: Sequence[str], width: int = 32, res_blocks: int = 4,
                 image_size: int = 64, masked: bool = False):
        super().__init__()
        if image_size % 4:
            raise ValueError(f"image_size must be a multiple of 4; got {image_size}")
        self.attribute_names = tuple(attributes)
        self.image_size = image_size
        self.masked = bool(masked)
        n = len(self.attribute_names)
        w = width
        self.body = nn.Sequential(
            *_conv_block(3 + n, w, 7, 1, 3), *_conv_block(w, 2 * w, 4, 2, 1),
            *_conv_block(2 * w, 4 * w, 4, 2, 1),
            *[ResidualBlock(4 * w) for _ in range(res_blocks)],
            *_conv_block(4 * w, 2 * w, 4, 2, 1, transpose=True),
            *_conv_block(2 * w, w, 4, 2, 1, transpose=True),
            *([nn.Conv2d(w, 4, 7, 1, 3)] if self.masked
              else [nn.Conv2d(w, 3, 7, 1, 3, bias=False), nn.Tanh()]))

    def _run(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        if c.shape != (len(x), len(self.attribute_names)):
            raise ValueError(f"targets c must be (N={len(x)}, A={len(self.attribute_names)}); "
                             f"got {tuple(c.shape)}")
        c = c.to(x.dtype)[:, :, None, None].expand(-1, -1, *x.shape[2:])
        return self.body(torch.cat([x, c], dim=1))

    def layers(self, x: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A masked generator's colour image (N, 3, S, S) in [-1, 1] and
        mask (N, 1, S, S) in [0, 1]."""
        if not self.masked:
            raise ValueError("layers() needs a masked generator (GANConfig(masked=True))")
        out = self._run(x, c)
        return torch.tanh(out[:, :3]), torch.sigmoid(out[:, 3:])

    @staticmethod
    def compose(x: torch.Tensor, colour: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``mask·colour + (1 − mask)·x``: exactly ``x`` where the mask is 0."""
        return mask * colour + (1 - mask) * x

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        if not self.masked:
            return self._run(x, c)
        return self.compose(x, *self.layers(x, c))


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
# configurations
# ----------------------------------------------------------------------------

class _Config:
    """Shared helpers of the frozen config dataclasses below."""

    _PROFILES: dict = {}
    _NOT_IN_FINGERPRINT = ("log_every", "checkpoint_every")
    _ADDED_LATER: dict = {}

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
                    if k not in self._NOT_IN_FINGERPRINT
                    and not (k in self._ADDED_LATER and v == self._ADDED_LATER[k])}
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
        masked: the generator blends a colour image into its input through an
            attention mask (see the module doc).
        lambda_mask: weight of the mask penalty ``mean(m)`` (masked only).
        lambda_id: weight of the identity loss ``1 − cos(f(G(x, c')), f(x))``
            from a frozen face embedding network ``f`` (``train_gan``'s
            ``identity_net``).
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
    masked: bool = False
    lambda_mask: float = 0.0
    lambda_id: float = 0.0
    augment_flip: bool = True
    seed: int = 0
    deterministic: bool = False
    log_every: int = 100
    checkpoint_every: int = 1000

    # fields added after checkpoints were shipped: left out of the fingerprint
    # at their default, so runs made before them still resume
    _ADDED_LATER = {"masked": False, "lambda_mask": 0.0, "lambda_id": 0.0}

    def __post_init__(self):
        self._check_common()
        if min(self.lambda_mask, self.lambda_id) < 0:
            raise ValueError(f"lambda_mask and lambda_id must be >= 0; got "
                             f"{self.lambda_mask}, {self.lambda_id}")
        if self.lambda_mask > 0 and not self.masked:
            raise ValueError("lambda_mask needs a masked generator (masked=True)")
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


def build_gan(config: GANConfig) -> tuple[Generator, Discriminator]:
    """G and D of ``config`` (initialised from the current torch seed)."""
    G = Generator(config.attributes, config.g_width, config.g_res_blocks, config.image_size,
                  config.masked)
    D = Discriminator(len(config.attributes), config.image_size, config.d_width,
                      config.d_max_width)
    return G, D

