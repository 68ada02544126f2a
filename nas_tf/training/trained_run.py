"""The directory ``train.py`` writes and ``export.py`` reads.

A training run directory holds:

- ``flags.cfg``: the effective flags (relaunchable as a flagfile);
- ``train_config.json``: what the model is, written before training starts
  (``TrainedModelSpec`` as JSON);
- ``checkpoints/``: ``tf.train.Checkpoint(model=..., optimizer=...,
  epoch=...)`` after every epoch;
- TensorBoard event files;
- ``result.json``: the final metrics, written once training has finished.
  Its presence is what marks a run as finished.
"""

import dataclasses
import json
import os
from typing import Optional

import tensorflow as tf

from nas_tf import builders
from nas_tf import config as config_lib
from nas_tf.utils import fileio
from nas_tf import spaces

TRAIN_CONFIG = "train_config.json"
RESULT = "result.json"
CHECKPOINTS = "checkpoints"
IMAGE, TEXT = "image", "text"


@dataclasses.dataclass(frozen=True)
class TrainedModelSpec:
    """Everything needed to rebuild a trained model without its flags.

    Attributes:
      kind: ``image`` (a classifier) or ``text`` (a language model).
      space: Search-space name.
      space_params: That space's parameters.
      architecture: The architecture's token string (``space.format``).
      model: ``ChildConfig`` or ``LmConfig`` fields.
      dataset: The dataset trained on.
      seed: The run's seed (weight initialisation of language models).
      normalization: Image models: per-channel ``mean`` and ``std`` that
        inputs are normalised with after scaling pixels to [0, 1]: the
        training images' own, or for streamed data the preprocessing's
        (ImageNet's for ``darts``, 0.5 and 0.5, i.e. [-1, 1], for
        ``inception``).
      preprocessing: Image models trained on streamed data: ``darts`` or
        ``inception`` (``nas_tf.data.imagenet_preprocessing``), whose
        evaluation crop gives the network's inputs; None for data read
        into memory.
      preset: Name of the flagfile preset, if any.
      recipe: The training recipe's fields (``ImageTrainConfig`` or
        ``LmTrainConfig``), for the record and to refuse resuming with
        another.
      precision: ``PrecisionConfig`` fields (mixed precision, XLA) the run
        trained with; None in runs written before it existed, which
        trained in float32 without XLA. The weights are float32 either way
        and ``build_model`` builds a float32 model.
    """

    kind: str
    space: str
    space_params: dict
    architecture: str
    model: dict
    dataset: str
    seed: int = 0
    normalization: Optional[dict] = None
    preset: str = ""
    recipe: Optional[dict] = None
    preprocessing: Optional[str] = None
    precision: Optional[dict] = None

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=1, sort_keys=True,
                          default=list)

    @classmethod
    def from_json(cls, text: str) -> "TrainedModelSpec":
        record = json.loads(text)
        # JSON turns the spaces' tuple parameters into lists.
        record["space_params"] = {
            k: tuple(v) if isinstance(v, list) else v
            for k, v in record["space_params"].items()}
        return cls(**record)

    def search_space(self):
        return spaces.get_space(self.space, **self.space_params)

    def build_model(self):
        """The untrained model (weights come from ``restore_weights``)."""
        space = self.search_space()
        arch = spaces.resolve_architecture(space, self.architecture)
        if self.kind == TEXT:
            config = config_lib.LmConfig(**self.model)
        else:
            config = config_lib.ChildConfig(**self.model)
        return builders.build_model(space, arch, config, seed=self.seed)


def write_spec(logdir: str, spec: TrainedModelSpec) -> None:
    fileio.write_file_atomically(os.path.join(logdir, TRAIN_CONFIG),
                                 spec.to_json())


def read_spec(logdir: str) -> TrainedModelSpec:
    path = os.path.join(logdir, TRAIN_CONFIG)
    if not os.path.exists(path):
        raise ValueError(f"{logdir} holds no training run ({TRAIN_CONFIG} is "
                         f"missing); train one with scripts/train.py "
                         f"--logdir={logdir}")
    with open(path) as f:
        return TrainedModelSpec.from_json(f.read())


def read_result(logdir: str) -> Optional[dict]:
    """The final metrics, or None while training has not finished."""
    path = os.path.join(logdir, RESULT)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def write_result(logdir: str, result: dict) -> None:
    fileio.write_file_atomically(os.path.join(logdir, RESULT),
                                 json.dumps(result, indent=1, sort_keys=True))


def restore_weights(model, logdir: str) -> str:
    """Loads the latest checkpoint's model weights into ``model``; returns
    the checkpoint path."""
    path = tf.train.latest_checkpoint(os.path.join(logdir, CHECKPOINTS))
    if path is None:
        raise ValueError(f"{logdir} has no checkpoint in {CHECKPOINTS}/")
    # Partial: the checkpoint also holds the optimizer; every weight of the
    # model must be in it, though.
    tf.train.Checkpoint(model=model).restore(
        path).expect_partial().assert_existing_objects_matched()
    return path
