"""The Chapter-4 experiment: DFH with every quantization scheme, measured
the same way (mAP, convergence, code statistics, robustness)."""
from __future__ import annotations

import math

import pandas as pd
import torch

from ..analysis.codes import code_statistics, epochs_to_fraction
from ..analysis.robustness import check_perturbations, robustness
from ..core.embedding_metrics import cosine_mean_average_precision
from ..core.metrics import binarize
from ..engine.encoding import encode
from ..nn.quantizers import QUANTIZERS
from .benchmark import training_seconds
from .result import ExperimentResult
from .runs import Variant, train_or_load

__all__ = ["compare_quantizers"]


def compare_quantizers(splits, schemes=tuple(QUANTIZERS), bits=(12, 24, 36, 48), profile=None,
                       runs_dir=None, *, perturbations=(), weight: float | None = None,
                       quantizer_kwargs: dict | None = None, fraction: float = 0.95,
                       seed: int = 0, progress: bool = False, **overrides):
    """Train ``"dfhq"`` (DFH + a quantizer) once per scheme and code length —
    only the quantization term differs — and measure every run the same way.

    Train-or-load (:func:`~dfh_lib.experiments.runs.train_or_load`), in
    ``runs_dir/<label>-<bits>`` (label = the scheme's name, or
    ``"<scheme>-w<weight>"`` when ``weight`` is given; the folder names of
    :func:`~dfh_lib.experiments.baselines.run_methods`, so ``trained_model`` finds them
    with ``Variant(label, "dfhq", {"quantization": scheme, ...})``).
    ``overrides`` go to the training config (e.g. ``eval_every=1``); ``seed``
    is the training seed and the perturbations' (one folder per seed: pass
    another ``runs_dir`` for each).

    Each run gives one row (the best-on-validation network, as every table):

    * retrieval on query vs database: ``mAP``, ``P@H<=2``, ... (binary codes),
      ``float_mAP`` (the same network's raw outputs ranked by cosine: the
      ceiling of its codes) and ``ratio`` (mAP / float_mAP);
    * convergence: ``final_val_mAP`` (last evaluated epoch), ``best_epoch``,
      ``epochs_to_95`` (:func:`epochs_to_fraction` with ``fraction``);
    * :func:`code_statistics` of the query codes the hashing loss saw,
      ``u = quantizer.codes(z)`` with the schedule (HashNet's β) at the best
      epoch — sign-forward schemes (cubic, sign_ste) give ±1 codes, so their
      quantization error and undecided fraction are 0 by construction —
      plus ``mean_abs_z`` of the raw outputs;
    * robustness (:func:`robustness`, queries perturbed, database clean):
      ``bit_flip_rate`` and ``mAP_drop`` (clean − perturbed), means over
      ``perturbations`` (NaN if none).

    Returns:
        ``(result, robust)``: an :class:`~dfh_lib.experiments.result.ExperimentResult`
        (rows, codes, histories keyed by ``(label, bits)``) and a DataFrame
        with one row per run and perturbation (``method``, ``bits``,
        ``kind``, ``strength``, ``bit_flip_rate``, ``mAP``, ``mAP_drop``).
    """
    schemes = [schemes] if isinstance(schemes, str) else list(schemes)
    for scheme in schemes:
        if scheme not in QUANTIZERS:
            raise ValueError(f"unknown quantization {scheme!r}; choose one of "
                             f"{tuple(QUANTIZERS)}")
    perturbations = check_perturbations(perturbations)
    bits = [bits] if isinstance(bits, int) else list(bits)
    result, robust = ExperimentResult(), []
    for k in bits:
        for scheme in schemes:
            label = scheme if weight is None else f"{scheme}-w{weight:g}"
            loss_kwargs = {"quantization": scheme}
            if weight is not None:
                loss_kwargs["quantization_weight"] = weight
            if quantizer_kwargs:
                loss_kwargs["quantizer_kwargs"] = dict(quantizer_kwargs)
            run = train_or_load(Variant(label, "dfhq", loss_kwargs), splits, k, profile,
                                runs_dir, progress=progress, seed=seed, **overrides)
            model, history = run.model.eval(), run.history
            quantizer = run.loss.quantizer
            epochs = history.config.get("epochs", len(history))
            quantizer.on_epoch_start((history.best_epoch or 1) - 1, epochs)  # β of the best net
            with torch.no_grad():
                z, z_db = encode(model, splits.query), encode(model, splits.database)
                stats = code_statistics(quantizer.codes(z))
            float_map = cosine_mean_average_precision(z, z_db, splits.query.labels,
                                                      splits.database.labels)
            table = robustness(model, splits, perturbations, seed=seed)
            table["mAP_drop"] = table["mAP"].iloc[0] - table["mAP"]
            perturbed = table.iloc[1:]
            row = result.add(label, k, binarize(z), binarize(z_db), splits, scheme=scheme,
                       weight=quantizer.weight, float_mAP=float_map,
                       best_epoch=history.best_epoch,
                       final_val_mAP=[m for m in history.column("val_mAP")
                                      if m is not None][-1],
                       epochs_to_95=epochs_to_fraction(history, fraction),
                       **stats, mean_abs_z=float(z.abs().mean()),
                       bit_flip_rate=float(perturbed["bit_flip_rate"].mean())
                       if len(perturbed) else math.nan,
                       mAP_drop=float(perturbed["mAP_drop"].mean())
                       if len(perturbed) else math.nan,
                       train_s=training_seconds(history))
            row["ratio"] = row["mAP"] / float_map if float_map else math.nan
            result.histories[(label, k)] = history
            robust.append(table.assign(method=label, bits=k, scheme=scheme))
    columns = ["method", "bits", "scheme", "kind", "strength", "bit_flip_rate", "mAP",
               "mAP_drop"]
    robust = pd.concat(robust, ignore_index=True)[columns] if robust \
        else pd.DataFrame(columns=columns)
    return result, robust
