"""Live explorers: train (or edit) with settings of your own, from a notebook.

A live explorer is a row of controls, a **Run** button that starts the job in
a background thread (the kernel stays free for other cells), a live plot of
the training loss and validation mAP, a progress bar, a **Stop** button, and
a comparison table that grows with every run. Training runs are
train-or-load (:func:`~dfh_lib.experiments.runs.train_or_load`) in a folder
named by their settings, so asking for the same settings again loads the
finished run, and a stopped run resumes where it stopped.

The explorers need a running kernel (Jupyter, Colab). The rendered book has
none: there a chapter's precomputed explorer (:mod:`dfh_lib.interfaces.widgets`,
the runs the chapter made) works, and the live one shows its controls and says
that runs need a kernel.

Sizes follow the hardware: the default epoch budget is the chapter profile's
on a GPU and at most :data:`CPU_EPOCHS` on a CPU.
"""
from __future__ import annotations

import hashlib
import io
import json
import threading
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from ..core.data.dataset import FaceDataset
from ..core.metrics import evaluate_retrieval
from ..core.profiles import Profile, get_profile
from ..engine.editing import attribute_matrix, edit, framing_for, predict_attributes
from ..engine.train import History
from ..experiments.recipe import Distill, Recipe, Stage, run_recipe
from ..experiments.runs import Variant, train_or_load
from ..nn.multihead import FINAL
from ..nn.quantizers import QUANTIZERS

__all__ = ["Control", "LiveExplorer", "CPU_EPOCHS", "hashing_explorer", "quantizer_explorer",
           "distillation_explorer", "edit_explorer"]

#: the most epochs a live run gets by default without a GPU (a few seconds each)
CPU_EPOCHS = 10


@dataclass(frozen=True)
class Control:
    """One setting of an explorer: a dropdown over ``options``, or a slider
    from ``low`` to ``high`` (``step``; ``log=True``: a log-scale slider;
    int ``default`` and ``step``: an integer slider)."""

    name: str
    default: object
    options: Sequence | None = None
    low: float | None = None
    high: float | None = None
    step: float | None = None
    log: bool = False
    description: str | None = None

    def __post_init__(self):
        if self.options is None and (self.low is None or self.high is None):
            raise ValueError(f"control {self.name!r} needs options or low and high")
        if self.options is not None and self.default not in self.options:
            raise ValueError(f"control {self.name!r}: default {self.default!r} is not one of "
                             f"{list(self.options)}")

    def widget(self):
        import ipywidgets as w

        common = dict(description=self.description or self.name,
                      style={"description_width": "initial"})
        if self.options is not None:
            return w.Dropdown(options=list(self.options), value=self.default, **common)
        if self.log:
            return w.FloatLogSlider(value=self.default, base=10, min=np.log10(self.low),
                                    max=np.log10(self.high), step=self.step or 0.1,
                                    readout_format=".1e", **common)
        if isinstance(self.default, int) and isinstance(self.step or 1, int):
            return w.IntSlider(value=self.default, min=self.low, max=self.high,
                               step=self.step or 1, **common)
        return w.FloatSlider(value=self.default, min=self.low, max=self.high,
                             step=self.step or (self.high - self.low) / 20, **common)


def settings_tag(settings: dict) -> str:
    """8 hex digits naming a settings combination (the run folder's suffix)."""
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:8]


def default_epochs(profile: Profile) -> int:
    """The profile's epochs on a GPU, at most :data:`CPU_EPOCHS` on a CPU."""
    import torch

    return profile.epochs if torch.cuda.is_available() else min(profile.epochs, CPU_EPOCHS)


def _history_png(history: History | None, title: str) -> bytes:
    """Loss and validation mAP against epoch, as PNG bytes (thread-safe: no pyplot)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 2.4), dpi=90)
    loss_ax = fig.add_subplot(1, 2, 1)
    map_ax = fig.add_subplot(1, 2, 2)
    if history is not None and len(history):
        epochs = [r["epoch"] for r in history.records]
        loss_ax.plot(epochs, history.column("loss"), color="C3")
        scored = [(r["epoch"], r["val_mAP"]) for r in history.records
                  if r.get("val_mAP") is not None]
        if scored:
            map_ax.plot(*zip(*scored), "o-", color="C0")
    loss_ax.set(xlabel="epoch", title="training loss")
    map_ax.set(xlabel="epoch", title="validation mAP", ylim=(0, 1))
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


class LiveExplorer:
    """Controls + Run/Stop + progress + live plot + a growing comparison table.

    ``job(settings, report)`` does one run: ``settings`` maps each control's
    name to its value; it calls ``report(history)`` after every epoch (the
    explorer redraws the plot and the progress bar; ``report`` returns True
    once Stop was pressed, and the job should then end) or ``report(png)``
    with an image to show; it returns the run's table row (a dict).

    ``background=False`` runs jobs in the calling thread (tests).
    """

    def __init__(self, controls: Sequence[Control], job: Callable, title: str = "",
                 total: Callable[[dict], int] | None = None, background: bool = True):
        import ipywidgets as w

        self.controls = {c.name: c.widget() for c in controls}
        self.job, self.total, self.background = job, total, background
        self.rows: list[dict] = []
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.run_button = w.Button(description="Run", button_style="primary", icon="play")
        self.stop_button = w.Button(description="Stop", icon="stop", disabled=True)
        self.progress = w.IntProgress(value=0, min=0, max=1, description="epochs")
        if total is None:  # a job without epochs (an edit): no progress bar
            self.progress.layout.display = "none"
        self.status = w.HTML("Choose settings and press Run (needs a running kernel: "
                             "Jupyter or Colab).")
        # hidden until there is a plot (an empty image shows as a broken one)
        self.plot = w.Image(format="png", layout=w.Layout(max_width="100%", height="auto",
                                                          display="none"))
        self.table = w.HTML()
        self.run_button.on_click(lambda _: self.start())
        self.stop_button.on_click(lambda _: self.stop())
        self.widget = w.VBox([w.HTML(f"<b>{title}</b>") if title else w.HTML(),
                              w.HBox(list(self.controls.values()),
                                     layout=w.Layout(flex_flow="row wrap")),
                              w.HBox([self.run_button, self.stop_button, self.progress]),
                              self.status, self.plot, self.table])

    @property
    def settings(self) -> dict:
        return {name: widget.value for name, widget in self.controls.items()}

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Run the job with the current settings (in the background by default)."""
        if self.running:
            self.status.value = "A run is already going: press Stop first."
            return
        settings = self.settings
        self._stop.clear()
        self.error = None
        self.progress.value, self.progress.max = 0, max(1, self.total(settings)) \
            if self.total else 1
        self.run_button.disabled, self.stop_button.disabled = True, False
        self.status.value = f"running {settings} …"
        if self.background:
            self._thread = threading.Thread(target=self._run, args=(settings,), daemon=True)
            self._thread.start()
        else:
            self._run(settings)

    def stop(self) -> None:
        """Ask the running job to end after its current epoch."""
        self._stop.set()
        self.status.value = "stopping after this epoch …"

    def join(self, timeout: float | None = None) -> None:
        """Wait for a background run to end."""
        if self._thread is not None:
            self._thread.join(timeout)

    def _report(self, update) -> bool:
        if isinstance(update, bytes):
            self.plot.value = update
        elif update is not None:
            self.progress.value = min(len(update), self.progress.max)
            self.plot.value = _history_png(update, str(self.settings))
        if self.plot.value:
            self.plot.layout.display = None
        return self._stop.is_set()

    def _run(self, settings: dict) -> None:
        start = time.perf_counter()
        try:
            row = self.job(settings, self._report)
            row = {**row, "seconds": round(time.perf_counter() - start, 1)}
            self.rows.append(row)
            self.table.value = _rows_html(self.rows)
            stopped = " (stopped: resumes from here next time)" if self._stop.is_set() else ""
            self.status.value = f"done in {row['seconds']:.1f} s{stopped}"
        except Exception as err:  # shown in the widget: a thread's traceback is lost
            self.error = err
            self.status.value = f"<span style='color:#b00'>error: {err}</span>"
        finally:
            self.run_button.disabled, self.stop_button.disabled = False, True


def _rows_html(rows: list[dict]) -> str:
    frame = pd.DataFrame(rows)
    return frame.to_html(index=False, float_format=lambda v: f"{v:.4g}")


# ----------------------------------------------------------------------------
# the chapters' explorers
# ----------------------------------------------------------------------------

def _hashing_job(splits, profile, runs_dir, method_and_kwargs: Callable[[dict], tuple]):
    """A job training ``method_and_kwargs(settings) -> (method, loss_kwargs)``."""
    def job(settings: dict, report: Callable) -> dict:
        method, loss_kwargs = method_and_kwargs(settings)
        label = f"live-{method}-{settings_tag(settings)}"
        run = train_or_load(Variant(label, method, loss_kwargs), splits, settings["bits"],
                            profile, runs_dir, progress=False, callback=report,
                            lr=settings["lr"], epochs=settings["epochs"], eval_every=1)
        report(run.history)
        metrics = _query_metrics(run, splits)
        return {**settings, "mAP": metrics["mAP"], "P@H<=2": metrics["P@H<=2"],
                "best_epoch": run.history.best_epoch, "epochs_run": len(run.history)}
    return job


def _query_metrics(run, splits) -> dict:
    return evaluate_retrieval(run.codes(splits.query), run.codes(splits.database),
                              splits.query.labels, splits.database.labels)


def _loop_controls(profile: Profile, bits: Sequence[int]) -> list[Control]:
    epochs = default_epochs(profile)
    return [Control("bits", bits[0], options=tuple(bits), description="bits K"),
            Control("lr", profile.lr, low=1e-4, high=1e-1, log=True, description="learning rate"),
            Control("epochs", epochs, low=1, high=max(epochs * 3, 3), step=1)]


def hashing_explorer(splits, profile=None, runs_dir=None,
                     methods: Sequence[str] = ("dfh", "ddh", "csq", "dpsh", "greedyhash"),
                     bits: Sequence[int] = (12, 24, 36, 48), background: bool = True):
    """Chapter 3: train a method (DFH's margin, scale and sign weight apply
    to ``dfh``) at a code length and learning rate of your choice."""
    profile = get_profile(profile)
    controls = [Control("method", methods[0], options=tuple(methods)),
                *_loop_controls(profile, bits),
                Control("margin_fraction", 0.25, low=0.0, high=0.5, step=0.025,
                        description="DFH margin (× K bits)"),
                Control("scale", 4.0, low=1.0, high=16.0, step=0.5, description="DFH scale s"),
                Control("sign_weight", 1.0, low=0.0, high=4.0, step=0.25,
                        description="DFH sign weight")]

    def method_and_kwargs(s):
        if s["method"] != "dfh":
            return s["method"], {}
        return "dfh", {"margin_fraction": s["margin_fraction"], "scale": s["scale"],
                       "sign_weight": s["sign_weight"]}

    return LiveExplorer(controls, _hashing_job(splits, profile, runs_dir, method_and_kwargs),
                        "Train DFH or a baseline with your own settings",
                        total=lambda s: s["epochs"], background=background)


def quantizer_explorer(splits, profile=None, runs_dir=None, bits: Sequence[int] = (12, 24, 36, 48),
                       background: bool = True):
    """Chapter 4: DFH with a quantization scheme and penalty weight of your choice
    (schemes without a penalty ignore the weight)."""
    profile = get_profile(profile)
    controls = [Control("quantization", "quadratic", options=tuple(QUANTIZERS)),
                Control("weight", 0.1, low=1e-3, high=10.0, log=True,
                        description="penalty weight"),
                *_loop_controls(profile, bits)]

    def method_and_kwargs(s):
        penalty = QUANTIZERS[s["quantization"]].has_penalty
        return "dfhq", {"quantization": s["quantization"],
                        "quantization_weight": s["weight"] if penalty else None}

    return LiveExplorer(controls, _hashing_job(splits, profile, runs_dir, method_and_kwargs),
                        "Train DFH with a quantizer of your choice",
                        total=lambda s: s["epochs"], background=background)


def distillation_explorer(splits, profile=None, runs_dir=None,
                          heads: Sequence[str] | None = None,
                          bits: Sequence[int] = (12, 24, 36, 48), background: bool = True):
    """Chapter 6: a multi-head DFH student distilled from the teacher with
    weights of your choice. The teacher trains once in ``runs_dir/teacher``
    (loaded when the chapter trained it there)."""
    profile = get_profile(profile)
    controls = [*_loop_controls(profile, bits),
                Control("similarity", 1.0, low=0.0, high=4.0, step=0.25,
                        description="KD similarity weight"),
                Control("soft", 1.0, low=0.0, high=4.0, step=0.25, description="KD soft weight"),
                Control("temperature", 4.0, low=1.0, high=10.0, step=0.5, description="KD T"),
                Control("aux_weight", 0.5, low=0.0, high=1.0, step=0.05,
                        description="auxiliary heads' weight")]

    def job(settings: dict, report: Callable) -> dict:
        stage = Stage(f"live-{settings_tag(settings)}", heads=heads,
                      aux_weight=settings["aux_weight"],
                      distill=Distill(settings["similarity"], settings["soft"],
                                      settings["temperature"]),
                      overrides={"lr": settings["lr"], "epochs": settings["epochs"],
                                 "eval_every": 1})
        result = run_recipe(Recipe((Stage("teacher", kind="teacher"), stage), name="live"),
                            splits, settings["bits"], profile, runs_dir, progress=False,
                            callback=report)
        history = result.histories[(stage.title, settings["bits"])]
        report(history)
        row = result.rows[-1]
        return {**settings, "mAP": row["mAP"], "P@H<=2": row["P@H<=2"],
                "best_epoch": history.best_epoch, "epochs_run": len(history)}

    return LiveExplorer(controls, job, "Distil into a multi-head student with your own weights",
                        total=lambda s: s["epochs"], background=background)


def edit_explorer(generator, faces, classifier=None, background: bool = True):
    """Chapter 5: pick a face, an attribute and a strength (the attribute's
    target value: 0 = off, 1 = on, in between: a partial edit). The table
    keeps how much of the image each edit changed and, with an attribute
    ``classifier``, whether it sees the attribute before and after. The
    faces' current attributes come from ``classifier`` (faces without
    labels, e.g. LFW) or from their own labels."""
    attributes = list(generator.attribute_names)
    framing = framing_for(faces)
    sources = predict_attributes(classifier, faces, framing, attributes) \
        if classifier is not None else attribute_matrix(faces, attributes)
    options = [f"{i}: {str(faces.identity_names[label]).replace('_', ' ')}"
               for i, label in enumerate(faces.labels)]
    controls = [Control("face", options[0], options=options),
                Control("attribute", attributes[0], options=attributes),
                Control("strength", 1.0, low=0.0, high=1.0, step=0.05)]

    def job(settings: dict, report: Callable) -> dict:
        index = options.index(settings["face"])
        image = faces.images[index:index + 1]
        edited = edit(generator, image, {settings["attribute"]: settings["strength"]},
                      source=sources[index:index + 1], framing=framing)
        report(_edit_png(image[0], edited[0], settings))
        changed = np.abs(edited[0].astype(int) - image[0]).sum(-1) > 30
        row = {**settings, "changed_pixels": float(changed.mean())}
        if classifier is not None:
            column = attributes.index(settings["attribute"])
            after = predict_attributes(classifier, _with_images(faces.subset([index]), edited),
                                       framing, attributes)
            row.update(seen_before=int(sources[index, column]), seen_after=int(after[0, column]))
        return row

    return LiveExplorer(controls, job, "Edit a face of your choice", background=background)


def _with_images(dataset: FaceDataset, images: np.ndarray) -> FaceDataset:
    return FaceDataset(images, dataset.labels, dataset.identity_names, dataset.name,
                       dataset.attributes, dataset.attribute_names, dataset.source_index)


def _edit_png(image: np.ndarray, edited: np.ndarray, settings: dict) -> bytes:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.8, 1.9), dpi=90)
    diff = np.abs(edited.astype(int) - image).sum(-1)
    for i, (picture, name) in enumerate(((image, "input"),
                                         (edited, f"{settings['attribute']} = "
                                                  f"{settings['strength']:g}"),
                                         (diff, "|difference|"))):
        ax = fig.add_subplot(1, 3, i + 1)
        ax.imshow(picture, cmap="magma")
        ax.set_title(name.replace("_", " "), fontsize=7)
        ax.axis("off")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()
