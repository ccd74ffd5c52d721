"""Helpers shared by the algorithm tests: synthetic batches and plain per-member network math."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import Tensor

from hybrid_rl.algos.networks import EnsembleMLP
from hybrid_rl.batch import TransitionBatch


def _random_batch(
    batch_size: int, obs_dim: int, act_dim: int, generator: torch.Generator
) -> TransitionBatch:
    """Random transitions with actions in (−1, 1) and about a quarter of them terminal."""
    return TransitionBatch(
        observations=torch.randn(batch_size, obs_dim, generator=generator),
        actions=torch.rand(batch_size, act_dim, generator=generator) * 1.8 - 0.9,
        rewards=torch.randn(batch_size, generator=generator),
        next_observations=torch.randn(batch_size, obs_dim, generator=generator),
        terminals=(torch.rand(batch_size, generator=generator) < 0.25).float(),
    )


def _behaviour_dataset(
    size: int, obs_dim: int, act_dim: int, generator: torch.Generator
) -> TransitionBatch:
    """A fixed deterministic policy a = tanh(s·W) in linear dynamics s' = 0.5·s·D, reward s[0].

    Every quantity is a function of s, so values and the policy can be fitted quickly.
    """
    observations = torch.randn(size, obs_dim, generator=generator)
    policy = torch.randn(obs_dim, act_dim, generator=generator)
    dynamics = 0.5 * torch.randn(obs_dim, obs_dim, generator=generator)
    return TransitionBatch(
        observations=observations,
        actions=torch.tanh(observations @ policy),
        rewards=observations[:, 0].clone(),
        next_observations=observations @ dynamics,
        terminals=(torch.rand(size, generator=generator) < 0.25).float(),
    )


def _member_mlp(net: EnsembleMLP, member: int, x: Tensor) -> Tensor:
    """Member `member` of `net` on rows x [B, in], one plain matmul per layer: [B, out]."""
    for i, layer in enumerate(net.layers):
        x = x @ layer.weight[member] + layer.bias[member, 0]
        if i < len(net.layers) - 1:
            x = torch.relu(x)
    return x


@pytest.fixture
def random_batch() -> Callable[[int, int, int, torch.Generator], TransitionBatch]:
    return _random_batch


@pytest.fixture
def behaviour_dataset() -> Callable[[int, int, int, torch.Generator], TransitionBatch]:
    return _behaviour_dataset


@pytest.fixture
def member_mlp() -> Callable[[EnsembleMLP, int, Tensor], Tensor]:
    return _member_mlp
