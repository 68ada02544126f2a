"""Search strategies: each proposes architectures and learns from rewards.

``nasrl``: the REINFORCE-trained LSTM controller; ``random``: uniform
sampling; ``evolution``: regularized (aging) evolution. With all three every
child trains from scratch. ``enas`` names the weight-sharing search, whose
loop alternates two phases and lives in ``nas_tf/search/enas_run.py``;
``darts`` the differentiable search (``nas_tf/search/darts_run.py``).
"""

from nas_tf.strategies.base import SearchStrategy
from nas_tf.strategies.evolution import RegularizedEvolution
from nas_tf.strategies.evolution import mutate
from nas_tf.strategies.nasrl import NasrlStrategy
from nas_tf.strategies.random_search import RandomSearch

STRATEGIES = ("nasrl", "random", "evolution", "enas", "darts")

__all__ = ["NasrlStrategy", "RandomSearch", "RegularizedEvolution",
           "STRATEGIES", "SearchStrategy", "mutate"]
