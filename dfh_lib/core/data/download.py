"""Getting files onto disk: downloads, safe archive extraction, SHA-256 manifests.

The generic half of :mod:`.fetch` (which knows the datasets):

* :func:`download_url` streams a URL (``https://``, ``file://``) to a file
  with a progress bar, checks its SHA-256 when one is known and only then
  renames it into place, so a failed or corrupt download never looks done;
* :func:`fetch_source` turns a local path, URL or Google Drive id into a
  local file (Drive through ``gdown``, the ``data`` extra);
* :func:`extract` unpacks zip / tar archives safely (zip names sanitised by
  :mod:`zipfile`, tar members filtered with the ``"data"`` policy);
* ``SHA256SUMS`` manifests (``sha256sum -c`` format) record a dataset once
  verified and catch later changes (:func:`check_manifest`).
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
import zlib
from pathlib import Path

__all__ = ["MANIFEST", "DownloadError", "ChecksumError", "download_url", "fetch_source",
           "is_archive", "extract", "move_contents", "unpack_into", "sha256_file",
           "sha256_tree", "write_manifest", "read_manifest", "check_manifest",
           "record_manifest"]

MANIFEST = "SHA256SUMS"
_CHUNK = 1 << 20


class DownloadError(RuntimeError):
    """A download failed (network, HTTP error, missing file, quota)."""


class ChecksumError(ValueError):
    """A downloaded or present file does not have the expected SHA-256."""


def _progress(total: int | None, desc: str):
    from tqdm.auto import tqdm  # a core dependency; imported when something is fetched

    return tqdm(total=total, desc=desc, unit="B", unit_scale=True, unit_divisor=1024,
                miniters=1)


def download_url(url: str, dest: str | os.PathLike, sha256: str | None = None,
                 retries: int = 3) -> Path:
    """Download ``url`` to ``dest`` with a progress bar and return ``dest``.

    The bytes go to ``dest.part`` first; ``dest`` appears only once the
    download is complete and, when ``sha256`` is given, matches it. Network
    errors of ``http(s)`` URLs are retried ``retries`` times.

    Raises:
        DownloadError: the URL could not be read.
        ChecksumError: the content's SHA-256 differs from ``sha256``.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    request = urllib.request.Request(url, headers={"User-Agent": "dfh_lib"})
    attempts = retries if url.startswith(("http://", "https://")) else 1
    for attempt in range(1, attempts + 1):
        digest = hashlib.sha256()
        try:
            with urllib.request.urlopen(request, timeout=60) as response, \
                    open(part, "wb") as out:
                total = int(response.headers.get("Content-Length") or 0) or None
                with _progress(total, dest.name) as bar:
                    while block := response.read(_CHUNK):
                        out.write(block)
                        digest.update(block)
                        bar.update(len(block))
            break
        except (OSError, ValueError) as exc:  # URLError, HTTPError, timeouts, bad URL
            part.unlink(missing_ok=True)
            if attempt == attempts:
                reason = exc if isinstance(exc, urllib.error.HTTPError) else \
                    getattr(exc, "reason", None) or exc
                raise DownloadError(f"download of {url} failed: {reason}") from exc
            time.sleep(attempt)
    if sha256 is not None and digest.hexdigest() != sha256:
        part.unlink(missing_ok=True)
        raise ChecksumError(f"{url} downloaded with SHA-256 {digest.hexdigest()[:16]}..., "
                            f"expected {sha256[:16]}...: the file is corrupt or changed; "
                            f"fetch again")
    os.replace(part, dest)
    return dest


def _is_drive(source: str) -> bool:
    """A Google Drive link, or a bare Drive file id (no path separator or dot)."""
    if "://" in source:
        return "drive.google.com" in source or "docs.google.com" in source
    return not any(c in source for c in "/\\.~")


def fetch_source(source: str, dest_dir: str | os.PathLike) -> Path:
    """``source`` as a local file: an existing path is returned as is; a
    Google Drive link or id is downloaded into ``dest_dir`` with gdown (the
    ``data`` extra), any other URL with :func:`download_url`."""
    if Path(source).expanduser().exists():
        return Path(source).expanduser()
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    if not _is_drive(source):
        if "://" not in source:
            raise DownloadError(f"{source} is neither an existing file nor a URL")
        name = source.rstrip("/").rsplit("/", 1)[-1].split("?")[0] or "download"
        return download_url(source, dest_dir / name)
    try:
        import gdown
    except ImportError as exc:
        raise DownloadError("downloading from Google Drive needs gdown: "
                            "pip install 'dfh-book[data]' (or pip install gdown)") from exc
    is_url = "://" in source
    out = gdown.download(url=source if is_url else None, id=None if is_url else source,
                         output=str(dest_dir) + os.sep, quiet=False, fuzzy=True)
    if out is None:
        raise DownloadError(f"download of {source} failed (quota exceeded or link private?); "
                            f"download it by hand and pass the file's path instead")
    return Path(out)


def is_archive(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a zip or tar archive (by content, not by name)."""
    return zipfile.is_zipfile(path) or tarfile.is_tarfile(path)


def extract(archive: str | os.PathLike, dest: str | os.PathLike) -> Path:
    """Unpack ``archive`` (zip / tar[.gz|.bz2|.xz]) into ``dest`` and return the
    folder holding the content: a lone top-level folder is descended into.

    zip names are sanitised by :mod:`zipfile`; tar members are filtered with
    the ``"data"`` policy (no absolute paths, links out of ``dest`` or
    devices: :class:`tarfile.FilterError`). A truncated or corrupt archive
    raises ``ValueError``.
    """
    archive, dest = Path(archive), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                zf.extractall(dest)
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive) as tf:
                tf.extractall(dest, filter="data")
        else:
            raise ValueError(f"{archive} is not a zip or tar archive; "
                             f"unpack it yourself and pass the folder instead")
    except tarfile.FilterError:
        raise  # a hostile member: say exactly that
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error) as exc:
        raise ValueError(f"{archive} is truncated or corrupt ({type(exc).__name__}: {exc}); "
                         f"delete it and download again") from exc
    content = dest
    while True:
        entries = [e for e in content.iterdir() if not e.name.startswith((".", "__MACOSX"))]
        if len(entries) != 1 or not entries[0].is_dir():
            return content
        content = entries[0]


def move_contents(source: str | os.PathLike, dest: str | os.PathLike) -> None:
    """Move every entry of folder ``source`` into ``dest`` (created if needed)."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for entry in Path(source).iterdir():
        shutil.move(str(entry), dest / entry.name)


def unpack_into(archive: str | os.PathLike, dest: str | os.PathLike) -> None:
    """Extract ``archive`` and move its content (inside any lone top folder) into ``dest``."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".unpack_") as tmp:
        move_contents(extract(archive, Path(tmp)), dest)


def sha256_file(path: str | os.PathLike, chunk_size: int = _CHUNK) -> str:
    """Hex SHA-256 of one file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk_size):
            digest.update(block)
    return digest.hexdigest()


def sha256_tree(folder: str | os.PathLike) -> dict[str, str]:
    """``{relative posix path: sha256}`` of every file under ``folder`` except the manifest."""
    from tqdm.auto import tqdm

    folder = Path(folder)
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST)
    return {p.relative_to(folder).as_posix(): sha256_file(p)
            for p in tqdm(files, desc=f"sha256 {folder.name}", unit="file", leave=False)}


def write_manifest(folder: str | os.PathLike, hashes: dict[str, str]) -> Path:
    """Write ``folder/SHA256SUMS`` (``sha256sum -c`` compatible)."""
    path = Path(folder) / MANIFEST
    path.write_text("".join(f"{h}  {name}\n" for name, h in sorted(hashes.items())))
    return path


def read_manifest(folder: str | os.PathLike) -> dict[str, str]:
    """``{relative path: sha256}`` from ``folder/SHA256SUMS``."""
    lines = (Path(folder) / MANIFEST).read_text().splitlines()
    return {name: digest for digest, name in (line.split(None, 1) for line in lines if line)}


def check_manifest(folder: str | os.PathLike) -> bool:
    """Check ``folder`` against its ``SHA256SUMS``; False when there is none yet.

    Raises ``ValueError`` listing the files added, removed or changed since
    the manifest was written.
    """
    folder = Path(folder)
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


def record_manifest(folder: str | os.PathLike) -> Path:
    """Hash every file under ``folder`` into ``folder/SHA256SUMS``."""
    return write_manifest(folder, sha256_tree(folder))
