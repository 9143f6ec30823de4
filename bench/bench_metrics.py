"""Time the retrieval metrics and the Hamming search on random codes.

    python bench/bench_metrics.py [--queries 10000 --database 100000 --bits 48]
                                  [--device cuda] [--threads 1]

Labels are drawn uniformly from ``--labels`` classes (default 1000, so about
100 relevant items per query at the default sizes, as for a face identity).
Prints one row per operation (wall seconds and CPU seconds of this process
per call) and the machine it ran on, with the load average: other processes
on the machine slow every row, and on a busy 2-core machine torch's two
OpenMP threads wait on each other (compare ``--threads 1``). Not a test.

evaluate_retrieval at the defaults (10,000 x 100,000 codes, 48 bits), AMD EPYC, 2 cores:
  before (float matmul distances, a counting sort over every database item for
  the stable ranks, a second histogram pass, a top-k for P@k): 10.9 s; 9.5 s
  (2 threads, load 0.1)
  after (popcount distances, one histogram per chunk, ranks computed for the
  relevant items only, which are read off the labels): 3.7 s (--threads 1,
  load 1.6 from another job); old and new alternating at --threads 1, load
  2.3-2.7: old 9.9-12.1 s, new 3.8-4.4 s. With 2 threads while another job holds
  a core, OpenMP waits dominate both (new 34.5 s, old 73 s).
"""
from __future__ import annotations

import argparse
import os
import time

import torch

from dfh_lib import metrics
from dfh_lib.core.index import HammingIndex, faiss
from dfh_lib.core.runtime import cpu_name


def _time(fn, device: torch.device) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of one call."""
    start, cpu = time.perf_counter(), time.process_time()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start, time.process_time() - cpu


def _random_data(args):
    gen = torch.Generator().manual_seed(args.seed)

    def codes(n):
        return torch.randint(0, 2, (n, args.bits), generator=gen, dtype=torch.int8) * 2 - 1

    def labels(n):
        return torch.randint(0, args.labels, (n,), generator=gen)

    data = codes(args.queries), codes(args.database), labels(args.queries), labels(args.database)
    return [tensor.to(args.device) for tensor in data]


def _search(backend, query, db, k):
    index = HammingIndex(db.shape[1], backend=backend)
    index.add(db)
    return index.search(query, k)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=10_000)
    parser.add_argument("--database", type=int, default=100_000)
    parser.add_argument("--bits", type=int, default=48)
    parser.add_argument("--labels", type=int, default=1000)
    parser.add_argument("--k", type=int, default=100, help="neighbours for the index search")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", type=torch.device, default=torch.device("cpu"),
                        help="where the codes live (the faiss index always runs on the CPU)")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    query, db, q_labels, db_labels = _random_data(args)
    data = (query, db, q_labels, db_labels)
    rows = [
        ("hamming_distance (full matrix)", lambda: metrics.hamming_distance(query, db)),
        ("mAP@all, stable ties", lambda: metrics.mean_average_precision(*data)),
        ("mAP@all, tie-aware", lambda: metrics.mean_average_precision(*data, ties="average")),
        ("P@H<=2 and R@H<=2", lambda: metrics.precision_recall_within_radius(*data, radius=2)),
        ("evaluate_retrieval (all)", lambda: metrics.evaluate_retrieval(*data)),
        (f"HammingIndex top-{args.k}, torch", lambda: _search("torch", query, db, args.k)),
    ]
    if faiss is not None:
        rows.append((f"HammingIndex top-{args.k}, faiss",
                     lambda: _search("faiss", query, db, args.k)))

    print(f"{args.queries:,} queries x {args.database:,} database codes, {args.bits} bits, "
          f"{args.labels} labels")
    print(f"machine: {cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__} with "
          f"{torch.get_num_threads()} threads"
          + (f", faiss {faiss.__version__}" if faiss is not None else ", no faiss"))
    if args.device.type == "cuda":
        print(f"device: {torch.cuda.get_device_name(args.device)}")
    metrics.evaluate_retrieval(*(tensor[:10] for tensor in data))  # warm-up (CUDA context)
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    print(f"{'operation':36s} {'seconds':>8s} {'cpu s':>8s}")
    for name, fn in rows:
        wall, cpu = _time(fn, args.device)
        print(f"{name:36s} {wall:8.2f} {cpu:8.2f}", flush=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
