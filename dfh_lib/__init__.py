"""dfh_lib — the shared library of the dfh-book (Deep Face Hashing with GANs).

The code lives in six layers, each importing only the ones before it
(import-linter checks this in ``make test``):

    core → nn → engine → analysis → experiments → interfaces

``core`` (profiles, runtime, metrics, index, classic hashing, datasets),
``nn`` (networks, quantizers, losses), ``engine`` (checkpoints, the training
loops, encoding, editing), ``analysis`` (measuring codes, heads, edits),
``experiments`` (train-or-load and the chapter experiments), ``interfaces``
(command line, results tables, figures, widgets).

Chapters write ``import dfh_lib as dfh`` and use one name per topic:
``dfh.data``, ``dfh.metrics``, ``dfh.index``, ``dfh.classic``, ``dfh.models``,
``dfh.losses``, ``dfh.dfh_loss``, ``dfh.quantization``, ``dfh.train``,
``dfh.experiments``, ``dfh.gan``, ``dfh.distill``, ``dfh.results``,
``dfh.viz``, ``dfh.widgets``, ``dfh.scale``, ``dfh.open_set``, ``dfh.profiles``,
``dfh.runtime`` (the table
below says which module each one is). They are imported on first use, so
``import dfh_lib`` stays light.
"""
from importlib import import_module

from .core.version import __version__

#: topic name -> the module it is (topics/ modules re-export several layers)
TOPICS = {
    "data": "interfaces.topics.data", "metrics": "core.metrics", "index": "core.index",
    "classic": "core.classic", "profiles": "core.profiles", "runtime": "core.runtime",
    "models": "nn.models", "losses": "nn.losses", "dfh_loss": "nn.losses.dfh",
    "quantization": "interfaces.topics.quantization", "train": "engine.train",
    "experiments": "experiments", "gan": "interfaces.topics.gan",
    "distill": "interfaces.topics.distill", "results": "interfaces.results",
    "viz": "interfaces.viz", "widgets": "interfaces.widgets",
    "scale": "analysis.scale", "benchmark": "experiments.benchmark",
    "backbone": "engine.backbone", "open_set": "interfaces.topics.open_set",
}
_SHORTCUTS = {"setup_notebook": "core.runtime", "get_device": "core.runtime",
              "seed_everything": "core.runtime", "get_profile": "core.profiles"}

__all__ = sorted(set(TOPICS) | set(_SHORTCUTS)) + ["__version__"]


def __getattr__(name):
    if name in TOPICS:
        return import_module(f".{TOPICS[name]}", __name__)
    if name in _SHORTCUTS:
        return getattr(import_module(f".{_SHORTCUTS[name]}", __name__), name)
    raise AttributeError(f"module 'dfh_lib' has no attribute {name!r}")
