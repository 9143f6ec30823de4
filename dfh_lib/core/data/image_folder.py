"""Image decoding and the one-folder-per-identity loader.

:func:`load_image_folder` reads any dataset laid out like torchvision's
``ImageFolder`` (``root/<identity>/<image>``): a VGGFace2 subset, a folder of
your own photos. :func:`read_image` is the single place where an image file is
decoded, so every loader reports a corrupt file the same way. With
``detect=True`` (and in :func:`read_faces`) each photo is cut to its face by
:mod:`.face_detect` (the book's LFW framing); photos with no face or several
faces are left out and named.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from PIL import Image

from .dataset import FaceDataset
from .face_detect import FaceDetectionError, crop_face
from .paths import DatasetNotFoundError

__all__ = ["IMAGE_EXTENSIONS", "image_size_hw", "read_image", "read_images",
           "scan_identity_folders", "dataset_from_folders", "load_image_folder",
           "required_paths", "find_images", "read_face", "read_faces", "rejected_message",
           "FACE_SIZE"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".pgm", ".bmp")
FACE_SIZE = (62, 47)  # face crops' default (height, width): load_lfw's crops


def image_size_hw(size: int | Sequence[int] | None) -> tuple[int, int] | None:
    """``size`` as ``(height, width)``: an int means a square; None stays None."""
    if size is None:
        return None
    hw = (size, size) if isinstance(size, (int, np.integer)) else tuple(size)
    if len(hw) != 2 or not all(isinstance(v, (int, np.integer)) and v > 0 for v in hw):
        raise ValueError(f"size must be a positive int or (height, width); got {size!r}")
    return int(hw[0]), int(hw[1])


def read_image(path: str | os.PathLike, size: tuple[int, int] | None = None) -> np.ndarray:
    """One image file as ``(H, W, 3)`` uint8 RGB (grey is repeated to 3 channels).

    ``size`` = (height, width) resizes with bicubic interpolation. A file PIL
    cannot decode (truncated, not an image) raises ``ValueError`` naming it.
    """
    try:
        with Image.open(path) as image:
            image = image.convert("RGB")
            if size is not None and image.size != (size[1], size[0]):
                image = image.resize((size[1], size[0]), Image.BICUBIC)
            return np.asarray(image)
    except FileNotFoundError:
        raise
    except (OSError, SyntaxError) as err:  # PIL's errors for truncated / unknown files
        raise ValueError(f"cannot decode image file {path}: {err}. "
                         f"Replace or delete the file, then load again.") from err


def _resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bicubic resize to (height, width), as :func:`read_image` and ``FaceDataset.resized``."""
    if image.shape[:2] == tuple(size):
        return image
    return np.asarray(Image.fromarray(image).resize((size[1], size[0]), Image.BICUBIC))


def find_images(root: str | os.PathLike) -> list[Path]:
    """Every image file under ``root``, recursively (hidden entries skipped),
    as paths relative to ``root`` in sorted order."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"no image folder {root}")
    found = [path.relative_to(root) for path in root.rglob("*")
             if path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS]
    found = sorted(p for p in found if not any(part.startswith(".") for part in p.parts))
    if not found:
        raise ValueError(f"no image file ({', '.join(IMAGE_EXTENSIONS)}) under {root}")
    return found


def read_face(path: str | os.PathLike, size: tuple[int, int] = FACE_SIZE,
              largest: bool = False) -> np.ndarray:
    """The face of one photo (:func:`~.face_detect.crop_face`) resized to
    ``size`` = (height, width) (bicubic): ``(H, W, 3)`` uint8.

    Raises:
        NoFaceError / SeveralFacesError: naming the photo (``largest=True``
            keeps the largest of several faces).
    """
    return _resize(crop_face(read_image(path), largest, str(path)), size)


def read_faces(paths: Sequence[Path], size: tuple[int, int] = FACE_SIZE,
               largest: bool = False, root: str | os.PathLike | None = None
               ) -> tuple[dict[Path, np.ndarray], dict[Path, str]]:
    """The face crop of each photo (:func:`~.face_detect.crop_face`) resized to
    ``size`` = (height, width) (bicubic), and the photos left out.

    Returns ``({path: (H, W, 3) uint8}, {path: "no face" | "<n> faces"})``;
    ``largest=True`` keeps the largest of several faces. ``root``: the folder
    ``paths`` are relative to.
    """
    faces, rejected = {}, {}
    for path in paths:
        try:
            faces[path] = read_face(Path(root) / path if root is not None else path, size,
                                    largest)
        except FaceDetectionError as err:
            rejected[path] = err.reason
    return faces, rejected


def rejected_message(rejected: dict[Path, str]) -> str:
    """One line naming the photos :func:`read_faces` left out."""
    return (f"skipped {len(rejected)} photo(s) without exactly one face: "
            + ", ".join(f"{path} ({reason})" for path, reason in rejected.items()))


def read_images(paths: Sequence[Path], size: tuple[int, int] | None) -> np.ndarray:
    """Decode ``paths`` into one ``(N, H, W, 3)`` uint8 array; all must share a
    size unless ``size`` resizes them."""
    images = [read_image(p, size) for p in paths]
    for path, image in zip(paths, images):
        if image.shape != images[0].shape:
            raise ValueError(
                f"images differ in size: {paths[0]} is {images[0].shape[0]}x"
                f"{images[0].shape[1]} but {path} is {image.shape[0]}x{image.shape[1]} "
                f"(height x width); pass size=(height, width) to resize them")
    return np.stack(images)


def scan_identity_folders(root: Path, sort_key: Callable[[str], object] | None = None
                          ) -> list[tuple[str, list[Path]]]:
    """``[(identity, image paths)]`` for every sub-folder of ``root``.

    Folder names and file stems are sorted by ``sort_key`` (default: plain
    string order, as torchvision's ``ImageFolder``); hidden entries and
    files without an image extension are skipped.
    """
    key = sort_key or str

    def images_in(folder: Path) -> list[Path]:
        files = (f for f in folder.iterdir() if f.is_file() and not f.name.startswith(".")
                 and f.suffix.lower() in IMAGE_EXTENSIONS)
        return sorted(files, key=lambda f: (key(f.stem), f.name))

    folders = sorted((d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")),
                     key=lambda d: key(d.name))
    return [(folder.name, images_in(folder)) for folder in folders]


def dataset_from_folders(identities: Sequence[tuple[str, Sequence[Path]]],
                         size: tuple[int, int] | None, name: str) -> FaceDataset:
    """Decode ``[(identity, image paths)]`` into a :class:`FaceDataset`,
    labelling identities ``0..C-1`` in list order."""
    paths = [path for _, files in identities for path in files]
    labels = np.repeat(np.arange(len(identities)), [len(files) for _, files in identities])
    return FaceDataset(read_images(paths, size), labels,
                       [identity for identity, _ in identities], name=name)


def required_paths(root: str | os.PathLike | None = None) -> list[Path]:
    """The folder :func:`load_image_folder` reads (none without a ``root``)."""
    return [] if root is None else [Path(root).expanduser()]


def load_image_folder(root: str | os.PathLike, size: int | Sequence[int] | None = None,
                      min_images: int = 1, detect: bool = False) -> FaceDataset:
    """Faces stored one folder per identity: ``root/<identity>/<image>``.

    Identities are the sub-folder names in sorted order (labels ``0..C-1``,
    as torchvision's ``ImageFolder``); images are ``.jpg/.jpeg/.png/.pgm/.bmp``
    files in sorted order. ``size`` = (height, width) (or an int) resizes; it
    is required when the images differ in size. Identities with fewer than
    ``min_images`` images are dropped.

    ``detect=True``: own photos rather than face crops. Each photo is cut to
    its face (:mod:`.face_detect`, LFW's eyebrows-to-chin 4:3 framing) and
    resized to ``size`` (default :data:`FACE_SIZE`, load_lfw's 62x47);
    photos with no face or several faces are skipped with a warning that
    names them. Needs ``opencv-python-headless``.

    Returns a :class:`FaceDataset` with images ``(N, H, W, 3)`` uint8.
    """
    if root is None:
        raise ValueError("load_image_folder needs root=<folder with one sub-folder per identity>")
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetNotFoundError("image folder", root, (
            "python -m dfh_lib fetch vggface2 --data-dir DIR\n    (in a git clone also: "
            "python data_scripts/prepare_vggface2_subset.py --data-dir DIR --source "
            "ARCHIVE_OR_URL)\n    then root=DIR/vggface2_subset/train (or your own "
            "folder of <identity>/<image> files)"))
    if min_images < 1:
        raise ValueError(f"min_images must be >= 1; got {min_images}")
    identities = scan_identity_folders(root)
    if detect:
        return _load_faces(root, identities, image_size_hw(size) or FACE_SIZE, min_images)
    identities = [(name, files) for name, files in identities if len(files) >= min_images]
    if not identities:
        raise ValueError(f"no identity folder in {root} holds >= {min_images} image(s) "
                         f"with an extension in {IMAGE_EXTENSIONS}")
    return dataset_from_folders(identities, image_size_hw(size), name=root.name)


def _load_faces(root: Path, identities: list[tuple[str, list[Path]]], size: tuple[int, int],
                min_images: int) -> FaceDataset:
    """:func:`load_image_folder` with ``detect=True``."""
    faces, rejected = read_faces([path for _, files in identities for path in files], size)
    if rejected:
        warnings.warn(rejected_message({path.relative_to(root): reason
                                        for path, reason in rejected.items()}), stacklevel=3)
    kept = [(name, [f for f in files if f in faces]) for name, files in identities]
    kept = [(name, files) for name, files in kept if len(files) >= min_images]
    if not kept:
        raise ValueError(f"no identity folder in {root} holds >= {min_images} photo(s) "
                         f"with exactly one face")
    images = [faces[f] for _, files in kept for f in files]
    labels = np.repeat(np.arange(len(kept)), [len(files) for _, files in kept])
    return FaceDataset(np.stack(images), labels, [name for name, _ in kept], name=root.name)
