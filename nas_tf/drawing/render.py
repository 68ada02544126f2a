"""The PNG of a laid-out diagram, drawn on a ``matplotlib.figure.Figure``
with the Agg canvas: pyplot, the global backend and rcParams are never
touched."""

import io
import math
from typing import List

from matplotlib import patches
from matplotlib import path as mpath
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from nas_tf.drawing import layout
from nas_tf.drawing.diagrams import DOWN
from nas_tf.drawing.diagrams import Diagram
from nas_tf.drawing.diagrams import INPUT
from nas_tf.drawing.diagrams import NODE
from nas_tf.drawing.diagrams import OUTPUT
from nas_tf.drawing.diagrams import diagram

_COLORS = {INPUT: "#b5ddb0", NODE: "#bcd4f2", OUTPUT: "#f6dc9b"}
_LABEL_COLOR = "#a02020"
_ARC_COLOR = "#555555"
_LEGEND_COLOR = "#222222"
# Legend width beside a layer column; a legend below panels is as wide as
# the figure, which is at least this wide.
_SIDE_LEGEND_WIDTH = 300
_MIN_WIDTH = 620
# Panels wider than this with labels in one line get them in two.
_WRAP_WIDTH = 720


def _wrap(line: str, width: float, measure) -> List[str]:
    """``line`` broken at spaces into lines at most ``width`` pixels wide
    (continuations indented). Words are measured one by one: a line is as
    wide as its words and spaces."""
    space = (measure("x x", layout.LEGEND_FONT)[0] -
             measure("xx", layout.LEGEND_FONT)[0])
    words = line.split(" ")
    lines, used = [words[0]], measure(words[0], layout.LEGEND_FONT)[0]
    for word in words[1:]:
        w = measure(word, layout.LEGEND_FONT)[0]
        if used + space + w <= width:
            lines[-1] += " " + word
            used += space + w
        else:
            lines.append("   " + word)
            used = measure(lines[-1], layout.LEGEND_FONT)[0]
    return lines


def _legend_text(legend, width, measure) -> str:
    lines = []
    for entry in legend:
        lines += _wrap("\u2022 " + entry, width, measure)
    return "\n".join(lines)


def _draw_panel(ax, placed: layout.PlacedPanel, dx: float, dy: float) -> None:
    """Draws ``placed`` shifted by (dx, dy)."""
    x0, _, x1, y1 = placed.bounds
    ax.text((x0 + x1) / 2 + dx, y1 + dy - 4, placed.panel.title,
            ha="center", va="top", fontsize=layout.TITLE_FONT, fontweight="bold")
    down = placed.panel.flow == DOWN
    for p in placed.edges:
        points = [(x + dx, y + dy) for x, y in p.points]
        codes = [mpath.Path.MOVETO] + [
            mpath.Path.CURVE3 if len(points) == 3 else
            mpath.Path.CURVE4 if len(points) == 4 else
            mpath.Path.LINETO] * (len(points) - 1)
        arc = down and len(points) > 2
        ax.add_patch(patches.FancyArrowPatch(
            path=mpath.Path(points, codes), arrowstyle="-|>",
            mutation_scale=11, shrinkA=0, shrinkB=0,
            lw=0.9 if arc else 1.1, color=_ARC_COLOR if arc else "black",
            zorder=1))
        if p.label:
            ax.text(p.label.x + dx, p.label.y + dy, p.text,
                    ha="center", va="center", fontsize=layout.LABEL_FONT,
                    color=_LABEL_COLOR, zorder=3,
                    bbox=dict(boxstyle="square,pad=0.15", fc="white",
                              ec="none", alpha=0.9))
    for box in placed.panel.boxes:
        r = placed.boxes[box.key]
        ax.add_patch(patches.FancyBboxPatch(
            (r.x - r.w / 2 + dx, r.y - r.h / 2 + dy), r.w, r.h,
            boxstyle="round,pad=0,rounding_size=5", fc=_COLORS[box.kind],
            ec="black", lw=1, zorder=2))
        if down:  # texts of a column of layers start at one left edge
            ax.text(r.x - r.w / 2 + layout.BOX_PAD[0] + dx, r.y + dy, box.text,
                    ha="left", va="center", fontsize=layout.BOX_FONT, zorder=4)
        else:
            ax.text(r.x + dx, r.y + dy, box.text, ha="center", va="center",
                    ma="center", fontsize=layout.BOX_FONT, zorder=4)


def render(drawn: Diagram) -> bytes:
    """The PNG of a diagram: panels one above the other with the legend
    below, or a layer column with the legend at its right."""
    figure = Figure(dpi=layout.DPI)
    FigureCanvasAgg(figure)
    measure = layout.TextMeasure(figure)
    placed = [layout.layout_panel(p, False, measure) for p in drawn.panels]
    if any(p.bounds[2] - p.bounds[0] > _WRAP_WIDTH for p in placed):
        placed = [layout.layout_panel(p, True, measure) for p in drawn.panels]
    sizes = [(b[2] - b[0], b[3] - b[1]) for b in (p.bounds for p in placed)]
    beside = any(p.flow == DOWN for p in drawn.panels)
    if beside:
        legend_w = _SIDE_LEGEND_WIDTH
        panels_w = max(w for w, _ in sizes)
        width = 3 * layout.MARGIN + panels_w + legend_w
    else:
        width = max([_MIN_WIDTH] + [w + 2 * layout.MARGIN for w, _ in sizes])
        legend_w = width - 2 * layout.MARGIN
    legend = _legend_text(drawn.legend, legend_w, measure)
    legend_h = measure(legend, layout.LEGEND_FONT)[1]
    panels_h = sum(h for _, h in sizes) + layout.MARGIN * (len(sizes) - 1)
    if beside:
        height = max(panels_h, legend_h) + 2 * layout.MARGIN
    else:
        height = panels_h + legend_h + 3 * layout.MARGIN
    width, height = math.ceil(width), math.ceil(height)
    figure.set_size_inches(width / layout.DPI, height / layout.DPI)
    ax = figure.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, width)
    ax.set_ylim(0, height)
    ax.axis("off")
    top = height - layout.MARGIN
    for p, (w, h) in zip(placed, sizes):
        x0, y0, _, y1 = p.bounds
        left = layout.MARGIN if beside else (width - w) / 2
        _draw_panel(ax, p, left - x0, top - y1)
        top -= h + layout.MARGIN
    if beside:
        legend_xy = (2 * layout.MARGIN + max(w for w, _ in sizes),
                     height - layout.MARGIN)
    else:
        legend_xy = (layout.MARGIN, top)
    ax.text(*legend_xy, legend, ha="left", va="top", fontsize=layout.LEGEND_FONT,
            color=_LEGEND_COLOR)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=layout.DPI)
    return buffer.getvalue()


def draw_architecture(space, arch) -> bytes:
    """Returns a PNG drawing of ``arch`` (an Architecture of ``space``)."""
    return render(diagram(space, arch))
