"""The headline comparison (Chapter 3): every deep baseline and DFH tuned on
validation with the same budget, then three seeds, with the float ceiling.

    DFH_DATA_DIR=../shared/data python bench/headline.py --profile cpu --dataset lfw

Writes the tuning log to dfh_lib/reference_results/tuning-<profile>-<dataset>.csv
(the chapter reuses it), the rows to book/results/03-<profile>-<dataset>.csv and
the per-query APs to runs/headline-<profile>-<dataset>/aps.npz.
"""
import argparse
import time
from pathlib import Path

import numpy as np
import torch

from dfh_lib.experiments.benchmark import compare, summarize, write_results
from dfh_lib.interfaces.book_data import book_splits

METHODS = ("dpsh", "hashnet", "greedyhash", "csq", "ddh", "dcdh", "dfh")

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--profile", default="cpu")
parser.add_argument("--dataset", default="lfw")
args = parser.parse_args()
torch.set_num_threads(1)  # small heads: a second thread only adds contention
start = time.perf_counter()
splits = book_splits(args.profile, args.dataset)
runs = Path("runs") / f"headline-{args.profile}-{args.dataset}"
rows, aps, log = compare(METHODS, splits, profile=args.profile, runs_dir=runs)
log.to_csv(f"dfh_lib/reference_results/tuning-{args.profile}-{args.dataset}.csv", index=False)
print(write_results(rows, "03", args.profile, args.dataset))
np.savez(runs / "aps.npz", **{f"{m}-{k}-{s}": v for (m, k, s), v in aps.items()})
print(summarize(rows).round(3).to_string())
print(f"wall time {time.perf_counter() - start:.0f} s")
