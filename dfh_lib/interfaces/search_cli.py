"""Command line of photo search: ``python -m dfh_lib index`` encodes a folder of
photos with a trained run's network into a code file, ``python -m dfh_lib
search`` ranks that folder by Hamming distance to a query photo.

The work is done by :mod:`dfh_lib.engine.photo_index` (and
:func:`dfh_lib.engine.run_model.load_trained`); this module only parses
arguments and prints.
"""
from __future__ import annotations

import argparse
import sys

__all__ = ["main_index", "main_search"]


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer; got {text}")
    return value


def main_index(argv=None):
    """``python -m dfh_lib index --run-dir RUN --images DIR --out FILE.npz [--detect]``."""
    from ..engine.photo_index import index_photos
    from ..engine.run_model import load_trained

    parser = argparse.ArgumentParser(prog="python -m dfh_lib index", description=(
        "Encode every image under a folder (recursively) with the best network of a "
        "training run; write the packed codes, paths and run fingerprint to an .npz file."))
    parser.add_argument("--run-dir", required=True, help="run folder of python -m dfh_lib "
                        "train --run-dir (its checkpoint.pt and best.pt)")
    parser.add_argument("--images", required=True, help="folder of images (.jpg .jpeg .png "
                        ".pgm .bmp), searched recursively")
    parser.add_argument("--out", required=True, help="code file to write (FILE.npz)")
    parser.add_argument("--detect", action="store_true", help="cut each photo to its face "
                        "(OpenCV Haar cascade); photos with no face or several are skipped")
    parser.add_argument("--largest", action="store_true", help="with --detect: keep the "
                        "largest face of a photo with several instead of skipping it")
    args = parser.parse_args(argv)
    run = load_trained(args.run_dir)
    code_file, rejected = index_photos(run, args.images, args.detect, args.largest)
    if rejected:
        from ..core.data.image_folder import rejected_message

        print(f"warning: {rejected_message(rejected)}", file=sys.stderr)
    out = code_file.save(args.out)
    print(f"indexed {len(code_file)} images of {args.images} ({code_file.bits} bits, run "
          f"{args.run_dir} epoch {run.epoch}, fingerprint {run.fingerprint}) -> {out}")
    return code_file


def main_search(argv=None):
    """``python -m dfh_lib search --index FILE.npz --image IMG [--run-dir RUN] [--k 10]``."""
    from ..core.code_file import CodeFile
    from ..engine.photo_index import search_photo
    from ..engine.run_model import load_trained

    parser = argparse.ArgumentParser(prog="python -m dfh_lib search", description=(
        "Rank the images of a code file (python -m dfh_lib index) by Hamming distance to "
        "the code of a query photo; ties in path order."))
    parser.add_argument("--index", required=True, help="code file written by index")
    parser.add_argument("--image", required=True, help="the query photo")
    parser.add_argument("--run-dir", default=None, help="the run that made the code file "
                        "(default: the one it records)")
    parser.add_argument("--k", type=_positive, default=10, help="how many to list (default 10)")
    parser.add_argument("--detect", action="store_true", help="cut the query to its face "
                        "(it must hold exactly one, unless --largest)")
    parser.add_argument("--largest", action="store_true", help="with --detect: use the "
                        "largest face of a query with several")
    args = parser.parse_args(argv)
    code_file = CodeFile.load(args.index)
    run = load_trained(args.run_dir or code_file.run_dir)
    if args.detect != code_file.detect:
        print(f"warning: {args.index} was indexed {'with' if code_file.detect else 'without'} "
              f"--detect but the query is encoded {'with' if args.detect else 'without'} it: "
              f"the faces are framed differently", file=sys.stderr)
    hits = search_photo(code_file, run, args.image, args.k, args.detect, args.largest)
    print(f"{len(hits)} nearest of {len(code_file)} images in {code_file.root} to "
          f"{args.image} ({code_file.bits} bits):")
    print("rank  distance  path")
    for rank, (path, distance) in enumerate(hits, 1):
        print(f"{rank:4d}  {distance:8d}  {path}")
    return hits
