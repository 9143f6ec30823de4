"""DDH FaceScrub / YouTube Faces pickles: safe reading, validation, caching, protocol.

Fixture pickles are written the way Python 2's cPickle wrote numpy data
(protocol 2, native strings as BINSTRING, globals under ``numpy.core``),
plus hostile and broken files.
"""
import io
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest

from dfh_lib import data
from dfh_lib.core.data import ddh


class _Py2Pickler(pickle._Pickler):
    """Pickles as Python 2 did: ``str``/``bytes`` as (SHORT_)BINSTRING, globals as
    ``GLOBAL module name`` with numpy's Python-2 module ``numpy.core``."""

    dispatch = pickle._Pickler.dispatch.copy()

    def _save_py2_str(self, obj):
        raw = obj.encode("latin1") if isinstance(obj, str) else obj
        if len(raw) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(raw)]) + raw)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(raw)) + raw)
        self.memoize(obj)

    dispatch[str] = _save_py2_str
    dispatch[bytes] = _save_py2_str

    def save_global(self, obj, name=None):
        module = obj.__module__.replace("numpy._core", "numpy.core")
        self.write(pickle.GLOBAL + f"{module}\n{name or obj.__qualname__}\n".encode())
        self.memoize(obj)


def py2_dumps(obj) -> bytes:
    buffer = io.BytesIO()
    _Py2Pickler(buffer, protocol=2).dump(obj)
    return buffer.getvalue()


def _chw_pixels(n: int, offset: int = 0) -> np.ndarray:
    """(n, 3072) float64 CHW rows; value at (i, c, r, col): (offset + i + 50c + r + 3col) % 256."""
    i, c, r, col = np.ogrid[:n, :3, :32, :32]
    return ((offset + i + 50 * c + r + 3 * col) % 256).astype(np.float64).reshape(n, 3072)


def _write_split(folder: Path, parts) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for k, (x, y) in enumerate(parts):
        (folder / f"part_{k}.pkl").write_bytes(py2_dumps((x, y)))


@pytest.fixture
def facescrub_root(tmp_path) -> Path:
    """3 identities: train 2 files x 6 images (4 per identity), test 2 per identity."""
    labels = [0, 1, 2, 0, 1, 2]
    _write_split(tmp_path / "facescrub" / "train",
                 [(_chw_pixels(6), labels), (_chw_pixels(6, offset=100), labels)])
    _write_split(tmp_path / "facescrub" / "test", [(_chw_pixels(6, offset=7), labels)])
    return tmp_path


class _RunsShell:
    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def test_python2_pickle_is_read_as_hwc_uint8(tmp_path):
    path = tmp_path / "p.pkl"
    path.write_bytes(py2_dumps((_chw_pixels(2), [4, 1])))
    assert b"numpy.core.multiarray\n_reconstruct" in path.read_bytes()
    images, labels = ddh.read_ddh_pickle(path)
    assert images.shape == (2, 32, 32, 3) and images.dtype == np.uint8
    assert images[1, 2, 3].tolist() == [12, 62, 112]  # 1 + 50c + 2 + 3 * 3, channel last
    assert labels.tolist() == [4, 1] and labels.dtype == np.int64


def test_other_accepted_forms(tmp_path):
    x = _chw_pixels(2).reshape(2, 3, 32, 32).astype(np.uint8)
    variants = {"py2_4d_numpy_labels": py2_dumps((x, np.array([0, 1]))),
                "py2_label_scalars": py2_dumps((x, [np.int64(0), np.int64(1)])),
                "py3_protocol4": pickle.dumps((x, np.array([0, 1])), protocol=4),
                "py3_protocol5": pickle.dumps((x, np.array([0, 1])), protocol=5)}
    for name, raw in variants.items():
        (tmp_path / name).write_bytes(raw)
        images, labels = ddh.read_ddh_pickle(tmp_path / name)
        assert images[0, 2, 3].tolist() == [11, 61, 111] and labels.tolist() == [0, 1], name


def test_facescrub_protocol(facescrub_root):
    splits = data.load_dataset("facescrub", root=facescrub_root)
    assert isinstance(splits, data.RetrievalSplits)
    db, query = splits.database, splits.query
    assert db.labels.tolist() == [0, 1, 2, 0, 1, 2] * 2  # part_0 then part_1
    assert db.images[6, 0, 0].tolist() == [100, 150, 200]  # first image of part_1
    assert query.labels.tolist() == [0, 1, 2, 0, 1, 2] and query.images[0, 0, 0, 0] == 7
    assert db.identity_names == query.identity_names == ["facescrub_0000", "facescrub_0001",
                                                         "facescrub_0002"]
    assert np.bincount(splits.val_query.labels).tolist() == [1, 1, 1]
    both = np.r_[splits.train.source_index, splits.val_query.source_index]
    assert sorted(both) == list(range(12))
    assert "query = test split" in splits.description and "seed 0" in splits.description
    again = data.load_facescrub(facescrub_root)
    assert np.array_equal(again.val_query.source_index, splits.val_query.source_index)
    other = [data.load_facescrub(facescrub_root, seed=s).val_query.source_index
             for s in range(1, 6)]
    assert any(not np.array_equal(o, splits.val_query.source_index) for o in other)
    with pytest.raises(ValueError, match="num_val must be >= 0 and leave >= 1 train image"):
        data.load_facescrub(facescrub_root, num_val=4)


def test_youtube_faces_uses_its_own_folder(facescrub_root):
    (facescrub_root / "facescrub").rename(facescrub_root / "youtube_faces")
    splits = data.load_youtube_faces(facescrub_root, num_val=2)
    assert len(splits.database) == 12 and len(splits.train) == 6 and len(splits.query) == 6
    assert splits.database.name == "youtube_faces"


def test_split_is_cached_as_npz_and_refreshed_when_files_change(facescrub_root, monkeypatch):
    first = data.load_facescrub(facescrub_root)
    cached = list((data.cache_dir() / "ddh").glob("facescrub_train_*.npz"))
    assert cached

    def no_unpickling(path):
        raise AssertionError(f"{path} was unpickled again instead of read from the cache")

    monkeypatch.setattr(ddh, "read_ddh_pickle", no_unpickling)
    again = data.load_facescrub(facescrub_root)
    assert np.array_equal(again.database.images, first.database.images)
    _write_split(facescrub_root / "facescrub" / "train", [(_chw_pixels(3), [0, 1, 2, 0][:3])])
    with pytest.raises(AssertionError, match="unpickled again"):
        data.load_facescrub(facescrub_root)


def test_shell_command_pickle_is_refused_and_not_run(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    path.write_bytes(py2_dumps((_RunsShell(f"touch {marker}"), [0])))
    with pytest.raises(data.UnsafePickleError,
                       match=rf"{path}: refusing to load global posix.system"):
        ddh.read_ddh_pickle(path)
    assert not marker.exists()


def test_hostile_file_in_a_split_stops_loading(facescrub_root):
    marker = facescrub_root / "pwned"
    evil = facescrub_root / "facescrub" / "train" / "part_9.pkl"
    evil.write_bytes(pickle.dumps((_RunsShell(f"touch {marker}"), [0]), protocol=4))
    with pytest.raises(data.UnsafePickleError, match="part_9.pkl: refusing to load global"):
        data.load_facescrub(facescrub_root)
    assert not marker.exists() and not list((data.cache_dir() / "ddh").glob("*.tmp"))


@pytest.mark.parametrize("payload, forbidden", [
    ((np.zeros((1, 3072)), __import__("datetime").date(2020, 1, 1)), "datetime.date"),
    (__import__("collections").OrderedDict(x=1), "collections.OrderedDict"),
    ((np.zeros((1, 3072)), [0], eval), "builtins.eval"),
])
def test_unexpected_globals_are_refused(tmp_path, payload, forbidden):
    (tmp_path / "p").write_bytes(py2_dumps(payload))
    with pytest.raises(data.UnsafePickleError, match=f"refusing to load global {forbidden}"):
        ddh.read_ddh_pickle(tmp_path / "p")


@pytest.mark.parametrize("payload, message", [
    ({"data": np.zeros((1, 3072))}, r"must hold a tuple \(x, y\).*got dict"),
    ((np.zeros((2, 3072)), [0, 1], [0]), "got tuple of length 3"),
    ((np.zeros((2, 100)), [0, 1]), r"shape \(n, 3072\) or \(n, 3, 32, 32\).*got \(2, 100\)"),
    ((np.zeros((2, 3, 32, 31)), [0, 1]), r"got \(2, 3, 32, 31\)"),
    ((np.array([["a"] * 3072]), [0]), "got .*<U1"),
    ((np.zeros((2, 3072)), [0]), r"y must be 2 integer labels.*got shape \(1,\)"),
    ((np.zeros((2, 3072)), [0.5, 1.0]), "y must be 2 integer labels.*float64"),
    ((np.zeros((2, 3072)), [0, -1]), "labels >= 0"),
    ((np.full((1, 3072), -0.5), [0]),
     r"pixel values in 0..255; got -0.5..-0.5 \(already normalised"),
    ((np.full((1, 3072), np.nan), [0]), "pixel values in 0..255"),
])
def test_wrong_content_is_a_clear_error(tmp_path, payload, message):
    (tmp_path / "p").write_bytes(py2_dumps(payload))
    with pytest.raises(ValueError, match=message):
        ddh.read_ddh_pickle(tmp_path / "p")


@pytest.mark.parametrize("cut", [0, 1, 100, -10])
def test_truncated_file_is_a_clear_error(tmp_path, cut):
    raw = py2_dumps((_chw_pixels(2), [0, 1]))
    (tmp_path / "p").write_bytes(raw[:cut])
    with pytest.raises(ValueError, match=r"p is not a readable pickle \(truncated or corrupt"):
        ddh.read_ddh_pickle(tmp_path / "p")


def test_missing_and_empty_split_folders(tmp_path):
    with pytest.raises(data.DatasetNotFoundError, match="prepare_youtube_faces.py --data-dir"):
        data.load_youtube_faces(tmp_path)
    (tmp_path / "facescrub" / "train").mkdir(parents=True)
    (tmp_path / "facescrub" / "test").mkdir()
    with pytest.raises(data.DatasetNotFoundError, match="prepare_facescrub.py"):
        data.load_facescrub(tmp_path)


def test_ddh_normalize_hand_values():
    out = data.ddh_normalize(np.array([[0, 255]], np.uint8))
    assert out.dtype == np.float32 and out.shape == (1, 2)
    np.testing.assert_allclose(out, [[-0.1, 0.1]], rtol=1e-6)  # mean 127.5, std 127.5
    x = np.zeros((1000,), np.uint8)
    x[0] = 255  # (255 - 0.255) / 8.0597 * 0.1 = 3.16 -> clipped to 1
    out = data.ddh_normalize(x)
    assert out[0] == 1.0 and x[0] == 255  # input left untouched
    np.testing.assert_allclose(out[1], -0.255 / (np.sqrt(0.255 * 255 - 0.255 ** 2) + 1e-5) * 0.1,
                               rtol=1e-5)


def test_ddh_normalize_matches_dcdh_formula():
    x = np.random.default_rng(0).integers(0, 256, (8, 32, 32, 3)).astype(np.uint8)
    ref = x.astype(float)  # DCDH's deprocess_image, in float64
    ref -= ref.mean()
    ref /= ref.std() + 1e-5
    ref = np.clip(ref * 0.1, -1, 1)
    np.testing.assert_allclose(data.ddh_normalize(x), ref, atol=1e-6)


def test_expected_sizes_from_the_papers():
    assert ddh.DDH_SIZES["facescrub"] == (530, 67_177, 2_650)
    assert ddh.DDH_SIZES["youtube_faces"] == (1_595, 63_800, 7_975)
