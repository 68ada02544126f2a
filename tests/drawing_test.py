"""Architecture drawings: what each kind shows (boxes, edges, op labels),
exactly; a layout whose labels cover nothing; PNGs of a legible size; and
no change to matplotlib's global state."""

import io
import subprocess
import sys
import textwrap

import matplotlib.image
import pytest

from conftest import ROOT, script_env
from nas_tf import drawing
from nas_tf import spaces


def _published(name):
    entry = spaces.PUBLISHED[name]
    space = spaces.get_space(entry.space, **entry.params)
    return space, spaces.resolve_architecture(space, name)


def _edges(panel):
    return sorted((e.source, e.target, e.label) for e in panel.edges)


def _ranks(panel):
    return {b.key: b.rank for b in panel.boxes}


def _texts(panel):
    return {b.key: b.text for b in panel.boxes}


K2, K1, CK = "c_{k-2}", "c_{k-1}", "c_{k}"
SEP, SKIP, MAX = "sep_conv_3x3", "skip_connect", "max_pool_3x3"


def test_darts_v2_cells_edges_ops_and_columns():
    # quark0/darts cnn/genotypes.py DARTS_V2; nodes 0..3 are states 2..5.
    normal, reduce = drawing.diagram(*_published("DARTS_V2")).panels
    assert _edges(normal) == sorted([
        (K2, "0", SEP), (K1, "0", SEP), (K2, "1", SEP), (K1, "1", SEP),
        (K1, "2", SEP), (K2, "2", SKIP), (K2, "3", SKIP),
        ("0", "3", "dil_conv_3x3"),
        ("0", CK, ""), ("1", CK, ""), ("2", CK, ""), ("3", CK, "")])
    assert _ranks(normal) == {K2: 0, K1: 0, "0": 1, "1": 1, "2": 1, "3": 2,
                              CK: 3}
    assert _edges(reduce) == sorted([
        (K2, "0", MAX), (K1, "0", MAX), ("0", "1", SKIP), (K1, "1", MAX),
        (K2, "2", MAX), ("0", "2", SKIP), ("0", "3", SKIP), (K1, "3", MAX),
        ("0", CK, ""), ("1", CK, ""), ("2", CK, ""), ("3", CK, "")])
    assert _ranks(reduce) == {K2: 0, K1: 0, "0": 1, "1": 2, "2": 2, "3": 2,
                              CK: 3}
    assert [p.title for p in (normal, reduce)] == [
        "darts_cnn: normal cell", "darts_cnn: reduction cell"]


def test_nasnet_concat_nodes_and_unused_inputs_are_drawn():
    # Block 0 reads h_i and h_{i-1} (slim numbers: c_{k-1}, c_{k-2}) with
    # identity and conv_3x3 and concatenates; block 1 adds node 0 twice.
    space = spaces.get_space("nasnet", num_blocks=2)
    cell = [0, 1, 0, 9, 1, 2, 2, 10, 10, 0]
    normal, _ = drawing.diagram(space, space.from_tokens(cell * 2)).panels
    assert _edges(normal) == sorted([
        (K1, "0", "identity"), (K2, "0", "conv_3x3"),
        ("0", "1", "sep_conv_3x3"), ("0", "1", "sep_conv_3x3"),
        ("1", CK, "")])
    assert _texts(normal)["0"] == "0\nconcat"
    assert _texts(normal)["1"] == "1"
    assert "concat" in drawing.diagram(space, space.from_tokens(
        cell * 2)).legend[1]


def test_enas_macro_skips_read_the_stem_then_earlier_layers():
    # Bit i of layer k is the stem (i = 0) or layer i-1; the op always
    # reads the layer above.
    space = spaces.get_space("enas_macro", num_layers=4)
    tokens = [0, 1, 1, 2, 0, 1, 3, 1, 0, 1]
    panel, = drawing.diagram(space, space.from_tokens(tokens)).panels
    assert _edges(panel) == sorted([
        ("stem", "0", ""), ("0", "1", ""), ("stem", "1", ""),
        ("1", "2", ""), ("0", "2", ""), ("2", "3", ""), ("stem", "3", ""),
        ("1", "3", ""), ("3", "classifier", "")])
    assert _texts(panel)["3"] == "3: sep_conv_5x5  \u2190 stem, 1"
    assert _texts(panel)["0"] == "0: conv_3x3"


def test_enas_macro_published_skips():
    # melodyguan/enas cifar10_macro_final.sh rows 5 ("3 1 1 0 1 0") and 21.
    space, arch = _published("ENAS_macro")
    panel, = drawing.diagram(space, arch).panels
    into = {k: sorted(e.source for e in panel.edges if e.target == k)
            for k in ("5", "21")}
    assert into["5"] == sorted(["4", "stem", "0", "2"])
    assert into["21"] == sorted(
        ["20", "0", "2", "3", "6", "8", "9", "11", "12", "14", "17"])
    assert _texts(panel)["5"] == "5: sep_conv_5x5  \u2190 stem, 0, 2"
    skips = sum(sum(bits) for _, bits in space.decode(arch))
    assert len(panel.edges) == 24 + skips + 1


def test_nascell_tree_nodes_memory_cell_and_outputs():
    # tensorflow/addons NASCell: c_{t-1} joins node 8 as tanh(o + c);
    # c_t is node 12's pre-activation.
    panel, = drawing.diagram(*_published("NASCell")).panels
    x, c_in = "x_t, h_{t-1}", "c_{t-1}"
    children = [("0", "8"), ("1", "8"), ("2", "9"), ("3", "9"),
                ("4", "10"), ("5", "10"), ("6", "11"), ("7", "11"),
                ("8", "12"), ("9", "12"), ("10", "13"), ("11", "13"),
                ("12", "14"), ("13", "14")]
    assert _edges(panel) == sorted(
        [(x, str(k), "") for k in range(8)] +
        [(a, b, "") for a, b in children] +
        [(c_in, "8", ""), ("14", "h_t", ""), ("12", "c_t", "")])
    texts = _texts(panel)
    assert texts["8"] == "8: tanh(a\u2299b)\nthen tanh(o+$c_{t-1}$)"
    assert texts["12"] == "12: a\u2299b"
    assert texts["0"] == "0: sigmoid(a+b)"
    assert texts["3"] == "3: relu(a\u2299b)"
    ranks = _ranks(panel)
    assert [ranks[k] for k in ("0", "7", "8", "11", "12", "14", "h_t")] == [
        1, 1, 2, 2, 3, 4, 5]


def test_extended_tree_writes_max_with_its_arguments():
    space = spaces.get_space("nasrl_rnn", base=2, extended=True)
    # Nodes (max, sin), (add, relu), (max, identity); inject (max, tanh)
    # into node 0; c_t from node 2.
    arch = space.from_tokens([2, 4, 0, 3, 2, 0, 2, 1, 2, 0])
    panel, = drawing.diagram(space, arch).panels
    assert _texts(panel)["0"] == (
        "0: sin(max(a,b))\nthen tanh(max(o,$c_{t-1}$))")
    assert _texts(panel)["2"] == "2: max(a,b)"


def test_enas_ptb_dag_edges_and_averaged_loose_ends():
    # ENAS paper Fig. 6 as quark0/darts rnn/genotypes.py writes it.
    panel, = drawing.diagram(*_published("ENAS_PTB")).panels
    preds = [0, 1, 1, 3, 3, 3, 4, 7, 8, 8, 8]
    acts = ["tanh", "tanh", "relu", "tanh", "tanh", "relu", "relu", "relu",
            "relu", "relu", "relu"]
    assert _edges(panel) == sorted(
        [("x_t, h_{t-1}", "0", "tanh")] +
        [(str(p), str(i), a) for i, (p, a) in enumerate(zip(preds, acts), 1)]
        + [(str(i), "h_t", "") for i in (2, 5, 6, 9, 10, 11)])
    assert _ranks(panel)["11"] == 7  # 0 -> 1 -> 3 -> 4 -> 7 -> 8 -> 11


def test_nasrl_layers_pool_strides_image_and_classifier():
    space = spaces.get_space("nasrl_cnn", num_layers=4, pool_layers=(2,),
                             predict_strides=True)
    tokens = [1, 2, 1, 0, 3,            # conv 3x5, stride 2x1, 64
              0, 0, 0, 0, 1, 1,         # conv 1x1, stride 1x1, 36 <- 0
              1, 0,                     # pool <- 0
              3, 3, 2, 2, 0, 0, 0, 0]   # conv 7x7, stride 3x3, 24 <- image
    panel, = drawing.diagram(space, space.from_tokens(tokens)).panels
    assert _texts(panel) == {
        "image": "image",
        "0": "0: conv 3x5, stride 2x1, 64 filters  \u2190 image",
        "1": "1: conv 1x1, stride 1x1, 36 filters  \u2190 0",
        "2": "2: max pool 3x3, stride 2  \u2190 0",
        "3": "3: conv 7x7, stride 3x3, 24 filters  \u2190 image",
        "classifier": "classifier"}
    # Layers 1, 2 and 3 feed no layer: the classifier reads them.
    assert _edges(panel) == sorted([
        ("image", "0", ""), ("0", "1", ""), ("0", "2", ""),
        ("image", "3", ""), ("1", "classifier", ""),
        ("2", "classifier", ""), ("3", "classifier", "")])
    plain = spaces.get_space("nasrl_cnn", num_layers=1)
    panel, = drawing.diagram(plain, plain.from_tokens([1, 2, 3])).panels
    assert _texts(panel)["0"] == "0: conv 3x5, 64 filters  \u2190 image"


def test_every_kind_has_a_legend_of_its_own_notation():
    legends = {name: " ".join(drawing.diagram(*_published(name)).legend)
               for name in ("DARTS_V2", "NASCell", "ENAS_PTB", "ENAS_macro")}
    assert "stride 2" in legends["DARTS_V2"]
    assert "node 8" in legends["NASCell"] and "node 12" in legends["NASCell"]
    assert "mean" in legends["ENAS_PTB"]
    assert "skip connections" in legends["ENAS_macro"]
    space = spaces.get_space("nasrl_cnn", num_layers=2)
    plain = " ".join(drawing.diagram(space, space.sample(0)).legend)
    assert "image" in plain and "stride" not in plain


@pytest.mark.parametrize("name", ["DARTS_V2", "NASNet-A", "ENAS_micro"])
def test_cell_labels_cover_no_label_and_no_box(name):
    measure = drawing.TextMeasure()
    for panel in drawing.diagram(*_published(name)).panels:
        placed = drawing.layout_panel(panel, measure=measure)
        labels = [p.label for p in placed.edges if p.label]
        assert len(labels) == sum(bool(e.label) for e in panel.edges)
        boxes = list(placed.boxes.values())
        for i, label in enumerate(labels):
            assert not any(label.overlaps(o) for o in labels[i + 1:] + boxes)
        for box in panel.boxes:  # every text fits its box
            w, h = measure(box.text, drawing.BOX_FONT)
            assert w < placed.boxes[box.key].w
            assert h < placed.boxes[box.key].h


def _image(png):
    return matplotlib.image.imread(io.BytesIO(png), format="png")


@pytest.mark.parametrize("name", ["DARTS_V2", "NASCell", "DARTS_V2_RNN",
                                  "ENAS_macro"])
def test_draws_a_deterministic_png_of_a_legible_width(name):
    space, arch = _published(name)
    png = drawing.draw_architecture(space, arch)
    assert drawing.draw_architecture(space, arch) == png
    image = _image(png)
    height, width = image.shape[:2]
    # Shown 600-700 pixels wide, the 10-11 pt text keeps 2/3 of its size.
    assert 500 <= width <= 1000 and height > 250
    assert image[..., :3].min() < 0.5  # not a blank canvas


def test_a_space_without_drawing_is_refused_by_name():
    class Odd:
        name, family = "odd", "odd"

        def decode(self, arch):
            return arch

    with pytest.raises(ValueError, match="odd"):
        drawing.diagram(Odd(), None)


@pytest.mark.slow
def test_drawing_leaves_matplotlib_global_state_alone():
    # A notebook's backend and figures, set before the first import.
    script = textwrap.dedent("""
        import sys
        import matplotlib
        matplotlib.use("svg")
        from matplotlib import pyplot as plt
        figure = plt.figure()
        def state():
            return (matplotlib.get_backend(), plt.get_fignums(),
                    plt.gcf() is figure, dict(matplotlib.rcParams))
        before = state()
        from nas_tf import drawing, spaces
        space = spaces.get_space("darts_cnn")
        drawing.draw_architecture(
            space, spaces.resolve_architecture(space, "DARTS_V2"))
        assert state() == before, (before[:3], state()[:3])
        print("unchanged")
    """)
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT,
                            env=script_env(), capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "unchanged"


@pytest.mark.slow
def test_importing_and_drawing_does_not_load_pyplot():
    script = textwrap.dedent("""
        import sys
        from nas_tf import drawing, spaces
        space = spaces.get_space("nasrl_rnn")
        drawing.draw_architecture(
            space, spaces.resolve_architecture(space, "NASCell"))
        print("matplotlib.pyplot" in sys.modules)
    """)
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT,
                            env=script_env(), capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
