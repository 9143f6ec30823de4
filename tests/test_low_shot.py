"""Tests for dfh_lib.core.data.low_shot: k training images per identity, the
evaluation splits untouched, seeded and nested in k."""
import numpy as np
import pytest

from dfh_lib.core.data import FaceDataset, low_shot, retrieval_protocol


def splits_of(counts=(10, 8, 6, 7)):
    labels = np.repeat(np.arange(len(counts)), counts)
    images = np.arange(len(labels), dtype=np.uint8)[:, None, None, None].repeat(3, -1)
    images = np.broadcast_to(images, (len(labels), 4, 4, 3)).copy()
    faces = FaceDataset(images, labels, [f"p{i}" for i in range(len(counts))], "toy")
    return retrieval_protocol(faces, num_query=2, num_val=1, seed=0)


def test_keeps_k_per_identity_and_leaves_evaluation_alone():
    splits = splits_of()
    for k in (1, 2, 3):
        small = low_shot(splits, k, seed=0)
        counts = np.bincount(small.train.labels, minlength=4)
        assert counts.tolist() == [k] * 4
        assert np.isin(small.train.source_index, splits.train.source_index).all()
        assert small.query is splits.query and small.database is splits.database
        assert small.val_query is splits.val_query
        assert f"{k} training image" in small.description
    assert np.all(np.diff(low_shot(splits, 3).train.source_index) > 0)  # original order


def test_nested_in_k_seeded_and_capped_by_what_exists():
    splits = splits_of()
    kept = [set(low_shot(splits, k, seed=3).train.source_index) for k in (1, 2, 4)]
    assert kept[0] <= kept[1] <= kept[2]
    again = low_shot(splits, 2, seed=3).train.source_index
    assert set(again) == kept[1]
    others = {tuple(low_shot(splits, 1, seed=s).train.source_index) for s in range(6)}
    assert len(others) > 1  # the seed matters
    everything = low_shot(splits, 100)  # smallest identity has 3 training images
    assert len(everything.train) == len(splits.train)


@pytest.mark.parametrize("k", [0, -1, 1.5, True])
def test_rejects_bad_k(k):
    with pytest.raises(ValueError, match="positive int"):
        low_shot(splits_of(), k)
