"""Helpers shared by the ``data_scripts/prepare_*.py`` command-line tools.

The download, extraction and verification code lives in the library
(:mod:`dfh_lib.core.data.fetch`, :mod:`dfh_lib.core.data.download`), so an
installed package fetches data too: ``python -m dfh_lib fetch <name>``. These
scripts are the same steps for a git clone, with the original options.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
try:
    import dfh_lib  # noqa: F401  (installed with pip install -e .)
except ModuleNotFoundError:  # run from a plain checkout: use the checkout's library
    sys.path.insert(0, str(REPO_ROOT))

from dfh_lib.core.data.download import (  # noqa: E402,F401  (re-exported for the scripts)
    MANIFEST, check_manifest, extract, fetch_source, is_archive, move_contents,
    read_manifest, record_manifest, sha256_file, sha256_tree, unpack_into, write_manifest)
from dfh_lib.core.data.fetch import report  # noqa: E402,F401
from dfh_lib.core.data.paths import data_dir  # noqa: E402

fetch = fetch_source  # the scripts' historical name


def base_parser(description: str) -> argparse.ArgumentParser:
    """An argument parser with ``--data-dir`` (default: ``data_dir()``) and ``--verify-only``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--data-dir", type=Path, default=data_dir(),
                        help="data folder holding one sub-folder per dataset "
                             "(default: $DFH_DATA_DIR or ~/dfh_data, now %(default)s)")
    parser.add_argument("--verify-only", action="store_true",
                        help="do not download; only check the files already there")
    return parser
