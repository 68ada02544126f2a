"""A search space as data: ordered decisions, token strings, architectures.

Every part of nas_tf reads the same description of a space: the controller
derives its heads from the decision kinds, the builders decode architectures,
random search samples uniformly, and the token parser validates user input.

Three decision kinds cover the originals:

* ``choice``: one of a fixed list (an op, a filter size, an activation).
* ``node``: one earlier node of a cell (ENAS micro/RNN indices, NASNet hidden
  states). The choices are the earlier nodes, so an index past the end is a
  node "pointing forward" and is reported as such.
* ``skips``: any subset of earlier layers, one bit per layer (NAS-RL anchor
  points, ENAS macro skip connections).
"""

import dataclasses
import math
import operator
import random
from typing import Optional, Sequence

CHOICE = "choice"
NODE = "node"
SKIPS = "skips"
KINDS = (CHOICE, NODE, SKIPS)


class SpaceError(ValueError):
    """An architecture or token string that does not fit its search space."""


@dataclasses.dataclass(frozen=True)
class Decision:
    """One decision of a search space.

    Attributes:
      name: Where the decision sits, e.g. ``"normal/node2/op1"``.
      kind: One of ``choice``, ``node``, ``skips``.
      choices: Labels of the options. For ``node`` the labels of the earlier
        nodes that may be read; for ``skips`` the earlier layers (one bit
        each).
    """

    name: str
    kind: str
    choices: tuple

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(
                f"decision {self.name!r}: kind {self.kind!r} is not one of "
                f"{KINDS}")
        if self.kind != SKIPS and not self.choices:
            raise ValueError(f"decision {self.name!r} has no choices")

    @property
    def num_tokens(self) -> int:
        return len(self.choices) if self.kind == SKIPS else 1

    @property
    def size(self) -> int:
        """Number of distinct values this decision can take."""
        if self.kind == SKIPS:
            return 2 ** len(self.choices)
        return len(self.choices)

    def allowed(self) -> str:
        if self.kind == SKIPS:
            return "0 or 1"
        if self.kind == NODE:
            return (f"0..{len(self.choices) - 1} (an earlier node: "
                    f"{', '.join(map(str, self.choices))})")
        labels = ", ".join(f"{i}={c}" for i, c in enumerate(self.choices))
        return f"0..{len(self.choices) - 1} ({labels})"

    def check(self, value: int, position: int, label: str = "") -> None:
        """Raises SpaceError naming the position, the value and what is
        allowed; ``label`` names the token (a skip bit's layer)."""
        limit = 2 if self.kind == SKIPS else len(self.choices)
        if 0 <= value < limit:
            return
        what = "value"
        if self.kind == NODE and value >= limit:
            what = "node index pointing forward"
        raise SpaceError(
            f"token {position} ({label or self.name}) = {value}: {what} not "
            f"allowed; "
            f"allowed: {self.allowed()}")


@dataclasses.dataclass(frozen=True)
class Architecture:
    """A validated point of a search space.

    Attributes:
      space: The space's name.
      tokens: One int per decision token, in decision (sampling) order.
      cell_concat: Explicit output states per cell, overriding the space's
        rule. Only published cells whose original code hand-set the outputs
        use it (NASNet-A, see ``spaces/nasnet.py``); ``None`` otherwise.
    """

    space: str
    tokens: tuple
    cell_concat: Optional[tuple] = None


class SearchSpace:
    """An ordered list of decisions with a name and parameters.

    Subclasses build the decision list and may override ``storage_order``
    (when the published token layout differs from the sampling order),
    ``parse``/``format`` (when the originals use a non-integer text) and
    ``check_architecture`` (constraints across decisions).
    """

    name: str = ""

    def __init__(self, decisions: Sequence[Decision], params: dict):
        self.decisions = tuple(decisions)
        self.params = dict(params)
        offsets, total = [], 0
        for d in self.decisions:
            offsets.append(total)
            total += d.num_tokens
        self._offsets = tuple(offsets)
        self.num_tokens = total
        order = tuple(self.storage_order())
        if sorted(order) != list(range(total)):
            raise ValueError(f"{self.name}: storage order is not a permutation")
        self._storage = order

    # -- description -------------------------------------------------------
    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in sorted(self.params.items()))
        return f"{self.name}({args})"

    def as_flags(self) -> list:
        """The command-line flags that select this space: ``--space`` and
        one flag per parameter, named as the parameter (the scripts' space
        flags), e.g. ``["--space=nasrl_cnn", "--num_layers=8"]``."""
        out = [f"--space={self.name}"]
        for name, value in sorted(self.params.items()):
            if isinstance(value, bool):
                out.append(f"--{name}" if value else f"--no{name}")
            elif isinstance(value, (list, tuple)):
                out.append(f"--{name}={','.join(map(str, value))}")
            else:
                out.append(f"--{name}={value}")
        return out

    def size(self) -> int:
        """Exact number of distinct token strings."""
        return math.prod(d.size for d in self.decisions)

    def storage_order(self):
        """Decision-token index stored at each position of the token string."""
        return range(self.num_tokens)

    def token_names(self):
        """The decision name of every token, in decision order."""
        names = []
        for d in self.decisions:
            if d.kind == SKIPS:
                names.extend(f"{d.name}[{c}]" for c in d.choices)
            else:
                names.append(d.name)
        return names

    # -- tokens ------------------------------------------------------------
    def _decision_of_token(self):
        owner = []
        for i, d in enumerate(self.decisions):
            owner.extend([i] * d.num_tokens)
        return owner

    def from_tokens(self, tokens: Sequence[int],
                    cell_concat: Optional[tuple] = None) -> Architecture:
        """Validates tokens given in decision order."""
        tokens = self._checked_ints(tokens)
        storage_pos = {t: p for p, t in enumerate(self._storage)}
        owner = self._decision_of_token()
        names = self.token_names()
        for i, value in enumerate(tokens):
            self.decisions[owner[i]].check(value, storage_pos[i], names[i])
        arch = Architecture(self.name, tokens, cell_concat)
        self.check_architecture(arch)
        return arch

    def from_storage(self, values: Sequence[int]) -> Architecture:
        """Validates tokens given in the published (storage) layout."""
        values = self._checked_ints(values)
        tokens = [0] * self.num_tokens
        for pos, idx in enumerate(self._storage):
            tokens[idx] = values[pos]
        return self.from_tokens(tokens)

    def _checked_ints(self, tokens) -> tuple:
        """The tokens as a tuple of ints, of the right count."""
        tokens = tuple(tokens)
        if len(tokens) != self.num_tokens:
            raise SpaceError(
                f"{self!r} expects {self.num_tokens} tokens "
                f"({self.layout_help()}), got {len(tokens)}")
        for i, t in enumerate(tokens):
            if not is_int(t):
                raise SpaceError(f"{self.name}: token {i} = {t!r} is not an "
                                 f"integer")
        return tuple(operator.index(t) for t in tokens)

    def to_storage(self, arch: Architecture) -> tuple:
        return tuple(arch.tokens[idx] for idx in self._storage)

    def layout_help(self) -> str:
        """One line on the token layout, for error messages."""
        return f"{len(self.decisions)} decisions"

    def check_architecture(self, arch: Architecture) -> None:
        """Constraints that span decisions; the default has none."""

    # -- text --------------------------------------------------------------
    def parse(self, text: str) -> Architecture:
        """Parses the space's token string (whitespace-separated ints)."""
        return self.from_storage(parse_ints(text, self.name))

    def format(self, arch: Architecture) -> str:
        self._check_owner(arch)
        return " ".join(str(v) for v in self.to_storage(arch))

    def _check_owner(self, arch: Architecture) -> None:
        if arch.space != self.name:
            raise SpaceError(
                f"architecture of space {arch.space!r} given to {self.name!r}")

    # -- sampling ----------------------------------------------------------
    def sample(self, rng: "random.Random | int | None" = None) -> Architecture:
        """Samples uniformly over all token strings (seed or Random)."""
        if not isinstance(rng, random.Random):
            rng = random.Random(rng)
        tokens = []
        for d in self.decisions:
            if d.kind == SKIPS:
                tokens.extend(rng.randrange(2) for _ in d.choices)
            else:
                tokens.append(rng.randrange(len(d.choices)))
        return self.from_tokens(tokens)

    # -- values ------------------------------------------------------------
    def values(self, arch: Architecture) -> dict:
        """Maps decision name to its value: an int (choice index or node) or
        a tuple of bits (skips)."""
        self._check_owner(arch)
        out = {}
        for d, start in zip(self.decisions, self._offsets):
            chunk = arch.tokens[start:start + d.num_tokens]
            out[d.name] = tuple(chunk) if d.kind == SKIPS else chunk[0]
        return out


def is_int(value) -> bool:
    """An integer (numpy's too), not a bool or a float."""
    if isinstance(value, bool):
        return False
    try:
        operator.index(value)
    except TypeError:
        return False
    return True


def label_index(space_name: str, what: str, where: str, labels,
                value) -> int:
    """The index of a named choice (an op, an activation), or a SpaceError
    naming the value and the allowed names."""
    if value not in labels:
        raise SpaceError(f"{space_name}: {where} has unknown {what} "
                         f"{value!r}; allowed: {', '.join(labels)}")
    return tuple(labels).index(value)


def check_count(space_name: str, param: str, value) -> None:
    """A space parameter that counts something (layers, nodes, blocks)."""
    if not is_int(value) or value < 1:
        raise SpaceError(f"{space_name}: {param}={value!r}; it must be an "
                         f"integer, at least 1")


def parse_ints(text: str, space_name: str) -> list:
    """Splits a whitespace-separated token string into ints."""
    if not isinstance(text, str):
        raise SpaceError(f"{space_name}: token string must be text, got "
                         f"{type(text).__name__}")
    values = []
    for position, word in enumerate(text.split()):
        try:
            values.append(int(word))
        except ValueError:
            raise SpaceError(
                f"{space_name}: token {position} = {word!r} is not an "
                f"integer; a token string is whitespace-separated integers"
            ) from None
    if not values:
        raise SpaceError(f"{space_name}: empty token string")
    return values
