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

import pandas as pd

from ..core.data.lfw_protocols import OpenSet
from ..core.embedding_metrics import cosine_mean_average_precision
from ..engine.encoding import encode
from ..nn.models import load_face_embedding
from .benchmark import evaluate_model
from .runs import Variant, run_folder, train_or_load

__all__ = ["embedding_float_map", "open_set_benchmark"]


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
