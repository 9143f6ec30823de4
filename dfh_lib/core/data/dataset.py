"""The one dataset type every loader returns, and the retrieval protocol.

A :class:`FaceDataset` holds images in memory as ``uint8`` arrays of shape
``(N, H, W, 3)`` (grey sources are repeated to three channels), integer
identity labels ``(N,)`` in ``0..C-1``, the identity names, and optionally a
binary attribute matrix ``(N, A)`` with its attribute names.

:func:`retrieval_protocol` splits it per identity into ``train`` /
``val_query`` / ``query`` with a fixed seed; the retrieval ``database`` is every
non-query image (train + val_query), as in the DDH protocol where the database
is the whole training split. Model selection uses ``val_query`` against
``train`` only, never the query set.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

__all__ = ["FaceDataset", "RetrievalSplits", "retrieval_protocol", "check_face_images"]


def check_face_images(images) -> None:
    """A ValueError unless ``images`` is a uint8 ``(N, H, W, 3)`` array, the
    layout of :attr:`FaceDataset.images` (also what GAN editing takes)."""
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 \
            or images.ndim != 4 or images.shape[-1] != 3:
        got = getattr(images, "shape", type(images).__name__)
        raise ValueError(
            f"images must be a uint8 array of shape (N, H, W, 3) as in a FaceDataset; "
            f"got {got} {getattr(images, 'dtype', '')}")


@dataclass(frozen=True)
class FaceDataset:
    """Face images with identity labels (and optional binary attributes).

    Shapes: ``images`` (N, H, W, 3) uint8; ``labels`` (N,) int64 in
    ``0..len(identity_names)-1``; ``attributes`` (N, A) uint8 in {0, 1} or None.
    """

    images: np.ndarray
    labels: np.ndarray
    identity_names: Sequence[str]
    name: str = "faces"
    attributes: np.ndarray | None = None
    attribute_names: Sequence[str] | None = None
    source_index: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self):
        images, labels = self.images, self.labels
        check_face_images(images)
        labels = np.asarray(labels)
        if labels.shape != (len(images),) or not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(
                f"labels must be integers of shape ({len(images)},); got "
                f"{labels.shape} {labels.dtype}")
        if len(labels) and (labels.min() < 0 or labels.max() >= len(self.identity_names)):
            raise ValueError(
                f"labels must lie in 0..{len(self.identity_names) - 1} "
                f"(one per identity name); got {labels.min()}..{labels.max()}")
        object.__setattr__(self, "labels", labels.astype(np.int64, copy=False))
        if self.attributes is not None:
            attrs = np.asarray(self.attributes)
            names = self.attribute_names
            if attrs.ndim != 2 or len(attrs) != len(images) or names is None \
                    or len(names) != attrs.shape[1]:
                raise ValueError(
                    f"attributes must be (N={len(images)}, A) with A attribute "
                    f"names; got {attrs.shape} and {None if names is None else len(names)} names")
            object.__setattr__(self, "attributes", (attrs > 0).astype(np.uint8))
        if self.source_index is None:
            object.__setattr__(self, "source_index", np.arange(len(images)))

    def __len__(self) -> int:
        return len(self.images)

    @property
    def num_identities(self) -> int:
        return len(self.identity_names)

    @property
    def image_size(self) -> tuple[int, int]:
        """(height, width) of the stored images."""
        return tuple(self.images.shape[1:3])

    def subset(self, index) -> "FaceDataset":
        """The images at ``index`` (an int array or boolean mask), same identities."""
        index = np.asarray(index)
        if index.dtype == bool:
            index = np.flatnonzero(index)
        return FaceDataset(
            images=self.images[index], labels=self.labels[index],
            identity_names=self.identity_names, name=self.name,
            attributes=None if self.attributes is None else self.attributes[index],
            attribute_names=self.attribute_names,
            source_index=self.source_index[index])

    def concat(self, other: "FaceDataset") -> "FaceDataset":
        """This dataset followed by ``other`` (same identities and attributes)."""
        if list(other.identity_names) != list(self.identity_names):
            raise ValueError("can only concatenate datasets with the same identity names")
        attrs = None
        if self.attributes is not None and other.attributes is not None:
            attrs = np.concatenate([self.attributes, other.attributes])
        return FaceDataset(
            images=np.concatenate([self.images, other.images]),
            labels=np.concatenate([self.labels, other.labels]),
            identity_names=self.identity_names, name=self.name,
            attributes=attrs,
            attribute_names=self.attribute_names if attrs is not None else None,
            source_index=np.concatenate([self.source_index, other.source_index]))

    def resized(self, size: int | tuple[int, int]) -> "FaceDataset":
        """A copy with every image resized to ``size`` = (height, width) (antialiased)."""
        from PIL import Image

        h, w = (size, size) if isinstance(size, int) else size
        if (h, w) == self.image_size:
            return self
        out = np.stack([np.asarray(Image.fromarray(im).resize((w, h), Image.BICUBIC))
                        for im in self.images]) if len(self) else \
            np.zeros((0, h, w, 3), np.uint8)
        return FaceDataset(out, self.labels, self.identity_names, self.name,
                           self.attributes, self.attribute_names, self.source_index)

    def keep_identities(self, min_images: int) -> "FaceDataset":
        """Only identities with at least ``min_images`` images, relabelled 0..C'-1."""
        counts = np.bincount(self.labels, minlength=self.num_identities)
        keep = np.flatnonzero(counts >= min_images)
        new_label = np.full(self.num_identities, -1)
        new_label[keep] = np.arange(len(keep))
        sub = self.subset(np.isin(self.labels, keep))
        return FaceDataset(sub.images, new_label[sub.labels],
                           [self.identity_names[i] for i in keep], self.name,
                           sub.attributes, sub.attribute_names, sub.source_index)

    def to_tensors(self):
        """``(images, labels)`` as torch tensors: float (N, 3, H, W) in [0, 1], int64 (N,)."""
        import torch

        x = torch.from_numpy(self.images).permute(0, 3, 1, 2).float().div_(255)
        return x, torch.from_numpy(self.labels)

    def __repr__(self) -> str:
        attrs = "" if self.attributes is None else f", {self.attributes.shape[1]} attributes"
        return (f"FaceDataset({self.name!r}: {len(self)} images of "
                f"{self.num_identities} identities, {self.image_size[0]}x"
                f"{self.image_size[1]} px{attrs})")


@dataclass(frozen=True)
class RetrievalSplits:
    """The retrieval protocol: train on ``train``; select models with
    ``val_query`` against ``validation_database`` (``train`` unless
    ``val_database`` is given); report ``query`` against ``database``.

    ``database`` is every non-query image (``train`` + ``val_query``).
    ``val_database`` is for a training set that is not what a real database
    would hold — e.g. GAN edits added to it: model selection must then rank
    against the plain images, as the queries will, or it rewards a network
    for finding the edits.
    """

    train: FaceDataset
    val_query: FaceDataset
    query: FaceDataset
    database: FaceDataset
    seed: int
    description: str
    val_database: FaceDataset | None = None

    @property
    def validation_database(self) -> FaceDataset:
        """What ``val_query`` is ranked against during training."""
        return self.train if self.val_database is None else self.val_database

    def __repr__(self) -> str:
        return (f"RetrievalSplits({self.description}: train {len(self.train)}, "
                f"val_query {len(self.val_query)}, query {len(self.query)}, "
                f"database {len(self.database)})")


def retrieval_protocol(dataset: FaceDataset, num_query: int = 2, num_val: int = 1,
                       seed: int = 0) -> RetrievalSplits:
    """Split ``dataset`` per identity into train / val_query / query.

    For each identity (after a seeded shuffle of its images) ``num_query``
    images become queries, the next ``num_val`` become validation queries and
    the rest train. The database is train + val_query (all non-query images),
    in original dataset order, so ties in Hamming ranking are broken by a
    deterministic database index. Every identity needs at least
    ``num_query + num_val + 1`` images.
    """
    if num_query < 1 or num_val < 0:
        raise ValueError(f"need num_query >= 1 and num_val >= 0; got {num_query}, {num_val}")
    need = num_query + num_val + 1
    counts = np.bincount(dataset.labels, minlength=dataset.num_identities)
    present = counts[counts > 0]
    if len(present) == 0 or present.min() < need:
        raise ValueError(
            f"every identity needs >= {need} images for num_query={num_query}, "
            f"num_val={num_val}; the smallest has {present.min() if len(present) else 0}. "
            f"Use dataset.keep_identities({need}) first.")
    rng = np.random.default_rng(seed)
    role = np.zeros(len(dataset), np.int8)  # 0 train, 1 val_query, 2 query
    for label in np.flatnonzero(counts):
        members = rng.permutation(np.flatnonzero(dataset.labels == label))
        role[members[:num_query]] = 2
        role[members[num_query:num_query + num_val]] = 1
    desc = (f"{dataset.name}, {dataset.num_identities} identities, per identity "
            f"{num_query} query + {num_val} val, seed {seed}")
    return RetrievalSplits(
        train=dataset.subset(role == 0), val_query=dataset.subset(role == 1),
        query=dataset.subset(role == 2), database=dataset.subset(role != 2),
        seed=seed, description=desc)
