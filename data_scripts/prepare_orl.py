"""Unpack the ORL / AT&T face database into <data-dir>/orl/att_faces and verify it.

    python data_scripts/prepare_orl.py --source att_faces.zip --data-dir ~/dfh_data

AT&T's original download page is gone; pass a copy of the ``att_faces``
archive (zip or tar, with folders s1..s40 of 1.pgm..10.pgm) as a local path
or URL. The check expects 40 people x 10 images of 112x92 pixels. Same as
``python -m dfh_lib fetch orl --source ...`` (:mod:`dfh_lib.core.data.fetch`).
"""
from __future__ import annotations

from _common import base_parser, report

from dfh_lib.core.data.fetch import download_orl, verify_orl


def prepare(source: str, data_dir):
    """Fetch ``source`` and move its s1..s40 folders into ``<data_dir>/orl/att_faces``."""
    return download_orl(data_dir, source)


verify = verify_orl


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
