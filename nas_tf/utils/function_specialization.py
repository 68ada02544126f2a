"""Grappler's function specialization, turned off around one call.

Grappler's function optimizer gives a non-inlined function a copy of its
own at each call site that leaves an output unused or passes a constant:
the DARTS step calls its one compiled pass through the search network
(``search/darts_architect.py``, about 50,000 nodes) up to six times, each
ignoring some of its outputs. At batch 16 the copies took the second-order
step's peak memory from 3.0 to 3.9 GB (10.2 and 10.1 s a step) and the
first order's from 2.6 to 2.9 GB (4.9 and 4.0 s: its alpha pass's copy
skipped the weights' gradient).

A compiled function keeps the options of the call that instantiated it,
and a call with other options instantiates it again; so every call of a
function that should run without specialization goes through this scope.
"""

import contextlib

import tensorflow as tf

_OPTION = "function_optimization"


@contextlib.contextmanager
def off():
    """Calls made inside instantiate their functions without Grappler's
    function optimizer (inlining by the runtime is unaffected)."""
    before = tf.config.optimizer.get_experimental_options().get(_OPTION, True)
    tf.config.optimizer.set_experimental_options({_OPTION: False})
    try:
        yield
    finally:
        tf.config.optimizer.set_experimental_options({_OPTION: before})
