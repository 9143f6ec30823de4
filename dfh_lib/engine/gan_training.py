"""Training of the StarGAN and of the independent attribute classifier: one
step loop with logs, checkpoints and exact resume, and the checkpoints
shipped with the library.

Each step trains ``D`` on a real batch ``x`` with source attributes ``c`` and
targets ``c'``, drawn as in the official code by shuffling the attribute
vectors within the batch (so target hair colours stay mutually exclusive);
``G`` is updated after every ``n_critic``-th ``D`` update (one *step* is one
``D`` update, the official ``num_iters``) with Adam; the learning rates decay
linearly to 0 over the second half of the steps. No mixed precision: the
gradient penalty's double backward is fragile in fp16. Networks and settings:
:mod:`dfh_lib.nn.gan`; losses: :mod:`dfh_lib.nn.losses.gan`. Checkpoints use
the one format of :mod:`dfh_lib.engine.checkpoint`.

Main entry points: :func:`train_gan`, :func:`load_generator`,
:func:`train_attribute_classifier`, :func:`load_attribute_classifier`; the
checkpoints shipped with the library: :func:`pretrained` (:data:`PRETRAINED`).
Taught in Chapter 5 (book/05_gan_augmentation.ipynb).
"""
from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ..core.data import load_dataset, load_synthfaces
from ..core.data.dataset import FaceDataset
from ..core.profiles import Profile
from ..core.runtime import get_device, seed_everything
from ..nn.gan import (AttributeClassifier, ClassifierConfig, Discriminator, GANConfig,
                      Generator, _Config, _config_of, build_gan)
from ..nn.losses.gan import discriminator_loss, generator_loss
from . import checkpoint
from .editing import _to_unit, attribute_matrix, face_crops, framing_for, split_by_identity

__all__ = ["GANResult", "ClassifierResult", "train_gan", "load_generator", "face_net_view",
           "train_attribute_classifier", "load_attribute_classifier", "PRETRAINED",
           "pretrained", "pretrained_log", "pretrained_evaluation"]

CHECKPOINT = "checkpoint.pt"
GENERATOR = "generator.pt"
CLASSIFIER = "classifier.pt"
LOG = "log.csv"
EVALUATION = "evaluation.json"


# ----------------------------------------------------------------------------
# the step loop shared by the GAN and the classifier
# ----------------------------------------------------------------------------

def _batch_index(step: int, batch_size: int, n: int, seed: int) -> torch.Tensor:
    """Images of ``step``: consecutive slices of per-epoch permutations, each
    seeded by (seed, epoch), so the order needs no saved state."""
    start = step * batch_size
    parts, done = [], 0
    while done < batch_size:
        epoch, offset = divmod(start + done, n)
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(
            seed * 1_000_003 + epoch))
        take = perm[offset:offset + batch_size - done]
        parts.append(take)
        done += len(take)
    return torch.cat(parts)


def _real_batch(data: dict, step: int, config, generator, device):
    """(x, c): a real batch in [-1, 1] (randomly flipped) and its attributes."""
    index = _batch_index(step, config.batch_size, len(data["attrs"]), config.seed)
    x = _to_unit(data["images"][index.to(data["images"].device)], device)
    if config.augment_flip:
        flip = (torch.rand(len(x), generator=generator) < 0.5).to(device)
        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    return x, data["attrs"][index].to(device)


def _to_floats(pending: list[tuple[int, dict]], steps: int, last_saved: int) -> list[dict]:
    """The loss terms of the steps since the last flush as floats, in one
    device-to-host copy (no sync per step); stop at the first NaN/inf step."""
    flat = [v.detach().float().reshape(()) for _, terms in pending for v in terms.values()]
    values = iter(torch.stack(flat).cpu().tolist() if flat else [])
    rows = [{k: next(values) for k in terms} for _, terms in pending]
    for (step, _), row in zip(pending, rows):
        if not all(math.isfinite(v) for v in row.values()):
            named = ", ".join(f"{k}={v:.4g}" for k, v in row.items())
            raise FloatingPointError(
                f"a loss is not finite at step {step} of {steps}: {named}. The last "
                f"checkpoint (step {last_saved}) is untouched; try lower learning rates, "
                f"check the images, or change the seed.")
    return rows


def _data_summary(crops: np.ndarray, attrs: np.ndarray, framing) -> dict:
    return {"images": len(crops), "crop_size": int(crops.shape[1]), "framing": framing,
            "images_sha1": hashlib.sha1(crops.tobytes()).hexdigest()[:12],
            "attributes_sha1": hashlib.sha1(attrs.tobytes()).hexdigest()[:12]}


def _write_log(log: list[dict], path: Path) -> None:
    keys = list(dict.fromkeys(k for row in log for k in row))
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, keys)
        writer.writeheader()
        writer.writerows(log)
    os.replace(tmp, path)


@dataclass
class _Loop:
    """Steps, logs, checkpoints and resume for :func:`train_gan` and
    :func:`train_attribute_classifier`: ``step_fn(step)`` does one update and
    returns its loss terms as 0-d tensors. They are read back (and checked
    for NaN/inf) once per log row or checkpoint, so a GPU never waits per step.

    The checkpoint holds the modules, optimizers, every RNG state, the step,
    the log, the partial log window and the training time so far, so a
    resumed run continues exactly (weights and log)."""

    kind: str
    config: _Config
    modules: dict[str, nn.Module]
    optimizers: dict[str, torch.optim.Optimizer]
    data: dict
    run_dir: Path | None
    generator: torch.Generator
    meta: dict
    step: int = 0
    saved: int = 0
    log: list = field(default_factory=list)
    window: dict = field(default_factory=dict)  # term -> [sum, count] since the last row
    elapsed: float = 0.0  # training seconds before this session
    row_extra: Callable[[int], dict] | None = None  # e.g. the learning rate of a step

    def resume(self) -> None:
        path = self.run_dir / CHECKPOINT
        state = checkpoint.load(path, (self.kind,))
        checkpoint.check_same_run(state, self.config.fingerprint(), self.config.to_dict(),
                                  self.data, path, self.config._NOT_IN_FINGERPRINT)
        for name, part in {**self.modules, **self.optimizers}.items():
            part.load_state_dict(state[name])
        checkpoint.set_rng_state(state["rng"], self.generator)
        self.step = self.saved = state["step"]
        self.log, self.window, self.elapsed = state["log"], state["window"], state["elapsed"]

    def save(self, elapsed: float) -> None:
        parts = {k: v.state_dict() for k, v in {**self.modules, **self.optimizers}.items()}
        common = {"format": checkpoint.FORMAT, "step": self.step,
                  "config": self.config.to_dict(), "data": self.data}
        checkpoint.save_atomic({**common, "kind": self.kind,
                                "fingerprint": self.config.fingerprint(),
                                "log": self.log, "window": self.window, "elapsed": elapsed,
                                "rng": checkpoint.rng_state(self.generator), **parts},
                               self.run_dir / CHECKPOINT)
        first = next(iter(self.modules))  # the model a user loads: G or the classifier
        checkpoint.save_atomic({**common, "kind": self.meta["export_kind"],
                                "model": self.modules[first].state_dict()},
                               self.run_dir / self.meta["export_name"])
        _write_log(self.log, self.run_dir / LOG)
        self.saved = self.step

    def _flush(self, pending: list, elapsed: float, log_due: bool) -> None:
        for terms in _to_floats(pending, self.config.steps, self.saved):
            for k, v in terms.items():
                total = self.window.setdefault(k, [0.0, 0])
                total[0], total[1] = total[0] + v, total[1] + 1
        pending.clear()
        if log_due:
            extra = self.row_extra(self.step - 1) if self.row_extra else {}
            self.log.append({"step": self.step, "time_s": elapsed, **extra,
                             **{k: v / n for k, (v, n) in self.window.items()}})
            self.window = {}

    def run(self, step_fn: Callable, resume: bool, progress: bool, desc: str) -> list[dict]:
        if self.run_dir is not None:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            if resume and (self.run_dir / CHECKPOINT).exists():
                self.resume()
        cfg, start, pending = self.config, time.perf_counter(), []
        with tqdm(total=cfg.steps, initial=self.step, unit="step", desc=desc,
                  disable=not progress, dynamic_ncols=True, leave=False) as bar:
            while self.step < cfg.steps:
                pending.append((self.step + 1, step_fn(self.step)))
                self.step += 1
                bar.update()
                last = self.step == cfg.steps
                log_due = self.step % cfg.log_every == 0 or last
                save_due = self.step % cfg.checkpoint_every == 0 or last
                if log_due or save_due:
                    elapsed = self.elapsed + time.perf_counter() - start
                    self._flush(pending, elapsed, log_due)
                    if log_due:
                        bar.set_postfix({k: f"{v:.3f}" for k, v in self.log[-1].items()
                                         if k.endswith("loss")})
                    if save_due and self.run_dir is not None:
                        self.save(elapsed)
        return self.log


def _lr_at(step: int, config: GANConfig, base: float) -> float:
    """Constant, then linear decay to 0 from ``decay_from * steps`` (StarGAN)."""
    start = config.decay_from * config.steps
    if step < start or config.steps <= start:
        return base
    return base * (config.steps - step) / (config.steps - start)


# ----------------------------------------------------------------------------
# GAN training
# ----------------------------------------------------------------------------

@dataclass
class GANResult:
    """What :func:`train_gan` returns: both networks (G in eval mode), the
    config and the loss log (one dict per ``log_every`` steps: window means)."""

    generator: Generator
    discriminator: Discriminator
    config: GANConfig
    log: list[dict]

    def log_frame(self):
        """The log as a ``pandas.DataFrame`` indexed by step."""
        import pandas as pd

        return pd.DataFrame(self.log).set_index("step")


def _training_data(dataset: FaceDataset, config, framing, device) -> tuple[dict, dict]:
    """Face crops (uint8, on the device when it is a GPU) and attributes."""
    if not isinstance(dataset, FaceDataset):
        raise ValueError(f"dataset must be a FaceDataset; got {type(dataset).__name__}")
    framing = framing or framing_for(dataset)
    attrs = attribute_matrix(dataset, config.attributes)
    crops = face_crops(dataset.images, config.image_size, framing)
    images = torch.from_numpy(crops)
    if device.type != "cpu":
        images = images.to(device)
    framing = framing if isinstance(framing, str) else list(framing)
    return {"images": images, "attrs": torch.from_numpy(attrs)}, \
        _data_summary(crops, attrs, framing)


def face_net_view(net: nn.Module):
    """The frozen embedding ``f`` of the identity loss: GAN crops (N, 3, S, S)
    in [-1, 1] (the face box stretched to a square) resized to the network's
    own input (64×48 for the face net: the box's 4:3 shape again) in [0, 1]."""
    net.eval().requires_grad_(False)
    size = tuple(net.image_size)

    def embed(x: torch.Tensor) -> torch.Tensor:
        return net(F.interpolate((x + 1) / 2, size=size, mode="bilinear", align_corners=False))
    return embed


def _identity_embedding(config: GANConfig, identity_net, device):
    """(embed or None, its summary): the face net (default: the shipped one)
    when ``lambda_id > 0``; its file's digest goes into the run's data."""
    if config.lambda_id <= 0:
        return None, {}
    from ..nn.models import load_face_embedding
    from .face_net import shipped_face_net_file

    path = Path(identity_net) if identity_net is not None else shipped_face_net_file()
    net = load_face_embedding(path).to(device)
    digest = hashlib.sha1(path.read_bytes()).hexdigest()[:12]
    return face_net_view(net), {"identity_net_sha1": digest}


def _gan_step(G, D, opt_g, opt_d, data, config: GANConfig, generator, device, identity=None):
    """The step function of :class:`_Loop` for StarGAN (one D update, and one
    G update on every ``n_critic``-th step)."""
    def step_fn(step: int) -> dict:
        for opt, base in ((opt_g, config.g_lr), (opt_d, config.d_lr)):
            for group in opt.param_groups:
                group["lr"] = _lr_at(step, config, base)
        x, c = _real_batch(data, step, config, generator, device)
        c_target = c[torch.randperm(len(c), generator=generator).to(device)]
        alpha = torch.rand(len(x), generator=generator).to(device)
        with torch.no_grad():
            fake = G(x, c_target)
        d_loss, terms = discriminator_loss(D, x, fake, c, alpha, config)
        logged = {k: v.detach() for k, v in terms.items()}
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
        if (step + 1) % config.n_critic == 0:
            D.requires_grad_(False)  # G's step needs no D weight gradients
            g_loss, g_terms = generator_loss(G, D, x, c, c_target, config, identity)
            logged.update({k: v.detach() for k, v in g_terms.items()})
            opt_g.zero_grad(set_to_none=True)
            g_loss.backward()
            opt_g.step()
            D.requires_grad_(True)
        return logged
    return step_fn


def train_gan(dataset: FaceDataset, config: GANConfig | str | None = None, run_dir=None,
              resume: bool = True, progress: bool = True, device=None,
              framing=None, identity_net=None) -> GANResult:
    """Train a StarGAN on ``dataset`` (CelebA; its attributes are the labels).

    Args:
        dataset: a FaceDataset with the config's attributes.
        config: a :class:`GANConfig`, or a profile name (``tiny``/``cpu``/``gpu``).
        run_dir: with it, writes ``checkpoint.pt`` (G, D, both Adam states,
            every RNG state, step, log) every ``checkpoint_every`` steps and
            at the end, ``generator.pt`` (G only, for :func:`load_generator`)
            and ``log.csv``. An existing checkpoint of the same config and
            data is resumed exactly (``resume=True``); a finished run loads.
        framing: the face box (default: by dataset name, see :data:`FRAMINGS`).
        device: None = ``$DFH_DEVICE``, else cuda / mps / cpu.
        identity_net: the face embedding file of the identity loss (used when
            ``config.lambda_id > 0``; default: the shipped face net,
            :func:`~dfh_lib.engine.face_net.shipped_face_net_file`).

    Raises:
        ValueError: unreadable checkpoint, or one of another config / data
            (names the differing fields).
        FloatingPointError: a loss became NaN/inf (names the step and losses).
    """
    config = _config_of(GANConfig, config)
    device = get_device(device)
    data, summary = _training_data(dataset, config, framing, device)
    identity, identity_summary = _identity_embedding(config, identity_net, device)
    summary.update(identity_summary)
    seed_everything(config.seed, config.deterministic)
    G, D = (m.to(device) for m in build_gan(config))
    betas = (config.beta1, config.beta2)
    opt_g = torch.optim.Adam(G.parameters(), config.g_lr, betas)
    opt_d = torch.optim.Adam(D.parameters(), config.d_lr, betas)
    generator = torch.Generator().manual_seed(config.seed)
    loop = _Loop("gan_checkpoint", config, {"generator": G, "discriminator": D},
                 {"opt_g": opt_g, "opt_d": opt_d}, summary,
                 Path(run_dir) if run_dir is not None else None, generator,
                 {"export_kind": "generator", "export_name": GENERATOR},
                 row_extra=lambda step: {"lr": _lr_at(step, config, config.g_lr)})
    step_fn = _gan_step(G, D, opt_g, opt_d, data, config, generator, device, identity)
    name = "masked StarGAN" if config.masked else "StarGAN"
    log = loop.run(step_fn, resume, progress, f"{name} {config.image_size}px")
    G.eval().config = config
    G.framing = summary["framing"]
    return GANResult(G, D, config, log)


def _export_path(path, name: str) -> Path:
    path = Path(path)
    return path / name if path.is_dir() else path


def load_generator(path) -> Generator:
    """The generator of a run folder (its ``generator.pt``) or of a
    ``generator.pt`` / ``checkpoint.pt`` file, on the CPU in eval mode, with
    ``.config`` (its :class:`GANConfig`) and ``.framing`` (of its training data)."""
    path = _export_path(path, GENERATOR)
    state = checkpoint.load(path, ("generator", "gan_checkpoint"))
    config = GANConfig(**state["config"])
    G = build_gan(config)[0]
    G.load_state_dict(state["model"] if state["kind"] == "generator" else state["generator"])
    G.eval().config = config
    G.framing = state["data"]["framing"]
    return G


# ----------------------------------------------------------------------------
# the independent attribute classifier
# ----------------------------------------------------------------------------

@dataclass
class ClassifierResult:
    """What :func:`train_attribute_classifier` returns (classifier in eval mode)."""

    classifier: AttributeClassifier
    config: ClassifierConfig
    log: list[dict]


def _classifier_step(model, optimizer, data, config, generator, device):
    def step_fn(step: int) -> dict:
        x, c = _real_batch(data, step, config, generator, device)
        loss = F.binary_cross_entropy_with_logits(model(x), c)
        logged = {"loss": loss.detach()}
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return logged
    return step_fn


def train_attribute_classifier(dataset: FaceDataset, config: ClassifierConfig | str | None = None,
                               run_dir=None, resume: bool = True, progress: bool = True,
                               device=None, framing=None) -> ClassifierResult:
    """Train the independent :class:`AttributeClassifier` on real faces.

    Same checkpoint conventions as :func:`train_gan` (``checkpoint.pt`` with
    exact resume, ``classifier.pt``, ``log.csv``). Train on real CelebA
    images that the evaluation does not use (see :func:`split_by_identity`).
    """
    config = _config_of(ClassifierConfig, config)
    device = get_device(device)
    data, summary = _training_data(dataset, config, framing, device)
    seed_everything(config.seed, config.deterministic)
    model = AttributeClassifier(config.attributes, config.width, config.image_size).to(device)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), config.lr,
                                  weight_decay=config.weight_decay)
    generator = torch.Generator().manual_seed(config.seed)
    loop = _Loop("classifier_checkpoint", config, {"classifier": model},
                 {"optimizer": optimizer}, summary,
                 Path(run_dir) if run_dir is not None else None, generator,
                 {"export_kind": "classifier", "export_name": CLASSIFIER})
    step_fn = _classifier_step(model, optimizer, data, config, generator, device)
    log = loop.run(step_fn, resume, progress, f"attribute classifier {config.image_size}px")
    model.eval().config = config
    return ClassifierResult(model, config, log)


def load_attribute_classifier(path) -> AttributeClassifier:
    """The classifier of a run folder or file, on the CPU in eval mode (``.config``)."""
    state = checkpoint.load(_export_path(path, CLASSIFIER), ("classifier", "classifier_checkpoint"))
    config = ClassifierConfig(**state["config"])
    model = AttributeClassifier(config.attributes, config.width, config.image_size)
    model.load_state_dict(state["model"] if state["kind"] == "classifier"
                          else state["classifier"])
    model.eval().config = config
    return model


# ----------------------------------------------------------------------------
# shipped checkpoints (package data)
# ----------------------------------------------------------------------------

PRETRAINED = {
    "stargan-gpu-celeba": {
        "kind": "generator", "file": GENERATOR,
        "what": "StarGAN face-attribute editor, 64 px, the 7 DEFAULT_ATTRIBUTES",
        "command": "python -m dfh_lib gan train --profile gpu --dataset celeba --device cuda "
                   "--steps 8000 --run-dir runs/gan/gpu-celeba",
        "data": "CelebA subset (first 5,000 aligned images): 4,506 training images, 10 % "
                "of the identities held out (seed 0)",
        "device": "NVIDIA H100 80GB HBM3, torch 2.11: 8,000 steps (batch 16): 159 s of training steps, 167 s for the whole command",
    },
    "masked-gan-cpu-celeba": {
        "kind": "generator", "file": GENERATOR,
        "what": "masked StarGAN face-attribute editor (attention mask, identity loss from "
                "the shipped face net, λ_id = 5, λ_mask = 0.1), 32 px, the 7 DEFAULT_ATTRIBUTES",
        "command": "python -m dfh_lib gan train --profile cpu --dataset celeba --masked "
                   "--lambda-id 5 --steps 20000 --run-dir runs/gan/cpu-celeba-masked-id5",
        "data": "CelebA subset (first 5,000 aligned images): 4,506 training images, 10 % "
                "of the identities held out (seed 0)",
        "device": "2-core CPU, 1 thread, torch 2.14: 20,000 steps (batch 16) in 3,315 s, "
                  "sharing the cores with three other jobs",
    },
    "attributes-gpu-celeba": {
        "kind": "classifier", "file": CLASSIFIER,
        "what": "independent attribute classifier, 64 px, the same 7 attributes",
        "command": "python -m dfh_lib gan classifier --profile gpu --dataset celeba "
                   "--device cuda --run-dir runs/gan/gpu-celeba-classifier",
        "data": "the same CelebA split as the generator (held-out identities unseen)",
        "device": "NVIDIA H100 80GB HBM3: 3,000 steps (batch 128) in 35 s; held-out "
                  "accuracy 0.900 mean",
    },
}


def _pretrained_entry(name: str) -> dict:
    if name not in PRETRAINED:
        raise ValueError(f"unknown pretrained checkpoint {name!r}; shipped: {sorted(PRETRAINED)}")
    return PRETRAINED[name]


def pretrained(name: str = "stargan-gpu-celeba"):
    """A checkpoint shipped with the library (``dfh_lib/pretrained/<name>``,
    package data, so it also loads from an installed package, e.g. on Colab):
    the :class:`Generator` or :class:`AttributeClassifier` of :data:`PRETRAINED`,
    on the CPU in eval mode, with ``.pretrained`` = its entry (command, data,
    device). Retrain it with the entry's ``command`` (a GPU: minutes)."""
    from importlib.resources import as_file, files

    entry = _pretrained_entry(name)
    resource = files("dfh_lib").joinpath("pretrained", name, entry["file"])
    with as_file(resource) as path:
        model = load_generator(path) if entry["kind"] == "generator" \
            else load_attribute_classifier(path)
    model.pretrained = {"name": name, **entry}
    return model


def pretrained_log(name: str = "stargan-gpu-celeba"):
    """The training log (``log.csv``) of a shipped checkpoint as a
    ``pandas.DataFrame`` indexed by step (window means of the loss terms)."""
    from importlib.resources import files

    import pandas as pd

    _pretrained_entry(name)
    with files("dfh_lib").joinpath("pretrained", name, LOG).open() as f:
        return pd.read_csv(f).set_index("step")


def pretrained_evaluation(name: str = "masked-gan-cpu-celeba") -> dict:
    """The evaluation shipped beside a checkpoint (``evaluation.json``, written
    by ``python -m dfh_lib gan evaluate``: its ``command``, ``profile``,
    ``seconds`` and per-editor ``summary``). Raises ValueError for a
    checkpoint shipped without one."""
    from importlib.resources import files

    _pretrained_entry(name)
    resource = files("dfh_lib").joinpath("pretrained", name, EVALUATION)
    if not resource.is_file():
        with_one = sorted(n for n in PRETRAINED
                          if files("dfh_lib").joinpath("pretrained", n, EVALUATION).is_file())
        raise ValueError(f"{name} ships no {EVALUATION}; shipped with one: {with_one}")
    return json.loads(resource.read_text())


# ----------------------------------------------------------------------------
# the split the command line (and so the shipped checkpoints) trained on
# ----------------------------------------------------------------------------

def _cli_dataset(name: str, profile: Profile, holdout: float, seed: int):
    """(train, test) of the CLI's dataset: CelebA from DFH_DATA_DIR, or synthfaces."""
    if name == "synthfaces":
        faces = load_synthfaces(profile.synth_identities, profile.synth_images_per_identity,
                                size=max(profile.synth_size, 32))
    else:
        faces = load_dataset(name)
    return split_by_identity(faces, holdout, seed)
