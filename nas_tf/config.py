"""Configuration dataclasses the library takes (scripts map flags onto them)."""

import dataclasses

STEMS = ("cifar", "imagenet")


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
        for ok, message in checks:
            if not ok:
                raise ValueError(f"ChildConfig: {message}")

    @property
    def stem_width(self) -> int:
        return self.stem_filters or 3 * self.filters

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)
