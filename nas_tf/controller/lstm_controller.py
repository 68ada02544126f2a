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

from nas_tf.controller.controller_config import ControllerConfig
from nas_tf.spaces import schema

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
      hidden: [batch, num_decisions, lstm_size] the LSTM output each
        decision was read from (to see what the controller remembers).
    """

    tokens: tf.Tensor
    log_prob: tf.Tensor
    entropy: tf.Tensor
    sampled_entropy: tf.Tensor
    skip_kl: tf.Tensor
    skip_count: tf.Tensor
    decision_log_probs: tf.Tensor
    hidden: tf.Tensor = None


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
        picked, per_decision, hidden = [], [], []
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
            hidden.append(h)
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
                                tf.stack(per_decision, axis=1),
                                tf.stack(hidden, axis=1))

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
            fn = (self.sample_fn(space) if what == "sample"
                  else self.score_fn(space))
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

    def sample_fn(self, space):
        """``sample`` for ``space`` as a function usable inside another
        ``tf.function``: ``(seed, batch) -> ControllerOutput``."""
        def fn(seed, batch):
            return self._walk(space, batch, seed=seed)
        return fn

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
