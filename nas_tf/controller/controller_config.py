"""The controller's settings, and each original's as a preset.

``ControllerConfig`` names every way the originals' controllers differ
(LSTM size and biases, initialisation, logit squashing, biases on op
logits, which LSTM step makes a unit's anchor, the steps of input nodes and
of layer 0, how skip connections are scored); ``CONTROLLER_PRESETS`` sets
them as each original's code does. ``lstm_controller.Controller`` reads
them.
"""

import dataclasses

from nas_tf.config import _raise_on_failed

SKIP_LOGITS = ("sigmoid", "paired")
ANCHOR_POSITIONS = ("last_step", "first_step")


@dataclasses.dataclass(frozen=True)
class ControllerConfig:
    """The controller's architecture and sampling settings.

    Defaults are NAS-RL's (sec. 4.1: two LSTM layers of 35 units, weights
    U(-0.08, 0.08)); ``CONTROLLER_PRESETS`` holds the other originals'.

    Attributes:
      lstm_size: Units per LSTM layer (and embedding size).
      num_layers: Stacked LSTM layers.
      init_range: Every weight starts U(-init_range, init_range).
      lstm_bias: LSTM gates with biases: the paper names none, so a
        standard Keras LSTM cell (its default). ENAS's LSTM has none
        (``common_ops.lstm``).
      temperature: Logits are divided by it; 0 leaves them.
      tanh_constant: Logits become ``c * tanh(logits)``; 0 leaves them.
      op_tanh_reduce: ``op*`` choices use ``tanh_constant / op_tanh_reduce``
        (ENAS micro 2.5; the macro controller ignores the flag: 1).
      op_bias_init: A learnable bias on ``op*`` choice logits with this
        start (ENAS micro ``b_soft`` = [10, 10, 0, 0, 0]); empty: none.
      normal_op_bias: A constant added after the tanh to op logits of the
        ``normal`` cell only (ENAS micro ``b_soft_no_learn``); empty: none.
      tie_choice_logits: Choice logits are ``h . E^T`` with ``E`` the
        choices' own input embedding, and there is no separate softmax
        weight (enas_lm ``controller.py``: ``w_emb`` for both).
      index_locality: Node logits lose ``index_locality * (k - j)^2`` for
        node j picked by node k (ENAS PTB controllers: 1/6).
      index_input_scaling: The next input after picking node j is
        ``anchor_j / (0.1 + k - j)`` (ENAS PTB controllers).
      zero_input_anchors: Input nodes' anchors are zeros when fed back
        (ENAS micro); their attention keys still come from an LSTM step.
      input_node_steps: Input nodes are made by an LSTM step on the start
        embedding each (ENAS micro). False: no step; their anchors and
        attention keys are zeros (enas_lm ``controller.py``: ``all_h`` and
        ``all_h_w`` start with a zero row for node 0); needs
        ``zero_input_anchors``.
      anchor_at: ``last_step``: a unit's anchor is the state after its
        last decision (NAS-RL, ENAS macro), or after ``anchor_step``'s
        extra step (ENAS micro). ``first_step``: the state of the unit's
        first step, the one that picks its input node, taken before its
        other decisions (ENAS PTB ``_build_sampler``, both codes).
      anchor_step: One extra LSTM step after each cell node makes its anchor
        and the input returns to the start embedding (ENAS micro).
      empty_input_step: A unit that picks no input node (node 0 of an
        ENAS PTB cell) still takes, first, the LSTM step the pick would
        take, and its first decision then reads the start embedding
        (melodyguan/enas ``ptb_enas_controller.py``: node 0 steps twice on
        ``g_emb``, the first step making its anchor).
      empty_skip_step: A layer without a skips decision (layer 0) still
        takes the LSTM step its skips would take; that step makes the
        anchor and the next input is the start embedding (ENAS macro,
        ``general_controller.py``).
      skip_logits: ``sigmoid``: P(skip) = sigmoid(q) (NAS-RL);
        ``paired``: logits [-q, q] through temperature and tanh, so
        P(skip) = sigmoid(2 q') (ENAS macro).
    """

    lstm_size: int = 35
    num_layers: int = 2
    init_range: float = 0.08
    lstm_bias: bool = True
    temperature: float = 0.0
    tanh_constant: float = 0.0
    op_tanh_reduce: float = 1.0
    op_bias_init: tuple = ()
    normal_op_bias: tuple = ()
    tie_choice_logits: bool = False
    index_locality: float = 0.0
    index_input_scaling: bool = False
    zero_input_anchors: bool = False
    input_node_steps: bool = True
    anchor_at: str = "last_step"
    anchor_step: bool = False
    empty_input_step: bool = False
    empty_skip_step: bool = False
    skip_logits: str = "sigmoid"

    def __post_init__(self):
        object.__setattr__(self, "op_bias_init", tuple(self.op_bias_init))
        object.__setattr__(self, "normal_op_bias", tuple(self.normal_op_bias))
        name = type(self).__name__
        _raise_on_failed(name, [
            (self.lstm_size >= 1, f"lstm_size={self.lstm_size}; it must be "
             "at least 1"),
            (self.num_layers >= 1, f"num_layers={self.num_layers}; it must "
             "be at least 1"),
            (self.init_range > 0, f"init_range={self.init_range}; it must "
             "be positive"),
            (self.temperature >= 0, f"temperature={self.temperature}; it "
             "must be 0 (off) or positive"),
            (self.tanh_constant >= 0, f"tanh_constant={self.tanh_constant}; "
             "it must be 0 (off) or positive"),
            (self.op_tanh_reduce > 0, f"op_tanh_reduce="
             f"{self.op_tanh_reduce}; it must be positive"),
            (self.skip_logits in SKIP_LOGITS, f"skip_logits="
             f"{self.skip_logits!r}; allowed: {SKIP_LOGITS}"),
            (self.anchor_at in ANCHOR_POSITIONS, f"anchor_at="
             f"{self.anchor_at!r}; allowed: {ANCHOR_POSITIONS}"),
            (not (self.anchor_at == "first_step" and self.anchor_step),
             "anchor_at='first_step' with anchor_step=True: the anchor is "
             "either the unit's first step or the extra step after it"),
            (self.input_node_steps or self.zero_input_anchors,
             "input_node_steps=False with zero_input_anchors=False: without "
             "their LSTM step input nodes have only zero anchors; set "
             "zero_input_anchors=True"),
        ])


CONTROLLER_PRESETS = {
    # Zoph & Le sec. 4.1. Layer 0 has no anchor step of its own: its anchor
    # is the state after its last decision (num_filters), like every
    # layer's; the paper (sec. 3.3, Fig. 4) does not say where it is.
    "nasrl": ControllerConfig(),
    # Zoph et al. 2017 (NASNet) appendix A.2: one LSTM layer of 100 units,
    # U(-0.1, 0.1). The paper gives nothing more about the parametrisation
    # (its hidden-state picks use the attention heads of ENAS micro here).
    "nasnet": ControllerConfig(lstm_size=100, num_layers=1, init_range=0.1),
    # melodyguan/enas src/cifar10/main.py and scripts/cifar10_macro_search.sh.
    "enas_macro": ControllerConfig(
        lstm_size=64, num_layers=1, init_range=0.1, lstm_bias=False,
        tanh_constant=1.5, skip_logits="paired", empty_skip_step=True),
    # scripts/cifar10_micro_search.sh and micro_controller.py.
    "enas_micro": ControllerConfig(
        lstm_size=64, num_layers=1, init_range=0.1, lstm_bias=False,
        tanh_constant=1.10, op_tanh_reduce=2.5,
        op_bias_init=(10.0, 10.0, 0.0, 0.0, 0.0),
        normal_op_bias=(0.25, 0.25, -0.25, -0.25, -0.25),
        zero_input_anchors=True, anchor_step=True),
    # For enas_rnn with layout=enas_code. melodyguan/enas at HEAD (2d0cd4b):
    # src/ptb/main.py (lstm_size 100, one layer), scripts/ptb_search.sh
    # (temperature 5, tanh 2.5) and ptb_enas_controller.py _build_sampler
    # (locality (k - j)^2 / 6, input h_j / (0.1 + k - j), anchor = the
    # node's first step, two steps for node 0: 2 N steps for N nodes).
    # That code samples only tanh and relu (num_funcs=2, which main.py does
    # not override); the enas_rnn space keeps the paper's 4 activations.
    "enas_ptb": ControllerConfig(
        lstm_size=100, num_layers=1, init_range=0.1, lstm_bias=False,
        temperature=5.0, tanh_constant=2.5, index_locality=1.0 / 6.0,
        index_input_scaling=True, anchor_at="first_step",
        empty_input_step=True),
    # For enas_rnn with layout=enas_lm: google-research enas_lm
    # src/controller.py (hidden 64, U(-0.01, 0.01), temperature 5, tanh
    # 2.25, locality / 6, input h_j / (0.1 + k - j), function logits tied
    # to the function embedding, node 0's anchor and key zeros: 2 N steps).
    # Its search samples 9 nodes after node 0 (controller_num_layers=9, so
    # num_nodes=9; the space's default 8 is the README's fixed cell).
    "enas_lm": ControllerConfig(
        lstm_size=64, num_layers=1, init_range=0.01, lstm_bias=False,
        temperature=5.0, tanh_constant=2.25, tie_choice_logits=True,
        index_locality=1.0 / 6.0, index_input_scaling=True,
        zero_input_anchors=True, input_node_steps=False,
        anchor_at="first_step"),
}
