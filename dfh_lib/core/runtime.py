"""Where and how a run executes: device, seeds, and the notebook banner.

Every chapter starts with ``run = dfh.setup_notebook("ch3")``: it picks the
profile and device, seeds every random generator, sets plotting defaults and
prints one line saying what it chose, so a reader always knows whether a
number came from a CPU ``tiny`` run or a GPU ``gpu`` run.

Heavy libraries (torch, matplotlib) are imported inside the functions so
that ``import dfh_lib`` stays fast.
"""
from __future__ import annotations

import os
import random
from dataclasses import dataclass
from pathlib import Path

from .version import __version__
from .profiles import Profile, get_profile

__all__ = ["RunContext", "cpu_name", "describe_device", "get_device", "seed_everything",
           "setup_notebook"]


def get_device(prefer=None):
    """The torch device to run on.

    Args:
        prefer: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"`` or a
            ``torch.device``. None means ``$DFH_DEVICE`` if set, else the best
            available device in the order cuda → mps → cpu.

    Raises:
        ValueError: the requested device is not available here (an explicit
            request never falls back silently).
    """
    import torch

    request = prefer if prefer is not None else os.environ.get("DFH_DEVICE") or None
    if request is None:
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(request)
    except RuntimeError as err:
        raise ValueError(f"device must be 'cpu', 'cuda', 'cuda:N' or 'mps'; got "
                         f"{request!r} ({err})") from None
    available = {"cpu": True, "cuda": torch.cuda.is_available(),
                 "mps": torch.backends.mps.is_available()}
    if not available.get(device.type, False) or (
            device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count()):
        source = "prefer" if prefer is not None else "$DFH_DEVICE"
        raise ValueError(f"{source} asks for device {request!r}, which is not available "
                         f"here; use 'cpu' or unset DFH_DEVICE to pick automatically")
    return device


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``), for benchmark reports."""
    import platform

    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f
                        if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown CPU"


def describe_device(device) -> str:
    """A short human description, e.g. ``"cpu (2 threads)"`` or
    ``"cuda: NVIDIA H100 80GB HBM3"``."""
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    if device.type == "cpu":
        return f"cpu ({torch.get_num_threads()} threads)"
    return device.type


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed python, numpy and torch (all devices); optionally force
    deterministic kernels.

    With ``deterministic=True`` torch raises on operations that have no
    deterministic implementation, cuDNN autotuning is off, and cuBLAS gets
    the workspace setting it needs. ``deterministic=False`` switches that
    enforcement off again (the default torch behaviour).
    """
    import numpy as np
    import torch

    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int; got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device
    if deterministic:
        # cuBLAS reads this when its first handle is created; harmless on CPU
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = deterministic
    torch.use_deterministic_algorithms(deterministic)


@dataclass(frozen=True)
class RunContext:
    """What a chapter runs with; returned by :func:`setup_notebook`.

    Attributes:
        chapter: the chapter tag, e.g. ``"ch3"``.
        profile: the active :class:`~dfh_lib.core.profiles.Profile`.
        device: the ``torch.device`` chosen by :func:`get_device`.
        dataset: ``$DFH_DATASET`` if set, else None (the chapter's default).
        seed: the seed given to :func:`seed_everything`.
        runs_dir: where this chapter's runs (checkpoints, histories) live.
    """

    chapter: str
    profile: Profile
    device: object
    dataset: str | None
    seed: int
    runs_dir: Path

    def run_dir(self, name: str) -> Path:
        """The folder for one named run of this chapter, e.g. ``run_dir("dpsh-12")``."""
        return self.runs_dir / name


def _default_runs_dir(chapter: str) -> Path:
    """``$DFH_RUNS_DIR``, else ``runs/`` at the checkout root (git-ignored),
    else ``./runs`` for an installed package; one sub-folder per chapter."""
    root = os.environ.get("DFH_RUNS_DIR")
    if root is None:
        checkout = Path(__file__).resolve().parents[2]  # dfh_lib/core/runtime.py
        root = checkout / "runs" if (checkout / "pyproject.toml").exists() else Path("runs")
    return Path(root) / chapter


def _plot_defaults() -> None:
    import matplotlib.pyplot as plt

    plt.style.use("seaborn-v0_8-whitegrid")  # seaborn's theme, shipped with matplotlib
    # ~100 dpi keeps committed notebook outputs small (STYLE.md, principle 11)
    plt.rcParams.update({"figure.dpi": 100, "savefig.dpi": 100})


def setup_notebook(chapter: str, profile: Profile | str | None = None,
                   seed: int = 0) -> RunContext:
    """Prepare a chapter: profile, device, seeds, plot defaults, banner.

    Prints one line such as ``dfh_lib 0.1 | chapter ch3 | profile tiny |
    device cpu (2 threads) | torch 2.14.1 | seed 0``.

    Args:
        chapter: a short tag used in the banner and the runs folder.
        profile: a profile or its name; None = ``$DFH_PROFILE``, else by CUDA.
        seed: seeds python, numpy and torch.
    """
    import torch

    if not isinstance(chapter, str) or not chapter:
        raise ValueError(f"chapter must be a non-empty string such as 'ch3'; got {chapter!r}")
    run = RunContext(chapter=chapter, profile=get_profile(profile), device=get_device(),
                     dataset=os.environ.get("DFH_DATASET") or None, seed=seed,
                     runs_dir=_default_runs_dir(chapter))
    seed_everything(seed)
    _plot_defaults()
    parts = [f"dfh_lib {__version__}", f"chapter {chapter}", f"profile {run.profile.name}",
             f"device {describe_device(run.device)}", f"torch {torch.__version__}",
             f"seed {seed}"]
    if run.dataset:
        parts.append(f"dataset {run.dataset}")
    print(" | ".join(parts))
    return run
