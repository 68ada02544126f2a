"""Small charts as PNG bytes: histograms of rewards and heatmaps, drawn on
a ``matplotlib.figure.Figure`` with the Agg canvas (pyplot, the global
backend and rcParams are never touched)."""

import io
from typing import Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def _png(figure: Figure) -> bytes:
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


def histograms_png(series: dict, title: str, xlabel: str,
                   bins: int = 30) -> bytes:
    """Overlaid histograms of ``series`` (label -> values), each with its
    mean as a dashed line."""
    figure = Figure(figsize=(6.4, 4.0))
    ax = figure.add_subplot()
    series = {label: np.asarray(v, float) for label, v in series.items()}
    low = min(float(v.min()) for v in series.values())
    high = max(float(v.max()) for v in series.values())
    edges = np.linspace(low, high if high > low else low + 1e-6, bins + 1)
    for (label, v), color in zip(series.items(), ("C0", "C1", "C2", "C3")):
        ax.hist(v, bins=edges, alpha=0.55, color=color,
                label=f"{label}: mean {v.mean():.4f}, n = {len(v)}")
        ax.axvline(v.mean(), color=color, linestyle="--")
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("architectures")
    ax.legend(loc="upper left", fontsize="small")
    figure.tight_layout()
    return _png(figure)


def heatmap_png(matrix, title: str, xlabel: str, ylabel: str,
                xticks: Sequence[str] = (), yticks: Sequence[str] = (),
                colorbar: str = "") -> bytes:
    """``matrix`` [rows, columns] as a heatmap (NaN cells left blank)."""
    matrix = np.asarray(matrix, float)
    rows, columns = matrix.shape
    figure = Figure(figsize=(max(6.4, 0.22 * columns + 2.5),
                             max(4.8, 0.22 * rows + 1.8)))
    ax = figure.add_subplot()
    image = ax.imshow(np.ma.masked_invalid(matrix), cmap="viridis",
                      aspect="auto", interpolation="nearest")
    figure.colorbar(image, ax=ax, label=colorbar)
    for ticks, setter, labeller in ((xticks, ax.set_xticks,
                                     ax.set_xticklabels),
                                    (yticks, ax.set_yticks,
                                     ax.set_yticklabels)):
        if ticks:
            setter(range(len(ticks)))
            labeller(ticks, fontsize=6)
    if xticks:
        for label in ax.get_xticklabels():
            label.set_rotation(90)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    figure.tight_layout()
    return _png(figure)
