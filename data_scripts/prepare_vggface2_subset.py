"""Unpack a VGGFace2 subset into <data-dir>/vggface2_subset and verify it.

    python data_scripts/prepare_vggface2_subset.py --source ARCHIVE_OR_URL --data-dir ~/dfh_data

``--source`` is a zip/tar archive (local path, URL or Google Drive id) in
ImageFolder layout, ``train/<identity>/*.jpg`` and ``test/<identity>/*.jpg``
(DCDH's processed subset, ~2.4 GB: Drive id 1PaXIfSrw1SC1uiv4Affgm882-Q-w_icl).
The check counts identities and images per split, requires the test
identities to appear in train, and records a SHA256SUMS manifest that later
runs check. Load a split with ``dfh_lib.core.data.load_image_folder``. Same
as ``python -m dfh_lib fetch vggface2`` (:mod:`dfh_lib.core.data.fetch`).
"""
from __future__ import annotations

from _common import base_parser, report

from dfh_lib.core.data.fetch import download_vggface2
from dfh_lib.core.data.fetch import verify_split_folders as verify


def prepare(source: str, data_dir):
    """Fetch ``source`` and unpack it into ``<data_dir>/vggface2_subset``."""
    return download_vggface2(data_dir, source)


def main(argv=None) -> None:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--source", help="archive: local path, URL or Google Drive id")
    parser.add_argument("--expect-identities", type=int, help="required identity count")
    parser.add_argument("--expect-images", type=int, help="required image count (all splits)")
    args = parser.parse_args(argv)
    if not args.verify_only:
        if not args.source:
            parser.error("--source is required unless --verify-only is given")
        prepare(args.source, args.data_dir)
    report("VGGFace2 subset", verify(args.data_dir / "vggface2_subset",
                                     args.expect_identities, args.expect_images))


if __name__ == "__main__":
    main()
