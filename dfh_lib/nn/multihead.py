"""Multi-layer supervised hashing: K-bit hash heads at several depths of one
backbone (Chapter 6).

The thesis: compressing a face to a few bits loses information, so DFH-GANs
"proposes a multi-layer supervised DFH structure". :class:`MultiHeadHashNet`
reads that as deep supervision (Lee et al., "Deeply-Supervised Nets",
AISTATS 2015; GoogLeNet's auxiliary classifiers, Szegedy et al., CVPR 2015):
every head is trained with the hash loss; retrieval uses the last one.

**How multi-head training goes through the one loop.** The loop calls
``u = model(x)`` and ``loss(u, labels[, index=...])``, and evaluates with
``model.eval()``. :class:`MultiHeadHashNet` follows torchvision's
GoogLeNet/Inception convention (auxiliary outputs in training mode only): in
training mode ``forward`` returns every head's codes side by side, (N, H·K),
which :class:`~dfh_lib.nn.losses.MultiHeadLoss` splits again; in eval mode it
returns the final head's (N, K) codes, so encoding, evaluation and the loop's
model selection see an ordinary hash network.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .models import EmbeddingHashNet, HashHead, HashNetwork, build_model

__all__ = ["FINAL", "DEFAULT_DEPTHS", "MultiHeadHashNet", "default_heads", "build_multihead",
           "copy_weights"]

FINAL = "final"  # the name of the backbone's own hash layer, the retrieval head


class MultiHeadHashNet(nn.Module):
    """A hash network with K-bit heads at several depths.

    Each auxiliary head maps a feature map (N, C, H, W) of the backbone by
    global average pooling -> :class:`~dfh_lib.nn.models.HashHead` (Linear ->
    BN -> the backbone's activation) to (N, K); a vector feature (N, D), e.g.
    ``"embedding"``, skips the pooling. ``"final"`` is the backbone's own hash
    layer (its ``"u"``) and the retrieval head.

    ``forward(x)``: eval mode -> the final head's codes (N, K), what
    :func:`~dfh_lib.engine.train.encode` uses; training mode -> all heads side by
    side (N, H·K) in ``head_names`` order, for :class:`MultiHeadLoss`
    (torchvision's GoogLeNet likewise returns auxiliary outputs only when
    training). ``forward_heads(x)`` -> ``{name: (N, K)}`` in either mode.

    Args:
        backbone: a :class:`~dfh_lib.nn.models.HashNetwork` (``bits``, ``features``).
        heads: depth names from ``backbone.feature_names`` (not ``"u"``) plus
            ``"final"``, which is required; kept in depth order. None:
            :func:`default_heads`.
    """

    def __init__(self, backbone: HashNetwork, heads: Sequence[str] | None = None):
        super().__init__()
        if not isinstance(backbone, (HashNetwork, EmbeddingHashNet)):
            raise ValueError(f"backbone must be a dfh_lib.nn.models HashNetwork or "
                             f"EmbeddingHashNet; got "
                             f"{type(backbone).__name__} (use build_model(...))")
        heads = default_heads(backbone) if heads is None else \
            (heads,) if isinstance(heads, str) else tuple(heads)
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

    def __getattr__(self, name: str):
        if name == "precompute_inputs":
            # a frozen-trunk backbone's inputs are its embeddings, computed once
            # (EmbeddingHashNet.precompute_inputs); other backbones have none
            return getattr(self._modules["backbone"], name)
        return super().__getattr__(name)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return self.backbone(x)
        return torch.cat(list(self.forward_heads(x).values()), dim=1)

    def features(self, x, depths=None):
        """The backbone's named features (see :class:`~dfh_lib.nn.models.HashNetwork`)."""
        return self.backbone.features(x, depths)

    def extra_repr(self) -> str:
        return f"bits={self.bits}, heads={self.head_names}"


#: the inner depths that get a head by default: the last two blocks of a
#: convolutional network; the hidden layer of a head on the face embedding
#: (its trunk is frozen in cpu/tiny, so heads inside it would train nothing
#: the codes use)
DEFAULT_DEPTHS = ("block2", "block3", "hidden")


def default_heads(backbone) -> tuple[str, ...]:
    """The heads a multi-layer network gets when none are named: those of
    :data:`DEFAULT_DEPTHS` that ``backbone`` has, then ``"final"``."""
    return tuple(n for n in DEFAULT_DEPTHS if n in backbone.feature_names) + (FINAL,)


def _aux_head(shape, bits: int, activation) -> nn.Module:
    if len(shape) == 1:  # a vector feature
        return HashHead(shape[0], bits, activation)
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         HashHead(shape[0], bits, activation))


def build_multihead(network: str, bits: int, heads: Sequence[str] | None = None,
                    image_size=(32, 32), activation: str | None = "tanh",
                    **model_kwargs) -> MultiHeadHashNet:
    """:func:`~dfh_lib.nn.models.build_model` + heads at ``heads``
    (``model_kwargs`` go to it, e.g. ``backbone=`` for ``"face_embedding"``,
    whose heads sit at ``"hidden"`` and ``"final"``).

    >>> build_multihead("ddh", 12).eval()(torch.rand(2, 3, 32, 32)).shape
    torch.Size([2, 12])
    """
    backbone = build_model(network, bits, image_size=image_size, activation=activation,
                           **model_kwargs)
    return MultiHeadHashNet(backbone, heads)



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

