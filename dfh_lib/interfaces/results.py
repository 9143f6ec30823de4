"""Results tables that carry their provenance.

Every table in the book says which profile, dataset, split and device made
it. :class:`Provenance` holds that; :func:`results_table` builds a pandas
DataFrame with it in ``df.attrs``; :func:`save_results` writes CSV, Markdown
and JSON side by side.
"""
from __future__ import annotations

import json
import platform
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

__all__ = ["Provenance", "provenance_line", "results_table", "save_results", "load_results",
           "summarize_seeds", "mean_std", "REFERENCE_RUNS", "load_reference_run"]

# Result files shipped with the library (so a chapter shows them on Colab too):
# runs too long for a chapter to repeat, each made by this project's own code.
REFERENCE_RUNS = {
    "tuning-cpu-lfw": {
        "what": "validation-only search of every method's settings, 6 runs each at 12 and 48 "
                "bits (Chapter 3)",
        "command": "python bench/headline.py --profile cpu --dataset lfw",
        "device": "2-core CPU (the project's development machine), cpu profile, LFW >= 20 images",
        "file": "tuning-cpu-lfw.csv",
    },
}


@dataclass(frozen=True)
class Provenance:
    """Where a table's numbers come from."""

    profile: str
    dataset: str
    split: str
    device: str
    extra: dict = field(default_factory=dict)
    created: str = field(default_factory=lambda: datetime.now(timezone.utc)
                         .strftime("%Y-%m-%d %H:%M UTC"))

    @classmethod
    def of(cls, run, splits, split: str, **extra) -> "Provenance":
        """Provenance of a chapter run (:func:`dfh_lib.core.runtime.setup_notebook`)
        on ``splits`` (:class:`~dfh_lib.core.data.RetrievalSplits`)."""
        from ..core.runtime import describe_device

        db = splits.database
        h, w = db.image_size
        dataset = (f"{db.name} ({db.num_identities} identities; {len(splits.query)} queries, "
                   f"{len(db)} database images, stored at {h}x{w} px)")
        return cls(run.profile.name, dataset, split, describe_device(run.device), extra)

    def __str__(self) -> str:
        extra = "".join(f" | {k}: {v}" for k, v in self.extra.items())
        return (f"profile: {self.profile} | dataset: {self.dataset} | split: {self.split} "
                f"| device: {self.device}{extra}")


def provenance_line(df: pd.DataFrame, missing: str = "") -> str:
    """The one-line provenance stored in ``df.attrs`` (``missing`` if none)."""
    prov = df.attrs.get("provenance")
    return str(Provenance(**prov)) if prov else missing


def results_table(rows: list[dict], provenance: Provenance, index=None) -> pd.DataFrame:
    """A DataFrame of ``rows`` with ``provenance`` in ``df.attrs`` (shown by
    :func:`dfh_lib.interfaces.viz.show_table`)."""
    df = pd.DataFrame(rows)
    if index is not None:
        df = df.set_index(index)
    df.attrs["provenance"] = asdict(provenance)
    return df


def save_results(df: pd.DataFrame, path: str | Path) -> list[Path]:
    """Write ``path.csv``, ``path.md`` and ``path.json`` (rows + provenance)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    prov = df.attrs.get("provenance", {})
    prov_line = provenance_line(df, "(no provenance)")
    csv, md, js = (path.with_suffix(s) for s in (".csv", ".md", ".json"))
    df.to_csv(csv)
    md.write_text(df.to_markdown(floatfmt=".4f") + f"\n\n{prov_line}\n"
                  if _has_tabulate() else df.to_string() + f"\n\n{prov_line}\n")
    js.write_text(json.dumps({"provenance": prov, "python": platform.python_version(),
                              "rows": json.loads(df.reset_index().to_json(orient="records"))},
                             indent=1))
    return [csv, md, js]


def load_results(path: str | Path) -> pd.DataFrame:
    """Read a table written by :func:`save_results` (its JSON), provenance included."""
    data = json.loads(Path(path).with_suffix(".json").read_text())
    df = pd.DataFrame(data["rows"])
    df.attrs["provenance"] = data["provenance"]
    return df


def summarize_seeds(rows_by_seed: dict, metric: str = "mAP", baselines=(),
                    differences: dict | None = None,
                    provenance: Provenance | None = None) -> pd.DataFrame:
    """Mean, sample standard deviation and count over training seeds of
    ``metric``, per method (rows, first seed's order) and code length.

    Args:
        rows_by_seed: ``{seed: rows}``, rows as in a results table (``method``,
            ``bits``, ``metric``), e.g. ``reproduce(...).rows`` per seed.
        baselines: methods whose per-seed maximum becomes the row
            ``"best baseline"`` (the best method may differ between seeds).
        differences: ``{name: (a, b)}`` adds row ``name``, ``a − b`` taken
            within each seed (``b`` may be ``"best baseline"``), so its spread
            is that of the difference itself, not of ``a`` and ``b`` apart.
        provenance: stored in ``attrs`` (shown by :func:`dfh_lib.interfaces.viz.show_table`).

    Returns columns ``(bits, stat)`` with stat in ``mean``, ``std``, ``n`` and
    ``ci95``, the half-width of the 95 % Student-t interval of the mean,
    ``t(0.975, n − 1) · std / √n`` (both NaN from a single seed).
    """
    from scipy import stats as scipy_stats

    if not rows_by_seed:
        raise ValueError("rows_by_seed is empty: give {seed: rows} for at least one seed")
    frames = []
    for rows in rows_by_seed.values():
        values = pd.DataFrame(rows).pivot_table(index="method", columns="bits", values=metric,
                                                sort=False)
        if baselines:
            values.loc["best baseline"] = values.loc[list(baselines)].max()
        for name, (a, b) in (differences or {}).items():
            values.loc[name] = values.loc[a] - values.loc[b]
        frames.append(values)
    grouped = pd.concat(frames, keys=list(rows_by_seed), names=["seed"]).groupby(
        level="method", sort=False)
    std, n = grouped.std(ddof=1), grouped.count()
    ci95 = std * scipy_stats.t.ppf(0.975, n - 1) / n ** 0.5
    stats = pd.concat({"mean": grouped.mean(), "std": std, "n": n, "ci95": ci95}, axis=1)
    columns = pd.MultiIndex.from_product([frames[0].columns, ["mean", "std", "n", "ci95"]],
                                         names=["bits", "stat"])
    out = stats.swaplevel(axis=1).reindex(columns=columns)
    if provenance is not None:
        out.attrs["provenance"] = asdict(provenance)
    return out


def mean_std(summary: pd.DataFrame, digits: int = 3) -> pd.DataFrame:
    """A :func:`summarize_seeds` table as text cells ``"mean ± std"``, one
    column per code length (``"mean"`` alone where std is NaN)."""
    mean = summary.xs("mean", axis=1, level="stat")
    std = summary.xs("std", axis=1, level="stat")
    text = mean.map(lambda v: f"{v:.{digits}f}")
    spread = std.map(lambda v: "" if pd.isna(v) else f" ± {v:.{digits}f}")
    out = text + spread
    out.attrs = summary.attrs
    return out


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401  (pandas' to_markdown needs it)
    except ImportError:
        return False
    return True


def load_reference_run(name: str) -> pd.DataFrame:
    """A result file shipped in ``dfh_lib/reference_results`` (see
    :data:`REFERENCE_RUNS` for what made it) as a DataFrame; its origin is in
    ``df.attrs["reference"]``."""
    from importlib.resources import files

    if name not in REFERENCE_RUNS:
        raise ValueError(f"unknown reference run {name!r}; known: {sorted(REFERENCE_RUNS)}")
    file = REFERENCE_RUNS[name].get("file", f"{name}.jsonl")
    with files("dfh_lib").joinpath("reference_results", file).open() as f:
        df = pd.read_csv(f) if file.endswith(".csv") else pd.read_json(f, lines=True)
    df.attrs["reference"] = dict(REFERENCE_RUNS[name], name=name)
    return df
