"""Drawings of architectures in the style of the papers' figures.

Cells (NASNet, ENAS micro, DARTS) and recurrent cells (the NAS-RL tree, the
ENAS and DARTS highway DAGs) flow left to right: the inputs on the left, the
nodes, the output on the right, the op written on every edge (the tree
cell's ops belong to its nodes and are written in them). Layer-wise networks
(NAS-RL, ENAS macro) are a column of layers, input on top, as in the papers'
figures, with arcs for the connections that skip layers. Every drawing
carries a legend of its notation.

A drawing is data first (``diagram``: boxes, edges and legend lines), then a
layout in pixels (``layout_panel``), then a PNG rendered on a
``matplotlib.figure.Figure`` with the Agg canvas: pyplot, the global backend
and rcParams are never touched, so drawing from a notebook changes nothing
of the notebook's matplotlib.
"""

from nas_tf.drawing.diagrams import diagram
from nas_tf.drawing.layout import BOX_FONT
from nas_tf.drawing.layout import TextMeasure
from nas_tf.drawing.layout import layout_panel
from nas_tf.drawing.render import draw_architecture

__all__ = ["BOX_FONT", "TextMeasure", "diagram", "draw_architecture",
           "layout_panel"]
