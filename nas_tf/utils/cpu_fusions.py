"""Grappler's remapper on CPU: off by default in nas_tf's scripts.

The remapper rewrites FusedBatchNorm followed by ReLU into one fused op
(``_FusedBatchNormEx``, with oneDNN ``_MklNativeFusedBatchNormEx``). With
TensorFlow 2.21's CPU build, in training that fused op took about 3.5 ms
where the unfused FusedBatchNormV3 and ReLU together took 0.7 ms (batch 32,
32 x 32 x 36, from a profile of the ENAS macro training step). Measured on
a 2-core host, median training step at batch 32 with the remapper on / off:

    ENAS macro supernet, 12 layers of conv 3x3, 36 filters   0.341 / 0.216 s
    the same, 12 layers of sep conv 3x3                      0.269 / 0.159 s
    fixed ENAS micro child, 6 + 2 layers, 20 filters         0.531 / 0.414 s
    a sampled fixed NAS-RL child, 36 filters                 0.476 / 0.416 s

and the LM benchmark (``bench/lm_throughput.py``, batch 64, BPTT 35,
hidden 850) took 1.71 / 1.30 s per step with Keras's LSTM and 3.07 / 2.96
s with the DARTS_V2 cell.

The remapper's other rewrites (convolution or matrix product fused with
its bias and activation) matter little in training, where the convolutions
here carry no bias. On a GPU the fused batch norm is cuDNN's and fast, so
the remapper is left alone when one is visible.
"""

import tensorflow as tf


def turn_off_cpu_remapper() -> bool:
    """Turns Grappler's remapper off for this process unless a GPU is
    visible; returns whether it did. Call before the first compiled
    function runs: a function keeps the options it first ran with."""
    if tf.config.list_physical_devices("GPU"):
        return False
    tf.config.optimizer.set_experimental_options({"remapping": False})
    return True
