"""Where a diagram is drawn, in pixels (y up): boxes sized to their text,
columns or a column of layers, edges bent around boxes, op labels placed
where they cover nothing else."""

import dataclasses
import math
from typing import Dict, List, Optional, Tuple

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from nas_tf.drawing.diagrams import DOWN
from nas_tf.drawing.diagrams import Edge
from nas_tf.drawing.diagrams import Panel
from nas_tf.drawing.diagrams import RIGHT

DPI = 100
BOX_FONT, LABEL_FONT, LEGEND_FONT, TITLE_FONT = 11, 10, 10, 12
BOX_PAD = (8, 5)
_MIN_BOX = (34, 28)
_ROW_GAP = 40  # between boxes of one column (flow right)
_LAYER_GAP = 14  # between layers (flow down)
_MIN_COLUMN_GAP = 44
_LABEL_PAD = (4, 2)  # a label's white background around its text
_LABEL_ROOM = 12  # free space on each side of a label between columns
# Labels across a gap take this many times their summed height: more than
# that and they go side by side.
_LABEL_CROWDING = 2.5
_WIDENINGS = 3
MARGIN = 14
# Candidate spots for an edge's label, as a fraction of the way along it;
# the middle first.
_LABEL_SPOTS = (0.5,) + tuple(0.5 + sign * 0.04 * k for k in range(1, 8)
                              for sign in (-1, 1))
# Candidate bends of an edge (control point offset / edge length).
_BENDS = (0.0, 0.14, -0.14, 0.28, -0.28, 0.42, -0.42)
# Arcs of a layer column bulge right by this much, more for longer spans.
_ARC_BASE, _ARC_STEP, _ARC_MAX = 16, 7, 130


class TextMeasure:
    """Pixel width and height of a text at a font size, as Agg renders it
    at ``DPI`` (multi-line and mathtext included)."""

    def __init__(self, figure: Optional[Figure] = None):
        if figure is None:
            figure = Figure(dpi=DPI)
            FigureCanvasAgg(figure)
        self._figure = figure
        self._cache = {}

    def __call__(self, text: str, size: float) -> Tuple[float, float]:
        if (text, size) not in self._cache:
            artist = self._figure.text(0, 0, text, fontsize=size)
            extent = artist.get_window_extent(
                self._figure.canvas.get_renderer())
            artist.remove()
            self._cache[text, size] = (float(extent.width),
                                       float(extent.height))
        return self._cache[text, size]


@dataclasses.dataclass(frozen=True)
class Rect:
    """An axis-aligned rectangle by its center and size."""

    x: float
    y: float
    w: float
    h: float

    def overlaps(self, other: "Rect", gap: float = 0.0) -> bool:
        return (abs(self.x - other.x) * 2 < self.w + other.w + 2 * gap and
                abs(self.y - other.y) * 2 < self.h + other.h + 2 * gap)


@dataclasses.dataclass
class PlacedEdge:
    edge: Edge
    points: Tuple[Tuple[float, float], ...]  # a Bezier: start, controls, end
    label: Optional[Rect] = None
    text: str = ""  # the label as drawn


@dataclasses.dataclass
class PlacedPanel:
    """A panel in pixels: its boxes, edges and the box around all of it
    (the title band included)."""

    panel: Panel
    boxes: Dict[str, Rect]
    edges: List[PlacedEdge]
    bounds: Tuple[float, float, float, float]  # x0, y0, x1, y1


def _bezier(points, t: float) -> Tuple[float, float]:
    """A point of the quadratic or cubic Bezier curve through ``points``."""
    n = len(points) - 1
    x = y = 0.0
    for i, (px, py) in enumerate(points):
        weight = math.comb(n, i) * t ** i * (1 - t) ** (n - i)
        x += weight * px
        y += weight * py
    return x, y


def _samples(points, count: int = 40):
    return [_bezier(points, (i + 0.5) / count) for i in range(count)]


def _box_sizes(panel, measure):
    sizes = {}
    for b in panel.boxes:
        w, h = measure(b.text, BOX_FONT)
        sizes[b.key] = (max(_MIN_BOX[0], w + 2 * BOX_PAD[0]),
                        max(_MIN_BOX[1], h + 2 * BOX_PAD[1]))
    return sizes


def shown_label(label: str, wrap: bool) -> str:
    """An op label as drawn; wrapped, a long name takes two lines, broken
    at its last underscore ("sep_conv" over "3x3")."""
    head, _, tail = label.rpartition("_")
    if wrap and head and len(label) > 8:
        return f"{head}\n{tail}"
    return label


def _label_size(label, wrap, measure):
    w, h = measure(shown_label(label, wrap), LABEL_FONT)
    return w + 2 * _LABEL_PAD[0], h + 2 * _LABEL_PAD[1]


def _place_right(panel: Panel, wrap: bool, measure):
    """Boxes in columns by rank, ordered as ``Panel`` says, sharing the
    column's height evenly. A gap between columns gives the labels of the
    edges across it lanes side by side: as many as their summed height asks
    for, and one more, up to ``_WIDENINGS`` times, while a label there
    still covers another label or a box."""
    sizes = _box_sizes(panel, measure)
    ranks = sorted({b.rank for b in panel.boxes})
    columns = [[b for b in panel.boxes if b.rank == r] for r in ranks]
    slot = max(h for _, h in sizes.values()) + _ROW_GAP
    height = slot * max(len(c) for c in columns)
    ys = {}
    for column in columns:
        def mean_source_height(box):
            heights = [ys[e.source] for e in panel.edges
                       if e.target == box.key and e.source in ys]
            return -sum(heights) / len(heights) if heights else 0.0
        ordered = (column if panel.keep_order else
                   sorted(column, key=mean_source_height))
        share = height / len(ordered)
        for i, b in enumerate(ordered):
            ys[b.key] = height / 2 - (i + 0.5) * share
    rank_of = {b.key: b.rank for b in panel.boxes}
    widest, lanes = [0.0], [0]
    for r in ranks[1:]:
        # An edge across several gaps counts in each for its share.
        across = [(e, rank_of[e.target] - rank_of[e.source])
                  for e in panel.edges if e.label and
                  rank_of[e.source] < r <= rank_of[e.target]]
        sized = [_label_size(e.label, wrap, measure) for e, _ in across]
        stacked = sum(h / span for (_, span), (_, h) in zip(across, sized))
        widest.append(max([w for w, _ in sized], default=0.0))
        lanes.append(math.ceil(_LABEL_CROWDING * stacked / height))
    for attempt in range(_WIDENINGS + 1):
        x, xs = 0.0, []
        for j, column in enumerate(columns):
            if j:
                x += max(_MIN_COLUMN_GAP, lanes[j] * widest[j] +
                         (lanes[j] + 1) * _LABEL_ROOM)
            width = max(sizes[b.key][0] for b in column)
            xs.append(x + width / 2)
            x += width
        rects = {b.key: Rect(xs[ranks.index(b.rank)], ys[b.key],
                             *sizes[b.key]) for b in panel.boxes}
        placed = _route_right(panel, rects, wrap, measure)
        crowded = _crowded_gaps(placed, rects, xs)
        if not crowded or attempt == _WIDENINGS:
            return rects, placed
        for j in crowded:
            lanes[j] += 1


def _crowded_gaps(placed, rects, column_xs) -> set:
    """The gaps (by the index of the column right of them) holding a label
    that covers another label or a box."""
    labels = [p.label for p in placed if p.label]
    crowded = set()
    for i, label in enumerate(labels):
        others = labels[:i] + labels[i + 1:] + list(rects.values())
        if any(label.overlaps(o) for o in others):
            right = [j for j, x in enumerate(column_xs) if x > label.x]
            crowded.add(right[0] if right else len(column_xs) - 1)
    return crowded


def _arrival_points(panel: Panel, rects: Dict[str, Rect]) -> dict:
    """Arrows into one box arrive spread over its left side, top to bottom
    in the order of their sources' heights. Returns id(edge) -> point."""
    arrivals = {}
    for e in panel.edges:
        arrivals.setdefault(e.target, []).append(e)
    ends = {}
    for target, incoming in arrivals.items():
        box = rects[target]
        order = sorted(range(len(incoming)),
                       key=lambda i: -rects[incoming[i].source].y)
        spread = max(0.0, box.h / 2 - 6)
        for slot, i in enumerate(order):
            offset = (spread * (1 - 2 * slot / (len(incoming) - 1))
                      if len(incoming) > 1 else 0.0)
            ends[id(incoming[i])] = (box.x - box.w / 2, box.y + offset)
    return ends


def _inside(points: np.ndarray, rects: List[Rect], gap: float = 0.0) -> int:
    """How many (point, rectangle) pairs have the point inside the
    rectangle grown by ``gap``."""
    if not len(points) or not rects:
        return 0
    r = np.array([(q.x, q.y, q.w / 2 + gap, q.h / 2 + gap) for q in rects])
    dx = np.abs(points[:, None, 0] - r[None, :, 0])
    dy = np.abs(points[:, None, 1] - r[None, :, 1])
    return int(np.sum((dx < r[None, :, 2]) & (dy < r[None, :, 3])))


def _route_right(panel: Panel, rects: Dict[str, Rect], wrap: bool,
                 measure) -> List[PlacedEdge]:
    """Quadratic curves from a box's right side to the left side of the box
    it feeds, each with its label on it. Labelled edges go first. An edge
    takes the bend and its label the spot that, in this order, cross no
    other box, cover no label, cross few placed edges and labels, and bend
    least. Two edges between the same boxes never take the same bend."""
    ends = _arrival_points(panel, rects)
    order = sorted(panel.edges, key=lambda e: not e.label)
    labels, paths, placed, bent = [], np.zeros((0, 2)), [], {}
    for e in order:
        src = rects[e.source]
        start, end = (src.x + src.w / 2, src.y), ends[id(e)]
        others = [r for k, r in rects.items()
                  if k not in (e.source, e.target)]
        twins = sum(o.source == e.source and o.target == e.target
                    for o in panel.edges) > 1
        taken = bent.setdefault((e.source, e.target), [])
        bends = [b for b in _BENDS
                 if b not in taken and not (twins and b == 0)]
        size = _label_size(e.label, wrap, measure) if e.label else None
        best = None
        for preference, bend in enumerate(bends):
            points = _bent(start, end, bend)
            samples = np.array(_samples(points))
            cost = (1000 * _inside(samples, others, gap=4) +
                    30 * _inside(samples, labels))
            label = None
            if size:
                spots = [Rect(*_bezier(points, t), *size)
                         for t in _LABEL_SPOTS]
                label_cost = [
                    1000 * sum(r.overlaps(o, gap=2)
                               for o in labels + list(rects.values())) +
                    _inside(paths, [r]) for r in spots]
                i = min(range(len(spots)), key=lambda i: (label_cost[i], i))
                label, cost = spots[i], cost + label_cost[i]
            cost += preference  # the least bend among equals
            if best is None or cost < best[0]:
                best = (cost, bend, points, label)
        _, bend, points, label = best
        taken.append(bend)
        placed.append(PlacedEdge(e, points, label,
                                 shown_label(e.label, wrap)))
        paths = np.concatenate([paths, np.array(_samples(points))])
        if label:
            labels.append(label)
    return sorted(placed, key=lambda p: panel.edges.index(p.edge))


def _bent(start, end, bend: float):
    """The quadratic Bezier from ``start`` to ``end`` whose control point
    sits ``bend`` times the edge's length off its middle (up when > 0)."""
    dx, dy = end[0] - start[0], end[1] - start[1]
    mid = ((start[0] + end[0]) / 2, (start[1] + end[1]) / 2)
    return (start, (mid[0] - bend * dy, mid[1] + bend * dx), end)


def _place_down(panel: Panel, measure) -> Tuple[Dict[str, Rect], list]:
    """One box per rank, top to bottom, all of one width. An edge to the
    next box is a short arrow down; longer ones are arcs on the right,
    leaving a box low on its right side and entering high."""
    sizes = _box_sizes(panel, measure)
    width = max(w for w, _ in sizes.values())
    height = max(h for _, h in sizes.values())
    rows = sorted(panel.boxes, key=lambda b: b.rank)
    rects = {b.key: Rect(width / 2, -i * (height + _LAYER_GAP), width,
                         height) for i, b in enumerate(rows)}
    row = {b.key: i for i, b in enumerate(rows)}
    placed = []
    for e in panel.edges:
        src, dst = rects[e.source], rects[e.target]
        span = row[e.target] - row[e.source]
        if span == 1:
            points = ((src.x, src.y - src.h / 2), (dst.x, dst.y + dst.h / 2))
        else:
            bulge = min(_ARC_MAX, _ARC_BASE + _ARC_STEP * (span - 1))
            right = src.x + src.w / 2
            start = (right, src.y - src.h / 4)
            end = (right, dst.y + dst.h / 4)
            # A cubic's control points 4/3 out: its middle is ``bulge`` out.
            reach = right + bulge * 4 / 3
            points = (start, (reach, start[1]), (reach, end[1]), end)
        placed.append(PlacedEdge(e, points))
    return rects, placed


def layout_panel(panel: Panel, wrap_labels: bool = False,
                 measure: Optional[TextMeasure] = None) -> PlacedPanel:
    """Places ``panel`` in pixels (y up); ``wrap_labels`` writes long op
    labels in two lines (see ``shown_label``); ``measure`` sizes texts."""
    measure = measure or TextMeasure()
    if panel.flow == RIGHT:
        rects, placed = _place_right(panel, wrap_labels, measure)
    elif panel.flow == DOWN:
        rects, placed = _place_down(panel, measure)
    else:
        raise ValueError(f"panel flow {panel.flow!r}; allowed: {RIGHT}, "
                         f"{DOWN}")
    xs, ys = [], []
    for r in list(rects.values()) + [p.label for p in placed if p.label]:
        xs += [r.x - r.w / 2, r.x + r.w / 2]
        ys += [r.y - r.h / 2, r.y + r.h / 2]
    for p in placed:
        for x, y in _samples(p.points, 12) + [p.points[0], p.points[-1]]:
            xs.append(x)
            ys.append(y)
    title_h = measure(panel.title, TITLE_FONT)[1] + 12
    x0, x1 = min(xs), max(xs)
    title_w = measure(panel.title, TITLE_FONT)[0]
    if x1 - x0 < title_w:
        x1 = x0 + title_w
    return PlacedPanel(panel, rects, placed,
                       (x0, min(ys), x1, max(ys) + title_h))


