"""Mixed precision and XLA for the custom training loops.

``PrecisionConfig`` says how a run computes:

* ``mixed_precision``: the Keras dtype policy models are built under.
  ``float32`` (the default) changes nothing. ``mixed_bfloat16`` and
  ``mixed_float16`` compute layers in 16 bits while every variable stays
  float32 (Keras's mixed policies); the loss casts the logits to float32
  (``replica_loop.cross_entropy``), and BatchNorm normalises with float32
  statistics (Keras's layer computes in float32; ``FusedBatchNorm``, the
  ENAS micro cell's fused kernel and DARTS's ``SearchBn`` take float32
  scale, offset and statistics). ``mixed_float16`` also scales the loss
  dynamically (``DynamicLossScale``): float16's range is too small for
  small gradients. bfloat16 has float32's range and needs no scaling.
* ``jit_compile``: the per-replica training step (forward and backward
  pass) and the per-replica evaluation step are compiled with XLA
  (``tf.function(jit_compile=True)``). What stays outside XLA, by design:
  the tf.data pipeline (a Python loop feeds the compiled step, see
  ``replica_loop``), the sum of the replicas' gradients and the optimizer's
  update (cross-replica context), the loss scale's bookkeeping, an ENAS
  supernet's architecture sampling and DARTS's alpha (its softmax,
  SDARTS's noise, the finite difference's arithmetic: DARTS compiles each
  pass through the network, ``darts_architect.Architect.forward_backward``).
  An op XLA cannot compile raises ``XlaCompileError`` naming the step;
  nothing falls back silently. XLA drops ``tf.debugging`` assertions inside
  the compiled step (it logs "Ignoring Assert operator"): the ENAS
  supernets' checks of the architecture tensor do not run there (the
  controller's architectures are valid by construction). Not offered (the
  configs refuse it): language models; the enas_micro supernet, whose step
  took XLA over 9 minutes to compile on 2 CPU cores; DARTS's exact order
  (its double backprop took 126 s to compile for a 3-cell network) and
  DARTS on several replicas (its BatchNorm all-reduces inside the pass).

DARTS under a mixed policy: the search network computes in 16 bits; alpha,
its softmax, both optimizers and the loss stay float32; under
``mixed_float16`` the weight optimizer's loss scale scales every pass and
each of the two updates of a step is skipped on its own non-finite
gradients (``darts_step``).

The dtype policy is global in Keras: ``dtype_policy`` sets it only while a
model is built and restores the previous one afterwards. Layers keep the
policy they were built with, so the model computes in mixed precision
after the global policy is float32 again.
"""

import contextlib
import dataclasses

import keras
import tensorflow as tf

from nas_tf.config import _raise_on_failed

POLICIES = ("float32", "mixed_float16", "mixed_bfloat16")

# Keras 3's LossScaleOptimizer defaults (keras/src/optimizers/
# loss_scale_optimizer.py: ``initial_scale=2.0**15``,
# ``dynamic_growth_steps=2000``), which are also tf.keras's (TF 2.x
# ``tf.keras.mixed_precision.LossScaleOptimizer``).
INITIAL_LOSS_SCALE = 2.0 ** 15
LOSS_SCALE_GROWTH_STEPS = 2000


@dataclasses.dataclass(frozen=True)
class PrecisionConfig:
    """How a run computes.

    Attributes:
      mixed_precision: ``float32``, ``mixed_float16`` (with dynamic loss
        scaling) or ``mixed_bfloat16``: the Keras dtype policy of the
        models. Variables stay float32 under every policy.
      jit_compile: Compile the training and evaluation steps with XLA.
    """

    mixed_precision: str = "float32"
    jit_compile: bool = False

    def __post_init__(self):
        _raise_on_failed(type(self).__name__, [
            (self.mixed_precision in POLICIES, f"mixed_precision="
             f"{self.mixed_precision!r}; allowed: {', '.join(POLICIES)}"),
            (isinstance(self.jit_compile, bool), f"jit_compile="
             f"{self.jit_compile!r}; it must be True or False"),
        ])

    def __str__(self) -> str:
        return (f"mixed_precision={self.mixed_precision!r}, "
                f"jit_compile={self.jit_compile}")

    @property
    def loss_scaled(self) -> bool:
        """float16 needs its loss scaled; bfloat16 and float32 do not."""
        return self.mixed_precision == "mixed_float16"

    @property
    def is_default(self) -> bool:
        return self == PrecisionConfig()

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


class XlaCompileError(ValueError):
    """XLA could not compile a step (``--jit_compile``)."""


@contextlib.contextmanager
def dtype_policy(name: str):
    """Builds under Keras dtype policy ``name`` (one of ``POLICIES``) and
    restores the previous global policy afterwards, whatever happens."""
    if name not in POLICIES:
        raise ValueError(f"mixed_precision={name!r}; allowed: "
                         f"{', '.join(POLICIES)}")
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def make_loss_scale(config: PrecisionConfig):
    """A ``DynamicLossScale`` for ``mixed_float16``, else None. Create it
    inside the strategy's scope."""
    return DynamicLossScale() if config.loss_scaled else None


def all_finite(grads) -> tf.Tensor:
    """True if every element of every gradient is finite."""
    return tf.reduce_all([tf.reduce_all(tf.math.is_finite(
        tf.convert_to_tensor(g))) for g in grads])


def non_finite(grads) -> tf.Tensor:
    """1.0 if a gradient holds an inf or a NaN, else 0.0 (summed over
    replicas, 0 means every replica's were finite)."""
    return 1.0 - tf.cast(all_finite(grads), tf.float32)


class DynamicLossScale(tf.Module):
    """Dynamic loss scaling as Keras's ``LossScaleOptimizer`` does it, for
    the project's own optimizer (``MomentumSgd``, not a Keras optimizer).

    The loss is multiplied by ``scale`` before the gradients are taken and
    the gradients are divided by it. A step whose gradients hold an inf or
    a NaN is skipped (weights and momentum unchanged) and halves the scale;
    after ``growth_steps`` finite steps in a row the scale doubles. The
    scale and the count of finite steps are variables: a checkpoint of the
    optimizer that owns this object holds them, so a resumed run scales as
    the uninterrupted one.
    """

    def __init__(self, initial_scale: float = INITIAL_LOSS_SCALE,
                 growth_steps: int = LOSS_SCALE_GROWTH_STEPS):
        super().__init__(name="dynamic_loss_scale")
        if not initial_scale > 0:
            raise ValueError(f"initial_scale={initial_scale}; it must be "
                             "positive")
        if growth_steps < 1:
            raise ValueError(f"growth_steps={growth_steps}; it must be at "
                             "least 1")
        self.growth_steps = int(growth_steps)
        self.scale = tf.Variable(float(initial_scale), trainable=False,
                                 dtype=tf.float32, name="loss_scale")
        self.finite_steps = tf.Variable(0, trainable=False, dtype=tf.int64,
                                        name="finite_steps")

    def scale_loss(self, loss):
        """``loss * scale`` (replica context, inside the tape)."""
        return loss * tf.cast(self.scale, loss.dtype)

    def unscale(self, grads) -> list:
        """The gradients of the scaled loss divided by the scale."""
        inverse = 1.0 / self.scale
        return [None if g is None else g * tf.cast(inverse, g.dtype)
                for g in grads]

    def update(self, finite) -> tf.Tensor:
        """Moves the scale after a step whose gradients were ``finite``
        (a bool tensor, the same on every replica); returns ``finite``.
        Call in cross-replica context, after the step was applied or
        skipped."""
        finite = tf.convert_to_tensor(finite)
        grown = self.finite_steps + 1 >= self.growth_steps
        new_scale = tf.where(
            finite, tf.where(grown, self.scale * 2.0, self.scale),
            self.scale * 0.5)
        new_count = tf.where(finite & ~grown, self.finite_steps + 1,
                             tf.zeros_like(self.finite_steps))
        self.scale.assign(new_scale)
        self.finite_steps.assign(new_count)
        return finite
