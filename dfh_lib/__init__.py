"""dfh_lib — the shared library of the dfh-book (Deep Face Hashing with GANs).

Chapters write ``import dfh_lib as dfh`` and use the sub-modules, one per
concept: ``data``, ``metrics``, ``index``, ``classic``, ``models``, ``losses``,
``train``, ``viz``, ``widgets``, ``results``, ``profiles``, ``runtime``.
Sub-modules are imported on first use, so ``import dfh_lib`` stays light.
"""
from importlib import import_module

__version__ = "0.1.0"

_SUBMODULES = {"data", "metrics", "index", "classic", "experiments", "dfh_loss", "models", "losses", "quantization",
               "train", "viz", "widgets", "results", "profiles", "runtime", "gan", "distill"}
_SHORTCUTS = {"setup_notebook": "runtime", "get_device": "runtime",
              "seed_everything": "runtime", "get_profile": "profiles"}

__all__ = sorted(_SUBMODULES | set(_SHORTCUTS)) + ["__version__"]


def __getattr__(name):
    if name in _SUBMODULES:
        return import_module(f".{name}", __name__)
    if name in _SHORTCUTS:
        return getattr(import_module(f".{_SHORTCUTS[name]}", __name__), name)
    raise AttributeError(f"module 'dfh_lib' has no attribute {name!r}")
