"""A face embedding network trained on people outside every evaluation set.

The shared backbone (:mod:`.backbone`) is trained on each benchmark's own
training identities: the right start for closed-set hashing, but it has seen
the people it is judged on. This network trains on LFW people that appear in
no evaluation set (:func:`~dfh_lib.core.data.lfw_protocols.face_net_protocol`:
not the benchmark, not the open set, not the verification test folds), with
the backbone's recipe (SmallResNet, CosFace, aspect-kept 64x48 input, flips and
shifts), selected on validation people it does not train on either. So it can
judge identity (of GAN edits), teach (distillation) and index faces nobody
trained on (open-set retrieval, low-shot).

It is trained once and shipped (``dfh_lib/pretrained/face-net-cpu-lfw``,
:func:`shipped_face_net`), with the command, training log and report.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import torch

from ..core.data.lfw_protocols import FaceNetProtocol
from ..core.embedding_metrics import cosine_mean_average_precision, verification_accuracy
from ..core.profiles import get_profile
from ..nn.models import SmallResNet, load_face_embedding
from .backbone import backbone_config, train_backbone
from .encoding import encode
from .train import History

__all__ = ["SHIPPED_FACE_NET", "FACE_NET_COMMAND", "face_net_config", "train_face_net",
           "save_face_net", "fine_tune_face_net", "face_net_report", "shipped_face_net_file",
           "shipped_face_net", "shipped_face_net_info"]

#: the shipped network's folder in the package
SHIPPED_FACE_NET = "face-net-cpu-lfw"
#: the command that made it
FACE_NET_COMMAND = ("python -m dfh_lib face-net --profile cpu --run-dir runs/face-net/cpu-lfw "
                    "--out dfh_lib/pretrained/face-net-cpu-lfw")


def face_net_config(profile=None, train_size: int = 1000, **overrides):
    """The shared backbone's recipe with ``profile.face_net_steps`` steps."""
    profile = get_profile(profile)
    batch = overrides.get("batch_size", 128)
    epochs = max(1, math.ceil(profile.face_net_steps / math.ceil(train_size / batch)))
    return backbone_config(profile, train_size, **{"epochs": epochs,
                                                   "eval_every": max(1, epochs // 20),
                                                   **overrides})


def train_face_net(protocol: FaceNetProtocol, profile=None, run_dir=None,
                   progress: bool = True, callback=None,
                   **overrides) -> tuple[SmallResNet, History]:
    """Train (or resume / load from ``run_dir``) the network on the
    protocol's training people, keeping the weights of the best validation
    float mAP (validation people ranked among themselves). ``callback`` as in
    :func:`~dfh_lib.engine.train.fit` (True stops; a later call resumes);
    ``overrides`` change the :class:`TrainConfig`."""
    splits = protocol.splits
    config = face_net_config(profile, len(splits.train), **overrides)
    return train_backbone(splits, profile, run_dir, progress, callback,
                          **{**overrides, "epochs": config.epochs,
                             "eval_every": config.eval_every})


def fine_tune_face_net(splits, face_net_file, profile=None, run_dir=None, progress: bool = True,
                       **overrides) -> tuple[SmallResNet, History]:
    """The face network fine-tuned on ``splits.train``'s identities (a new
    CosFace layer for them; the trunk starts from ``face_net_file``), with
    the backbone's recipe at half its learning rate, kept on
    ``splits.val_query``: a teacher or backbone that has seen other people
    before this benchmark's. The config's ``backbone`` records the start, so
    a run folder never resumes from another one."""
    start = load_face_embedding(face_net_file)
    config = backbone_config(profile, len(splits.train), **overrides)
    if tuple(config.image_size) != tuple(start.image_size):
        raise ValueError(f"{face_net_file} reads {start.image_size} images; the profile "
                         f"trains at {config.image_size}")
    return train_backbone(splits, profile, run_dir, progress, start=start,
                          **{"lr": 1e-3, "backbone": str(face_net_file), **overrides})


@torch.no_grad()
def face_net_report(network, protocol: FaceNetProtocol, benchmark=None) -> dict:
    """What the network can do on people it never trained on.

    ``network``: a SmallResNet or a face embedding file. Returns the LFW
    pairs verification accuracy per test fold (threshold chosen on the other
    test folds) with mean and std, the open-set float mAP (queries against
    database, cosine) and the validation float mAP; with ``benchmark`` (the
    hashing benchmark's RetrievalSplits) also its query float mAP there.
    """
    model = network if isinstance(network, torch.nn.Module) else load_face_embedding(network)
    pairs = protocol.pairs
    first = torch.nn.functional.normalize(encode(model, torch.from_numpy(pairs.first)
                                                 .permute(0, 3, 1, 2)), dim=1)
    second = torch.nn.functional.normalize(encode(model, torch.from_numpy(pairs.second)
                                                  .permute(0, 3, 1, 2)), dim=1)
    per_fold = verification_accuracy((first * second).sum(1).numpy(), pairs.same, pairs.fold)
    accuracies = torch.tensor(list(per_fold.values()))
    splits = protocol.splits

    def float_map(query, database):
        return cosine_mean_average_precision(encode(model, query), encode(model, database),
                                             query.labels, database.labels)

    report = {"verification_accuracy": float(accuracies.mean()),
              "verification_std": float(accuracies.std()) if len(accuracies) > 1 else 0.0,
              "verification_per_fold": per_fold, "verification_pairs": len(pairs),
              "open_set_float_mAP": float_map(splits.query, splits.database),
              "open_set_queries": len(splits.query),
              "validation_float_mAP": float_map(splits.val_query, splits.val_database)}
    if benchmark is not None:
        report["benchmark_float_mAP"] = float_map(benchmark.query, benchmark.database)
    return report


def save_face_net(model: SmallResNet, history: History, out_dir, report: dict | None = None,
                  command: str = FACE_NET_COMMAND) -> Path:
    """Write ``embedding.pt`` (the face embedding format every ``face_embedding``
    network loads), ``log.csv`` (the training history) and ``report.json``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    best = history.records[history.best_epoch - 1]
    torch.save({"format": "dfh_lib.face_embedding/1", "dim": model.bits,
                "widths": [block.conv2.out_channels for block in model.blocks],
                "image_size": list(model.image_size),
                "config": history.config, "best_epoch": history.best_epoch,
                "val_float_mAP": best.get("val_float_mAP"),
                "model": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}},
               out / "embedding.pt")
    history.to_csv(out / "log.csv")
    (out / "report.json").write_text(json.dumps({"command": command, **(report or {})},
                                                indent=1, default=str))
    return out / "embedding.pt"


def shipped_face_net_file() -> Path:
    """The shipped network's ``embedding.pt`` (package data; a face embedding
    file that ``face_embedding`` hash heads take as ``backbone``)."""
    path = Path(__file__).resolve().parents[1] / "pretrained" / SHIPPED_FACE_NET / "embedding.pt"
    if not path.exists():
        raise FileNotFoundError(f"the shipped face embedding network is missing ({path}); "
                                f"make it with: {FACE_NET_COMMAND}")
    return path


def shipped_face_net() -> SmallResNet:
    """The shipped face embedding network, eval mode."""
    return load_face_embedding(shipped_face_net_file())


def shipped_face_net_info() -> dict:
    """The shipped network's command, training data and measured report."""
    return json.loads((shipped_face_net_file().parent / "report.json").read_text())
