"""Download and verify the real face datasets into :func:`data_dir`.

One entry per dataset in :data:`FETCHERS`; :func:`fetch_dataset` runs it::

    python -m dfh_lib fetch lfw                      # ~230 MB, checksummed
    python -m dfh_lib fetch orl --source att_faces.zip
    python -m dfh_lib fetch lfw --verify-only --data-dir /data

(``data_scripts/prepare_<name>.py`` in a git clone call the same functions.)

=================  ==========================================  ===============================
name               source                                      layout under the data folder
=================  ==========================================  ===============================
``lfw``            scikit-learn's figshare copies (SHA-256)    ``lfw/lfw_home/`` (sklearn's)
``orl``            ``--source``: an ``att_faces`` archive      ``orl/att_faces/s1..s40``
``celeba``         torchvision (Google Drive, its MD5 sums)    ``celeba/celeba/`` (torchvision's)
``facescrub``      DDH's Google Drive splits (gdown)           ``facescrub/{train,test}``
``youtube_faces``  DDH's Google Drive splits (gdown)           ``youtube_faces/{train,test}``
``vggface2``       DCDH's processed subset (Drive) or --source ``vggface2_subset/{train,test}``
=================  ==========================================  ===============================

Every verify step raises ``ValueError`` (one line, saying what to do) when
the files are incomplete or differ from the published counts/checksums; the
DDH and VGGFace2 folders also get a ``SHA256SUMS`` manifest, checked on
later runs before anything is unpickled or decoded.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np

from .celeba import CELEBA_SPLITS, read_celeba_index
from .ddh import DDH_SIZES, DDHSize, read_ddh_split
from .download import (ChecksumError, check_manifest, download_url, extract, fetch_source,
                       is_archive, move_contents, record_manifest, sha256_file, unpack_into)
from .image_folder import scan_identity_folders
from .paths import data_dir as default_data_dir

__all__ = ["FETCHERS", "Fetcher", "Remote", "fetch_dataset", "report", "LFW_REMOTE",
           "download_lfw", "verify_lfw", "download_orl", "verify_orl", "download_celeba",
           "verify_celeba", "DDH_DRIVE_IDS", "download_ddh", "verify_ddh", "place",
           "download_vggface2", "verify_vggface2", "verify_split_folders"]


class Remote(NamedTuple):
    """A file to download and the SHA-256 it must have."""

    url: str
    sha256: str


# ------------------------------------------------------------------ LFW ----

# scikit-learn's own table (sklearn/datasets/_lfw.py: TARGETS, FUNNELED_ARCHIVE):
# the same files in the same data_home layout, so load_lfw reads them unchanged.
_FIGSHARE = "https://ndownloader.figshare.com/files/"
LFW_REMOTE = {
    "pairsDevTrain.txt": Remote(
        _FIGSHARE + "5976012", "1d454dada7dfeca0e7eab6f65dc4e97a6312d44cf142207be28d688be92aabfa"),
    "pairsDevTest.txt": Remote(
        _FIGSHARE + "5976009", "7cb06600ea8b2814ac26e946201cdb304296262aad67d046a16a7ec85d0ff87c"),
    "pairs.txt": Remote(
        _FIGSHARE + "5976006", "ea42330c62c92989f9d7c03237ed5d591365e89b3e649747777b70e692dc1592"),
    "lfw-funneled.tgz": Remote(
        _FIGSHARE + "5976015", "b47c8422c8cded889dc5a13418c4bc2abbda121092b3533a83306f90d900100a"),
}
LFW_PEOPLE, LFW_IMAGES = 5_749, 13_233


def _lfw_pair_lists() -> dict[str, str]:
    return {name: r.sha256 for name, r in LFW_REMOTE.items() if name.endswith(".txt")}


def download_lfw(data_dir: Path, source: str | None = None) -> None:
    """Fetch the pair lists and the funneled images into ``lfw/lfw_home``
    (what is already there is kept): checksummed, with a progress bar."""
    home = Path(data_dir) / "lfw" / "lfw_home"
    home.mkdir(parents=True, exist_ok=True)
    for name, sha256 in _lfw_pair_lists().items():
        if not (home / name).is_file():
            download_url(LFW_REMOTE[name].url, home / name, sha256)
    images = home / "lfw_funneled"
    if images.is_dir():
        print(f"{images} already exists; not downloading it again")
        return
    remote = LFW_REMOTE["lfw-funneled.tgz"]
    with tempfile.TemporaryDirectory(dir=home, prefix=".download_") as tmp:
        archive = download_url(remote.url, Path(tmp) / "lfw-funneled.tgz", remote.sha256)
        print(f"unpacking {archive.name} into {images} ...")
        os.replace(extract(archive, Path(tmp) / "x"), images)


def verify_lfw(data_dir: Path) -> dict:
    """Count people/images and check the pair lists; raise ``ValueError`` on a mismatch."""
    home = Path(data_dir) / "lfw" / "lfw_home"
    images_dir = home / "lfw_funneled"
    if not images_dir.is_dir():
        raise ValueError(f"{images_dir} is missing; run without --verify-only to download it")
    people = [d for d in images_dir.iterdir() if d.is_dir()]
    num_images = sum(1 for d in people for f in d.iterdir() if f.suffix == ".jpg")
    if (len(people), num_images) != (LFW_PEOPLE, LFW_IMAGES):
        raise ValueError(f"{images_dir}: {len(people)} people / {num_images} images, expected "
                         f"{LFW_PEOPLE} / {LFW_IMAGES}; delete it and download again")
    for name, expected in _lfw_pair_lists().items():
        if not (home / name).is_file() or sha256_file(home / name) != expected:
            raise ChecksumError(f"{home / name} is missing or its SHA-256 differs from "
                                f"scikit-learn's {expected[:12]}...; delete it and download "
                                f"again")
    return {"folder": images_dir, "people": len(people), "images": num_images,
            "pair lists": "SHA-256 match scikit-learn"}


# ------------------------------------------------------------------ ORL ----

ORL_PEOPLE, ORL_SHOTS, ORL_SIZE_WH = 40, 10, (92, 112)


def _find_people_folder(folder: Path) -> Path:
    """The folder under ``folder`` that holds ``s1``."""
    found = next((p.parent for p in sorted(folder.rglob("s1")) if p.is_dir()), None)
    if found is None:
        raise ValueError(f"no s1/ folder inside the archive (unpacked at {folder}); "
                         f"is it the AT&T att_faces archive?")
    return found


def download_orl(data_dir: Path, source: str) -> Path:
    """Fetch ``source`` (an ``att_faces`` archive: path or URL) and move its
    s1..s40 folders into ``<data_dir>/orl/att_faces``."""
    dest = Path(data_dir) / "orl" / "att_faces"
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".unpack_") as tmp:
        archive = fetch_source(source, Path(tmp) / "download")
        move_contents(_find_people_folder(extract(archive, Path(tmp) / "x")), dest)
    return dest


def verify_orl(data_dir: Path) -> dict:
    """Check 40 folders s1..s40 of 10 images at 112x92; raise ``ValueError`` otherwise."""
    from PIL import Image

    folder = Path(data_dir) / "orl" / "att_faces"
    for person in range(1, ORL_PEOPLE + 1):
        for shot in range(1, ORL_SHOTS + 1):
            path = folder / f"s{person}" / f"{shot}.pgm"
            if not path.is_file():
                raise ValueError(f"{path} is missing; unpack the complete att_faces archive")
            with Image.open(path) as image:  # reads the header only
                if image.size != ORL_SIZE_WH:
                    raise ValueError(f"{path} is {image.size[1]}x{image.size[0]}, expected "
                                     f"{ORL_SIZE_WH[1]}x{ORL_SIZE_WH[0]} (height x width)")
    return {"folder": folder, "people": ORL_PEOPLE, "images": ORL_PEOPLE * ORL_SHOTS,
            "size": f"{ORL_SIZE_WH[1]}x{ORL_SIZE_WH[0]}"}


# --------------------------------------------------------------- CelebA ----

CELEBA_FULL_IMAGES = 202_599


def download_celeba(data_dir: Path, source: str | None = None) -> None:
    """Fetch the full release with ``torchvision.datasets.CelebA(download=True)``
    (Google Drive through gdown; its quotas often make this fail: then
    download by hand into the layout and verify with ``--verify-only``)."""
    from torchvision.datasets import CelebA

    CelebA(root=str(Path(data_dir) / "celeba"), split="all", target_type="attr",
           download=True)


def verify_celeba(data_dir: Path, expected_images: int | None = None) -> dict:
    """Check the annotation rows against the images present; ``ValueError`` on a mismatch."""
    index = read_celeba_index(data_dir)
    present = sum(1 for f in index.folder.iterdir() if f.suffix.lower() == ".jpg")
    if present != len(index.files):
        raise ValueError(f"{index.folder}: {present} images but {len(index.files)} have "
                         f"attribute rows; the annotation files belong to another release")
    if expected_images is not None and present != expected_images:
        raise ValueError(f"{index.folder}: {present} images, expected {expected_images}; "
                         f"the download is incomplete, run it again")
    per_split = {s: int((index.partition == c).sum()) for s, c in CELEBA_SPLITS.items()
                 if c is not None}
    return {"folder": index.folder, "images": present,
            "identities": len(np.unique(index.identities)),
            "attributes": len(index.attribute_names), "images per split": per_split}


# ------------------------------------------- DDH: FaceScrub, YouTube Faces ----

# DDH (Lin et al., IJCAI 2017) released its 32x32 splits on Google Drive, one
# file per split (ids from the DCDH README); they are Python-2 pickles, read
# with dfh_lib's restricted unpickler, never plain pickle.load.
DDH_DRIVE_IDS = {
    "facescrub": {"train": "1STytImOvad3PgPN2NwUSVga-fOU5i2Tm",
                  "test": "1saSeHjaJBSAUNlyC-Ismdh2VbEiyZPuU"},
    "youtube_faces": {"train": "1Of-hUKhQhk3OtCUAZc15pZqEvKHWNUpN",
                      "test": "10RuxZuIMfvPN6ziPglJTgS6IWFBzW3pW"},
}


def place(downloaded: Path, dest: Path) -> None:
    """Put a downloaded split into ``dest``: unpack an archive, move a lone pickle."""
    if is_archive(downloaded):
        unpack_into(downloaded, dest)
    else:
        dest.mkdir(parents=True, exist_ok=True)
        shutil.move(str(downloaded), dest / downloaded.name)


def download_ddh(name: str, data_dir: Path, source: str | None = None) -> None:
    """Fetch the splits of ``name`` that are not there yet."""
    data_dir = Path(data_dir)
    for split, file_id in DDH_DRIVE_IDS[name].items():
        dest = data_dir / name / split
        if dest.is_dir() and any(dest.iterdir()):
            print(f"{dest} already holds files; not downloading it again")
            continue
        data_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=data_dir, prefix=".download_") as tmp:
            place(fetch_source(file_id, Path(tmp)), dest)


def verify_ddh(name: str, data_dir: Path, expected: DDHSize | None = None) -> dict:
    """Check the manifest (if any), then the content; record the manifest if new.

    Raises ``ValueError`` when counts differ from ``expected`` (default: the
    published sizes) and :class:`UnsafePickleError` for a hostile file.
    """
    expected = expected or DDH_SIZES[name]
    folder = Path(data_dir) / name
    missing = [s for s in ("train", "test") if not (folder / s).is_dir()]
    if missing:
        raise ValueError(f"{folder / missing[0]} is missing; run without --verify-only "
                         f"to download it")
    manifest_checked = check_manifest(folder)  # before unpickling anything changed
    (_, train_y), (_, test_y) = (read_ddh_split(folder / s) for s in ("train", "test"))
    found = DDHSize(len(np.union1d(train_y, test_y)), len(train_y), len(test_y))
    if found != expected:
        raise ValueError(f"{folder}: found {found}, expected {expected} (identities, train, "
                         f"test images); delete the folder and download again")
    if not manifest_checked:
        record_manifest(folder)
    return {"folder": folder, "identities": found.identities, "train images": found.train,
            "test images": found.test,
            "SHA256SUMS": "checked" if manifest_checked else "written"}


# ------------------------------------------------------ VGGFace2 subset ----

VGGFACE2_FOLDER = "vggface2_subset"
# DCDH's processed subset (~2.4 GB), ImageFolder layout train/<id>/*.jpg, test/<id>/*.jpg
VGGFACE2_DRIVE_ID = "1PaXIfSrw1SC1uiv4Affgm882-Q-w_icl"
SPLITS = ("train", "test")


def download_vggface2(data_dir: Path, source: str | None = None) -> Path:
    """Fetch ``source`` (archive: path, URL or Drive id; default DCDH's
    subset) and unpack it into ``<data_dir>/vggface2_subset``."""
    data_dir = Path(data_dir)
    dest = data_dir / VGGFACE2_FOLDER
    data_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=data_dir, prefix=".download_") as tmp:
        unpack_into(fetch_source(source or VGGFACE2_DRIVE_ID, Path(tmp)), dest)
    return dest


def verify_split_folders(folder: Path, expected_identities: int | None = None,
                         expected_images: int | None = None) -> dict:
    """Count identities/images of ``folder/{train,test}``; raise ``ValueError``
    on a mismatch. ``expected_*`` are totals over the splits (None: not checked)."""
    folder = Path(folder)
    missing = [s for s in SPLITS if not (folder / s).is_dir()]
    if missing:
        raise ValueError(f"{folder} lacks {missing}; expected ImageFolder splits {SPLITS}")
    manifest_checked = check_manifest(folder)
    people = {s: {name: len(files) for name, files in scan_identity_folders(folder / s)
                  if files} for s in SPLITS}
    unknown = sorted(people["test"].keys() - people["train"].keys())
    if unknown:
        raise ValueError(f"{len(unknown)} test identities have no train images, e.g. {unknown[0]}")
    found = (len(people["train"]), sum(sum(c.values()) for c in people.values()))
    for what, value, want in zip(("identities", "images"), found,
                                 (expected_identities, expected_images)):
        if want is not None and value != want:
            raise ValueError(f"{folder}: {value} {what}, expected {want}")
    if not manifest_checked:
        record_manifest(folder)
    return {"folder": folder, "identities": found[0],
            **{f"{s} images": sum(people[s].values()) for s in SPLITS},
            "SHA256SUMS": "checked" if manifest_checked else "written"}


def verify_vggface2(data_dir: Path) -> dict:
    """:func:`verify_split_folders` of ``<data_dir>/vggface2_subset``."""
    return verify_split_folders(Path(data_dir) / VGGFACE2_FOLDER)


# ------------------------------------------------------------- registry ----

@dataclass(frozen=True)
class Fetcher:
    """How one dataset is fetched and checked.

    ``download(data_dir, source)`` puts the files in place (keeping what is
    there); ``verify(data_dir, downloaded)`` checks them and returns a
    summary (``downloaded``: the files were just fetched, so the complete
    release is expected). ``source``: ``"none"`` (the URLs are built in),
    ``"optional"`` (a built-in default, ``--source`` overrides it) or
    ``"required"``.
    """

    label: str
    download: Callable[[Path, str | None], object]
    verify: Callable[[Path, bool], dict]
    source: str = "none"
    size: str = ""


FETCHERS: dict[str, Fetcher] = {
    "lfw": Fetcher("LFW", download_lfw, lambda d, _: verify_lfw(d), size="~230 MB"),
    "orl": Fetcher("ORL", download_orl, lambda d, _: verify_orl(d), source="required",
                   size="~4 MB"),
    "celeba": Fetcher("CelebA", download_celeba,
                      lambda d, new: verify_celeba(d, CELEBA_FULL_IMAGES if new else None),
                      size="~1.4 GB"),
    "facescrub": Fetcher("facescrub", lambda d, s: download_ddh("facescrub", d),
                         lambda d, _: verify_ddh("facescrub", d)),
    "youtube_faces": Fetcher("youtube_faces", lambda d, s: download_ddh("youtube_faces", d),
                             lambda d, _: verify_ddh("youtube_faces", d)),
    "vggface2": Fetcher("VGGFace2 subset", download_vggface2, lambda d, _: verify_vggface2(d),
                        source="optional", size="~2.4 GB"),
}


def fetch_dataset(name: str, data_dir: str | os.PathLike | None = None,
                  source: str | None = None, verify_only: bool = False) -> dict:
    """Download dataset ``name`` into ``data_dir`` (default :func:`data_dir`)
    unless ``verify_only``, then verify it; returns the verification summary.

    Raises ``ValueError`` for an unknown name or a missing/unused ``source``,
    :class:`DownloadError` / :class:`ChecksumError` / ``ValueError`` when the
    download or the check fails.
    """
    if name not in FETCHERS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {sorted(FETCHERS)}")
    fetcher, root = FETCHERS[name], default_data_dir(data_dir)
    if source is not None and fetcher.source == "none":
        raise ValueError(f"{name} is downloaded from its built-in source; drop --source")
    if not verify_only:
        if source is None and fetcher.source == "required":
            raise ValueError(f"{name} needs --source (an archive: local path or URL) "
                             f"unless --verify-only is given")
        fetcher.download(root, source)
    return fetcher.verify(root, not verify_only)


def report(name: str, summary: dict) -> None:
    """Print a one-line-per-field summary of a verified dataset."""
    print(f"{name}: OK")
    for key, value in summary.items():
        print(f"  {key}: {value}")
