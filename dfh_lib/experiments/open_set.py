"""Retrieval of faces nobody trained on (open set), beside the closed set.

The book's benchmark is closed-set: queries and database are new photos of
the training identities. A user indexing their own photos meets people no
network has seen. :func:`open_set_benchmark` trains hash heads on the
benchmark's training split, on one or more face embedding networks, and
measures every head twice: on the benchmark's queries (closed set) and on
the open-set people (LFW people with 10-19 images, in no training set),
each with the same network's float ceiling and the embedding network's own
float mAP there (what the codes could reach at best).
"""
from __future__ import annotations

import re

import numpy as np
import pandas as pd

from ..core.data.lfw_protocols import OpenSet
from ..core.embedding_metrics import cosine_mean_average_precision
from ..core.profiles import get_profile
from ..engine.backbone import shared_backbone
from ..engine.encoding import encode
from ..engine.face_net import fine_tune_face_net, save_face_net
from ..nn.models import load_face_embedding
from .benchmark import evaluate_model, paired_difference
from .runs import Variant, run_folder, train_or_load

__all__ = ["embedding_float_map", "open_set_benchmark", "comparison_backbones",
           "summarize_open_set", "backbone_differences"]


def embedding_float_map(backbone, faces) -> float:
    """The float mAP of a face embedding network (file or shared-backbone id)
    on ``faces`` (anything with ``query`` and ``database``), cosine ranking."""
    net = load_face_embedding(backbone)
    return cosine_mean_average_precision(encode(net, faces.query), encode(net, faces.database),
                                         faces.query.labels, faces.database.labels)


def open_set_benchmark(methods, splits, open_set: OpenSet, backbones: dict[str, str],
                       bits=(12, 48), profile=None, runs_dir=None, seeds=(0, 1, 2),
                       settings: dict | None = None, progress: bool = False
                       ) -> tuple[pd.DataFrame, dict]:
    """Hash heads of ``methods`` on each of ``backbones`` (name -> embedding
    file or shared-backbone id), trained on ``splits.train`` with the chosen
    ``settings`` (as in :func:`~dfh_lib.experiments.benchmark.benchmark`).

    Returns one row per (backbone, method, bits, seed, protocol) with mAP,
    the head's float mAP and ratio, undecided bits, the embedding's float mAP
    on the same faces and ``of_embedding`` = mAP / that; and the per-query APs
    keyed ``(backbone, method, bits, seed, protocol)``.
    """
    protocols = {"closed set": splits, "open set": open_set}
    ceilings = {(name, p): embedding_float_map(b, faces) for name, b in backbones.items()
                for p, faces in protocols.items()}
    rows, aps = [], {}
    for name, backbone in backbones.items():
        for k in bits:
            for method in methods:
                setting = (settings or {}).get((method, k), {})
                for seed in seeds:
                    run = train_or_load(
                        Variant(method, method, setting.get("loss_kwargs", {})), splits, k,
                        profile, run_folder(runs_dir, re.sub(r"\W+", "-", name), f"seed{seed}"),
                        progress=progress, seed=seed, backbone=str(backbone),
                        **({"lr": setting["lr"]} if "lr" in setting else {}))
                    for protocol, faces in protocols.items():
                        numbers = evaluate_model(run.model, faces)
                        aps[(name, method, k, seed, protocol)] = numbers.pop("ap")
                        ceiling = ceilings[(name, protocol)]
                        rows.append({"backbone": name, "method": method, "bits": k,
                                     "seed": seed, "protocol": protocol, **numbers,
                                     "embedding_float_mAP": ceiling,
                                     "of_embedding": numbers["mAP"] / ceiling})
    return pd.DataFrame(rows), aps


def comparison_backbones(splits, face_net_file, profile=None, runs_dir=None,
                         fine_tune_steps: int | None = None, progress: bool = False) -> dict:
    """The three starts an open-set table compares, name -> embedding:
    ``"benchmark embedding"`` (the shared backbone, trained on the
    benchmark's training people), ``"face net"`` (``face_net_file``: other
    people only) and ``"face net, fine-tuned"`` (the face net fine-tuned on
    the benchmark's training people for ``fine_tune_steps``, default half the
    profile's backbone steps; 0 leaves it out; saved in ``runs_dir``)."""
    import math
    from pathlib import Path

    profile = get_profile(profile)
    backbones = {"benchmark embedding": shared_backbone(splits, profile, progress),
                 "face net": Path(face_net_file)}
    steps = profile.backbone_steps // 2 if fine_tune_steps is None else fine_tune_steps
    if steps:
        folder = run_folder(runs_dir, "fine-tuning")
        if folder is None:
            raise ValueError("the fine-tuned face net needs a runs_dir to be saved in")
        batches = math.ceil(len(splits.train) / 128)
        tuned, history = fine_tune_face_net(splits, face_net_file, profile, folder,
                                            progress=progress,
                                            epochs=max(1, math.ceil(steps / batches)))
        backbones["face net, fine-tuned"] = save_face_net(tuned, history, folder / "embedding")
    return backbones


def summarize_open_set(rows: pd.DataFrame) -> pd.DataFrame:
    """Mean ± std over seeds per protocol, backbone, method and length."""
    grouped = rows.groupby(["protocol", "backbone", "method", "bits"], sort=False)
    out = grouped[["mAP", "float_mAP", "embedding_float_mAP", "of_embedding",
                   "undecided"]].agg(["mean", "std"])
    out.columns = [f"{a} {b}" for a, b in out.columns]
    return out


def backbone_differences(aps: dict, better: str, than: str,
                         protocol: str = "open set") -> pd.DataFrame:
    """Paired differences (``better`` − ``than``, mAP points / 100) of the
    same method and length on the same queries, over the seeds both have."""
    rows = []
    keys = sorted({(m, k) for (b, m, k, _, p) in aps if b == better and p == protocol})
    for method, k in keys:
        seeds = sorted(s for (b, m, kk, s, p) in aps
                       if (b, m, kk, p) == (better, method, k, protocol)
                       and (than, method, k, s, protocol) in aps)
        if not seeds:
            continue
        a = np.stack([aps[(better, method, k, s, protocol)] for s in seeds])
        b = np.stack([aps[(than, method, k, s, protocol)] for s in seeds])
        rows.append({"method": method, "bits": k, **paired_difference(a, b)})
    return pd.DataFrame(rows)
