"""Search strategies: each proposes architectures and learns from rewards.

``nasrl``: the REINFORCE-trained LSTM controller; ``random``: uniform
sampling; ``evolution``: regularized (aging) evolution. With all three every
child trains from scratch; the weight-sharing searches of ENAS and DARTS are
not here yet.
"""

from nas_tf.strategies.base import SearchStrategy
from nas_tf.strategies.evolution import RegularizedEvolution
from nas_tf.strategies.evolution import mutate
from nas_tf.strategies.nasrl import NasrlStrategy
from nas_tf.strategies.random_search import RandomSearch

STRATEGIES = ("nasrl", "random", "evolution")

__all__ = ["NasrlStrategy", "RandomSearch", "RegularizedEvolution",
           "STRATEGIES", "SearchStrategy", "mutate"]
