"""SavedModel export of a trained network, runnable without nas_tf.

``export_trained_model(logdir, export_dir)`` reads a finished training run
(see ``nas_tf.training.trained_run``) and writes a SavedModel with two signatures:

- ``serving_default``: an image classifier takes ``images`` [batch, H, W, C]
  as raw pixels 0..255 and returns class ``probabilities``; the training
  normalisation happens inside, so clients send pixels as they are. A
  language model takes int32 ``token_ids`` [batch, time] and returns
  next-token ``logits`` [batch, time, vocab] from a zero state.
- ``architecture``: takes nothing and returns the ``architecture`` token
  string, the ``space`` name and its ``space_params`` as JSON (a token
  string only parses with the space's parameters), so an exported model
  says what it is.

The same strings are string Variables of the exported module
(``loaded.architecture``, ``loaded.space``, ``loaded.space_params``), and
``loaded.serve`` is the serving function; for image models it also takes
uint8 pixels (a signature has one dtype per input, so ``serving_default``
takes float32, which holds every uint8 value exactly).

The SavedModel holds only TensorFlow graphs and weights, so TF Serving and
``tf.saved_model.load`` run it without nas_tf installed.
"""

import dataclasses
import json
import os
import shutil
import tempfile
from typing import Optional

import tensorflow as tf

from nas_tf.training import trained_run

SERVING_SIGNATURE = "serving_default"
ARCHITECTURE_SIGNATURE = "architecture"


@dataclasses.dataclass(frozen=True)
class ExportResult:
    """What ``export_trained_model`` wrote.

    Attributes:
      export_dir: The SavedModel directory.
      checkpoint: The checkpoint its weights came from.
      space: Search-space name.
      architecture: The architecture's token string.
      signatures: Signature name -> one line on its inputs and outputs.
      kind: ``image`` (a classifier) or ``text`` (a language model).
      dataset: The dataset the model was trained on.
      preprocessing: For a model trained on streamed images (ImageNet),
        ``darts`` or ``inception``: clients send the pixels of that
        preprocessing's evaluation crop (``imagenet_preprocessing``).
    """

    export_dir: str
    checkpoint: str
    space: str
    architecture: str
    signatures: dict
    kind: str
    dataset: str
    preprocessing: Optional[str] = None


def export_trained_model(logdir: str, export_dir: str,
                         overwrite: bool = False) -> ExportResult:
    """Writes the SavedModel of the network trained in ``logdir``.

    The export is written into a temporary sibling of ``export_dir`` and
    renamed onto it at the end, so a failure never leaves a half-written
    export behind. An existing ``export_dir`` is replaced only when
    ``overwrite`` is true.

    Raises:
      ValueError: ``logdir`` holds no finished training run, its
        network has weights its checkpoints cannot hold, or ``export_dir``
        exists (without ``overwrite``) or would contain ``logdir``.
    """
    spec = trained_run.read_spec(logdir)
    if trained_run.read_result(logdir) is None:
        raise ValueError(
            f"{logdir} holds a training run that has not finished (no "
            f"{trained_run.RESULT}); finish it with scripts/train.py "
            f"--flagfile={os.path.join(logdir, 'flags.cfg')} "
            f"--logdir={logdir}, then export")
    export_dir = os.path.abspath(export_dir)
    _check_destination(export_dir, logdir, overwrite)
    model = spec.build_model()
    missing = weights_missing_from_checkpoints(model)
    if missing:
        raise ValueError(
            f"the {spec.space} network of {logdir} has weights that its "
            f"checkpoints cannot hold ({', '.join(missing)}), so the export "
            f"would not be the trained network")
    checkpoint = trained_run.restore_weights(model, logdir)
    module, signatures = _serving_module(model, spec)
    _write_directory_atomically(
        export_dir, overwrite,
        lambda path: tf.saved_model.save(module, path, signatures=signatures))
    return ExportResult(
        export_dir=export_dir, checkpoint=checkpoint, space=spec.space,
        architecture=module.architecture.numpy().decode(),
        signatures={name: _describe_signature(fn)
                    for name, fn in signatures.items()},
        kind=spec.kind, dataset=spec.dataset,
        preprocessing=spec.preprocessing)


def weights_missing_from_checkpoints(model) -> list:
    """Paths of the model's weights that ``tf.train.Checkpoint(model=...)``
    does not reach, so neither saves nor restores.

    Restoring reports nothing about them (they are not in the checkpoint's
    object graph at all): a weight Keras 3 keeps in a Python list, for one,
    is invisible to it. Integer variables (random-number generator states)
    are not weights and are left out.
    """
    checkpoint = tf.train.Checkpoint(model=model)
    reached = {id(t) for t in tf.train.TrackableView(checkpoint).descendants()}
    return [v.path for v in model.variables
            if tf.as_dtype(v.dtype).is_floating and id(v) not in reached]


def _check_destination(export_dir, logdir, overwrite):
    """Refuses early, before any model is built, an export that could not
    be moved into place or whose overwrite would delete the run itself."""
    out, run = os.path.realpath(export_dir), os.path.realpath(logdir)
    if os.path.commonpath([out, run]) == out:
        raise ValueError(f"--export_dir={export_dir} is (or contains) the "
                         f"training run {logdir}; pick another directory")
    if os.path.lexists(export_dir) and not overwrite:
        raise ValueError(_exists_message(export_dir))


def _exists_message(export_dir):
    return (f"{export_dir} already exists; pass --overwrite to replace it, "
            f"or pick another --export_dir")


def _serving_module(model, spec):
    """The module to save and its signatures (name -> concrete function).

    The network's variables are tracked as a list, as Keras's own
    ``ExportArchive`` does: TensorFlow's object graph does not see every
    Keras variable through the model (a ``SeedGenerator``'s state, for
    one), and saving refuses a graph that captures an untracked variable.
    The normalisation constants are captured by the serving graph.
    """
    module = tf.Module(name="nas_tf_export")
    module.model_variables = list(model.variables)
    # Plain tf.constant attributes are not saved; string Variables are.
    texts = {
        "architecture": model.space.format(model.architecture),
        "space": spec.space,
        "space_params": json.dumps(spec.space_params, sort_keys=True),
    }
    for name, text in texts.items():
        setattr(module, name, tf.Variable(text, trainable=False, name=name))

    @tf.function(input_signature=[])
    def describe():
        return {name: tf.identity(getattr(module, name)) for name in texts}

    if spec.kind == trained_run.TEXT:
        module.serve = _language_model_fn(model)
        serving = module.serve.get_concrete_function()
    else:
        module.serve = _classifier_fn(model, spec.normalization)
        config = model.child_config
        shape = [None, config.image_size, config.image_size,
                 config.image_channels]
        module.serve.get_concrete_function(
            tf.TensorSpec(shape, tf.uint8, name="images"))
        serving = module.serve.get_concrete_function(
            tf.TensorSpec(shape, tf.float32, name="images"))
    module.describe = describe
    return module, {SERVING_SIGNATURE: serving,
                    ARCHITECTURE_SIGNATURE: describe.get_concrete_function()}


def _classifier_fn(model, normalization):
    """Raw pixels -> class probabilities, normalised as in training: pixels
    scaled to [0, 1], then the training images' per-channel mean and std."""
    channels = model.child_config.image_channels
    if not normalization or any(len(normalization.get(key) or ()) not in (
            1, channels) for key in ("mean", "std")):
        raise ValueError(
            f"the training run's normalization must give a per-channel "
            f"'mean' and 'std' ({channels} values each), got "
            f"{normalization!r}")
    mean = tf.constant(normalization["mean"], tf.float32)
    std = tf.constant(normalization["std"], tf.float32)

    @tf.function
    def serve(images):
        x = (tf.cast(images, tf.float32) / 255.0 - mean) / std
        logits = model(x, training=False)
        if isinstance(logits, (list, tuple)):  # [logits, aux_logits]
            logits = logits[0]
        return {"probabilities": tf.nn.softmax(tf.cast(logits, tf.float32))}

    return serve


def _language_model_fn(model):
    """Token ids -> next-token logits, every sequence from a zero state."""

    @tf.function(input_signature=[
        tf.TensorSpec([None, None], tf.int32, name="token_ids")])
    def serve(token_ids):
        return {"logits": model(token_ids, training=False)}

    return serve


def _describe_signature(fn) -> str:
    """One line for people: ``(images float32 [?, 32, 32, 3]) ->
    probabilities float32 [?, 10]``."""

    def spec_text(name, spec):
        dims = ", ".join("?" if d is None else str(d)
                         for d in spec.shape.as_list())
        return f"{name} {spec.dtype.name} [{dims}]"

    inputs = [spec_text(spec.name, spec)
              for spec in tf.nest.flatten(fn.structured_input_signature)]
    outputs = [spec_text(name, tensor)
               for name, tensor in sorted(fn.structured_outputs.items())]
    return f"({', '.join(inputs)}) -> {', '.join(outputs)}"


def _write_directory_atomically(path, overwrite, write):
    """Calls ``write(tmp)`` on a temporary sibling of ``path`` and renames
    it onto ``path``; on any failure the temporary directory is removed.

    With ``overwrite``, an existing ``path`` is first renamed aside and
    deleted only once the new directory is in place, so ``path`` is missing
    only between two renames.
    """
    parent, name = os.path.split(path)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=parent, prefix=f".{name}.tmp-")
    try:
        write(tmp)
        if not os.path.lexists(path):
            os.rename(tmp, path)
            return
        if not overwrite:
            raise ValueError(_exists_message(path))
        aside = tempfile.mkdtemp(dir=parent, prefix=f".{name}.old-")
        old = os.path.join(aside, name)
        os.rename(path, old)
        try:
            os.rename(tmp, path)
        except BaseException:
            os.rename(old, path)
            shutil.rmtree(aside)
            raise
        shutil.rmtree(aside)
    finally:
        if os.path.exists(tmp):
            shutil.rmtree(tmp)
