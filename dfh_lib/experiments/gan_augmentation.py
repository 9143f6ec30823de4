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
from typing import Sequence

import numpy as np
import pandas as pd

from ..core.data import available, low_shot
from ..core.data.dataset import FaceDataset
from ..core.profiles import Profile, get_profile
from ..analysis.gan_quality import edit_success_rate, identity_preservation
from ..engine.editing import augment
from ..engine.gan_training import _cli_dataset
from ..engine.train import method_config
from ..nn.gan import Generator
from .benchmark import evaluate_run, paired_difference
from .result import ExperimentResult
from .runs import Variant, run_folder, train_or_load

__all__ = ["held_out_faces", "AUGMENTATIONS", "images_seen_budget", "augmentation_experiment",
           "augmentation_differences", "editor_quality"]


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


def images_seen_budget(profile: Profile | str | None = None) -> int:
    """Training images every run of the augmentation experiment sees: the
    profile's step budget times its batch (cpu: 1,500 x 128 = 192,000, the
    budget of every hash head in the book), else 400 x its epochs (tiny)."""
    profile = get_profile(profile)
    return profile.steps * profile.batch_size if profile.steps else 400 * profile.epochs


def _short_hash(images: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(images).tobytes()).hexdigest()[:8]


def augmentation_experiment(splits, generator: Generator | None = None, classifier=None,
                            shots: Sequence[int] = (1, 2, 5), bits=(12, 48),
                            profile: Profile | str | None = None, runs_dir=None,
                            method: str = "dfh", conditions: Sequence[str] = tuple(AUGMENTATIONS),
                            copies_per_image: int = 4, images_seen: int | None = None,
                            seeds: Sequence[int] = (0,), backbone=None, framing=None,
                            progress: bool = False) -> ExperimentResult:
    """Hashing with few training images per person, with and without augmentation.

    For each seed and each ``k`` in ``shots`` the training set is
    :func:`dfh_lib.core.data.low_shot` ``(splits, k, seed)`` (query, database and
    validation unchanged), and ``method`` is trained through the one loop
    (train-or-load under ``runs_dir/seed<s>/k<k>/``) at every code length in
    ``bits`` under each condition of :data:`AUGMENTATIONS`:

    * ``none``: the k real images, each as it is (on a frozen embedding
      network: its one unshifted view, ``TrainConfig.views = 1``);
    * ``classic``: the same with random flips and shifts (``TrainConfig.augment``;
      on a frozen embedding network, one of its 8 precomputed flipped or
      shifted views per step);
    * ``gan``: the k real images plus ``copies_per_image`` GAN edits of each
      (:func:`augment`: 1-2 random attribute flips relative to the image's
      attributes, its labels or ``classifier``'s predictions), labelled with
      the source identity;
    * ``gan+classic``: both.

    ``backbone``: the face embedding network (file or shared-backbone id)
    whose frozen trunk the hash heads sit on, e.g. the shipped face net,
    trained on other people; None: the method's own network of the profile.

    **Equal budget.** Every run sees the same number of training images,
    ``images_seen`` (default :func:`images_seen_budget`), so ``epochs =
    round(images_seen / len(train))``: a GAN-augmented set gets fewer epochs,
    not more updates. Validation (model selection) runs about 10 times per run.

    The edits are made once per seed, for the largest k (the smaller k's
    training images are a subset), and each k keeps the copies of its own images.

    Returns:
        :class:`~dfh_lib.experiments.result.ExperimentResult` with rows
        ``condition, k, bits, seed, mAP, float_mAP, ratio, P@H<=2, undecided,
        train_images, epochs, best_epoch, converged, seconds``;
        ``histories`` and ``aps`` (per-query APs, for
        :func:`augmentation_differences`) keyed by ``(condition, k, bits,
        seed)``; ``gan_train``: the first seed's largest-k training set with
        its GAN copies (None without GAN conditions); ``images_seen``.
    """
    unknown = [c for c in conditions if c not in AUGMENTATIONS]
    if unknown or not conditions:
        raise ValueError(f"conditions must be some of {list(AUGMENTATIONS)}; "
                         f"got {list(conditions)}")
    shots = sorted({int(k) for k in shots})
    if not shots or shots[0] < 1:
        raise ValueError(f"shots must be positive ints; got {shots}")
    if not seeds:
        raise ValueError("seeds must name at least one seed")
    wants_gan = any(AUGMENTATIONS[c][1] for c in conditions)
    if wants_gan and generator is None:
        raise ValueError(f"conditions {list(conditions)} need a generator (e.g. "
                         f"dfh.gan.pretrained())")
    profile = get_profile(profile)
    images_seen = images_seen or images_seen_budget(profile)
    result = ExperimentResult()
    result.aps, result.gan_train, result.images_seen = {}, None, images_seen
    # a frozen trunk's heads train on precomputed views: one view = no augmentation
    frozen = method_config(method, max(bits), profile).network == "face_embedding"
    for seed in seeds:
        pool = tag = None
        if wants_gan:
            largest = low_shot(splits, shots[-1], seed).train
            pool = augment(largest, generator, copies_per_image, seed=seed, framing=framing,
                           classifier=classifier)
            tag = _short_hash(pool.images[len(largest):])  # names the runs of these edits
            if result.gan_train is None:
                result.gan_train = pool
        for k in shots:
            small = low_shot(splits, k, seed)
            for condition in conditions:
                classic, gan = AUGMENTATIONS[condition]
                train = pool.subset(np.isin(pool.source_index, small.train.source_index)) \
                    if gan else small.train
                split_k = small if not gan else replace(
                    small, train=train, val_database=small.train,
                    description=small.description + f"; + {copies_per_image} GAN edits per image")
                epochs = max(1, round(images_seen / len(train)))
                trunk = {} if backbone is None else {"backbone": str(backbone)}
                if frozen and not classic:
                    trunk["views"] = 1
                label = condition if not gan else f"{condition}-{copies_per_image}x{tag}"
                for length in bits:
                    run = train_or_load(
                        Variant(label, method), split_k, length, profile,
                        run_folder(runs_dir, f"seed{seed}", f"k{k}"), progress=progress,
                        seed=seed, epochs=epochs, eval_every=max(1, epochs // 10),
                        augment=classic, **trunk)
                    numbers = evaluate_run(run, split_k)
                    key = (condition, k, length, seed)
                    result.aps[key] = numbers.pop("ap")
                    result.rows.append({"condition": condition, "k": k, "bits": length,
                                        "seed": seed, **numbers, "train_images": len(train),
                                        "epochs": epochs, "best_epoch": run.history.best_epoch,
                                        "seconds": round(run.seconds, 1)})
                    result.histories[key] = run.history
    return result


def augmentation_differences(result: ExperimentResult, better: str, than: str
                             ) -> pd.DataFrame:
    """Paired differences ``better`` − ``than`` (conditions of one
    :func:`augmentation_experiment`) per k and code length, in mAP / 100:
    the same queries, the same seeds (the same k images per person and the
    same start), :func:`~dfh_lib.experiments.benchmark.paired_difference`."""
    rows = []
    for k, bits in sorted({(k, b) for (c, k, b, s) in result.aps if c == better}):
        seeds = sorted(s for (c, kk, b, s) in result.aps if (c, kk, b) == (better, k, bits)
                       and (than, k, bits, s) in result.aps)
        if seeds:
            a = np.stack([result.aps[(better, k, bits, s)] for s in seeds])
            b = np.stack([result.aps[(than, k, bits, s)] for s in seeds])
            rows.append({"k": k, "bits": bits, **paired_difference(a, b)})
    return pd.DataFrame(rows)


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
