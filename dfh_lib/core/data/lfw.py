"""Labeled Faces in the Wild through scikit-learn's ``fetch_lfw_people``.

Layout: scikit-learn's ``data_home`` under ``<data_dir>/lfw``, i.e.
``lfw/lfw_home/lfw_funneled/<Person>/<Person>_0001.jpg`` plus the three
``pairs*.txt`` files scikit-learn checks for.

scikit-learn writes a joblib cache (~35 MB at ``min_faces_per_person=20``)
into ``<data_home>/lfw_home/joblib``. To keep the data folder read-only, the
loader hands scikit-learn a ``data_home`` inside :func:`cache_dir` whose
entries are symbolic links to the real files; the first load decodes the
JPEGs (about 13 s for 3,023 images on 2 CPU cores), later loads read the cache.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from .dataset import FaceDataset
from .paths import cache_dir, data_dir, prepare_command, require_paths

__all__ = ["load_lfw", "required_paths"]

# the files scikit-learn requires before it will read lfw_funneled/ offline
_SKLEARN_FILES = ("lfw_funneled", "pairsDevTrain.txt", "pairsDevTest.txt", "pairs.txt")


def required_paths(root: str | os.PathLike | None = None) -> list[Path]:
    """The files and folder :func:`load_lfw` reads."""
    home = data_dir(root) / "lfw" / "lfw_home"
    return [home / name for name in _SKLEARN_FILES]


def _linked_data_home(root: str | os.PathLike | None) -> Path:
    """A writable scikit-learn ``data_home`` in the cache linking to the real files.

    One per data folder (keyed by its resolved path), so two data folders
    never share links or joblib entries.
    """
    source = (data_dir(root) / "lfw" / "lfw_home").resolve()
    key = hashlib.sha256(str(source).encode()).hexdigest()[:12]
    home = cache_dir() / "lfw" / key / "lfw_home"
    home.mkdir(parents=True, exist_ok=True)
    for name in _SKLEARN_FILES:
        link = home / name
        if not link.is_symlink():
            try:
                link.symlink_to(source / name)
            except FileExistsError:  # another process made it first
                pass
    return home.parent


def load_lfw(root: str | os.PathLike | None = None, min_faces_per_person: int = 20,
             resize: float = 0.5, slice_: tuple[slice, slice] | None = None,
             color: bool = True) -> FaceDataset:
    """LFW people with at least ``min_faces_per_person`` images.

    Arguments are scikit-learn's: ``slice_=None`` keeps scikit-learn's default
    face crop ``(slice(70, 195), slice(78, 172))`` of the 250x250 images and
    ``resize`` scales it (0.5 -> 62x47). ``color=False`` decodes grey, repeated
    to three channels. Identities are scikit-learn's ``target_names`` (sorted
    person names, ``"George W Bush"``) and the image order is scikit-learn's
    (seeded shuffle). ``min_faces_per_person=20`` gives 3,023 images of 62
    people.

    Returns a :class:`FaceDataset` with images ``(N, H, W, 3)`` uint8.
    """
    require_paths(required_paths(root), "LFW", prepare_command("prepare_lfw.py", root))
    from sklearn.datasets import fetch_lfw_people  # heavy import, only when used

    crop = {} if slice_ is None else {"slice_": slice_}
    people = fetch_lfw_people(
        data_home=_linked_data_home(root), download_if_missing=False,
        min_faces_per_person=min_faces_per_person, resize=resize, color=color, **crop)
    # scikit-learn returns float32 in [0, 1] (uint8 / 255): undo it exactly
    images = np.rint(people.images * 255).astype(np.uint8)
    if not color:
        images = np.repeat(images[..., None], 3, axis=-1)
    return FaceDataset(images, people.target, [str(n) for n in people.target_names],
                       name="lfw")
