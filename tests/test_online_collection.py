"""The online share of a hybrid batch (issue 31): const (the spec), rising linearly from 0,
or uniform over the dataset's and the buffer's rows together."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hybrid_rl.data.dataset import OfflineDataset
from hybrid_rl.data.replay_buffer import ReplayBuffer
from hybrid_rl.data.transitions import TransitionArrays
from hybrid_rl.finetune_config import FinetuneConfig
from hybrid_rl.online_collection import HybridSampler, OnlineShare, parse_online_share
from hybrid_rl.phase2_options import Phase2Options

OBS_DIM, ACT_DIM = 3, 2


def offline_rows(n: int) -> OfflineDataset:
    """n dataset rows whose observations are all −1 (online rows are +1)."""
    arrays = TransitionArrays(
        observations=-np.ones((n, OBS_DIM), np.float32),
        actions=np.zeros((n, ACT_DIM), np.float32),
        rewards=np.arange(n, dtype=np.float32),
        next_observations=-np.ones((n, OBS_DIM), np.float32),
        terminals=np.zeros(n, bool),
        timeouts=np.zeros(n, bool),
    )
    return OfflineDataset(arrays, "cpu", seed=0)


def online_buffer(n: int, capacity: int = 1000) -> ReplayBuffer:
    buffer = ReplayBuffer(capacity, OBS_DIM, ACT_DIM)
    buffer.add(
        np.ones((n, OBS_DIM)),
        np.zeros((n, ACT_DIM)),
        np.zeros(n),
        np.ones((n, OBS_DIM)),
        np.zeros(n, bool),
        np.zeros(n, bool),
    )
    return buffer


def online_count(batch) -> int:
    return int((batch.observations[:, 0] > 0).sum())


def test_online_share_forms_parse_and_bad_ones_are_refused():
    assert parse_online_share("const") is None
    assert parse_online_share("uniform") is None
    assert parse_online_share("linear:5000") == 5000
    for bad in ("linear:0", "linear", "linear:x", "uniform:3", "rising"):
        with pytest.raises(ValueError, match="const, uniform or linear:T"):
            parse_online_share(bad)
    with pytest.raises(ValueError, match="online_share: expected"):
        FinetuneConfig(options=Phase2Options(online_share="linear:0"))


def test_const_share_is_the_spec_sampler_unchanged():
    dataset, buffer = offline_rows(500), online_buffer(40)
    spec = HybridSampler(dataset, buffer, 64, 32, seed=3)
    const = HybridSampler(offline_rows(500), buffer, 64, 32, seed=3, share=OnlineShare("const", 32))
    for _ in range(3):
        a, b = spec.sample(), const.sample()
        assert online_count(a) == online_count(b) == 32
        assert torch.equal(a.observations, b.observations) and torch.equal(a.rewards, b.rewards)


def test_linear_share_rises_from_zero_to_the_online_ratio_over_t_collected_steps():
    share = OnlineShare("linear:1000", online_rows=128)
    generator = torch.Generator()
    rows = [share.rows(256, n, 10_000, generator) for n in (0, 1, 250, 500, 1000, 5000)]
    assert rows == [0, 0, 32, 64, 128, 128]  # 128 · min(1, n/1000), rounded half up
    dataset = offline_rows(500)
    for collected, expected in ((100, 13), (1000, 128)):  # round(128 · 0.1) = 13
        sampler = HybridSampler(
            dataset, online_buffer(collected, capacity=2000), 256, 128, seed=1, share=share
        )
        batch = sampler.sample()
        assert len(batch) == 256 and online_count(batch) == expected
        assert (sampler.online_rows, sampler.offline_rows) == (expected, 256 - expected)
        # Online rows first, as the loop's slicing expects.
        assert (batch.observations[:expected, 0] > 0).all()
        assert (batch.observations[expected:, 0] < 0).all()


def test_uniform_share_draws_rows_in_proportion_to_the_two_stores():
    dataset = offline_rows(3000)
    sampler = HybridSampler(
        dataset, online_buffer(1000), 256, 128, seed=7, share=OnlineShare("uniform", 128)
    )
    counts = []
    for _ in range(200):
        batch = sampler.sample()
        counts.append(online_count(batch))
        assert sampler.online_rows == counts[-1] and len(batch) == 256
    # 1000 of 4000 rows are online: a quarter of each batch on average (the binomial's std
    # of the mean over 200 batches is 0.49 rows), and batches vary.
    assert abs(np.mean(counts) - 64) < 2.5
    assert len(set(counts)) > 5
    # With no online rows yet, every row is a dataset row.
    empty = HybridSampler(
        dataset, online_buffer(0), 256, 128, seed=7, share=OnlineShare("uniform", 128)
    )
    assert empty.share is not None and empty.share.rows(256, 0, 3000, torch.Generator()) == 0


def test_a_uniform_sampler_resumes_its_batch_sizes_from_its_state():
    buffer = online_buffer(300)
    first = HybridSampler(
        offline_rows(900), buffer, 64, 32, seed=2, share=OnlineShare("uniform", 32)
    )
    first.sample()
    state = first.state_dict()
    expected = [online_count(first.sample()) for _ in range(5)]
    second = HybridSampler(
        offline_rows(900), buffer, 64, 32, seed=99, share=OnlineShare("uniform", 32)
    )
    second.load_state_dict(state)
    assert [online_count(second.sample()) for _ in range(5)] == expected


def test_online_share_names_its_runs():
    assert FinetuneConfig(options=Phase2Options(online_share="uniform")).variant == "shuni"
    assert FinetuneConfig(options=Phase2Options(online_share="linear:5000")).variant == "shlin5000"
    assert FinetuneConfig(options=Phase2Options(online_share="const")).variant == ""
