"""CelebA aligned faces with 40 binary attributes, identities and split.

Layout (torchvision's): ``<data_dir>/celeba/celeba/`` holding
``img_align_celeba/*.jpg``, ``list_attr_celeba.txt``, ``identity_CelebA.txt``
and ``list_eval_partition.txt``. Unlike ``torchvision.datasets.CelebA`` the
loader accepts a subset (only the images present are read; their annotation
rows are looked up by file name) and needs neither the bbox/landmark files
nor matching MD5 sums, so the 5,000-image 89x109 subset loads as well as the
full 202,599-image 178x218 release.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from .dataset import FaceDataset
from .image_folder import image_size_hw, read_images
from .paths import data_dir, prepare_command, require_paths

__all__ = ["load_celeba", "read_celeba_index", "CelebAIndex", "CELEBA_SPLITS",
           "required_paths"]

CELEBA_SPLITS = {"train": 0, "valid": 1, "test": 2, "all": None}
_FILES = ("img_align_celeba", "list_attr_celeba.txt", "identity_CelebA.txt",
          "list_eval_partition.txt")


@dataclass(frozen=True)
class CelebAIndex:
    """The annotation rows of the images present, in attribute-file order.

    Shapes: ``files`` (N,) names; ``attributes`` (N, 40) uint8 in {0, 1};
    ``identities`` (N,) original CelebA ids; ``partition`` (N,) in {0, 1, 2}.
    """

    folder: Path
    files: list[str]
    attributes: np.ndarray
    attribute_names: list[str]
    identities: np.ndarray
    partition: np.ndarray


def required_paths(root: str | os.PathLike | None = None) -> list[Path]:
    """The image folder and annotation files :func:`load_celeba` reads."""
    folder = data_dir(root) / "celeba" / "celeba"
    return [folder / name for name in _FILES]


def _read_column(path: Path, files: Sequence[str]) -> np.ndarray:
    """The integer column of ``<file> <int>`` rows, for ``files`` in that order."""
    table = dict(line.split()[:2] for line in path.read_text().splitlines() if line.strip())
    missing = [f for f in files if f not in table]
    if missing:
        raise ValueError(f"{path} has no row for {len(missing)} present image(s), "
                         f"e.g. {missing[0]}; the annotation files do not match the images")
    return np.array([int(table[f]) for f in files], dtype=np.int64)


def read_celeba_index(root: str | os.PathLike | None = None) -> CelebAIndex:
    """Annotations of the CelebA images present under ``root`` (no decoding)."""
    paths = required_paths(root)
    require_paths(paths, "CelebA", prepare_command("prepare_celeba.py", root))
    image_dir, attr_file, identity_file, partition_file = paths
    present = {entry.name for entry in os.scandir(image_dir)}
    lines = attr_file.read_text().splitlines()
    if len(lines) < 2:
        raise ValueError(f"{attr_file} must start with a count line and a line of "
                         f"attribute names; it has {len(lines)} line(s)")
    names = lines[1].split()
    rows = [row for row in map(str.split, lines[2:]) if row and row[0] in present]
    bad = next((r for r in rows if len(r) != len(names) + 1), None)
    if bad is not None:
        raise ValueError(f"{attr_file}: row {bad[0]} has {len(bad) - 1} values for "
                         f"{len(names)} attribute names")
    files = [r[0] for r in rows]
    attributes = (np.array([r[1:] for r in rows], dtype=np.int8).reshape(-1, len(names)) > 0)
    return CelebAIndex(image_dir, files, attributes.astype(np.uint8), names,
                       _read_column(identity_file, files), _read_column(partition_file, files))


def load_celeba(root: str | os.PathLike | None = None, split: str = "all",
                size: int | Sequence[int] | None = None) -> FaceDataset:
    """CelebA faces of ``split`` ("all", "train", "valid", "test") with attributes.

    Only the images present are loaded (a subset works). ``size`` =
    (height, width) or an int resizes (bicubic); default: the stored size
    (178x218 official, 89x109 for the shared subset). Attributes are the 40
    CelebA attributes mapped -1/1 -> 0/1. Identities are relabelled
    ``0..C-1`` in increasing CelebA id, named ``celeb_<CelebA id>``.

    Returns a :class:`FaceDataset` with images ``(N, H, W, 3)`` uint8 and
    ``attributes`` ``(N, 40)``. The full release at 178x218 needs ~23 GB in
    memory: pick a split and a smaller ``size``.
    """
    if split not in CELEBA_SPLITS:
        raise ValueError(f"split must be one of {list(CELEBA_SPLITS)}; got {split!r}")
    index = read_celeba_index(root)
    keep = np.ones(len(index.files), bool) if CELEBA_SPLITS[split] is None \
        else index.partition == CELEBA_SPLITS[split]
    if not keep.any():
        counts = {s: int((index.partition == c).sum()) for s, c in CELEBA_SPLITS.items()
                  if c is not None}
        raise ValueError(f"no CelebA image of split {split!r} in {index.folder}; "
                         f"images present per split: {counts}")
    ids, labels = np.unique(index.identities[keep], return_inverse=True)
    paths = [index.folder / f for f, k in zip(index.files, keep) if k]
    return FaceDataset(read_images(paths, image_size_hw(size)), labels.reshape(-1),
                       [f"celeb_{i}" for i in ids], name="celeba",
                       attributes=index.attributes[keep],
                       attribute_names=index.attribute_names)
