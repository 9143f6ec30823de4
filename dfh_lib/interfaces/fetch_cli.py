"""``python -m dfh_lib fetch NAME [--data-dir DIR] [--verify-only] [--source SRC]``:
download a real face dataset into the data folder and verify it (the
installed package's equivalent of ``data_scripts/prepare_<name>.py``).

Exit status 0 when the dataset is verified, 1 when the download or the check
fails, 2 for bad arguments; a failure prints one line ``error: ...``.
"""
from __future__ import annotations

import argparse
import pickle
import sys
import tarfile

# the names of dfh_lib.core.data.fetch.FETCHERS (kept here so --help needs no import)
NAMES = ("lfw", "orl", "celeba", "facescrub", "youtube_faces", "vggface2")


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line ``error: ...`` (exit 2)."""

    def error(self, message):
        print(f"error: {message} (see python -m dfh_lib fetch --help)", file=sys.stderr)
        sys.exit(2)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def main_fetch(argv=None) -> dict:
    """Fetch and/or verify one dataset; returns the verification summary."""
    parser = _Parser(
        prog="python -m dfh_lib fetch",
        description="Download a face dataset into the data folder and verify it "
                    "(counts, SHA-256 checksums). LFW: ~230 MB from scikit-learn's "
                    "figshare copies; ORL: needs --source (the att_faces archive); CelebA, "
                    "FaceScrub, YouTube Faces and the VGGFace2 subset come from Google "
                    "Drive (gdown: pip install 'dfh-book[data]').")
    parser.add_argument("name", choices=NAMES, metavar="NAME",
                        help="one of: " + ", ".join(NAMES))
    parser.add_argument("--data-dir", default=None,
                        help="data folder holding one sub-folder per dataset "
                             "(default: $DFH_DATA_DIR, else ~/dfh_data)")
    parser.add_argument("--verify-only", action="store_true",
                        help="do not download; only check the files already there")
    parser.add_argument("--source", default=None,
                        help="archive to unpack (local path, URL or Google Drive id): "
                             "required for orl, optional for vggface2 (default: DCDH's "
                             "subset), refused for the others")
    args = parser.parse_args(argv)

    from ..core.data.fetch import FETCHERS, fetch_dataset, report
    from ..core.data.paths import data_dir

    fetcher = FETCHERS[args.name]
    if args.source is not None and fetcher.source == "none":
        parser.error(f"{args.name} is downloaded from its built-in source; drop --source")
    if args.source is None and fetcher.source == "required" and not args.verify_only:
        parser.error(f"{args.name} needs --source ARCHIVE_OR_URL unless --verify-only "
                     f"is given")
    root = data_dir(args.data_dir)
    if not args.verify_only:
        size = f" ({fetcher.size})" if fetcher.size else ""
        print(f"fetching {fetcher.label}{size} into {root}")
    try:
        summary = fetch_dataset(args.name, root, args.source, args.verify_only)
    except (OSError, ValueError, RuntimeError, ImportError, tarfile.TarError,
            pickle.UnpicklingError) as exc:
        # DownloadError, ChecksumError, DatasetNotFoundError, a failed check, a hostile
        # archive member (FilterError) or pickle (UnsafePickleError), gdown missing
        print(f"error: {args.name}: {_one_line(exc)}", file=sys.stderr)
        sys.exit(1)
    report(fetcher.label, summary)
    return summary
