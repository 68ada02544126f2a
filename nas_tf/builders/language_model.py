"""The word-level language model of DARTS and ENAS around a searched cell.

embedding (word dropout, then locked input dropout) -> the recurrent cell
(x and hidden dropout inside) -> locked output dropout -> decoder tied to
the embedding, plus a bias. This is DARTS ``rnn/model.py`` ``RNNModel`` with
one layer, which follows AWD-LSTM's dropouts; the ENAS code and enas_lm
have the same parts (see ``LmConfig`` for the names in each).
"""

import collections

import keras
import tensorflow as tf

from nas_tf import config as config_lib
from nas_tf import spaces
from nas_tf.builders import recurrent_cells

LmOutputs = collections.namedtuple(
    "LmOutputs", ["logits", "state", "raw_outputs", "dropped_outputs"])
LmOutputs.__doc__ = """One forward pass over a window.

  logits: [batch, time, vocab] next-word logits.
  state: The cell state after the window (feed it to the next window).
  raw_outputs: Cell outputs before output dropout (the slowness term's).
  dropped_outputs: Cell outputs after output dropout (the activation
    term's).
"""


def _locked_dropout(x, rate, seed):
    """One dropout mask per sequence, shared by all time steps
    (AWD-LSTM's ``LockedDropout``)."""
    if rate == 0.0:
        return x
    mask = keras.random.dropout(tf.ones_like(x[:, :1, :]), rate, seed=seed)
    return x * mask


class LanguageModelBase(keras.Model):
    """What every word-level LM here shares around its recurrent part: the
    embedding with word dropout, the locked input and output dropouts, and
    the decoder (tied to the embedding or its own kernel, with or without
    a bias).

    Subclasses set ``cell`` (with its ``state_size``), create its weights
    in ``build`` between ``_build_embedding`` and ``_build_decoder``, and
    run it through ``_forward``.

    Args:
      lm_config: An ``LmConfig``.
      seed: Seed of the weights' initialisers and the dropout masks.
    """

    def __init__(self, lm_config, seed=None, **kwargs):
        if not isinstance(lm_config, config_lib.LmConfig):
            raise ValueError(f"{type(self).__name__} takes an LmConfig, got "
                             f"{type(lm_config).__name__}")
        super().__init__(**kwargs)
        self.lm_config = cfg = lm_config
        self.seed = seed
        self._dropout_seed = keras.random.SeedGenerator(
            recurrent_cells.derived_seed(seed, 2))
        self.embedding = keras.layers.Embedding(
            cfg.vocab_size, cfg.hidden_size,
            embeddings_initializer=keras.initializers.RandomUniform(
                -cfg.init_range, cfg.init_range,
                recurrent_cells.derived_seed(seed, 3)),
            name="embedding")

    def _build_embedding(self):
        self.embedding.build((None, None))

    def _build_decoder(self):
        cfg = self.lm_config
        if not cfg.tie_weights:
            self.decoder_kernel = self.add_weight(
                (cfg.hidden_size, cfg.vocab_size),
                keras.initializers.RandomUniform(
                    -cfg.init_range, cfg.init_range,
                    recurrent_cells.derived_seed(self.seed, 4)),
                name="decoder_kernel")
        if cfg.decoder_bias:
            # DARTS init_weights(): decoder.bias.fill_(0).
            self.decoder_bias = self.add_weight((cfg.vocab_size,), "zeros",
                                                name="decoder_bias")

    def initial_state(self, batch_size):
        """Zero cell state for ``batch_size`` sequences."""
        return [tf.zeros([batch_size, n]) for n in self.cell.state_size]

    def _embed(self, tokens, training):
        table = self.embedding.embeddings
        rate = self.lm_config.embedding_dropout
        if training and rate > 0:
            # DARTS embedded_dropout: drop whole rows (words), rescale.
            rows = tf.ones([self.lm_config.vocab_size, 1])
            table = table * keras.random.dropout(rows, rate,
                                                 seed=self._dropout_seed)
        return tf.gather(table, tokens)

    def _decode(self, outputs):
        cfg = self.lm_config
        if cfg.tie_weights:
            logits = tf.einsum("bth,vh->btv", outputs,
                               self.embedding.embeddings)
        else:
            logits = tf.einsum("bth,hv->btv", outputs, self.decoder_kernel)
        if cfg.decoder_bias:
            logits = logits + self.decoder_bias
        return logits

    def _forward(self, tokens, state, training, recur) -> LmOutputs:
        """Embeds a [batch, time] window, runs ``recur(x, state)`` (which
        returns the cell outputs and the next state) and decodes."""
        if not self.built:
            self.build()
        tokens = tf.convert_to_tensor(tokens)
        if state is None:
            state = self.initial_state(tf.shape(tokens)[0])
        cfg = self.lm_config
        x = self._embed(tokens, training)
        if training:
            x = _locked_dropout(x, cfg.input_dropout, self._dropout_seed)
        raw, new_state = recur(x, list(state))
        dropped = (_locked_dropout(raw, cfg.output_dropout,
                                   self._dropout_seed) if training else raw)
        return LmOutputs(self._decode(dropped), new_state, raw, dropped)


@keras.saving.register_keras_serializable(package="nas_tf")
class LanguageModel(LanguageModelBase):
    """A one-layer LM over the cell of a recurrent-space architecture.

    ``model(tokens)`` gives logits from a zero state; ``forward`` also
    takes and returns the state and the outputs the regularisers read.

    Args:
      space_name: A recurrent search space (nasrl_rnn, enas_rnn, darts_rnn).
      space_params: Its parameters.
      architecture: The architecture's token string (or published name).
      lm_config: ``LmConfig`` fields as a dict.
      seed: Seed of the weights' initialisers and the dropout masks.
    """

    def __init__(self, space_name, space_params, architecture, lm_config,
                 seed=None, **kwargs):
        kwargs.setdefault("name", f"{space_name}_lm")
        super().__init__(config_lib.LmConfig(**lm_config), seed=seed,
                         **kwargs)
        self.space = spaces.get_space(space_name, **space_params)
        self.architecture = spaces.resolve_architecture(self.space,
                                                        architecture)
        cfg = self.lm_config
        self.cell = recurrent_cells.build_cell(
            self.space, self.architecture, cfg.hidden_size, cfg.init_range,
            dropout=cfg.x_dropout, recurrent_dropout=cfg.hidden_dropout,
            highway_split=cfg.highway_split or None, seed=seed)
        self.rnn = keras.layers.RNN(self.cell, return_sequences=True,
                                    return_state=True, name="rnn")

    def build(self, input_shape=None):
        self._build_embedding()
        self.rnn.build((None, None, self.lm_config.hidden_size))
        self._build_decoder()
        self.built = True

    def forward(self, tokens, state=None, training=False) -> LmOutputs:
        """Logits, next state and outputs for a [batch, time] window."""

        def recur(x, initial_state):
            raw, *new_state = self.rnn(x, initial_state=initial_state,
                                       training=training)
            return raw, new_state

        return self._forward(tokens, state, training, recur)

    def call(self, tokens, training=False):
        return self.forward(tokens, training=training).logits

    def mult_adds_per_token(self) -> int:
        """Multiply-adds to predict one word: the cell's matmuls and the
        decoder (the embedding lookup is free)."""
        cfg = self.lm_config
        h = cfg.hidden_size
        return sum(int(w.shape[0]) * int(w.shape[1])
                   for w in self.cell.weights) + h * cfg.vocab_size

    def get_config(self):
        return {
            "name": self.name,
            "space_name": self.space.name,
            "space_params": dict(self.space.params),
            "architecture": self.space.format(self.architecture),
            "lm_config": self.lm_config.to_dict(),
            "seed": self.seed,
        }


def build_language_model(space, arch, config, seed=None) -> LanguageModel:
    """The built LM of ``arch`` (an architecture of a recurrent space)."""
    model = LanguageModel(space.name, space.params, space.format(arch),
                          config.to_dict(), seed=seed)
    model.build()
    return model
