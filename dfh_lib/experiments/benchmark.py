"""Comparisons that can tell: tuned on validation with one budget for every
method, three seeds, the float ceiling, undecided bits, convergence, and
paired differences with their 95 % intervals.

Every method trains on the same network from the same start (the profile's:
a hash head on the shipped face embedding in ``cpu``) with the same step
budget. Tuning: each method gets the same number of settings (learning rate
x its main loss knob), one seed each, judged on ``val_query`` only; the
chosen setting is then trained with three seeds and evaluated on the queries.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..core.classic import HASHERS
from ..core.embedding_metrics import cosine_mean_average_precision
from ..core.metrics import binarize, evaluate_retrieval, hamming_ranking
from ..engine.encoding import encode
from .result import undecided_share
from .runs import TrainedRun, Variant, run_folder, train_or_load

__all__ = ["SEARCH_SPACE", "LEARNING_RATES", "tuning_settings", "tune", "convergence",
           "per_query_ap", "training_seconds", "evaluate_model", "evaluate_run", "benchmark", "summarize", "paired_difference",
           "write_results", "chosen_settings", "compare", "shipped_tuning_log", "chosen_run",
           "versus_best_baseline", "feature_hashing"]

#: every method's learning rates in the search
LEARNING_RATES = (3e-4, 1e-3, 3e-3)

#: each method's main loss knob, two values around its paper's default
SEARCH_SPACE = {
    "dpsh": {"eta": (0.01, 0.1)},
    "dsh": {"alpha": (0.01, 0.1)},
    "hashnet": {"gamma": (0.005, 0.05)},
    "greedyhash": {"alpha": (0.1, 1.0)},
    "csq": {"lam": (1e-4, 1e-2)},
    "ddh": {"alpha": (0.01, 0.1)},
    "dcdh": {"beta": (0.1, 1.0)},
    "dfh": {"sign_margin": (0.8, 0.95)},
    "dfhq": {"sign_margin": (0.8, 0.95)},
}


def tuning_settings(method: str) -> list[dict]:
    """The settings a method is tried with: every learning rate x every value
    of its knob (6 for every method), as ``{"lr": ..., "loss_kwargs": {...}}``."""
    if method not in SEARCH_SPACE:
        raise ValueError(f"no search space for {method!r}; known: {sorted(SEARCH_SPACE)}")
    (knob, values), = SEARCH_SPACE[method].items()
    return [{"lr": lr, "loss_kwargs": {knob: v}} for lr in LEARNING_RATES for v in values]


def _label(method: str, setting: dict) -> str:
    kw = "-".join(f"{k}{v:g}" for k, v in setting["loss_kwargs"].items())
    return f"{method}-lr{setting['lr']:g}-{kw}"


def convergence(history, fraction: float = 0.2, tolerance: float = 0.01) -> dict:
    """Did a run converge? The best validation mAP of its last ``fraction`` of
    epochs against its overall best: ``converged`` when they are within
    ``tolerance`` (1 mAP point; the validation noise of a 186-query set is of
    that order), so more training would not have changed the verdict."""
    scores = [(r["epoch"], r[history.select_metric]) for r in history.records
              if r.get(history.select_metric) is not None]
    if not scores:
        raise ValueError("the run has no validation scores")
    last_epoch = history.records[-1]["epoch"]
    start = last_epoch - max(1, math.ceil(fraction * last_epoch))
    best = max(s for _, s in scores)
    late = [s for e, s in scores if e > start] or [scores[-1][1]]
    return {"best_val": best, "last_fifth_val": max(late), "gap": best - max(late),
            "converged": best - max(late) <= tolerance}


def training_seconds(history) -> float:
    """Seconds the run's epochs took when it was trained (from its history),
    the same whether this call trained the run or loaded it."""
    # not rounded: a tiny run on a fast machine takes hundredths of a second
    return float(sum(r.get("time_s", 0.0) for r in history.records))


def tune(method: str, splits, bits: int, profile=None, runs_dir=None,
         progress: bool = False) -> pd.DataFrame:
    """Train every setting of :func:`tuning_settings` (seed 0) and return one
    row each with its best validation mAP; queries are never looked at."""
    rows = []
    for setting in tuning_settings(method):
        label = _label(method, setting)
        run = train_or_load(Variant(label, method, setting["loss_kwargs"]), splits, bits,
                            profile, run_folder(runs_dir, "tune"), progress=progress,
                            lr=setting["lr"])
        rows.append({"method": method, "bits": bits, "lr": setting["lr"],
                     "loss_kwargs": json.dumps(setting["loss_kwargs"]),
                     "val_mAP": run.history.records[run.history.best_epoch - 1]["val_mAP"],
                     "best_epoch": run.history.best_epoch,
                     "epochs": len(run.history), **convergence(run.history)})
    return pd.DataFrame(rows)


def per_query_ap(query_codes, db_codes, query_labels, db_labels) -> np.ndarray:
    """Average precision of each query (Hamming ranking, ties by database
    index, as :func:`~dfh_lib.core.metrics.mean_average_precision`)."""
    order = hamming_ranking(query_codes, db_codes)
    rel = (torch.as_tensor(db_labels)[order] == torch.as_tensor(query_labels)[:, None]).double()
    hits = rel.cumsum(1)
    ranks = torch.arange(1, rel.shape[1] + 1, dtype=torch.float64)
    return ((rel * hits / ranks).sum(1) / rel.sum(1).clamp(min=1)).numpy()


def evaluate_model(model, splits) -> dict:
    """Query-vs-database numbers of one trained network: code mAP, the same
    network's float mAP (cosine ranking of u), their ratio, P@H<=2,
    undecided bits and the per-query APs (for paired differences)."""
    uq, ud = encode(model, splits.query), encode(model, splits.database)
    cq, cd = binarize(uq), binarize(ud)
    ql, dl = splits.query.labels, splits.database.labels
    metrics = evaluate_retrieval(cq, cd, ql, dl)
    float_map = cosine_mean_average_precision(uq, ud, ql, dl)
    return {"mAP": float(metrics["mAP"]), "float_mAP": float_map,
            "ratio": float(metrics["mAP"]) / float_map if float_map else float("nan"),
            "P@H<=2": float(metrics["P@H<=2"]), "undecided": undecided_share(model, uq),
            "ap": per_query_ap(cq, cd, ql, dl)}


def evaluate_run(run: TrainedRun, splits) -> dict:
    """:func:`evaluate_model` of a run's network, plus its convergence."""
    return {**evaluate_model(run.model, splits), **convergence(run.history)}


def benchmark(methods, splits, bits=(12, 24, 36, 48), profile=None, runs_dir=None,
              seeds=(0, 1, 2), settings: dict | None = None, progress: bool = False
              ) -> tuple[pd.DataFrame, dict]:
    """Every method at every length and seed with its chosen setting.

    ``settings[(method, bits)]`` = ``{"lr": ..., "loss_kwargs": {...}}`` (from
    :func:`tune`; missing = defaults). Returns the rows (one per method,
    bits, seed) and the per-query APs keyed ``(method, bits, seed)``.
    """
    rows, aps = [], {}
    for k in bits:
        for method in methods:
            setting = (settings or {}).get((method, k), {})
            for seed in seeds:
                run = train_or_load(Variant(method, method, setting.get("loss_kwargs", {})),
                                    splits, k, profile, run_folder(runs_dir, f"seed{seed}"),
                                    progress=progress, seed=seed,
                                    **({"lr": setting["lr"]} if "lr" in setting else {}))
                numbers = evaluate_run(run, splits)
                aps[(method, k, seed)] = numbers.pop("ap")
                rows.append({"method": method, "bits": k, "seed": seed,
                             "lr": run.history.config["lr"],
                             "loss_kwargs": json.dumps(setting.get("loss_kwargs", {})),
                             "epochs": len(run.history), "best_epoch": run.history.best_epoch,
                             "train_s": training_seconds(run.history), **numbers})
    return pd.DataFrame(rows), aps


def feature_hashing(splits, bits=(12, 24, 36, 48), profile=None, runs_dir=None,
                    seeds=(0, 1, 2), methods=("LSH", "PCA-ITQ"), dim: int = 128
                    ) -> tuple[pd.DataFrame, dict]:
    """The deep-feature baselines in :func:`benchmark`'s row format: per seed,
    a ``dim``-d identity classifier (softmax) trained on the same start and
    budget as every hash method, then LSH / PCA-ITQ fitted on its training
    features (rows ``deep LSH``, ``deep PCA-ITQ``). ``float_mAP`` is the
    classifier's own cosine ranking; ``undecided`` is NaN (no relaxed code)."""
    rows, aps = [], {}
    ql, dl = splits.query.labels, splits.database.labels
    for seed in seeds:
        run = train_or_load("softmax", splits, dim, profile, run_folder(runs_dir, f"seed{seed}"),
                            progress=False, seed=seed)
        feats = {part: encode(run.model, getattr(splits, part)).numpy()
                 for part in ("train", "query", "database")}
        float_map = cosine_mean_average_precision(torch.as_tensor(feats["query"]),
                                                  torch.as_tensor(feats["database"]), ql, dl)
        for k in bits:
            for method in methods:
                hasher = HASHERS[method](k, seed=seed).fit(feats["train"])
                cq, cd = hasher.encode(feats["query"]), hasher.encode(feats["database"])
                metrics = evaluate_retrieval(cq, cd, ql, dl)
                name = f"deep {method}"
                aps[(name, k, seed)] = per_query_ap(torch.as_tensor(cq), torch.as_tensor(cd),
                                                    ql, dl)
                rows.append({"method": name, "bits": k, "seed": seed,
                             "lr": run.history.config["lr"], "loss_kwargs": "{}",
                             "epochs": len(run.history), "best_epoch": run.history.best_epoch,
                             "train_s": training_seconds(run.history),
                             "mAP": float(metrics["mAP"]),
                             "float_mAP": float_map,
                             "ratio": float(metrics["mAP"]) / float_map,
                             "P@H<=2": float(metrics["P@H<=2"]), "undecided": float("nan"),
                             **convergence(run.history)})
    return pd.DataFrame(rows), aps


def summarize(rows: pd.DataFrame) -> pd.DataFrame:
    """Mean ± std over seeds per method and code length (mAP, float mAP,
    ratio, P@H<=2, undecided) and the number of converged seeds."""
    grouped = rows.groupby(["method", "bits"], sort=False)
    out = grouped[["mAP", "float_mAP", "ratio", "P@H<=2", "undecided"]].agg(["mean", "std"])
    out.columns = [f"{a} {b}" for a, b in out.columns]
    out["converged"] = grouped["converged"].sum().astype(int).astype(str) + "/" + \
        grouped["converged"].size().astype(str)
    return out


def paired_difference(ap_a: np.ndarray, ap_b: np.ndarray) -> dict:
    """A − B in mAP from per-query APs of the same queries, (seeds, queries)
    arrays (or 1-D for one seed): the mean over seeds per query is paired
    over queries; the 95 % interval is the t interval over queries, and
    ``detectable`` the smallest true difference this set would find with
    80 % power (2.8 standard errors)."""
    a, b = np.atleast_2d(ap_a), np.atleast_2d(ap_b)
    if a.shape != b.shape:
        raise ValueError(f"paired APs need the same shape; got {a.shape} and {b.shape}")
    d = (a - b).mean(axis=0)
    from scipy import stats

    se = d.std(ddof=1) / math.sqrt(len(d))
    half = stats.t.ppf(0.975, len(d) - 1) * se
    return {"difference": float(d.mean()), "low": float(d.mean() - half),
            "high": float(d.mean() + half), "detectable": float(2.8 * se),
            "queries": len(d), "seeds": a.shape[0]}


def write_results(rows: pd.DataFrame, chapter: str, profile: str, dataset: str,
                  folder="book/results") -> Path:
    """Write a headline table to ``<folder>/<chapter>-<profile>-<dataset>.csv``
    (method, bits, seed, mAP, float mAP, P@H<=2, undecided share, ...)."""
    path = Path(folder) / f"{chapter}-{profile}-{dataset}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    rows.round(6).to_csv(path, index=False)
    return path


def chosen_settings(log: pd.DataFrame, bits=(12, 24, 36, 48)) -> dict:
    """The best-on-validation setting per (method, bits) from a tuning log
    (:func:`tune` rows); a length that was not tuned takes the nearest tuned one."""
    chosen = {}
    for method, rows in log.groupby("method", sort=False):
        tuned = sorted(rows["bits"].unique())
        for k in bits:
            near = min(tuned, key=lambda t: (abs(t - k), t))
            best = rows[rows["bits"] == near].sort_values("val_mAP", ascending=False).iloc[0]
            chosen[(method, k)] = {"lr": float(best["lr"]),
                                   "loss_kwargs": json.loads(best["loss_kwargs"])}
    return chosen


def compare(methods, splits, bits=(12, 24, 36, 48), profile=None, runs_dir=None,
            seeds=(0, 1, 2), tune_bits=None, log: pd.DataFrame | None = None,
            progress: bool = False):
    """Tune every method on validation (same budget each, at ``tune_bits``,
    default the shortest and longest length), then run the chosen settings
    with every seed. ``log`` reuses a tuning log instead of searching; a
    method the log lacks gets the same search here. The log used is written
    to ``runs_dir/tuning.csv``. Returns ``(rows,
    per-query APs, tuning log)``."""
    tune_bits = tune_bits or sorted({min(bits), max(bits)})
    known = set() if log is None else set(log["method"])
    searched = [tune(m, splits, k, profile, runs_dir, progress)
                for m in methods if m not in known for k in tune_bits]
    log = pd.concat(([] if log is None else [log]) + searched, ignore_index=True)
    if runs_dir is not None:  # the search used, beside its runs (Chapter 7 reads it)
        Path(runs_dir).mkdir(parents=True, exist_ok=True)
        log.to_csv(Path(runs_dir) / "tuning.csv", index=False)
    rows, aps = benchmark(methods, splits, bits, profile, runs_dir, seeds,
                          chosen_settings(log, bits), progress)
    return rows, aps, log


def shipped_tuning_log(profile: str, dataset: str) -> pd.DataFrame | None:
    """The tuning log shipped with the library for ``profile`` and ``dataset``
    (``reference_results/tuning-<profile>-<dataset>.csv``, written by
    ``bench/headline.py``), or None: then :func:`compare` searches itself."""
    from importlib.resources import files

    resource = files("dfh_lib").joinpath("reference_results",
                                         f"tuning-{profile}-{dataset}.csv")
    return pd.read_csv(resource) if resource.is_file() else None


def chosen_run(method: str, splits, bits: int, log: pd.DataFrame, profile=None,
               runs_dir=None, seed: int = 0) -> TrainedRun:
    """One seed of a method at its chosen setting (loaded when :func:`compare`
    trained it into the same ``runs_dir``)."""
    setting = chosen_settings(log, (bits,))[(method, bits)]
    return train_or_load(Variant(method, method, setting["loss_kwargs"]), splits, bits,
                         profile, run_folder(runs_dir, f"seed{seed}"), progress=False,
                         seed=seed, lr=setting["lr"])


def versus_best_baseline(rows: pd.DataFrame, aps: dict, method: str = "dfh") -> pd.DataFrame:
    """Per code length: ``method`` against the baseline with the highest mean
    mAP, as a paired difference over the same queries and seeds with its 95 %
    interval and the smallest difference the set could detect."""
    out = []
    for bits, group in rows.groupby("bits"):
        means = group.groupby("method")["mAP"].mean()
        rival = means.drop(method).idxmax()
        seeds = sorted(set(group["seed"]))
        diff = paired_difference(np.stack([aps[(method, bits, s)] for s in seeds]),
                                 np.stack([aps[(rival, bits, s)] for s in seeds]))
        out.append({"bits": bits, "best baseline": rival, method: means[method],
                    "baseline": means[rival], **diff})
    return pd.DataFrame(out).set_index("bits")
