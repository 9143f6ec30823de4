"""``python -m dfh_lib fetch`` and the book's automatic LFW fetch, offline.

Nothing here touches the network: the URL tables are pointed at ``file://``
copies of small archives built in ``tmp_path``, and the Colab decision is
tested with a fake ``google.colab`` module and a fake fetcher.
"""
import hashlib
import io
import sys
import tarfile
import types
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dfh_lib import data
from dfh_lib.core.data import download
from dfh_lib.core.data import fetch as fetch_lib
from dfh_lib.interfaces import book_data, cli
from dfh_lib.interfaces.fetch_cli import main_fetch

PEOPLE = {"Ann_Smith": 2, "Bob_Jones": 1}  # a two-person stand-in for lfw_funneled


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _errors(stderr: str) -> list[str]:
    """The ``error:`` lines (progress bars also write to stderr)."""
    return [line for line in stderr.splitlines() if line.startswith("error:")]


@pytest.fixture
def fake_lfw(tmp_path, monkeypatch):
    """LFW_REMOTE -> file:// URLs of a tiny funneled archive and pair lists."""
    src = tmp_path / "remote"
    for person, count in PEOPLE.items():
        for k in range(1, count + 1):
            path = src / "lfw_funneled" / person / f"{person}_{k:04d}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((250, 250, 3), 40 * k, np.uint8)).save(path)
    archive = src / "lfw-funneled.tgz"
    with tarfile.open(archive, "w:gz") as tf:
        tf.add(src / "lfw_funneled", "lfw_funneled")
    files = {"lfw-funneled.tgz": archive}
    for name in ("pairsDevTrain.txt", "pairsDevTest.txt", "pairs.txt"):
        files[name] = src / name
        files[name].write_text(f"1\n{name}\n")
    table = {name: fetch_lib.Remote(path.as_uri(), _sha256(path)) for name, path in files.items()}
    monkeypatch.setattr(fetch_lib, "LFW_REMOTE", table)
    monkeypatch.setattr(fetch_lib, "LFW_PEOPLE", len(PEOPLE))
    monkeypatch.setattr(fetch_lib, "LFW_IMAGES", sum(PEOPLE.values()))
    return files


# ------------------------------------------------------------ downloads ----

def test_download_url_checks_sha256_and_leaves_nothing_half_done(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(b"abc")
    good = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    out = download.download_url(src.as_uri(), tmp_path / "out" / "a.bin", good)
    assert out.read_bytes() == b"abc"
    with pytest.raises(download.ChecksumError, match=r"SHA-256 ba7816bf8f01cfea\.\.\., "
                                                     r"expected 0000000000000000\.\.\."):
        download.download_url(src.as_uri(), tmp_path / "out" / "b.bin", "0" * 64)
    with pytest.raises(download.DownloadError, match="download of file:.*missing.bin failed"):
        download.download_url((tmp_path / "missing.bin").as_uri(), tmp_path / "out" / "c.bin")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.bin"]  # no .part


def test_fetch_source_paths_urls_and_drive_ids(tmp_path):
    local = tmp_path / "x.zip"
    local.write_bytes(b"zip?")
    assert download.fetch_source(str(local), tmp_path / "d") == local
    got = download.fetch_source(local.as_uri(), tmp_path / "d")
    assert got == tmp_path / "d" / "x.zip" and got.read_bytes() == b"zip?"
    with pytest.raises(download.DownloadError, match="neither an existing file nor a URL"):
        download.fetch_source(str(tmp_path / "nope.zip"), tmp_path / "d")
    assert download._is_drive("1STytImOvad3PgPN2NwUSVga-fOU5i2Tm")
    assert download._is_drive("https://drive.google.com/file/d/abc/view")
    assert not download._is_drive("https://example.org/att_faces.zip")


def test_extract_reports_a_truncated_archive_in_one_line(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "f.bin").write_bytes(np.random.default_rng(0).bytes(50_000))
    archive = tmp_path / "a.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        tf.add(tmp_path / "src", "top")
    archive.write_bytes(archive.read_bytes()[:20_000])
    with pytest.raises(ValueError, match=r"a.tar.gz is truncated or corrupt \(") as info:
        download.extract(archive, tmp_path / "out")
    assert "\n" not in str(info.value)


# ---------------------------------------------------------- fetch (CLI) ----

def test_fetch_lfw_from_local_urls_then_load(fake_lfw, tmp_path, capsys):
    root = tmp_path / "data"
    summary = main_fetch(["lfw", "--data-dir", str(root)])
    out = capsys.readouterr().out
    assert "LFW: OK" in out and f"people: {len(PEOPLE)}" in out
    home = root / "lfw" / "lfw_home"
    assert summary["folder"] == home / "lfw_funneled"
    assert sorted(p.name for p in home.iterdir()) == ["lfw_funneled", "pairs.txt",
                                                      "pairsDevTest.txt", "pairsDevTrain.txt"]
    assert data.available("lfw", root=root)
    faces = data.load_lfw(root, min_faces_per_person=1)
    assert (len(faces), faces.identity_names) == (3, ["Ann Smith", "Bob Jones"])
    main_fetch(["lfw", "--data-dir", str(root)])  # second run: nothing downloaded
    assert "not downloading it again" in capsys.readouterr().out


def test_fetch_lfw_corrupt_archive_is_one_line_error(fake_lfw, tmp_path, capsys):
    archive = fake_lfw["lfw-funneled.tgz"]
    archive.write_bytes(archive.read_bytes()[:-100])  # truncated: checksum no longer matches
    root = tmp_path / "data"
    with pytest.raises(SystemExit) as info:
        main_fetch(["lfw", "--data-dir", str(root)])
    assert info.value.code == 1
    errors = _errors(capsys.readouterr().err)
    assert len(errors) == 1 and "lfw-funneled.tgz downloaded with SHA-256" in errors[0]
    assert "the file is corrupt or changed" in errors[0]
    home = root / "lfw" / "lfw_home"  # the pair lists are kept, no half-unpacked images
    assert sorted(p.name for p in home.iterdir()) == ["pairs.txt", "pairsDevTest.txt",
                                                      "pairsDevTrain.txt"]


def test_fetch_lfw_wrong_pair_list_checksum(fake_lfw, tmp_path, monkeypatch, capsys):
    table = dict(fetch_lib.LFW_REMOTE)
    table["pairs.txt"] = table["pairs.txt"]._replace(sha256="f" * 64)
    monkeypatch.setattr(fetch_lib, "LFW_REMOTE", table)
    with pytest.raises(SystemExit) as info:
        main_fetch(["lfw", "--data-dir", str(tmp_path / "data")])
    assert info.value.code == 1
    errors = _errors(capsys.readouterr().err)
    assert len(errors) == 1 and errors[0].startswith("error: lfw: file://")
    assert "expected ffffffffffffffff..." in errors[0]


def _orl_archive(tmp_path: Path, mode: str = "w:gz") -> Path:
    src = tmp_path / "orl_src" / "orl_faces"
    for person in range(1, 41):
        (src / f"s{person}").mkdir(parents=True)
        for shot in range(1, 11):
            Image.fromarray(np.full((112, 92), person, np.uint8)).save(
                src / f"s{person}" / f"{shot}.pgm")
    archive = tmp_path / "att_faces.tar.gz"
    with tarfile.open(archive, mode) as tf:
        tf.add(src, "orl_faces")
    return archive


def test_fetch_orl_from_a_file_url_and_corrupt_source(tmp_path, capsys):
    archive = _orl_archive(tmp_path)
    root = tmp_path / "data"
    main_fetch(["orl", "--source", archive.as_uri(), "--data-dir", str(root)])
    assert "ORL: OK" in capsys.readouterr().out
    assert len(data.load_orl(root)) == 400
    broken = tmp_path / "broken.tar.gz"
    broken.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(SystemExit) as info:
        main_fetch(["orl", "--source", str(broken), "--data-dir", str(tmp_path / "d2")])
    assert info.value.code == 1
    errors = _errors(capsys.readouterr().err)
    assert len(errors) == 1 and "broken.tar.gz is truncated or corrupt" in errors[0]


def test_fetch_refuses_an_escaping_archive_member(tmp_path, capsys):
    evil = tmp_path / "evil.tar"
    with tarfile.open(evil, "w") as tf:
        info = tarfile.TarInfo("../escaped.txt")
        info.size = 2
        tf.addfile(info, io.BytesIO(b"no"))
    with pytest.raises(SystemExit) as exit_info:
        main_fetch(["orl", "--source", str(evil), "--data-dir", str(tmp_path / "data")])
    assert exit_info.value.code == 1
    errors = _errors(capsys.readouterr().err)
    assert len(errors) == 1 and "'../escaped.txt' would be extracted to" in errors[0]
    assert "outside the destination" in errors[0]
    assert [p.name for p in (tmp_path / "data").rglob("*")] == ["orl"]  # nothing unpacked


@pytest.mark.parametrize("argv, message", [
    ([], "the following arguments are required: NAME"),
    (["bogus"], "invalid choice: 'bogus'"),
    (["orl"], "orl needs --source ARCHIVE_OR_URL unless --verify-only is given"),
    (["lfw", "--source", "x.tgz"], "lfw is downloaded from its built-in source"),
    (["lfw", "--bits", "3"], "unrecognized arguments: --bits 3"),
])
def test_bad_arguments_give_one_line_and_exit_2(argv, message, capsys):
    with pytest.raises(SystemExit) as info:
        main_fetch(argv)
    assert info.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and captured.err.startswith("error: ")
    assert message in captured.err


def test_verify_only_on_an_empty_folder_fails_in_one_line(tmp_path, capsys):
    for name in ("lfw", "orl", "celeba", "facescrub", "youtube_faces", "vggface2"):
        with pytest.raises(SystemExit) as info:
            main_fetch([name, "--verify-only", "--data-dir", str(tmp_path)])
        assert info.value.code == 1, name
        captured = capsys.readouterr()
        assert captured.err.count("\n") == 1 and captured.err.startswith(f"error: {name}: ")
    assert list(tmp_path.iterdir()) == []  # verifying writes nothing


def test_fetch_lfw_verify_only_real(real_data_dir, capsys):
    main_fetch(["lfw", "--verify-only", "--data-dir", str(real_data_dir)])
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "LFW: OK" and "  people: 5749" in out and "  images: 13233" in out
    assert "  pair lists: SHA-256 match scikit-learn" in out


def test_cli_lists_and_dispatches_fetch(tmp_path, capsys):
    assert cli.COMMANDS["fetch"] is main_fetch
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    assert "  fetch " in capsys.readouterr().out
    with pytest.raises(SystemExit) as info:
        cli.main(["fetch", "orl", "--verify-only", "--data-dir", str(tmp_path)])
    assert info.value.code == 1


def test_missing_data_error_names_the_fetch_command(tmp_path):
    with pytest.raises(data.DatasetNotFoundError) as info:
        data.load_lfw(tmp_path)
    assert f"python -m dfh_lib fetch lfw --data-dir {tmp_path}\n" in str(info.value)
    with pytest.raises(data.DatasetNotFoundError) as info:
        data.load_orl(tmp_path)
    assert (f"python -m dfh_lib fetch orl --data-dir {tmp_path} --source "
            f"ATT_FACES_ARCHIVE_OR_URL") in str(info.value)
    with pytest.raises(data.DatasetNotFoundError, match="python -m dfh_lib fetch vggface2"):
        data.load_image_folder(tmp_path / "none")


# ------------------------------------------- the book's default dataset ----

@pytest.fixture
def book_env(monkeypatch):
    """No dataset override, no DFH_FETCH, no Colab; records fetch calls."""
    for name in ("DFH_DATASET", "DFH_FETCH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    calls = []

    def fake_fetch(name, folder, **kwargs):
        calls.append((name, Path(folder)))
        return {}

    monkeypatch.setattr(book_data, "fetch_dataset", fake_fetch)
    return calls


def _on_colab(monkeypatch):
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))


def test_default_dataset_offline_never_fetches(book_env, tmp_path, capsys):
    assert book_data._default_dataset_name(tmp_path) == "synthfaces"
    assert book_env == []
    out = capsys.readouterr().out
    assert f"No local LFW copy in {tmp_path}" in out and "python -m dfh_lib fetch lfw" in out


def test_default_dataset_on_colab_fetches_lfw(book_env, tmp_path, monkeypatch, capsys):
    _on_colab(monkeypatch)
    assert book_data._default_dataset_name(tmp_path) == "lfw"
    assert book_env == [("lfw", tmp_path)]
    out = capsys.readouterr().out
    assert "fetching it (Colab runtime; ~230 MB" in out
    assert f"Using LFW, fetched into {tmp_path}" in out


def test_default_dataset_on_colab_falls_back_when_fetch_fails(book_env, tmp_path, monkeypatch,
                                                              capsys):
    _on_colab(monkeypatch)

    def offline(name, folder, **kwargs):
        raise download.DownloadError("download of https://x failed: [Errno -3] name resolution")

    monkeypatch.setattr(book_data, "fetch_dataset", offline)
    assert book_data._default_dataset_name(tmp_path) == "synthfaces"
    out = capsys.readouterr().out
    assert ("Fetching LFW failed (DownloadError: download of https://x failed: [Errno -3] name "
            "resolution): using the embedded synthfaces.") in out


def test_dfh_fetch_switches_the_fetch_on_and_off(book_env, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DFH_FETCH", "1")  # not Colab, but asked for
    assert book_data._default_dataset_name(tmp_path) == "lfw"
    assert "(DFH_FETCH=1;" in capsys.readouterr().out
    _on_colab(monkeypatch)
    monkeypatch.setenv("DFH_FETCH", "0")  # Colab, but refused
    assert book_data._default_dataset_name(tmp_path) == "synthfaces"
    assert len(book_env) == 1


def test_default_dataset_present_or_named_needs_no_fetch(book_env, tmp_path, monkeypatch):
    _on_colab(monkeypatch)
    monkeypatch.setenv("DFH_DATASET", "orl")
    assert book_data._default_dataset_name(tmp_path) == "orl"
    monkeypatch.delenv("DFH_DATASET")
    for path in data.lfw.required_paths(tmp_path):
        path.mkdir(parents=True)
    assert book_data._default_dataset_name(tmp_path) == "lfw"
    assert book_env == []


def test_real_fetch_path_works_end_to_end_on_colab(fake_lfw, tmp_path, monkeypatch, capsys):
    """The unpatched fetcher, from local file:// URLs, as Colab would run it."""
    monkeypatch.delenv("DFH_DATASET", raising=False)
    monkeypatch.delenv("DFH_FETCH", raising=False)
    _on_colab(monkeypatch)
    assert book_data._default_dataset_name(tmp_path / "data") == "lfw"
    assert data.available("lfw", root=tmp_path / "data")
