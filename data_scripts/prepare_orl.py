"""Unpack the ORL / AT&T face database into <data-dir>/orl/att_faces and verify it.

    python data_scripts/prepare_orl.py --source att_faces.zip --data-dir ~/dfh_data

AT&T's original download page is gone; pass a copy of the ``att_faces``
archive (zip or tar, with folders s1..s40 of 1.pgm..10.pgm) as a local path
or URL. The check expects 40 people x 10 images of 112x92 pixels.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

from _common import base_parser, extract, fetch, move_contents, report
from PIL import Image

PEOPLE, SHOTS, SIZE_WH = 40, 10, (92, 112)


def _find_people_folder(folder: Path) -> Path:
    """The folder under ``folder`` that holds ``s1``."""
    found = next((p.parent for p in sorted(folder.rglob("s1")) if p.is_dir()), None)
    if found is None:
        raise ValueError(f"no s1/ folder inside the archive (unpacked at {folder}); "
                         f"is it the AT&T att_faces archive?")
    return found


def prepare(source: str, data_dir: Path) -> Path:
    """Fetch ``source`` and move its s1..s40 folders into ``<data_dir>/orl/att_faces``."""
    dest = data_dir / "orl" / "att_faces"
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".unpack_") as tmp:
        archive = fetch(source, Path(tmp) / "download")
        move_contents(_find_people_folder(extract(archive, Path(tmp) / "x")), dest)
    return dest


def verify(data_dir: Path) -> dict:
    """Check 40 folders s1..s40 of 10 images at 112x92; raise ``ValueError`` otherwise."""
    folder = data_dir / "orl" / "att_faces"
    for person in range(1, PEOPLE + 1):
        for shot in range(1, SHOTS + 1):
            path = folder / f"s{person}" / f"{shot}.pgm"
            if not path.is_file():
                raise ValueError(f"{path} is missing; unpack the complete att_faces archive")
            with Image.open(path) as image:  # reads the header only
                if image.size != SIZE_WH:
                    raise ValueError(f"{path} is {image.size[1]}x{image.size[0]}, "
                                     f"expected {SIZE_WH[1]}x{SIZE_WH[0]} (height x width)")
    return {"folder": folder, "people": PEOPLE, "images": PEOPLE * SHOTS,
            "size": f"{SIZE_WH[1]}x{SIZE_WH[0]}"}


def main(argv=None) -> None:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--source", help="att_faces archive: a local path or a URL")
    args = parser.parse_args(argv)
    if not args.verify_only:
        if not args.source:
            parser.error("--source is required unless --verify-only is given")
        prepare(args.source, args.data_dir)
    report("ORL", verify(args.data_dir))


if __name__ == "__main__":
    main()
