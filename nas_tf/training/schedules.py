"""Learning-rate schedules of the originals, by epoch.

Every original sets the rate once per epoch: DARTS steps PyTorch's
``CosineAnnealingLR`` / ``StepLR`` at the start of each epoch (under the
PyTorch 0.3 it was written for, the first step gives epoch 0 the initial
rate), ENAS computes SGDR from the epoch counter (``utils.get_train_ops``),
NASNet's ImageNet decay is a staircase. ``LrSchedule(epoch)`` is the rate
of 0-based ``epoch``.

Keras's ``CosineDecay`` and ``CosineDecayRestarts`` give the same cosine and
SGDR rates (to float32 rounding), but they are functions of the step, and
``ExponentialDecay``'s staircase floors ``step / decay_steps`` in float32:
with NASNet's 2.4-epoch period (2.4 becomes 2.4000001) it decays one epoch
late at epochs 36, 60, 72, 120, ... These are computed in Python floats, per
epoch, as the originals do.
"""

import dataclasses
import math

from nas_tf.config import _raise_on_failed

KINDS = ("constant", "cosine", "sgdr", "exponential")


def cosine(epoch: int, epochs: int, lr_max: float, lr_min: float = 0.0):
    """One cosine period from ``lr_max`` at epoch 0 towards ``lr_min`` at
    ``epochs`` (DARTS ``CosineAnnealingLR(epochs, eta_min)``)."""
    return lr_min + 0.5 * (lr_max - lr_min) * (
        1.0 + math.cos(math.pi * epoch / epochs))


def sgdr_period(epoch: int, t0: int, t_mul: int):
    """(epochs since the last restart, length of the current period) of
    SGDR with first period ``t0`` multiplied by ``t_mul`` at each restart."""
    start, length = 0, t0
    while epoch >= start + length:
        start += length
        length *= t_mul
    return epoch - start, length


def sgdr_restarts(t0: int, t_mul: int, epochs: int) -> list:
    """Epochs at which SGDR restarts, up to ``epochs`` (10, 30, 70, 150, 310
    for ENAS's T0 = 10, T_mul = 2)."""
    restarts, end, length = [], t0, t0
    while end <= epochs:
        restarts.append(end)
        length *= t_mul
        end += length
    return restarts


def sgdr(epoch: int, t0: int, t_mul: int, lr_max: float, lr_min: float):
    """Warm restarts, epoch-granular (ENAS ``lr_cosine``): cosine from
    ``lr_max`` to ``lr_min`` within each period."""
    current, length = sgdr_period(epoch, t0, t_mul)
    return cosine(current, length, lr_max, lr_min)


@dataclasses.dataclass(frozen=True)
class LrSchedule:
    """A learning-rate schedule.

    Attributes:
      kind: ``constant``, ``cosine`` (one period over ``epochs``), ``sgdr``
        (warm restarts, periods ``sgdr_t0`` x ``sgdr_t_mul``^k) or
        ``exponential`` (times ``decay_rate`` every ``decay_epochs``).
      learning_rate: The starting (maximum) rate.
      lr_min: Cosine and SGDR floor.
      epochs: Length of the ``cosine`` period.
      sgdr_t0: SGDR's first period in epochs.
      sgdr_t_mul: SGDR's period multiplier.
      decay_rate: ``exponential``'s factor.
      decay_epochs: ``exponential``'s staircase step, in epochs (DARTS
        ImageNet 1, NASNet ImageNet 2.4).
    """

    kind: str = "cosine"
    learning_rate: float = 0.025
    lr_min: float = 0.0
    epochs: int = 1
    sgdr_t0: int = 10
    sgdr_t_mul: int = 2
    decay_rate: float = 0.97
    decay_epochs: float = 1.0

    def __post_init__(self):
        _raise_on_failed(type(self).__name__, [
            (self.kind in KINDS, f"kind={self.kind!r}; allowed: {KINDS}"),
            (self.learning_rate > 0, f"learning_rate={self.learning_rate}; "
             "it must be positive"),
            (0 <= self.lr_min <= self.learning_rate, f"lr_min={self.lr_min}; "
             f"it must be in [0, learning_rate={self.learning_rate}]"),
            (self.epochs >= 1, f"epochs={self.epochs}; it must be at least "
             "1"),
            (self.sgdr_t0 >= 1 and self.sgdr_t_mul >= 1, f"sgdr_t0="
             f"{self.sgdr_t0}, sgdr_t_mul={self.sgdr_t_mul}; both must be "
             "at least 1"),
            (0 < self.decay_rate <= 1, f"decay_rate={self.decay_rate}; it "
             "must be in (0, 1]"),
            (self.decay_epochs > 0, f"decay_epochs={self.decay_epochs}; it "
             "must be positive"),
        ])

    def __call__(self, epoch: int) -> float:
        if self.kind == "cosine":
            return cosine(epoch, self.epochs, self.learning_rate, self.lr_min)
        if self.kind == "sgdr":
            return sgdr(epoch, self.sgdr_t0, self.sgdr_t_mul,
                        self.learning_rate, self.lr_min)
        if self.kind == "exponential":
            return self.learning_rate * self.decay_rate ** math.floor(
                epoch / self.decay_epochs)
        return self.learning_rate
