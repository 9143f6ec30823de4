"""Who is seen where: LFW people split by role, so the face embedding network
is judged on people it never saw.

LFW's 5,749 people are split by their number of images:

* **benchmark** (>= 20 images, 62 people): the hashing benchmark of the book
  (:func:`~dfh_lib.core.data.load_lfw` with ``min_faces_per_person=20``);
* **open set** (10-19 images, 96 people, 1,301 images): never trained on by
  anything; query/database retrieval of unseen faces;
* **verification test** (every person of ``pairs.txt`` folds 8-10): the
  official pairs of those folds, person-disjoint from the other folds;
* **training** (every other person with fewer than 10 images; those with one
  image only where asked), minus a seeded handful of **validation** people
  (>= 4 images) on whom the network is selected.

So the embedding network trains on people disjoint from every evaluation set:
the benchmark, the open set, the verification test folds and its own
validation people.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from .dataset import FaceDataset, RetrievalSplits, retrieval_protocol
from .lfw import LfwPairs, lfw_image_counts, load_lfw_pairs, load_lfw_people

__all__ = ["BENCHMARK_MIN_IMAGES", "OPEN_SET_IMAGES", "VERIFICATION_TEST_FOLDS",
           "OpenSet", "FaceNetProtocol", "lfw_people_roles", "face_net_protocol", "open_set_splits",
           "stand_in_protocol"]

#: people with at least this many images form the hashing benchmark
BENCHMARK_MIN_IMAGES = 20
#: people with this many images (inclusive) are the open set
OPEN_SET_IMAGES = (10, 19)
#: pairs.txt folds whose people never enter training
VERIFICATION_TEST_FOLDS = (8, 9, 10)


@dataclass(frozen=True)
class OpenSet:
    """Queries and database of people outside every training set (evaluated
    like a benchmark's ``query`` / ``database``)."""

    query: FaceDataset
    database: FaceDataset
    description: str = "open set"

    def __repr__(self) -> str:
        return (f"OpenSet({self.description}: {self.query.num_identities} people, "
                f"query {len(self.query)}, database {len(self.database)})")


@dataclass(frozen=True)
class FaceNetProtocol:
    """The embedding network's data.

    ``splits``: ``train`` = training people; ``val_query`` ranked against
    ``val_database`` = validation people (model selection); ``query`` against
    ``database`` = open-set people (reported, never used for selection).
    ``pairs``: the verification test folds. ``roles``: people (folder names)
    per role.
    """

    splits: RetrievalSplits
    pairs: LfwPairs
    roles: dict[str, list[str]]

    def __repr__(self) -> str:
        sizes = ", ".join(f"{k} {len(v)}" for k, v in self.roles.items())
        return (f"FaceNetProtocol(people: {sizes}; train {len(self.splits.train)} images, "
                f"validation {len(self.splits.val_query)} queries / "
                f"{len(self.splits.val_database)} database, open set "
                f"{len(self.splits.query)} queries / {len(self.splits.database)} database, "
                f"{len(self.pairs)} test pairs in folds {sorted(self.pairs.people)})")


def lfw_people_roles(counts: dict[str, int], pairs_people: dict[int, frozenset[str]],
                     num_validation: int = 60, seed: int = 0,
                     test_folds=VERIFICATION_TEST_FOLDS,
                     min_train_images: int = 2) -> dict[str, list[str]]:
    """Split LFW's people (``counts``: images per folder name) into the roles
    above; ``pairs_people``: the people of each ``pairs.txt`` fold.
    ``min_train_images=1`` also trains on people with a single image (the
    validation people are the same either way)."""
    if min_train_images not in (1, 2):
        raise ValueError(f"min_train_images must be 1 or 2; got {min_train_images!r}")
    test_people = frozenset().union(*(pairs_people[f] for f in test_folds))
    low, high = OPEN_SET_IMAGES
    benchmark = [p for p, c in counts.items() if c >= BENCHMARK_MIN_IMAGES]
    open_set = [p for p, c in counts.items() if low <= c <= high]
    pool = [p for p, c in counts.items()
            if min_train_images <= c < low and p not in test_people]
    eligible = [p for p in pool if counts[p] >= 4]
    rng = np.random.default_rng(seed)
    validation = sorted(rng.choice(eligible, size=min(num_validation, len(eligible)),
                                   replace=False).tolist())
    chosen = set(validation)
    return {"train": [p for p in pool if p not in chosen], "validation": validation,
            "open_set": open_set, "benchmark": benchmark,
            "verification_test": sorted(test_people)}


def _query_split(faces: FaceDataset, per_identity: int, seed: int):
    """``(query, rest)``: the protocol's query draw with no validation queries."""
    split = retrieval_protocol(faces, num_query=per_identity, num_val=0, seed=seed)
    return split.query, split.database


def open_set_splits(root: str | os.PathLike | None = None, queries_per_person: int = 3,
                    seed: int = 0) -> OpenSet:
    """The open-set people (LFW, 10-19 images each): ``queries_per_person``
    seeded queries per person, the rest the database."""
    counts = lfw_image_counts(root)
    low, high = OPEN_SET_IMAGES
    faces = load_lfw_people([p for p, c in counts.items() if low <= c <= high], root)
    query, database = _query_split(faces, queries_per_person, seed)
    return OpenSet(query, database, f"LFW people with {low}-{high} images, in no training "
                                    f"set, {queries_per_person} queries each")


def face_net_protocol(root: str | os.PathLike | None = None, num_validation: int = 60,
                      seed: int = 0, min_train_images: int = 2) -> FaceNetProtocol:
    """The embedding network's training, validation, open-set and
    verification data (real LFW files; decoded once, then cached)."""
    counts = lfw_image_counts(root)
    pairs = load_lfw_pairs(root)
    roles = lfw_people_roles(counts, pairs.people, num_validation, seed,
                             min_train_images=min_train_images)
    train = load_lfw_people(roles["train"], root)
    val_query, val_database = _query_split(load_lfw_people(roles["validation"], root), 2, seed)
    open_set = open_set_splits(root, seed=seed)
    splits = RetrievalSplits(
        train=train, val_query=val_query, query=open_set.query,
        database=open_set.database, seed=seed,
        description=(f"LFW people outside the benchmark, the open set and pairs folds "
                     f"{VERIFICATION_TEST_FOLDS[0]}-{VERIFICATION_TEST_FOLDS[-1]}: train "
                     f"{len(roles['train'])} people, validation {len(roles['validation'])} "
                     f"people; open set {len(roles['open_set'])} people"),
        val_database=val_database)
    return FaceNetProtocol(splits, pairs.subset(VERIFICATION_TEST_FOLDS), roles)


def stand_in_protocol(seed: int = 0) -> FaceNetProtocol:
    """The protocol's shape on generated faces (synthfaces, 60 people x 10
    images), for running the code where LFW is absent: 30 training people,
    10 validation people, 20 open-set people, and 3 folds of 20 same + 20
    different pairs drawn from the open-set people (numbers mean nothing)."""
    from .synthfaces import load_synthfaces

    faces = load_synthfaces(num_identities=60, images_per_identity=10, size=64, seed=seed)
    people = lambda lo, hi: faces.subset((faces.labels >= lo) & (faces.labels < hi))
    val_query, val_database = _query_split(people(30, 40), 2, seed)
    open_faces = people(40, 60)
    query, database = _query_split(open_faces, 3, seed)
    rng = np.random.default_rng(seed)
    first, second, same, fold = [], [], [], []
    for f in VERIFICATION_TEST_FOLDS:
        for is_same in (True, False):
            for _ in range(20):
                a = rng.integers(len(open_faces))
                pool = np.flatnonzero((open_faces.labels == open_faces.labels[a]) == is_same)
                b = rng.choice(pool[pool != a])
                first.append(a), second.append(b), same.append(is_same), fold.append(f)
    pairs = LfwPairs(open_faces.images[first], open_faces.images[second], np.array(same),
                     np.array(fold), {f: frozenset() for f in VERIFICATION_TEST_FOLDS})
    names = lambda lo, hi: [faces.identity_names[i] for i in range(lo, hi)]
    splits = RetrievalSplits(train=people(0, 30), val_query=val_query, query=query,
                             database=database, seed=seed,
                             description="synthfaces stand-in: 30 training, 10 validation, "
                                         "20 open-set people", val_database=val_database)
    return FaceNetProtocol(splits, pairs, {"train": names(0, 30), "validation": names(30, 40),
                                           "open_set": names(40, 60), "benchmark": [],
                                           "verification_test": names(40, 60)})
