"""The ORL (AT&T "att_faces") database: 40 people x 10 grey 112x92 images.

Layout: ``<data_dir>/orl/att_faces/s1 ... s40/1.pgm ... 10.pgm``.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from .dataset import FaceDataset
from .image_folder import dataset_from_folders, scan_identity_folders
from .paths import data_dir, prepare_command, require_paths

__all__ = ["load_orl", "required_paths"]


def _numeric_key(name: str) -> tuple[int, str]:
    """Sort ``s2`` before ``s10`` and ``2.pgm`` before ``10.pgm``."""
    digits = re.sub(r"\D", "", name)
    return (int(digits) if digits else -1, name)


def required_paths(root: str | os.PathLike | None = None) -> list[Path]:
    """The folder :func:`load_orl` reads."""
    return [data_dir(root) / "orl" / "att_faces"]


def load_orl(root: str | os.PathLike | None = None) -> FaceDataset:
    """ORL / AT&T faces: 400 images of 40 people, ``(400, 112, 92, 3)`` uint8.

    Identities are named ``s1..s40`` and labelled in numeric folder order
    (``s1`` -> 0, ``s2`` -> 1, ..., ``s40`` -> 39, not string order); images
    within a person are in numeric file order ``1.pgm..10.pgm``. The grey
    images are repeated to three channels.
    """
    folder, = required_paths(root)
    require_paths([folder], "ORL", prepare_command(
        "prepare_orl.py", root, "--source ATT_FACES_ARCHIVE_OR_URL"))
    people = [(name, files) for name, files in scan_identity_folders(folder, _numeric_key)
              if files]
    if not people:
        raise ValueError(f"no s<k>/ folders with .pgm images in {folder}")
    return dataset_from_folders(people, None, name="orl")
