"""Experiments that several chapters and the command line share: train a set
of methods at several code lengths through the one training loop, evaluate
them on query vs database, and keep codes, histories and a results table.

Taught in Chapter 2 (book/02_deep_hashing_baselines.ipynb).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .classic import HASHERS
from .metrics import binarize, evaluate_retrieval
from .train import encode, train_method

__all__ = ["DEEP_BASELINES", "ExperimentResult", "run_methods", "run_feature_hashing"]

DEEP_BASELINES = ("dpsh", "dsh", "hashnet", "greedyhash", "csq", "ddh", "dcdh")


@dataclass
class ExperimentResult:
    """Rows of metrics plus what figures need, keyed by ``(method, bits)``.

    ``codes[key] = (query_codes, db_codes)`` as ±1 int8 arrays;
    ``histories[key]`` the :class:`~dfh_lib.train.History` of a trained run.
    """

    rows: list[dict] = field(default_factory=list)
    codes: dict = field(default_factory=dict)
    histories: dict = field(default_factory=dict)

    def add(self, method: str, bits: int, query_codes, db_codes, splits, **extra) -> dict:
        metrics = evaluate_retrieval(query_codes, db_codes, splits.query.labels,
                                     splits.database.labels)
        row = {"method": method, "bits": bits, **metrics, **extra}
        self.rows.append(row)
        self.codes[(method, bits)] = (np.asarray(query_codes), np.asarray(db_codes))
        return row

    def extend(self, other: "ExperimentResult") -> "ExperimentResult":
        self.rows += other.rows
        self.codes.update(other.codes)
        self.histories.update(other.histories)
        return self


def run_methods(splits, methods=DEEP_BASELINES, bits=(12, 24, 36, 48), profile=None,
                runs_dir=None, progress: bool = True, **overrides) -> ExperimentResult:
    """Train every method at every code length (train-or-load: a finished run
    in ``runs_dir/<method>-<bits>`` is loaded, not retrained) and evaluate the
    best-on-validation model on query vs database."""
    result = ExperimentResult()
    for k in bits:
        for method in methods:
            run_dir = None if runs_dir is None else Path(runs_dir) / f"{method}-{k}"
            start = time.perf_counter()
            model, _, history = train_method(method, splits, k, profile, run_dir=run_dir,
                                             progress=progress, **overrides)
            query_codes = binarize(encode(model, splits.query))
            db_codes = binarize(encode(model, splits.database))
            result.add(method, k, query_codes, db_codes, splits,
                       best_epoch=history.best_epoch,
                       seconds=round(time.perf_counter() - start, 1))
            result.histories[(method, k)] = history
    return result


def run_feature_hashing(features: dict, splits, methods=("LSH", "PCA-ITQ"),
                        bits=(12, 24, 36, 48), prefix: str = "", seed: int = 0
                        ) -> ExperimentResult:
    """Non-deep hashing of given features (``features[part]`` for part in
    train / query / database), e.g. pixels or a classification network's
    embedding; method names get ``prefix`` (e.g. ``"deep "``)."""
    result = ExperimentResult()
    for k in bits:
        for method in methods:
            hasher = HASHERS[method](k, seed=seed).fit(features["train"])
            result.add(prefix + method, k, hasher.encode(features["query"]),
                       hasher.encode(features["database"]), splits)
    return result
