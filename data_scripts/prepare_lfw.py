"""Download LFW into <data-dir>/lfw and verify it.

    python data_scripts/prepare_lfw.py --data-dir ~/dfh_data

Fetches the pair lists and the funneled images (~230 MB) from the URLs and
with the SHA-256 sums scikit-learn pins, into its data_home layout
(``lfw/lfw_home/lfw_funneled/<Person>/*.jpg``), which
``dfh_lib.core.data.load_lfw`` reads. The check counts people and images and
compares the pair lists with scikit-learn's published SHA-256 sums. Same as
``python -m dfh_lib fetch lfw`` (:mod:`dfh_lib.core.data.fetch`).
"""
from __future__ import annotations

from _common import base_parser, report

from dfh_lib.core.data.fetch import LFW_REMOTE
from dfh_lib.core.data.fetch import download_lfw as download
from dfh_lib.core.data.fetch import verify_lfw as verify

PAIRS_SHA256 = {name: r.sha256 for name, r in LFW_REMOTE.items() if name.endswith(".txt")}


def main(argv=None) -> None:
    args = base_parser(__doc__.splitlines()[0]).parse_args(argv)
    if not args.verify_only:
        download(args.data_dir)
    report("LFW", verify(args.data_dir))


if __name__ == "__main__":
    main()
