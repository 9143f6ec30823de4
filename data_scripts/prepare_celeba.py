"""Download CelebA with torchvision into <data-dir>/celeba and verify it.

    python data_scripts/prepare_celeba.py --data-dir ~/dfh_data

torchvision fetches the aligned images and annotation files from Google
Drive into ``celeba/celeba/`` (its own MD5 checks; Drive quotas often make
this fail: then download by hand into that layout and use --verify-only).
The check needs no decoding: every present image must have an attribute,
identity and partition row. Same as ``python -m dfh_lib fetch celeba``
(:mod:`dfh_lib.core.data.fetch`).
"""
from __future__ import annotations

from _common import base_parser, report

from dfh_lib.core.data.fetch import CELEBA_FULL_IMAGES as FULL_IMAGES
from dfh_lib.core.data.fetch import download_celeba as download  # noqa: F401
from dfh_lib.core.data.fetch import verify_celeba as verify


def main(argv=None) -> None:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--expect-images", type=int, default=None,
                        help=f"required image count (default: {FULL_IMAGES} after a "
                             f"download, any with --verify-only, e.g. a subset)")
    args = parser.parse_args(argv)
    expected = args.expect_images
    if not args.verify_only:
        download(args.data_dir)
        expected = expected or FULL_IMAGES
    report("CelebA", verify(args.data_dir, expected))


if __name__ == "__main__":
    main()
