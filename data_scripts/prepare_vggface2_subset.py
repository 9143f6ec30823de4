"""Unpack a VGGFace2 subset into <data-dir>/vggface2_subset and verify it.

    python data_scripts/prepare_vggface2_subset.py --source ARCHIVE_OR_URL --data-dir ~/dfh_data

``--source`` is a zip/tar archive (local path, URL or Google Drive id) in
ImageFolder layout, ``train/<identity>/*.jpg`` and ``test/<identity>/*.jpg``
(DCDH's processed subset, ~2.4 GB: Drive id 1PaXIfSrw1SC1uiv4Affgm882-Q-w_icl).
The check counts identities and images per split, requires the test
identities to appear in train, and records a SHA256SUMS manifest that later
runs check. Load a split with ``dfh_lib.core.data.load_image_folder``.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

from _common import (base_parser, check_manifest, fetch, record_manifest, report,
                     unpack_into)

from dfh_lib.core.data.image_folder import scan_identity_folders

SPLITS = ("train", "test")


def prepare(source: str, data_dir: Path) -> Path:
    """Fetch ``source`` and unpack it into ``<data_dir>/vggface2_subset``."""
    dest = data_dir / "vggface2_subset"
    data_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=data_dir, prefix=".download_") as tmp:
        unpack_into(fetch(source, Path(tmp)), dest)
    return dest


def verify(folder: Path, expected_identities: int | None = None,
           expected_images: int | None = None) -> dict:
    """Count identities/images of train and test; raise ``ValueError`` on a mismatch.

    ``expected_*`` are totals over the splits (None: not checked).
    """
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
