"""Gradient checkpointing of one Keras layer: its forward pass keeps only its
inputs for the backward pass, which runs the layer again to get the
activations it differentiates (Chen et al. 2016, "Training deep nets with
sublinear memory cost").

The DARTS search network holds the activations of every op of every edge
for its backward pass. Run cell by cell this way, only the cells' inputs and
one cell's activations are alive at a time, for one more forward pass per
step: the peak of a first-order step at batch 16 fell by 0.55 GB, and the
saving grows with the batch.

``tf.recompute_grad`` cannot be used as is: it differentiates the variables
the function reads, but under ``keras.StatelessScope`` (``stateless_call``,
how the architect evaluates losses at other weights) a layer reads tensors
the scope maps its variables to, captured from outside, whose gradients it
would drop. Here the layer's weight values are explicit inputs, and the
layer runs in a scope of its own that maps its variables to them.
"""

import keras
import tensorflow as tf


def call(layer, fn, tensors):
    """``fn(*tensors)`` (which runs ``layer``), differentiable in every
    tensor and in ``layer``'s trainable weights, keeping only ``tensors``
    and the weight values for the backward pass.

    ``tensors`` may hold ``None`` (an absent optional input). Weights are
    taken at their current values (those of an enclosing
    ``StatelessScope``, if any); updates the layer makes to its
    non-trainable variables (BatchNorm's moving moments) are applied once,
    after the forward pass, in the enclosing context; the backward pass's
    rerun discards its own.
    """
    trainable = list(layer.trainable_variables)
    others = list(layer.non_trainable_variables)
    frozen = [tf.convert_to_tensor(v.value) for v in others]
    present = [i for i, t in enumerate(tensors) if t is not None]
    count = len(present)

    def forward(flat):
        args = list(tensors)
        for i, t in zip(present, flat[:count]):
            args[i] = t
        mapping = (list(zip(trainable, flat[count:])) +
                   list(zip(others, frozen)))
        with keras.StatelessScope(state_mapping=mapping) as scope:
            output = fn(*args)
        return output, [scope.get_current_value(v) for v in others]

    @tf.custom_gradient
    def run(*flat):
        output, moved = forward(list(flat))

        def grad(*upstream):
            # A data dependence on the upstream gradient keeps the rerun
            # after the backward pass reached this layer (and distinct from
            # the forward pass, which common-subexpression elimination
            # would otherwise merge it with).
            with tf.control_dependencies([upstream[0]]):
                again = [tf.identity(t) for t in flat]
            with tf.GradientTape() as tape:
                tape.watch(again)
                output, _ = forward(again)
            return tape.gradient(output, again,
                                 output_gradients=upstream[0])

        return (output, *moved), grad

    values = [tf.convert_to_tensor(v.value) for v in trainable]
    output, *moved = run(*[tensors[i] for i in present], *values)
    for variable, value in zip(others, moved):
        variable.assign(value)
    return output
