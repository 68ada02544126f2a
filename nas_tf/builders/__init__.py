"""Child-network builders: CNN children and language models."""

from nas_tf import config as config_lib
from nas_tf.builders.child_model import ChildModel
from nas_tf.builders.child_model import build_child
from nas_tf.builders.language_model import LanguageModel
from nas_tf.builders.language_model import build_language_model


def build_model(space, arch, config, seed=None):
    """The network of ``arch``: a ``LanguageModel`` for recurrent spaces
    (``config`` an ``LmConfig``), else a ``ChildModel`` (a
    ``ChildConfig``)."""
    recurrent = space.family == "recurrent"
    wanted = config_lib.LmConfig if recurrent else config_lib.ChildConfig
    if not isinstance(config, wanted):
        raise ValueError(
            f"search space {space.name!r} builds "
            f"{'a language model' if recurrent else 'an image classifier'} "
            f"and takes a {wanted.__name__}, got "
            f"{type(config).__name__}")
    if recurrent:
        return build_language_model(space, arch, config, seed=seed)
    return build_child(space, arch, config)


__all__ = ["ChildModel", "LanguageModel", "build_child",
           "build_language_model", "build_model"]
