"""ipywidgets explorers that also work in the static book.

A live callback needs a kernel; the rendered book has none. So an explorer
renders one view per option up front (a figure or HTML) and links the
selector to a :class:`ipywidgets.Stack` in the browser with ``jslink``: the
same widget works in Jupyter, on Colab and in the static HTML. Keep the
options few and the views cheap.
"""
from __future__ import annotations

from typing import Callable, Sequence

__all__ = ["precomputed_explorer", "precomputed_grid"]


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
    """Two selectors (e.g. method × bits) over views ``render(row, col)``.

    One outer :class:`ipywidgets.Stack` per row option holds an inner Stack
    per column option; the row selector switches the outer stack, the column
    selector every inner one — all linked in the browser, so it works in the
    static book too. Renders ``len(row_options) * len(col_options)`` views.
    """
    import ipywidgets as w

    rows, cols = list(row_options), list(col_options)
    if not rows or not cols:
        raise ValueError("precomputed_grid needs at least one row and one column option")
    row_selector = w.ToggleButtons(options=[str(r) for r in rows], description=row_description,
                                   style={"description_width": "initial", "button_width": "auto"})
    col_selector = w.SelectionSlider(options=[str(c) for c in cols], description=col_description,
                                     style={"description_width": "initial"})
    inner = []
    for row in rows:
        stack = w.Stack([_to_widget(render(row, col)) for col in cols], selected_index=0)
        w.jslink((col_selector, "index"), (stack, "selected_index"))
        inner.append(stack)
    outer = w.Stack(inner, selected_index=0)
    w.jslink((row_selector, "index"), (outer, "selected_index"))
    return w.VBox([row_selector, col_selector, outer])
