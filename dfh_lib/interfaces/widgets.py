"""ipywidgets explorers: precomputed ones that also work in the static book,
and live ones (:mod:`.live`, re-exported here) that train with a reader's
own settings on a running kernel.

A live callback needs a kernel; the rendered book has none. So an explorer
renders one view per option up front (a figure or HTML) and links the
selector to a :class:`ipywidgets.Stack` in the browser with ``jslink``: the
same widget works in Jupyter, on Colab and in the static HTML. Keep the
options few and the views cheap.
"""
from __future__ import annotations

from typing import Callable, Sequence

from .live import (LiveExplorer, distillation_explorer, edit_explorer, hashing_explorer,
                   quantizer_explorer)

__all__ = ["precomputed_explorer", "precomputed_grid", "precomputed_product", "edit_comparison",
           "LiveExplorer",
           "hashing_explorer", "quantizer_explorer", "distillation_explorer", "edit_explorer"]


def _to_widget(view):
    import ipywidgets as w
    from matplotlib.figure import Figure

    from .viz import figure_to_bytes

    if isinstance(view, Figure):
        # face galleries (many photos) as JPEG, plots as PNG
        fmt = "jpeg" if getattr(view, "is_photo_grid", False) else "png"
        return w.Image(value=figure_to_bytes(view, fmt), format=fmt,
                       layout=w.Layout(max_width="100%", height="auto"))
    if hasattr(view, "to_html"):  # a pandas Styler or DataFrame
        return w.HTML(view.to_html())
    if isinstance(view, str):
        return w.HTML(view)
    if isinstance(view, (list, tuple)):
        return w.VBox([_to_widget(v) for v in view])
    raise TypeError(f"a view must be a matplotlib Figure, HTML string, DataFrame/Styler "
                    f"or a list of those; got {type(view).__name__}")


def precomputed_explorer(options: Sequence, render: Callable, description: str = "",
                         slider: bool = True):
    """A selector over ``options`` showing ``render(option)`` for the chosen one.

    ``render`` returns a matplotlib Figure, an HTML string, a DataFrame/Styler,
    or a list of these. All views are rendered now, then switched in the
    browser, so the widget keeps working in the static book.
    """
    import ipywidgets as w

    options = list(options)
    if not options:
        raise ValueError("precomputed_explorer needs at least one option")
    views = w.Stack([_to_widget(render(option)) for option in options], selected_index=0)
    labels = [str(o) for o in options]
    selector_cls = w.SelectionSlider if slider else w.ToggleButtons
    selector = selector_cls(options=labels, value=labels[0], description=description,
                            style={"description_width": "initial"})
    w.jslink((selector, "index"), (views, "selected_index"))
    return w.VBox([selector, views])


def precomputed_grid(row_options: Sequence, col_options: Sequence, render: Callable,
                     row_description: str = "", col_description: str = ""):
    """Two selectors (e.g. method × bits) over views ``render(row, col)``:
    row buttons and a column slider (see :func:`precomputed_product`)."""
    return precomputed_product([(row_description, row_options), (col_description, col_options)],
                               render)


def precomputed_product(axes, render: Callable):
    """One selector per axis (``{description: options}`` or a list of
    ``(description, options)`` pairs) over the views
    ``render(*choice)`` of every combination.

    The views sit in nested :class:`ipywidgets.Stack` s, one level per axis;
    each selector switches every stack of its level, linked in the browser,
    so it works in the static book too. The last axis gets a slider, the
    others toggle buttons. Renders the product of the option counts.
    """
    import ipywidgets as w

    pairs = list(axes.items()) if isinstance(axes, dict) else list(axes)
    names, options = [name for name, _ in pairs], [list(opts) for _, opts in pairs]
    if not names or not all(options):
        raise ValueError("precomputed_product needs at least one axis, each with at least "
                         "one option")
    selectors = [w.ToggleButtons(options=[str(o) for o in opts], description=name,
                                 style={"description_width": "initial", "button_width": "auto"})
                 for name, opts in zip(names[:-1], options[:-1])]
    selectors.append(w.SelectionSlider(options=[str(o) for o in options[-1]],
                                       description=names[-1],
                                       style={"description_width": "initial"}))

    def build(level: int, chosen: tuple):
        if level == len(options):
            return _to_widget(render(*chosen))
        stack = w.Stack([build(level + 1, chosen + (o,)) for o in options[level]],
                        selected_index=0)
        w.jslink((selectors[level], "index"), (stack, "selected_index"))
        return stack

    return w.VBox([*selectors, build(0, ())])


def edit_comparison(editors: dict, datasets: Sequence, classifier=None, per_dataset: int = 2,
                    extra_edits: Sequence[Sequence[str]] = (("Blond_Hair", "Smiling"),
                                                            ("Eyeglasses", "Bangs"))):
    """Chapter 5: pick a face (the first ``per_dataset`` of each dataset) and an
    edit (nothing, one attribute flipped, or ``extra_edits``); the view shows
    the input and, for each of ``editors`` (name -> generator, all with the
    same attributes), the edit and where it changed pixels (|difference|,
    summed over colours). Faces without attribute labels get ``classifier``'s
    reading. Every view is computed here, so it works in the static book."""
    import matplotlib.pyplot as plt
    import numpy as np

    from ..engine.editing import edit, flip_targets, framing_for, source_attributes

    first = next(iter(editors.values()))
    names = list(first.attribute_names)
    faces = {}
    for dataset in datasets:
        dataset = dataset.subset(np.arange(min(per_dataset, len(dataset))))
        sources = source_attributes(first, dataset, classifier)
        for image, source, label in zip(dataset.images, sources, dataset.labels):
            person = str(dataset.identity_names[label]).replace("_", " ")[:18]
            faces[f"{dataset.name}: {person}"] = (image, source, framing_for(dataset))
    edits = [("no change",), *[(a,) for a in names], *map(tuple, extra_edits)]

    def view(face, chosen):
        image, source, framing = faces[face]
        target = source[None].copy()
        for attribute in chosen.split(" + "):
            if attribute != "no change":
                target = flip_targets(target, attribute, names)
        panels = [("input", image, None)]
        for name, generator in editors.items():
            edited = edit(generator, image[None], target, framing=framing)[0]
            panels += [(name, edited, None),
                       ("|difference|", None, np.abs(edited.astype(int) - image).sum(-1))]
        fig, axes = plt.subplots(1, len(panels), figsize=(1.45 * len(panels), 1.9))
        for ax, (title, picture, diff) in zip(axes, panels):
            ax.imshow(picture if diff is None else diff, cmap="magma",
                      vmax=None if diff is None else max(int(diff.max()), 1))
            ax.set_title(title.replace("_", " "), fontsize=7)
            ax.axis("off")
        fig.is_photo_grid = True
        plt.close(fig)
        return fig

    return precomputed_grid(list(faces), [" + ".join(e) for e in edits], view,
                            "face", "edit")
