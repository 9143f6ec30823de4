"""The one registry of hashing losses: method name -> loss class, what each
method needs from the network, and :func:`build_loss`.

Built here, explicitly, from every loss module: no loss registers itself on
import. The training loop (:func:`dfh_lib.engine.train.train_method`) and
the multi-head losses build losses by name through it.
"""
from __future__ import annotations

import inspect

from .base import HashLoss
from .baselines import (CSQLoss, DCDHLoss, DDHLoss, DPSHLoss, DSHLoss, GreedyHashLoss,
                        HashNetLoss, SoftmaxLoss)
from .dfh import DFHLoss, DFHQLoss
from .embedding import CosFaceLoss

__all__ = ["LOSSES", "METHOD_DEFAULTS", "build_loss", "has_method"]

LOSSES: dict[str, type[HashLoss]] = {
    "dpsh": DPSHLoss, "dsh": DSHLoss, "hashnet": HashNetLoss, "greedyhash": GreedyHashLoss,
    "csq": CSQLoss, "ddh": DDHLoss, "dcdh": DCDHLoss, "softmax": SoftmaxLoss,
    "dfh": DFHLoss, "dfhq": DFHQLoss, "cosface": CosFaceLoss,
}

#: What each method needs from the network, passed to ``build_model``:
#: ``activation`` always (None = raw outputs z, because the method squashes or
#: regularises them itself or its paper uses none). Every method trains on the
#: profile's network, so all start from the same point; a ``network`` entry
#: would pin one (DDH's architecture is ``build_model("ddh")``, chosen explicitly).
METHOD_DEFAULTS = {
    "dpsh": {"activation": None},       # paper: linear outputs + quantization term
    "dsh": {"activation": None},        # paper: linear outputs + L1 regulariser
    "hashnet": {"activation": None},    # the loss applies tanh(βz)
    "greedyhash": {"activation": None},  # the loss applies sgn (straight-through)
    "csq": {"activation": "tanh"},      # BCE needs u in [-1, 1]
    "ddh": {"activation": "tanh"},      # its own network: build_model("ddh"), Chapter 2
    "dcdh": {"activation": None},       # released net: Linear -> BN, no tanh
    "softmax": {"activation": None},    # real-valued features for LSH / PCA-ITQ
    "dfh": {"activation": "tanh"},      # sign margin, balance, decorrelation need u in [-1, 1]
    "dfhq": {"activation": None},       # the quantizer maps z to codes
    "cosface": {"activation": None},    # a float embedding, ranked by cosine
}


def has_method(name: str) -> bool:
    """Whether ``name`` is a registered loss."""
    return name in LOSSES


def build_loss(name: str, bits: int, num_classes: int, **kwargs) -> HashLoss:
    """A loss by name; ``bits``/``num_classes`` go to it where it takes them.

    >>> build_loss("dsh", bits=12, num_classes=10).margin
    24.0
    """
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; choose one of {tuple(LOSSES)}")
    cls = LOSSES[name]
    accepted = inspect.signature(cls).parameters
    sizes = {k: v for k, v in (("bits", bits), ("num_classes", num_classes)) if k in accepted}
    return cls(**sizes, **kwargs)
