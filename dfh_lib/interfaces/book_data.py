"""The dataset a chapter runs on, chosen the same way in every chapter.

``DFH_DATASET`` (or the ``dataset`` argument) names it; by default the book
uses LFW when a local copy exists and the embedded synthfaces otherwise, and
says so. The active profile caps its size (``tiny`` runs in seconds).
"""
from __future__ import annotations

import os

import numpy as np

from ..core.data import available, load_dataset
from ..core.data.dataset import FaceDataset, RetrievalSplits, retrieval_protocol
from ..core.profiles import get_profile

__all__ = ["PROTOCOLS", "book_dataset", "book_splits", "cap_dataset"]

# Per-identity query / validation-query counts of each dataset's protocol.
PROTOCOLS = {
    "lfw": dict(num_query=5, num_val=2),
    "synthfaces": dict(num_query=4, num_val=2),
    "orl": dict(num_query=2, num_val=1),
    "celeba": dict(num_query=1, num_val=1),
    "image_folder": dict(num_query=2, num_val=1),
}


def _default_dataset_name(root) -> str:
    name = os.environ.get("DFH_DATASET") or None
    if name:
        return name
    if available("lfw", root=root):
        return "lfw"
    print("No local LFW copy found (set DFH_DATA_DIR or run "
          "`python data_scripts/prepare_lfw.py`): using the embedded synthfaces.")
    return "synthfaces"


def cap_dataset(dataset: FaceDataset, max_identities: int | None = None,
                max_images_per_identity: int | None = None, seed: int = 0) -> FaceDataset:
    """Keep the ``max_identities`` identities with the most images (ties by
    label) and at most ``max_images_per_identity`` images of each (a seeded
    random choice), relabelled 0..C'-1."""
    counts = np.bincount(dataset.labels, minlength=dataset.num_identities)
    order = np.lexsort((np.arange(len(counts)), -counts))
    keep = np.sort(order[:max_identities] if max_identities else np.flatnonzero(counts))
    rng = np.random.default_rng(seed)
    index = []
    for label in keep:
        members = np.flatnonzero(dataset.labels == label)
        if max_images_per_identity and len(members) > max_images_per_identity:
            members = np.sort(rng.choice(members, max_images_per_identity, replace=False))
        index.append(members)
    sub = dataset.subset(np.sort(np.concatenate(index)))
    relabel = np.full(dataset.num_identities, -1)
    relabel[keep] = np.arange(len(keep))
    return FaceDataset(sub.images, relabel[sub.labels],
                       [dataset.identity_names[i] for i in keep], sub.name,
                       sub.attributes, sub.attribute_names, sub.source_index)


def book_dataset(profile=None, dataset: str | None = None, root=None) -> FaceDataset:
    """The chapter's face dataset (``FaceDataset``), capped by the profile."""
    profile = get_profile(profile)
    name = dataset or _default_dataset_name(root)
    if name == "synthfaces":
        faces = load_dataset("synthfaces", num_identities=profile.synth_identities,
                             images_per_identity=profile.synth_images_per_identity,
                             size=profile.synth_size)
    elif name == "lfw":
        faces = load_dataset("lfw", root=root, min_faces_per_person=profile.lfw_min_faces)
    else:
        faces = load_dataset(name, root=root)
    if not isinstance(faces, FaceDataset):
        raise ValueError(f"{name} comes with fixed splits: use book_splits()")
    return cap_dataset(faces, profile.max_identities, profile.max_images_per_identity)


def book_splits(profile=None, dataset: str | None = None, root=None, seed: int = 0,
                verbose: bool = True) -> RetrievalSplits:
    """The chapter's retrieval splits (train / val_query / query / database)."""
    name = dataset or _default_dataset_name(root)
    if name in ("facescrub", "youtube_faces"):
        splits = load_dataset(name, root=root)
    else:
        faces = book_dataset(profile, name, root)
        need = PROTOCOLS.get(name, PROTOCOLS["image_folder"])
        faces = faces.keep_identities(need["num_query"] + need["num_val"] + 1)
        splits = retrieval_protocol(faces, seed=seed, **need)
    if verbose:
        print(splits)
    return splits
