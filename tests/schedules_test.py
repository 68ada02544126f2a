"""Learning-rate schedules against hand-computed values."""

import math

import pytest

from nas_tf.training import schedules


def test_sgdr_restarts_where_enas_runs_end():
    # T0 = 10, T_mul = 2: periods 10, 20, 40, 80, 160, so ENAS's 150- and
    # 310-epoch runs end exactly at a restart.
    assert schedules.sgdr_restarts(10, 2, 310) == [10, 30, 70, 150, 310]
    schedule = schedules.LrSchedule(kind="sgdr", learning_rate=0.05,
                                    lr_min=0.0005)
    for restart in (0, 10, 30, 70, 150):
        assert schedule(restart) == pytest.approx(0.05)
    # Halfway through the third period (30 + 20 of 40): the mean of the two.
    assert schedule(50) == pytest.approx((0.05 + 0.0005) / 2)
    # Epoch 69, the last of that period: 0.0005 + 0.02475 (1 + cos(39 pi/40)).
    assert schedule(69) == pytest.approx(
        0.0005 + 0.02475 * (1 + math.cos(math.pi * 39 / 40)))
    assert schedules.sgdr_period(149, 10, 2) == (79, 80)


def test_cosine_is_darts_cosine_annealing_by_epoch():
    schedule = schedules.LrSchedule(kind="cosine", learning_rate=0.025,
                                    epochs=600)
    assert schedule(0) == pytest.approx(0.025)
    assert schedule(300) == pytest.approx(0.0125)
    assert schedule(150) == pytest.approx(0.0125 * (1 + math.sqrt(0.5)))
    assert schedule(599) == pytest.approx(
        0.0125 * (1 + math.cos(math.pi * 599 / 600)))


def test_exponential_is_a_staircase():
    # NASNet ImageNet: x0.97 every 2.4 epochs.
    schedule = schedules.LrSchedule(kind="exponential", learning_rate=2.0,
                                    decay_rate=0.97, decay_epochs=2.4)
    assert [schedule(e) for e in (0, 2, 3, 4, 5)] == pytest.approx(
        [2.0, 2.0, 1.94, 1.94, 2.0 * 0.97 ** 2])


def test_bad_schedules_name_the_value():
    with pytest.raises(ValueError, match="kind='step'"):
        schedules.LrSchedule(kind="step")
    with pytest.raises(ValueError, match="lr_min=0.1"):
        schedules.LrSchedule(learning_rate=0.05, lr_min=0.1)
