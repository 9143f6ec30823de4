"""Download and verification shared by prepare_facescrub.py and prepare_youtube_faces.py.

DDH (Lin et al., IJCAI 2017) released its 32x32 FaceScrub and YouTube Faces
splits on Google Drive (one file per split; ids from the DCDH README). Each
split ends up in ``<data-dir>/<name>/{train,test}/`` as Python-2 pickles. The
check reads them with dfh_lib's restricted unpickler (never plain
``pickle.load``), compares the counts with the papers', then records a
``SHA256SUMS`` manifest that later runs check first.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np
from _common import (base_parser, check_manifest, fetch, is_archive, record_manifest, report,
                     unpack_into)

from dfh_lib.core.data.ddh import DDH_SIZES, DDHSize, read_ddh_split

DRIVE_IDS = {
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


def download(name: str, data_dir: Path) -> None:
    """Fetch the splits of ``name`` that are not there yet."""
    for split, file_id in DRIVE_IDS[name].items():
        dest = data_dir / name / split
        if dest.is_dir() and any(dest.iterdir()):
            print(f"{dest} already holds files; not downloading it again")
            continue
        data_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=data_dir, prefix=".download_") as tmp:
            place(fetch(file_id, Path(tmp)), dest)


def verify(name: str, data_dir: Path, expected: DDHSize | None = None) -> dict:
    """Check the manifest (if any), then the content; record the manifest if new.

    Raises ``ValueError`` when counts differ from ``expected`` (default: the
    published sizes) and :class:`UnsafePickleError` for a hostile file.
    """
    expected = expected or DDH_SIZES[name]
    folder = data_dir / name
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


def main(name: str, argv=None) -> None:
    parser = base_parser(f"Download DDH's 32x32 {name} splits into <data-dir>/{name} "
                         f"and verify them (restricted unpickling, counts, SHA-256).")
    args = parser.parse_args(argv)
    if not args.verify_only:
        download(name, args.data_dir)
    report(name, verify(name, args.data_dir))
