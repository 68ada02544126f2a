"""Configuration dataclasses the library takes (scripts map flags onto them)."""

import dataclasses

STEMS = ("cifar", "imagenet")


def _raise_on_failed(config_name, checks):
    """Raises ValueError for the first ``(ok, message)`` that is not ok."""
    for ok, message in checks:
        if not ok:
            raise ValueError(f"{config_name}: {message}")


@dataclasses.dataclass(frozen=True)
class ChildConfig:
    """How a child network is built around an architecture.

    ``num_cells`` and ``filters`` keep each original's own meaning:

    * DARTS: ``--layers`` (all cells, reductions included) and
      ``--init_channels`` C.
    * NASNet (slim): ``num_cells`` (normal cells; two reduction cells are
      added) and ``num_conv_filters`` F; ``N @ P`` in the paper is
      ``num_cells = 3N`` with ``P = 6 * 4F`` penultimate filters.
    * ENAS micro: ``--child_num_layers`` (normal cells; two reduction layers
      are added) and ``--child_out_filters``.
    * ENAS macro: ``filters`` is ``--child_out_filters``; its depth is the
      space's ``num_layers``.
    * NAS-RL: filters come from the architecture; ``num_cells`` is unused.

    Attributes:
      num_classes: Classifier outputs.
      image_size: Input height and width.
      image_channels: Input channels.
      stem: "cifar" (one 3x3 conv) or "imagenet" (the original's strided
        ImageNet stem).
      num_cells: See above.
      filters: See above.
      stem_filters: Stem conv width; 0 means the original's own: ``3 *
        filters`` for cells (DARTS ``stem_multiplier=3``, ENAS micro ``3 *
        out_filters``) and ``filters`` for ENAS macro. NASNet slim uses
        ``32 * stem_multiplier``: 96 on CIFAR, 32 for Mobile.
      auxiliary: Add the auxiliary head (a second output). Its weights are
        left out of parameter counts, as in the papers.
      drop_path_rate: Final drop-path probability (1 - drop_path_keep_prob).
      dropout: Dropout before the classifier (1 - keep_prob).
      skip_reduction_layer_input: NASNet-Large (slim large_imagenet_config):
        after a reduction cell, the next cell's second input skips it.
      bn_momentum: BatchNorm moving-average momentum (PyTorch 0.1 = 0.9).
      bn_epsilon: BatchNorm epsilon.
      macro_separable_as_conv: ENAS macro quirk (general_child.py
        ``_fixed_layer``): the fixed child builds the "separable" ops 1 and 3
        as ordinary convs. True reproduces the released code.
    """

    # Defaults: the DARTS search network (cnn/train_search.py --layers 8
    # --init_channels 16) with PyTorch's BatchNorm (momentum 0.1, i.e. a
    # 0.9 moving average; eps 1e-5). The presets in configs/ set each
    # original's final sizes.

    num_classes: int = 10
    image_size: int = 32
    image_channels: int = 3
    stem: str = "cifar"
    num_cells: int = 8
    filters: int = 16
    stem_filters: int = 0
    auxiliary: bool = False
    drop_path_rate: float = 0.0
    dropout: float = 0.0
    skip_reduction_layer_input: bool = False
    bn_momentum: float = 0.9
    bn_epsilon: float = 1e-5
    macro_separable_as_conv: bool = True

    def __post_init__(self):
        checks = [
            (self.stem in STEMS, f"stem={self.stem!r}; allowed: {STEMS}"),
            (self.num_classes >= 1, f"num_classes={self.num_classes}; "
             "it must be at least 1"),
            (self.image_size >= 1, f"image_size={self.image_size}; it must "
             "be at least 1"),
            (self.image_channels >= 1, f"image_channels="
             f"{self.image_channels}; it must be at least 1"),
            (self.num_cells >= 1, f"num_cells={self.num_cells}; it must be "
             "at least 1"),
            (self.filters >= 2, f"filters={self.filters}; it must be at "
             "least 2"),
            (self.stem_filters >= 0, f"stem_filters={self.stem_filters}; "
             "it must be 0 (3 x filters) or positive"),
            (0.0 <= self.drop_path_rate < 1.0, f"drop_path_rate="
             f"{self.drop_path_rate}; allowed: [0, 1)"),
            (0.0 <= self.dropout < 1.0, f"dropout={self.dropout}; allowed: "
             "[0, 1)"),
        ]
        _raise_on_failed(type(self).__name__, checks)

    @property
    def stem_width(self) -> int:
        return self.stem_filters or 3 * self.filters

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# Where the sigmoid gate sits in a highway node's projection: DARTS
# ``rnn/model.py`` splits ``c, h`` (gate first); both ENAS codes split
# ``h, t`` (gate last).
HIGHWAY_SPLITS = ("gate_first", "gate_last")


@dataclasses.dataclass(frozen=True)
class LmConfig:
    """How a language model is built around a recurrent cell.

    Defaults: the DARTS final PTB model (quark0/darts ``rnn/train.py``,
    paper A.2.2): embedding = hidden = 850, tied decoder with a bias, the
    five dropouts below, all weights U(-0.04, 0.04) (``INITRANGE``).
    ``configs/*_ptb_final.cfg`` set ENAS's and NAS-RL's.

    Attributes:
      vocab_size: Words in the vocabulary (10,000 for PTB).
      hidden_size: Cell units; the embedding has the same size (the cell
        reads ``[x_t, h_{t-1}]`` and the decoder is tied to the embedding).
      tie_weights: Decoder weights = embedding matrix (DARTS, ENAS, and the
        NAS-RL "shared embeddings" model).
      decoder_bias: The decoder adds a bias (DARTS's ``nn.Linear``; the
        ENAS code's decoder has none).
      output_dropout: Locked (per-sequence) dropout on the cell outputs
        (DARTS ``--dropout``, ENAS keep_prob o).
      hidden_dropout: Per-sequence dropout on h_{t-1} and on every node's
        input state (DARTS ``--dropouth``, ENAS h).
      x_dropout: Per-sequence dropout on x_t inside the cell (DARTS
        ``--dropoutx``, ENAS x).
      input_dropout: Locked dropout on the embedded words (DARTS
        ``--dropouti``, enas_lm i).
      embedding_dropout: Drops whole words of the embedding matrix (DARTS
        ``--dropoute``, enas_lm e). The ENAS code's e drops word
        occurrences per sequence instead; this model does not copy that.
      init_range: All weights, embedding included, from U(-r, r) (DARTS
        0.04; enas_lm 0.05; the ENAS code 0.04 above 400 units).
      highway_split: ENAS/DARTS cells: which half of a node's projection is
        the gate; "" means the space's original (DARTS gate first, both
        ENAS codes gate last).
    """

    vocab_size: int = 10000
    hidden_size: int = 850
    tie_weights: bool = True
    decoder_bias: bool = True
    output_dropout: float = 0.75
    hidden_dropout: float = 0.25
    x_dropout: float = 0.75
    input_dropout: float = 0.2
    embedding_dropout: float = 0.1
    init_range: float = 0.04
    highway_split: str = ""

    def __post_init__(self):
        rates = ("output_dropout", "hidden_dropout", "x_dropout",
                 "input_dropout", "embedding_dropout")
        checks = [
            (self.vocab_size >= 2, f"vocab_size={self.vocab_size}; it must "
             "be at least 2"),
            (self.hidden_size >= 1, f"hidden_size={self.hidden_size}; it "
             "must be at least 1"),
            (self.init_range > 0, f"init_range={self.init_range}; it must "
             "be positive"),
            (self.highway_split in ("",) + HIGHWAY_SPLITS, f"highway_split="
             f"{self.highway_split!r}; allowed: '' (the space's own), "
             f"{', '.join(HIGHWAY_SPLITS)}"),
        ] + [(0.0 <= getattr(self, r) < 1.0,
              f"{r}={getattr(self, r)}; allowed: [0, 1)") for r in rates]
        _raise_on_failed(type(self).__name__, checks)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


WEIGHT_DECAY_MODES = ("gradient", "loss")
ACTIVATION_REG_INPUTS = ("dropped", "raw")


@dataclasses.dataclass(frozen=True)
class LmTrainConfig:
    """How a language model is trained (the originals' final recipe).

    Defaults: DARTS ``rnn/train.py`` (paper A.2.2): SGD with lr 20 scaled by
    the window length over bptt, gradient norm clipped to 0.25 (global, all
    weights), weight decay 8e-7, slowness (temporal activation)
    regularisation 1e-3, and averaged SGD once a validation loss is worse
    than the best of the evaluations before the last ``nonmono`` = 5. Evaluation uses
    batch 10 (validation) and 1 (test) with fixed windows of bptt.

    Attributes:
      batch_size: Training batch (DARTS 64).
      bptt: Window length (35).
      variable_bptt: AWD-LSTM/DARTS random window lengths with the learning
        rate scaled by length/bptt; False: fixed windows.
      max_seq_len_delta: Longest window is bptt + this (20).
      learning_rate: SGD learning rate (20).
      lr_decay: Per-epoch factor from ``lr_decay_start`` on (1 = none; the
        ENAS code's ptb_final.sh decays 0.9991 from epoch 14).
      lr_decay_start: First epoch that decays.
      lr_min: The decayed learning rate's floor (ENAS 1e-3).
      clip_norm: Global gradient-norm clip (0.25).
      weight_decay: L2 coefficient (DARTS 8e-7).
      weight_decay_mode: "gradient": ``wd * w`` added to the clipped
        gradient (PyTorch SGD/ASGD ``weight_decay``, DARTS); "loss":
        ``wd * sum(w^2)`` added to the loss before clipping (enas_lm).
      activation_reg: alpha of ``alpha * mean(h^2)`` (DARTS 0; enas_lm 0.7).
      activation_reg_on: "dropped" outputs (DARTS/AWD) or "raw" outputs
        before output dropout (enas_lm ``all_s``).
      slowness_reg: beta of ``beta * mean((h_t - h_{t-1})^2)`` on the raw
        outputs (DARTS 1e-3; enas_lm's fixed model 0).
      nonmono: Averaging starts when a validation loss is worse than the
        best one before the last ``nonmono`` evaluations (DARTS 5;
        enas_lm 10). 0 disables averaging.
      epochs: Training epochs (DARTS 8000: it runs until stopped).
      max_steps: Stop after this many training steps in all; 0 = no limit.
      eval_batch_size: Validation batch (DARTS 10).
      test_batch_size: Test batch (DARTS 1).
      log_every: Steps between progress lines (DARTS ``log-interval`` 200).
      seed: Seed of window lengths (DARTS ``--seed`` 1267).
    """

    batch_size: int = 64
    bptt: int = 35
    variable_bptt: bool = True
    max_seq_len_delta: int = 20
    learning_rate: float = 20.0
    lr_decay: float = 1.0
    lr_decay_start: int = 1
    lr_min: float = 0.0
    clip_norm: float = 0.25
    weight_decay: float = 8e-7
    weight_decay_mode: str = "gradient"
    activation_reg: float = 0.0
    activation_reg_on: str = "dropped"
    slowness_reg: float = 1e-3
    nonmono: int = 5
    epochs: int = 8000
    max_steps: int = 0
    eval_batch_size: int = 10
    test_batch_size: int = 1
    log_every: int = 200
    seed: int = 1267

    def __post_init__(self):
        positive = ("batch_size", "bptt", "epochs", "eval_batch_size",
                    "test_batch_size", "log_every")
        non_negative = ("max_seq_len_delta", "clip_norm", "weight_decay",
                        "lr_min", "lr_decay_start",
                        "activation_reg", "slowness_reg", "nonmono",
                        "max_steps")
        checks = [(getattr(self, n) >= 1, f"{n}={getattr(self, n)}; it must "
                   "be at least 1") for n in positive]
        checks += [(getattr(self, n) >= 0, f"{n}={getattr(self, n)}; it "
                    "must not be negative") for n in non_negative]
        checks += [
            (self.learning_rate > 0, f"learning_rate={self.learning_rate}; "
             "it must be positive"),
            (0 < self.lr_decay <= 1, f"lr_decay={self.lr_decay}; allowed: "
             "(0, 1]"),
            (self.weight_decay_mode in WEIGHT_DECAY_MODES,
             f"weight_decay_mode={self.weight_decay_mode!r}; allowed: "
             f"{', '.join(WEIGHT_DECAY_MODES)}"),
            (self.activation_reg_on in ACTIVATION_REG_INPUTS,
             f"activation_reg_on={self.activation_reg_on!r}; allowed: "
             f"{', '.join(ACTIVATION_REG_INPUTS)}"),
        ]
        _raise_on_failed(type(self).__name__, checks)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def epoch_learning_rate(self, epoch: int) -> float:
        """The base learning rate of ``epoch`` (1-based), before the
        per-window length scaling."""
        decays = max(0, epoch - self.lr_decay_start + 1)
        if self.lr_decay == 1.0 or decays == 0:
            return self.learning_rate
        return max(self.lr_min, self.learning_rate * self.lr_decay ** decays)
