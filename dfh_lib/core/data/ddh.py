"""FaceScrub and YouTube Faces as released by DDH (32x32 faces in Python-2 pickles).

Layout: ``<data_dir>/facescrub/train/``, ``<data_dir>/facescrub/test/`` (likewise
``youtube_faces/``), each holding several pickles of a tuple ``(x, y)``:
``x`` (n, 3072) pixel values 0..255 in CHW order (or (n, 3, 32, 32)),
``y`` (n,) integer identity labels. Files are read in sorted name order, so
the database order is fixed (DDH's ``os.listdir`` order is not).

Expected sizes (Lin et al., IJCAI 2017; reused by DCDH):

==============  ==========  ===========  ==========
dataset         identities  train split  test split
==============  ==========  ===========  ==========
FaceScrub       530         67,177       2,650
YouTube Faces   1,595       63,800       7,975
==============  ==========  ===========  ==========

Unpickling can run arbitrary code, and these files come from a file-sharing
link, so they are read with :class:`RestrictedUnpickler`, which resolves only
the numpy globals an array needs. Each split is converted once to an ``.npz``
in :func:`cache_dir` (keyed by the files' names, sizes and times) and read with
``allow_pickle=False`` afterwards.
"""
from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .dataset import FaceDataset, RetrievalSplits
from .paths import (DatasetNotFoundError, cached_arrays, data_dir, files_fingerprint,
                    prepare_command, require_paths)

__all__ = ["DDH_SIZES", "UnsafePickleError", "RestrictedUnpickler", "read_ddh_pickle",
           "read_ddh_split", "ddh_normalize", "load_facescrub", "load_youtube_faces",
           "required_paths"]


class DDHSize(NamedTuple):
    identities: int
    train: int
    test: int


DDH_SIZES = {"facescrub": DDHSize(530, 67_177, 2_650),
             "youtube_faces": DDHSize(1_595, 63_800, 7_975)}
_SCRIPTS = {"facescrub": "prepare_facescrub.py", "youtube_faces": "prepare_youtube_faces.py"}

# numpy's own reconstruction helpers, taken from its reducers instead of
# importing private modules; Python-2 / numpy-1 pickles name them under
# numpy.core, numpy 2 under numpy._core. _frombuffer serves protocol 5.
_RECONSTRUCT = np.zeros(0).__reduce__()[0]
_FROMBUFFER = np.zeros(1).__reduce_ex__(5)[0]
_SCALAR = np.float64(0).__reduce__()[0]
_SAFE_GLOBALS = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}
for _core in ("numpy.core", "numpy._core"):
    _SAFE_GLOBALS[(f"{_core}.multiarray", "_reconstruct")] = _RECONSTRUCT
    _SAFE_GLOBALS[(f"{_core}.multiarray", "scalar")] = _SCALAR
    _SAFE_GLOBALS[(f"{_core}.numeric", "_frombuffer")] = _FROMBUFFER


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle asked for a global outside the numpy-array allow-list."""


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that can rebuild numpy arrays and nothing else.

    Tuples, lists, ints, floats and byte strings are pickle opcodes and need
    no global; the only globals resolved are numpy's array/scalar
    reconstructors (``_reconstruct``, ``scalar``, ``_frombuffer``),
    ``numpy.ndarray`` and ``numpy.dtype``. Any other global
    (``os.system``, ``builtins.eval``, a class) raises
    :class:`UnsafePickleError` before it can be called.
    """

    def find_class(self, module: str, name: str):
        try:
            return _SAFE_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"refusing to load global {module}.{name}: this pickle is not a plain "
                f"(numpy array, labels) tuple; only numpy array globals are allowed") from None


def _as_images(x, path: Path) -> np.ndarray:
    """``x`` (n, 3072) or (n, 3, 32, 32) values 0..255 -> (n, 32, 32, 3) uint8."""
    x = np.asarray(x)
    if x.dtype.kind not in "iuf" or not (x.ndim == 2 and x.shape[1] == 3072
                                         or x.ndim == 4 and x.shape[1:] == (3, 32, 32)):
        raise ValueError(f"{path}: x must be numbers of shape (n, 3072) or (n, 3, 32, 32) "
                         f"(32x32 RGB, CHW); got {x.shape} {x.dtype}")
    if x.size and not (x.min() >= 0 and x.max() <= 255):  # also catches NaN
        raise ValueError(f"{path}: x must hold pixel values in 0..255; got {x.min()}..{x.max()}"
                         f" (already normalised? DDH's release stores raw pixels)")
    return np.rint(x).astype(np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)


def _as_labels(y, n: int, path: Path) -> np.ndarray:
    """``y`` n integer labels >= 0 -> (n,) int64."""
    y = np.asarray(y)
    if y.shape != (n,) or y.dtype.kind not in "iu" or (n and y.min() < 0):
        raise ValueError(f"{path}: y must be {n} integer labels >= 0 (one per image); "
                         f"got shape {y.shape} {y.dtype}")
    return y.astype(np.int64)


def read_ddh_pickle(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """One DDH pickle file -> ``images`` (n, 32, 32, 3) uint8, ``labels`` (n,) int64.

    Read with :class:`RestrictedUnpickler` and ``encoding="bytes"`` (Python-2
    strings stay bytes). Raises :class:`UnsafePickleError` for a forbidden
    global and ``ValueError`` naming the file for a corrupt, truncated or
    wrongly shaped one.
    """
    path = Path(path)
    with open(path, "rb") as f:
        try:
            content = RestrictedUnpickler(f, encoding="bytes").load()
        except UnsafePickleError as err:
            raise UnsafePickleError(f"{path}: {err}") from None
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError,
                KeyError, AttributeError) as err:
            raise ValueError(f"{path} is not a readable pickle (truncated or corrupt "
                             f"download?): {type(err).__name__}: {err}") from err
    if not (isinstance(content, (tuple, list)) and len(content) == 2):
        got = type(content).__name__
        if isinstance(content, (tuple, list)):
            got += f" of length {len(content)}"
        raise ValueError(f"{path} must hold a tuple (x, y) of images and labels; got {got}")
    images = _as_images(content[0], path)
    return images, _as_labels(content[1], len(images), path)


def read_ddh_split(folder: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """All pickles in ``folder`` (sorted by name), concatenated and cached as ``.npz``.

    Returns ``images`` (N, 32, 32, 3) uint8 and ``labels`` (N,) int64.
    """
    folder = Path(folder)
    files = sorted(f for f in folder.iterdir() if f.is_file() and not f.name.startswith("."))
    if not files:
        script = _SCRIPTS.get(folder.parent.name, _SCRIPTS["facescrub"])
        raise DatasetNotFoundError(f"DDH split {folder.parent.name}/{folder.name}",
                                   folder / "<pickle files>",
                                   prepare_command(script, folder.parent.parent))

    def convert() -> dict[str, np.ndarray]:
        parts = [read_ddh_pickle(f) for f in files]
        return {"images": np.concatenate([p[0] for p in parts]),
                "labels": np.concatenate([p[1] for p in parts])}

    key = f"ddh/{folder.parent.name}_{folder.name}_v1_{files_fingerprint(files)}"
    arrays = cached_arrays(key, convert)
    return arrays["images"], arrays["labels"]


def ddh_normalize(images: np.ndarray) -> np.ndarray:
    """DDH's input pre-processing, as float32 of the same shape.

    ``x -= x.mean(); x /= x.std() + 1e-5; x *= 0.1; clip(x, -1, 1)`` with
    global scalars over the whole array. DDH computes them separately on the
    train and on the test split: call it on ``splits.database.images`` and on
    ``splits.query.images`` to reproduce that (``images`` (N, ...) any layout).
    """
    x = np.asarray(images, dtype=np.float32).copy()
    x -= x.mean(dtype=np.float64)
    x /= x.std(dtype=np.float64) + 1e-5
    x *= 0.1
    return np.clip(x, -1.0, 1.0, out=x)


def required_paths(name: str, root: str | os.PathLike | None = None) -> list[Path]:
    """The two split folders of DDH dataset ``name`` ("facescrub" / "youtube_faces")."""
    return [data_dir(root) / name / "train", data_dir(root) / name / "test"]


def _split_off_val(dataset: FaceDataset, num_val: int, seed: int
                   ) -> tuple[FaceDataset, FaceDataset]:
    """``(train, val_query)``: ``num_val`` seeded random images per identity go to val."""
    counts = np.bincount(dataset.labels, minlength=dataset.num_identities)
    if num_val < 0 or counts[counts > 0].min() <= num_val:
        raise ValueError(f"num_val must be >= 0 and leave >= 1 train image per identity "
                         f"(smallest identity: {counts[counts > 0].min()}); got {num_val}")
    rng = np.random.default_rng(seed)
    is_val = np.zeros(len(dataset), bool)
    for label in np.flatnonzero(counts):
        is_val[rng.permutation(np.flatnonzero(dataset.labels == label))[:num_val]] = True
    return dataset.subset(~is_val), dataset.subset(is_val)


def _load_ddh(name: str, root, num_val: int, seed: int) -> RetrievalSplits:
    train_dir, test_dir = required_paths(name, root)
    require_paths([train_dir, test_dir], name, prepare_command(_SCRIPTS[name], root))
    (train_x, train_y), (test_x, test_y) = read_ddh_split(train_dir), read_ddh_split(test_dir)
    num_ids = int(max(train_y.max(), test_y.max())) + 1
    names = [f"{name}_{i:04d}" for i in range(num_ids)]
    database = FaceDataset(train_x, train_y, names, name=name)
    query = FaceDataset(test_x, test_y, names, name=name)
    train, val_query = _split_off_val(database, num_val, seed)
    return RetrievalSplits(
        train=train, val_query=val_query, query=query, database=database, seed=seed,
        description=(f"{name} (DDH release): query = test split, database = whole train "
                     f"split; train = train split minus {num_val} val_query image(s) per "
                     f"identity (seed {seed})"))


def load_facescrub(root: str | os.PathLike | None = None, num_val: int = 1,
                   seed: int = 0) -> RetrievalSplits:
    """FaceScrub (DDH release): 530 identities, train 67,177 / test 2,650 at 32x32.

    ``query`` = the test split, ``database`` = the whole train split (DDH/DCDH
    protocol); ``train`` = the train split minus ``num_val`` seeded
    ``val_query`` images per identity (for model selection, never the query
    set). Images are uint8 (N, 32, 32, 3); :func:`ddh_normalize` gives DDH's
    float model input.
    """
    return _load_ddh("facescrub", root, num_val, seed)


def load_youtube_faces(root: str | os.PathLike | None = None, num_val: int = 1,
                       seed: int = 0) -> RetrievalSplits:
    """YouTube Faces (DDH release): 1,595 identities, train 63,800 / test 7,975 at 32x32.

    Same protocol and return value as :func:`load_facescrub`.
    """
    return _load_ddh("youtube_faces", root, num_val, seed)
