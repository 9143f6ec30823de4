"""The dataset a chapter runs on, chosen the same way in every chapter.

``DFH_DATASET`` (or the ``dataset`` argument) names it; by default the book
uses LFW when a local copy exists and the embedded synthfaces otherwise, and
says so. On Colab (or anywhere with ``DFH_FETCH=1``) a missing LFW is first
fetched into the data folder (``python -m dfh_lib fetch lfw``, ~230 MB, once);
synthfaces remain the fallback when that fails (offline, checksum). The
active profile caps its size (``tiny`` runs in seconds).
"""
from __future__ import annotations

import os
import sys

import numpy as np

from ..core.data import available, data_dir, load_dataset
from ..core.data.fetch import fetch_dataset
from ..core.data.dataset import FaceDataset, RetrievalSplits, retrieval_protocol
from ..core.profiles import get_profile

__all__ = ["PROTOCOLS", "book_dataset", "book_splits", "cap_dataset", "book_face_net_protocol"]

# Per-identity query / validation-query counts of each dataset's protocol.
PROTOCOLS = {
    "lfw": dict(num_query=10, num_val=3),
    "synthfaces": dict(num_query=4, num_val=2),
    "orl": dict(num_query=2, num_val=1),
    "celeba": dict(num_query=1, num_val=1),
    "image_folder": dict(num_query=2, num_val=1),
}


def _auto_fetch_reason() -> str | None:
    """Why a missing LFW may be downloaded now, or None (then never).

    ``DFH_FETCH=1`` allows it anywhere, ``DFH_FETCH=0`` forbids it; unset,
    only on Colab, which has internet and a fresh disk each session. Laptops,
    CI and tests stay offline unless asked: a chapter never starts a 230 MB
    download silently.
    """
    flag = os.environ.get("DFH_FETCH", "").strip().lower()
    if flag in ("1", "true", "yes"):
        return "DFH_FETCH=1"
    if flag in ("0", "false", "no"):
        return None
    return "Colab runtime" if "google.colab" in sys.modules else None


def _default_dataset_name(root) -> str:
    name = os.environ.get("DFH_DATASET") or None
    if name:
        return name
    if available("lfw", root=root):
        return "lfw"
    folder, reason = data_dir(root), _auto_fetch_reason()
    if reason is None:
        print(f"No local LFW copy in {folder} (fetch it with `python -m dfh_lib fetch lfw`, "
              f"or set DFH_DATA_DIR): using the embedded synthfaces.")
        return "synthfaces"
    print(f"No local LFW copy in {folder}: fetching it ({reason}; ~230 MB, once; "
          f"DFH_FETCH=0 skips this) ...")
    try:
        fetch_dataset("lfw", folder)
    except Exception as exc:  # offline, HTTP error, checksum, disk: the chapter still runs
        print(f"Fetching LFW failed ({type(exc).__name__}: {' '.join(str(exc).split())}): "
              f"using the embedded synthfaces.")
        return "synthfaces"
    print(f"Using LFW, fetched into {folder}.")
    return "lfw"


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


def book_dataset(profile=None, dataset: str | None = None, root=None,
                 **load_kwargs) -> FaceDataset:
    """The chapter's face dataset (``FaceDataset``), capped by the profile.

    ``root`` is the data folder (default ``$DFH_DATA_DIR``); for
    ``"image_folder"`` it is the ``<identity>/<image>`` folder itself, read at
    the profile's ``image_size`` (photos of any size; the network input).
    ``load_kwargs`` go to the dataset's loader (e.g. ``detect=True`` for
    ``"image_folder"``: cut each photo to its face).
    """
    profile = get_profile(profile)
    name = dataset or _default_dataset_name(root)
    if name == "synthfaces":
        faces = load_dataset("synthfaces", num_identities=profile.synth_identities,
                             images_per_identity=profile.synth_images_per_identity,
                             size=profile.synth_size, **load_kwargs)
    elif name == "lfw":
        faces = load_dataset("lfw", root=root, min_faces_per_person=profile.lfw_min_faces,
                             **load_kwargs)
    elif name == "image_folder":
        faces = load_dataset(name, root=root, size=profile.image_size, **load_kwargs)
    else:
        faces = load_dataset(name, root=root, **load_kwargs)
    if not isinstance(faces, FaceDataset):
        raise ValueError(f"{name} comes with fixed splits: use book_splits()")
    return cap_dataset(faces, profile.max_identities, profile.max_images_per_identity)


def book_splits(profile=None, dataset: str | None = None, root=None, seed: int = 0,
                verbose: bool = True, **load_kwargs) -> RetrievalSplits:
    """The chapter's retrieval splits (train / val_query / query / database);
    ``root`` and ``load_kwargs`` as in :func:`book_dataset`."""
    name = dataset or _default_dataset_name(root)
    if name in ("facescrub", "youtube_faces"):
        splits = load_dataset(name, root=root, **load_kwargs)
    else:
        faces = book_dataset(profile, name, root, **load_kwargs)
        need = PROTOCOLS.get(name, PROTOCOLS["image_folder"])
        faces = faces.keep_identities(need["num_query"] + need["num_val"] + 1)
        splits = retrieval_protocol(faces, seed=seed, **need)
    if verbose:
        print(splits)
    return splits


def book_face_net_protocol(root=None, verbose: bool = True):
    """Chapter 9's people roles: LFW's (:func:`face_net_protocol`) where LFW
    is present, else (with a note) generated faces in the same shape, so the
    chapter's code still runs."""
    from ..core.data.lfw_protocols import face_net_protocol, stand_in_protocol

    if available("lfw", root=root):
        protocol = face_net_protocol(root)
    else:
        print(f"No local LFW copy in {data_dir(root)}: generated faces stand in for the "
              f"people roles (the numbers below mean nothing; `python -m dfh_lib fetch lfw`).")
        protocol = stand_in_protocol()
    if verbose:
        print(protocol)
    return protocol
