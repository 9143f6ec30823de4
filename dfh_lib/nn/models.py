"""Hash networks: face images ``x`` (N, 3, H, W) in [0, 1] -> relaxed codes ``u`` (N, bits).

Every network is a :class:`HashNetwork`: it normalises its input itself (a
mean/std buffer), has an attribute ``bits``, returns ``u`` in [-1, 1] from
``forward`` (``tanh``; raw pre-activations ``z`` when built with
``activation=None``), and exposes intermediate outputs by name through
``features(x, depths)`` so later chapters can attach supervised heads at
several depths. The names are shared by all networks::

    "block1" .. "block4"   feature maps, shallow to deep (N, C_i, H_i, W_i)
    "embedding"            the vector fed to the hash layer (N, D)
    "u"                    the relaxed codes (N, bits)

(:class:`SmallResNet` and :class:`TorchvisionResNet` also have ``"stem"``.)

Networks: :class:`DDHNet` (the DDH network for 32x32 faces; Lin, Li, Tang,
IJCAI 2017), :class:`SmallResNet` (a CPU-sized ResNet for 32-64 px) and
:class:`TorchvisionResNet` (ResNet-18/50, optional ImageNet weights). Build
them by name with :func:`build_model`.
"""
from __future__ import annotations

import abc
import hashlib
import math
import os
import warnings
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
import torchvision
from torch import nn
from torchvision.models.resnet import BasicBlock

from ..core.data.paths import cache_dir

__all__ = [
    "MODEL_NAMES", "EmbeddingHashNet", "load_face_embedding", "backbone_file", "weights_id",
    "IMAGENET_MEAN", "IMAGENET_STD", "Standardize", "HashHead",
    "LocallyConnected2d", "DivideAndEncode", "HashNetwork", "DDHNet", "SmallResNet",
    "TorchvisionResNet", "build_model", "count_parameters",
]

MODEL_NAMES = ("ddh", "small_resnet", "resnet18", "resnet50", "face_embedding",
               "face_embedding_ft")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_TORCHVISION_RESNETS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")


# ----------------------------------------------------------------------------
# argument checks
# ----------------------------------------------------------------------------

def _as_size(image_size) -> tuple[int, int]:
    """``32`` or ``(32, 32)`` -> ``(32, 32)``; anything else is a ValueError."""
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    if len(size) != 2 or not all(isinstance(s, int) and s > 0 for s in size):
        raise ValueError(f"image_size must be a positive int or (height, width); "
                         f"got {image_size!r}")
    return size


def _check_bits(bits) -> int:
    if not isinstance(bits, int) or isinstance(bits, bool) or bits < 1:
        raise ValueError(f"bits must be a positive int (e.g. 12, 24, 36, 48); got {bits!r}")
    return bits


def _activation(activation) -> nn.Module:
    if activation == "tanh":
        return nn.Tanh()
    if activation is None:
        return nn.Identity()
    raise ValueError(f"activation must be 'tanh' or None (raw outputs z); got {activation!r}")


def _check_images(x, channels: int, image_size: tuple[int, int] | None = None) -> None:
    """Raise a ValueError naming the fix unless ``x`` is (N, channels, H, W) float."""
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[1] != channels:
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        hint = ""
        if isinstance(x, torch.Tensor) and x.ndim == 4 and x.shape[-1] == channels:
            hint = " — channels-last images? use x.permute(0, 3, 1, 2)"
        raise ValueError(f"x must have shape (N, {channels}, H, W); got {got}{hint}")
    if not x.is_floating_point():
        raise ValueError(f"x must be float images in [0, 1]; got {x.dtype} — use x.float() / 255")
    if image_size is not None and tuple(x.shape[2:]) != image_size:
        raise ValueError(
            f"this network was built for image_size={image_size}; got images of size "
            f"{tuple(x.shape[2:])} — resize the images or rebuild the network with "
            f"image_size={tuple(x.shape[2:])}")


# ----------------------------------------------------------------------------
# building blocks
# ----------------------------------------------------------------------------

class Standardize(nn.Module):
    """Per-channel ``(x - mean) / std`` with the statistics as buffers.

    They move with ``.to(device)`` and are saved in the state dict, so a
    training loop can feed [0, 1] images to any network.

    Shapes: ``x`` (N, C, H, W) float -> (N, C, H, W).
    """

    def __init__(self, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD):
        super().__init__()
        if len(mean) != len(std) or min(std) <= 0:
            raise ValueError(f"mean and std need one value per channel and std > 0; "
                             f"got {mean}, {std}")
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class HashHead(nn.Sequential):
    """Linear -> BatchNorm -> tanh: features (N, in_features) -> u (N, bits).

    ``activation=None`` returns the pre-activations ``z`` (for losses that
    apply their own squashing: HashNet's tanh(βz), GreedyHash's sign).
    """

    def __init__(self, in_features: int, bits: int, activation: str | None = "tanh",
                 batch_norm: bool = True):
        layers = [nn.Linear(in_features, _check_bits(bits))]
        if batch_norm:
            layers.append(nn.BatchNorm1d(bits))
        layers.append(_activation(activation))
        super().__init__(*layers)
        self.bits = bits


class LocallyConnected2d(nn.Module):
    """A convolution whose weights differ at every output location (no sharing).

    Keras' ``LocallyConnected2D`` with 'valid' padding, as used by DeepID and
    DDH: ``out[n, o, p] = bias[o, p] + Σ_f patch[n, f, p] · weight[p, f, o]``
    over the ``in_channels · k · k`` values ``f`` of patch ``p``, computed with
    :class:`torch.nn.Unfold` and one einsum.

    Shapes: ``x`` (N, in_channels, *input_size) -> (N, out_channels, H', W')
    with ``H' = (H - k) // stride + 1``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int,
                 input_size: tuple[int, int], stride: int = 1):
        super().__init__()
        self.input_size = _as_size(input_size)
        self.out_channels = out_channels
        self.output_size = tuple((s - kernel_size) // stride + 1 for s in self.input_size)
        if min(self.output_size) < 1:
            raise ValueError(f"input_size {self.input_size} is smaller than "
                             f"kernel_size {kernel_size}")
        locations, fan_in = math.prod(self.output_size), in_channels * kernel_size ** 2
        self.unfold = nn.Unfold(kernel_size, stride=stride)
        # He-uniform per location, as Keras' he_uniform in the DDH code
        bound = math.sqrt(6.0 / fan_in)
        weight = torch.empty(locations, fan_in, out_channels).uniform_(-bound, bound)
        self.weight = nn.Parameter(weight)
        self.bias = nn.Parameter(torch.zeros(out_channels, locations))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[2:]) != self.input_size:
            raise ValueError(f"LocallyConnected2d was built for inputs of size {self.input_size}; "
                             f"got {tuple(x.shape[2:])}")
        patches = self.unfold(x)  # (N, fan_in, locations)
        out = torch.einsum("nfl,lfo->nol", patches, self.weight) + self.bias
        return out.reshape(len(x), self.out_channels, *self.output_size)


class DivideAndEncode(nn.Module):
    """DDH's divide-and-encode layer: bit k sees only its own group of units.

    The input (N, bits · group_size) is split into ``bits`` groups and each
    group is mapped to one value by its own ``Linear(group_size, 1)``,
    vectorised as ``(x.view(N, bits, g) * weight).sum(-1) + bias``. Separate
    groups reduce redundancy between bits (Lai et al., CVPR 2015).

    Shapes: (N, bits · group_size) -> (N, bits).
    """

    def __init__(self, bits: int, group_size: int = 4):
        super().__init__()
        self.bits, self.group_size = _check_bits(bits), group_size
        bound = 1.0 / math.sqrt(group_size)  # nn.Linear(group_size, 1)'s default range
        self.weight = nn.Parameter(torch.empty(bits, group_size).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(bits).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 2 or x.shape[1] != self.bits * self.group_size:
            raise ValueError(f"DivideAndEncode expects (N, {self.bits * self.group_size}); "
                             f"got {tuple(x.shape)}")
        return (x.view(len(x), self.bits, self.group_size) * self.weight).sum(-1) + self.bias


# ----------------------------------------------------------------------------
# networks
# ----------------------------------------------------------------------------

class HashNetwork(nn.Module, abc.ABC):
    """Base class: image batch -> named intermediate outputs -> relaxed codes.

    Subclasses set ``feature_names`` and implement ``_stages(x)``, a generator
    of ``(name, tensor)`` pairs in depth order ending with ``("u", codes)``.
    ``features`` stops the pass as soon as every requested name is produced.
    """

    feature_names: tuple[str, ...] = ()
    fixed_input_size = False  # True where weights depend on the input size

    def __init__(self, bits: int, image_size, activation: str | None):
        super().__init__()
        self.bits = _check_bits(bits)
        self.image_size = _as_size(image_size)
        _activation(activation)  # fail early on a bad name
        self.activation = activation
        self.normalize = Standardize()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` (N, 3, H, W) float in [0, 1] -> ``u`` (N, bits)."""
        return self.features(x, ("u",))["u"]

    def features(self, x: torch.Tensor, depths: Sequence[str] | str | None = None
                 ) -> dict[str, torch.Tensor]:
        """Intermediate outputs by name (all of ``feature_names`` when ``depths`` is None)."""
        wanted = self._wanted(depths)
        _check_images(x, 3, self.image_size if self.fixed_input_size else None)
        out = {}
        for name, value in self._stages(self.normalize(x)):
            if name in wanted:
                out[name] = value
                if len(out) == len(wanted):
                    break
        return out

    def _wanted(self, depths) -> set[str]:
        if depths is None:
            return set(self.feature_names)
        wanted = {depths} if isinstance(depths, str) else set(depths)
        if not wanted or not wanted <= set(self.feature_names):
            raise ValueError(f"depths must be names from {self.feature_names}; got {depths!r}")
        return wanted

    @abc.abstractmethod
    def _stages(self, x: torch.Tensor) -> Iterator[tuple[str, torch.Tensor]]:
        """Yield ``(name, output)`` for each of ``feature_names`` in order."""

    def extra_repr(self) -> str:
        return f"bits={self.bits}, image_size={self.image_size}, activation={self.activation!r}"


def _conv_bn_relu_pool(in_channels: int, out_channels: int, kernel_size: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, kernel_size),
                         nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True), nn.MaxPool2d(2))


class DDHNet(HashNetwork):
    """The DDH network (Lin, Li, Tang, "Discriminative Deep Hashing for Scalable
    Face Image Retrieval", IJCAI 2017; layers from the released Keras code).

    conv 20@3x3 -> pool -> conv 40@2x2 -> pool -> conv 60@2x2 -> pool
    -> locally-connected 80@2x2; flatten(pool3) ⊕ flatten(LC4) -> Linear(4K)
    -> BN -> ReLU -> divide-and-encode (K groups of 4 units) -> BN -> tanh.
    Every conv/LC layer is followed by BN -> ReLU as in the released code.

    The LC layer's weights are per location, so the network is built for one
    ``image_size`` (>= 24x24; 32x32 in the paper) and checks its inputs.

    Features: ``block1..3`` the pooled conv maps, ``block4`` the LC map,
    ``embedding`` the (N, 4·bits) layer, ``u`` the codes. At 32x32:
    (20, 15, 15), (40, 7, 7), (60, 3, 3), (80, 2, 2).
    """

    feature_names = ("block1", "block2", "block3", "block4", "embedding", "u")
    fixed_input_size = True

    def __init__(self, bits: int, image_size=(32, 32), activation: str | None = "tanh",
                 group_size: int = 4):
        super().__init__(bits, image_size, activation)
        side = [self.image_size]
        for k in (3, 2, 2):  # valid conv k, then 2x2 max-pool
            side.append(tuple((s - k + 1) // 2 for s in side[-1]))
        h, w = side[-1]
        if min(h, w) < 2:
            raise ValueError(f"image_size must be at least 24x24 for DDHNet; got {self.image_size}")
        self.block1 = _conv_bn_relu_pool(3, 20, 3)
        self.block2 = _conv_bn_relu_pool(20, 40, 2)
        self.block3 = _conv_bn_relu_pool(40, 60, 2)
        self.block4 = nn.Sequential(LocallyConnected2d(60, 80, 2, (h, w)),
                                    nn.BatchNorm2d(80), nn.ReLU(inplace=True))
        merged = 60 * h * w + 80 * (h - 1) * (w - 1)
        self.embedding = nn.Sequential(nn.Linear(merged, group_size * bits),
                                       nn.BatchNorm1d(group_size * bits), nn.ReLU(inplace=True))
        self.encode = nn.Sequential(DivideAndEncode(bits, group_size), nn.BatchNorm1d(bits),
                                    _activation(activation))

    def _stages(self, x):
        x = self.block1(x)
        yield "block1", x
        x = self.block2(x)
        yield "block2", x
        x = self.block3(x)
        yield "block3", x
        lc = self.block4(x)
        yield "block4", lc
        embedding = self.embedding(torch.cat([x.flatten(1), lc.flatten(1)], dim=1))
        yield "embedding", embedding
        yield "u", self.encode(embedding)


def _basic_stage(in_channels: int, out_channels: int, stride: int) -> BasicBlock:
    """torchvision's BasicBlock with the projection shortcut it needs."""
    downsample = None
    if stride != 1 or in_channels != out_channels:
        downsample = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                                   nn.BatchNorm2d(out_channels))
    return BasicBlock(in_channels, out_channels, stride, downsample)


class _ResNetLike(HashNetwork):
    """stem -> blocks[0..3] -> global pooling -> head; shared by the ResNets."""

    feature_names = ("stem", "block1", "block2", "block3", "block4", "embedding", "u")

    def _stages(self, x):
        x = self.stem(x)
        yield "stem", x
        for i, block in enumerate(self.blocks, start=1):
            x = block(x)
            yield f"block{i}", x
        embedding = self.pool(x).flatten(1)
        yield "embedding", embedding
        yield "u", self.head(embedding)


class SmallResNet(_ResNetLike):
    """A small ResNet for 32-64 px faces that trains on a laptop CPU.

    3x3 stem (stride 1) -> four stages of one torchvision ``BasicBlock`` each
    (stride 2, widths 32-64-128-256) -> global average pooling ->
    :class:`HashHead`. At 64 px the stages see 32, 16, 8 and 4 px maps
    (about 70 M multiply-adds per image, vs 0.56 G for a CIFAR ResNet-18).
    """

    def __init__(self, bits: int, image_size=(64, 64), activation: str | None = "tanh",
                 widths: Sequence[int] = (32, 64, 128, 256), batch_norm: bool = True):
        super().__init__(bits, image_size, activation)
        if len(widths) != 4:
            raise ValueError(f"widths must give 4 stage widths; got {widths!r}")
        self.stem = nn.Sequential(nn.Conv2d(3, widths[0], 3, padding=1, bias=False),
                                  nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True))
        ins = (widths[0], *widths[:-1])
        self.blocks = nn.ModuleList(_basic_stage(i, o, 2) for i, o in zip(ins, widths))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = HashHead(widths[-1], bits, activation, batch_norm)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):  # torchvision's ResNet initialisation
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")


def _torchvision_resnet(arch: str, pretrained: bool) -> nn.Module:
    """A torchvision ResNet; ImageNet weights only when asked, and never fatal."""
    model = torchvision.models.get_model(arch, weights=None)  # random init, no download
    if pretrained:
        weights = torchvision.models.get_model_weights(arch).DEFAULT
        try:
            model.load_state_dict(weights.get_state_dict(progress=False, check_hash=True,
                                                         weights_only=True))
        except OSError as err:  # URLError, HTTPError, timeouts: offline or blocked
            warnings.warn(f"could not download ImageNet weights {weights} for {arch} ({err}); "
                          f"using random init", RuntimeWarning, stacklevel=3)
    return model


class TorchvisionResNet(_ResNetLike):
    """A torchvision ResNet backbone (ResNet-18/50, ...) + :class:`HashHead`.

    ``pretrained=True`` loads torchvision's default ImageNet weights (from the
    torch hub cache, else by download); offline it warns "could not download
    ImageNet weights ...; using random init" and goes on. ``pretrained=False``
    never touches the network.

    Small inputs get a smaller stem so the deep stages keep some resolution:
    side <= 32 px: a 3x3 stride-1 conv and no max-pool (the CIFAR ResNet);
    33-64 px: a 3x3 stride-1 conv, max-pool kept (so ``block1`` sees 32 px at
    64 px input, a quarter of the cost without it); larger: the original 7x7
    stride-2 stem. A replaced stem conv is randomly initialised even when the
    rest is pretrained.
    """

    def __init__(self, bits: int, image_size=(64, 64), arch: str = "resnet18",
                 pretrained: bool = False, activation: str | None = "tanh",
                 batch_norm: bool = True):
        super().__init__(bits, image_size, activation)
        if arch not in _TORCHVISION_RESNETS:
            raise ValueError(f"arch must be one of {_TORCHVISION_RESNETS}; got {arch!r}")
        self.arch = arch
        net = _torchvision_resnet(arch, pretrained)
        side = min(self.image_size)
        if side <= 64:
            net.conv1 = nn.Conv2d(3, net.conv1.out_channels, 3, padding=1, bias=False)
            nn.init.kaiming_normal_(net.conv1.weight, mode="fan_out", nonlinearity="relu")
        if side <= 32:
            net.maxpool = nn.Identity()
        self.stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
        self.blocks = nn.ModuleList([net.layer1, net.layer2, net.layer3, net.layer4])
        self.pool = net.avgpool
        self.head = HashHead(net.fc.in_features, bits, activation, batch_norm)


def _view(images: torch.Tensor, flip: bool, shift: tuple[int, int]) -> torch.Tensor:
    """``images`` (N, C, H, W) flipped and shifted by ``shift`` pixels (reflect
    padding): one augmented view of the whole batch."""
    x = images.flip(-1) if flip else images
    dy, dx = shift
    if dy or dx:
        p = max(abs(dy), abs(dx))
        h, w = x.shape[-2:]
        x = nn.functional.pad(x, (p, p, p, p), mode="reflect")[..., p + dy:p + dy + h,
                                                                p + dx:p + dx + w]
    return x


class EmbeddingHashNet(nn.Module):
    """A hash head on the book's face embedding network.

    ``trunk`` maps faces (N, 3, H, W) in [0, 1] to a float embedding (N, D)
    (the shared backbone of the training set, :mod:`dfh_lib.engine.backbone`).
    The head is Linear(D, hidden) -> BN -> ReLU ->
    :class:`HashHead` (Linear -> [BN] -> activation).

    ``fine_tune=False`` (cpu, tiny): the trunk is frozen (eval mode, no
    gradient). Then :meth:`precompute_inputs` runs it once over a training
    set and its augmented views (flips and shifts), and the training loop
    feeds those (N, V, D) embeddings instead of images: each step picks one
    view per face at random — augmentation at no cost per step, so a method
    trains in seconds. ``fine_tune=True`` (gpu): the whole network trains on
    images (the loop augments them).

    Shapes: images (N, 3, H, W) or precomputed (N, V, D) -> u (N, bits).
    """

    def __init__(self, trunk: nn.Module, bits: int, activation: str | None = "tanh",
                 hidden: int = 512, batch_norm: bool = False, fine_tune: bool = False,
                 views: int = 8):
        super().__init__()
        self.bits = _check_bits(bits)
        self.image_size = tuple(trunk.image_size)
        self.activation = activation
        self.fine_tune = bool(fine_tune)
        self.views = int(views)
        trunk.requires_grad_(self.fine_tune)
        if self.fine_tune:
            self.trunk_net = trunk
        else:
            # frozen: kept out of the submodules, so checkpoints hold the head
            # only (kilobytes); the buffer below names the trunk they need
            self._frozen = {"trunk": trunk.eval()}
        self.register_buffer("trunk_id", weights_id(trunk))
        width = trunk.bits
        self.head = nn.Sequential(nn.Linear(width, hidden), nn.BatchNorm1d(hidden),
                                  nn.ReLU(inplace=True),
                                  HashHead(hidden, bits, activation, batch_norm))

    @property
    def trunk(self) -> nn.Module:
        """The face embedding network (frozen unless ``fine_tune``)."""
        return self.trunk_net if self.fine_tune else self._frozen["trunk"]

    def _apply(self, fn, *args, **kwargs):
        super()._apply(fn, *args, **kwargs)
        if not self.fine_tune:  # .to(device) and friends move the frozen trunk too
            self._frozen["trunk"]._apply(fn, *args, **kwargs)
        return self

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        stored = state_dict.get(prefix + "trunk_id")
        if stored is not None and not torch.equal(stored.cpu(), self.trunk_id.cpu()):
            raise ValueError("this checkpoint was trained on another face embedding network "
                             "than the one loaded now; retrain it, or load the embedding "
                             "it was made with")
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """Unit-length face embeddings (N, D) of images (N, 3, H, W) in [0, 1]."""
        with torch.set_grad_enabled(self.fine_tune and torch.is_grad_enabled()):
            return nn.functional.normalize(self.trunk(images), dim=1)

    #: named outputs in depth order, as :class:`HashNetwork`'s: the face
    #: embedding, the head's hidden layer (after ReLU) and the codes
    feature_names = ("embedding", "hidden", "u")

    def _embedding(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 3:  # precomputed (N, V, D): a random view per face in training
            if self.fine_tune:
                raise ValueError("a fine-tuned trunk needs images, not precomputed embeddings")
            pick = (torch.randint(x.shape[1], (len(x),), device=x.device) if self.training
                    else torch.zeros(len(x), dtype=torch.long, device=x.device))
            return x[torch.arange(len(x), device=x.device), pick]
        return self.embed(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self._embedding(x))

    def features(self, x: torch.Tensor, depths: Sequence[str] | str | None = None
                 ) -> dict[str, torch.Tensor]:
        """Named outputs (all of :attr:`feature_names` when ``depths`` is None)
        of images (N, 3, H, W) or precomputed embeddings (N, V, D): what
        :class:`~dfh_lib.nn.multihead.MultiHeadHashNet` puts its heads on."""
        wanted = {depths} if isinstance(depths, str) else set(depths or self.feature_names)
        if not wanted or not wanted <= set(self.feature_names):
            raise ValueError(f"depths must be names from {self.feature_names}; got {depths!r}")
        out = {"embedding": self._embedding(x)}
        if wanted & {"hidden", "u"}:
            out["hidden"] = self.head[:3](out["embedding"])
            out["u"] = self.head[3](out["hidden"])
        return {name: out[name] for name in self.feature_names if name in wanted}

    @torch.no_grad()
    def precompute_inputs(self, images: torch.Tensor, training: bool,
                          batch_size: int = 512) -> torch.Tensor:
        """What the training loop feeds instead of ``images`` (N, 3, H, W)
        uint8: with a frozen trunk, embeddings (N, V, D) of ``views`` views
        (view 0 the image itself, 1 its mirror, then mirrored or not and
        shifted by up to 1/16 of the side, fixed seed) for a training set,
        (N, 1, D) otherwise; with ``fine_tune`` the images themselves."""
        if self.fine_tune:
            return images
        key = (tuple(self.trunk_id.tolist()), self.views if training else 1,
               hashlib.sha1(images.contiguous().numpy().tobytes()).hexdigest(), images.shape)
        if key not in _EMBEDDING_CACHE:
            if len(_EMBEDDING_CACHE) >= 8:
                _EMBEDDING_CACHE.pop(next(iter(_EMBEDDING_CACHE)))
            _EMBEDDING_CACHE[key] = self._embed_views(images, training, batch_size)
        return _EMBEDDING_CACHE[key]

    def _embed_views(self, images: torch.Tensor, training: bool, batch_size: int):
        generator = torch.Generator().manual_seed(0)
        reach = max(1, min(self.image_size) // 16)
        plan = [(False, (0, 0)), (True, (0, 0))]
        while len(plan) < self.views:
            flip = bool(torch.randint(2, (1,), generator=generator))
            shift = torch.randint(-reach, reach + 1, (2,), generator=generator).tolist()
            plan.append((flip, tuple(shift)))
        plan = plan[:self.views] if training else plan[:1]
        was_training = self.training
        self.eval()
        device = next(self.head.parameters()).device
        try:
            out = torch.empty(len(images), len(plan), self.trunk.bits)
            for start in range(0, len(images), batch_size):
                batch = images[start:start + batch_size].to(device).float() / 255
                for v, (flip, shift) in enumerate(plan):
                    out[start:start + batch_size, v] = self.embed(_view(batch, flip, shift)).cpu()
        finally:
            self.train(was_training)
        return out

    def extra_repr(self) -> str:
        return (f"bits={self.bits}, image_size={self.image_size}, "
                f"activation={self.activation!r}, fine_tune={self.fine_tune}")


#: embeddings of recent training sets, so a sweep of head trainings on the same
#: faces runs the frozen trunk once (keyed by trunk, views and image bytes)
_EMBEDDING_CACHE: dict = {}


def weights_id(model: nn.Module) -> torch.Tensor:
    """A network's weights as 4 int64 (a SHA-1 prefix): names the trunk a head needs."""
    digest = hashlib.sha1()
    for name, value in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    return torch.tensor(np.frombuffer(digest.digest()[:16], dtype=np.int32).astype(np.int64))


def backbone_file(backbone: str | os.PathLike) -> Path:
    """Where a shared face embedding network lives: ``backbone`` itself when
    it is a file, else the id of one trained by
    :func:`dfh_lib.engine.backbone.shared_backbone`, stored under
    ``<cache>/backbones/<id>/embedding.pt``."""
    path = Path(backbone)
    if path.suffix == ".pt":
        return path
    return cache_dir() / "backbones" / str(backbone) / "embedding.pt"


def load_face_embedding(backbone: str | os.PathLike) -> "SmallResNet":
    """A face embedding network (file path or shared-backbone id), in eval mode."""
    file = backbone_file(backbone)
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise FileNotFoundError(
            f"no face embedding network at {file}; train it on the training set with "
            f"dfh_lib.engine.backbone.shared_backbone(splits) (train_or_load does)") from None
    if not isinstance(state, dict) or state.get("format") != "dfh_lib.face_embedding/1":
        raise ValueError(f"{file} is not a face embedding file (format "
                         f"'dfh_lib.face_embedding/1')")
    trunk = SmallResNet(state["dim"], tuple(state["image_size"]), activation=None,
                        widths=tuple(state.get("widths", (32, 64, 128, 256))))
    trunk.load_state_dict(state["model"])
    return trunk.eval()


def build_model(name: str, bits: int, image_size=(32, 32), pretrained: bool = False,
                **kwargs) -> HashNetwork:
    """A hash network by name: ``"ddh"``, ``"small_resnet"``, ``"resnet18"``, ``"resnet50"``.

    ``kwargs`` go to the network (e.g. ``activation=None`` for raw outputs).
    ``pretrained`` (ImageNet weights) exists for the ResNets only.

    >>> build_model("ddh", 48)(torch.rand(2, 3, 32, 32)).shape
    torch.Size([2, 48])
    """
    if name not in MODEL_NAMES:
        raise ValueError(f"unknown network {name!r}; choose one of {MODEL_NAMES}")
    if name.startswith("resnet"):
        return TorchvisionResNet(bits, image_size, arch=name, pretrained=pretrained, **kwargs)
    if pretrained:
        raise ValueError(f"no pretrained weights exist for {name!r}; use pretrained=False "
                         f"(ImageNet weights: 'resnet18' or 'resnet50')")
    if name.startswith("face_embedding"):
        if kwargs.get("backbone") is None:
            raise ValueError(f"{name!r} needs backbone= (the shared face embedding network "
                             f"of the training set: train_or_load finds it)")
        trunk = load_face_embedding(kwargs.pop("backbone"))
        if tuple(image_size) != tuple(trunk.image_size):
            raise ValueError(f"the face embedding network takes {trunk.image_size} inputs; "
                             f"got image_size={tuple(image_size)}")
        return EmbeddingHashNet(trunk, bits, fine_tune=name.endswith("_ft"), **kwargs)
    network = DDHNet if name == "ddh" else SmallResNet
    return network(bits, image_size, **kwargs)


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameter values in ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
