"""The frozen description of a search run, and its checks.

Everything a run needs is in ``SearchConfig``; it is written to the run
directory as ``config.json`` and a resumed run must present the same one.
``check_search_config`` rejects bad combinations (an unknown space or
strategy, a dataset that does not fit the space) before any data is loaded.
"""

import dataclasses
import json
from typing import Optional

from nas_tf import config as config_lib
from nas_tf import controller as controller_lib
from nas_tf.controller import reinforce as reinforce_lib
from nas_tf.search import darts_config
from nas_tf.search import enas_config
from nas_tf.search import reward as reward_lib
from nas_tf import spaces
from nas_tf import strategies
from nas_tf.data import datasets
from nas_tf.strategies import evolution
from nas_tf.training import child_trainer
from nas_tf.training import precision as precision_lib



@dataclasses.dataclass(frozen=True)
class SearchConfig:
    """A search run.

    Attributes:
      space: Registered search-space name.
      space_params: Its parameters (``num_layers`` etc.).
      strategy: ``nasrl``, ``random``, ``evolution``, ``enas`` or
        ``darts``.
      num_children: Children to evaluate in all (NAS-RL CIFAR: 12,800;
        ENAS and DARTS: unused, ``enas`` / ``darts`` say how long they
        run).
      seed: One seed for the whole run (controller sampling, child
        initialisation, data order).
      dataset: An image dataset (``dominoes``, ``dominoes_near``, or a tfds
        name such as ``cifar10``) or a text corpus (``ptb``,
        ``synthetic_text``).
      data_dir: TFDS data directory (or PTB's); None: TFDS's default.
      manual_dir: A directory holding PTB's three text files, read instead
        of downloading them.
      validation_size: Training images held out for validation; None: the
        dataset's own (tfds: the originals' last 5,000 training images;
        dominoes: its generator's default).
      controller, reinforce: The controller and how it learns (nasrl).
      population_size, sample_size: Regularized evolution's P and S (the
        paper's 100 and 25, Real et al. 2019, "Methods Details").
      evolution_batch: Evolution's children per batch, all proposed from
        the history before the batch. 1 (the default) is the authors'
        sequential algorithm: every child joins the population, and the
        oldest leaves, before the next tournament. More is the paper's
        asynchronous form with that many workers.
      identity_mutation_probability: Evolution's chance that a child is an
        unchanged copy of its parent (0.05, "Methods Details").
      mutate_combine: Evolution also mutates NASNet's ``combine`` decision
        (add or concat); the paper's cells always add, so by default a
        child keeps its parent's.
      depth_schedule: NAS-RL's growing depth: ``num_layers`` starts at
        ``depth_start`` and grows by ``depth_step`` every ``depth_every``
        children (sec. 4.1: 6, +2 every 1,600).
      child, child_train: Image children: how they are built and trained.
      lm, lm_train: Language-model children: the same.
      enas: The ENAS loop (``strategy="enas"``): the shared weights'
        training, controller steps per epoch, deriving.
      darts: The DARTS loop (``strategy="darts"``): the weights' training,
        alpha's optimizer, the order of its gradient, the follow-ups.
      reward: Reward formula (see ``nas_tf/search/reward.py``); "" takes
        NAS-RL's for the dataset kind.
      failed_reward: Reward of a child that cannot be built.
      distribute: ``auto``, ``mirrored`` or ``one_device``.
      precision: Mixed precision and XLA of the image children's and the
        ENAS and DARTS image supernets' training
        (``nas_tf/training/precision.py``).
    """

    space: str = "nasrl_cnn"
    space_params: dict = dataclasses.field(default_factory=dict)
    strategy: str = "nasrl"
    num_children: int = 12800
    seed: int = 0
    dataset: str = "cifar10"
    data_dir: Optional[str] = None
    manual_dir: Optional[str] = None
    validation_size: Optional[int] = None
    controller: controller_lib.ControllerConfig = \
        controller_lib.ControllerConfig()
    reinforce: reinforce_lib.ReinforceConfig = reinforce_lib.ReinforceConfig()
    population_size: int = 100
    sample_size: int = 25
    evolution_batch: int = 1
    identity_mutation_probability: float = 0.05
    mutate_combine: bool = False
    depth_schedule: bool = False
    depth_start: int = 6
    depth_step: int = 2
    depth_every: int = 1600
    child: config_lib.ChildConfig = config_lib.ChildConfig()
    child_train: child_trainer.ChildTrainConfig = \
        child_trainer.ChildTrainConfig()
    lm: config_lib.LmConfig = config_lib.LmConfig()
    lm_train: config_lib.LmTrainConfig = config_lib.LmTrainConfig(epochs=35)
    enas: enas_config.EnasConfig = enas_config.EnasConfig()
    darts: darts_config.DartsConfig = darts_config.DartsConfig()
    reward: str = ""
    failed_reward: float = 0.0
    distribute: str = "auto"
    precision: precision_lib.PrecisionConfig = \
        precision_lib.PrecisionConfig()

    @property
    def kind(self) -> str:
        return datasets.dataset_kind(self.dataset)

    @property
    def batch_size(self) -> int:
        """Children proposed at once: the controller's ``m`` (one update
        from their rewards), ``evolution_batch`` for evolution; random
        search, which learns nothing, proposes ``m`` too."""
        if self.strategy == "evolution":
            return self.evolution_batch
        return self.reinforce.num_aggregate

    def reward_formula(self) -> reward_lib.RewardFormula:
        return reward_lib.RewardFormula(
            self.reward or reward_lib.DEFAULT_FORMULAS[self.kind], self.kind)

    def _depth_at(self, child_index: int) -> int:
        return (self.depth_start +
                self.depth_step * (child_index // self.depth_every))

    def space_at(self, child_index: int):
        """The search space of the child ``child_index`` (the depth
        schedule makes it grow)."""
        params = dict(self.space_params)
        if self.depth_schedule:
            params["num_layers"] = self._depth_at(child_index)
        return spaces.get_space(self.space, **params)

    def all_spaces(self) -> list:
        """Every distinct space the run's batches use, in order (one
        without a depth schedule). A batch takes the space of its first
        child."""
        if not self.depth_schedule:
            return [self.space_at(0)]
        starts = range(0, self.num_children, self.batch_size)
        depths = sorted({self._depth_at(i) for i in starts})
        return [spaces.get_space(self.space,
                                 **{**self.space_params, "num_layers": d})
                for d in depths]

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=1, sort_keys=True,
                          default=list)

    @classmethod
    def from_json(cls, text: str) -> "SearchConfig":
        """The config ``to_json`` wrote (a run's ``config.json``)."""
        fields = json.loads(text)
        for field in dataclasses.fields(cls):
            default = getattr(cls, field.name, None)
            if dataclasses.is_dataclass(default) and field.name in fields:
                fields[field.name] = _nested(type(default),
                                             fields[field.name])
        return cls(**fields)


def _nested(config_class, values: dict):
    """``config_class`` from JSON ``values``: lists become the tuples the
    defaults hold; nested configs take dicts themselves."""
    defaults = config_class()
    return config_class(**{
        k: tuple(v) if isinstance(getattr(defaults, k, None), tuple) else v
        for k, v in values.items()})


def check_search_config(config: SearchConfig) -> None:
    """Raises ValueError (or SpaceError) for a config that cannot run."""
    if config.strategy not in strategies.STRATEGIES:
        raise ValueError(f"strategy={config.strategy!r}; allowed: "
                         f"{', '.join(strategies.STRATEGIES)}")
    if config.strategy == "enas":
        _check_enas(config)
    if config.strategy == "darts":
        _check_darts(config)
    if config.num_children < 1:
        raise ValueError(f"num_children={config.num_children}; it must be "
                         f"at least 1")
    if config.depth_schedule:
        if config.space != "nasrl_cnn":
            raise ValueError(
                f"depth_schedule grows NAS-RL's layer-wise CNN; the space is "
                f"{config.space!r}, use nasrl_cnn")
        if min(config.depth_start, config.depth_step,
               config.depth_every) < 1:
            raise ValueError(
                f"depth_start, depth_step and depth_every must be at least "
                f"1; got {config.depth_start}, {config.depth_step}, "
                f"{config.depth_every}")
    space = config.space_at(0)
    recurrent = space.family == "recurrent"
    if recurrent != (config.kind == "text"):
        builds = "language models" if recurrent else "image classifiers"
        corpora = ", ".join(datasets.TEXT_DATASETS)
        wants = (f"a text corpus ({corpora})" if recurrent
                 else "an image dataset (dominoes, dominoes_near or a "
                 "tfds name)")
        raise ValueError(f"space {config.space!r} builds {builds}; dataset "
                         f"{config.dataset!r} does not fit, it needs {wants}")
    if config.kind == "text" and not config.precision.is_default:
        raise ValueError(
            f"{config.precision}: language models train in float32 without "
            f"XLA here; mixed_precision and jit_compile apply to image "
            f"children and the ENAS and DARTS image supernets")
    if config.kind == "text" and config.distribute == "mirrored":
        raise ValueError("language-model children train on one device; "
                         "distribute='mirrored' is for image children")
    if config.strategy == "evolution" and config.depth_schedule:
        raise ValueError("evolution keeps one population; it cannot follow "
                         "the depth schedule")
    if config.strategy == "evolution":
        evolution.check_settings(config.population_size, config.sample_size,
                                 config.identity_mutation_probability)
    if config.evolution_batch < 1:
        raise ValueError(f"evolution_batch={config.evolution_batch}; it must "
                         f"be at least 1 (1: one child at a time)")
    if config.validation_size is not None and config.validation_size < 1:
        raise ValueError(
            f"validation_size={config.validation_size}; a search validates "
            "every child, so it must be at least 1 (unset: the dataset's "
            "own)")
    config.reward_formula()


# XLA compiles one replica's pass; the DARTS network's synchronized
# BatchNorm all-reduces across replicas in the middle of it.
DARTS_XLA_REPLICAS = (
    "jit_compile: the DARTS search network normalises over all replicas' "
    "batches inside its pass, which XLA cannot compile; run it on one "
    "device (--distribute=one_device) or without --jit_compile")


def _check_darts(config: SearchConfig) -> None:
    if config.space == "darts_rnn":
        # The recurrent search (darts_lm_run): the CNN follow-ups do not
        # apply, and the unrolled step adds the decay after clipping.
        darts = config.darts
        cnn_only = [name for name, on in (
            ("partial_channels", darts.partial_channels > 1),
            ("edge_normalization", darts.edge_normalization),
            ("auxiliary_skip", darts.auxiliary_skip),
            ("perturbation", darts.perturbation != "none"),
            ("early_stop='skip_count'", darts.early_stop == "skip_count"))
            if on]
        if cnn_only:
            raise ValueError(
                f"{', '.join(cnn_only)}: darts_cnn options; the darts_rnn "
                f"search does not take them")
        if config.lm_train.weight_decay_mode != "gradient":
            raise ValueError(
                f"weight_decay_mode={config.lm_train.weight_decay_mode!r}; "
                f"the darts_rnn search adds the decay to the clipped "
                f"gradient (train_search.py's SGD): use 'gradient'")
        if config.space_at(0).average != "all":
            raise ValueError(
                "the darts_rnn search network averages all nodes "
                "(rnn/model_search.py): use average=all")
        return
    if config.space != "darts_cnn":
        raise ValueError(
            f"strategy 'darts' relaxes the darts_cnn (images) or darts_rnn "
            f"(text) space into its search network; space "
            f"{config.space!r} has none here, use one of those")
    if config.precision.jit_compile:
        if config.darts.order == "exact":
            # Measured on a 2-core CPU: 126 s to compile it for a 3-cell
            # network of 2-node cells; the exact order is the reference
            # the finite difference is tested against, not a search mode.
            raise ValueError(
                "jit_compile with order='exact': XLA compiles the double "
                "backprop through the search network for minutes (over 2 "
                "on a 2-core CPU for 3 cells of 2 nodes); use order "
                "'second' or 'first' with --jit_compile")
        if config.distribute == "mirrored":
            raise ValueError(DARTS_XLA_REPLICAS)
    if config.darts.partial_channels > 1:
        if config.child.filters % config.darts.partial_channels:
            raise ValueError(
                f"partial_channels={config.darts.partial_channels} must "
                f"divide filters={config.child.filters}")


def _check_enas(config: SearchConfig) -> None:
    from nas_tf import supernets
    if config.space not in supernets.SPACES:
        raise ValueError(
            f"strategy 'enas' shares weights in a supernet; space "
            f"{config.space!r} has none, use one of "
            f"{', '.join(supernets.SPACES)}")
    if config.depth_schedule:
        raise ValueError("strategy 'enas' searches one space; it cannot "
                         "follow the depth schedule")
    if config.precision.jit_compile and config.space == "enas_micro":
        # Measured on a 2-core CPU: XLA took over 9 minutes to compile the
        # smallest micro supernet's training step (a switch_case over the
        # ops of every node side), against about a minute for enas_macro.
        raise ValueError(
            "jit_compile: XLA compiles the enas_micro supernet's training "
            "step for many minutes (over 9 on a 2-core CPU for 2 nodes), so "
            "it is not offered for enas_micro; run without --jit_compile "
            "(enas_macro takes it)")
