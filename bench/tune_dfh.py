"""Validation-only hyperparameter search for the DFH loss (Chapter 3).

    python bench/tune_dfh.py --bits 12 48 --trials 40 --workers 8 --out tune.jsonl

Random search over the DFH loss's own hyperparameters (scale, Hamming margin,
sign weight and margin, balance and decorrelation weights) with everything
else fixed at the ``cpu`` profile's recipe that Chapter 2's baselines used
(DDH network, 32×32, 30 epochs, Adam 1e-3 cosine, identity batches). Each
trial is scored by its best **validation** mAP (val_query vs train; the
query/database split is never touched). The best configurations per code
length are then re-run with more seeds, beside DDH and CSQ (the strongest
Chapter-2 losses), so the chosen setting and the seed spread are both known.

Trials run in parallel worker processes (one thread each), on the GPU when
there is one. Every finished trial is one JSON line in ``--out``.
"""
import argparse
import json
import multiprocessing as mp
import random
import time

SPACE = {
    "scale": [4.0, 6.0, 8.0, 12.0, 16.0],
    "margin_fraction": [0.0, 1 / 16, 1 / 8, 1 / 4, 3 / 8],   # margin_bits = fraction · K
    "sign_weight": [0.0, 0.25, 0.5, 1.0, 2.0],
    "sign_margin": [0.3, 0.5, 0.8],
    "balance_weight": [0.0, 0.1, 1.0],
    "decorrelation_weight": [0.0, 0.1, 1.0],
}
DEFAULT = {"scale": 8.0, "margin_fraction": 1 / 8, "sign_weight": 1.0, "sign_margin": 0.5,
           "balance_weight": 0.1, "decorrelation_weight": 0.1}


def loss_kwargs(params: dict, bits: int) -> dict:
    kwargs = {k: v for k, v in params.items() if k != "margin_fraction"}
    kwargs["margin_bits"] = params["margin_fraction"] * bits
    return kwargs


_SPLITS = {}  # per worker process: the dataset is loaded once


def run_trial(job: dict) -> dict:
    import torch

    torch.set_num_threads(1)
    import dfh_lib as dfh

    if job["dataset"] not in _SPLITS:
        _SPLITS[job["dataset"]] = dfh.data.book_splits("cpu", job["dataset"])
    splits = _SPLITS[job["dataset"]]
    start = time.perf_counter()
    kwargs = loss_kwargs(job["params"], job["bits"]) if job["method"] == "dfh" else {}
    _, _, history = dfh.train.train_method(job["method"], splits, job["bits"], "cpu",
                                           loss_kwargs=kwargs, progress=False,
                                           seed=job["seed"], **job.get("overrides", {}))
    best = history.records[history.best_epoch - 1]
    return {**job, "val_mAP": best["val_mAP"], "best_epoch": best["epoch"],
            "seconds": round(time.perf_counter() - start, 1)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bits", type=int, nargs="+", default=[12, 48])
    parser.add_argument("--trials", type=int, default=40, help="random configs per length")
    parser.add_argument("--top", type=int, default=4, help="configs re-run with more seeds")
    parser.add_argument("--seeds", type=int, default=3, help="seeds in the second round")
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--dataset", default="lfw")
    parser.add_argument("--out", default="tune_dfh.jsonl")
    parser.add_argument("--epochs", type=int, default=None, help="override (smoke tests)")
    args = parser.parse_args()
    rng = random.Random(0)
    overrides = {} if args.epochs is None else {"epochs": args.epochs}
    first = []
    for bits in args.bits:
        configs = [DEFAULT] + [{k: rng.choice(v) for k, v in SPACE.items()}
                               for _ in range(args.trials - 1)]
        first += [{"round": 1, "method": "dfh", "bits": bits, "seed": 0, "params": c,
                   "dataset": args.dataset, "overrides": overrides} for c in configs]
    with mp.get_context("spawn").Pool(args.workers) as pool, open(args.out, "w") as out:
        def collect(jobs):
            done = []
            for result in pool.imap_unordered(run_trial, jobs):
                out.write(json.dumps(result) + "\n")
                out.flush()
                print(f"round {result['round']} {result['method']} {result['bits']:2d} bits "
                      f"seed {result['seed']} val mAP {result['val_mAP']:.4f} "
                      f"({result['seconds']} s) {result.get('params', '')}", flush=True)
                done.append(result)
            return done

        results = collect(first)
        second = []
        for bits in args.bits:
            ranked = sorted((r for r in results if r["bits"] == bits),
                            key=lambda r: -r["val_mAP"])[:args.top]
            for seed in range(1, args.seeds):
                second += [{**r, "round": 2, "seed": seed} for r in ranked]
            for method in ("ddh", "csq"):
                second += [{"round": 2, "method": method, "bits": bits, "seed": seed,
                            "params": {}, "dataset": args.dataset, "overrides": overrides}
                           for seed in range(args.seeds)]
        for job in second:
            job.pop("val_mAP", None), job.pop("best_epoch", None), job.pop("seconds", None)
        collect(second)


if __name__ == "__main__":
    main()
