import dataclasses
import io

import pytest
import torch

from hybrid_rl.algos.td3bc import TD3BC, TD3BCConfig, from_phase1_checkpoint, online_td3bc_config
from hybrid_rl.batch import TransitionBatch

OBS_DIM, ACT_DIM, BATCH = 3, 2, 4
ACTOR_METRICS = {"actor_loss", "bc_loss", "q_lambda"}


def save_and_load(state):
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def plain_q(critic, member_mlp, member, obs, act):
    return member_mlp(critic.net, member, torch.cat([obs, act], dim=-1))[:, 0]


def plain_policy(actor, member_mlp, obs):
    return torch.tanh(member_mlp(actor.net, 0, obs))


def make_agent(**overrides):
    torch.manual_seed(0)
    agent = TD3BC(OBS_DIM, ACT_DIM, TD3BCConfig(**overrides))
    # Targets that differ from the online networks, so a loss cannot mix them up unnoticed.
    with torch.no_grad():
        for p in [*agent.critic_target.parameters(), *agent.actor_target.parameters()]:
            p.add_(0.05 * torch.randn_like(p))
    return agent


def params(module):
    return [p.detach().clone() for p in module.parameters()]


def same(first, second):
    return all(torch.equal(a, b) for a, b in zip(first, second, strict=True))


def test_defaults_are_the_papers():
    config = TD3BCConfig()
    assert (config.actor_lr, config.critic_lr, config.gamma, config.tau) == (
        3e-4,
        3e-4,
        0.99,
        0.005,
    )
    assert (config.batch_size, config.alpha) == (256, 2.5)
    assert (config.policy_noise, config.noise_clip, config.policy_delay) == (0.2, 0.5, 2)
    assert (config.exploration_noise, config.critic_members) == (0.1, 2)


def test_policy_delay_below_1_is_rejected():
    with pytest.raises(ValueError, match=r"policy_delay must be at least 1.*got 0"):
        TD3BC(OBS_DIM, ACT_DIM, TD3BCConfig(policy_delay=0))


@pytest.mark.parametrize("members", [2, 3])
def test_critic_target_is_min_target_q_at_the_smoothed_clipped_target_action(
    random_batch, member_mlp, members
):
    agent = make_agent(critic_members=members)
    with torch.no_grad():
        # π_target(s') near +1 in dim 0 and −1 in dim 1, so the clip to [−1, 1] has work to do.
        agent.actor_target.net.layers[-1].bias.add_(torch.tensor([3.0, -3.0]))
    batch = random_batch(BATCH, OBS_DIM, ACT_DIM, torch.Generator().manual_seed(1))
    batch = TransitionBatch(*batch[:4], terminals=torch.tensor([0.0, 1.0, 0.0, 1.0]))
    noise = 0.2 * torch.randn(BATCH, ACT_DIM, generator=torch.Generator().manual_seed(2))
    noise[0] = torch.tensor([3.0, -3.0])  # beyond the noise clip 0.5 in both directions
    noise[2] = torch.tensor([-0.7, 0.7])  # clipped to ∓0.5, which moves the action inward

    loss, q = agent.critic_loss(batch.observations, batch.next_observations, batch, noise)
    loss.backward()
    grads = [p.grad.clone() for p in agent.critic.parameters()]
    agent.critic.zero_grad()

    s, a, s2 = batch.observations, batch.actions, batch.next_observations
    with torch.no_grad():
        policy = plain_policy(agent.actor_target, member_mlp, s2)
        target_actions = torch.tensor(
            [
                [
                    max(
                        -1.0,
                        min(1.0, policy[i, j].item() + max(-0.5, min(0.5, noise[i, j].item()))),
                    )
                    for j in range(ACT_DIM)
                ]
                for i in range(BATCH)
            ]
        )
        # Both clips bite on this batch: the test would notice either one missing.
        assert (policy + noise.clamp(-0.5, 0.5)).abs().max() > 1.0
        assert not torch.allclose((policy + noise).clamp(-1, 1), target_actions)
        next_q = [
            plain_q(agent.critic_target, member_mlp, m, s2, target_actions) for m in range(members)
        ]
        targets = [
            batch.rewards[i].item()
            + (0.0 if i in (1, 3) else 0.99 * min(q_m[i].item() for q_m in next_q))
            for i in range(BATCH)
        ]
    expected = torch.zeros(())
    for m in range(members):
        q_m = plain_q(agent.critic, member_mlp, m, s, a)
        expected = expected + sum((q_m[i] - targets[i]) ** 2 for i in range(BATCH)) / BATCH
    expected.backward()

    torch.testing.assert_close(loss.detach(), expected.detach())
    assert q.shape == (members, BATCH) and not q.requires_grad
    for got, p in zip(grads, agent.critic.parameters(), strict=True):
        torch.testing.assert_close(got, p.grad, rtol=1e-4, atol=1e-5)


def test_update_draws_smoothing_noise_with_std_policy_noise(random_batch):
    batch = random_batch(BATCH, OBS_DIM, ACT_DIM, torch.Generator().manual_seed(3))
    for policy_noise in (0.2, 0.7):
        agent = make_agent(policy_noise=policy_noise)
        with torch.no_grad():
            torch.manual_seed(7)
            noise = policy_noise * torch.randn(BATCH, ACT_DIM)
            expected, _ = agent.critic_loss(
                batch.observations, batch.next_observations, batch, noise
            )
            other, _ = agent.critic_loss(
                batch.observations, batch.next_observations, batch, noise * 0.5
            )
        assert not torch.allclose(expected, other)  # the noise matters on this batch
        torch.manual_seed(7)
        metrics = agent.update(batch)
        torch.testing.assert_close(metrics["critic_loss"], expected)


def test_actor_loss_is_lambda_weighted_q0_plus_mse_to_dataset_actions(random_batch, member_mlp):
    agent = make_agent(alpha=2.5)
    with torch.no_grad():
        # Member 1 well below member 0, so an actor on min Q (or on Q_1) would be told apart.
        agent.critic.net.layers[-1].bias[1].sub_(5.0)
        agent.critic.net.layers[-1].bias[0].add_(1.5)
    batch = random_batch(BATCH, OBS_DIM, ACT_DIM, torch.Generator().manual_seed(4))
    s, a = batch.observations, batch.actions
    agent.critic.requires_grad_(False)
    loss, bc_loss, q_lambda = agent.actor_loss(s, a)
    loss.backward()
    grads = [p.grad.clone() for p in agent.actor.parameters()]
    agent.actor.zero_grad()

    policy = plain_policy(agent.actor, member_mlp, s)
    q0 = plain_q(agent.critic, member_mlp, 0, s, policy)
    expected_lambda = 2.5 / q0.abs().mean().detach()
    expected_bc = ((policy - a) ** 2).sum() / (BATCH * ACT_DIM)
    expected = -expected_lambda * q0.mean() + expected_bc
    expected.backward()  # λ is a constant: its gradient must not reach the actor

    torch.testing.assert_close(q_lambda, expected_lambda)
    torch.testing.assert_close(bc_loss, expected_bc.detach())
    torch.testing.assert_close(loss.detach(), expected.detach())
    assert not bc_loss.requires_grad and not q_lambda.requires_grad
    for got, p in zip(grads, agent.actor.parameters(), strict=True):
        torch.testing.assert_close(got, p.grad, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("policy_delay", [2, 3])
def test_actor_and_targets_move_only_every_policy_delay_updates(random_batch, policy_delay):
    agent = make_agent(policy_delay=policy_delay)
    generator = torch.Generator().manual_seed(5)
    for step in range(1, 3 * policy_delay + 1):
        before = {
            name: params(getattr(agent, name))
            for name in ("actor", "actor_target", "critic", "critic_target")
        }
        metrics = agent.update(random_batch(16, OBS_DIM, ACT_DIM, generator))
        actor_step = step % policy_delay == 0
        for name in ("actor", "actor_target", "critic_target"):
            assert same(before[name], params(getattr(agent, name))) != actor_step, (step, name)
        assert not same(before["critic"], params(agent.critic)), step
        expected_keys = {"critic_loss", "q_data_mean", "q_data_std"}
        assert set(metrics) == (expected_keys | ACTOR_METRICS if actor_step else expected_keys)


def test_deterministic_actions_are_the_tanh_policy_of_normalized_observations(member_mlp):
    agent = make_agent()
    mean, std = torch.tensor([1.0, -2.0, 3.0]), torch.tensor([0.5, 2.0, 4.0])
    agent.set_observation_statistics(mean, std)
    obs = torch.randn(10, OBS_DIM) * 100
    actions = agent.act(obs, deterministic=True)
    with torch.no_grad():
        expected = plain_policy(agent.actor, member_mlp, (obs - mean) / (std + 1e-3))
    assert actions.shape == (10, ACT_DIM) and actions.abs().max() <= 1.0
    torch.testing.assert_close(actions, expected)


@pytest.mark.parametrize("exploration_noise", [0.1, 0.3])
def test_exploration_adds_gaussian_noise_of_the_configured_std(exploration_noise):
    agent = make_agent(exploration_noise=exploration_noise)
    with torch.no_grad():  # π(s) = 0 everywhere: the clip at ±1 is 3σ or more away
        agent.actor.net.layers[-1].weight.zero_()
        agent.actor.net.layers[-1].bias.zero_()
    torch.manual_seed(0)
    noise = agent.act(torch.randn(50_000, OBS_DIM), deterministic=False)
    assert abs(noise.mean().item()) < 0.005
    assert noise.std().item() == pytest.approx(exploration_noise, rel=0.02)
    # Per-dim, independent draws: no two action dims share their noise.
    assert abs(torch.corrcoef(noise.T)[0, 1].item()) < 0.02


def test_exploratory_actions_are_clipped_to_the_action_box():
    agent = make_agent(exploration_noise=0.3)
    with torch.no_grad():
        agent.actor.net.layers[-1].bias.add_(torch.tensor([5.0, -5.0]))
    torch.manual_seed(0)
    actions = agent.act(torch.randn(1_000, OBS_DIM), deterministic=False)
    assert actions.abs().max() <= 1.0
    assert (actions[:, 0] == 1.0).any() and (actions[:, 1] == -1.0).any()


def test_checkpoint_round_trip_keeps_normalization_and_training_state(random_batch):
    agent = make_agent()
    agent.set_observation_statistics(torch.tensor([1.0, -2.0, 3.0]), torch.tensor([0.5, 2.0, 4.0]))
    generator = torch.Generator().manual_seed(0)
    for _ in range(3):
        agent.update(random_batch(16, OBS_DIM, ACT_DIM, generator))

    clone = TD3BC(OBS_DIM, ACT_DIM, TD3BCConfig())
    clone.load_state_dict(save_and_load(agent.state_dict()))
    obs, act = torch.randn(8, OBS_DIM) * 3, torch.rand(8, ACT_DIM) * 2 - 1
    torch.testing.assert_close(clone.act(obs, True), agent.act(obs, True), rtol=0, atol=0)
    with torch.no_grad():
        for name in ("critic", "critic_target"):
            torch.testing.assert_close(
                getattr(clone, name)(obs, act), getattr(agent, name)(obs, act), rtol=0, atol=0
            )

    # Optimizer moments and the update count come back too: update 4 is an actor step on both.
    batch = random_batch(16, OBS_DIM, ACT_DIM, generator)
    torch.manual_seed(1)
    expected = agent.update(batch)
    torch.manual_seed(1)
    got = clone.update(batch)
    assert set(got) == set(expected) and set(got) >= ACTOR_METRICS
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=0, atol=0)
    torch.testing.assert_close(clone.act(obs, True), agent.act(obs, True), rtol=0, atol=0)
    assert same(params(clone.actor_target), params(agent.actor_target))


def _train_on_a_bandit(alpha: float) -> TD3BC:
    # One step, every transition terminal: dataset actions are ±0.6 half the time each, and
    # only +0.6 is rewarded. Cloning alone settles between the two; the Q term pulls to +0.6.
    torch.manual_seed(0)
    data = torch.Generator().manual_seed(0)
    agent = TD3BC(2, 1, TD3BCConfig(alpha=alpha, actor_lr=1e-3, critic_lr=1e-3))
    for _ in range(300):
        obs = torch.randn(64, 2, generator=data)
        sign = torch.where(torch.rand(64, 1, generator=data) < 0.5, 1.0, -1.0)
        actions = (0.6 * sign + 0.05 * torch.randn(64, 1, generator=data)).clamp(-1, 1)
        rewards = (sign[:, 0] > 0).float()
        metrics = agent.update(TransitionBatch(obs, actions, rewards, obs, torch.ones(64)))
    for name, value in metrics.items():
        assert value.shape == () and not value.requires_grad, name
        assert torch.isfinite(value), name
    return agent


def test_policy_moves_toward_the_best_dataset_action():
    obs = torch.randn(256, 2, generator=torch.Generator().manual_seed(1))
    cloned = _train_on_a_bandit(alpha=0.0).act(obs, deterministic=True)
    td3bc = _train_on_a_bandit(alpha=2.5).act(obs, deterministic=True)
    assert cloned.mean().abs() < 0.2, cloned.mean()
    assert td3bc.mean() > 0.45, td3bc.mean()


def test_online_config_keeps_every_hyperparameter_but_the_ensemble_size():
    phase1 = TD3BCConfig(alpha=3.0, policy_delay=3, batch_size=64)
    online = online_td3bc_config(phase1, 5)
    assert online == dataclasses.replace(phase1, critic_members=5)
    assert online.alpha == 3.0 and phase1.critic_members == 2


@pytest.fixture
def phase1_checkpoint(tmp_path, random_batch):
    """A TD3+BC agent after 3 updates, saved as a Phase I `checkpoint.pt` ({"agent": state})."""
    agent = make_agent()
    agent.set_observation_statistics(torch.tensor([1.0, -2.0, 3.0]), torch.tensor([0.5, 2.0, 4.0]))
    generator = torch.Generator().manual_seed(0)
    for _ in range(3):
        agent.update(random_batch(16, OBS_DIM, ACT_DIM, generator))
    path = tmp_path / "checkpoint.pt"
    torch.save({"agent": agent.state_dict(), "step": 3}, path)
    return agent, path


def member_params(critic, member):
    return [p[member] for p in critic.parameters()]


@pytest.mark.parametrize("n_ensemble", [3, 5])
def test_phase2_loader_puts_q1_q2_in_members_0_1_and_starts_the_rest_fresh(
    phase1_checkpoint, n_ensemble
):
    old, path = phase1_checkpoint
    torch.manual_seed(123)
    agent = from_phase1_checkpoint(path, n_ensemble, TD3BCConfig())

    assert agent.config == TD3BCConfig(critic_members=n_ensemble)
    assert agent.critic.members == agent.critic_target.members == n_ensemble
    for member in (0, 1):
        assert same(member_params(agent.critic, member), member_params(old.critic, member))
        assert same(
            member_params(agent.critic_target, member), member_params(old.critic_target, member)
        )
    assert not same(params(old.critic), params(old.critic_target))  # the two loads differ
    obs, act = torch.randn(16, OBS_DIM), torch.rand(16, ACT_DIM) * 2 - 1
    with torch.no_grad():
        q = agent.critic(obs, act)
        torch.testing.assert_close(q[:2], old.critic(obs, act), rtol=0, atol=0)
        for fresh in range(2, n_ensemble):
            assert not torch.equal(q[fresh], q[0]) and not torch.equal(q[fresh], q[1])
            for others in range(fresh + 1, n_ensemble):
                assert not torch.equal(q[fresh], q[others])
            assert same(
                member_params(agent.critic_target, fresh), member_params(agent.critic, fresh)
            )

    # Everything that is not the critic comes from the checkpoint.
    assert torch.equal(agent.normalizer.mean, old.normalizer.mean)
    assert torch.equal(agent.normalizer.std, old.normalizer.std)
    assert same(params(agent.actor), params(old.actor))
    assert same(params(agent.actor_target), params(old.actor_target))
    assert not same(params(old.actor), params(old.actor_target))
    assert int(agent.update_count) == 3
    assert agent.actor_opt.state_dict()["state"][0]["step"] == 1  # one actor step in 3 updates
    assert agent.critic_opt.state_dict()["state"] == {}


def test_phase2_update_trains_every_member_and_steps_the_actor_in_phase(
    phase1_checkpoint, random_batch
):
    _, path = phase1_checkpoint
    agent = from_phase1_checkpoint(path, 4)
    before = params(agent.critic)
    metrics = agent.update(random_batch(32, OBS_DIM, ACT_DIM, torch.Generator().manual_seed(9)))
    assert set(metrics) >= ACTOR_METRICS  # update 4 of the run: an actor step
    assert torch.isfinite(metrics["critic_loss"])
    for member in range(4):
        changed = [
            not torch.equal(a[member], b[member])
            for a, b in zip(before, agent.critic.parameters(), strict=True)
        ]
        assert all(changed), member
