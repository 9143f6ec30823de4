"""Tests for dfh_lib.core.runtime: device choice, seeding, notebook banner."""
import random

import numpy as np
import pytest
import torch

from dfh_lib import __version__
from dfh_lib.core.runtime import (RunContext, describe_device, get_device, seed_everything,
                             setup_notebook)


@pytest.fixture(autouse=True)
def _restore_determinism():
    """seed_everything changes global torch flags; put them back."""
    before = torch.are_deterministic_algorithms_enabled()
    yield
    torch.use_deterministic_algorithms(before)


def test_get_device_explicit_and_env(monkeypatch):
    monkeypatch.delenv("DFH_DEVICE", raising=False)
    assert get_device("cpu") == torch.device("cpu")
    monkeypatch.setenv("DFH_DEVICE", "cpu")
    assert get_device() == torch.device("cpu")


def test_get_device_auto_prefers_cuda(monkeypatch):
    monkeypatch.delenv("DFH_DEVICE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert get_device() == torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert get_device() == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_get_device_unavailable_is_refused_not_silently_replaced(monkeypatch):
    monkeypatch.setenv("DFH_DEVICE", "cuda")
    with pytest.raises(ValueError, match=r"\$DFH_DEVICE asks for device 'cuda'.*not available"):
        get_device()
    with pytest.raises(ValueError, match="prefer asks for device 'cuda:3'"):
        get_device("cuda:3")
    with pytest.raises(ValueError, match="device must be 'cpu', 'cuda'"):
        get_device("tpu")


def test_describe_device_cpu_names_threads():
    assert describe_device("cpu") == f"cpu ({torch.get_num_threads()} threads)"


def test_seed_everything_reproduces_all_generators():
    def draw():
        return random.random(), np.random.rand(), torch.rand(1).item()

    seed_everything(123)
    first = draw()
    seed_everything(123)
    assert draw() == first
    seed_everything(124)
    assert draw() != first


def test_seed_everything_deterministic_flag_and_bad_seed():
    seed_everything(0, deterministic=True)
    assert torch.are_deterministic_algorithms_enabled()
    assert torch.backends.cudnn.deterministic
    seed_everything(0, deterministic=False)
    assert not torch.are_deterministic_algorithms_enabled()
    with pytest.raises(ValueError, match="seed must be a non-negative int; got -1"):
        seed_everything(-1)


def test_setup_notebook_banner_and_context(monkeypatch, tmp_path, capsys):
    import matplotlib

    monkeypatch.setenv("DFH_DEVICE", "cpu")
    monkeypatch.setenv("DFH_DATASET", "lfw")
    monkeypatch.setenv("DFH_RUNS_DIR", str(tmp_path))
    run = setup_notebook("ch3", profile="tiny", seed=7)
    drawn = torch.rand(3)
    banner = capsys.readouterr().out.strip()
    assert banner == (f"dfh_lib {__version__} | chapter ch3 | profile tiny | device "
                      f"cpu ({torch.get_num_threads()} threads) | torch {torch.__version__} "
                      f"| seed 7 | dataset lfw")
    assert isinstance(run, RunContext)
    assert (run.profile.name, run.device, run.dataset, run.seed) == ("tiny", torch.device("cpu"),
                                                                     "lfw", 7)
    assert run.run_dir("dpsh-12") == tmp_path / "ch3" / "dpsh-12"
    assert matplotlib.rcParams["figure.dpi"] == 100
    torch.manual_seed(7)
    assert torch.equal(drawn, torch.rand(3))  # setup_notebook seeded torch


def test_setup_notebook_rejects_bad_arguments(monkeypatch):
    monkeypatch.setenv("DFH_DEVICE", "cpu")
    with pytest.raises(ValueError, match="chapter must be a non-empty string"):
        setup_notebook("")
    with pytest.raises(ValueError, match="unknown profile 'huge'"):
        setup_notebook("ch1", profile="huge")


def test_runtime_import_is_light():
    import subprocess
    import sys

    code = ("import sys, dfh_lib.core.runtime; "
            "print('torch' in sys.modules, 'matplotlib' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
