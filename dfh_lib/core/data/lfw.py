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
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .dataset import FaceDataset
from .paths import (cache_dir, cached_arrays, data_dir, files_fingerprint, prepare_command,
                    require_paths)

__all__ = ["load_lfw", "required_paths", "lfw_image_counts", "read_lfw_images",
           "load_lfw_people", "LfwPairs", "read_pairs_file", "load_lfw_pairs"]

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


# scikit-learn's default face crop of the 250x250 images (rows, columns)
_SKLEARN_CROP = (slice(70, 195), slice(78, 172))


def _people_folder(root) -> Path:
    return data_dir(root) / "lfw" / "lfw_home" / "lfw_funneled"


def lfw_image_counts(root: str | os.PathLike | None = None) -> dict[str, int]:
    """Images per person in LFW, by folder name (``"George_W_Bush"``: 530)."""
    require_paths(required_paths(root), "LFW", prepare_command("prepare_lfw.py", root))
    folder = _people_folder(root)
    return {p.name: sum(1 for f in p.iterdir() if f.suffix == ".jpg")
            for p in sorted(folder.iterdir()) if p.is_dir()}


def read_lfw_images(files: list[tuple[str, int]], root: str | os.PathLike | None = None,
                    resize: float = 0.5) -> np.ndarray:
    """The faces ``(person folder, image number)`` as ``(N, H, W, 3)`` uint8,
    cut and scaled exactly as :func:`load_lfw` (scikit-learn's crop and PIL
    resize; 62x47 at ``resize=0.5``), so a network trained on one reads the other.
    """
    from PIL import Image

    rows, cols = _SKLEARN_CROP
    h, w = int(resize * (rows.stop - rows.start)), int(resize * (cols.stop - cols.start))
    folder = _people_folder(root)
    out = np.zeros((len(files), h, w, 3), np.uint8)
    for i, (person, number) in enumerate(files):
        path = folder / person / f"{person}_{number:04d}.jpg"
        if not path.exists():
            raise FileNotFoundError(f"LFW image {path} is missing (is the LFW copy complete?)")
        with Image.open(path) as image:
            face = image.convert("RGB").crop((cols.start, rows.start, cols.stop, rows.stop))
            out[i] = np.asarray(face.resize((w, h)), np.uint8)
    return out


def load_lfw_people(people: list[str], root: str | os.PathLike | None = None,
                    resize: float = 0.5) -> FaceDataset:
    """Every image of the named people (folder names), labelled in the given
    order; ``identity_names`` use spaces as :func:`load_lfw` does. Decoded
    once and cached (keyed by the people and the files)."""
    counts = lfw_image_counts(root)
    unknown = [p for p in people if p not in counts]
    if unknown:
        raise ValueError(f"{len(unknown)} people are not in LFW, e.g. {unknown[0]!r}")
    files = [(p, n) for p in people for n in range(1, counts[p] + 1)]
    labels = np.repeat(np.arange(len(people)), [counts[p] for p in people])
    key = hashlib.sha256(("\n".join(people) + f"|{resize}|"
                          + str(_people_folder(root).resolve())).encode()).hexdigest()[:16]
    arrays = cached_arrays(f"lfw/people-{key}",
                           lambda: {"images": read_lfw_images(files, root, resize)})
    return FaceDataset(arrays["images"], labels, [p.replace("_", " ") for p in people],
                       name="lfw")


@dataclass(frozen=True)
class LfwPairs:
    """LFW's verification pairs (``pairs.txt``: 10 person-disjoint folds of
    300 same-person + 300 different-person pairs).

    ``first``/``second`` (N, H, W, 3) uint8 faces, ``same`` (N,) bool,
    ``fold`` (N,) in 1..10, ``people`` the folder names of each fold's pairs.
    """

    first: np.ndarray
    second: np.ndarray
    same: np.ndarray
    fold: np.ndarray
    people: dict[int, frozenset[str]]

    def __len__(self) -> int:
        return len(self.same)

    def subset(self, folds) -> "LfwPairs":
        """The pairs of the given folds only."""
        keep = np.isin(self.fold, list(folds))
        return LfwPairs(self.first[keep], self.second[keep], self.same[keep], self.fold[keep],
                        {f: p for f, p in self.people.items() if f in set(folds)})


def read_pairs_file(path: str | os.PathLike) -> list[list[tuple[str, int, str, int]]]:
    """``pairs.txt`` as folds of ``(person, number, person, number)``; the
    first ``n`` of each fold are same-person pairs, the next ``n`` different."""
    lines = [line.split() for line in Path(path).read_text().splitlines() if line.strip()]
    try:
        num_folds, per_kind = int(lines[0][0]), int(lines[0][1])
        folds, row = [], 1
        for _ in range(num_folds):
            fold = []
            for _ in range(per_kind):
                name, a, b = lines[row]
                fold.append((name, int(a), name, int(b)))
                row += 1
            for _ in range(per_kind):
                name_a, a, name_b, b = lines[row]
                fold.append((name_a, int(a), name_b, int(b)))
                row += 1
            folds.append(fold)
    except (IndexError, ValueError):
        raise ValueError(f"{path} is not an LFW pairs file (header 'folds pairs', then "
                         f"'name i j' and 'name i name j' lines)") from None
    return folds


def load_lfw_pairs(root: str | os.PathLike | None = None, resize: float = 0.5) -> LfwPairs:
    """The 6,000 pairs of ``pairs.txt`` (View 2), cut as :func:`load_lfw`."""
    require_paths(required_paths(root), "LFW", prepare_command("prepare_lfw.py", root))
    pairs_file = data_dir(root) / "lfw" / "lfw_home" / "pairs.txt"
    folds = read_pairs_file(pairs_file)
    rows = [pair for fold in folds for pair in fold]
    key = f"lfw/pairs-{files_fingerprint([pairs_file])}-{resize}"
    arrays = cached_arrays(key, lambda: {
        "first": read_lfw_images([(p[0], p[1]) for p in rows], root, resize),
        "second": read_lfw_images([(p[2], p[3]) for p in rows], root, resize)})
    same = np.array([p[0] == p[2] for p in rows])
    fold = np.repeat(np.arange(1, len(folds) + 1), [len(f) for f in folds])
    people = {i + 1: frozenset(n for p in f for n in (p[0], p[2])) for i, f in enumerate(folds)}
    return LfwPairs(arrays["first"], arrays["second"], same, fold, people)
