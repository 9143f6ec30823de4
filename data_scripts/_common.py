"""Helpers shared by the ``data_scripts/prepare_*.py`` command-line tools.

Argument parsing, fetching a file (local path, URL or Google Drive), safe
archive extraction and SHA-256 manifests (``SHA256SUMS``, the format of
``sha256sum``: one ``<hex>  <relative path>`` line per file).
"""
from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
try:
    import dfh_lib  # noqa: F401  (installed with pip install -e .)
except ModuleNotFoundError:  # run from a plain checkout: use the checkout's library
    sys.path.insert(0, str(REPO_ROOT))

from tqdm.auto import tqdm  # noqa: E402

from dfh_lib.core.data.paths import data_dir  # noqa: E402

MANIFEST = "SHA256SUMS"


def base_parser(description: str) -> argparse.ArgumentParser:
    """An argument parser with ``--data-dir`` (default: ``data_dir()``) and ``--verify-only``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--data-dir", type=Path, default=data_dir(),
                        help="data folder holding one sub-folder per dataset "
                             "(default: $DFH_DATA_DIR or ~/dfh_data, now %(default)s)")
    parser.add_argument("--verify-only", action="store_true",
                        help="do not download; only check the files already there")
    return parser


def fetch(source: str, dest_dir: Path) -> Path:
    """``source`` as a local file: an existing path is returned as is; a URL or
    Google Drive link/id is downloaded into ``dest_dir`` with gdown."""
    if Path(source).expanduser().exists():
        return Path(source).expanduser()
    import gdown  # only needed when something is downloaded

    dest_dir.mkdir(parents=True, exist_ok=True)
    is_url = "://" in source
    out = gdown.download(url=source if is_url else None, id=None if is_url else source,
                         output=str(dest_dir) + os.sep, quiet=False, fuzzy=True)
    if out is None:
        raise RuntimeError(f"download of {source} failed (quota exceeded or link private?); "
                           f"download it by hand and pass the file's path instead")
    return Path(out)


def is_archive(path: Path) -> bool:
    """Whether ``path`` is a zip or tar archive (by content, not by name)."""
    return zipfile.is_zipfile(path) or tarfile.is_tarfile(path)


def extract(archive: Path, dest: Path) -> Path:
    """Unpack ``archive`` (zip / tar[.gz|.bz2|.xz]) into ``dest`` and return the
    folder holding the content: a lone top-level folder is descended into.

    zip names are sanitised by :mod:`zipfile`; tar members are filtered with
    the ``"data"`` policy (no absolute paths, links out of ``dest`` or devices).
    """
    dest.mkdir(parents=True, exist_ok=True)
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(dest)
    elif tarfile.is_tarfile(archive):
        with tarfile.open(archive) as tf:
            tf.extractall(dest, filter="data")
    else:
        raise ValueError(f"{archive} is not a zip or tar archive; "
                         f"unpack it yourself and pass the folder instead")
    content = dest
    while True:
        entries = [e for e in content.iterdir() if not e.name.startswith((".", "__MACOSX"))]
        if len(entries) != 1 or not entries[0].is_dir():
            return content
        content = entries[0]


def move_contents(source: Path, dest: Path) -> None:
    """Move every entry of folder ``source`` into ``dest`` (created if needed)."""
    dest.mkdir(parents=True, exist_ok=True)
    for entry in source.iterdir():
        shutil.move(str(entry), dest / entry.name)


def unpack_into(archive: Path, dest: Path) -> None:
    """Extract ``archive`` and move its content (inside any lone top folder) into ``dest``."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".unpack_") as tmp:
        move_contents(extract(archive, Path(tmp)), dest)


def sha256_file(path: Path, chunk_size: int = 1 << 20) -> str:
    """Hex SHA-256 of one file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk_size):
            digest.update(block)
    return digest.hexdigest()


def sha256_tree(folder: Path) -> dict[str, str]:
    """``{relative posix path: sha256}`` of every file under ``folder`` except the manifest."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST)
    return {p.relative_to(folder).as_posix(): sha256_file(p)
            for p in tqdm(files, desc=f"sha256 {folder.name}", unit="file", leave=False)}


def write_manifest(folder: Path, hashes: dict[str, str]) -> Path:
    """Write ``folder/SHA256SUMS`` (``sha256sum -c`` compatible)."""
    path = folder / MANIFEST
    path.write_text("".join(f"{h}  {name}\n" for name, h in sorted(hashes.items())))
    return path


def read_manifest(folder: Path) -> dict[str, str]:
    """``{relative path: sha256}`` from ``folder/SHA256SUMS``."""
    lines = (folder / MANIFEST).read_text().splitlines()
    return {name: digest for digest, name in (line.split(None, 1) for line in lines if line)}


def check_manifest(folder: Path) -> bool:
    """Check ``folder`` against its ``SHA256SUMS``; False when there is none yet.

    Raises ``ValueError`` listing the files added, removed or changed since
    the manifest was written.
    """
    if not (folder / MANIFEST).exists():
        return False
    expected, hashes = read_manifest(folder), sha256_tree(folder)
    changed = sorted(n for n in expected.keys() & hashes.keys() if expected[n] != hashes[n])
    added = sorted(hashes.keys() - expected.keys())
    missing = sorted(expected.keys() - hashes.keys())
    if changed or added or missing:
        raise ValueError(f"{folder} does not match its {MANIFEST}: changed {changed}, "
                         f"missing {missing}, unexpected {added}. Re-download the dataset "
                         f"(delete the folder first) or, if the change is intended, delete "
                         f"{folder / MANIFEST} to record the new files.")
    return True


def record_manifest(folder: Path) -> Path:
    """Hash every file under ``folder`` into ``folder/SHA256SUMS``."""
    return write_manifest(folder, sha256_tree(folder))


def report(name: str, summary: dict) -> None:
    """Print a one-line-per-field summary of a verified dataset."""
    print(f"{name}: OK")
    for key, value in summary.items():
        print(f"  {key}: {value}")
