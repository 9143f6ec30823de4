"""What every chapter experiment returns: rows of metrics plus the codes and
training histories that figures need."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..core.metrics import evaluate_retrieval

__all__ = ["ExperimentResult"]


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

    def extend(self, other: "ExperimentResult") -> "ExperimentResult":
        self.rows += other.rows
        self.codes.update(other.codes)
        self.histories.update(other.histories)
        return self
