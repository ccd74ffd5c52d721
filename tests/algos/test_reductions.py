"""Each reduction over critic members against a hand computation, and the agents using them."""

from __future__ import annotations

import math

import pytest
import torch

from hybrid_rl.algos.cql import CQL, CQLConfig
from hybrid_rl.algos.iql import IQL, IQLConfig
from hybrid_rl.algos.reductions import Reduction
from hybrid_rl.algos.td3bc import TD3BC, TD3BCConfig

# Q of 4 members (rows) at 3 states (columns), chosen so every reduction gives other values.
Q = torch.tensor(
    [
        [10.0, 1.0, 5.0],
        [12.0, 3.0, 4.0],
        [0.0, 9.0, 6.0],
        [2.0, 7.0, 8.0],
    ]
)


def by_hand(kind: str, column: list[float], loaded: int, parameter: float = 0.0) -> float:
    if kind == "min_all":
        return min(column)
    if kind == "min_loaded":
        return min(column[:loaded])
    mean = sum(column) / len(column)
    if kind == "mean":
        return mean
    std = math.sqrt(sum((q - mean) ** 2 for q in column) / (len(column) - 1))
    return mean - parameter * std


@pytest.mark.parametrize(
    ("text", "kind", "parameter"),
    [
        ("min_all", "min_all", 0.0),
        ("min_loaded", "min_loaded", 0.0),
        ("mean", "mean", 0.0),
        ("mean_minus_std:0.5", "mean_minus_std", 0.5),
        ("mean_minus_std:2", "mean_minus_std", 2.0),
    ],
)
def test_deterministic_reductions_match_a_hand_computation(text, kind, parameter):
    reduction = Reduction.parse(text)
    assert (reduction.kind, reduction.parameter) == (kind, parameter)
    got = reduction(Q, loaded_members=2)
    expected = [by_hand(kind, Q[:, b].tolist(), 2, parameter) for b in range(Q.shape[1])]
    torch.testing.assert_close(got, torch.tensor(expected))
    assert Reduction.parse(reduction.text) == reduction


def test_min_loaded_reads_only_the_loaded_members():
    # Members 0-1 loaded: [10, 1, 4]; with 3 loaded the random member 2 joins: [0, 1, 4].
    torch.testing.assert_close(Reduction.parse("min_loaded")(Q, 2), torch.tensor([10.0, 1, 4]))
    torch.testing.assert_close(Reduction.parse("min_loaded")(Q, 3), torch.tensor([0.0, 1, 4]))


def test_redq_takes_the_min_over_a_random_subset_drawn_from_the_global_generator():
    reduction = Reduction.parse("redq:2")
    for seed in range(20):
        torch.manual_seed(seed)
        chosen = torch.randperm(4)[:2].tolist()
        torch.manual_seed(seed)
        got = reduction(Q, loaded_members=2)
        expected = [min(Q[m, b].item() for m in chosen) for b in range(3)]
        torch.testing.assert_close(got, torch.tensor(expected))
    # Over draws, several different pairs are used (not always the same two members).
    torch.manual_seed(0)
    seen = {tuple(reduction(Q, 2).tolist()) for _ in range(50)}
    assert len(seen) >= 4


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("max", "unknown reduction"),
        ("redq", "redq:M"),
        ("redq:1", "integer M ≥ 2"),
        ("redq:2.5", "integer M ≥ 2"),
        ("mean_minus_std:-1", "β must be finite"),
        ("mean_minus_std:x", "not a number"),
        ("mean:2", "malformed"),
    ],
)
def test_malformed_reductions_are_refused_naming_the_forms(text, message):
    with pytest.raises(ValueError, match=message):
        Reduction.parse(text)


def test_redq_cannot_draw_more_members_than_the_critic_has():
    with pytest.raises(ValueError, match="at most 3"):
        Reduction.parse("redq:4").check_members(3)


@pytest.mark.parametrize(
    ("agent_class", "config_class"), [(CQL, CQLConfig), (IQL, IQLConfig), (TD3BC, TD3BCConfig)]
)
def test_agents_use_the_configured_target_reduction(agent_class, config_class):
    config = config_class(critic_members=3, target_reduce="mean", actor_reduce="min_loaded")
    agent = agent_class(5, 2, config)
    assert agent.target_reduction == Reduction("mean")
    assert agent.actor_reduction == Reduction("min_loaded")
    default = agent_class(5, 2, config_class(critic_members=3))
    assert default.target_reduction == Reduction("min_all")


def test_iql_advantage_follows_the_actor_reduction_and_v_the_target_reduction():
    torch.manual_seed(0)
    agent = IQL(4, 2, IQLConfig(critic_members=3, target_reduce="min_all", actor_reduce="mean"))
    obs, actions = torch.randn(8, 4), torch.rand(8, 2) * 2 - 1
    with torch.no_grad():
        q = agent.critic_target(obs, actions)
        value = agent.value(obs)
    _, advantage = agent.value_loss(obs, actions)
    torch.testing.assert_close(advantage, q.mean(0) - value)
    spec = IQL(4, 2, IQLConfig(critic_members=3))
    spec.critic_target.load_state_dict(agent.critic_target.state_dict())
    spec.value.load_state_dict(agent.value.state_dict())
    _, spec_advantage = spec.value_loss(obs, actions)
    torch.testing.assert_close(spec_advantage, q.min(0).values - value)
