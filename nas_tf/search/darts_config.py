"""How a DARTS search runs (Liu et al. 2018; quark0/darts
``cnn/train_search.py``), with the follow-ups that fix its collapse as
options of the same loop.

Every iteration first updates alpha on a batch of the alpha half of the
training images, then the weights on a batch of the weights half
(``train_portion``), for ``train.epochs`` epochs.
"""

import dataclasses

from nas_tf.config import _raise_on_failed
from nas_tf.search import darts_architect
from nas_tf.supernets import darts_alpha
from nas_tf.training import image_trainer
from nas_tf.training import schedules

PERTURBATIONS = ("none", "random")
EARLY_STOPS = ("none", "skip_count", "eigenvalue")


def _search_recipe() -> image_trainer.ImageTrainConfig:
    """The weights' training in cnn/train_search.py: 50 epochs, batch 64,
    SGD lr 0.025 cosine to 0.001 (``--learning_rate_min``; the paper says
    zero), momentum 0.9, weight decay 3e-4, clipping 5; random crop and
    flip, no cutout."""
    return image_trainer.ImageTrainConfig(
        epochs=50, batch_size=64,
        schedule=schedules.LrSchedule(kind="cosine", learning_rate=0.025,
                                      lr_min=0.001, epochs=50),
        momentum=0.9, nesterov=False, weight_decay=3e-4, grad_clip=5.0,
        cutout=0)


@dataclasses.dataclass(frozen=True)
class DartsConfig:
    """The DARTS loop.

    Attributes:
      train: The weights' training (train_search.py's by default).
      train_portion: Share of the training images that trains the weights;
        the rest trains alpha (0.5, ``--train_portion``).
      order: ``first`` (the default of train_search.py), ``second``
        (``--unrolled``: finite-difference Hessian-vector product) or
        ``exact`` (the same unrolled gradient by double backprop).
      fd_radius: The finite difference's r = fd_radius / ||v|| (0.01,
        ``architect.py`` ``_hessian_vector_product``).
      arch_learning_rate, arch_beta_1, arch_beta_2, arch_weight_decay:
        alpha's Adam (3e-4, (0.5, 0.999), 1e-3: ``--arch_learning_rate``,
        ``architect.py``, ``--arch_weight_decay``).
      init_scale: Alpha starts at init_scale * N(0, 1) (1e-3).
      mixing: ``softmax`` over each edge's ops (DARTS) or ``sigmoid`` of
        each op alone (Fair DARTS, ``fairdarts/model_search.py``). Fair
        DARTS derives by a threshold, which can leave a node with fewer
        than two inputs; the ``darts_cnn`` space keeps two, so here its
        genotype is the top-2 rule on the sigmoids, and ``threshold``
        reports how many kept edges pass.
      zero_one_loss_weight: Fair DARTS's ``-w * mean((sigmoid(alpha) -
        0.5)^2)`` added to the validation loss (``separate_loss.py``;
        ``--aux_loss_weight`` 10 in its runs); 0: off.
      threshold: Fair DARTS's derive threshold (``--op_threshold`` 0.85),
        reported per epoch as the edges whose op weight passes it.
      partial_channels: PC-DARTS's K: 1/K of each edge's channels go
        through its ops (4 in PC-DARTS); 1: off.
      edge_normalization: PC-DARTS's beta, a softmax over each node's
        incoming edges multiplying them.
      arch_warmup_epochs: Epochs that train the weights only before alpha
        updates begin (PC-DARTS ``if epoch >= 15``); 0: from the start.
      auxiliary_skip: DARTS-'s skip on every edge outside the softmax.
      auxiliary_skip_beta: Its initial weight (``--skip_beta`` 1), decayed
        linearly to ``beta * (epochs - epoch) / epochs`` in epoch ``epoch``
        (``--decay linear``, ``DecayScheduler``; it is 1/epochs in the last
        epoch and 0 after it).
      perturbation: ``random``: SDARTS-RS's noise on the softmax weights
        before each weight step (``attacker/perturb.py`` ``Random_alpha``).
      perturbation_epsilon: Its final bound; epoch e draws from [-eps_e,
        eps_e], eps_e = 0.03 + (epsilon - 0.03) * e / epochs
        (``--epsilon_alpha`` 0.3).
      early_stop: ``skip_count`` (DARTS+: stop once the derived normal cell
        has ``skip_limit`` skip connections) or ``eigenvalue`` (DARTS-ES,
        RobustDARTS ``utils.py``); ``none``.
      skip_limit: DARTS+'s limit (2).
      hessian_every: Epochs between the dominant-eigenvalue monitors (the
        epochs e with e % hessian_every == 0, and the last); 0: off.
        RobustDARTS's scripts compute it every 2
        (``--report_freq_hessian 2``), which DARTS-ES's window and delta
        assume.
      hessian_iterations: Power-iteration steps of the monitor.
      es_window, es_factor, es_delta, es_start_epoch: DARTS-ES's rule:
        the mean eigenvalue over a window of 5 computations, stop when it
        grew by more than 1.3x over 4 computations, not before epoch 10,
        keeping the genotype of the earlier computation (RobustDARTS
        ``args.py`` defaults).
      recompute_cells: Keep only each cell's inputs for the backward pass
        and run the cell again there (``supernets/recompute.py``): the same
        gradients in less memory (0.55 GB less a first-order step at batch
        16, more at larger batches) for one more forward pass. Not an
        original's setting (they hold every activation). The ``exact``
        order runs without it: its double backprop through the rerun is
        not supported in graph mode.
    """

    train: image_trainer.ImageTrainConfig = dataclasses.field(
        default_factory=_search_recipe)
    train_portion: float = 0.5
    order: str = "first"
    fd_radius: float = 0.01
    arch_learning_rate: float = 3e-4
    arch_beta_1: float = 0.5
    arch_beta_2: float = 0.999
    arch_weight_decay: float = 1e-3
    init_scale: float = 1e-3
    mixing: str = "softmax"
    zero_one_loss_weight: float = 0.0
    threshold: float = 0.85
    partial_channels: int = 1
    edge_normalization: bool = False
    arch_warmup_epochs: int = 0
    auxiliary_skip: bool = False
    auxiliary_skip_beta: float = 1.0
    perturbation: str = "none"
    perturbation_epsilon: float = 0.3
    early_stop: str = "none"
    skip_limit: int = 2
    hessian_every: int = 2
    hessian_iterations: int = 20
    es_window: int = 5
    es_factor: float = 1.3
    es_delta: int = 4
    es_start_epoch: int = 10
    recompute_cells: bool = True

    def __post_init__(self):
        if isinstance(self.train, dict):
            object.__setattr__(self, "train",
                               image_trainer.ImageTrainConfig(**self.train))
        checks = [
            (0 < self.train_portion < 1, f"train_portion="
             f"{self.train_portion}; it must be in (0, 1)"),
            (self.order in darts_architect.ORDERS, f"order={self.order!r}; "
             f"allowed: {darts_architect.ORDERS}"),
            (self.fd_radius > 0, f"fd_radius={self.fd_radius}; it must be "
             "positive"),
            (self.mixing in darts_alpha.MIXINGS, f"mixing={self.mixing!r}; "
             f"allowed: {darts_alpha.MIXINGS}"),
            (self.partial_channels >= 1, f"partial_channels="
             f"{self.partial_channels}; it must be at least 1"),
            (self.arch_warmup_epochs >= 0, f"arch_warmup_epochs="
             f"{self.arch_warmup_epochs}; it must not be negative"),
            (self.perturbation in PERTURBATIONS, f"perturbation="
             f"{self.perturbation!r}; allowed: {PERTURBATIONS}"),
            (self.early_stop in EARLY_STOPS, f"early_stop="
             f"{self.early_stop!r}; allowed: {EARLY_STOPS}"),
            (self.hessian_every >= 0, f"hessian_every={self.hessian_every};"
             " it must be 0 (off) or positive"),
            (self.early_stop != "eigenvalue" or self.hessian_every > 0,
             "early_stop='eigenvalue' needs the eigenvalue monitor: set "
             "hessian_every > 0"),
            (self.hessian_iterations >= 1, f"hessian_iterations="
             f"{self.hessian_iterations}; it must be at least 1"),
            (self.skip_limit >= 1, f"skip_limit={self.skip_limit}; it must "
             "be at least 1"),
        ]
        _raise_on_failed(type(self).__name__, checks)

    def auxiliary_skip_weight(self, epoch: int) -> float:
        """DARTS-'s beta in 0-based ``epoch`` (linear decay)."""
        epochs = self.train.epochs
        return self.auxiliary_skip_beta * (epochs - epoch) / epochs

    def perturbation_bound(self, epoch: int) -> float:
        """SDARTS-RS's epsilon in 0-based ``epoch``."""
        return 0.03 + (self.perturbation_epsilon - 0.03) * (
            epoch / self.train.epochs)
