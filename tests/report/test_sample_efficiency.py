import math

import pytest

from hybrid_rl.report.sample_efficiency import steps_to_threshold


def test_returns_the_first_step_whose_score_reaches_the_threshold():
    steps = [0, 5_000, 10_000, 15_000, 20_000]
    scores = [20.0, 35.0, 40.0, 38.0, 45.0]
    assert steps_to_threshold(steps, scores, 40.0) == 10_000  # equal counts as reached
    assert steps_to_threshold(steps, scores, 39.9) == 10_000
    assert steps_to_threshold(steps, scores, 40.1) == 20_000  # a later dip does not matter


def test_a_run_already_at_the_threshold_at_step_zero_needs_zero_steps():
    assert steps_to_threshold([0, 5_000], [80.0, 10.0], 80.0) == 0


def test_a_run_that_never_reaches_the_threshold_is_censored_not_zero():
    assert steps_to_threshold([0, 5_000, 10_000], [10.0, 20.0, 79.99], 80.0) is None
    assert steps_to_threshold([], [], 80.0) is None


def test_nan_scores_never_reach_the_threshold():
    assert steps_to_threshold([0, 5_000, 10_000], [math.nan, math.nan, 90.0], 80.0) == 10_000
    assert steps_to_threshold([0, 5_000], [math.nan, math.nan], -1e9) is None


def test_misaligned_or_unordered_inputs_are_rejected():
    with pytest.raises(ValueError, match="2 entries but scores has 3"):
        steps_to_threshold([0, 5_000], [1.0, 2.0, 3.0], 1.0)
    with pytest.raises(ValueError, match="strictly increasing, got 5000 then 5000"):
        steps_to_threshold([0, 5_000, 5_000], [1.0, 2.0, 3.0], 1.0)
    with pytest.raises(ValueError, match="NaN"):
        steps_to_threshold([0], [1.0], math.nan)
