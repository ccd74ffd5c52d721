import dataclasses
import json
import math
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hybrid_rl.data.corruption import (
    CLEAN,
    CorruptionConfig,
    add_reward_noise,
    attack_transitions,
    corrupt,
    removal_count,
    remove_random_k,
    remove_random_k_transitions,
    remove_top_k,
)
from hybrid_rl.data.transitions import TransitionArrays, split_trajectories

# The machine running CI is shared with training jobs: no per-example deadline.
properties = settings(deadline=None, max_examples=60)

ARRAY_FIELDS = [f.name for f in dataclasses.fields(TransitionArrays)]


def build(lengths, end_kinds, rewards):
    """Trajectories of the given lengths; observations[:, 0] holds each row's original index."""
    n = sum(lengths)
    rows = np.arange(n, dtype=np.float32)
    obs = np.stack([rows, rows * 0.5], axis=1)
    terminals = np.zeros(n, dtype=bool)
    timeouts = np.zeros(n, dtype=bool)
    last_rows = np.cumsum(lengths) - 1
    for row, kind in zip(last_rows, end_kinds, strict=True):
        terminals[row] = kind == "terminal"
        timeouts[row] = kind == "timeout"
    return TransitionArrays(
        observations=obs,
        actions=np.tile(rows[:, None], (1, 3)) * -1.0,
        rewards=np.asarray(rewards, dtype=np.float32),
        next_observations=obs + 1.0,
        terminals=terminals,
        timeouts=timeouts,
    )


@st.composite
def transition_arrays(draw, max_trajectories=15, max_length=9, integer_rewards=None):
    lengths = draw(st.lists(st.integers(1, max_length), min_size=1, max_size=max_trajectories))
    # Every trajectory but the last must end on a flag; the last may be an unterminated tail.
    end_kinds = [draw(st.sampled_from(["terminal", "timeout"])) for _ in lengths[:-1]]
    end_kinds.append(draw(st.sampled_from(["terminal", "timeout", "none"])))
    # Small integer rewards make tied returns common; floats exercise everything else.
    if integer_rewards is None:
        integer_rewards = draw(st.booleans())
    if integer_rewards:
        reward = st.integers(-1, 1).map(float)
    else:
        reward = st.floats(-10, 10, allow_nan=False, width=32)
    rewards = draw(st.lists(reward, min_size=sum(lengths), max_size=sum(lengths)))
    return build(lengths, end_kinds, rewards)


# k as a whole number of hundredths, so the expected count is exact integer arithmetic.
k_hundredths = st.integers(0, 9999)
seeds = st.integers(0, 2**32 - 1)


def trajectory_rows(t):
    """Rows of each trajectory, found by walking the flags (independent of the package)."""
    groups, current = [], []
    for row in range(len(t)):
        current.append(row)
        if t.terminals[row] or t.timeouts[row]:
            groups.append(current)
            current = []
    if current:
        groups.append(current)
    return groups


def returns_of(t):
    return np.array(
        [sum(float(t.rewards[r]) for r in rows) for rows in trajectory_rows(t)], dtype=np.float64
    )


def copies(t):
    return {name: getattr(t, name).copy() for name in ARRAY_FIELDS}


def assert_unchanged(t, before):
    for name in ARRAY_FIELDS:
        np.testing.assert_array_equal(getattr(t, name), before[name], err_msg=name)


def assert_equal_but_independent(out, t):
    assert out is not t
    for name in ARRAY_FIELDS:
        np.testing.assert_array_equal(getattr(out, name), getattr(t, name), err_msg=name)
        assert not np.shares_memory(getattr(out, name), getattr(t, name)), name


def original_rows(out):
    return out.observations[:, 0].astype(np.int64)


def assert_summary_matches(summary, returns):
    assert summary.trajectories == returns.size
    expected = {
        "mean": returns.mean(),
        "std": returns.std(),
        "min": returns.min(),
        "max": returns.max(),
        "q25": np.quantile(returns, 0.25),
        "median": np.median(returns),
        "q75": np.quantile(returns, 0.75),
    }
    for name, value in expected.items():
        assert math.isclose(getattr(summary, name), value, rel_tol=1e-9, abs_tol=1e-9), name


@properties
@given(transition_arrays(), k_hundredths)
def test_top_k_removes_floor_of_k_percent_of_trajectories(t, k100):
    n_traj = len(trajectory_rows(t))
    expected = k100 * n_traj // 10000
    out, stats = remove_top_k(t, k100 / 100)
    assert stats.trajectories_removed == expected
    assert stats.trajectories_after == len(trajectory_rows(out)) == n_traj - expected
    assert stats.transitions_after == len(out)
    assert stats.transitions_before == len(t)


@properties
@given(
    st.one_of(
        transition_arrays(),
        # Short trajectories of rewards in {-1, 0, 1}: ties at the cut are frequent.
        transition_arrays(max_trajectories=20, max_length=2, integer_rewards=True),
    ),
    k_hundredths,
)
def test_top_k_never_keeps_a_trajectory_that_outranks_a_removed_one(t, k100):
    out, _ = remove_top_k(t, k100 / 100)
    kept_rows = set(original_rows(out).tolist())
    returns = returns_of(t)
    groups = trajectory_rows(t)
    kept = [i for i, rows in enumerate(groups) if rows[0] in kept_rows]
    removed = [i for i, rows in enumerate(groups) if rows[0] not in kept_rows]
    for i in kept:
        for j in removed:
            assert returns[i] <= returns[j]
            # Ties go to the earlier trajectory: it is the one removed.
            if returns[i] == returns[j]:
                assert j < i


@properties
@given(transition_arrays(), k_hundredths, seeds)
def test_removal_keeps_whole_trajectories_in_their_original_order(t, k100, seed):
    for out, _ in (remove_top_k(t, k100 / 100), remove_random_k(t, k100 / 100, seed)):
        rows = original_rows(out)
        assert np.all(np.diff(rows) > 0)
        for name in ARRAY_FIELDS:
            np.testing.assert_array_equal(getattr(out, name), getattr(t, name)[rows])
        kept = set(rows.tolist())
        for group in trajectory_rows(t):
            assert all(r in kept for r in group) or not any(r in kept for r in group)


@properties
@given(transition_arrays(), k_hundredths, seeds)
def test_random_removal_removes_as_many_trajectories_as_top_k(t, k100, seed):
    top, top_stats = remove_top_k(t, k100 / 100)
    rand, rand_stats = remove_random_k(t, k100 / 100, seed)
    assert rand_stats.trajectories_removed == top_stats.trajectories_removed
    assert len(trajectory_rows(rand)) == len(trajectory_rows(top))


@properties
@given(transition_arrays(), k_hundredths, seeds)
def test_random_removal_is_deterministic_per_seed(t, k100, seed):
    first, first_stats = remove_random_k(t, k100 / 100, seed)
    second, second_stats = remove_random_k(t, k100 / 100, seed)
    np.testing.assert_array_equal(original_rows(first), original_rows(second))
    assert first_stats == second_stats


def test_random_removal_differs_between_seeds():
    t = build([5] * 100, ["terminal"] * 100, np.arange(500) % 7)
    a, _ = remove_random_k(t, 50, seed=0)
    b, _ = remove_random_k(t, 50, seed=1)
    assert len(a) == len(b) == 250
    assert not np.array_equal(original_rows(a), original_rows(b))


@properties
@given(transition_arrays(), st.floats(0.1, 5.0), seeds)
def test_reward_noise_is_deterministic_per_seed_and_differs_between_seeds(t, sigma, seed):
    first, _ = add_reward_noise(t, sigma, seed)
    second, _ = add_reward_noise(t, sigma, seed)
    other, _ = add_reward_noise(t, sigma, seed + 1)
    np.testing.assert_array_equal(first.rewards, second.rewards)
    assert not np.array_equal(first.rewards, other.rewards)


@properties
@given(transition_arrays(), st.floats(0.0, 5.0), seeds)
def test_reward_noise_changes_only_rewards_and_keeps_float32(t, sigma, seed):
    out, stats = add_reward_noise(t, sigma, seed)
    assert out.rewards.dtype == np.float32
    for name in ARRAY_FIELDS:
        if name != "rewards":
            np.testing.assert_array_equal(getattr(out, name), getattr(t, name))
    assert stats.transitions == len(out)
    assert_summary_matches(stats.returns_before, returns_of(t))
    assert_summary_matches(stats.returns_after, returns_of(out))


def test_reward_noise_has_the_requested_mean_and_std():
    n = 200_000
    t = build([1000] * 200, ["timeout"] * 200, np.full(n, 3.0))
    out, _ = add_reward_noise(t, 2.0, seed=7)
    noise = out.rewards.astype(np.float64) - 3.0
    assert abs(noise.mean()) < 4 * 2.0 / math.sqrt(n)
    assert abs(noise.std() - 2.0) < 0.02


@properties
@given(transition_arrays(), seeds)
def test_zero_k_and_zero_sigma_are_identity_on_new_arrays(t, seed):
    assert_equal_but_independent(remove_top_k(t, 0)[0], t)
    assert_equal_but_independent(remove_random_k(t, 0, seed)[0], t)
    assert_equal_but_independent(add_reward_noise(t, 0.0, seed)[0], t)
    for removal in ("none", "top", "random"):
        config = CorruptionConfig(removal=removal, k_percent=0, reward_noise_std=0)
        assert config.is_clean
        assert_equal_but_independent(corrupt(t, config, seed)[0], t)


@properties
@given(
    transition_arrays(),
    k_hundredths,
    st.floats(0.0, 3.0),
    seeds,
    st.sampled_from(["top", "random"]),
)
def test_inputs_are_never_modified(t, k100, sigma, seed, removal):
    before = copies(t)
    remove_top_k(t, k100 / 100)
    remove_random_k(t, k100 / 100, seed)
    add_reward_noise(t, sigma, seed)
    corrupt(t, CorruptionConfig(removal, k100 / 100, sigma), seed)
    assert_unchanged(t, before)


@properties
@given(transition_arrays(), k_hundredths, seeds, st.sampled_from(["top", "random"]))
def test_removal_stats_describe_the_arrays(t, k100, seed, mode):
    if mode == "top":
        out, stats = remove_top_k(t, k100 / 100)
    else:
        out, stats = remove_random_k(t, k100 / 100, seed)
    assert stats.mode == mode
    assert stats.k_percent == k100 / 100
    assert stats.seed == (seed if mode == "random" else None)
    before, after = returns_of(t), returns_of(out)
    assert_summary_matches(stats.returns_before, before)
    assert_summary_matches(stats.returns_after, after)
    assert stats.trajectories_before == before.size
    assert stats.trajectories_after == after.size
    assert stats.transitions_after == len(out)
    kept = set(original_rows(out).tolist())
    removed_returns = [
        r for r, rows in zip(before, trajectory_rows(t), strict=True) if rows[0] not in kept
    ]
    if removed_returns:
        assert math.isclose(stats.removed_return_min, min(removed_returns), abs_tol=1e-9)
        assert math.isclose(stats.removed_return_max, max(removed_returns), abs_tol=1e-9)
    else:
        assert stats.removed_return_min is None and stats.removed_return_max is None
    assert json.loads(json.dumps(stats.to_dict())) == stats.to_dict()


@properties
@given(
    transition_arrays(),
    k_hundredths,
    st.floats(0.0, 3.0),
    seeds,
    st.sampled_from(["none", "top", "random"]),
)
def test_corruption_stats_describe_the_arrays(t, k100, sigma, seed, removal):
    k = 0.0 if removal == "none" else k100 / 100
    out, stats = corrupt(t, CorruptionConfig(removal, k, sigma), seed)
    before, after = returns_of(t), returns_of(out)
    assert stats.trajectories_before == before.size
    assert stats.trajectories_after == after.size
    assert stats.trajectories_removed == before.size - after.size
    assert stats.trajectories_removed == (0 if removal == "none" else k100 * before.size // 10000)
    assert (stats.transitions_before, stats.transitions_after) == (len(t), len(out))
    assert_summary_matches(stats.returns_before, before)
    assert_summary_matches(stats.returns_after, after)
    kept_true = t.take(original_rows(out))
    assert_summary_matches(stats.returns_after_removal, returns_of(kept_true))
    assert (stats.removal, stats.k_percent, stats.reward_noise_std, stats.seed) == (
        removal if k else "none",  # k = 0 removes nothing: the condition records "none"
        k,
        sigma,
        seed,
    )
    assert json.loads(json.dumps(stats.to_dict())) == stats.to_dict()


def test_corrupt_removes_by_true_returns_before_adding_noise():
    # 40 trajectories whose true returns differ by 1; noise of std 100 per row reshuffles the
    # ranking, so removing after the noise would drop a different set.
    n_traj, length = 40, 10
    rewards = np.repeat(np.arange(n_traj, dtype=np.float32) / length, length)
    t = build([length] * n_traj, ["timeout"] * n_traj, rewards)
    config = CorruptionConfig(removal="top", k_percent=25, reward_noise_std=100.0)
    out, stats = corrupt(t, config, seed=3)

    removal_first, _ = add_reward_noise(remove_top_k(t, 25)[0], 100.0, seed=3)
    for name in ARRAY_FIELDS:
        np.testing.assert_array_equal(getattr(out, name), getattr(removal_first, name))
    # The 10 best trajectories (ids 30..39, rows 300..399) are gone.
    assert original_rows(out).max() == 299
    assert stats.removed_return_min == pytest.approx(30.0)

    noise_first, _ = remove_top_k(add_reward_noise(t, 100.0, seed=3)[0], 25)
    assert not np.array_equal(original_rows(noise_first), original_rows(out))


def test_top_k_removes_the_earlier_of_tied_trajectories_first():
    t = build([1, 1, 1, 1], ["terminal"] * 4, [5, 1, 5, 5])
    out, stats = remove_top_k(t, 50)
    assert original_rows(out).tolist() == [1, 3]
    assert stats.removed_return_min == stats.removed_return_max == 5.0


def test_removal_count_rounds_down_whole_trajectories():
    assert removal_count(100, 29) == 29  # 29/100*100 is 28.999... in binary floats
    assert removal_count(9, 10) == 0  # k > 0 can remove nothing on a tiny dataset
    assert removal_count(10, 99.99) == 9  # at least one trajectory is always kept
    assert removal_count(1, 50) == 0
    assert removal_count(7, 0) == 0


def test_removal_on_a_single_trajectory_keeps_it():
    t = build([4], ["none"], [1, 2, 3, 4])
    out, stats = remove_top_k(t, 99)
    assert len(out) == 4
    assert stats.trajectories_removed == 0


@pytest.mark.parametrize("k", [-1, -0.01, 100, 150, float("nan")])
def test_bad_k_percent_is_rejected_with_its_value(k):
    t = build([2], ["terminal"], [1, 1])
    for call in (
        lambda: remove_top_k(t, k),
        lambda: remove_random_k(t, k, seed=0),
        lambda: CorruptionConfig(removal="top", k_percent=k),
    ):
        with pytest.raises(ValueError, match=re.escape(f"k_percent must be in [0, 100), got {k}")):
            call()


@pytest.mark.parametrize("sigma", [-0.1, float("nan"), float("inf")])
def test_bad_sigma_is_rejected_with_its_value(sigma):
    t = build([2], ["terminal"], [1, 1])
    with pytest.raises(ValueError, match=re.escape(f"must be finite and >= 0, got {sigma}")):
        add_reward_noise(t, sigma, seed=0)
    with pytest.raises(ValueError, match=re.escape(f"must be finite and >= 0, got {sigma}")):
        CorruptionConfig(reward_noise_std=sigma)


def test_config_rejects_an_unknown_removal_mode():
    expected = "unknown removal mode 'best'; choose one of top, random, random_transitions, none"
    with pytest.raises(ValueError, match=expected):
        CorruptionConfig(removal="best", k_percent=10)  # type: ignore[arg-type]


def test_config_rejects_k_without_a_removal_mode():
    with pytest.raises(ValueError, match="k_percent=10 was given with removal='none'"):
        CorruptionConfig(removal="none", k_percent=10)


def test_empty_and_non_finite_datasets_are_rejected():
    empty = build([], [], [])
    with pytest.raises(ValueError, match="empty dataset"):
        remove_top_k(empty, 10)
    with pytest.raises(ValueError, match="empty dataset"):
        corrupt(empty, CorruptionConfig())
    bad = build([3], ["terminal"], [1.0, float("nan"), 2.0])
    with pytest.raises(ValueError, match="row 1 holds nan"):
        remove_top_k(bad, 10)
    with pytest.raises(ValueError, match="row 1 holds nan"):
        add_reward_noise(bad, 1.0, seed=0)


def test_a_condition_removing_nothing_is_one_clean_condition_whatever_the_mode():
    conditions = {CorruptionConfig(removal, 0.0, 0.0) for removal in ("none", "top", "random")}
    assert conditions == {CLEAN}
    assert CLEAN.is_clean and CLEAN.removal == "none" and CLEAN.label == "clean"
    assert CLEAN.name_part == "k0_noise0"
    noisy = CorruptionConfig("top", 0, 0.5)
    assert not noisy.is_clean and noisy.without_noise() == CLEAN
    top = CorruptionConfig("top", 30, 0.0)
    assert (top.name_part, top.label) == ("k30_noise0", "top 30% removed")
    random = CorruptionConfig("random", 30, 0.1)
    assert (random.name_part, random.label) == (
        "randk30_noise0.1",
        "random 30% removed, reward noise σ=0.1",
    )


FIELD_OF = {
    "obs": "observations",
    "act": "actions",
    "rew": "rewards",
    "next_obs": "next_observations",
}


def large_random_transitions(n=4_000, seed=0):
    rng = np.random.default_rng(seed)
    t = build([100] * (n // 100), ["timeout"] * (n // 100), rng.normal(size=n).astype(np.float32))
    return dataclasses.replace(
        t,
        observations=rng.normal(3.0, [1.0, 5.0, 0.1], size=(n, 3)).astype(np.float32),
        actions=rng.uniform(-1, 1, size=(n, 2)).astype(np.float32),
        next_observations=rng.normal(size=(n, 3)).astype(np.float32),
    )


@properties
@given(
    st.sampled_from(["obs", "act", "rew", "next_obs"]),
    st.floats(0.05, 1.0),
    st.floats(0.1, 3.0),
    seeds,
)
def test_riql_random_attack_keeps_rate_and_scale_and_leaves_other_rows_alone(
    target, rate, scale, seed
):
    t = large_random_transitions()
    before = copies(t)
    out, stats = attack_transitions(t, target, "random", rate, scale, seed)
    assert_unchanged(t, before)  # the input is never modified
    field = FIELD_OF[target]
    changed = np.any(
        np.atleast_2d(getattr(out, field).T).T != np.atleast_2d(getattr(t, field).T).T, axis=1
    )
    assert changed.sum() == stats.attacked
    # Each row is attacked with probability `rate`: 4,000 rows, well within 5 binomial stds.
    assert abs(stats.attacked - rate * len(t)) <= 5 * np.sqrt(len(t) * rate * (1 - rate)) + 1
    for name in ARRAY_FIELDS:  # every other array, and the unattacked rows, are unchanged
        if name != field:
            np.testing.assert_array_equal(getattr(out, name), getattr(t, name))
    np.testing.assert_array_equal(getattr(out, field)[~changed], getattr(t, field)[~changed])
    delta = getattr(out, field)[changed].astype(np.float64) - getattr(t, field)[changed]
    if target == "rew":  # replaced by U(−30·scale, 30·scale)
        assert np.all(np.abs(getattr(out, field)[changed]) <= 30 * scale + 1e-4)
    else:  # per-dimension noise within ±scale·std of that dimension
        std = getattr(t, field).astype(np.float64).std(axis=0)
        assert np.all(np.abs(delta) <= scale * std + 1e-4)
        if stats.attacked > 200:  # uniform noise: std of the draw is scale·std/√3
            np.testing.assert_allclose(delta.std(axis=0), scale * std / np.sqrt(3), rtol=0.25)
    again, _ = attack_transitions(t, target, "random", rate, scale, seed)
    np.testing.assert_array_equal(getattr(again, field), getattr(out, field))


def test_adversarial_reward_attack_negates_and_scales_the_attacked_rewards():
    t = large_random_transitions()
    out, stats = attack_transitions(t, "rew", "adversarial", 0.3, 2.0, seed=1)
    changed = out.rewards != t.rewards
    assert changed.sum() == stats.attacked > 0
    np.testing.assert_allclose(out.rewards[changed], -2.0 * t.rewards[changed], rtol=1e-6)


def test_adversarial_state_attacks_are_refused_with_the_reason():
    with pytest.raises(ValueError, match="need a trained critic"):
        CorruptionConfig(attack="obs", attack_mode="adversarial")


def test_an_attack_is_part_of_the_condition_and_its_stats():
    condition = CorruptionConfig("top", 30, 0.0, "act", "random", 0.2, 1.5)
    assert not condition.is_clean
    assert condition.name_part == "k30_noise0_act0.2x1.5"
    assert condition.label == (
        "top 30% removed, random act corruption (20% of transitions, scale 1.5)"
    )
    assert CorruptionConfig(attack="none", attack_rate=0.9) == CLEAN
    t = large_random_transitions()
    out, stats = corrupt(t, condition, seed=4)
    assert stats.attack is not None and stats.attack.target == "act"
    assert stats.attack.transitions == stats.transitions_after == len(out)
    assert json.loads(json.dumps(stats.to_dict()))["attack"]["attacked"] == stats.attack.attacked


@properties
@given(transition_arrays(max_trajectories=30), k_hundredths, seeds)
def test_random_removal_matched_on_transitions_removes_about_what_top_k_removes(t, k100, seed):
    _, top = remove_top_k(t, k100 / 100)
    out, stats = remove_random_k_transitions(t, k100 / 100, seed)
    removed = stats.transitions_before - stats.transitions_after
    target = top.transitions_before - top.transitions_after
    longest = int(split_trajectories(t).lengths.max())
    assert abs(removed - target) <= longest  # within one trajectory of top-k's count
    assert stats.trajectories_after >= 1 and stats.mode == "random_transitions"
    again, _ = remove_random_k_transitions(t, k100 / 100, seed)
    np.testing.assert_array_equal(again.observations, out.observations)


def test_the_two_random_controls_differ_when_the_best_trajectories_are_the_longest():
    # 10 long good trajectories and 30 short bad ones: removing the top 25% (10 trajectories)
    # drops 10 · 50 = 500 rows, matched on count a random 10 drop far fewer on average.
    lengths = [50] * 10 + [5] * 30
    rewards = np.concatenate([np.ones(50 * 10), np.zeros(5 * 30)]).astype(np.float32)
    t = build(lengths, ["timeout"] * 40, rewards)
    _, top = remove_top_k(t, 25)
    _, by_count = remove_random_k(t, 25, seed=0)
    _, by_rows = remove_random_k_transitions(t, 25, seed=0)
    assert top.transitions_before - top.transitions_after == 500
    assert by_count.trajectories_removed == 10
    assert abs((by_rows.transitions_before - by_rows.transitions_after) - 500) <= 50
    assert by_rows.trajectories_removed > 10
    assert CorruptionConfig("random_transitions", 25).name_part == "randtk25_noise0"
