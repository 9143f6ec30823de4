"""Index a folder of photos with a trained run and search it with a photo.

The images go through the path training used (:mod:`dfh_lib.core.data.image_folder`):
decoded, with ``detect=True`` cut to the face (the book's LFW framing,
:mod:`dfh_lib.core.data.face_detect`), resized once (bicubic) to the
network's input, encoded and binarized. The codes are kept in a
:class:`~dfh_lib.core.code_file.CodeFile` together with the run's fingerprint,
so a search with another run's network is refused.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from ..core.code_file import CodeFile
from ..core.data.image_folder import find_images, read_face, read_faces, read_image
from .encoding import binary_codes
from .run_model import LoadedRun

__all__ = ["photo_codes", "index_photos", "search_photo"]


def _codes(run: LoadedRun, images: list[np.ndarray]) -> torch.Tensor:
    """±1 codes (N, bits) of (H, W, 3) uint8 images already at the network's size."""
    if not images:
        return torch.empty(0, run.config.bits, dtype=torch.int8)
    batch = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()
    return binary_codes(run.model, batch)


def photo_codes(run: LoadedRun, paths, detect: bool = False, largest: bool = False,
                root: str | os.PathLike | None = None
                ) -> tuple[torch.Tensor, list[Path], dict[Path, str]]:
    """±1 codes ``(N, bits)`` of the image files ``paths`` (relative to ``root``).

    Returns ``(codes, the paths encoded, {path left out: reason})``: with
    ``detect=True`` photos with no face or several faces (unless
    ``largest``) are left out; without it every image is encoded whole.
    """
    paths = [Path(p) for p in paths]
    if detect:
        faces, rejected = read_faces(paths, run.image_size, largest, root)
        kept = [p for p in paths if p in faces]
        return _codes(run, [faces[p] for p in kept]), kept, rejected
    images = [read_image(Path(root) / p if root is not None else p, run.image_size)
              for p in paths]
    return _codes(run, images), paths, {}


def index_photos(run: LoadedRun, root: str | os.PathLike, detect: bool = False,
                 largest: bool = False) -> tuple[CodeFile, dict[Path, str]]:
    """The codes of every image under ``root`` (recursively, sorted paths)
    and the photos left out (see :func:`photo_codes`).

    Raises:
        FileNotFoundError: ``root`` is not a folder.
        ValueError: no image file under it, or no face in any of them.
    """
    root = Path(root).expanduser()
    codes, kept, rejected = photo_codes(run, find_images(root), detect, largest, root)
    if not kept:
        raise ValueError(f"no photo under {root} holds exactly one face (checked "
                         f"{len(rejected)})")
    code_file = CodeFile.from_codes(codes, kept, run.fingerprint, root=str(root.resolve()),
                                    run_dir=str(run.run_dir), detect=detect)
    return code_file, rejected


def search_photo(code_file: CodeFile, run: LoadedRun, image: str | os.PathLike, k: int = 10,
                 detect: bool = False, largest: bool = False) -> list[tuple[str, int]]:
    """The ``k`` paths of ``code_file`` nearest to the photo ``image`` in
    Hamming distance, with the distances (ties in path order).

    Raises:
        ValueError: ``code_file`` was made by another run's network, or
            (``detect``) the photo has no face or several (``largest``
            allows several: the largest is used).
    """
    if code_file.fingerprint != run.fingerprint:
        raise ValueError(f"the code file was made with another run (fingerprint "
                         f"{code_file.fingerprint}; {run.run_dir} has {run.fingerprint}): "
                         f"index the folder again with this run, or search with its run")
    image = Path(image).expanduser()
    pixels = (read_face(image, run.image_size, largest) if detect
              else read_image(image, run.image_size))
    return code_file.search(_codes(run, [pixels]), k)[0]
