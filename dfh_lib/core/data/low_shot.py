"""The low-shot retrieval protocol: few training images per identity.

:func:`low_shot` keeps ``k`` training images of each identity of a
:class:`~dfh_lib.core.data.RetrievalSplits` (a seeded choice, nested: the images
kept for ``k`` are among those kept for any larger ``k``) and leaves
``val_query``, ``query`` and ``database`` untouched. So the queries are
held-out faces of the **same** people, searched in the same database as in
the full protocol; only what the hash network learns from shrinks. Model
selection still uses ``val_query`` against the (now small) ``train`` set.

Taught in the GAN attribute-augmentation chapter.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from .dataset import RetrievalSplits

__all__ = ["low_shot"]


def low_shot(splits: RetrievalSplits, k: int, seed: int = 0) -> RetrievalSplits:
    """``splits`` with at most ``k`` training images per identity.

    Each identity's training images are put in a seeded random order (one
    order per identity, independent of ``k``) and the first ``k`` are kept,
    in their original order. Identities with fewer than ``k`` training
    images keep all of them. ``val_query``, ``query`` and ``database`` are
    the same objects as in ``splits``.

    Raises:
        ValueError: ``k`` is not a positive int.
    """
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
        raise ValueError(f"k (training images per identity) must be a positive int; got {k!r}")
    train = splits.train
    rng = np.random.default_rng(seed)
    keep = []
    for label in range(train.num_identities):  # fixed order: one permutation per identity
        members = np.flatnonzero(train.labels == label)
        keep.append(rng.permutation(members)[:k])
    index = np.sort(np.concatenate(keep)) if keep else np.zeros(0, np.int64)
    return replace(splits, train=train.subset(index),
                   description=f"{splits.description}; low-shot: {k} training image"
                               f"{'s' if k > 1 else ''} per identity (seed {seed})")
