"""Where face data is read from and where caches are written.

Data is read from :func:`data_dir` (``root`` argument, else ``$DFH_DATA_DIR``,
else ``~/dfh_data``) and treated as read-only: every cache the library builds
(scikit-learn's LFW joblib cache, the DDH ``.npz`` conversions) goes to
:func:`cache_dir` instead, so a shared or read-only data folder stays untouched.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

__all__ = ["data_dir", "cache_dir", "DatasetNotFoundError", "prepare_command",
           "require_paths", "files_fingerprint", "cached_arrays"]


def data_dir(root: str | os.PathLike | None = None) -> Path:
    """The data folder: ``root`` if given, else ``$DFH_DATA_DIR``, else ``~/dfh_data``."""
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get("DFH_DATA_DIR")
    return Path(env).expanduser() if env else Path.home() / "dfh_data"


def cache_dir() -> Path:
    """The cache folder (``$DFH_CACHE_DIR``, else ``~/.cache/dfh_lib``), created on demand."""
    env = os.environ.get("DFH_CACHE_DIR")
    path = Path(env).expanduser() if env else Path.home() / ".cache" / "dfh_lib"
    path.mkdir(parents=True, exist_ok=True)
    return path


class DatasetNotFoundError(FileNotFoundError):
    """A dataset's files are missing; the message names the path looked for
    and the command that fetches them (``python -m dfh_lib fetch <name>``)."""

    def __init__(self, dataset: str, missing: str | os.PathLike, command: str):
        self.dataset, self.missing, self.command = dataset, Path(missing), command
        super().__init__(
            f"{dataset} data not found: looked for {self.missing}.\n"
            f"Fetch it with:\n    {command}\n"
            f"or pass root=... / set DFH_DATA_DIR to the folder that already holds it.")

    def __reduce__(self):
        # keep the exception picklable (multiprocessing) despite the custom __init__
        return type(self), (self.dataset, self.missing, self.command)


def prepare_command(script: str, root: str | os.PathLike | None = None,
                    extra: str = "") -> str:
    """The shell command that fetches the dataset of ``data_scripts/<script>``
    into ``data_dir(root)``: ``python -m dfh_lib fetch <name>`` (works from
    the installed package), then the script for a git clone."""
    name = script.removeprefix("prepare_").removesuffix(".py").removesuffix("_subset")
    options = f"--data-dir {data_dir(root)} {extra}".rstrip()
    return (f"python -m dfh_lib fetch {name} {options}\n"
            f"    (in a git clone also: python data_scripts/{script} {options})")


def require_paths(paths: Iterable[Path], dataset: str, command: str) -> None:
    """Raise :class:`DatasetNotFoundError` for the first of ``paths`` that does not exist."""
    for path in paths:
        if not Path(path).exists():
            raise DatasetNotFoundError(dataset, path, command)


def files_fingerprint(paths: Iterable[Path]) -> str:
    """A short hash of the files' names, sizes and modification times (a cache key)."""
    digest = hashlib.sha256()
    for path in sorted(Path(p) for p in paths):
        stat = path.stat()
        digest.update(f"{path.name}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def cached_arrays(key: str, build: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The arrays stored under ``key`` in :func:`cache_dir`, built once by ``build()``.

    The cache is an uncompressed ``.npz`` read with ``allow_pickle=False``;
    it is written to a temporary file and renamed, so an interrupted run
    never leaves a half-written cache behind.
    """
    path = cache_dir() / f"{key}.npz"
    if path.exists():
        with np.load(path, allow_pickle=False) as stored:
            return {name: stored[name] for name in stored.files}
    arrays = build()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz.tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return arrays
