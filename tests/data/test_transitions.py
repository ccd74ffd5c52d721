import numpy as np

from hybrid_rl.data.transitions import TransitionArrays, split_trajectories


def make_transitions(rewards, terminals, timeouts, obs_dim=2, act_dim=1):
    n = len(rewards)
    obs = np.arange(n * obs_dim, dtype=np.float32).reshape(n, obs_dim)
    return TransitionArrays(
        observations=obs,
        actions=np.zeros((n, act_dim), dtype=np.float32),
        rewards=np.asarray(rewards, dtype=np.float32),
        next_observations=obs + 1,
        terminals=np.asarray(terminals, dtype=bool),
        timeouts=np.asarray(timeouts, dtype=bool),
    )


def flags_at(n, rows):
    flags = np.zeros(n, dtype=bool)
    flags[list(rows)] = True
    return flags


def test_a_terminal_ends_a_trajectory_on_its_row():
    t = make_transitions([1, 2, 3, 4, 5], flags_at(5, [1, 4]), flags_at(5, []))
    trajs = split_trajectories(t)
    assert trajs.starts.tolist() == [0, 2]
    assert trajs.ends.tolist() == [2, 5]
    assert trajs.returns.tolist() == [3.0, 12.0]


def test_a_timeout_ends_a_trajectory_like_a_terminal():
    t = make_transitions([1, 2, 3, 4], flags_at(4, []), flags_at(4, [0, 3]))
    trajs = split_trajectories(t)
    assert trajs.starts.tolist() == [0, 1]
    assert trajs.ends.tolist() == [1, 4]
    assert trajs.returns.tolist() == [1.0, 9.0]


def test_an_unterminated_tail_is_its_own_last_trajectory():
    t = make_transitions([1, 1, 1, 1, 1, 1], flags_at(6, [1]), flags_at(6, [3]))
    trajs = split_trajectories(t)
    assert trajs.starts.tolist() == [0, 2, 4]
    assert trajs.ends.tolist() == [2, 4, 6]
    assert trajs.lengths.tolist() == [2, 2, 2]


def test_trajectories_are_never_split_on_a_fixed_stride():
    # 7 rows ending in a terminal, then 1003 rows ending in a timeout: nothing happens at row
    # 1000 or 1007 even though D4RL's episode cap is 1000.
    n = 7 + 1003
    t = make_transitions(np.ones(n), flags_at(n, [6]), flags_at(n, [n - 1]))
    trajs = split_trajectories(t)
    assert trajs.lengths.tolist() == [7, 1003]
    assert trajs.returns.tolist() == [7.0, 1003.0]


def test_returns_are_summed_in_float64():
    # 2**24 + 1 is not representable in float32: a float32 sum would lose the last 1.
    rewards = np.array([2.0**24, 1.0], dtype=np.float32)
    t = make_transitions(rewards, [False, True], [False, False])
    assert split_trajectories(t).returns.tolist() == [2.0**24 + 1]


def test_rows_of_lists_the_rows_of_chosen_trajectories_in_order():
    t = make_transitions(np.ones(6), flags_at(6, [1, 2]), flags_at(6, []))
    trajs = split_trajectories(t)
    assert trajs.rows_of(np.array([2, 0])).tolist() == [0, 1, 3, 4, 5]
    assert trajs.rows_of(np.array([], dtype=np.int64)).tolist() == []


def test_an_empty_dataset_has_no_trajectories():
    t = make_transitions([], [], [])
    assert len(split_trajectories(t)) == 0


def test_take_copies_rows_and_leaves_the_source_untouched():
    t = make_transitions([1, 2, 3], [False, False, True], [False] * 3)
    taken = t.take(np.array([2, 0]))
    taken.rewards[0] = 100.0
    assert t.rewards.tolist() == [1.0, 2.0, 3.0]
    assert taken.observations.tolist() == [[4.0, 5.0], [0.0, 1.0]]
