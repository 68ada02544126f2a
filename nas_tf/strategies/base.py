"""What every search strategy does: propose architectures, learn from them.

A strategy is deterministic given its state and ``(seed, batch_index)``:
``propose`` draws batch ``batch_index`` from randomness derived from those
two numbers alone, so a resumed run proposes exactly what the interrupted
one did. Strategies that learn (``nasrl``) put their state into the run's
checkpoint through ``checkpoint_items``; the others rebuild theirs from the
history.
"""

import random


class SearchStrategy:
    """Base class; see module docstring."""

    name = ""

    def __init__(self, seed: int):
        self.seed = int(seed)

    def rng(self, batch_index: int) -> random.Random:
        """A Python RNG for one batch, derived from the seed alone."""
        return random.Random(f"{self.name}:{self.seed}:{batch_index}")

    def propose(self, space, count: int, batch_index: int, history) -> list:
        """``count`` token tuples (decision order) of ``space``.

        ``history`` holds the records of every child evaluated before this
        batch (dicts with ``decision_values``, the tokens in decision
        order, and ``reward``).
        """
        raise NotImplementedError

    def learn(self, space, tokens, rewards) -> dict:
        """Takes the rewards of one proposed batch; returns scalars to log."""
        del space, tokens, rewards
        return {}

    def checkpoint_items(self) -> dict:
        return {}
