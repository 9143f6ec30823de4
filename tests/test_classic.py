import numpy as np
import pytest

from dfh_lib.core.classic import LSH, PCAITQ, RandomCodes, pixel_features
from dfh_lib.core.data.dataset import RetrievalSplits
from dfh_lib.experiments import run_feature_hashing
from dfh_lib.core.data.dataset import FaceDataset


def clustered(n_per=30, classes=5, dim=40, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 3, (classes, dim))
    labels = np.repeat(np.arange(classes), n_per)
    return (centres[labels] + rng.normal(0, 1, (len(labels), dim))).astype(np.float32), labels


def test_lsh_is_sign_of_centred_random_projection():
    X, _ = clustered()
    lsh = LSH(16, seed=3).fit(X)
    expected = np.where((X - X.mean(0)) @ lsh.projection_ >= 0, 1, -1)
    np.testing.assert_array_equal(lsh.encode(X), expected)
    np.testing.assert_array_equal(LSH(16, seed=3).fit(X).encode(X), lsh.encode(X))
    assert lsh.encode(X).dtype == np.int8


def test_itq_rotation_is_orthogonal_and_error_never_increases():
    X, _ = clustered()
    itq = PCAITQ(12, n_iter=30).fit(X)
    R = itq.rotation_
    np.testing.assert_allclose(R @ R.T, np.eye(12), atol=1e-5)
    errors = np.array(itq.quantization_error_)
    assert np.all(np.diff(errors) <= 1e-6), errors
    assert errors[-1] < errors[0]
    assert set(np.unique(itq.encode(X))) <= {-1, 1}


def as_splits(X, y):
    def part(index):
        images = np.zeros((len(index), 1, 1, 3), np.uint8)
        return FaceDataset(images, y[index], [str(c) for c in range(y.max() + 1)])
    query, db = np.arange(0, len(X), 3), np.arange(len(X))
    return RetrievalSplits(part(db), part(db[:0]), part(query), part(db), 0, "toy")


def test_learned_codes_beat_chance():
    X, y = clustered()
    features = {"train": X, "query": X[::3], "database": X}
    result = run_feature_hashing(features, as_splits(X, y), bits=(16,),
                                 methods=("random", "LSH", "PCA-ITQ"))
    mAP = {r["method"]: r["mAP"] for r in result.rows}
    assert mAP["random"] < 0.35 < mAP["LSH"]
    assert mAP["PCA-ITQ"] > 0.9
    assert result.codes[("LSH", 16)][0].shape == (len(X[::3]), 16)


def test_bad_inputs_are_explained():
    X, _ = clustered()
    with pytest.raises(RuntimeError, match="not fitted"):
        LSH(8).encode(X)
    with pytest.raises(ValueError, match="features"):
        LSH(8).fit(X).encode(X[:, :5])
    bad = X.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        PCAITQ(8).fit(bad)
    with pytest.raises(ValueError, match="bits"):
        PCAITQ(64).fit(X)
    with pytest.raises(ValueError, match="bits"):
        RandomCodes(0)


def test_pixel_features_flatten_in_unit_range():
    images = np.full((2, 4, 3, 3), 255, np.uint8)
    ds = FaceDataset(images, np.array([0, 1]), ["a", "b"])
    features = pixel_features(ds)
    assert features.shape == (2, 36) and features.max() == 1.0
    assert pixel_features(ds, size=(2, 2)).shape == (2, 12)
