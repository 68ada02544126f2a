"""Uniform random search over the same decisions (NASNet sec. 3; DARTS's
random baselines)."""

from nas_tf.strategies import base


class RandomSearch(base.SearchStrategy):
    """Samples every decision uniformly, independently of the history."""

    name = "random"

    def propose(self, space, count, batch_index, history):
        del history
        rng = self.rng(batch_index)
        return [space.sample(rng).tokens for _ in range(count)]
