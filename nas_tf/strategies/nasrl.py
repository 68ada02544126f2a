"""NAS-RL: an LSTM controller trained with REINFORCE on children's rewards
(Zoph & Le 2016). Each batch is ``num_aggregate`` architectures sampled by
the controller; their rewards make one controller update."""

import numpy as np

from nas_tf import controller as controller_lib
from nas_tf.controller import reinforce
from nas_tf.strategies import base


class NasrlStrategy(base.SearchStrategy):
    """The controller of ``controller_config`` learning with
    ``reinforce_config``.

    ``spaces``: one space, or every space the search will propose from (a
    depth schedule grows the space); the controller creates the weights of
    all of them at once, before its optimizer is built.
    """

    name = "nasrl"

    def __init__(self, seed, spaces, controller_config, reinforce_config):
        super().__init__(seed)
        spaces = list(spaces) if isinstance(spaces, (list, tuple)) else [
            spaces]
        self.controller = controller_lib.Controller(
            spaces[0], controller_config,
            skip_target=reinforce_config.skip_target)
        for space in spaces[1:]:
            self.controller.add_space(space)
        self.learner = reinforce.Reinforce(self.controller, reinforce_config)

    def propose(self, space, count, batch_index, history):
        del history
        if self.controller.add_space(space):
            # Adam knows only the weights it was built with.
            raise ValueError(
                f"{space!r} needs controller weights that did not exist when "
                "the controller's optimizer was built; pass every space of "
                "the search to NasrlStrategy")
        out = self.controller.sample(space, count, (self.seed, batch_index))
        return [tuple(int(v) for v in row) for row in out.tokens.numpy()]

    def learn(self, space, tokens, rewards):
        tokens = np.asarray(tokens, np.int32)
        scored = self.controller.score(space, tokens)
        shaped = reinforce.shaped_reward(rewards, scored,
                                         self.learner.config)
        stats = self.learner.update(space, tokens, shaped)
        stats["entropy"] = float(np.mean(scored.entropy.numpy()))
        stats["log_prob"] = float(np.mean(scored.log_prob.numpy()))
        return stats

    def checkpoint_items(self):
        return self.learner.checkpoint_items()
