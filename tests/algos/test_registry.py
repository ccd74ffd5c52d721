import numpy as np
import pytest
import torch

from hybrid_rl.algos.bc import BC, BCConfig
from hybrid_rl.algos.cql import CQL, CQLConfig
from hybrid_rl.algos.iql import IQL, IQLConfig
from hybrid_rl.algos.registry import (
    ALGORITHMS,
    PHASE2_ALGORITHMS,
    default_config,
    get_algorithm,
    make_agent,
)
from hybrid_rl.algos.td3bc import TD3BC


@pytest.mark.parametrize(
    ("name", "agent_class"), [("cql", CQL), ("iql", IQL), ("bc", BC), ("td3bc", TD3BC)]
)
def test_make_agent_builds_the_named_algorithm_with_default_config(name, agent_class):
    agent = make_agent(name, obs_dim=5, act_dim=2)
    assert isinstance(agent, agent_class)
    assert agent.config == default_config(name)
    actions = agent.act(torch.randn(7, 5), deterministic=True)
    assert actions.shape == (7, 2)


def test_make_agent_uses_the_given_config():
    agent = make_agent("cql", 5, 2, CQLConfig(cql_alpha=1.0))
    assert isinstance(agent, CQL)
    assert agent.config.cql_alpha == 1.0


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(KeyError, match=r"'td3'.*cql, iql, bc, td3bc"):
        make_agent("td3", 5, 2)
    assert tuple(ALGORITHMS) == ("cql", "iql", "bc", "td3bc")


def test_phase2_fine_tunes_every_algorithm_with_a_critic():
    assert PHASE2_ALGORITHMS == ("cql", "iql", "td3bc")


def test_budget_and_reward_hooks_are_the_algorithms_own():
    returns = np.array([10.0, -5.0, 25.0])
    assert get_algorithm("iql").reward_scale(returns) == pytest.approx(1000.0 / 30.0)
    assert get_algorithm("cql").reward_scale(returns) == 1.0
    iql = get_algorithm("iql").for_budget(IQLConfig(), 80_000)
    assert (iql.max_steps, iql.compile) == (80_000, True)
    cql = CQLConfig()
    assert get_algorithm("cql").for_budget(cql, 80_000) is cql


def test_config_of_another_algorithm_is_rejected():
    with pytest.raises(TypeError, match=r"IQLConfig.*CQLConfig"):
        make_agent("iql", 5, 2, CQLConfig())


def test_defaults_are_design_section_5():
    cql = default_config("cql")
    assert isinstance(cql, CQLConfig)
    assert (cql.critic_lr, cql.actor_lr, cql.gamma, cql.tau, cql.batch_size) == (
        3e-4,
        1e-4,
        0.99,
        0.005,
        256,
    )
    assert (cql.cql_alpha, cql.num_sampled_actions) == (5.0, 10)
    iql = default_config("iql")
    assert isinstance(iql, IQLConfig)
    assert (iql.critic_lr, iql.value_lr, iql.actor_lr) == (3e-4, 3e-4, 3e-4)
    assert (iql.expectile, iql.temperature, iql.max_weight) == (0.7, 3.0, 100.0)
    assert (iql.gamma, iql.tau, iql.batch_size, iql.max_steps) == (0.99, 0.005, 256, 500_000)
    bc = default_config("bc")
    assert isinstance(bc, BCConfig)
    assert (bc.lr, bc.batch_size) == (3e-4, 256)
