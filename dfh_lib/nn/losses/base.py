"""The contract every hashing loss keeps with the training loop, and the
input checks and pair helpers they share.

A loss is a :class:`HashLoss`; ``loss(u, labels)`` returns ``(loss, terms)``
where ``loss`` is a scalar tensor to back-propagate and ``terms`` maps the
name of each *weighted* term (``"pairwise"``, ``"quant"``, ...) to its
detached value, so they can be logged and named when a loss goes NaN.
``loss == sum(terms)``.

Shapes: ``u`` (N, bits) relaxed codes (tanh outputs in [-1, 1], or raw
outputs ``z`` for the methods whose ``METHOD_DEFAULTS`` say
``activation=None``); ``labels`` (N,) int64 identity indices in 0..C-1.

A loss may own parameters (a classifier, class centres, proxies): optimise
``loss.parameters()`` with the model's. ``on_epoch_start(epoch, num_epochs)``
is called by the loop each epoch (HashNet's β schedule uses it).
"""
from __future__ import annotations

import abc

import torch
from torch import nn

from ...core.checks import positive_int

__all__ = ["HashLoss", "check_inputs", "pair_masks", "masked_mean"]


def check_inputs(u, labels, bits: int | None, num_classes: int | None) -> None:
    """ValueErrors that name the argument, the expectation, what came and the fix."""
    if not isinstance(u, torch.Tensor) or u.ndim != 2:
        got = tuple(u.shape) if isinstance(u, torch.Tensor) else type(u).__name__
        raise ValueError(f"u must have shape (N, bits); got {got} — did you forget "
                         f".flatten(1) before the hash head?")
    if not u.is_floating_point():
        raise ValueError(f"u must be float relaxed codes; got {u.dtype}")
    if bits is not None and u.shape[1] != bits:
        raise ValueError(f"u has {u.shape[1]} bits but the loss was built with bits={bits}; "
                         f"build the model and the loss with the same bits")
    if not isinstance(labels, torch.Tensor) or labels.shape != (len(u),):
        got = tuple(labels.shape) if isinstance(labels, torch.Tensor) else type(labels).__name__
        raise ValueError(f"labels must have shape (N,) = ({len(u)},) to match u; got {got}")
    if labels.dtype == torch.bool or labels.is_floating_point() or labels.is_complex():
        raise ValueError(f"labels must be int64 identity indices; got {labels.dtype} — "
                         f"use labels.long() (one-hot or attribute matrices are not supported)")
    if labels.device != u.device:
        raise ValueError(f"labels are on {labels.device} but u is on {u.device}; "
                         f"move them with labels.to(u.device)")
    if not torch.isfinite(u).all():
        bad = int((~torch.isfinite(u)).sum())
        raise ValueError(f"u contains {bad} NaN/inf values; the network diverged or its "
                         f"input has NaN — lower the learning rate or check the images")
    if num_classes is not None and len(labels) \
            and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"labels must lie in 0..{num_classes - 1} (num_classes={num_classes}); "
                         f"got {int(labels.min())}..{int(labels.max())} — build the loss with "
                         f"the training set's number of identities")


def pair_masks(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(similar, dissimilar) boolean (N, N) masks over pairs i != j."""
    same = labels[:, None] == labels[None, :]
    other = ~torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    return same & other, ~same


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` where ``mask``; 0 (with a gradient path) when empty."""
    return (values * mask).sum() / mask.sum().clamp(min=1)


# ----------------------------------------------------------------------------
# base class
# ----------------------------------------------------------------------------

class HashLoss(nn.Module, abc.ABC):
    """Base class: validates ``(u, labels)`` once and sums the weighted terms.

    Subclasses implement ``compute(u, labels, **kwargs) -> dict[str, Tensor]``
    returning each weighted scalar term. ``needs_index = True`` asks the loop
    to pass ``index=`` (N,) training-sample indices (no loss here needs it).
    """

    needs_index = False

    def __init__(self, bits: int | None = None, num_classes: int | None = None):
        super().__init__()
        self.bits = None if bits is None else positive_int("bits", bits)
        self.num_classes = (None if num_classes is None
                            else positive_int("num_classes", num_classes))

    def forward(self, u: torch.Tensor, labels: torch.Tensor, **kwargs
                ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        check_inputs(u, labels, self.bits, self.num_classes)
        terms = self.compute(u, labels.long(), **kwargs)
        loss = torch.stack(list(terms.values())).sum()
        return loss, {name: value.detach() for name, value in terms.items()}

    @abc.abstractmethod
    def compute(self, u: torch.Tensor, labels: torch.Tensor, **kwargs) -> dict[str, torch.Tensor]:
        """The weighted terms of the loss for a validated batch."""

    def on_epoch_start(self, epoch: int, num_epochs: int) -> None:
        """Hook the loop calls before each epoch; most losses keep no schedule."""

    def extra_repr(self) -> str:
        return f"bits={self.bits}, num_classes={self.num_classes}"

