"""Search spaces: registry, lookup and architecture resolution."""

import inspect
import re

from nas_tf.utils import registry
from nas_tf.spaces import darts_cnn
from nas_tf.spaces import darts_rnn
from nas_tf.spaces import enas_macro
from nas_tf.spaces import enas_micro
from nas_tf.spaces import enas_rnn
from nas_tf.spaces import nasnet
from nas_tf.spaces import nasrl_cnn
from nas_tf.spaces import nasrl_rnn
from nas_tf.spaces.published import PUBLISHED
from nas_tf.spaces.schema import Architecture
from nas_tf.spaces.schema import Decision
from nas_tf.spaces.schema import SearchSpace
from nas_tf.spaces.schema import SpaceError

SPACES = registry.Registry("search space")
for _cls in (nasrl_cnn.NasrlCnnSpace, nasnet.NasnetSpace,
             enas_macro.EnasMacroSpace, enas_micro.EnasMicroSpace,
             darts_cnn.DartsCnnSpace, nasrl_rnn.NasrlRnnSpace,
             enas_rnn.EnasRnnSpace, darts_rnn.DartsRnnSpace):
    SPACES.register(_cls.name)(_cls)


def get_space(name: str, **params) -> SearchSpace:
    """Returns the space ``name`` built with ``params``.

    Raises:
      SpaceError: unknown space name or a parameter the space does not take.
    """
    if name not in SPACES:
        raise SpaceError(f"unknown search space {name!r}; known: "
                         f"{', '.join(SPACES.names())}")
    cls = SPACES.get(name)
    taken = inspect.signature(cls.__init__).parameters
    unknown = sorted(set(params) - set(taken))
    if unknown:
        allowed = ", ".join(p for p in taken if p != "self") or "none"
        raise SpaceError(f"search space {name!r} takes no parameter "
                         f"{', '.join(unknown)}; it takes: {allowed}")
    return cls(**params)


_NAME = re.compile(r"^[A-Za-z][\w.-]*$")


def resolve_architecture(space: SearchSpace, text: str) -> Architecture:
    """Parses ``text`` in ``space``: a token string or a published name."""
    text = text.strip()
    if text in PUBLISHED:
        entry = PUBLISHED[text]
        if entry.space != space.name:
            raise SpaceError(
                f"{text} is an architecture of space {entry.space!r}, not "
                f"{space.name!r}")
        wrong = {k: v for k, v in entry.params.items()
                 if space.params.get(k) != v}
        if wrong:
            needed = ", ".join(f"{k}={v}" for k, v in wrong.items())
            raise SpaceError(
                f"{text} needs {entry.space} with {needed}; the space is "
                f"{space!r}")
        return space.parse(entry.text)
    if _NAME.match(text) and not text.startswith("Genotype"):
        raise SpaceError(
            f"unknown architecture name {text!r}; known: "
            f"{', '.join(sorted(PUBLISHED))}, or a token string of "
            f"{space.name}")
    return space.parse(text)


__all__ = [
    "Architecture", "Decision", "PUBLISHED", "SPACES", "SearchSpace",
    "SpaceError", "get_space", "resolve_architecture"
]
