"""Sizes of a DARTS search network: its weights and its architecture
parameters (quark0/darts counts 1,930,618 weights for the CIFAR-10 search
network at C = 16, 8 cells, and 2 x 14 x 8 = 224 alphas)."""

import numpy as np


def count(space, config, partial_channels=1, auxiliary_skip=False,
          edge_normalization=False) -> dict:
    """``trainable_params``, ``total_params`` (with BatchNorm statistics)
    and ``architecture_params`` of the search network of ``space`` (darts_cnn
    with an image ``ChildConfig``, darts_rnn with an ``LmConfig``)."""
    if space.name == "darts_cnn":
        from nas_tf.supernets import darts_cnn
        model = darts_cnn.build(config, partial_channels, auxiliary_skip,
                                steps=space.steps)
        edges, ops, kinds = (model.num_edges,
                             len(darts_cnn.darts_ops.PRIMITIVES),
                             len(darts_cnn.CELL_KINDS))
    elif space.name == "darts_rnn":
        from nas_tf.supernets import darts_rnn
        model = darts_rnn.build(space, config)
        edges, ops, kinds = model.num_edges, model.num_ops, 1
    else:
        raise ValueError(f"space {space.name!r} has no DARTS search network; "
                         f"spaces with one: darts_cnn, darts_rnn")
    alpha = kinds * edges * ops + (kinds * edges if edge_normalization
                                   else 0)
    sizes = [int(np.prod(w.shape)) for w in model.trainable_weights]
    everything = [int(np.prod(w.shape)) for w in model.weights]
    return {"trainable_params": sum(sizes), "total_params": sum(everything),
            "architecture_params": alpha}
