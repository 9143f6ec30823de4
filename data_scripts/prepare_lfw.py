"""Download LFW with scikit-learn into <data-dir>/lfw and verify it.

    python data_scripts/prepare_lfw.py --data-dir ~/dfh_data

scikit-learn fetches the pair lists and the funneled images (~230 MB) into
its data_home layout (``lfw/lfw_home/lfw_funneled/<Person>/*.jpg``), which
``dfh_lib.core.data.load_lfw`` reads. The check counts people and images and
compares the pair lists with scikit-learn's published SHA-256 sums.
"""
from __future__ import annotations

from pathlib import Path

from _common import base_parser, report, sha256_file

EXPECTED_PEOPLE, EXPECTED_IMAGES = 5_749, 13_233
# the checksums scikit-learn pins for these files (sklearn/datasets/_lfw.py, TARGETS)
PAIRS_SHA256 = {
    "pairsDevTrain.txt": "1d454dada7dfeca0e7eab6f65dc4e97a6312d44cf142207be28d688be92aabfa",
    "pairsDevTest.txt": "7cb06600ea8b2814ac26e946201cdb304296262aad67d046a16a7ec85d0ff87c",
    "pairs.txt": "ea42330c62c92989f9d7c03237ed5d591365e89b3e649747777b70e692dc1592",
}


def download(data_dir: Path) -> None:
    """Fetch LFW through scikit-learn (it also writes its joblib cache there)."""
    from sklearn.datasets import fetch_lfw_people

    fetch_lfw_people(data_home=data_dir / "lfw", download_if_missing=True,
                     min_faces_per_person=70)


def verify(data_dir: Path) -> dict:
    """Count people/images and check the pair lists; raise ``ValueError`` on a mismatch."""
    home = data_dir / "lfw" / "lfw_home"
    images_dir = home / "lfw_funneled"
    if not images_dir.is_dir():
        raise ValueError(f"{images_dir} is missing; run without --verify-only to download it")
    people = [d for d in images_dir.iterdir() if d.is_dir()]
    num_images = sum(1 for d in people for f in d.iterdir() if f.suffix == ".jpg")
    if (len(people), num_images) != (EXPECTED_PEOPLE, EXPECTED_IMAGES):
        raise ValueError(f"{images_dir}: {len(people)} people / {num_images} images, expected "
                         f"{EXPECTED_PEOPLE} / {EXPECTED_IMAGES}; delete it and download again")
    for name, expected in PAIRS_SHA256.items():
        if not (home / name).is_file() or sha256_file(home / name) != expected:
            raise ValueError(f"{home / name} is missing or its SHA-256 differs from "
                             f"scikit-learn's {expected[:12]}...; delete it and download again")
    return {"folder": images_dir, "people": len(people), "images": num_images,
            "pair lists": "SHA-256 match scikit-learn"}


def main(argv=None) -> None:
    args = base_parser(__doc__.splitlines()[0]).parse_args(argv)
    if not args.verify_only:
        download(args.data_dir)
    report("LFW", verify(args.data_dir))


if __name__ == "__main__":
    main()
