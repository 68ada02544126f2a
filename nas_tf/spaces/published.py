"""Published architectures, by name, as token strings of their spaces.

Each entry gives the space, the space parameters the architecture needs and
its text in the space's own format (the originals' format where they have
one), with where it comes from.
"""

import dataclasses


@dataclasses.dataclass(frozen=True)
class Published:
    space: str
    params: dict
    text: str
    source: str


def _macro_final_arc():
    # scripts/cifar10_macro_final.sh (melodyguan/enas), one line per layer:
    # op id, then that layer's skip bits.
    rows = [
        "0", "3 0", "0 1 0", "2 0 0 1", "2 0 0 0 0", "3 1 1 0 1 0",
        "2 0 0 0 0 0 1", "2 0 1 1 0 1 1 1", "1 0 1 1 1 0 1 0 1",
        "0 0 0 0 0 0 0 0 0 0", "2 0 0 0 0 0 1 0 0 0 0",
        "0 1 0 0 1 1 0 0 0 0 1 1", "2 0 1 0 0 0 0 0 1 0 1 1 0",
        "1 0 0 1 0 0 0 1 1 1 0 1 0 1", "0 1 1 0 1 0 1 0 0 0 0 0 1 0 0",
        "2 0 0 1 0 0 0 0 0 0 0 1 0 1 0 1",
        "2 0 1 0 0 0 1 0 0 1 1 1 1 0 0 1 0",
        "2 0 0 0 0 1 0 1 0 1 0 0 1 0 1 0 0 1",
        "3 0 1 1 0 1 0 0 0 0 0 1 0 1 0 1 0 0 0",
        "3 0 1 1 0 0 0 0 0 0 0 0 0 1 1 0 0 0 0 1",
        "0 1 0 0 1 0 1 1 0 0 0 1 0 0 0 0 0 1 1 0 0",
        "3 0 1 0 1 1 0 0 1 0 1 1 0 1 1 0 1 0 0 1 0 0",
        "0 1 0 1 0 1 0 0 0 0 0 0 0 0 1 0 1 0 0 1 0 0 0",
        "0 1 1 0 0 0 1 1 1 0 1 0 0 0 1 0 1 0 0 1 1 0 0 0",
    ]
    return " ".join(rows)


PUBLISHED = {
    "NASNet-A": Published(
        "nasnet", {"num_blocks": 5},
        # slim nasnet_utils.py NasNetANormalCell / NasNetAReductionCell:
        # per block [input1, input2, op1, op2, combine], slim state indices,
        # and slim's hand-set outputs (its used_hiddenstates).
        "0 1 11 10 0  1 1 11 10 0  0 1 4 0 0  1 1 4 4 0  0 0 10 0 0  "
        "0 1 11 12 0  0 1 5 12 0  0 1 4 11 0  3 2 0 4 0  2 0 10 5 0 ; "
        "normal_concat=1,2,3,4,5,6 reduce_concat=3,4,5,6",
        "tensorflow/models research/slim/nets/nasnet/nasnet_utils.py"),
    "ENAS_micro": Published(
        "enas_micro", {"num_nodes": 5},
        "0 2 0 0 0 4 0 1 0 4 1 1 1 0 0 1 0 2 1 1 "
        "1 0 1 0 0 3 0 2 1 1 3 1 1 0 0 4 0 3 1 1",
        "melodyguan/enas scripts/cifar10_micro_final.sh"),
    # Its ops are all below 4, so it is valid with the final script's 4
    # branches and with the search's 6; only the depth is pinned.
    "ENAS_macro": Published(
        "enas_macro", {"num_layers": 24},
        _macro_final_arc(),
        "melodyguan/enas scripts/cifar10_macro_final.sh"),
    "DARTS_V1": Published(
        "darts_cnn", {"steps": 4},
        "Genotype(normal=[('sep_conv_3x3', 1), ('sep_conv_3x3', 0), "
        "('skip_connect', 0), ('sep_conv_3x3', 1), ('skip_connect', 0), "
        "('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('skip_connect', 2)], "
        "normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), "
        "('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 0), "
        "('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), "
        "('avg_pool_3x3', 0)], reduce_concat=[2, 3, 4, 5])",
        "quark0/darts cnn/genotypes.py DARTS_V1"),
    "DARTS_V2": Published(
        "darts_cnn", {"steps": 4},
        "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), "
        "('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 1), "
        "('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], "
        "normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), "
        "('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), "
        "('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), "
        "('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])",
        "quark0/darts cnn/genotypes.py DARTS_V2 (= DARTS)"),
    # tensorflow/addons rnn/nas_cell.py (the NAS-RL PTB cell, paper Fig. 8),
    # nodes leaves first; combinations add=0, elem_mult=1; activations
    # identity=0, tanh=1, sigmoid=2, relu=3. c_{t-1} goes into node 8
    # (tanh(l2_0 + c)); c_t is node 12's pre-activation (l2_0 * l2_1).
    "NASCell": Published(
        "nasrl_rnn", {"base": 8, "extended": False},
        "0 2  0 3  0 2  1 3  0 1  0 2  0 1  0 2  "
        "1 1  0 1  1 1  0 2  1 0  0 1  1 1  0 1  12 8",
        "tensorflow/addons tensorflow_addons/rnn/nas_cell.py"),
    # The paper's cell as the DARTS authors wrote it (rnn/genotypes.py
    # ENAS), in the ENAS code's layout: f_0 = tanh, then [p_i, f_i] with
    # tanh=0, relu=1; the output averages the loose ends 2, 5, 6, 9, 10, 11.
    "ENAS_PTB": Published(
        "enas_rnn", {"num_nodes": 12, "layout": "enas_code",
                     "average": "loose_ends"},
        "0  0 0  1 0  1 1  3 0  3 0  3 1  4 1  7 1  8 1  8 1  8 1",
        "quark0/darts rnn/genotypes.py ENAS (ENAS paper Fig. 6)"),
    "ENAS_PTB_SCRIPT": Published(
        "enas_rnn", {"num_nodes": 12, "layout": "enas_code",
                     "average": "loose_ends"},
        "0 0 0 1 1 2 1 2 0 2 0 5 1 1 0 6 1 8 1 8 1 8 1",
        "melodyguan/enas scripts/ptb_final.sh --child_fixed_arc"),
    "ENAS_LM": Published(
        "enas_rnn", {"num_nodes": 8, "layout": "enas_lm", "average": "all"},
        "0 2 1 0 2 1 2 2 4 0 5 0 3 2 6 2",
        "google-research enas_lm README.md (the fixed cell)"),
    "DARTS_V1_RNN": Published(
        "darts_rnn", {"steps": 8, "average": "all"},
        "Genotype(recurrent=[('relu', 0), ('relu', 1), ('tanh', 2), "
        "('relu', 3), ('relu', 4), ('identity', 1), ('relu', 5), "
        "('relu', 1)], concat=range(1, 9))",
        "quark0/darts rnn/genotypes.py DARTS_V1"),
    "DARTS_V2_RNN": Published(
        "darts_rnn", {"steps": 8, "average": "all"},
        "Genotype(recurrent=[('sigmoid', 0), ('relu', 1), ('relu', 1), "
        "('identity', 1), ('tanh', 2), ('sigmoid', 5), ('tanh', 3), "
        "('relu', 5)], concat=range(1, 9))",
        "quark0/darts rnn/genotypes.py DARTS_V2 (= DARTS)"),
}
# The DARTS code calls its second-order cell plain ``DARTS``.
PUBLISHED["DARTS"] = PUBLISHED["DARTS_V2"]
