"""data_scripts/: offline --help, and the prepare/verify steps on local files.

Nothing here downloads: download steps are replaced by local archives.
"""
import hashlib
import importlib
import io
import os
import pickle
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dfh_lib import data
from dfh_lib.core.data import fetch as fetch_lib  # the code the scripts call

SCRIPTS_DIR = Path(__file__).resolve().parents[1] / "data_scripts"
SCRIPTS = ["prepare_lfw.py", "prepare_orl.py", "prepare_celeba.py", "prepare_facescrub.py",
           "prepare_youtube_faces.py", "prepare_vggface2_subset.py"]


@pytest.fixture
def scripts(monkeypatch):
    """Import a data script by module name (they import ``_common`` as a sibling)."""
    monkeypatch.syspath_prepend(str(SCRIPTS_DIR))
    return importlib.import_module


def _save(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def _zip_folder(folder: Path, archive: Path, top: str) -> Path:
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(folder.rglob("*")):
            zf.write(path, f"{top}/{path.relative_to(folder).as_posix()}")
    return archive


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_works_offline_without_install(script, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DFH_DATA_DIR")}
    done = subprocess.run([sys.executable, str(SCRIPTS_DIR / script), "--help"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "--data-dir" in done.stdout and "--verify-only" in done.stdout


# -------------------------------------------------------------- _common ----

def test_sha256_and_manifest_round_trip(scripts, tmp_path):
    common = scripts("_common")
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.txt").write_bytes(b"abc")
    (tmp_path / "sub" / "b.bin").write_bytes(b"")
    assert common.sha256_file(tmp_path / "a.txt") == \
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"  # FIPS 180-2 "abc"
    assert common.check_manifest(tmp_path) is False
    common.record_manifest(tmp_path)
    assert common.read_manifest(tmp_path) == {"a.txt": hashlib.sha256(b"abc").hexdigest(),
                                              "sub/b.bin": hashlib.sha256(b"").hexdigest()}
    assert common.check_manifest(tmp_path) is True
    (tmp_path / "a.txt").write_bytes(b"abd")
    (tmp_path / "sub" / "b.bin").unlink()
    (tmp_path / "new.txt").write_text("x")
    with pytest.raises(ValueError, match=r"changed \['a.txt'\], missing \['sub/b.bin'\], "
                                         r"unexpected \['new.txt'\]"):
        common.check_manifest(tmp_path)


def test_extract_descends_lone_folder_and_refuses_escapes(scripts, tmp_path):
    common = scripts("_common")
    (tmp_path / "src" / "x").mkdir(parents=True)
    (tmp_path / "src" / "x" / "f.txt").write_text("hi")
    (tmp_path / "src" / "g.txt").write_text("second entry: stop descending here")
    archive = _zip_folder(tmp_path / "src", tmp_path / "a.zip", "top")
    content = common.extract(archive, tmp_path / "out")
    assert content == tmp_path / "out" / "top" and (content / "x" / "f.txt").read_text() == "hi"
    evil = tmp_path / "evil.tar"
    with tarfile.open(evil, "w") as tf:
        info = tarfile.TarInfo("../escaped.txt")
        info.size = 2
        tf.addfile(info, io.BytesIO(b"no"))
    with pytest.raises(tarfile.FilterError):
        common.extract(evil, tmp_path / "out2")
    assert not (tmp_path / "escaped.txt").exists()
    (tmp_path / "plain.bin").write_bytes(b"not an archive")
    with pytest.raises(ValueError, match="is not a zip or tar archive"):
        common.extract(tmp_path / "plain.bin", tmp_path / "out3")


# ------------------------------------------------------------------ LFW ----

def test_lfw_verify_real(scripts, real_data_dir):
    summary = scripts("prepare_lfw").verify(real_data_dir)
    assert (summary["people"], summary["images"]) == (5749, 13233)


def test_lfw_verify_rejects_counts_and_pair_checksums(scripts, tmp_path, monkeypatch):
    lfw = scripts("prepare_lfw")
    home = tmp_path / "lfw" / "lfw_home"
    _save(home / "lfw_funneled" / "A_B" / "A_B_0001.jpg", np.zeros((8, 8, 3), np.uint8))
    for name in lfw.PAIRS_SHA256:
        (home / name).write_text("10\t300\n")
    with pytest.raises(ValueError, match="1 people / 1 images, expected 5749 / 13233"):
        lfw.verify(tmp_path)
    monkeypatch.setattr(fetch_lib, "LFW_PEOPLE", 1)
    monkeypatch.setattr(fetch_lib, "LFW_IMAGES", 1)
    with pytest.raises(ValueError, match="pairsDevTrain.txt is missing or its SHA-256 differs"):
        lfw.verify(tmp_path)


# ------------------------------------------------------------------ ORL ----

def test_orl_prepare_from_archive_then_load(scripts, tmp_path, capsys):
    orl = scripts("prepare_orl")
    for person in range(1, 41):
        for shot in range(1, 11):
            _save(tmp_path / "src" / f"s{person}" / f"{shot}.pgm",
                  np.full((112, 92), person, np.uint8))
    (tmp_path / "src" / "README").write_text("AT&T")
    archive = _zip_folder(tmp_path / "src", tmp_path / "att_faces.zip", "orl_faces")
    orl.main(["--source", str(archive), "--data-dir", str(tmp_path / "data")])
    assert "ORL: OK" in capsys.readouterr().out
    faces = data.load_orl(tmp_path / "data")
    assert faces.images[:, 0, 0, 0].tolist() == list(np.repeat(np.arange(1, 41), 10))
    (tmp_path / "data" / "orl" / "att_faces" / "s7" / "3.pgm").unlink()
    with pytest.raises(ValueError, match="s7/3.pgm is missing"):
        orl.verify(tmp_path / "data")


def test_orl_needs_source_unless_verify_only(scripts, real_data_dir, capsys):
    orl = scripts("prepare_orl")
    with pytest.raises(SystemExit):
        orl.main(["--data-dir", str(real_data_dir)])
    orl.main(["--verify-only", "--data-dir", str(real_data_dir)])
    assert "people: 40" in capsys.readouterr().out


# --------------------------------------------------------------- CelebA ----

def test_celeba_verify_real_subset(scripts, real_data_dir):
    celeba = scripts("prepare_celeba")
    summary = celeba.verify(real_data_dir, expected_images=5000)
    assert (summary["images"], summary["identities"], summary["attributes"]) == (5000, 3571, 40)
    with pytest.raises(ValueError, match="5000 images, expected 202599"):
        celeba.verify(real_data_dir, expected_images=celeba.FULL_IMAGES)


def test_celeba_verify_finds_unannotated_images(scripts, tmp_path):
    folder = tmp_path / "celeba" / "celeba"
    for name in ("000001.jpg", "000002.jpg"):
        _save(folder / "img_align_celeba" / name, np.zeros((8, 8, 3), np.uint8))
    (folder / "list_attr_celeba.txt").write_text("1\nMale Young\n000001.jpg 1 -1\n")
    (folder / "identity_CelebA.txt").write_text("000001.jpg 5\n")
    (folder / "list_eval_partition.txt").write_text("000001.jpg 0\n")
    with pytest.raises(ValueError, match="2 images but 1 have attribute rows"):
        scripts("prepare_celeba").verify(tmp_path)


# ------------------------------------------------------------------ DDH ----

def _ddh_pickle(n: int, labels) -> bytes:
    x = np.arange(n * 3072).reshape(n, 3072) % 256
    return pickle.dumps((x.astype(np.uint8), list(labels)), protocol=4)


def _ddh_archive(tmp_path: Path, split: str, parts) -> Path:
    src = tmp_path / f"src_{split}"
    src.mkdir()
    for k, labels in enumerate(parts):
        (src / f"{split}_{k}").write_bytes(_ddh_pickle(len(labels), labels))
    return _zip_folder(src, tmp_path / f"{split}.zip", f"facescrub_{split}")


def test_ddh_download_places_archives_then_verifies(scripts, tmp_path, monkeypatch, capsys):
    ddh_script = scripts("_ddh")
    archives = {"1STytImOvad3PgPN2NwUSVga-fOU5i2Tm":
                _ddh_archive(tmp_path, "train", [[0, 1, 2, 0], [1, 2, 0, 1, 2]]),
                "1saSeHjaJBSAUNlyC-Ismdh2VbEiyZPuU": _ddh_archive(tmp_path, "test", [[0, 1, 2]])}
    monkeypatch.setattr(fetch_lib, "fetch_source", lambda source, dest: archives[source])
    monkeypatch.setattr(fetch_lib, "DDH_SIZES", {"facescrub": data.ddh.DDHSize(3, 9, 3)})
    ddh_script.main("facescrub", ["--data-dir", str(tmp_path / "data")])
    assert "SHA256SUMS: written" in capsys.readouterr().out
    folder = tmp_path / "data" / "facescrub"
    assert sorted(p.name for p in (folder / "train").iterdir()) == ["train_0", "train_1"]
    ddh_script.main("facescrub", ["--data-dir", str(tmp_path / "data")])  # already there
    assert "not downloading it again" in capsys.readouterr().out
    assert data.load_facescrub(tmp_path / "data").database.labels.tolist() == \
        [0, 1, 2, 0, 1, 2, 0, 1, 2]


def test_ddh_verify_counts_manifest_and_hostile_files(scripts, tmp_path):
    ddh_script = scripts("_ddh")
    folder = tmp_path / "youtube_faces"
    for split, labels in (("train", [0, 1, 0, 1]), ("test", [0, 1])):
        (folder / split).mkdir(parents=True)
        (folder / split / "part0").write_bytes(_ddh_pickle(len(labels), labels))
    expected = data.ddh.DDHSize(2, 4, 2)
    with pytest.raises(ValueError, match=r"found DDHSize\(identities=2, train=4, test=2\), "
                                         r"expected DDHSize\(identities=1595"):
        ddh_script.verify("youtube_faces", tmp_path)
    assert not (folder / "SHA256SUMS").exists()  # bad content is never recorded
    assert ddh_script.verify("youtube_faces", tmp_path, expected)["SHA256SUMS"] == "written"
    assert ddh_script.verify("youtube_faces", tmp_path, expected)["SHA256SUMS"] == "checked"
    with open(folder / "train" / "part0", "ab") as f:
        f.write(b"\0")
    with pytest.raises(ValueError,
                       match=r"does not match its SHA256SUMS: changed \['train/part0'\]"):
        ddh_script.verify("youtube_faces", tmp_path, expected)
    (folder / "SHA256SUMS").unlink()
    (folder / "train" / "part0").write_bytes(pickle.dumps((eval, [0]), protocol=2))
    with pytest.raises(data.UnsafePickleError, match=r"__builtin__.eval"):  # Python-2 name
        ddh_script.verify("youtube_faces", tmp_path, expected)


def test_ddh_place_moves_a_lone_pickle(scripts, tmp_path):
    lone = tmp_path / "test_batch"
    lone.write_bytes(_ddh_pickle(2, [0, 1]))
    scripts("_ddh").place(lone, tmp_path / "out")
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["test_batch"]


# ------------------------------------------------------ VGGFace2 subset ----

def test_vggface2_prepare_verify_and_load(scripts, tmp_path):
    vgg = scripts("prepare_vggface2_subset")
    for split, name, k in (("train", "n001", 1), ("train", "n001", 2), ("train", "n002", 1),
                           ("test", "n002", 9)):
        _save(tmp_path / "src" / split / name / f"{k:04d}.jpg", np.full((12, 10, 3), k, np.uint8))
    archive = _zip_folder(tmp_path / "src", tmp_path / "vgg.zip", "vggface2_processed")
    dest = vgg.prepare(str(archive), tmp_path / "data")
    summary = vgg.verify(dest, expected_identities=2, expected_images=4)
    assert (summary["train images"], summary["test images"], summary["SHA256SUMS"]) == \
        (3, 1, "written")
    assert data.load_image_folder(dest / "train").identity_names == ["n001", "n002"]
    with pytest.raises(ValueError, match="4 images, expected 5"):
        vgg.verify(dest, expected_images=5)
    _save(dest / "test" / "n003" / "0001.jpg", np.zeros((12, 10, 3), np.uint8))
    with pytest.raises(ValueError, match="unexpected \\['test/n003/0001.jpg'\\]"):
        vgg.verify(dest)
    (dest / "SHA256SUMS").unlink()
    with pytest.raises(ValueError, match="1 test identities have no train images, e.g. n003"):
        vgg.verify(dest)
