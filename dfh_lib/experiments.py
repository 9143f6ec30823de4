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
from .metrics import evaluate_retrieval
from .profiles import get_profile
from .train import binary_codes, encode, train_method

__all__ = ["DEEP_BASELINES", "Variant", "ExperimentResult", "run_methods", "trained_model", "run_feature_hashing",
           "classifier_features", "baselines", "main_baselines"]

DEEP_BASELINES = ("dpsh", "dsh", "hashnet", "greedyhash", "csq", "ddh", "dcdh")


@dataclass(frozen=True)
class Variant:
    """A method with non-default loss settings under a name of its own, for
    ablations: ``Variant("dfh-metric", "dfh", {"sign_weight": 0})``. The
    label names the table row and the run folder (keep it path-safe)."""

    label: str
    method: str
    loss_kwargs: dict = field(default_factory=dict)

    @classmethod
    def of(cls, spec) -> "Variant":
        """A Variant from a Variant or a plain method name."""
        return spec if isinstance(spec, Variant) else cls(spec, spec)


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
    in ``runs_dir/<label>-<bits>`` is loaded, not retrained) and evaluate the
    best-on-validation model on query vs database. ``methods`` holds method
    names or :class:`Variant` s."""
    result = ExperimentResult()
    for k in bits:
        for variant in map(Variant.of, methods):
            run_dir = None if runs_dir is None else Path(runs_dir) / f"{variant.label}-{k}"
            start = time.perf_counter()
            model, _, history = train_method(variant.method, splits, k, profile,
                                             run_dir=run_dir, loss_kwargs=variant.loss_kwargs,
                                             progress=progress, **overrides)
            result.add(variant.label, k, binary_codes(model, splits.query),
                       binary_codes(model, splits.database), splits,
                       best_epoch=history.best_epoch,
                       seconds=round(time.perf_counter() - start, 1))
            result.histories[(variant.label, k)] = history
    return result


def trained_model(spec, splits, bits: int, profile=None, runs_dir=None, **overrides):
    """The best-on-validation network of one :func:`run_methods` run (a
    method name or :class:`Variant`), loaded from ``runs_dir`` when it
    finished there, else trained — e.g. to look at its relaxed codes."""
    variant = Variant.of(spec)
    run_dir = None if runs_dir is None else Path(runs_dir) / f"{variant.label}-{bits}"
    model, _, _ = train_method(variant.method, splits, bits, profile, run_dir=run_dir,
                               loss_kwargs=variant.loss_kwargs, progress=False, **overrides)
    return model.eval()


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


def classifier_features(splits, profile=None, run_dir=None, dim: int = 128,
                        progress: bool = True, **overrides) -> dict:
    """Train a plain identity-classification network (``"softmax"`` loss,
    ``dim``-dimensional real outputs) and return its features of
    train / query / database as float arrays — the input of the
    deep-feature LSH / PCA-ITQ baselines."""
    model, _, _ = train_method("softmax", splits, dim, profile, run_dir=run_dir,
                               progress=progress, **overrides)
    return {part: encode(model, getattr(splits, part)).numpy()
            for part in ("train", "query", "database")}


def baselines(splits, bits=(12, 24, 36, 48), profile=None, runs_dir=None,
              methods=DEEP_BASELINES, progress: bool = True) -> ExperimentResult:
    """Every deep baseline plus LSH and PCA-ITQ on a classification network's
    features, all through the same loop, data and evaluation."""
    result = run_methods(splits, methods, bits, profile, runs_dir, progress)
    features = classifier_features(
        splits, profile, None if runs_dir is None else Path(runs_dir) / "softmax-128",
        progress=progress)
    return result.extend(run_feature_hashing(features, splits, bits=bits, prefix="deep ",
                                             seed=get_profile(profile).seed))


def main_baselines(argv=None) -> ExperimentResult:
    """``python -m dfh_lib baselines --dataset lfw --bits 12,24,36,48 --profile cpu``:
    trains and evaluates the baselines, writes ``<out>.csv/.md/.json`` and
    ``<out>.png`` (mAP against bits) and prints the Markdown table."""
    import argparse

    from .data import book_splits
    from .results import Provenance, results_table, save_results
    from .runtime import setup_notebook
    from .viz import plot_metric_vs_bits

    parser = argparse.ArgumentParser(prog="python -m dfh_lib baselines",
                                     description=main_baselines.__doc__.split("\n")[0])
    parser.add_argument("--dataset", default=None, help="default: $DFH_DATASET, else lfw "
                        "when present, else synthfaces")
    parser.add_argument("--bits", default="12,24,36,48", help="comma-separated code lengths")
    parser.add_argument("--profile", default=None, help="tiny, cpu or gpu")
    parser.add_argument("--methods", default=",".join(DEEP_BASELINES))
    parser.add_argument("--out", default=None, help="output path without suffix "
                        "(default: results/baselines-<dataset>-<profile>)")
    args = parser.parse_args(argv)
    run = setup_notebook("baselines", args.profile)
    splits = book_splits(run.profile, args.dataset)
    bits = tuple(int(b) for b in args.bits.split(","))
    tag = f"{splits.train.name}-{run.profile.name}"
    result = baselines(splits, bits, run.profile, run.run_dir(tag),
                       tuple(args.methods.split(",")))
    h, w = run.profile.image_size
    provenance = Provenance.of(run, splits, "query vs database",
                               epochs=run.profile.epochs, input=f"{h}x{w}")
    table = results_table(result.rows, provenance, index=["method", "bits"])
    out = Path(args.out or f"results/baselines-{tag}")
    save_results(table, out)
    plot_metric_vs_bits(table).savefig(out.with_suffix(".png"), dpi=100)
    print(out.with_suffix(".md").read_text())
    return result
