"""Time exact and approximate Hamming search as the database grows (Chapter 8).

    python bench/bench_search.py [--codes codes.pt] [--distractors 1000 1000000]
                                 [--bits 48] [--queries 500]

Without ``--codes`` the real codes are simulated: 60 identity centres with 15 %
of the bits flipped per face (about what a trained 48-bit model gives). With
``--codes`` (a ``torch.save``d dict with ``"query"`` and ``"database"`` ±1
code tensors, e.g. from ``TrainedRun.codes``) those are used. Distractors
are drawn from :class:`dfh_lib.analysis.scale.CodeDistribution` fitted on the
database codes. Prints one row per search and setting, the machine and its
load average (other work on the machine slows every row). Not a test.
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np
import pandas as pd
import torch

from dfh_lib.analysis import scale
from dfh_lib.core.index import faiss, pack_bits
from dfh_lib.core.runtime import cpu_name


def _simulated_codes(bits: int, num_query: int, num_db: int, seed: int):
    rng = np.random.default_rng(seed)
    centres = rng.choice([-1, 1], (60, bits))

    def faces(n):
        flips = np.where(rng.random((n, bits)) < 0.15, -1, 1)
        return torch.as_tensor(centres[rng.integers(0, 60, n)] * flips, dtype=torch.int8)

    return faces(num_query), faces(num_db)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--codes", help="torch file with 'query' and 'database' codes")
    parser.add_argument("--distractors", type=int, nargs="+", default=[1_000, 100_000])
    parser.add_argument("--bits", type=int, default=48, help="simulated codes only")
    parser.add_argument("--queries", type=int, default=500, help="simulated codes only")
    parser.add_argument("--real", type=int, default=3_000, help="simulated codes only")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    if args.codes:
        codes = torch.load(args.codes, weights_only=True)
        query_codes, real_codes = codes["query"], codes["database"]
    else:
        query_codes, real_codes = _simulated_codes(args.bits, args.queries, args.real, args.seed)
    bits = real_codes.shape[1]
    counts = scale.distractor_counts("", args.distractors)
    start = time.perf_counter()
    distractors = scale.CodeDistribution.fit(real_codes).sample(max(counts), seed=args.seed + 1)
    print(f"{len(query_codes)} queries, {len(real_codes)} real codes, {bits} bits; "
          f"{max(counts):,} distractors drawn in {time.perf_counter() - start:.1f} s")
    print(f"machine: {cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__} with "
          f"{torch.get_num_threads()} threads, faiss {getattr(faiss, '__version__', 'missing')}")
    print(f"memory bandwidth {scale.memory_bandwidth() / 1e9:.1f} GB/s, XOR + popcount "
          f"{scale.popcount_rate(bits) / 1e9:.2f} G codes/s")
    print(f"load average before: {os.getloadavg()[0]:.2f}", flush=True)
    query, real = pack_bits(query_codes), pack_bits(real_codes)
    rows = []
    for count in counts:
        db = np.concatenate([real, distractors[:count]])
        rows += scale.benchmark_search(query, db, bits, k=args.k)
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    with pd.option_context("display.width", 160, "display.max_rows", None):
        print(pd.DataFrame(rows).to_string(index=False, float_format=lambda x: f"{x:.4g}"))


if __name__ == "__main__":
    main()
