"""SynthFaces: deterministic, stable across dataset sizes, labelled with
meaningful attributes, and identities that are separable but not trivially."""
import numpy as np
import pytest
from scipy.spatial.distance import cdist

from dfh_lib.core.data.dataset import FaceDataset, retrieval_protocol
from dfh_lib.core.data.synthfaces import ATTRIBUTE_NAMES, MIN_SIZE, load_synthfaces

IDENTITY_LEVEL = ["Bangs", "Black_Hair", "Blond_Hair", "Brown_Hair", "Gray_Hair", "Male",
                  "Mustache", "No_Beard"]
IMAGE_LEVEL = ["Eyeglasses", "Mouth_Slightly_Open", "Smiling", "Wearing_Hat"]


@pytest.fixture(scope="module")
def many():
    """100 identities x 2 images at the smallest size: cheap, but enough
    identities for attribute frequencies."""
    return load_synthfaces(100, 2, size=MIN_SIZE)


@pytest.fixture(scope="module")
def gallery():
    """20 identities x 8 images at 32 px."""
    return load_synthfaces(20, 8, size=32)


@pytest.mark.parametrize("size", [32, 64, MIN_SIZE, 41])
def test_shapes_and_types(size):
    ds = load_synthfaces(3, 2, size=size)
    assert isinstance(ds, FaceDataset) and ds.name == "synthfaces"
    assert ds.images.shape == (6, size, size, 3) and ds.images.dtype == np.uint8
    assert ds.labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert list(ds.identity_names) == ["synth_000", "synth_001", "synth_002"]
    assert ds.attributes.shape == (6, len(ATTRIBUTE_NAMES)) and ds.attributes.dtype == np.uint8
    assert list(ds.attribute_names) == list(ATTRIBUTE_NAMES)
    assert ds.images.std() > 20  # a drawn picture, not a flat colour


def test_same_seed_same_bytes_other_seed_other_faces():
    a, b = load_synthfaces(3, 2, 32, seed=5), load_synthfaces(3, 2, 32, seed=5)
    assert a.images.tobytes() == b.images.tobytes()
    np.testing.assert_array_equal(a.attributes, b.attributes)
    c = load_synthfaces(3, 2, 32, seed=6)
    per_image = np.abs(a.images.astype(int) - c.images.astype(int)).mean(axis=(1, 2, 3))
    assert (per_image > 10).all()


def test_image_j_of_identity_i_does_not_depend_on_dataset_size():
    # 150 images span two render batches, so image (9, j) is drawn beside
    # different images in the two datasets
    big = load_synthfaces(10, 15, size=MIN_SIZE)
    small = load_synthfaces(11, 3, size=MIN_SIZE)
    shape = (MIN_SIZE, MIN_SIZE, 3)
    np.testing.assert_array_equal(big.images.reshape(10, 15, *shape)[:, :3],
                                  small.images.reshape(11, 3, *shape)[:10])
    np.testing.assert_array_equal(big.attributes.reshape(10, 15, -1)[:, :3],
                                  small.attributes.reshape(11, 3, -1)[:10])


def test_attributes_are_celeba_names_with_useful_frequencies(many):
    assert sorted(ATTRIBUTE_NAMES) == sorted(IDENTITY_LEVEL + IMAGE_LEVEL)
    freq = dict(zip(many.attribute_names, many.attributes.mean(axis=0)))
    assert all(0.05 <= f <= 0.95 for f in freq.values()), freq
    hair = many.attributes[:, [ATTRIBUTE_NAMES.index(n) for n in
                               ("Black_Hair", "Blond_Hair", "Brown_Hair", "Gray_Hair")]]
    assert hair.sum(axis=1).max() == 1  # one hair colour at most (red has no CelebA name)


def test_identity_attributes_are_constant_and_image_attributes_vary(gallery):
    per_identity = gallery.attributes.reshape(20, 8, -1)
    varies = (per_identity.min(axis=1) != per_identity.max(axis=1)).any(axis=0)
    for name, moves in zip(ATTRIBUTE_NAMES, varies):
        assert moves == (name in IMAGE_LEVEL), name


def test_hair_colour_attributes_match_the_pixels(many):
    """Blond hair is brighter than black hair at the top of the head (no hats)."""
    a = {n: many.attributes[:, k].astype(bool) for k, n in enumerate(ATTRIBUTE_NAMES)}
    s = MIN_SIZE
    crown = many.images[:, s // 8: s // 4, 3 * s // 8: 5 * s // 8].mean(axis=(1, 2, 3))
    blond, black = a["Blond_Hair"] & ~a["Wearing_Hat"], a["Black_Hair"] & ~a["Wearing_Hat"]
    assert crown[blond].mean() > crown[black].mean() + 40  # bald heads show skin


def test_identities_differ_more_between_than_within(gallery):
    x = gallery.images.reshape(len(gallery), -1).astype(np.float32) / 255
    dist = cdist(x, x)
    same = gallery.labels[:, None] == gallery.labels[None]
    np.fill_diagonal(same, False)
    within, between = dist[same].mean(), dist[~same & ~np.eye(len(x), dtype=bool)].mean()
    assert within < 0.85 * between
    assert dist[same].min() > 2.0  # photos of one person differ visibly
    np.fill_diagonal(dist, np.inf)
    accuracy = (gallery.labels[dist.argmin(axis=1)] == gallery.labels).mean()
    assert 0.3 < accuracy < 0.95  # pixel 1-NN: far above chance (0.05), far from solved


def test_works_with_the_retrieval_protocol():
    splits = retrieval_protocol(load_synthfaces(4, 5, size=MIN_SIZE), num_query=2, num_val=1)
    assert len(splits.query) == 8 and len(splits.database) == 12


@pytest.mark.parametrize("kwargs, pattern", [
    (dict(num_identities=0), r"num_identities must be an integer >= 1; got 0"),
    (dict(num_identities=2.5), r"num_identities must be an integer >= 1; got 2.5"),
    (dict(num_identities=True), r"num_identities must be an integer >= 1; got True"),
    (dict(images_per_identity=0), r"images_per_identity must be an integer >= 1; got 0"),
    (dict(size=16), rf"size must be an integer >= {MIN_SIZE}; got 16 .*resized"),
])
def test_bad_arguments_raise_clear_errors(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        load_synthfaces(**kwargs)
