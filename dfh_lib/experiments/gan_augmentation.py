"""What GAN edits do for low-shot face hashing: the labelled held-out faces
that neither shipped checkpoint saw, and the augmentation experiment (hashing
with 1, 2 or 5 training images per person, with and without classic and GAN
augmentation, at an equal budget of training images; low-shot LFW, see
:func:`dfh_lib.core.data.low_shot`).

Taught in Chapter 5 (book/05_gan_augmentation.ipynb).
"""
from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path
from typing import Sequence

import numpy as np

from ..core.data import available, low_shot
from ..core.data.dataset import FaceDataset
from ..core.profiles import Profile, get_profile
from ..analysis.gan_quality import edit_success_rate, identity_preservation
from ..engine.editing import augment
from ..engine.gan_training import _cli_dataset
from ..nn.gan import Generator
from .baselines import ExperimentResult, Variant, run_methods

__all__ = ["held_out_faces", "AUGMENTATIONS", "IMAGES_SEEN", "augmentation_experiment",
           "editor_quality"]


# ----------------------------------------------------------------------------
# held-out faces
# ----------------------------------------------------------------------------

# tiny (CI) keeps the held-out evaluation to this many faces
_HELD_OUT_CAP = {"tiny": 48}


def held_out_faces(profile: Profile | str | None = None, holdout: float = 0.1,
                   seed: int = 0) -> FaceDataset:
    """Labelled faces that neither shipped checkpoint saw: the held-out
    identities of CelebA (the split of ``python -m dfh_lib gan ...``: 494
    images of the 5,000-image subset) when CelebA is present in
    ``DFH_DATA_DIR``, else of the embedded synthfaces (which carry the same
    attribute names). The ``tiny`` profile keeps the first 48."""
    profile = get_profile(profile)
    name = "celeba" if available("celeba") else "synthfaces"
    if name == "synthfaces":
        print("No local CelebA copy (DFH_DATA_DIR): held-out faces from the embedded "
              "synthfaces.")
    test = _cli_dataset(name, profile, holdout, seed)[1]
    cap = _HELD_OUT_CAP.get(profile.name)
    return test.subset(np.arange(min(cap, len(test)))) if cap else test


# ----------------------------------------------------------------------------
# the augmentation experiment (low-shot LFW)
# ----------------------------------------------------------------------------

# condition -> (classic flip + crop augmentation, GAN-edited copies)
AUGMENTATIONS = {"none": (False, False), "classic": (True, False),
                 "gan": (False, True), "gan+classic": (True, True)}
# training images every run of the experiment sees, per profile (others: 400 x epochs)
IMAGES_SEEN = {"tiny": 200, "cpu": 12_000, "gpu": 40_000}


def _short_hash(images: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(images).tobytes()).hexdigest()[:8]


def augmentation_experiment(splits, generator: Generator | None = None, classifier=None,
                            shots: Sequence[int] = (1, 2, 5), bits=(12, 24, 36, 48),
                            profile: Profile | str | None = None, runs_dir=None,
                            method: str = "dfh", conditions: Sequence[str] = tuple(AUGMENTATIONS),
                            copies_per_image: int = 4, images_seen: int | None = None,
                            seed: int = 0, framing=None, progress: bool = False):
    """Hashing with few training images per person, with and without augmentation.

    For each ``k`` in ``shots`` the training set is
    :func:`dfh_lib.core.data.low_shot` ``(splits, k, seed)`` (query, database and
    validation unchanged), and ``method`` is trained through the one loop
    (:func:`~dfh_lib.experiments.baselines.run_methods`, train-or-load under
    ``runs_dir/k<k>/``) at every code length in ``bits`` under each condition
    of :data:`AUGMENTATIONS`:

    * ``none``: the k real images;
    * ``classic``: the same with random flips and padded random crops
      (``TrainConfig.augment``);
    * ``gan``: the k real images plus ``copies_per_image`` GAN edits of each
      (:func:`augment`: 1-2 random attribute flips relative to the image's
      attributes, its labels or ``classifier``'s predictions), labelled with
      the source identity;
    * ``gan+classic``: both.

    **Equal budget.** Every run sees the same number of training images,
    ``images_seen`` (default :data:`IMAGES_SEEN` of the profile: 12,000 in
    the cpu profile), so ``epochs = round(images_seen / len(train))``:
    a GAN-augmented set gets fewer epochs, not more updates. Validation
    (model selection) runs about 10 times per run.

    The edits are made once, for the largest k (the smaller k's training
    images are a subset, see :func:`~dfh_lib.core.data.low_shot`), and each k
    keeps the copies of its own images.

    Returns:
        :class:`~dfh_lib.experiments.baselines.ExperimentResult` with rows
        ``condition, k, bits, mAP, P@H<=2, ..., train_images, epochs,
        best_epoch, seconds``; ``codes`` and ``histories`` keyed by
        ``(condition, k, bits)``; ``gan_train``: the largest k's training
        set with its GAN copies (None without GAN conditions);
        ``images_seen``: the budget used.
    """
    unknown = [c for c in conditions if c not in AUGMENTATIONS]
    if unknown or not conditions:
        raise ValueError(f"conditions must be some of {list(AUGMENTATIONS)}; "
                         f"got {list(conditions)}")
    shots = sorted({int(k) for k in shots})
    if not shots or shots[0] < 1:
        raise ValueError(f"shots must be positive ints; got {shots}")
    wants_gan = any(AUGMENTATIONS[c][1] for c in conditions)
    if wants_gan and generator is None:
        raise ValueError(f"conditions {list(conditions)} need a generator (e.g. "
                         f"dfh.gan.pretrained())")
    profile = get_profile(profile)
    images_seen = images_seen or IMAGES_SEEN.get(profile.name, 400 * profile.epochs)
    pool = tag = None
    if wants_gan:
        largest = low_shot(splits, shots[-1], seed).train
        pool = augment(largest, generator, copies_per_image, seed=seed, framing=framing,
                       classifier=classifier)
        tag = _short_hash(pool.images[len(largest):])  # names the runs of these edits
    result = ExperimentResult()
    result.gan_train, result.images_seen = pool, images_seen
    for k in shots:
        small = low_shot(splits, k, seed)
        for condition in conditions:
            classic, gan = AUGMENTATIONS[condition]
            train = small.train
            if gan:
                train = pool.subset(np.isin(pool.source_index, small.train.source_index))
            split_k = small if train is small.train else \
                replace(small, train=train, val_database=small.train,
                        description=small.description + f"; + {copies_per_image} GAN edits "
                                                        f"per image")
            epochs = max(1, round(images_seen / len(train)))
            label = condition if not gan else f"{condition}-{copies_per_image}x{tag}"
            runs = None if runs_dir is None else Path(runs_dir) / f"k{k}"
            part = run_methods(split_k, (Variant(label, method),), bits, profile, runs,
                               progress, epochs=epochs, eval_every=max(1, epochs // 10),
                               augment=classic)
            for row in part.rows:
                key = (condition, k, row["bits"])
                result.rows.append({"condition": condition, "k": k,
                                    **{n: v for n, v in row.items() if n != "method"},
                                    "train_images": len(train), "epochs": epochs})
                result.codes[key] = part.codes[(label, row["bits"])]
                result.histories[key] = part.histories[(label, row["bits"])]
    return result



# ----------------------------------------------------------------------------
# an editor's quality in one table
# ----------------------------------------------------------------------------

def editor_quality(editors: dict[str, Generator], judge, hasher, face_net, splits,
                   held_out: FaceDataset) -> tuple[dict, dict]:
    """Each editor judged three ways: the independent attribute classifier
    ``judge`` reads its edits of ``held_out`` faces (edit success, mean over
    attributes); a hash network ``hasher`` and the face embedding network
    ``face_net`` (cosine) search ``splits.database`` with edited
    ``splits.query`` faces (identity kept at rank 1, of the queries right
    before the edit: with no attribute asked to change, and pooled over
    single-attribute flips; the queries' attributes are the judge's reading).

    Returns ``(summary, details)``: ``summary[editor]`` a dict of the
    measures (plus the resize-only control for the hasher), ``details``
    the per-attribute success and identity rows."""
    summary, details = {}, {}
    for name, G in editors.items():
        success = edit_success_rate(judge, G, held_out)
        by_hash = identity_preservation(hasher, G, splits, classifier=judge)
        by_net = identity_preservation(face_net, G, splits, classifier=judge, ranking="cosine")
        row = {r["attribute"]: r for r in by_hash}
        net_row = {r["attribute"]: r for r in by_net}
        summary[name] = {
            "edit_success": success["mean"],
            "kept_hash_no_edit": row["(no flip)"]["kept"],
            "kept_hash_one_flip": row["all"]["kept"],
            "kept_face_net_no_edit": net_row["(no flip)"]["kept"],
            "kept_face_net_one_flip": net_row["all"]["kept"],
            "face_net_cosine_one_flip": net_row["all"]["cosine_to_original"],
            "kept_hash_resize_only": row["(resize only)"]["kept"],
            "top1_hash_original": row["all"]["top1_original"],
            "top1_face_net_original": net_row["all"]["top1_original"],
        }
        details[name] = {"edit_success": success, "hasher": by_hash, "face_net": by_net}
    return summary, details
