"""Shared-weight supernets (ENAS): one Keras model per search space holding
the weights of every op at every position.

The architecture enters as a tensor, so one compiled training step and one
evaluation step serve every architecture the controller samples:

* ``arc``: int32 [space.num_tokens], the architecture's tokens in decision
  (sampling) order, i.e. ``Architecture.tokens`` or one row of the
  controller's ``ControllerOutput.tokens``. ``arc_tensor`` makes one.
* Image supernets (``enas_macro``, ``enas_micro``) are called as
  ``model(images, arc, training=...)`` and return logits, or
  ``[logits, aux_logits]`` when the config asks for an auxiliary head (as
  ``builders.child_model.ChildModel`` does). Their ``reward_training``
  attribute is the ``training`` flag the ENAS reward is computed with
  (micro: True, as ``micro_child.py``'s ``build_valid_rl``; macro: False).
* The recurrent supernet (``enas_rnn``) mirrors ``LanguageModel``:
  ``forward(tokens, arc, state=None, training=False)``.

Only the sampled op of a position runs (``tf.switch_case``); the weights of
the others get zero gradients, as in the originals' TF1 graphs.

DARTS's search networks, where every op of every edge runs, weighted by
the softmax of alpha, are ``darts_cnn`` (with ``darts_ops``) and
``darts_rnn``; alpha and the derived genotypes are in ``darts_alpha``.
"""

import importlib

import tensorflow as tf

# Space name -> module defining ``build(space, config, seed=None)``.
_MODULES = {
    "enas_macro": "nas_tf.supernets.enas_macro",
    "enas_micro": "nas_tf.supernets.enas_micro",
    "enas_rnn": "nas_tf.supernets.enas_rnn",
}

SPACES = tuple(_MODULES)


def arc_tensor(arch) -> tf.Tensor:
    """An Architecture (or a token sequence) as the int32 ``arc`` input."""
    tokens = getattr(arch, "tokens", arch)
    return tf.constant(list(tokens), tf.int32)


def build_supernet(space, config, seed=None):
    """The supernet of ``space`` (an image ``ChildConfig`` or an ``LmConfig``
    for ``enas_rnn``)."""
    if space.name not in _MODULES:
        raise ValueError(
            f"space {space.name!r} has no shared-weight supernet; spaces "
            f"with one: {', '.join(SPACES)}")
    return importlib.import_module(_MODULES[space.name]).build(
        space, config, seed=seed)
