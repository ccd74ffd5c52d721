import re

import numpy as np
import pytest
import torch

from hybrid_rl.algos.iql import reward_scale
from hybrid_rl.data.dataset import OfflineDataset
from hybrid_rl.data.transitions import TransitionArrays, split_trajectories

DEVICES = [
    "cpu",
    pytest.param(
        "cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA here")
    ),
]


def random_transitions(n=50, obs_dim=4, act_dim=2, seed=0, episode_length=7):
    rng = np.random.default_rng(seed)
    obs = rng.normal(3.0, 2.0, size=(n, obs_dim)).astype(np.float32)
    ends = np.arange(n) % episode_length == episode_length - 1
    return TransitionArrays(
        observations=obs,
        actions=rng.uniform(-1, 1, size=(n, act_dim)).astype(np.float32),
        rewards=rng.normal(size=n).astype(np.float32),
        next_observations=obs + rng.normal(size=(n, obs_dim)).astype(np.float32),
        terminals=ends & (np.arange(n) % 2 == 0),
        timeouts=ends & (np.arange(n) % 2 == 1),
    )


def trajectories_with_returns(returns, length=3):
    """One trajectory per return, each of `length` rows ending in a timeout."""
    n = len(returns) * length
    rewards = np.repeat(np.asarray(returns, dtype=np.float64) / length, length)
    t = random_transitions(n=n, episode_length=length)
    return TransitionArrays(
        observations=t.observations,
        actions=t.actions,
        rewards=rewards.astype(np.float32),
        next_observations=t.next_observations,
        terminals=np.zeros(n, dtype=bool),
        timeouts=np.arange(n) % length == length - 1,
    )


def assert_batches_equal(a, b):
    for x, y in zip(a, b, strict=True):
        torch.testing.assert_close(x, y, rtol=0, atol=0)


@pytest.mark.parametrize("device", DEVICES)
def test_sample_has_the_batch_shapes_dtypes_and_device(device):
    data = OfflineDataset(random_transitions(obs_dim=4, act_dim=2), device=device, seed=0)
    batch = data.sample(32)
    expected_shapes = [(32, 4), (32, 2), (32,), (32, 4), (32,)]
    for tensor, shape in zip(batch, expected_shapes, strict=True):
        assert tensor.shape == shape
        assert tensor.dtype == torch.float32
        assert tensor.device.type == torch.device(device).type
    assert len(batch) == 32
    assert (data.obs_dim, data.act_dim, len(data)) == (4, 2, 50)


def test_sample_is_one_index_draw_from_a_generator_seeded_with_the_seed():
    t = random_transitions()
    data = OfflineDataset(t, seed=11)
    generator = torch.Generator().manual_seed(11)
    for _ in range(3):
        idx = torch.randint(len(t), (16,), generator=generator).numpy()
        batch = data.sample(16)
        np.testing.assert_array_equal(batch.observations.numpy(), t.observations[idx])


def test_same_seed_gives_the_same_batches_and_another_seed_different_ones():
    t = random_transitions()
    a, b, c = (OfflineDataset(t, seed=s) for s in (5, 5, 6))
    for _ in range(3):
        batch_a, batch_b, batch_c = a.sample(64), b.sample(64), c.sample(64)
        assert_batches_equal(batch_a, batch_b)
        assert not torch.equal(batch_a.observations, batch_c.observations)


def test_every_sampled_row_is_a_whole_row_of_the_source():
    t = random_transitions(n=40)
    columns = [t.observations, t.actions, t.rewards[:, None], t.next_observations]
    source = np.concatenate([*columns, t.terminals[:, None].astype(np.float32)], axis=1)
    source_rows = {tuple(row.tolist()) for row in source}
    batch = OfflineDataset(t, seed=1).sample(500)
    sampled = torch.cat(
        [
            batch.observations,
            batch.actions,
            batch.rewards[:, None],
            batch.next_observations,
            batch.terminals[:, None],
        ],
        dim=1,
    )
    for row in sampled.numpy():
        assert tuple(row.tolist()) in source_rows


def test_rows_are_drawn_uniformly():
    t = random_transitions(n=10)
    data = OfflineDataset(t, seed=2)
    batch = data.sample(100_000)
    row_of_first_feature = {float(t.observations[i, 0]): i for i in range(len(t))}
    rows = [row_of_first_feature[float(v)] for v in batch.observations[:, 0]]
    counts = np.bincount(rows, minlength=10)
    # Binomial(1e5, 0.1) has std ≈ 95: every count lies within ±5% of 10,000.
    assert np.all(np.abs(counts - 10_000) < 500)


def test_terminals_are_float_and_only_true_terminations():
    t = random_transitions(n=28, episode_length=7)
    data = OfflineDataset(t)
    assert data.terminals.dtype == torch.float32
    np.testing.assert_array_equal(data.terminals.numpy(), t.terminals.astype(np.float32))
    assert data.terminals[t.timeouts].sum() == 0
    assert data.terminals.sum() == t.terminals.sum() > 0


def test_rewards_are_multiplied_by_the_reward_scale():
    t = random_transitions()
    data = OfflineDataset(t, reward_scale=2.5)
    expected = (t.rewards.astype(np.float64) * 2.5).astype(np.float32)
    np.testing.assert_array_equal(data.rewards.numpy(), expected)
    unscaled = OfflineDataset(t)
    np.testing.assert_array_equal(unscaled.rewards.numpy(), t.rewards)


def iql_reward_scale(t: TransitionArrays) -> float:
    """IQL's reward hook on the trajectories the training loop splits `t` into."""
    return reward_scale(split_trajectories(t).returns)


def test_iql_reward_scale_is_1000_over_the_return_range():
    t = trajectories_with_returns([10.0, -5.0, 25.0, 3.0])
    assert iql_reward_scale(t) == pytest.approx(1000.0 / 30.0, rel=1e-6)


def test_iql_reward_scale_splits_on_flags_not_on_a_stride():
    # Two trajectories of lengths 2 and 5 returning 2·1 and 5·3: range 13.
    rewards = np.array([1, 1, 3, 3, 3, 3, 3], dtype=np.float32)
    t = random_transitions(n=7)
    t = TransitionArrays(
        observations=t.observations,
        actions=t.actions,
        rewards=rewards,
        next_observations=t.next_observations,
        terminals=np.array([0, 1, 0, 0, 0, 0, 0], dtype=bool),
        timeouts=np.zeros(7, dtype=bool),
    )
    assert iql_reward_scale(t) == pytest.approx(1000.0 / 13.0, rel=1e-6)


def test_iql_reward_scale_rejects_equal_returns():
    with pytest.raises(ValueError, match=r"all 3 trajectories return 6\.0"):
        iql_reward_scale(trajectories_with_returns([6.0, 6.0, 6.0]))
    with pytest.raises(ValueError, match="all 1 trajectories"):
        iql_reward_scale(trajectories_with_returns([4.0]))


def test_observation_statistics_equal_numpys():
    t = random_transitions(n=200)
    t.observations[:, 1] = 7.0  # a constant feature: std exactly 0, no epsilon added
    data = OfflineDataset(t)
    np.testing.assert_allclose(data.observation_mean.numpy(), t.observations.mean(axis=0), 1e-6)
    np.testing.assert_allclose(data.observation_std.numpy(), t.observations.std(axis=0), 1e-6)
    assert data.observation_std[1].item() == 0.0
    assert data.observation_mean.dtype == data.observation_std.dtype == torch.float32


def test_resuming_the_generator_state_continues_the_stream(tmp_path):
    t = random_transitions()
    original = OfflineDataset(t, seed=3)
    for _ in range(4):
        original.sample(8)
    path = tmp_path / "sampler.pt"
    torch.save(original.state_dict(), path)
    expected = [original.sample(8) for _ in range(3)]

    resumed = OfflineDataset(t, seed=99)
    resumed.load_state_dict(torch.load(path))
    for batch in expected:
        assert_batches_equal(resumed.sample(8), batch)


def test_loading_a_state_of_another_dataset_size_is_rejected():
    state = OfflineDataset(random_transitions(n=50)).state_dict()
    with pytest.raises(ValueError, match="dataset of 50 transitions, but this one has 30"):
        OfflineDataset(random_transitions(n=30)).load_state_dict(state)


def test_the_dataset_holds_copies_of_the_source_arrays():
    t = random_transitions()
    data = OfflineDataset(t)
    first = float(t.observations[0, 0])
    t.observations[0, 0] = 1e6
    assert data.observations[0, 0].item() == first


@pytest.mark.parametrize("scale", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_reward_scale_is_rejected(scale):
    expected = re.escape(f"reward_scale must be finite and > 0, got {scale}")
    with pytest.raises(ValueError, match=expected):
        OfflineDataset(random_transitions(), reward_scale=scale)


def test_empty_data_and_empty_batches_are_rejected():
    with pytest.raises(ValueError, match="zero transitions"):
        OfflineDataset(random_transitions(n=0))
    with pytest.raises(ValueError, match="batch_size must be positive, got 0"):
        OfflineDataset(random_transitions()).sample(0)
