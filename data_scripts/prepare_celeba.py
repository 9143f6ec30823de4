"""Download CelebA with torchvision into <data-dir>/celeba and verify it.

    python data_scripts/prepare_celeba.py --data-dir ~/dfh_data

torchvision fetches the aligned images and annotation files from Google
Drive into ``celeba/celeba/`` (its own MD5 checks; Drive quotas often make
this fail: then download by hand into that layout and use --verify-only).
The check needs no decoding: every present image must have an attribute,
identity and partition row.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from _common import base_parser, report

from dfh_lib.core.data.celeba import CELEBA_SPLITS, read_celeba_index

FULL_IMAGES = 202_599


def download(data_dir: Path) -> None:
    """Fetch the full release with ``torchvision.datasets.CelebA(download=True)``."""
    from torchvision.datasets import CelebA

    CelebA(root=str(data_dir / "celeba"), split="all", target_type="attr", download=True)


def verify(data_dir: Path, expected_images: int | None = None) -> dict:
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
