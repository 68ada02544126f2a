"""Drawings of cells and of layer-wise architectures are real PNG images."""

import io

import matplotlib.image
import pytest

from nas_tf import drawing
from nas_tf import spaces


@pytest.mark.parametrize("space_name, params, arch_name", [
    ("darts_cnn", {}, "DARTS_V2"),
    ("nasnet", {}, "NASNet-A"),
    ("enas_micro", {}, "ENAS_micro"),
    ("enas_macro", {"num_layers": 24}, "ENAS_macro"),
    ("nasrl_cnn", {"num_layers": 4, "pool_layers": (2,)}, None),
    ("nasrl_rnn", {}, "NASCell"),
    ("enas_rnn", {}, "ENAS_PTB"),
    ("darts_rnn", {}, "DARTS_V2_RNN"),
])
def test_draws_png(space_name, params, arch_name):
    space = spaces.get_space(space_name, **params)
    arch = (spaces.resolve_architecture(space, arch_name) if arch_name
            else space.sample(3))
    png = drawing.draw_architecture(space, arch)
    image = matplotlib.image.imread(io.BytesIO(png), format="png")
    height, width = image.shape[:2]
    assert height > 200 and width > 200
    # Something is drawn: not a blank canvas.
    assert image[..., :3].min() < 0.5

