"""IQM, stratified-bootstrap intervals, probability of improvement, performance profiles and
paired differences: hand-computed values, and the same numbers as rliable called directly."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from hybrid_rl.report.statistics import (
    interquartile_mean,
    interval_over_seeds,
    paired_difference,
    performance_profile,
    performance_profile_interval,
    probability_of_improvement,
    probability_of_improvement_interval,
    stratified_bootstrap,
)


def test_iqm_drops_the_lowest_and_highest_quarter_of_all_scores():
    # 8 scores: the 2 lowest (0, 1) and the 2 highest (90, 100) are dropped
    assert interquartile_mean([[0.0, 1.0, 10.0, 20.0], [30.0, 40.0, 90.0, 100.0]]) == 25.0
    # fewer than 4 scores: nothing to drop, the mean
    assert interquartile_mean([[1.0, 2.0, 6.0]]) == 3.0
    assert math.isnan(interquartile_mean([[]]))


def test_one_seed_has_a_point_but_no_interval():
    interval = interval_over_seeds([[42.0]])
    assert interval.point == 42.0 and interval.n == 1 and not interval.has_ci
    assert interval.format() == "42.0 (1 seed)"
    assert interval_over_seeds([[]]).format() == "—"


def test_three_seeds_print_their_range_and_never_a_ci():
    # the percentile bootstrap of 3 seeds is exactly [min, max] (the all-minimum resample has
    # probability 1/27 > 2.5%): issue 14's dip difference +16.0 [1.6, 25.6] was that range
    interval = interval_over_seeds([[1.6, 20.6, 25.6]], "mean")
    assert interval.kind == "range" and not interval.has_ci
    assert (interval.point, interval.low, interval.high) == pytest.approx(
        (15.9333, 1.6, 25.6), abs=1e-4
    )
    text = interval.format()
    assert text == "15.9 [1.6, 25.6] range (3 seeds)"
    assert "CI" not in text
    assert interval_over_seeds([[3.0, -1.0]], "mean").format(signed=True) == (
        "+1.0 [−1.0, 3.0] range (2 seeds)"
    )


def test_five_seeds_or_more_give_the_bootstrap_ci_reproducibly():
    scores = [[40.0, 44.0, 51.0, 47.0, 39.0]]
    a, b = interval_over_seeds(scores), interval_over_seeds(scores)
    assert a == b and a.kind == "ci"
    assert a == stratified_bootstrap(scores)
    assert 39.0 <= a.low <= a.point <= a.high <= 51.0
    assert a.format() == f"{a.point:.1f} [{a.low:.1f}, {a.high:.1f}] 95% CI"


def test_a_task_with_fewer_than_five_seeds_makes_the_aggregate_a_range():
    # 6 seeds on one dataset, 3 on the other: the stratified bootstrap of the second is its
    # range, so the aggregate claims no CI
    interval = interval_over_seeds([[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [10.0, 20.0, 30.0]])
    assert interval.kind == "range" and (interval.low, interval.high) == (1.0, 30.0)
    assert interval.format().endswith("range (9 runs over 2 tasks)")


def test_probability_of_improvement_counts_ties_as_half():
    assert probability_of_improvement([[3.0, 4.0]], [[1.0, 2.0]]) == 1.0
    assert probability_of_improvement([[1.0, 2.0]], [[3.0, 4.0]]) == 0.0
    # pairs: (2>1), (2=2), (2<3) for x=2 against y=1,2,3 -> (1 + 0.5 + 0) / 3
    assert probability_of_improvement([[2.0]], [[1.0, 2.0, 3.0]]) == pytest.approx(0.5)
    # averaged over tasks
    assert probability_of_improvement([[3.0], [0.0]], [[1.0], [1.0]]) == 0.5


def test_paired_difference_pairs_on_seed_and_has_no_interval_with_one_seed():
    bonus = {0: 23.1, 1: 28.5, 2: 30.0}
    plain = {0: 43.0, 1: 42.8, 5: 10.0}  # seed 2 and 5 have no partner
    paired = paired_difference(bonus, plain)
    assert paired.seeds == (0, 1)
    assert paired.differences == pytest.approx((23.1 - 43.0, 28.5 - 42.8))
    assert paired.mean.point == pytest.approx(np.mean(paired.differences))
    # two seeds: the range of the two differences, no t-interval
    assert (paired.mean.low, paired.mean.high) == pytest.approx((-19.9, -14.3))
    assert paired.t_interval is None
    assert paired.format() == "−17.1 [−19.9, −14.3] range (2 seeds)"
    single = paired_difference({0: 36.3}, {0: 41.0})
    assert single.mean.point == pytest.approx(-4.7) and not single.mean.has_ci
    assert single.format() == "−4.7 (1 seed)"


def test_ten_paired_seeds_give_a_bootstrap_ci_and_the_t_interval_of_scipy():
    x = {s: 50.0 + 3.0 * s for s in range(10)}
    differences = [2.0, -1.0, 4.5, 3.0, 0.5, 6.0, 1.0, 2.5, -0.5, 3.5]
    y = {s: x[s] - d for s, d in enumerate(differences)}
    paired = paired_difference(x, y)
    assert paired.mean.kind == "ci" and paired.mean.point == pytest.approx(2.15)
    assert paired.mean.low < 2.15 < paired.mean.high
    expected = stats.t.interval(0.95, 9, loc=np.mean(differences), scale=stats.sem(differences))
    assert paired.t_interval == pytest.approx(expected, abs=1e-9)
    low, high = expected
    assert paired.format() == (
        f"+2.1 [{paired.mean.low:.1f}, {paired.mean.high:.1f}] 95% CI; "
        f"paired t [{low:.1f}, {high:.1f}]"
    )


def test_probability_of_improvement_says_its_seeds_when_its_interval_is_degenerate():
    few = probability_of_improvement_interval([[3.0, 4.0, 5.0]], [[1.0, 2.0, 4.0]])
    # pairs above: 3>1,3>2, 4>1,4>2, 5 beats all three; 4=4 ties: (7 + 0.5) / 9
    assert few.point == pytest.approx(7.5 / 9) and few.kind == "none"
    assert few.format(2) == "0.83 (3 vs 3 seeds)"
    many = probability_of_improvement_interval([list(range(5))], [list(range(1, 6))])
    assert many.kind == "ci" and many.format(2).endswith("95% CI")


def test_paired_differences_are_tighter_than_independent_means():
    # a large seed effect shared by both arms, a small constant bonus effect
    seed_level = {s: 20.0 * s for s in range(5)}
    x = {s: v + 1.0 + 0.1 * s for s, v in seed_level.items()}
    y = dict(seed_level)
    paired = paired_difference(x, y)
    assert paired.mean.high - paired.mean.low < 0.5
    unpaired_x = stratified_bootstrap([list(x.values())], "mean")
    assert unpaired_x.high - unpaired_x.low > 10.0


def test_performance_profile_is_the_fraction_of_runs_above_each_threshold():
    profile = performance_profile([[10.0, 20.0], [30.0, 40.0]], [0.0, 15.0, 35.0, 40.0])
    np.testing.assert_allclose(profile, [1.0, 0.75, 0.25, 0.0])
    single, low, high = performance_profile_interval([[10.0]], [5.0, 15.0])
    np.testing.assert_allclose(single, [1.0, 0.0])
    np.testing.assert_allclose(low, single)
    np.testing.assert_allclose(high, single)


# --- the same numbers as rliable, called directly on the same scores ---------------------

SCORES = np.array(  # [runs, tasks], as rliable takes them
    [
        [43.6, 98.2, 12.0],
        [43.5, 20.1, 15.5],
        [43.0, 101.9, 9.0],
        [41.2, 55.0, 30.0],
        [44.1, 19.0, 11.0],
    ]
)
OTHER = np.array(
    [
        [42.5, 90.0, 14.0],
        [42.8, 25.0, 10.0],
        [43.9, 60.0, 8.0],
        [40.0, 99.0, 19.0],
        [41.0, 70.0, 12.5],  # 5 runs: below that the report gives no interval to compare
    ]
)
REPS = 2_000


@pytest.fixture
def rliable():
    # rliable 1.2 needs pandas < 3 (its `arch` import fails with pandas 3): the [stats] extra
    library = pytest.importorskip(
        "rliable.library", reason="rliable not installed (pip install -e '.[stats]')"
    )
    metrics = pytest.importorskip("rliable.metrics")
    return library, metrics


def test_iqm_and_interval_match_rliable(rliable):
    library, metrics = rliable
    np.random.seed(7)  # rliable's bootstrap draws from numpy's global generator
    points, intervals = library.get_interval_estimates(
        {"x": SCORES}, lambda s: np.array([metrics.aggregate_iqm(s)]), reps=REPS
    )
    ours = stratified_bootstrap(SCORES, "iqm", reps=REPS, seed=7)
    assert ours.point == pytest.approx(float(points["x"][0]), abs=1e-12)
    # the same index draws, so the same interval, not only within bootstrap tolerance
    assert ours.low == pytest.approx(float(intervals["x"][0, 0]), abs=1e-9)
    assert ours.high == pytest.approx(float(intervals["x"][1, 0]), abs=1e-9)


def test_mean_interval_matches_rliable(rliable):
    library, metrics = rliable
    np.random.seed(3)
    _, intervals = library.get_interval_estimates(
        {"x": SCORES}, lambda s: np.array([metrics.aggregate_mean(s)]), reps=REPS
    )
    ours = stratified_bootstrap(SCORES, "mean", reps=REPS, seed=3)
    assert ours.low == pytest.approx(float(intervals["x"][0, 0]), abs=1e-9)
    assert ours.high == pytest.approx(float(intervals["x"][1, 0]), abs=1e-9)


def test_probability_of_improvement_and_interval_match_rliable(rliable):
    library, metrics = rliable
    np.random.seed(11)
    points, intervals = library.get_interval_estimates(
        {"x,y": [SCORES, OTHER]},
        lambda x, y: np.array([metrics.probability_of_improvement(x, y)]),
        reps=500,
    )
    ours = probability_of_improvement_interval(SCORES, OTHER, reps=500, seed=11)
    assert ours.point == pytest.approx(float(points["x,y"][0]), abs=1e-12)
    assert ours.low == pytest.approx(float(intervals["x,y"][0, 0]), abs=1e-9)
    assert ours.high == pytest.approx(float(intervals["x,y"][1, 0]), abs=1e-9)


def test_performance_profile_matches_rliable(rliable):
    library, _ = rliable
    taus = np.linspace(0.0, 110.0, 23)
    np.random.seed(5)
    profiles, bands = library.create_performance_profile({"x": SCORES}, taus, reps=300)
    profile, low, high = performance_profile_interval(SCORES, taus, reps=300, seed=5)
    np.testing.assert_allclose(profile, profiles["x"])
    np.testing.assert_allclose(low, bands["x"][0], atol=1e-9)
    np.testing.assert_allclose(high, bands["x"][1], atol=1e-9)
