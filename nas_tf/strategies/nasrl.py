"""NAS-RL: an LSTM controller trained with REINFORCE on children's rewards
(Zoph & Le 2016). Each batch is ``num_aggregate`` architectures sampled by
the controller; their rewards make one controller update."""

import numpy as np

from nas_tf import controller as controller_lib
from nas_tf import reinforce
from nas_tf.strategies import base


class NasrlStrategy(base.SearchStrategy):
    """The controller of ``controller_config`` learning with
    ``reinforce_config``."""

    name = "nasrl"

    def __init__(self, seed, space, controller_config, reinforce_config):
        super().__init__(seed)
        self.controller = controller_lib.Controller(
            space, controller_config,
            skip_target=reinforce_config.skip_target)
        self.learner = reinforce.Reinforce(self.controller, reinforce_config)

    def propose(self, space, count, batch_index, history):
        del history
        self.controller.add_space(space)
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
