"""Run profiles: the only place where ``tiny``, ``cpu`` and ``gpu`` runs differ.

A profile changes configuration, never code. ``tiny`` is for CI (each
chapter in seconds to a couple of minutes on 2 CPU cores), ``cpu`` for a
laptop (minutes), ``gpu`` for Colab (the full recipe).

The active profile comes from the ``DFH_PROFILE`` environment variable (the
Makefile and nbval set it), else ``gpu`` when CUDA is available, else ``cpu``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, replace

__all__ = ["Profile", "PROFILES", "get_profile"]


@dataclass(frozen=True)
class Profile:
    """Run-size settings shared by every chapter.

    Attributes:
        name: ``"tiny"``, ``"cpu"`` or ``"gpu"``.
        bits: code lengths K evaluated by the chapters.
        image_size: network input (height, width).
        network: default hash network (see :mod:`dfh_lib.nn.models`): in
            ``tiny``/``cpu`` a hash head on the shared face embedding
            (:mod:`dfh_lib.engine.backbone`), in ``gpu`` the same fine-tuned.
        multilayer_network: the network of the multi-layer student (heads at
            inner depths, Chapters 6-7): in ``tiny``/``cpu`` the same hash
            head on the shared face embedding as every other method (an
            extra head on its hidden layer), in ``gpu`` the same fine-tuned.
        epochs / batch_size / lr / eval_every: training-loop settings.
        steps: the training budget in optimisation steps, where set: a run
            gets ``ceil(steps / batches per epoch)`` epochs on its training
            set (so budgets do not shrink or grow with the dataset); None
            keeps ``epochs``. Setting ``epochs`` by :meth:`with_overrides`
            clears it.
        backbone_steps: optimisation steps of the shared face embedding
            network (:mod:`dfh_lib.engine.backbone`).
        face_net_steps: optimisation steps of the face embedding network
            trained on people outside every evaluation set
            (:mod:`dfh_lib.engine.face_net`).
        lfw_min_faces: LFW identities kept (``min_faces_per_person``).
        max_identities / max_images_per_identity: caps (None = all) that
            keep ``tiny`` fast.
        synth_identities / synth_images_per_identity / synth_size: the
            embedded synthfaces dataset used when no real data is present.
        amp: mixed precision on CUDA.
        seed: the training seed of every run (weights, batch order); the
            data split keeps its own seed, so runs with another ``seed``
            measure training noise on the same queries.
        seeds: the training seeds of the chapters' headline tables (three in
            ``cpu``/``gpu``; one in ``tiny``, which only checks the code runs).
    """

    name: str
    bits: tuple[int, ...] = (12, 24, 36, 48)
    image_size: tuple[int, int] = (32, 32)
    network: str = "ddh"
    multilayer_network: str = "ddh"
    epochs: int = 30
    steps: int | None = None
    backbone_steps: int = 1200
    face_net_steps: int = 2000
    batch_size: int = 128
    lr: float = 1e-3
    eval_every: int = 5
    lfw_min_faces: int = 20
    max_identities: int | None = None
    max_images_per_identity: int | None = None
    synth_identities: int = 100
    synth_images_per_identity: int = 20
    synth_size: int = 64
    amp: bool = False
    num_workers: int = 0
    seed: int = 0
    seeds: tuple[int, ...] = (0, 1, 2)

    def with_overrides(self, **changes) -> "Profile":
        """A copy with some fields changed (e.g. ``epochs=5``)."""
        if "epochs" in changes and "steps" not in changes:
            changes["steps"] = None  # an explicit epoch budget replaces the step budget
        unknown = set(changes) - set(self.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown profile fields {sorted(unknown)}; "
                             f"known: {sorted(self.__dataclass_fields__)}")
        return replace(self, **changes)


PROFILES = {
    # CI: the shortest and the longest code only, so every chapter's grid stays small
    # lr 3e-3: the best of the same-budget search (3e-4 to 3e-3) for most
    # methods on the frozen embedding (dfh_lib/reference_results/tuning-cpu-lfw.csv)
    "tiny": Profile(name="tiny", bits=(12, 48), image_size=(64, 48), network="face_embedding",
                    multilayer_network="face_embedding", lr=3e-3, epochs=2, backbone_steps=10,
                    face_net_steps=10,
                    batch_size=64, eval_every=1,
                    max_identities=20, max_images_per_identity=20, seeds=(0,),
                    synth_identities=20,
                    synth_images_per_identity=12, synth_size=32),
    "cpu": Profile(name="cpu", image_size=(64, 48), network="face_embedding", steps=1500,
                   multilayer_network="face_embedding", lr=3e-3,
                   batch_size=128, eval_every=10),
    "gpu": Profile(name="gpu", image_size=(64, 48), network="face_embedding_ft", steps=6000,
                   multilayer_network="face_embedding_ft", backbone_steps=3000,
                   face_net_steps=8000,
                   batch_size=256, eval_every=10, synth_size=64,
                   amp=True, num_workers=2),
}


def get_profile(name: str | None = None) -> Profile:
    """The profile ``name``, else ``$DFH_PROFILE``, else gpu/cpu by CUDA."""
    if name is None:
        name = os.environ.get("DFH_PROFILE")
    if name is None:
        try:
            import torch
            name = "gpu" if torch.cuda.is_available() else "cpu"
        except ImportError:
            name = "cpu"
    if isinstance(name, Profile):
        return name
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; choose one of {sorted(PROFILES)} "
                         "(or set DFH_PROFILE)")
    return PROFILES[name]
