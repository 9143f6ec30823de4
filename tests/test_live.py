"""Live explorers: their callbacks run real (tiny) trainings and edits, in the
background or in the calling thread; Stop ends a run after its epoch and the
next Run resumes it; the same settings load instead of training again."""
import pytest

pytest.importorskip("ipywidgets")

from dfh_lib.core.data import load_synthfaces, retrieval_protocol  # noqa: E402
from dfh_lib.core.profiles import get_profile  # noqa: E402
from dfh_lib.interfaces import live  # noqa: E402
from dfh_lib.nn.gan import GANConfig, build_gan  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread", "cpu_deterministic_guard")


@pytest.fixture(scope="module")
def splits():
    faces = load_synthfaces(8, 8, size=32)
    return retrieval_protocol(faces, num_query=2, num_val=1)


@pytest.fixture
def tiny():
    return get_profile("tiny")


def _set(explorer, **values):
    for name, value in values.items():
        explorer.controls[name].value = value


def test_run_button_trains_and_fills_the_table(splits, tiny, tmp_path):
    explorer = live.hashing_explorer(splits, tiny, tmp_path, background=False)
    assert explorer.plot.layout.display == "none"  # no empty (broken) image before a run
    _set(explorer, method="dfh", bits=12, epochs=2, sign_weight=0.5)
    explorer.run_button.click()
    assert explorer.error is None, explorer.error
    (row,) = explorer.rows
    assert row["method"] == "dfh" and row["bits"] == 12 and row["epochs_run"] == 2
    assert 0 < row["mAP"] <= 1 and explorer.progress.value == 2
    assert explorer.plot.value[:4] == b"\x89PNG" and "<table" in explorer.table.value
    assert explorer.plot.layout.display is None  # shown once there is a plot
    folders = list(tmp_path.iterdir())
    assert len(folders) == 1 and folders[0].name.startswith("live-dfh-")
    explorer.run_button.click()  # the same settings: loaded, same codes
    assert len(explorer.rows) == 2 and explorer.rows[1]["mAP"] == row["mAP"]
    assert len(list(tmp_path.iterdir())) == 1
    _set(explorer, method="ddh")
    explorer.run_button.click()
    assert [r["method"] for r in explorer.rows] == ["dfh", "dfh", "ddh"]


def test_background_run_with_stop_then_resume(splits, tiny, tmp_path):
    explorer = live.hashing_explorer(splits, tiny, tmp_path)
    _set(explorer, method="dpsh", bits=12, epochs=3)
    explorer.start()
    explorer.stop()  # ends after the first epoch (the flag is read after each epoch)
    explorer.join(120)
    assert not explorer.running and explorer.error is None, explorer.error
    assert explorer.rows[0]["epochs_run"] == 1 and "stopped" in explorer.status.value
    explorer.start()  # the same settings: resumes from the checkpoint
    explorer.join(120)
    assert explorer.rows[1]["epochs_run"] == 3 and explorer.run_button.disabled is False


def test_errors_are_shown_not_raised(splits, tiny, tmp_path):
    def failing(settings, report):
        raise ValueError("no faces in that folder")

    explorer = live.LiveExplorer([live.Control("x", 1, options=(1, 2))], failing,
                                 background=False)
    explorer.start()
    assert "no faces in that folder" in explorer.status.value
    assert isinstance(explorer.error, ValueError) and explorer.rows == []
    with pytest.raises(ValueError, match="default 3 is not one of"):
        live.Control("x", 3, options=(1, 2))


def test_quantizer_explorer_without_a_penalty(splits, tiny, tmp_path):
    explorer = live.quantizer_explorer(splits, tiny, tmp_path, background=False)
    _set(explorer, quantization="sign_ste", bits=12, epochs=1)
    explorer.start()
    assert explorer.error is None, explorer.error
    assert explorer.rows[0]["quantization"] == "sign_ste"


def test_distillation_explorer_trains_teacher_once(splits, tiny, tmp_path):
    explorer = live.distillation_explorer(splits, tiny, tmp_path, background=False)
    _set(explorer, bits=12, epochs=1, soft=0.0)
    explorer.start()
    _set(explorer, similarity=2.0)
    explorer.start()
    assert explorer.error is None, explorer.error
    assert len(explorer.rows) == 2 and (tmp_path / "teacher").is_dir()
    assert len([p for p in tmp_path.iterdir() if p.name.startswith("live-")]) == 2


def test_edit_explorer_applies_the_strength(tiny):
    faces = load_synthfaces(3, 2, size=32)
    config = GANConfig.from_profile(tiny, image_size=32, attributes=faces.attribute_names[:3])
    generator = build_gan(config)[0].eval()
    explorer = live.edit_explorer(generator, faces, background=False)
    _set(explorer, attribute=faces.attribute_names[1], strength=0.5)
    explorer.start()
    assert explorer.error is None, explorer.error
    row = explorer.rows[0]
    assert row["strength"] == 0.5 and 0 <= row["changed_pixels"] <= 1
    assert explorer.plot.value[:4] == b"\x89PNG"
    assert explorer.progress.layout.display == "none"  # an edit has no epochs
