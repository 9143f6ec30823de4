"""The one checkpoint format of every trainer (hash networks, teacher, GAN,
attribute classifier): atomic writes, safe loads, random-number states and
run identity.

A file is a ``dict`` saved by ``torch.save`` with ``"format"`` =
:data:`FORMAT` and a ``"kind"`` (``"checkpoint"``, ``"best"``,
``"gan_checkpoint"``, ``"generator"``, ...). It holds tensors, numbers,
strings, lists and dicts only, so :func:`load` reads it with
``weights_only=True``: a foreign or hostile pickle is refused, never run.

Run identity: a trainer stores its config's fingerprint, the config and a
summary of its data; :func:`check_same_run` refuses to resume a file of
another run and names the fields that differ.
"""
from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Iterable

import numpy as np
import torch

__all__ = ["FORMAT", "save_atomic", "load", "rng_state", "set_rng_state", "check_same_run"]

FORMAT = "dfh_lib.checkpoint/1"


def save_atomic(obj: dict, path: Path) -> None:
    """``torch.save`` to a temporary file, then rename, so a run killed
    mid-write leaves the previous file intact."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load(path: Path, kind: str | Iterable[str]) -> dict:
    """A dfh_lib file of ``kind`` (or one of several kinds), loaded on the CPU
    without running arbitrary pickled code (``weights_only=True``).

    Raises:
        ValueError: unreadable, foreign or of another kind (one line, with the fix).
    """
    kinds = (kind,) if isinstance(kind, str) else tuple(kind)
    fresh = "delete it or use another run_dir (or resume=False) to start fresh"
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for foreign/corrupt files
        reason = str(err).strip().split("\n", 1)[0]
        raise ValueError(f"{path} is not a readable dfh_lib checkpoint "
                         f"({type(err).__name__}: {reason}); {fresh}") from err
    if not isinstance(state, dict) or state.get("format") != FORMAT \
            or state.get("kind") not in kinds:
        raise ValueError(f"{path} is not a dfh_lib {' or '.join(kinds)} file "
                         f"(format {FORMAT}); {fresh}")
    return state


def rng_state(generator: torch.Generator) -> dict:
    """Every RNG state (Python, NumPy, torch, CUDA and ``generator``) as
    tensors and lists, loadable with ``weights_only=True``."""
    version, mt, gauss = random.getstate()
    _, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    return {"python": [version, list(mt), gauss],
            "numpy": [torch.from_numpy(np_keys.astype(np.int64)), np_pos, np_has_gauss, np_gauss],
            "torch": torch.get_rng_state(), "generator": generator.get_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def set_rng_state(state: dict, generator: torch.Generator) -> None:
    """Restore what :func:`rng_state` saved (``generator`` included)."""
    version, mt, gauss = state["python"]
    random.setstate((version, tuple(mt), gauss))
    keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state(("MT19937", keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    generator.set_state(state["generator"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def check_same_run(state: dict, fingerprint: str, config: dict, data: dict, path: Path,
                   not_in_fingerprint: Iterable[str] = (),
                   recorded_later: Iterable[str] = ()) -> None:
    """Refuse to resume ``state`` (a loaded checkpoint) for another run.

    The run is the same when the saved fingerprint equals ``fingerprint`` and
    the saved data summary equals ``data``. ``recorded_later``: data keys
    that older files lack; a file without one is taken to have the new value.

    Raises:
        ValueError: "<path> belongs to a different run (field: old -> new; ...)".
    """
    saved = dict(state["data"])
    for key in recorded_later:
        saved.setdefault(key, data.get(key))
    if state["fingerprint"] == fingerprint and saved == data:
        return
    ignored = set(not_in_fingerprint)
    old, new = {**state["config"], **saved}, {**config, **data}
    changed = [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in sorted(new)
               if k not in ignored and old.get(k) != new.get(k)]
    raise ValueError(f"{path} belongs to a different run ({'; '.join(changed)}); "
                     f"use another run_dir, delete the checkpoint, or pass resume=False "
                     f"to start fresh")
