"""Online CQL/IQL built from real Phase I checkpoints (tiny Hopper runs of train_offline)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from hybrid_rl.algos import online_cql, online_iql
from hybrid_rl.algos.registry import make_agent
from hybrid_rl.data.dataset import OfflineDataset
from hybrid_rl.data.loader import load_dataset
from hybrid_rl.train import TrainConfig

FROM_PHASE1 = {"cql": online_cql.from_phase1_checkpoint, "iql": online_iql.from_phase1_checkpoint}


@pytest.fixture(scope="module")
def hopper_data(phase1_runs) -> OfflineDataset:
    """The Phase I runs' (uncorrupted, unscaled) transitions, to draw real batches from."""
    return OfflineDataset(load_dataset(phase1_runs["cql"].dataset).transitions, seed=0)


def checkpoint_of(run: TrainConfig):
    return run.run_dir / "checkpoint.pt"


def phase1_agent(run: TrainConfig):
    state = torch.load(checkpoint_of(run), weights_only=False)["agent"]
    obs_dim = state["normalizer"]["mean"].shape[0]
    act_dim = state["critic"]["net.layers.0.weight"].shape[1] - obs_dim
    agent = make_agent(run.algo, obs_dim, act_dim, run.agent)
    agent.load_state_dict(state)
    return agent, state


def member_params(critic, member):
    return [p[member] for p in critic.parameters()]


def assert_same_params(first, second):
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))


@pytest.mark.parametrize("algo", ["cql", "iql"])
@pytest.mark.parametrize("n_ensemble", [3, 5])
def test_members_0_and_1_are_the_checkpoint_q1_q2_and_the_rest_are_fresh(
    phase1_runs, algo, n_ensemble
):
    run = phase1_runs[algo]
    old, _ = phase1_agent(run)
    torch.manual_seed(123)
    agent = FROM_PHASE1[algo](checkpoint_of(run), n_ensemble, run.agent)

    assert agent.critic.members == agent.critic_target.members == n_ensemble
    for member in (0, 1):
        assert_same_params(member_params(agent.critic, member), member_params(old.critic, member))
        assert_same_params(
            member_params(agent.critic_target, member), member_params(old.critic_target, member)
        )
    # The Phase I target really differs from the critic, so the two loads are told apart.
    assert not torch.equal(next(old.critic.parameters()), next(old.critic_target.parameters()))
    obs = torch.randn(16, old.normalizer.mean.shape[0])
    act = torch.rand(16, 3) * 2 - 1
    with torch.no_grad():
        q = agent.critic(obs, act)
        torch.testing.assert_close(q[:2], old.critic(obs, act), rtol=0, atol=0)
        for fresh in range(2, n_ensemble):
            assert not torch.equal(q[fresh], q[0]) and not torch.equal(q[fresh], q[1])
            for others in range(fresh + 1, n_ensemble):
                assert not torch.equal(q[fresh], q[others])
            # Each fresh member starts with its target equal to itself.
            assert_same_params(
                member_params(agent.critic_target, fresh), member_params(agent.critic, fresh)
            )


@pytest.mark.parametrize("algo", ["cql", "iql"])
def test_policy_and_normalizer_come_from_the_checkpoint(phase1_runs, algo):
    run = phase1_runs[algo]
    old, _ = phase1_agent(run)
    agent = FROM_PHASE1[algo](checkpoint_of(run), 3, run.agent)
    assert torch.equal(agent.normalizer.mean, old.normalizer.mean)
    assert not torch.equal(agent.normalizer.mean, torch.zeros_like(agent.normalizer.mean))
    obs = torch.randn(8, old.normalizer.mean.shape[0]) * 3
    torch.testing.assert_close(
        agent.act(obs, deterministic=True), old.act(obs, deterministic=True), rtol=0, atol=0
    )
    # Optimizers whose shapes did not change keep their Adam moments; the critic's is fresh.
    assert agent.actor_opt.state_dict()["state"][0]["step"] == run.total_steps
    assert agent.critic_opt.state_dict()["state"] == {}


def test_online_cql_switches_alpha_to_1_and_keeps_every_other_hyperparameter(
    phase1_runs, hopper_data
):
    run = phase1_runs["cql"]
    assert run.agent.cql_alpha == 5.0
    agent = online_cql.from_phase1_checkpoint(checkpoint_of(run), 4, run.agent)
    assert agent.config.cql_alpha == 1.0
    assert agent.config == dataclasses.replace(run.agent, cql_alpha=1.0, critic_members=4)
    _, state = phase1_agent(run)
    assert torch.equal(agent.log_alpha.detach(), state["log_alpha"])

    # The loss the update minimizes weighs the conservative term by 1.0: raising α to 5 on
    # the same batch and samples adds 4 × (sum over members of the penalty).
    torch.manual_seed(0)
    batch = hopper_data.sample(32)
    obs, next_obs = agent.normalizer(batch.observations), agent.normalizer(batch.next_observations)
    samples = agent.sample_actions(obs, next_obs)
    with torch.no_grad():
        loss_online, stats = agent.critic_loss(obs, next_obs, batch, samples)
        agent.config = dataclasses.replace(agent.config, cql_alpha=5.0)
        loss_offline, _ = agent.critic_loss(obs, next_obs, batch, samples)
    torch.testing.assert_close(
        loss_offline - loss_online, 4.0 * 4 * stats["cql_penalty"], rtol=1e-4, atol=1e-3
    )


def test_online_iql_keeps_its_hyperparameters_and_restarts_the_decayed_actor_lr(
    phase1_runs, hopper_data
):
    run = phase1_runs["iql"]
    _, state = phase1_agent(run)
    assert state["actor_opt"]["param_groups"][0]["lr"] == pytest.approx(0.0)  # cosine ended
    agent = online_iql.from_phase1_checkpoint(checkpoint_of(run), 3, run.agent)
    assert agent.config == dataclasses.replace(
        run.agent, actor_lr_cosine_decay=False, critic_members=3
    )
    assert agent.config.expectile == 0.7 and agent.config.temperature == 3.0
    assert agent.actor_opt.param_groups[0]["lr"] == 3e-4
    old_actor = [p.clone() for p in agent.actor.parameters()]
    for _ in range(run.total_steps + 1):  # past the Phase I max_steps: still no decay
        agent.update(hopper_data.sample(32))
    assert agent.actor_opt.param_groups[0]["lr"] == 3e-4
    assert not all(
        torch.equal(a, b) for a, b in zip(old_actor, agent.actor.parameters(), strict=True)
    )
    value_state = torch.load(checkpoint_of(run), weights_only=False)["agent"]["value"]
    fresh = online_iql.from_phase1_checkpoint(checkpoint_of(run), 3, run.agent)
    assert all(torch.equal(fresh.value.state_dict()[k], v) for k, v in value_state.items())


@pytest.mark.parametrize("algo", ["cql", "iql"])
def test_one_update_trains_every_member_including_the_fresh_ones(phase1_runs, hopper_data, algo):
    run = phase1_runs[algo]
    agent = FROM_PHASE1[algo](checkpoint_of(run), 3, run.agent)
    before = [p.clone() for p in agent.critic.parameters()]
    metrics = agent.update(hopper_data.sample(32))
    assert torch.isfinite(metrics["critic_loss"])
    for member in range(3):
        changed = [
            not torch.equal(a[member], b[member])
            for a, b in zip(before, agent.critic.parameters(), strict=True)
        ]
        assert all(changed)


def test_ensemble_sizes_outside_2_to_10_are_rejected(phase1_runs):
    run = phase1_runs["cql"]
    with pytest.raises(ValueError, match="2 to 10 members, got 11"):
        online_cql.from_phase1_checkpoint(checkpoint_of(run), 11, run.agent)
