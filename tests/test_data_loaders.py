"""Loaders for real face data, paths/caches and the dataset registry.

Offline tests build tiny fake layouts in tmp_path; tests named ``*_real``
read the shared data (``DFH_DATA_DIR``) and skip without it.
"""
import os
import pickle
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dfh_lib import data
from dfh_lib.core.data import paths as data_paths


def _snapshot(folder: Path) -> set[str]:
    return {os.path.join(d, n) for d, dirs, files in os.walk(folder) for n in dirs + files}


def _save(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


# ---------------------------------------------------------------- paths ----

def test_data_dir_prefers_argument_then_env_then_home(monkeypatch, tmp_path):
    monkeypatch.setenv("DFH_DATA_DIR", str(tmp_path / "env"))
    assert data.data_dir(tmp_path / "arg") == tmp_path / "arg"
    assert data.data_dir() == tmp_path / "env"
    monkeypatch.delenv("DFH_DATA_DIR")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert data.data_dir() == tmp_path / "home" / "dfh_data"


def test_cache_dir_comes_from_env_and_is_created(monkeypatch, tmp_path):
    monkeypatch.setenv("DFH_CACHE_DIR", str(tmp_path / "a" / "b"))
    assert data.cache_dir() == tmp_path / "a" / "b"
    assert (tmp_path / "a" / "b").is_dir()


def test_dataset_not_found_error_names_path_and_command():
    command = "python data_scripts/prepare_lfw.py --data-dir /x"
    err = data.DatasetNotFoundError("LFW", "/x/lfw", command)
    assert isinstance(err, FileNotFoundError)
    assert "/x/lfw" in str(err) and command in str(err)
    again = pickle.loads(pickle.dumps(err))  # survives multiprocessing
    assert str(again) == str(err) and again.command == err.command


def test_cached_arrays_builds_once(tmp_path):
    calls = []

    def build():
        calls.append(1)
        return {"a": np.arange(3)}

    first = data_paths.cached_arrays("unit/x", build)
    second = data_paths.cached_arrays("unit/x", build)
    assert len(calls) == 1 and np.array_equal(first["a"], second["a"])
    assert (data.cache_dir() / "unit" / "x.npz").exists()


def test_files_fingerprint_changes_with_content(tmp_path):
    f = tmp_path / "f.bin"
    f.write_bytes(b"abc")
    before = data_paths.files_fingerprint([f])
    f.write_bytes(b"abcd")
    assert data_paths.files_fingerprint([f]) != before


# ------------------------------------------------------------- registry ----

def test_registry_names():
    assert set(data.DATASETS) == {"synthfaces", "lfw", "orl", "celeba", "image_folder",
                                  "facescrub", "youtube_faces"}


def test_unknown_dataset_lists_names():
    with pytest.raises(ValueError, match="unknown dataset 'mnist'.*'celeba'.*'youtube_faces'"):
        data.load_dataset("mnist")
    with pytest.raises(ValueError, match="choose one of"):
        data.available("mnist")


def test_available_is_false_without_files(tmp_path):
    for name in data.DATASETS:
        root = tmp_path / "missing" if name == "image_folder" else tmp_path
        assert data.available(name, root) is (name == "synthfaces"), name
    assert data.available("image_folder") is False  # no folder given


@pytest.mark.parametrize("name, script", [
    ("lfw", "prepare_lfw.py"), ("orl", "prepare_orl.py"), ("celeba", "prepare_celeba.py"),
    ("facescrub", "prepare_facescrub.py"), ("youtube_faces", "prepare_youtube_faces.py"),
    ("image_folder", "prepare_vggface2_subset.py")])
def test_missing_data_names_the_fetch_command(tmp_path, name, script):
    root = tmp_path / "nothing"
    with pytest.raises(data.DatasetNotFoundError) as info:
        data.load_dataset(name, root=root)
    message = str(info.value)
    assert f"python data_scripts/{script}" in message and str(root) in message


# ------------------------------------------------------------------ ORL ----

def test_orl_orders_people_and_files_numerically(tmp_path):
    for person in (1, 2, 10):
        for shot in (1, 2, 10):
            _save(tmp_path / "orl" / "att_faces" / f"s{person}" / f"{shot}.pgm",
                  np.full((6, 5), 10 * person + shot, np.uint8))
    (tmp_path / "orl" / "att_faces" / "README").write_text("not a person")
    faces = data.load_orl(tmp_path)
    assert faces.identity_names == ["s1", "s2", "s10"]
    assert faces.labels.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert faces.images.shape == (9, 6, 5, 3)
    assert faces.images[:, 0, 0, 0].tolist() == [11, 12, 20, 21, 22, 30, 101, 102, 110]
    assert (faces.images == faces.images[..., :1]).all()  # grey repeated to 3 channels


def test_orl_real(real_data_dir):
    faces = data.load_dataset("orl", root=real_data_dir)
    assert faces.images.shape == (400, 112, 92, 3) and faces.images.dtype == np.uint8
    assert faces.identity_names == [f"s{i}" for i in range(1, 41)]
    assert np.array_equal(faces.labels, np.repeat(np.arange(40), 10))
    first = np.asarray(Image.open(real_data_dir / "orl/att_faces/s10/1.pgm"))
    assert np.array_equal(faces.images[90, ..., 0], first)


# --------------------------------------------------------------- CelebA ----

_ATTR_NAMES = ["Eyeglasses", "Male", "Smiling"]


def _fake_celeba(root: Path, size=(218, 178)) -> Path:
    """5 annotated images, 000003.jpg absent; ids 7, 3, -, 7, 12; partition 0, 0, -, 1, 2."""
    folder = root / "celeba" / "celeba"
    rows = [("000001.jpg", "1 -1 1", 7, 0), ("000002.jpg", "-1 1 1", 3, 0),
            ("000003.jpg", "1 1 1", 5, 0), ("000004.jpg", "-1 -1 -1", 7, 1),
            ("000005.jpg", "1 1 -1", 12, 2)]
    for i, (name, *_rest) in enumerate(rows):
        if name != "000003.jpg":
            _save(folder / "img_align_celeba" / name, np.full((*size, 3), 40 * i, np.uint8))
    crlf = "\r\n".join
    (folder / "list_attr_celeba.txt").write_text(crlf(
        ["5", " ".join(_ATTR_NAMES)] + [f"{n} {a}" for n, a, _, _ in rows]) + "\r\n")
    (folder / "identity_CelebA.txt").write_text(crlf(f"{n} {i}" for n, _, i, _ in rows))
    (folder / "list_eval_partition.txt").write_text(crlf(f"{n} {p}" for n, _, _, p in rows))
    return folder


def test_celeba_reads_only_present_images(tmp_path):
    _fake_celeba(tmp_path)
    faces = data.load_celeba(tmp_path)
    assert faces.images.shape == (4, 218, 178, 3)
    assert faces.attribute_names == _ATTR_NAMES
    assert faces.attributes.tolist() == [[1, 0, 1], [0, 1, 1], [0, 0, 0], [1, 1, 0]]
    assert faces.identity_names == ["celeb_3", "celeb_7", "celeb_12"]
    assert faces.labels.tolist() == [1, 0, 1, 2]
    assert np.abs(faces.images[:, 100, 80, 0].astype(int) - [0, 40, 120, 160]).max() <= 2


def test_celeba_split_and_size(tmp_path):
    _fake_celeba(tmp_path)
    train = data.load_celeba(tmp_path, split="train", size=(64, 48))
    assert train.images.shape == (2, 64, 48, 3) and train.identity_names == ["celeb_3", "celeb_7"]
    test = data.load_celeba(tmp_path, split="test", size=32)
    assert test.images.shape == (1, 32, 32, 3) and test.identity_names == ["celeb_12"]
    with pytest.raises(ValueError, match="split must be one of"):
        data.load_celeba(tmp_path, split="val")


def test_celeba_errors_on_missing_rows_and_empty_split(tmp_path):
    folder = _fake_celeba(tmp_path)
    (folder / "list_eval_partition.txt").write_text(
        "000001.jpg 0\n000002.jpg 0\n000004.jpg 0\n000005.jpg 0\n")
    with pytest.raises(ValueError, match="no CelebA image of split 'test'.*'train': 4"):
        data.load_celeba(tmp_path, split="test")
    (folder / "identity_CelebA.txt").write_text("000001.jpg 1\n")
    with pytest.raises(ValueError, match=r"identity_CelebA.txt has no row for 3 present "
                                         r"image\(s\), e.g. 000002.jpg"):
        data.load_celeba(tmp_path)


def test_celeba_real_subset(real_data_dir):
    faces = data.load_celeba(real_data_dir)
    assert faces.images.shape == (5000, 109, 89, 3)
    assert faces.attributes.shape == (5000, 40) and set(np.unique(faces.attributes)) == {0, 1}
    rate = dict(zip(faces.attribute_names, faces.attributes.mean(0)))
    # positive rates measured independently in celeba/SOURCE.md
    assert rate["Eyeglasses"] == pytest.approx(0.063, abs=5e-4)
    assert rate["Male"] == pytest.approx(0.42, abs=5e-3)
    assert faces.num_identities == 3571 and faces.identity_names[0].startswith("celeb_")


# ------------------------------------------------------------------ LFW ----

def _fake_lfw(root: Path) -> Path:
    home = root / "lfw" / "lfw_home"
    rng = np.random.default_rng(0)
    for person, count in (("Ann_Lee", 3), ("Bo_Chen", 2), ("Cy_Dorn", 1)):
        for k in range(1, count + 1):
            _save(home / "lfw_funneled" / person / f"{person}_{k:04d}.jpg",
                  rng.integers(0, 256, (250, 250, 3), dtype=np.uint8))
    for name in ("pairsDevTrain.txt", "pairsDevTest.txt", "pairs.txt"):
        (home / name).write_text("1\n")
    return home


def test_lfw_fake_layout_matches_pil_crop_and_writes_nothing_in_root(tmp_path):
    home = _fake_lfw(tmp_path / "data")
    before = _snapshot(tmp_path / "data")
    faces = data.load_lfw(tmp_path / "data", min_faces_per_person=2)
    assert _snapshot(tmp_path / "data") == before
    assert faces.identity_names == ["Ann Lee", "Bo Chen"] and len(faces) == 5
    assert faces.images.shape == (5, 62, 47, 3) and faces.images.dtype == np.uint8
    # scikit-learn's default crop, then resize 0.5, as uint8 without rounding loss
    crops = {np.asarray(Image.open(p).convert("RGB").crop((78, 70, 172, 195)).resize((47, 62)))
             .tobytes() for p in (home / "lfw_funneled").glob("[AB]*/*.jpg")}
    assert {im.tobytes() for im in faces.images} == crops
    grey = data.load_lfw(tmp_path / "data", min_faces_per_person=3, color=False, resize=0.4)
    assert grey.images.shape == (3, 50, 37, 3) and (grey.images == grey.images[..., :1]).all()


def test_lfw_real_counts_and_cache(real_data_dir):
    before = _snapshot(real_data_dir / "lfw" / "lfw_home")
    faces = data.load_lfw(real_data_dir, min_faces_per_person=20)
    assert _snapshot(real_data_dir / "lfw" / "lfw_home") == before  # no joblib cache in data
    assert faces.images.shape == (3023, 62, 47, 3) and faces.num_identities == 62
    assert "George W Bush" in faces.identity_names
    start = time.perf_counter()
    again = data.load_lfw(real_data_dir, min_faces_per_person=20)
    assert time.perf_counter() - start < 5, "second load should come from the joblib cache"
    assert np.array_equal(again.images, faces.images)


# --------------------------------------------------------- image folder ----

def test_image_folder_sorted_filtered_and_resized(tmp_path):
    _save(tmp_path / "bob" / "b1.jpg", np.zeros((20, 16, 3), np.uint8))
    (tmp_path / "bob" / "notes.txt").write_text("ignored")
    _save(tmp_path / "alice" / "a2.png", np.full((20, 16, 3), 200, np.uint8))
    _save(tmp_path / "alice" / "a1.png", np.full((20, 16, 3), 100, np.uint8))
    faces = data.load_image_folder(tmp_path)
    assert faces.identity_names == ["alice", "bob"] and faces.labels.tolist() == [0, 0, 1]
    assert faces.images[:, 0, 0, 0].tolist() == [100, 200, 0] and faces.name == tmp_path.name
    two = data.load_dataset("image_folder", root=tmp_path, min_images=2, size=8)
    assert two.identity_names == ["alice"] and two.images.shape == (2, 8, 8, 3)


def test_image_folder_needs_size_for_mixed_sizes(tmp_path):
    _save(tmp_path / "a" / "1.png", np.zeros((20, 16, 3), np.uint8))
    _save(tmp_path / "a" / "2.png", np.zeros((10, 16, 3), np.uint8))
    with pytest.raises(ValueError, match=r"2.png is 10x16.*pass size=\(height, width\)"):
        data.load_image_folder(tmp_path)
    assert data.load_image_folder(tmp_path, size=(10, 8)).images.shape == (2, 10, 8, 3)
    with pytest.raises(ValueError, match="size must be a positive int"):
        data.load_image_folder(tmp_path, size=(10, -8))


def test_image_folder_corrupt_jpeg_names_the_file(tmp_path):
    good = _save(tmp_path / "a" / "good.jpg", np.zeros((32, 32, 3), np.uint8))
    bad = tmp_path / "a" / "bad.jpg"
    bad.write_bytes(good.read_bytes()[:200])  # truncated JPEG
    with pytest.raises(ValueError, match=f"cannot decode image file {bad}"):
        data.load_image_folder(tmp_path)


def test_image_folder_argument_errors(tmp_path):
    with pytest.raises(ValueError, match="needs root="):
        data.load_dataset("image_folder")
    (tmp_path / "empty_person").mkdir()
    with pytest.raises(ValueError, match="no identity folder"):
        data.load_image_folder(tmp_path)
    with pytest.raises(ValueError, match="min_images must be >= 1"):
        data.load_image_folder(tmp_path, min_images=0)


def test_synthfaces_through_registry():
    pytest.importorskip("dfh_lib.core.data.synthfaces", reason="synthfaces module not written yet")
    faces = data.load_dataset("synthfaces", num_identities=3, images_per_identity=2, size=32)
    assert isinstance(faces, data.FaceDataset) and faces.images.shape == (6, 32, 32, 3)
