"""What every chapter experiment returns: rows of metrics plus the codes and
training histories that figures need."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ..core.embedding_metrics import cosine_mean_average_precision
from ..core.metrics import binarize, evaluate_retrieval
from ..engine.encoding import encode

__all__ = ["ExperimentResult", "undecided_share"]


def undecided_share(model, u: torch.Tensor) -> float:
    """Share of bits with |u| < 0.5 in a network's outputs ``u``; raw-output
    networks are read through tanh (how HashNet and the quantizers squash them)."""
    if getattr(model, "activation", "tanh") is None:
        u = torch.tanh(u)
    return float((u.abs() < 0.5).float().mean())


@dataclass
class ExperimentResult:
    """Rows of metrics plus what figures need, keyed by ``(method, bits)``.

    ``codes[key] = (query_codes, db_codes)`` as ±1 int8 arrays;
    ``histories[key]`` the :class:`~dfh_lib.engine.train.History` of a trained run.
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

    def add_model(self, method: str, bits: int, model, splits, **extra) -> dict:
        """:meth:`add` for a trained network: the codes of its outputs on the
        query and database faces, plus the same network's ``float_mAP``
        (its real outputs ranked by cosine: the ceiling of its codes),
        ``ratio`` (mAP / float_mAP) and ``undecided`` (query bits |u| < 0.5)."""
        uq, ud = encode(model, splits.query), encode(model, splits.database)
        float_map = cosine_mean_average_precision(uq, ud, splits.query.labels,
                                                  splits.database.labels)
        row = self.add(method, bits, binarize(uq), binarize(ud), splits, **extra)
        row.update(float_mAP=float_map,
                   ratio=float(row["mAP"]) / float_map if float_map else float("nan"),
                   undecided=undecided_share(model, uq))
        return row

    def extend(self, other: "ExperimentResult") -> "ExperimentResult":
        self.rows += other.rows
        self.codes.update(other.codes)
        self.histories.update(other.histories)
        return self
