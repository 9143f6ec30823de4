"""Face datasets: loaders for real data, a name registry, the retrieval protocol.

Every loader returns a :class:`FaceDataset` (images ``(N, H, W, 3)`` uint8,
labels ``(N,)``), except the DDH releases (FaceScrub, YouTube Faces), which
come with their own query/database split and return :class:`RetrievalSplits`.
Data is read from :func:`data_dir`; caches go to :func:`cache_dir`. A missing
dataset raises :class:`DatasetNotFoundError` naming the command that fetches
it (``python -m dfh_lib fetch <name>``, see :mod:`.fetch`); :func:`available`
lets a chapter fall back to the generated ``synthfaces`` instead.

>>> from dfh_lib import data
>>> faces = data.load_dataset("orl")                       # doctest: +SKIP
>>> faces = data.load_dataset("lfw", min_faces_per_person=20)  # doctest: +SKIP
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable

from . import celeba, ddh, image_folder, lfw, orl
from .celeba import load_celeba
from .dataset import FaceDataset, RetrievalSplits, retrieval_protocol
from .ddh import UnsafePickleError, ddh_normalize, load_facescrub, load_youtube_faces
from .image_folder import load_image_folder
from .lfw import load_lfw
from .low_shot import low_shot
from .orl import load_orl
from .paths import DatasetNotFoundError, cache_dir, data_dir
from .synthfaces import load_synthfaces

__all__ = ["FaceDataset", "RetrievalSplits", "retrieval_protocol", "data_dir", "cache_dir",
           "DatasetNotFoundError", "UnsafePickleError", "load_lfw", "load_orl",
           "load_celeba", "load_facescrub", "load_youtube_faces", "load_image_folder",
           "ddh_normalize", "load_synthfaces", "DATASETS", "load_dataset", "available",
           "low_shot"]


@dataclass(frozen=True)
class DatasetEntry:
    """How to load a registered dataset and which paths it needs.

    ``load(root=None, **kwargs)`` returns a FaceDataset or RetrievalSplits;
    ``required_paths(root)`` lists what must exist locally (None for
    generated data, which needs no files).
    """

    load: Callable[..., FaceDataset | RetrievalSplits]
    required_paths: Callable[[str | os.PathLike | None], list[Path]] | None


def _load_synthfaces(root=None, **kwargs) -> FaceDataset:
    """Generated faces (``root`` is ignored: nothing is read from disk)."""
    return load_synthfaces(**kwargs)


DATASETS: dict[str, DatasetEntry] = {
    "synthfaces": DatasetEntry(_load_synthfaces, None),
    "lfw": DatasetEntry(load_lfw, lfw.required_paths),
    "orl": DatasetEntry(load_orl, orl.required_paths),
    "celeba": DatasetEntry(load_celeba, celeba.required_paths),
    "image_folder": DatasetEntry(load_image_folder, image_folder.required_paths),
    "facescrub": DatasetEntry(load_facescrub, partial(ddh.required_paths, "facescrub")),
    "youtube_faces": DatasetEntry(load_youtube_faces,
                                  partial(ddh.required_paths, "youtube_faces")),
}


def _entry(name: str) -> DatasetEntry:
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {sorted(DATASETS)}")
    return DATASETS[name]


def load_dataset(name: str, root: str | os.PathLike | None = None, **kwargs
                 ) -> FaceDataset | RetrievalSplits:
    """Load a registered dataset by ``name`` with the loader's keyword arguments.

    ``root`` is the data folder (default :func:`data_dir`); for
    ``"image_folder"`` it is the ``<identity>/<image>`` folder itself.
    FaceScrub and YouTube Faces return :class:`RetrievalSplits`, the others
    a :class:`FaceDataset`.
    """
    return _entry(name).load(root=root, **kwargs)


def available(name: str, root: str | os.PathLike | None = None) -> bool:
    """Whether dataset ``name`` is present locally (generated data always is)."""
    entry = _entry(name)
    if entry.required_paths is None:
        return True
    paths = entry.required_paths(root)
    return bool(paths) and all(path.exists() for path in paths)  # no paths: no folder given

