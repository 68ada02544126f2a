"""The LSTM controller: samples token strings of any search space.

The controller reads a space's decisions in order and takes one LSTM step
per decision; the embedding of what it picked feeds the next step
(Zoph & Le 2016, sec. 3.1). The head of a step follows the decision kind
(``spaces/schema.py``):

* ``choice``: a softmax over ``W_soft h`` (plus a learnable bias where ENAS
  micro has one; ``h E^T`` with the choices' embedding ``E`` in enas_lm);
  the next input is the choice's embedding.
* ``node``: attention over the anchors of the earlier nodes of the same cell,
  ``v^T tanh(W_1 h_j + W_2 h)`` (ENAS micro/RNN controllers); the next input
  is the picked node's anchor.
* ``skips``: one independent sigmoid per earlier layer, with the same
  attention score (NAS-RL sec. 3.3 anchor points; ENAS macro); the next
  input is the sum of the picked anchors over ``1 + count`` (ENAS macro).

A unit (``layer3``, ``normal/node4``) leaves an anchor: the controller
state after its last decision (NAS-RL, ENAS macro), that of one extra step
after it (ENAS micro), or that of its first step, the one that picks its
input node (ENAS PTB). Cells start with one anchor per input node, made by
an LSTM step on the start embedding (ENAS micro) or zeros (enas_lm).
Heads are shared by decisions of the same field and choices (``op1`` and
``op2`` share one softmax as in ENAS micro), so a deeper space (the NAS-RL
depth schedule) reuses the same weights.

Everything runs on a batch of architectures: ``sample`` draws a batch with
a stateless seed (the same seed and weights give the same batch, which
makes resuming exact), ``score`` computes the log-probability of given
token strings. Both are compiled ``tf.function``s, one per space.
"""

import dataclasses
import re
import typing

import keras
import numpy as np
import tensorflow as tf

from nas_tf.config import _raise_on_failed
from nas_tf.spaces import schema

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


@dataclasses.dataclass(frozen=True)
class _Step:
    """One decision as the controller sees it."""

    decision: schema.Decision
    head: str
    scope: str
    unit: str
    is_op: bool
    unit_starts: bool
    unit_ends: bool


def _field_key(decision: schema.Decision) -> str:
    """The head a decision uses: its field without trailing digits, and its
    choices (``op1``/``op2`` share; ``inputs`` of different sizes don't)."""
    field = re.sub(r"\d+$", "", decision.name.rsplit("/", 1)[-1])
    return f"{decision.kind}:{field}:{len(decision.choices)}"


def plan_steps(space) -> list:
    """The controller's steps for ``space``, one per decision."""
    steps = []
    units = [d.name.rsplit("/", 1)[0] if "/" in d.name else ""
             for d in space.decisions]
    for i, d in enumerate(space.decisions):
        parts = d.name.split("/")
        scope = parts[0] if len(parts) > 2 else ""
        unit = units[i]
        steps.append(_Step(
            d, _field_key(d), scope, unit,
            d.kind == schema.CHOICE and parts[-1].startswith("op"),
            unit_starts=i == 0 or units[i - 1] != unit,
            unit_ends=i + 1 == len(units) or units[i + 1] != unit))
    return steps


def _num_input_nodes(step, done_units):
    """Anchors a cell needs before its first node decision: the node choices
    not covered by units already decided (2 in NASNet/ENAS micro, node 0 of
    DARTS recurrent cells)."""
    return max(0, len(step.decision.choices) - done_units)


class ControllerOutput(typing.NamedTuple):
    """A batch of architectures and what the controller thinks of them.

    Attributes:
      tokens: int32 [batch, num_tokens], decision order.
      log_prob: [batch] sum of the log-probabilities of all tokens.
      entropy: [batch] sum of the full entropies of every decision.
      sampled_entropy: [batch] sum over tokens of ``-log p * p`` of the
        picked value (ENAS macro/PTB's entropy). It is differentiable;
        added to the reward it is a number, without gradient, as ENAS's
        ``tf.stop_gradient`` makes it.
      skip_kl: [batch] KL(sigmoid(q') || skip_target) summed over each
        layer's skips, then averaged over the layers that have skips, as
        ENAS macro computes it; 0 without skips.
      skip_count: [batch] number of skips picked.
      decision_log_probs: [batch, num_decisions] each decision's share of
        ``log_prob``.
    """

    tokens: tf.Tensor
    log_prob: tf.Tensor
    entropy: tf.Tensor
    sampled_entropy: tf.Tensor
    skip_kl: tf.Tensor
    skip_count: tf.Tensor
    decision_log_probs: tf.Tensor


class Controller(keras.Model):
    """The LSTM controller of ``config`` for the decisions of ``space``.

    ``skip_target`` is the prior of ENAS macro's skip KL penalty (0.4).
    """

    def __init__(self, space, config: ControllerConfig = ControllerConfig(),
                 skip_target: float = 0.4, **kwargs):
        super().__init__(**kwargs)
        self.config = config
        self.skip_target = skip_target
        size = config.lstm_size
        self.cells = [
            keras.layers.LSTMCell(size, use_bias=config.lstm_bias,
                                  unit_forget_bias=False,
                                  kernel_initializer=self._init(),
                                  recurrent_initializer=self._init(),
                                  bias_initializer=self._init(),
                                  name=f"lstm_{i}")
            for i in range(config.num_layers)]
        for cell in self.cells:
            cell.build((None, size))
        self.start = self.add_weight(shape=(1, size),
                                     initializer=self._init(),
                                     name="start_embedding")
        self.attention = {}
        self.soft, self.soft_bias, self.embedding = {}, {}, {}
        self._functions = {}
        self.add_space(space)

    # -- weights -------------------------------------------------------------
    def _init(self):
        """U(-init_range, init_range), a new initializer per weight: one
        Keras initializer with a fixed seed gives every weight of a shape the
        same values (the attention's W_1 and W_2 would be equal)."""
        r = self.config.init_range
        return keras.initializers.RandomUniform(-r, r)

    def add_space(self, space) -> int:
        """Creates the heads ``space`` needs that do not exist yet; returns
        how many weights that created."""
        size = self.config.lstm_size
        before = len(self.weights)
        for step in plan_steps(space):
            kind = step.decision.kind
            if kind != schema.CHOICE and kind not in self.attention:
                self.attention[kind] = [
                    self.add_weight(shape=shape, initializer=self._init(),
                                    name=f"{kind}_{part}")
                    for part, shape in (("w_anchor", (size, size)),
                                        ("w_query", (size, size)),
                                        ("v", (size, 1)))]
            if kind != schema.CHOICE or step.head in self.embedding:
                continue
            n = len(step.decision.choices)
            key = step.head.replace(":", "_")
            if not self.config.tie_choice_logits:
                self.soft[step.head] = self.add_weight(
                    shape=(size, n), initializer=self._init(),
                    name=f"{key}_w")
            self.embedding[step.head] = self.add_weight(
                shape=(n, size), initializer=self._init(), name=f"{key}_emb")
            bias = self.config.op_bias_init
            if step.is_op and bias:
                if len(bias) != n:
                    raise ValueError(
                        f"op_bias_init has {len(bias)} values but "
                        f"{step.decision.name} has {n} ops "
                        f"{step.decision.choices}")
                self.soft_bias[step.head] = self.add_weight(
                    shape=(n,), name=f"{key}_bias",
                    initializer=keras.initializers.Constant(bias))
        return len(self.weights) - before

    def set_uniform(self) -> None:
        """Zeros every output weight: each decision becomes uniform."""
        outputs = list(self.soft.values()) + list(self.soft_bias.values())
        if self.config.tie_choice_logits:
            outputs += list(self.embedding.values())
        for w in outputs:
            w.assign(tf.zeros_like(w))
        for kind in self.attention:
            self.attention[kind][2].assign(
                tf.zeros_like(self.attention[kind][2]))

    # -- the shared walk over decisions ---------------------------------------
    def _lstm(self, x, states):
        new_states = []
        for cell, state in zip(self.cells, states):
            x, state = cell(x, state)
            new_states.append(state)
        return x, new_states

    def _squash(self, logits, is_op=False):
        cfg = self.config
        if cfg.temperature:
            logits = logits / cfg.temperature
        if cfg.tanh_constant:
            c = cfg.tanh_constant / (cfg.op_tanh_reduce if is_op else 1.0)
            logits = c * tf.tanh(logits)
        return logits

    def _walk(self, space, batch, seed=None, tokens=None):
        """Runs the controller over ``space``'s decisions, sampling with
        ``seed`` or reading ``tokens`` [batch, num_tokens]."""
        cfg = self.config
        zeros = tf.zeros((batch, cfg.lstm_size))
        states = [[zeros, zeros] for _ in self.cells]
        start = tf.tile(self.start, [batch, 1])
        x = start
        picked, per_decision = [], []
        log_prob = tf.zeros((batch,))
        entropy = tf.zeros((batch,))
        sampled_entropy = tf.zeros((batch,))
        kl_terms, skip_count = [], tf.zeros((batch,))
        anchors, keys, scope, done_units = [], [], None, 0
        unit_has_skips = False
        first_h = None  # the state of the current unit's first step
        position = 0
        for t, step in enumerate(plan_steps(space)):
            d = step.decision
            if step.scope != scope:
                scope, anchors, keys, done_units = step.scope, [], [], 0
            if d.kind == schema.NODE and not anchors:
                for _ in range(_num_input_nodes(step, done_units)):
                    if cfg.input_node_steps:
                        h, states = self._lstm(start, states)
                        anchors.append(zeros if cfg.zero_input_anchors
                                       else h)
                        keys.append(h)
                    else:
                        anchors.append(zeros)
                        keys.append(zeros)
            if step.unit_starts:
                first_h = None
                if cfg.empty_input_step and d.kind != schema.NODE:
                    first_h, states = self._lstm(x, states)
                    x = start
            h, states = self._lstm(x, states)
            if first_h is None:
                first_h = h
            step_seed = None if seed is None else \
                tf.random.experimental.stateless_fold_in(seed, t)
            given = None if tokens is None else \
                tokens[:, position:position + d.num_tokens]
            if d.kind == schema.CHOICE:
                if cfg.tie_choice_logits:
                    logits = tf.matmul(h, self.embedding[step.head],
                                       transpose_b=True)
                else:
                    logits = h @ self.soft[step.head]
                if step.head in self.soft_bias:
                    logits = logits + self.soft_bias[step.head]
                logits = self._squash(logits, step.is_op)
                if (step.is_op and cfg.normal_op_bias and
                        step.scope == "normal"):
                    logits = logits + tf.constant(cfg.normal_op_bias,
                                                  logits.dtype)
                value, lp, ent, sent = _categorical(logits, step_seed, given)
                x = tf.gather(self.embedding[step.head], value)
            elif d.kind == schema.NODE:
                k = len(d.choices)
                logits = self._attend(keys[:k], h, schema.NODE)
                if cfg.index_locality:
                    distance = tf.constant(
                        [(k - j) ** 2 for j in range(k)], logits.dtype)
                    logits = logits - cfg.index_locality * distance
                value, lp, ent, sent = _categorical(logits, step_seed, given)
                chosen = tf.gather(tf.stack(anchors[:k], axis=1), value,
                                   batch_dims=1)
                if cfg.index_input_scaling:
                    gap = tf.cast(k - value, chosen.dtype) + 0.1
                    chosen = chosen / gap[:, None]
                x = chosen
            else:
                n = len(d.choices)
                q = self._attend(keys[:n], h, schema.SKIPS)
                value, lp, ent, sent, kl = self._skips(q, step_seed, given)
                kl_terms.append(kl)
                unit_has_skips = True
                skip_count += tf.reduce_sum(tf.cast(value, tf.float32), -1)
                bits = tf.cast(value, h.dtype)[:, :, None]
                total = tf.reduce_sum(tf.stack(anchors[:n], 1) * bits, 1)
                x = total / (1.0 + tf.reduce_sum(bits, 1))
            picked.append(tf.reshape(tf.cast(value, tf.int32), (batch, -1)))
            log_prob += lp
            per_decision.append(lp)
            entropy += ent
            sampled_entropy += sent
            position += d.num_tokens
            if step.unit_ends:
                if cfg.anchor_step or (cfg.empty_skip_step and
                                       not unit_has_skips):
                    h, states = self._lstm(x, states)
                    x = start
                anchor = first_h if cfg.anchor_at == "first_step" else h
                anchors.append(anchor)
                keys.append(anchor)
                done_units += 1
                unit_has_skips = False
        skip_kl = (tf.add_n(kl_terms) / len(kl_terms) if kl_terms
                   else tf.zeros((batch,)))
        return ControllerOutput(tf.concat(picked, axis=1), log_prob, entropy,
                                sampled_entropy, skip_kl, skip_count,
                                tf.stack(per_decision, axis=1))

    def _attend(self, keys, h, kind):
        w_anchor, w_query, v = self.attention[kind]
        projected = tf.stack([k @ w_anchor for k in keys], axis=1)
        scores = tf.tanh(projected + (h @ w_query)[:, None, :]) @ v
        scores = scores[:, :, 0]
        return self._squash(scores) if kind == schema.NODE else scores

    def _skips(self, q, seed, given):
        """Independent skip bits from scores ``q`` [batch, n]."""
        squashed = self._squash(q)
        # ``paired``: softmax([-q', q']) picks 1 with sigmoid(2 q'), while
        # ENAS's KL uses sigmoid(q') (general_controller.py).
        paired = self.config.skip_logits == "paired"
        logit = 2.0 * squashed if paired else squashed
        p_kl = tf.sigmoid(squashed)
        p = tf.sigmoid(logit)
        if given is None:
            given = tf.cast(tf.random.stateless_uniform(tf.shape(p), seed) < p,
                            tf.int32)
        bits = tf.cast(given, p.dtype)
        log_p1 = tf.math.log_sigmoid(logit)
        log_p0 = tf.math.log_sigmoid(-logit)
        lp_bits = bits * log_p1 + (1.0 - bits) * log_p0
        ent_bits = -(p * log_p1 + (1.0 - p) * log_p0)
        sent_bits = -lp_bits * tf.exp(lp_bits)
        rho = self.skip_target
        kl = (p_kl * tf.math.log(p_kl / rho + 1e-12)
              + (1 - p_kl) * tf.math.log((1 - p_kl) / (1 - rho) + 1e-12))
        # Summed over the layer's skips, then averaged over layers by the
        # caller (general_controller.py ``skip_penaltys``).
        return (given, tf.reduce_sum(lp_bits, -1), tf.reduce_sum(ent_bits, -1),
                tf.reduce_sum(sent_bits, -1), tf.reduce_sum(kl, -1))

    # -- compiled entry points ----------------------------------------------
    def _compiled(self, space, what):
        key = (what, repr(space))
        if key not in self._functions:
            if what == "sample":
                def fn(seed, batch):
                    return self._walk(space, batch, seed=seed)
            else:
                fn = self.score_fn(space)
            self._functions[key] = tf.function(fn, reduce_retracing=True)
        return self._functions[key]

    def sample(self, space, batch: int, seed) -> ControllerOutput:
        """Samples ``batch`` architectures with the stateless ``seed`` (two
        ints)."""
        seed = tf.constant(np.asarray(seed, np.int64).reshape(2))
        return self._compiled(space, "sample")(seed, tf.constant(batch))

    def score(self, space, tokens) -> ControllerOutput:
        """Log-probabilities (differentiable) of ``tokens`` [batch, T]."""
        return self._compiled(space, "score")(
            tf.convert_to_tensor(tokens, tf.int32))

    def score_fn(self, space):
        """``score`` for ``space`` as a function usable inside another
        ``tf.function`` (returns a ControllerOutput)."""
        def fn(tokens):
            return self._walk(space, tf.shape(tokens)[0], tokens=tokens)
        return fn


def _categorical(logits, seed, given):
    """Samples (or reads ``given`` [batch, 1]) one value per row; returns
    value [batch], its log-prob, the full entropy and ``-log p * p``."""
    log_probs = tf.nn.log_softmax(logits)
    if given is None:
        value = tf.random.stateless_categorical(logits, 1, seed)[:, 0]
    else:
        value = given[:, 0]
    value = tf.cast(value, tf.int32)
    lp = tf.gather(log_probs, value, batch_dims=1)
    ent = -tf.reduce_sum(tf.exp(log_probs) * log_probs, -1)
    sent = -lp * tf.exp(lp)
    return value, lp, ent, sent
