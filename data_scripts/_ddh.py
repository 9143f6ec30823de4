"""Download and verification shared by prepare_facescrub.py and prepare_youtube_faces.py.

DDH (Lin et al., IJCAI 2017) released its 32x32 FaceScrub and YouTube Faces
splits on Google Drive (one file per split; ids from the DCDH README). Each
split ends up in ``<data-dir>/<name>/{train,test}/`` as Python-2 pickles. The
check reads them with dfh_lib's restricted unpickler (never plain
``pickle.load``), compares the counts with the papers', then records a
``SHA256SUMS`` manifest that later runs check first. The code is
:mod:`dfh_lib.core.data.fetch` (``python -m dfh_lib fetch facescrub``).
"""
from __future__ import annotations

from _common import base_parser, report

from dfh_lib.core.data.fetch import download_ddh as download
from dfh_lib.core.data.fetch import place  # noqa: F401
from dfh_lib.core.data.fetch import verify_ddh as verify


def main(name: str, argv=None) -> None:
    parser = base_parser(f"Download DDH's 32x32 {name} splits into <data-dir>/{name} "
                         f"and verify them (restricted unpickling, counts, SHA-256).")
    args = parser.parse_args(argv)
    if not args.verify_only:
        download(name, args.data_dir)
    report(name, verify(name, args.data_dir))
