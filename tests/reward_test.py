"""Reward formulas: the papers' defaults, and 0 wherever a formula has no
real value, so that a search goes on."""

import math
import re

import pytest

from nas_tf.search import reward


def test_defaults_are_nas_rl_rewards():
    image = reward.RewardFormula(reward.DEFAULT_FORMULAS["image"], "image")
    text = reward.RewardFormula(reward.DEFAULT_FORMULAS["text"], "text")
    assert image(0.9) == pytest.approx(0.729)
    assert text(40.0) == pytest.approx(80 / 1600)


def test_formulas_follow_arithmetic_precedence():
    formula = reward.RewardFormula("-2 * (acc - 1) ** 2 + 1 / 4", "image")
    assert formula(0.5) == pytest.approx(-2 * 0.25 + 0.25)


@pytest.mark.parametrize("text,kind,value", [
    ("1 / acc", "image", 0.0),                    # ZeroDivisionError
    ("1 / (ppl - 40)", "text", 40.0),
    ("10 ** acc", "image", 1000.0),               # OverflowError
    ("ppl ** 2", "text", 1e200),
    ("acc * 1e308 * 10", "image", 1.0),           # inf without an error
    ("ppl - ppl", "text", math.inf),               # NaN
    ("acc ** 3", "image", math.nan),
    ("(acc - 0.5) ** 0.5", "image", 0.3),         # complex in Python
])
def test_no_real_value_rewards_zero(text, kind, value):
    result = reward.RewardFormula(text, kind)(value)
    assert result == 0.0 and isinstance(result, float)


def test_finite_values_pass_through_unchanged():
    # Negative and huge rewards are the user's choice, not an error.
    assert reward.RewardFormula("-acc", "image")(0.25) == -0.25
    assert reward.RewardFormula("acc * 1e300", "image")(1.0) == 1e300


@pytest.mark.parametrize("text,kind,message", [
    ("acc ** 3", "video", "reward kind 'video'; allowed: image, text"),
    ("ppl ** 3", "image", "'ppl' is not allowed; use 'acc'"),
    ("abs(acc)", "image", "'Call' is not allowed"),
    ("acc **", "image", "is not an arithmetic expression over 'acc'"),
])
def test_bad_formulas_are_refused_with_what_is_allowed(text, kind, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        reward.RewardFormula(text, kind)
