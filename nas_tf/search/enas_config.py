"""How an ENAS search alternates its two phases (Pham et al. 2018, sec. 2.2;
melodyguan/enas ``src/cifar10/main.py`` ``train``).

Every epoch first trains the shared weights for one pass over the training
split, a freshly sampled architecture for every minibatch, then runs
``controller_train_steps x num_aggregate`` controller samples, each rewarded
on one validation minibatch, with one controller update per
``num_aggregate`` samples (``SearchConfig.reinforce``).
"""

import dataclasses

from nas_tf.training import image_trainer
from nas_tf.training import schedules


def _macro_search_recipe() -> image_trainer.ImageTrainConfig:
    """The shared weights' training in scripts/cifar10_macro_search.sh:
    310 epochs, batch 128, Nesterov 0.9, SGDR 0.05 -> 0.0005 (T0 10, T_mul
    2), l2_reg 2.5e-4 added to the loss as l2 * sum(w^2) (a coupled decay of
    5e-4), no clipping (a no-op in the code), no cutout."""
    return image_trainer.ImageTrainConfig(
        epochs=310, batch_size=128,
        schedule=schedules.LrSchedule(kind="sgdr", learning_rate=0.05,
                                      lr_min=0.0005, sgdr_t0=10,
                                      sgdr_t_mul=2),
        momentum=0.9, nesterov=True, weight_decay=5e-4, grad_clip=0.0,
        train_aux_head=False, drop_path_ramp="step")


@dataclasses.dataclass(frozen=True)
class EnasConfig:
    """The ENAS loop.

    Attributes:
      train: The shared weights' training (epochs, batch, schedule, decay,
        auxiliary head). Default: the macro search script's.
      controller_train_steps: Controller updates per epoch
        (``--controller_train_steps``: 50 macro, 30 micro).
      controller_updates: Off: the controller keeps its initial weights and
        every architecture is sampled from that fixed policy (the paper's
        ablation of a controller that does not learn, sec. 3.3).
      skip_unused_weights: Weights of ops no architecture of a step used
        keep their value and momentum (PyTorch ports' behaviour, where such
        weights have no gradient). Off (the TF1 code): their gradient is
        zero, so momentum and weight decay still move them.
      derive_samples: Architectures sampled from the trained controller to
        derive the result, each scored on one validation minibatch with the
        shared weights (paper sec. 2.2 "Deriving Architectures"; the paper
        says "several", carpedm20/ENAS-pytorch's ``derive_num_sample``
        100).
    """

    train: image_trainer.ImageTrainConfig = dataclasses.field(
        default_factory=_macro_search_recipe)
    controller_train_steps: int = 50
    controller_updates: bool = True
    skip_unused_weights: bool = False
    derive_samples: int = 100

    def __post_init__(self):
        if isinstance(self.train, dict):
            object.__setattr__(self, "train",
                               image_trainer.ImageTrainConfig(**self.train))
        if self.controller_train_steps < 1:
            raise ValueError(
                f"controller_train_steps={self.controller_train_steps}; it "
                "must be at least 1")
        if self.derive_samples < 1:
            raise ValueError(f"derive_samples={self.derive_samples}; it "
                             "must be at least 1")
