"""The Chapter-2 experiment, which later chapters and the command line reuse:
train a set of methods at several code lengths through the one training loop
(train-or-load), evaluate them on query vs database, and keep codes,
histories and a results table; plus non-deep hashing of given features.

Taught in Chapter 2 (book/02_deep_hashing_baselines.ipynb).
"""
from __future__ import annotations

from ..core.classic import HASHERS
from ..core.profiles import get_profile
from ..engine.train import encode
from .result import ExperimentResult
from .runs import Variant, run_folder, train_or_load

__all__ = ["DEEP_BASELINES", "run_methods", "trained_model", "run_feature_hashing",
           "classifier_features", "baselines"]

DEEP_BASELINES = ("dpsh", "dsh", "hashnet", "greedyhash", "csq", "ddh", "dcdh")


def run_methods(splits, methods=DEEP_BASELINES, bits=(12, 24, 36, 48), profile=None,
                runs_dir=None, progress: bool = True, **overrides) -> ExperimentResult:
    """Train every method at every code length (train-or-load: a finished run
    in ``runs_dir/<label>-<bits>`` is loaded, not retrained) and evaluate the
    best-on-validation model on query vs database. ``methods`` holds method
    names or :class:`Variant` s. Rows carry the network's float mAP, the
    code/float ratio and its undecided bits
    (:meth:`~dfh_lib.experiments.result.ExperimentResult.add_model`)."""
    result = ExperimentResult()
    for k in bits:
        for variant in map(Variant.of, methods):
            run = train_or_load(variant, splits, k, profile, runs_dir, progress=progress,
                                **overrides)
            result.add_model(variant.label, k, run.model, splits,
                             best_epoch=run.history.best_epoch, seconds=round(run.seconds, 1))
            result.histories[(variant.label, k)] = run.history
    return result


def trained_model(spec, splits, bits: int, profile=None, runs_dir=None, **overrides):
    """The best-on-validation network of one :func:`run_methods` run (a
    method name or :class:`Variant`), loaded from ``runs_dir`` when it
    finished there, else trained — e.g. to look at its relaxed codes."""
    run = train_or_load(spec, splits, bits, profile, runs_dir, progress=False, **overrides)
    return run.model.eval()


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
    run = train_or_load("softmax", splits, dim, profile, run_dir=run_dir, progress=progress,
                        **overrides)
    return {part: encode(run.model, getattr(splits, part)).numpy()
            for part in ("train", "query", "database")}


def baselines(splits, bits=(12, 24, 36, 48), profile=None, runs_dir=None,
              methods=DEEP_BASELINES, progress: bool = True,
              settings: dict | None = None) -> ExperimentResult:
    """Every deep baseline plus LSH and PCA-ITQ on a classification network's
    features, all through the same loop, data and evaluation.

    ``settings[(method, bits)]`` = ``{"lr": ..., "loss_kwargs": {...}}``, e.g.
    the validation-tuned ones of :func:`~dfh_lib.experiments.benchmark.chosen_settings`
    (folders as :func:`~dfh_lib.experiments.benchmark.benchmark`'s, so its runs
    are loaded); a method without one trains with its defaults.
    """
    result = ExperimentResult()
    for k in bits:
        for method in methods:
            setting = (settings or {}).get((method, k), {})
            result.extend(run_methods(splits, (Variant(method, method,
                                                       setting.get("loss_kwargs", {})),),
                                      (k,), profile, runs_dir, progress,
                                      **({"lr": setting["lr"]} if "lr" in setting else {})))
    features = classifier_features(splits, profile, run_folder(runs_dir, "softmax-128"),
                                   progress=progress)
    return result.extend(run_feature_hashing(features, splits, bits=bits, prefix="deep ",
                                             seed=get_profile(profile).seed))
