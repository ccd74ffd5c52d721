"""A seed stack trains every seed exactly as that seed's own agent would."""

from __future__ import annotations

import pytest
import torch

from hybrid_rl.algos.registry import default_config, get_algorithm, make_agent
from hybrid_rl.algos.seed_stack import SeedStack, stackable
from hybrid_rl.batch import TransitionBatch

OBS_DIM, ACT_DIM, SEEDS = 5, 2, (0, 1, 2)


def _batch(generator: torch.Generator, rows: int = 32) -> TransitionBatch:
    return TransitionBatch(
        torch.randn(rows, OBS_DIM, generator=generator),
        torch.rand(rows, ACT_DIM, generator=generator) * 2 - 1,
        torch.randn(rows, generator=generator),
        torch.randn(rows, OBS_DIM, generator=generator),
        (torch.rand(rows, generator=generator) < 0.1).float(),
    )


def _config(algo: str):
    config = default_config(algo)
    if algo == "iql":
        config.max_steps = 10  # the actor lr decays within the test
    return config


def _seeded_agent(algo: str, seed: int):
    torch.manual_seed(seed)
    agent = make_agent(algo, OBS_DIM, ACT_DIM, _config(algo))
    agent.set_observation_statistics(torch.full((OBS_DIM,), 0.1 * seed), torch.ones(OBS_DIM))
    return agent


def _stack(algo: str) -> SeedStack:
    agents, generators = [], []
    for seed in SEEDS:
        agents.append(_seeded_agent(algo, seed))
        generators.append(torch.Generator().set_state(torch.get_rng_state()))
    return SeedStack(agents, make_agent(algo, OBS_DIM, ACT_DIM, _config(algo)), generators)


@pytest.mark.parametrize("algo", ["iql", "bc", "td3bc"])
def test_stacked_seeds_follow_their_separate_agents(algo):
    updates = 6
    streams = {seed: torch.Generator().manual_seed(100 + seed) for seed in SEEDS}
    batches = {seed: [_batch(streams[seed]) for _ in range(updates)] for seed in SEEDS}
    separate = {}
    for seed in SEEDS:
        agent = _seeded_agent(algo, seed)  # the global stream continues as in a run
        separate[seed] = ([agent.update(b) for b in batches[seed]], agent)
    stack = _stack(algo)
    stacked = [stack.update([batches[seed][u] for seed in SEEDS]) for u in range(updates)]
    obs = torch.randn(7, OBS_DIM)
    for i, seed in enumerate(SEEDS):
        expected, agent = separate[seed]
        for u in range(updates):
            assert expected[u].keys() == stacked[u][i].keys()
            for key, value in expected[u].items():
                torch.testing.assert_close(stacked[u][i][key], value, rtol=1e-4, atol=1e-5)
        own = agent.state_dict()
        got = stack.state_dict(i)
        assert got.keys() == own.keys()
        torch.testing.assert_close(got, own, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(
            stack.seed_agent(i).act(obs, True), agent.act(obs, True), rtol=1e-4, atol=1e-5
        )


def test_a_stack_reloaded_from_its_seeds_states_continues_the_same():
    stack = _stack("td3bc")
    generator = torch.Generator().manual_seed(5)
    for _ in range(3):
        stack.update([_batch(generator) for _ in SEEDS])
    states = [stack.state_dict(i) for i in range(len(SEEDS))]
    rng = [g.get_state() for g in stack.generators]
    clone = _stack("td3bc")
    clone.load_state_dicts(states)
    for g, state in zip(clone.generators, rng, strict=True):
        g.set_state(state)
    batches = [_batch(generator) for _ in SEEDS]
    expected, got = stack.update(batches), clone.update(batches)
    for e, g in zip(expected, got, strict=True):
        torch.testing.assert_close(g, e)


def test_cql_is_not_stackable():
    assert not stackable(get_algorithm("cql").agent_class)
    assert all(stackable(get_algorithm(a).agent_class) for a in ("iql", "bc", "td3bc"))
