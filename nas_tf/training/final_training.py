"""Trains one architecture from scratch into a run directory
(``trained_run``): the library side of ``scripts/train.py``."""

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
from typing import Callable, Optional

import keras
import tensorflow as tf
from tensorboard.plugins.hparams import api as hparams

from nas_tf import builders
from nas_tf import config as config_lib
from nas_tf import describe
from nas_tf import distribute
from nas_tf import drawing
from nas_tf.training import trained_run
from nas_tf.data import datasets
from nas_tf.data import streaming_images
from nas_tf.training import image_trainer
from nas_tf.training import lm_trainer
from nas_tf.training import precision as precision_lib
from nas_tf.training import streaming_trainer
from nas_tf.utils import fileio
from nas_tf.utils import run_lock

# The LM recipe's defaults are DARTS's final PTB training (config.py).
LM_RECIPE = config_lib.LmTrainConfig()


@dataclasses.dataclass(frozen=True)
class TrainingRequest:
    """What to train, on what, how.

    Attributes:
      space: The search space.
      arch: The architecture (of ``space``).
      dataset: ``dominoes`` or ``dominoes_near``, a tfds image dataset,
        ``ptb`` or ``synthetic_text``.
      data_dir: TFDS data directory.
      model: ``ChildConfig`` or ``LmConfig``.
      recipe: ``ImageTrainConfig`` or ``LmTrainConfig``.
      preset: The preset's name, for the record.
      distribute: Strategy kind for image models (``distribute.KINDS``;
        ``multi_worker`` trains on the TF_CONFIG cluster, see ``train``).
      manual_dir: PTB's text files; for a streamed dataset (ImageNet) the
        manually downloaded archives it is prepared from.
      imagenet_preprocessing: Streamed datasets: ``darts`` or
        ``inception`` (``imagenet_preprocessing``); empty: the space's
        original's (``streaming_images.default_preprocessing``). Data read
        into memory ignores it.
      precision: Mixed precision and XLA (image models only).
    """

    space: object
    arch: object
    dataset: str
    data_dir: Optional[str]
    model: object
    recipe: object
    preset: str = ""
    distribute: str = "auto"
    manual_dir: Optional[str] = None
    imagenet_preprocessing: str = ""
    precision: precision_lib.PrecisionConfig = \
        precision_lib.PrecisionConfig()

    @property
    def kind(self) -> str:
        return (trained_run.TEXT if self.space.family == "recurrent"
                else trained_run.IMAGE)


def _spec(request, model_config, normalization=None, preprocessing=None):
    return trained_run.TrainedModelSpec(
        kind=request.kind, space=request.space.name,
        space_params=dict(request.space.params),
        architecture=request.space.format(request.arch),
        model=model_config.to_dict(), dataset=request.dataset,
        seed=getattr(request.recipe, "seed", 0),
        normalization=normalization, preset=request.preset,
        preprocessing=preprocessing,
        recipe=json.loads(json.dumps(dataclasses.asdict(request.recipe),
                                     default=list)),
        precision=request.precision.to_dict())


# Filled in from the data, so not part of what a resumed run must match.
_DATA_FIELDS = ("num_classes", "image_size", "image_channels")


def _comparable(spec_json: str) -> dict:
    record = json.loads(spec_json)
    # The preset is a name for the record: a resume through the run's own
    # flags.cfg names another file.
    record.pop("preset")
    record.pop("normalization")
    record["model"] = {k: v for k, v in record["model"].items()
                       if k not in _DATA_FIELDS}
    # A run written before the field existed trained in float32, no XLA.
    record["precision"] = (record.get("precision") or
                           precision_lib.PrecisionConfig().to_dict())
    return record


def _preprocessing(request) -> Optional[str]:
    """The ImageNet preprocessing of a streamed dataset, else None."""
    if (request.kind != trained_run.IMAGE
            or not datasets.is_streamed(request.dataset)):
        return None
    return (request.imagenet_preprocessing or
            streaming_images.default_preprocessing(request.space.name))


def _image_data(request):
    """(data, its trainer class, its train and test example counts)."""
    preprocessing = _preprocessing(request)
    if preprocessing is None:
        data = datasets.load_dataset(request.dataset, request.data_dir,
                                     request.recipe.seed, final=True)
        return (data, image_trainer.ImageTrainer, len(data.train_labels),
                len(data.test_labels))
    data = streaming_images.open_tfds_stream(
        request.dataset, request.model.image_size, preprocessing,
        data_dir=request.data_dir, manual_dir=request.manual_dir)
    return (data, streaming_trainer.StreamingImageTrainer,
            data.num_train_examples, data.num_eval_examples)


def _started(logdir: str) -> bool:
    """The run in ``logdir`` has its spec and at least one checkpoint."""
    return (os.path.exists(os.path.join(logdir, trained_run.TRAIN_CONFIG))
            and tf.train.latest_checkpoint(
                os.path.join(logdir, trained_run.CHECKPOINTS)) is not None)


def check_logdir(logdir: str, request: TrainingRequest) -> None:
    """Raises if ``logdir`` holds a started run (one with a checkpoint) of
    another architecture, model or recipe. A run that never finished an
    epoch may be restarted with other settings."""
    if not _started(logdir):
        return
    before = _comparable(trained_run.read_spec(logdir).to_json())
    now = _comparable(_spec(request, request.model,
                            preprocessing=_preprocessing(request)).to_json())
    changed = sorted(k for k in now if before.get(k) != now.get(k))
    if changed:
        raise ValueError(
            f"{logdir} holds a training run with a different "
            f"{', '.join(changed)}; resume it with its own flags "
            f"({os.path.join(logdir, 'flags.cfg')}) or use a new --logdir")


def _write_spec(logdir, spec):
    """Writes ``spec``; a resumed run keeps the preset name it started with
    (resuming through the run's flags.cfg names that file instead)."""
    if _started(logdir):
        spec = dataclasses.replace(
            spec, preset=trained_run.read_spec(logdir).preset)
    trained_run.write_spec(logdir, spec)
    return spec


def _log_start(logdir, spec, model, request, log):
    """hparams (architecture, preset, final metrics) and the drawn
    architecture, once at step 0."""
    params, _ = describe.count_params(model)
    writer = tf.summary.create_file_writer(logdir)
    metric = ("test/accuracy" if request.kind == trained_run.IMAGE
              else "lm/test_ppl")
    with writer.as_default():
        hparams.hparams_config(
            hparams=[hparams.HParam(name) for name in
                     ("architecture", "space", "preset", "dataset")],
            metrics=[hparams.Metric(metric)])
        hparams.hparams({"architecture": spec.architecture,
                         "space": spec.space, "preset": spec.preset or "-",
                         "dataset": spec.dataset})
        tf.summary.text("architecture", spec.architecture, step=0)
        try:
            png = drawing.draw_architecture(request.space, request.arch)
            tf.summary.image("architecture_drawing",
                             tf.io.decode_png(png)[None], step=0)
        except Exception as e:  # A figure never stops a training run.
            log(f"warning: cannot draw the architecture "
                f"({type(e).__name__}: {e}); training goes on")
    writer.flush()
    return params


def check_request(request: TrainingRequest) -> None:
    """Raises ValueError when the dataset does not fit the architecture's
    kind (image classifier or language model), before anything is made."""
    kind = datasets.dataset_kind(request.dataset)
    if request.kind == trained_run.TEXT and kind != trained_run.TEXT:
        raise ValueError(
            f"dataset={request.dataset!r} is not a text corpus; language"
            f" models train on {', '.join(datasets.TEXT_DATASETS)}")
    if request.kind == trained_run.IMAGE and kind != trained_run.IMAGE:
        raise ValueError(
            f"dataset={request.dataset!r} is a text corpus; "
            f"{request.space.name} builds image classifiers")
    if (request.kind == trained_run.TEXT
            and request.distribute == distribute.MULTI_WORKER):
        raise ValueError(
            f"distribute={distribute.MULTI_WORKER!r} (also chosen by 'auto' "
            f"when TF_CONFIG names worker tasks) trains image models; "
            f"{request.space.name} builds language models, which train in "
            f"one process: unset TF_CONFIG")
    if request.kind == trained_run.TEXT and not request.precision.is_default:
        raise ValueError(
            f"{request.precision}: language models train in float32 "
            f"without XLA here; mixed_precision and jit_compile apply to "
            f"image models")


def train(request: TrainingRequest, logdir: str,
          log: Callable[[str], None] = print,
          relaunch_flags: Optional[str] = None) -> dict:
    """Trains (or resumes) ``request`` in ``logdir``; writes result.json and
    returns it.

    The process holds ``logdir``'s lock while it trains (a second process
    is refused). ``relaunch_flags`` (the command line's flags as a
    flagfile) is written as ``flags.cfg``. A run that fails before its
    first checkpoint leaves no directory it created behind.

    With ``distribute="multi_worker"`` every task of the TF_CONFIG cluster
    calls this with the same arguments and ``logdir`` on a filesystem they
    share: the chief does all of the above, the other workers train in step
    with it and only read ``logdir`` (its checkpoints, to resume).
    """
    check_request(request)
    if request.distribute == distribute.MULTI_WORKER:
        # First: the strategy sets up the collectives, which must happen
        # before TensorFlow runs any op.
        strategy = distribute.make_strategy(distribute.MULTI_WORKER)
        if not strategy.extended.should_checkpoint:
            return _train_worker(request, logdir, log)
    created = not os.path.exists(logdir)
    os.makedirs(logdir, exist_ok=True)
    try:
        lock = run_lock.RunLock(logdir)
    except run_lock.RunDirectoryInUse:
        if created:
            shutil.rmtree(logdir, ignore_errors=True)
        raise
    try:
        if relaunch_flags is not None:
            fileio.write_file_atomically(os.path.join(logdir, "flags.cfg"),
                                         relaunch_flags)
        return _train(request, logdir, log)
    except BaseException:
        if created and not _started(logdir):
            shutil.rmtree(logdir, ignore_errors=True)
        raise
    finally:
        lock.release()


def _worker_scratch_dir(logdir) -> str:
    """A new directory in the temporary directory for the checkpoints of
    this worker of the run in ``logdir``. A killed worker leaves its own
    behind; the next one of the same run and task deletes it."""
    task = distribute.multi_worker_task()
    run = hashlib.sha1(os.path.abspath(logdir).encode()).hexdigest()[:12]
    prefix = (f"nas_tf_worker_{run}_{task.role}{task.index}_" if task
              else f"nas_tf_worker_{run}_")
    root = tempfile.gettempdir()
    for name in os.listdir(root):
        path = os.path.join(root, name)
        # Only real directories of this user (mkdtemp made them).
        if (name.startswith(prefix) and not os.path.islink(path)
                and os.path.isdir(path)
                and os.stat(path).st_uid == os.getuid()):
            shutil.rmtree(path, ignore_errors=True)
    return tempfile.mkdtemp(prefix=prefix)


def _train_worker(request, logdir, log) -> dict:
    """A worker other than the chief: saves its checkpoints to a scratch
    directory of its own, deleted at the end."""
    scratch = _worker_scratch_dir(logdir)
    try:
        return _train(request, logdir, log, scratch_dir=scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _precision_note(precision) -> str:
    """``, mixed_bfloat16, XLA`` and the like; nothing for the default."""
    notes = [precision.mixed_precision] * (
        precision.mixed_precision != "float32")
    notes += ["XLA"] * precision.jit_compile
    return "".join(f", {note}" for note in notes)


def _train(request, logdir, log, scratch_dir=None) -> dict:
    """Trains; ``scratch_dir`` is set for a worker that writes nothing into
    ``logdir`` (see ``image_trainer.ImageTrainer``)."""
    # Weight initialisation from the run's seed: one --seed, one run.
    keras.utils.set_random_seed(request.recipe.seed)
    if request.kind == trained_run.TEXT:
        corpus = datasets.load_dataset(request.dataset, request.data_dir,
                                       request.recipe.seed,
                                       manual_dir=request.manual_dir)
        model = builders.build_model(request.space, request.arch,
                                     request.model, seed=request.recipe.seed)
        spec = _write_spec(logdir, _spec(request, request.model))
        params = _log_start(logdir, spec, model, request, log)
        result = lm_trainer.LmTrainer(model, corpus, request.recipe, logdir,
                                      log, checkpoint_dir=os.path.join(
                                          logdir, trained_run.CHECKPOINTS)
                                      ).run(test=True)
        record = {"valid_ppl": result.valid_ppl, "test_ppl": result.test_ppl,
                  "epochs": result.epochs}
    else:
        data, trainer, train_count, test_count = _image_data(request)
        model_config = dataclasses.replace(
            request.model, num_classes=data.num_classes,
            image_size=data.image_size, image_channels=data.image_channels)
        strategy = distribute.make_strategy(request.distribute)
        with strategy.scope(), precision_lib.dtype_policy(
                request.precision.mixed_precision):
            model = builders.build_model(request.space, request.arch,
                                         model_config)
        spec = _spec(request, model_config, normalization={
            "mean": [float(v) for v in data.mean],
            "std": [float(v) for v in data.std]},
            preprocessing=getattr(data, "preprocessing", None))
        if scratch_dir is None:
            spec = _write_spec(logdir, spec)
            params = _log_start(logdir, spec, model, request, log)
        else:
            params, _ = describe.count_params(model)
        log(f"training {spec.space} {spec.architecture} ({params:,} "
            f"parameters) on {data.name}: {train_count} train, "
            f"{test_count} test images, "
            f"{type(strategy).__name__} with "
            f"{strategy.num_replicas_in_sync} replica(s)"
            f"{_precision_note(request.precision)}")
        record = trainer(model, data, request.recipe, strategy, logdir, log,
                         scratch_dir=scratch_dir,
                         precision=request.precision).run()
    record.update(params=params, architecture=spec.architecture,
                  space=spec.space, preset=spec.preset)
    if scratch_dir is None:
        trained_run.write_result(logdir, record)
    return record
