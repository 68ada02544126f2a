"""Node functions of the recurrent cells: activations and combinations.

One table for every recurrent space: the spaces hold names (in each
original's own order) and the cells look the functions up here, so an
unknown name fails in one place with the list of what is allowed.
"""

import tensorflow as tf

ACTIVATIONS = {
    "identity": tf.identity,
    "tanh": tf.tanh,
    "sigmoid": tf.sigmoid,
    "relu": tf.nn.relu,
    # NAS-RL's larger recurrent space (sec. 4.2) adds sin.
    "sin": tf.sin,
}

# How a NAS-RL tree node merges its two inputs (sec. 3.4); max is the
# larger space's addition (sec. 4.2).
COMBINATIONS = {
    "add": tf.add,
    "elem_mult": tf.multiply,
    "max": tf.maximum,
}


def _lookup(table, what, name):
    try:
        return table[name]
    except KeyError:
        raise ValueError(f"unknown {what} {name!r}; allowed: "
                         f"{', '.join(table)}") from None


def activation(name: str):
    """The activation function called ``name``."""
    return _lookup(ACTIVATIONS, "activation", name)


def combination(name: str):
    """The two-input combination called ``name``."""
    return _lookup(COMBINATIONS, "combination", name)
