"""ENAS macro fixed-architecture children (melodyguan/enas general_child.py)."""

import keras

from nas_tf.ops import conv_ops


def build(inputs, layers, config):
    raise NotImplementedError
