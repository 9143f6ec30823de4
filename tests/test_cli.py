"""Tests for the command line on one's own photos (dfh_lib.interfaces.cli,
search_cli): every bad argument or input ends in one ``error:`` line and
exit status 2; ``train --dataset image_folder --data-root``; ``index`` +
``search``; face detection on real LFW faces pasted into synthetic scenes
(needs ``DFH_DATA_DIR`` and opencv-python-headless, else skipped).

A tiny DPSH run on a folder of synthfaces PNGs (6 people x 6 photos, one
epoch of the ``tiny`` profile) is trained once for the module.
"""
import dataclasses
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dfh_lib.core.code_file import CodeFile
from dfh_lib.core.data import load_image_folder, load_synthfaces
from dfh_lib.engine import checkpoint
from dfh_lib.interfaces import cli

pytestmark = pytest.mark.usefixtures("one_thread")

# LFW photos (250x250 deep-funneled) with one face each, and the face's crop box in them
LFW_PHOTOS = ("AJ_Cook/AJ_Cook_0001.jpg", "Adisai_Bodharamik/Adisai_Bodharamik_0001.jpg",
              "Alexandre_Despatie/Alexandre_Despatie_0001.jpg",
              "Andy_Bryant/Andy_Bryant_0001.jpg")
LFW_FACE_BOX = (70, 78, 195, 172)  # scikit-learn's crop: (top, left, bottom, right)


def run_cli(capsys, *argv):
    """``python -m dfh_lib *argv`` in-process: (exit status, stdout, stderr)."""
    try:
        cli.main([str(a) for a in argv])
        code = 0
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(capsys, argv, *fragments):
    with pytest.raises(SystemExit) as exc:
        cli.main([str(a) for a in argv])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for fragment in fragments:
        assert fragment in lines[0]


def assert_usage_error(capsys, argv, fragment):
    """argparse's own errors: usage, then ``prog: error: ...``; exit status 2."""
    with pytest.raises(SystemExit) as exc:
        cli.main([str(a) for a in argv])
    assert exc.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert "error:" in last and fragment in last


@pytest.fixture(scope="module", autouse=True)
def _cpu():
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DFH_DEVICE", "cpu")
        yield


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """``<identity>/<image>.png``: 6 synthfaces people x 6 photos, 32x32."""
    root = tmp_path_factory.mktemp("photos")
    faces = load_synthfaces(num_identities=6, images_per_identity=6, size=32)
    for i, (image, label) in enumerate(zip(faces.images, faces.labels)):
        folder = root / faces.identity_names[label]
        folder.mkdir(exist_ok=True)
        Image.fromarray(image).save(folder / f"{i:03d}.png")
    return root


@pytest.fixture(scope="module")
def run_dir(photos, tmp_path_factory) -> Path:
    """A run of ``train --dataset image_folder --data-root photos``."""
    run = tmp_path_factory.mktemp("run")
    cli.main(["train", "--method", "dpsh", "--dataset", "image_folder", "--data-root",
              str(photos), "--profile", "tiny", "--epochs", "1", "--run-dir", str(run)])
    return run


@pytest.fixture(scope="module")
def index_file(run_dir, photos, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("index") / "photos.npz"
    cli.main(["index", "--run-dir", str(run_dir), "--images", str(photos), "--out", str(out)])
    return out


# ----------------------------------------------------------------------------
# train, index, search
# ----------------------------------------------------------------------------

def test_train_on_a_folder_of_photos(run_dir):
    assert (run_dir / "checkpoint.pt").is_file() and (run_dir / "best.pt").is_file()
    state = checkpoint.load(run_dir / "checkpoint.pt", "checkpoint")
    assert state["config"]["method"] == "dpsh" and state["data"]["train_images"] == 6 * 3


def test_index_then_search_finds_the_image_itself_first(index_file, run_dir, photos, capsys):
    with np.load(index_file, allow_pickle=False) as stored:  # plain arrays only
        assert stored["packed"].dtype == np.uint8 and stored["packed"].shape == (36, 2)
        assert int(stored["bits"]) == 12
    code_file = CodeFile.load(index_file)
    assert list(code_file.paths) == sorted(code_file.paths)
    assert code_file.paths[0] == "synth_000/000.png"
    fingerprint = checkpoint.load(run_dir / "checkpoint.pt", "checkpoint")["fingerprint"]
    assert code_file.fingerprint == fingerprint

    code, out, err = run_cli(capsys, "search", "--index", index_file, "--run-dir", run_dir,
                             "--image", photos / code_file.paths[0], "--k", "5")
    assert code == 0, err
    rows = [line.split() for line in out.splitlines()[2:]]
    assert len(rows) == 5 and rows[0] == ["1", "0", "synth_000/000.png"]
    distances = [int(r[1]) for r in rows]
    assert distances == sorted(distances)
    # any image is at distance 0 from itself (ties in path order); the run is recorded
    other = code_file.paths[20]
    code, out, _ = run_cli(capsys, "search", "--index", index_file, "--image", photos / other,
                           "--k", "36")
    rows = [line.split() for line in out.splitlines()[2:]]
    assert code == 0 and len(rows) == 36 and ["0", other] in [r[1:] for r in rows]
    zero = [r[2] for r in rows if r[1] == "0"]
    assert zero == sorted(zero)


def test_search_with_another_runs_codes_is_refused(index_file, photos, tmp_path, capsys):
    forged = tmp_path / "other.npz"
    dataclasses.replace(CodeFile.load(index_file), fingerprint="0" * 16).save(forged)
    assert_one_line_error(capsys, ["search", "--index", forged, "--image",
                                   photos / "synth_000" / "000.png"], "another run")


# ----------------------------------------------------------------------------
# one-line errors
# ----------------------------------------------------------------------------

def test_bad_training_arguments_end_in_one_line(photos, tmp_path, capsys):
    train = ["train", "--method", "dpsh", "--profile", "tiny", "--epochs", "1"]
    assert_one_line_error(capsys, ["train", "--method", "nope", "--dataset", "synthfaces"],
                          "unknown method 'nope'")
    assert_one_line_error(capsys, [*train, "--dataset", "nope"], "unknown dataset 'nope'")
    assert_one_line_error(capsys, [*train, "--dataset", "synthfaces", "--bits", "0"], "--bits")
    assert_one_line_error(capsys, ["baselines", "--bits", "12,x"], "--bits", "'12,x'")
    assert_one_line_error(capsys, [*train, "--dataset", "image_folder", "--data-root",
                                   tmp_path / "missing"], "not a folder")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_one_line_error(capsys, [*train, "--dataset", "image_folder", "--data-root", empty],
                          "no identity folder")
    # --data-root of another dataset is the data folder (here without LFW in it)
    assert_one_line_error(capsys, [*train, "--dataset", "lfw", "--data-root", empty],
                          "LFW data not found", str(empty))
    assert_usage_error(capsys, [*train, "--dataset", "synthfaces", "--bits", "x"], "--bits")
    assert_usage_error(capsys, [*train, "--dataset", "image_folder"], "--data-root")


def test_a_corrupt_photo_is_named(photos, tmp_path, capsys):
    bad = tmp_path / "bad"
    for name in ("synth_000", "synth_001"):
        (bad / name).mkdir(parents=True)
        for path in sorted((photos / name).glob("*.png")):
            (bad / name / path.name).write_bytes(path.read_bytes())
    (bad / "synth_001" / "broken.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")
    assert_one_line_error(capsys, ["train", "--method", "dpsh", "--profile", "tiny",
                                   "--dataset", "image_folder", "--data-root", bad],
                          "cannot decode", "broken.jpg")


def test_bad_index_and_search_inputs_end_in_one_line(run_dir, index_file, photos, tmp_path,
                                                     capsys):
    image = photos / "synth_000" / "000.png"
    out = tmp_path / "codes.npz"
    assert_one_line_error(capsys, ["index", "--run-dir", tmp_path / "norun", "--images", photos,
                                   "--out", out], "no trained run")
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "checkpoint.pt").write_bytes(b"not a checkpoint")
    assert_one_line_error(capsys, ["index", "--run-dir", junk, "--images", photos, "--out", out],
                          "not a readable dfh_lib checkpoint")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    torch.save({"format": checkpoint.FORMAT, "kind": "generator"}, foreign / "checkpoint.pt")
    assert_one_line_error(capsys, ["index", "--run-dir", foreign, "--images", photos,
                                   "--out", out], "not a dfh_lib checkpoint file")
    assert_one_line_error(capsys, ["index", "--run-dir", run_dir, "--images", tmp_path / "nope",
                                   "--out", out], "no image folder")
    (tmp_path / "no_images").mkdir()
    assert_one_line_error(capsys, ["index", "--run-dir", run_dir, "--images",
                                   tmp_path / "no_images", "--out", out], "no image file")
    assert not out.exists()

    assert_one_line_error(capsys, ["search", "--index", tmp_path / "none.npz", "--image", image],
                          "no code file")
    (tmp_path / "fake.npz").write_bytes(b"PK not a zip")
    assert_one_line_error(capsys, ["search", "--index", tmp_path / "fake.npz", "--image", image],
                          "not a dfh_lib code file")
    assert_one_line_error(capsys, ["search", "--index", index_file, "--image",
                                   tmp_path / "none.png"], "none.png")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG broken")
    assert_one_line_error(capsys, ["search", "--index", index_file, "--image",
                                   tmp_path / "broken.png"], "cannot decode", "broken.png")
    assert_usage_error(capsys, ["search", "--index", index_file, "--image", image, "--k", "0"],
                       "--k")


def test_face_detection_errors_end_in_one_line(run_dir, photos, tmp_path, capsys,
                                               monkeypatch):
    pytest.importorskip("cv2", reason="face detection needs opencv-python-headless")
    from dfh_lib.core.data import face_detect

    index = ["index", "--run-dir", run_dir, "--images", photos, "--out", tmp_path / "c.npz",
             "--detect"]
    assert_one_line_error(capsys, index, "no photo under", "exactly one face")  # cartoons
    monkeypatch.setattr(face_detect, "_cascade", None)
    monkeypatch.setitem(sys.modules, "cv2", None)  # as if OpenCV were not installed
    assert_one_line_error(capsys, index, "pip install", "opencv-python-headless")


def test_a_bug_keeps_its_traceback(monkeypatch):
    def broken(argv):
        raise RuntimeError("a bug")

    monkeypatch.setitem(cli.COMMANDS, "info", broken)
    with pytest.raises(RuntimeError, match="a bug"):
        cli.main(["info"])


def test_end_to_end_error_has_no_traceback(tmp_path):
    result = subprocess.run([sys.executable, "-m", "dfh_lib", "search", "--index",
                             str(tmp_path / "none.npz"), "--image", str(tmp_path / "x.png")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: no code file {tmp_path / 'none.npz'} (write one with python -m dfh_lib index)"]


# ----------------------------------------------------------------------------
# face detection on real faces
# ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def lfw_photos(real_data_dir):
    pytest.importorskip("cv2", reason="face detection needs opencv-python-headless")
    root = real_data_dir / "lfw" / "lfw_home" / "lfw_funneled"
    if not root.is_dir():
        pytest.skip(f"no LFW photos in {root}")
    return [np.asarray(Image.open(root / name).convert("RGB")) for name in LFW_PHOTOS]


def scene(rng, faces=(), scales=None):
    """A 300x400 gradient-and-noise scene with ``faces`` (250x250 LFW photos)
    pasted side by side at random places and scales; their face boxes."""
    height, width = 300, 400
    ramp = np.linspace(60, 200, width)[None, :, None] * np.ones((height, 1, 3))
    canvas = np.clip(ramp + rng.normal(0, 12, (height, width, 3)), 0, 255).astype(np.uint8)
    slot = width // max(len(faces), 1)
    boxes = []
    for i, face in enumerate(faces):
        scale = scales[i] if scales else rng.uniform(0.7, 1.1)
        side = round(250 * scale)
        top = int(rng.integers(0, height - side + 1))
        left = i * slot + int(rng.integers(0, max(slot - side, 0) + 1))
        canvas[top:top + side, left:left + side] = np.asarray(
            Image.fromarray(face).resize((side, side), Image.BICUBIC))
        boxes.append(tuple(o + v * scale for o, v in zip((top, left, top, left), LFW_FACE_BOX)))
    return canvas, boxes


def iou(a, b) -> float:
    inter = max(0, min(a[2], b[2]) - max(a[0], b[0])) * max(0, min(a[3], b[3]) - max(a[1], b[1]))
    area = lambda box: (box[2] - box[0]) * (box[3] - box[1])  # noqa: E731
    return inter / (area(a) + area(b) - inter)


def test_detected_face_box_matches_the_pasted_face(lfw_photos):
    from dfh_lib.core.data.face_detect import crop_face, find_face

    rng = np.random.default_rng(0)
    for face in lfw_photos:
        image, (truth,) = scene(rng, [face])
        box = find_face(image)
        assert iou(box, truth) >= 0.5, (box, truth)
        crop = crop_face(image)
        assert crop.shape[:2] == (box[2] - box[0], box[3] - box[1])
        assert 1.2 < crop.shape[0] / crop.shape[1] < 1.45  # LFW's 4:3 framing


def test_no_face_and_several_faces_are_reported(lfw_photos):
    from dfh_lib.core.data.face_detect import NoFaceError, SeveralFacesError, find_face

    rng = np.random.default_rng(1)
    blank, _ = scene(rng)
    with pytest.raises(NoFaceError, match="no face found in blank.png"):
        find_face(blank, name="blank.png")
    pair, boxes = scene(rng, lfw_photos[:2], scales=(0.7, 0.55))
    with pytest.raises(SeveralFacesError, match="2 faces found in pair.png"):
        find_face(pair, name="pair.png")
    largest = find_face(pair, largest=True)  # the face pasted larger
    assert iou(largest, boxes[0]) >= 0.5


def test_detect_in_index_search_and_training_folders(lfw_photos, run_dir, tmp_path, capsys):
    rng = np.random.default_rng(2)
    folder = tmp_path / "own"
    for i, face in enumerate(lfw_photos):
        (folder / f"person{i % 2}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(scene(rng, [face])[0]).save(folder / f"person{i % 2}" / f"{i}.jpg")
    Image.fromarray(scene(rng)[0]).save(folder / "person0" / "empty.png")
    pair = tmp_path / "pair.png"
    Image.fromarray(scene(rng, lfw_photos[2:], scales=(0.6, 0.6))[0]).save(pair)

    with pytest.warns(UserWarning, match=r"one face: person0[/\\]empty.png \(no face\)$"):
        faces = load_image_folder(folder, size=(40, 30), detect=True)
    assert faces.images.shape == (4, 40, 30, 3) and faces.identity_names == ["person0", "person1"]

    out = tmp_path / "own.npz"
    code, stdout, err = run_cli(capsys, "index", "--run-dir", run_dir, "--images", folder,
                                "--out", out, "--detect")
    assert code == 0 and "indexed 4 images" in stdout
    assert err.strip().splitlines() == [
        "warning: skipped 1 photo(s) without exactly one face: "
        f"{Path('person0/empty.png')} (no face)"]
    assert CodeFile.load(out).detect is True

    code, stdout, _ = run_cli(capsys, "search", "--index", out, "--image",
                              folder / "person0" / "0.jpg", "--detect")
    assert code == 0 and stdout.splitlines()[2].split() == ["1", "0", "person0/0.jpg"]
    assert_one_line_error(capsys, ["search", "--index", out, "--image", pair, "--detect"],
                          "2 faces found in", "pair.png")
    assert_one_line_error(capsys, ["search", "--index", out, "--image",
                                   folder / "person0" / "empty.png", "--detect"],
                          "no face found in", "empty.png")
    code, stdout, _ = run_cli(capsys, "search", "--index", out, "--image", pair, "--detect",
                              "--largest", "--k", "2")
    assert code == 0 and len(stdout.splitlines()) == 4
