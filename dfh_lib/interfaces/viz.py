"""Figures and tables for the book: face galleries, retrieval galleries,
precision-recall curves, metric-vs-bits plots, tables with provenance, GAN
edit galleries (:func:`show_edits`, Chapter 5)."""
from __future__ import annotations

import io
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np

from ..core.data.dataset import check_face_images

__all__ = ["show_faces", "show_retrievals", "plot_pr_curves", "plot_metric_vs_bits",
           "plot_histories", "show_table", "figure_to_png", "figure_to_bytes", "as_jpeg",
           "show_edits", "plot_distance_histogram", "plot_head_maps", "plot_penalties",
           "plot_code_gradients", "plot_weighted_gradient", "plot_run_with_term",
           "plot_similarity", "edit_gallery", "plot_low_shot"]


def _face_axes(rows: int, cols: int, image_size=(64, 64), left: float = 1.2):
    # about one screen pixel per image pixel at 100 dpi: sharp faces, small PNGs;
    # `left` inches of margin hold the row labels
    height, width = (max(s, 40) / 85 for s in image_size)
    fig, axes = plt.subplots(rows, cols, figsize=(cols * width + left, rows * height + 0.5),
                             squeeze=False, gridspec_kw={"wspace": 0.04, "hspace": 0.04})
    fig.subplots_adjust(left=left / (cols * width + left), right=0.99, bottom=0.01,
                        top=1 - 0.4 / (rows * height + 0.5))
    fig.is_photo_grid = True  # widgets store it as JPEG
    for ax in axes.flat:
        ax.set_xticks([]), ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(False)
    return fig, axes


def show_faces(dataset, num_identities: int = 6, per_identity: int = 8, seed: int = 0,
               title: str | None = None):
    """A gallery: one row per identity (chosen at random among those with
    enough images), ``per_identity`` of its images, the name on the left."""
    rng = np.random.default_rng(seed)
    counts = np.bincount(dataset.labels, minlength=dataset.num_identities)
    eligible = np.flatnonzero(counts >= per_identity)
    if not len(eligible):
        eligible = np.flatnonzero(counts)
    chosen = rng.choice(eligible, size=min(num_identities, len(eligible)), replace=False)
    fig, axes = _face_axes(len(chosen), per_identity, dataset.image_size)
    for row, label in zip(axes, chosen):
        members = np.flatnonzero(dataset.labels == label)
        members = rng.choice(members, size=min(per_identity, len(members)), replace=False)
        for ax, i in zip(row, members):
            ax.imshow(dataset.images[i])
        row[0].set_ylabel(str(dataset.identity_names[label]).replace("_", " ")[:18],
                          rotation=0, ha="right", va="center", fontsize=7)
    fig.suptitle(title or repr(dataset), fontsize=9)
    return fig


def show_retrievals(query, database, ranking, query_indices=None, k: int = 10,
                    title: str | None = None):
    """Query faces (left) and their top-``k`` database faces by Hamming
    ranking; green frame = same identity, red = another identity.

    ``ranking``: (num_queries, >= k) database indices, e.g. from
    :func:`dfh_lib.core.metrics.hamming_ranking`.
    """
    ranking = np.asarray(ranking)
    if query_indices is None:
        query_indices = np.arange(min(4, len(query)))
    fig, axes = _face_axes(len(query_indices), k + 1, query.image_size, left=0.35)
    for row, q in zip(axes, query_indices):
        row[0].imshow(query.images[q])
        row[0].set_ylabel("query", fontsize=7)
        for ax, d in zip(row[1:], ranking[q, :k]):
            ax.imshow(database.images[d])
            correct = database.labels[d] == query.labels[q]
            for spine in ax.spines.values():
                spine.set_visible(True)
                spine.set_color("tab:green" if correct else "tab:red")
                spine.set_linewidth(2.5)
    if title:
        fig.suptitle(title, fontsize=9)
    return fig


def plot_pr_curves(curves: dict, ax=None, title: str | None = None):
    """Precision-recall curves: ``curves[name] = (precision, recall)`` arrays."""
    if ax is None:
        _, ax = plt.subplots(figsize=(4.2, 3.4))
    top = 0.0
    for name, (precision, recall) in curves.items():
        ax.plot(recall, precision, marker=".", markersize=3, label=name)
        top = max(top, float(np.nanmax(precision)))
    # zoom on weak curves (pixel hashing) instead of squashing them at the bottom
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, min(1.02, 1.15 * top + 0.02)))
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=9)
    ax.figure.tight_layout()
    return ax.figure


def plot_metric_vs_bits(df, metric: str = "mAP", method_col: str = "method",
                        bits_col: str = "bits", ax=None):
    """One line per method: ``metric`` against code length."""
    if ax is None:
        _, ax = plt.subplots(figsize=(4.2, 3.2))
    data = df.reset_index()
    for method, rows in data.groupby(method_col, sort=False):
        rows = rows.sort_values(bits_col)
        ax.plot(rows[bits_col], rows[metric], marker="o", label=method)
    ax.set(xlabel="bits K", ylabel=metric, xticks=sorted(data[bits_col].unique()))
    ax.legend(fontsize=8)
    ax.figure.tight_layout()
    return ax.figure


def show_table(df, precision: int = 4):
    """A styled table captioned with its provenance (profile, dataset, split, device)."""
    from .results import provenance_line

    caption = provenance_line(df)
    return df.style.format(precision=precision).set_caption(caption).set_table_styles(
        [{"selector": "caption", "props": "caption-side: bottom; font-size: 0.8em;"}])


def figure_to_png(fig, dpi: int = 90) -> bytes:
    """PNG bytes of a matplotlib figure (closed afterwards) — for widgets."""
    return figure_to_bytes(fig, "png", dpi)


def figure_to_bytes(fig, fmt: str = "png", dpi: int = 90) -> bytes:
    """``fmt`` ("png" or "jpeg") bytes of a matplotlib figure, closed
    afterwards. JPEG keeps photo galleries 5-10x smaller than PNG, which
    matters for widgets whose every view is stored in the notebook."""
    buffer = io.BytesIO()
    options = {"pil_kwargs": {"quality": 85}} if fmt == "jpeg" else {}
    fig.savefig(buffer, format=fmt, dpi=dpi, bbox_inches="tight", **options)
    plt.close(fig)
    return buffer.getvalue()


def plot_histories(histories: dict, metric: str = "val_mAP", ax=None, title: str | None = None):
    """Training curves: ``metric`` per epoch for each named
    :class:`~dfh_lib.engine.train.History` (epochs without the metric are skipped)."""
    if ax is None:
        _, ax = plt.subplots(figsize=(4.2, 3.2))
    for name, history in histories.items():
        points = [(r["epoch"], r[metric]) for r in history.records if r.get(metric) is not None]
        if points:
            ax.plot(*zip(*points), marker=".", label=str(name))
    ax.set(xlabel="epoch", ylabel=metric)
    ax.legend(fontsize=7, ncol=2)
    if title:
        ax.set_title(title, fontsize=9)
    ax.figure.tight_layout()
    return ax.figure


def as_jpeg(fig, dpi: int = 100):
    """Display ``fig`` as a JPEG image (and close it): face galleries are
    photos, which PNG stores 5-10x larger; keeps committed notebooks small."""
    from IPython.display import Image

    return Image(data=figure_to_bytes(fig, "jpeg", dpi), format="jpeg")


def show_edits(images: np.ndarray, edits: np.ndarray, columns: Sequence[str],
               switched_on=None, row_labels: Sequence[str] | None = None,
               title: str | None = None, input_title: str = "input"):
    """A gallery of edits: one row per face, the input then one column per
    edit (e.g. :func:`~dfh_lib.engine.editing.flip_attribute`'s ``(N, E, H, W, 3)``).

    ``switched_on`` (N, E) marks each edited cell ``+`` (1: the attribute
    switched on), ``−`` (0: off) or nothing (NaN); ``row_labels`` go on the left;
    column titles break at ``_``. Returns the figure (wrap it in :func:`as_jpeg`)."""
    check_face_images(images)
    if edits.shape[:2] != (len(images), len(columns)) or edits.shape[2:] != images.shape[1:]:
        raise ValueError(f"edits must be (N={len(images)}, E={len(columns)}, "
                         f"{', '.join(map(str, images.shape[1:]))}); got {edits.shape}")
    fig, axes = _face_axes(len(images), len(columns) + 1, images.shape[1:3],
                           left=0.9 if row_labels is not None else 0.2)
    for r, row in enumerate(axes):
        row[0].imshow(images[r])
        for c, ax in enumerate(row[1:]):
            ax.imshow(edits[r, c])
            mark = None if switched_on is None else np.asarray(switched_on, float)[r, c]
            if mark is not None and not np.isnan(mark):
                on = bool(mark)
                ax.text(0.04, 0.04, "+" if on else "−", transform=ax.transAxes,
                        color="white", fontsize=6, fontweight="bold", va="bottom",
                        bbox=dict(boxstyle="square,pad=0.1", lw=0,
                                  fc="tab:green" if on else "tab:red"))
        if row_labels is not None:
            row[0].set_ylabel(str(row_labels[r])[:16], rotation=0, ha="right", va="center",
                              fontsize=7)
    for ax, name in zip(axes[0], [input_title, *columns]):
        name = str(name).replace("Mouth_Slightly_Open", "Mouth_open")
        ax.set_title(name.replace("_", "\n"), fontsize=6.5)
    if title:
        fig.suptitle(title, fontsize=9, y=1.0)
    return fig


def edit_gallery(generator, faces, classifier=None, title: str | None = None):
    """:func:`show_edits` of :func:`~dfh_lib.engine.editing.attribute_gallery`:
    each face with nothing asked to change, then one attribute flipped per
    column (``+`` on, ``−`` off), rows labelled with the person's name."""
    from ..engine.editing import attribute_gallery

    edits, marks, columns = attribute_gallery(generator, faces, classifier)
    names = [str(faces.identity_names[label]).replace("_", " ") for label in faces.labels]
    return show_edits(faces.images, edits, columns, marks, row_labels=names, title=title)


def plot_low_shot(rows, chance: float | None = None, references: dict | None = None):
    """mAP against training images per person, one panel per code length:
    a line per condition (mean over seeds, bars: the seeds' spread) from the
    rows of :func:`~dfh_lib.experiments.gan_augmentation.augmentation_experiment`;
    ``chance`` (a random ranking) dotted, ``references`` (label -> mAP) dashed."""
    import pandas as pd

    rows = pd.DataFrame(rows)
    lengths = sorted(rows["bits"].unique())
    fig, axes = plt.subplots(1, len(lengths), figsize=(4.3 * len(lengths), 3.2), sharey=True,
                             squeeze=False)
    for ax, bits in zip(axes[0], lengths):
        part = rows[rows["bits"] == bits].groupby(["condition", "k"], sort=False)["mAP"]
        stats = part.agg(["mean", "std"]).fillna(0)
        for condition in rows["condition"].unique():
            line = stats.loc[condition]
            ax.errorbar(line.index, line["mean"], yerr=line["std"], marker="o", capsize=3,
                        label=condition)
        if chance is not None:
            ax.axhline(chance, color="grey", ls=":", lw=1, label="random ranking")
        for (name, value), color in zip((references or {}).items(), ("black", "tab:brown")):
            ax.axhline(value, color=color, ls="--", lw=1, label=name)
        ax.set(title=f"{bits} bits", xlabel="training images per person (k)",
               xticks=sorted(rows["k"].unique()))
    axes[0][0].set_ylabel("mAP (query vs database)")
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    return fig


def pca_scatter(ax, codes: np.ndarray, labels: np.ndarray, people: int = 8,
                title: str | None = None):
    """The codes of the first ``people`` identities projected on the first two
    principal components of all the codes, coloured by identity."""
    centred = codes - codes.mean(0)
    components = np.linalg.svd(centred, full_matrices=False)[2][:2]
    chosen = np.isin(labels, np.unique(labels)[:people])
    ax.scatter(*(centred[chosen] @ components.T).T, c=labels[chosen], cmap="tab10", s=16)
    ax.set(title=title, xticks=[], yticks=[])
    return ax


def code_histogram(model, data, row: dict):
    """A figure: the histogram of a model's relaxed outputs on ``data`` (raw
    outputs read through tanh), titled with the run's mAP, P@H<=2 and its
    share of undecided outputs (|u| < 0.5)."""
    from ..engine.encoding import encode

    values = encode(model, data)
    values = values.tanh() if values.abs().max() > 1 else values
    fig, ax = plt.subplots(figsize=(5.2, 2.6))
    ax.hist(values.ravel().numpy(), bins=50, range=(-1, 1), color="C0")
    ax.set(xlabel="relaxed output u (query faces)", yticks=[],
           title=f"mAP {row['mAP']:.3f}   P@H≤2 {row['P@H<=2']:.3f}   "
                 f"undecided {float((values.abs() < 0.5).float().mean()):.0%}")
    plt.close(fig)
    return fig


def plot_distance_histogram(query_codes, db_codes, query_labels, db_labels, ax=None,
                            title: str | None = None):
    """Hamming distances of every (query, database) pair, same person (green)
    against another person (grey), each as shares of its pairs; the dashed
    line closes the radius-2 ball that P@H<=2 looks into."""
    from ..core.metrics import hamming_distance

    dist = hamming_distance(query_codes, db_codes).numpy()
    same = np.asarray(query_labels)[:, None] == np.asarray(db_labels)[None, :]
    bits = int(np.asarray(query_codes).shape[1])
    if ax is None:
        _, ax = plt.subplots(figsize=(6.4, 2.8))
    bins = np.arange(bits + 2) - 0.5
    ax.hist(dist[~same], bins=bins, density=True, color="grey", alpha=0.6, label="another person")
    ax.hist(dist[same], bins=bins, density=True, color="tab:green", alpha=0.6,
            label="same person")
    ax.axvline(2.5, color="k", ls="--", lw=1)
    ax.set(xlabel="Hamming distance", ylabel="share of pairs", xlim=(-0.5, bits + 0.5))
    if title:
        ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    return ax


def plot_head_maps(maps: dict, ax=None, title: str | None = None):
    """Horizontal bars of ``{head: mAP}`` (depth order, the final head last),
    each labelled with its value, on a 0-1 axis."""
    if ax is None:
        _, ax = plt.subplots(figsize=(4.2, 2.8))
    ax.barh(list(maps), list(maps.values()), color=["C1", "C2", "C0"][-len(maps):])
    for y, value in enumerate(maps.values()):
        ax.text(value, y, f" {value:.3f}", va="center", fontsize=8)
    ax.set(xlim=(0, 1), xlabel="mAP of the head's own codes")
    if title:
        ax.set_title(title, fontsize=9)
    return ax


def _style(name: str, colors: dict | None, highlight: str | None) -> dict:
    return dict(color=(colors or {}).get(name), lw=2.4 if name == highlight else 1.3,
                label=name)


def plot_penalties(quantizers: dict, axes, colors: dict | None = None,
                   highlight: str | None = None, z_range: float = 4.0):
    """Three panels of quantization penalties ``{name: quantizer}``
    (:mod:`dfh_lib.nn.quantizers`): the penalty q against z, its gradient
    ∂q/∂u against u = tanh z (penalties on z read through tanh; none for
    codes that are exactly sgn z), and ∂q/∂z — what the network receives."""
    import torch

    z = torch.linspace(-z_range, z_range, 801, dtype=torch.float64)
    u = torch.linspace(-0.995, 0.995, 801, dtype=torch.float64)
    for name, q in quantizers.items():
        style = _style(name, colors, highlight)
        axes[0].plot(z, q.elementwise(q.variable(z)), **style)
        if float(q.codes(torch.tensor([0.3])).abs()) != 1:  # codes exactly sgn z: no u in between
            du = q.gradient(u) if q.space == "u" else q.grad_wrt_z(torch.atanh(u)) / (1 - u**2)
            axes[1].plot(u, du, **style)
        axes[2].plot(z, q.grad_wrt_z(z), **style)
    for ax, title, xlabel, ylim in zip(axes, ["penalty q(z)", "∂q/∂u", "∂q/∂z (what z receives)"],
                                       ["z", "u", "z"], [(0, 6), (-6, 6), (-4.5, 4.5)]):
        ax.set(title=title, xlabel=xlabel, ylim=ylim)
        ax.axhline(0, color="grey", lw=0.6)
        ax.legend(fontsize=7)
    return axes


def plot_code_gradients(curves: dict, ax, colors: dict | None = None, z_range: float = 4.0):
    """∂u/∂z of the codes of quantizers ``{label: (quantizer, line style)}``
    against z; a label's colour is that of its first word in ``colors``."""
    import torch

    z = torch.linspace(-z_range, z_range, 801, dtype=torch.float64)
    for label, (q, ls) in curves.items():
        key = label.split(",")[0].split(":")[0]
        ax.plot(z, q.code_gradient(z), label=label, color=(colors or {}).get(key), ls=ls, lw=1.3)
    ax.set(title="∂u/∂z of the codes", xlabel="z", ylim=(-0.2, 10.5))
    ax.axhline(0, color="grey", lw=0.6)
    ax.legend(fontsize=7)
    return ax


def plot_weighted_gradient(quantizer, weights, chosen: float, ax, z_range: float = 4.0):
    """w · ∂q/∂z of one quantizer for every weight in ``weights``, the
    ``chosen`` one in colour and the others in grey, on a common scale."""
    import torch

    z = torch.linspace(-z_range, z_range, 401)
    grad = quantizer.grad_wrt_z(z)
    for w in weights:
        ax.plot(z, w * grad, color="C0" if w == chosen else "0.8", lw=2 if w == chosen else 1,
                zorder=2 if w == chosen else 1)
    top = 1.1 * max(weights) * float(grad.abs().max())
    ax.set(xlabel="z", ylim=(-top, top))
    return ax


def plot_run_with_term(history, term: str, ax, title: str | None = None,
                       term_label: str | None = None):
    """Validation mAP (dots, left axis) of a run's history and one of its
    loss terms per epoch (red, right axis, labelled ``term_label``)."""
    frame = history.to_frame()
    evaluated = frame["val_mAP"].dropna()
    ax.plot(evaluated.index, evaluated, "o-", color="C0")
    ax.set(xlabel="epoch", ylabel="validation mAP", ylim=(0, None))
    if title:
        ax.set_title(title)
    twin = ax.twinx()
    twin.plot(frame.index, frame[term], color="C3", lw=1)
    twin.set_ylabel(term_label or f"{term} term", color="C3")
    twin.grid(False)
    return ax


def plot_similarity(matrix, ax, title: str | None = None, fontsize: int = 9):
    """A similarity matrix (values in [−1, 1], e.g. of faces sorted by
    identity, so each person is a block on the diagonal) as a heat map;
    returns the image (for a colour bar)."""
    image = ax.imshow(matrix, vmin=-1, vmax=1, cmap="RdBu_r", interpolation="nearest")
    ax.set(xticks=[], yticks=[])
    if title:
        ax.set_title(title, fontsize=fontsize)
    return image
