import numpy as np
import pytest

from dfh_lib.interfaces.book_data import cap_dataset
from dfh_lib.core.data.dataset import FaceDataset, retrieval_protocol


def make(counts=(10, 8, 6), size=8):
    labels = np.repeat(np.arange(len(counts)), counts)
    images = (np.arange(len(labels))[:, None, None, None] % 256 *
              np.ones((1, size, size, 3))).astype(np.uint8)
    attrs = (np.arange(len(labels))[:, None] % 2 == np.arange(2)).astype(np.uint8)
    return FaceDataset(images, labels, [f"id{i}" for i in range(len(counts))], "toy",
                       attrs, ["Smiling", "Eyeglasses"])


def test_protocol_is_disjoint_complete_and_seeded():
    ds = make()
    s = retrieval_protocol(ds, num_query=2, num_val=1, seed=0)
    ids = [set(part.source_index) for part in (s.train, s.val_query, s.query)]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    assert set.union(*ids) == set(range(len(ds)))
    assert set(s.database.source_index) == ids[0] | ids[1]
    assert np.all(np.diff(s.database.source_index) > 0)  # database keeps dataset order
    assert np.bincount(s.query.labels).tolist() == [2, 2, 2]
    again = retrieval_protocol(ds, num_query=2, num_val=1, seed=0)
    np.testing.assert_array_equal(again.query.source_index, s.query.source_index)
    other = retrieval_protocol(ds, num_query=2, num_val=1, seed=1)
    assert not np.array_equal(other.query.source_index, s.query.source_index)
    assert s.query.attributes.shape == (6, 2)


def test_protocol_refuses_identities_that_are_too_small():
    with pytest.raises(ValueError, match="keep_identities"):
        retrieval_protocol(make((10, 3)), num_query=2, num_val=1)


def test_dataset_validates_its_arrays():
    with pytest.raises(ValueError, match=r"\(N, H, W, 3\)"):
        FaceDataset(np.zeros((2, 4, 4), np.uint8), np.array([0, 0]), ["a"])
    with pytest.raises(ValueError, match="uint8"):
        FaceDataset(np.zeros((2, 4, 4, 3)), np.array([0, 0]), ["a"])
    with pytest.raises(ValueError, match="labels must lie"):
        FaceDataset(np.zeros((2, 4, 4, 3), np.uint8), np.array([0, 1]), ["a"])
    with pytest.raises(ValueError, match="attributes"):
        FaceDataset(np.zeros((2, 4, 4, 3), np.uint8), np.array([0, 0]), ["a"],
                    attributes=np.zeros((2, 3)), attribute_names=["x"])


def test_keep_identities_resized_concat_and_tensors():
    ds = make()
    kept = ds.keep_identities(7)
    assert kept.identity_names == ["id0", "id1"] and len(kept) == 18
    assert kept.resized(4).image_size == (4, 4)
    both = kept.concat(kept)
    assert len(both) == 36
    x, y = kept.to_tensors()
    assert x.shape == (18, 3, 8, 8) and float(x.max()) <= 1.0 and y.dtype.is_floating_point is False


def test_cap_dataset_keeps_largest_identities():
    capped = cap_dataset(make((3, 10, 8)), max_identities=2, max_images_per_identity=5)
    assert capped.identity_names == ["id1", "id2"]
    assert np.bincount(capped.labels).tolist() == [5, 5]
