"""Shared fixtures. Real-data tests need ``DFH_DATA_DIR`` (CI points it at
``../shared/data``); without it they skip and say why."""
import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    """The real face-data folder (LFW, ORL, CelebA subset), or skip."""
    value = os.environ.get("DFH_DATA_DIR")
    if not value:
        pytest.skip("real face data not configured: set DFH_DATA_DIR (CI uses ../shared/data)")
    path = Path(value)
    if not path.is_dir():
        pytest.skip(f"DFH_DATA_DIR={value} is not a folder")
    return path


@pytest.fixture(autouse=True)
def _writable_cache(tmp_path_factory, monkeypatch):
    """Keep every cache the library writes (e.g. scikit-learn's LFW joblib
    cache) in one session-wide temporary folder, never in the data folder."""
    cache = tmp_path_factory.getbasetemp() / "dfh_cache"
    cache.mkdir(exist_ok=True)
    if "DFH_CACHE_DIR" not in os.environ:
        monkeypatch.setenv("DFH_CACHE_DIR", str(cache))


@pytest.fixture(scope="module")
def one_thread():
    """Tiny tensors: one intra-op thread avoids spin contention on a busy
    2-core machine (use with ``pytestmark = pytest.mark.usefixtures(...)``)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def cpu_deterministic_guard(monkeypatch):
    """Train on the CPU and restore torch's deterministic-algorithms flag
    afterwards (exact-resume tests switch it on)."""
    import torch

    monkeypatch.setenv("DFH_DEVICE", "cpu")
    before = torch.are_deterministic_algorithms_enabled()
    yield
    torch.use_deterministic_algorithms(before)
