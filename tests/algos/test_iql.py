import dataclasses
import io
import math

import pytest
import torch

from hybrid_rl.algos.iql import IQL, IQLConfig, expectile_loss
from hybrid_rl.algos.networks import COMPILE_ENV_VAR
from hybrid_rl.batch import TransitionBatch

OBS_DIM, ACT_DIM, BATCH = 3, 2, 4


def save_and_load(state):
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def plain_q(critic, member_mlp, member, obs, act):
    return member_mlp(critic.net, member, torch.cat([obs, act], dim=-1))[:, 0]


def gaussian_log_prob(mean, std, x):
    return (-0.5 * ((x - mean) / std) ** 2 - torch.log(std) - 0.5 * math.log(2 * math.pi)).sum(-1)


def make_agent(**overrides):
    torch.manual_seed(0)
    agent = IQL(OBS_DIM, ACT_DIM, IQLConfig(**overrides))
    # A target that differs from the critic, so a loss cannot mix the two up unnoticed.
    with torch.no_grad():
        for p in agent.critic_target.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return agent


def test_expectile_loss_weights_positive_diff_by_expectile_and_negative_by_the_rest():
    torch.testing.assert_close(expectile_loss(torch.tensor([2.0]), 0.7), torch.tensor(0.7 * 4))
    torch.testing.assert_close(expectile_loss(torch.tensor([-2.0]), 0.7), torch.tensor(0.3 * 4))
    mixed = torch.tensor([1.0, -3.0, 0.0, 2.0])
    expected = (0.9 * 1 + 0.1 * 9 + 0.0 + 0.9 * 4) / 4
    torch.testing.assert_close(expectile_loss(mixed, 0.9), torch.tensor(expected))
    # expectile 0.5 is half the mean squared error: symmetric.
    torch.testing.assert_close(expectile_loss(mixed, 0.5), 0.5 * (mixed**2).mean())


def test_value_loss_is_expectile_regression_toward_min_target_q(random_batch, member_mlp):
    agent = make_agent(expectile=0.7)
    batch = random_batch(BATCH, OBS_DIM, ACT_DIM, torch.Generator().manual_seed(1))
    loss, advantage = agent.value_loss(batch.observations, batch.actions)

    s, a = batch.observations, batch.actions
    with torch.no_grad():
        target_q = torch.minimum(
            *(plain_q(agent.critic_target, member_mlp, m, s, a) for m in range(2))
        )
        v = member_mlp(agent.value.net, 0, s)[:, 0]
        diff = target_q - v
        weight = torch.tensor([0.7 if d > 0 else 0.3 for d in diff.tolist()])
        expected = (weight * diff**2).mean()
    torch.testing.assert_close(loss.detach(), expected)
    torch.testing.assert_close(advantage, diff)
    assert not advantage.requires_grad


def test_critic_loss_equals_per_member_reference(random_batch, member_mlp):
    agent = make_agent()
    batch = random_batch(BATCH, OBS_DIM, ACT_DIM, torch.Generator().manual_seed(2))
    loss, q = agent.critic_loss(batch.observations, batch.next_observations, batch)
    loss.backward()
    grads = [p.grad.clone() for p in agent.critic.parameters()]
    agent.critic.zero_grad()

    with torch.no_grad():
        next_v = member_mlp(agent.value.net, 0, batch.next_observations)[:, 0]
    expected = torch.zeros(())
    for member in range(2):
        for i in range(BATCH):
            target = batch.rewards[i] + 0.99 * (1 - batch.terminals[i]) * next_v[i]
            s_i, a_i = batch.observations[i : i + 1], batch.actions[i : i + 1]
            q_i = plain_q(agent.critic, member_mlp, member, s_i, a_i)[0]
            expected = expected + (q_i - target) ** 2 / BATCH
    expected.backward()

    torch.testing.assert_close(loss.detach(), expected.detach())
    assert q.shape == (2, BATCH)
    for got, p in zip(grads, agent.critic.parameters(), strict=True):
        torch.testing.assert_close(got, p.grad, rtol=1e-4, atol=1e-5)


def test_actor_loss_is_advantage_weighted_gaussian_log_likelihood(random_batch, member_mlp):
    agent = make_agent(temperature=3.0)
    with torch.no_grad():
        agent.actor.log_std.copy_(torch.tensor([-0.5, 0.3]))
    batch = random_batch(BATCH, OBS_DIM, ACT_DIM, torch.Generator().manual_seed(3))
    advantage = torch.tensor([-1.0, 0.0, 0.5, 0.2])
    loss, weight = agent.actor_loss(batch.observations, batch.actions, advantage)

    with torch.no_grad():
        mean = torch.tanh(member_mlp(agent.actor.net, 0, batch.observations))
        log_prob = gaussian_log_prob(mean, torch.tensor([-0.5, 0.3]).exp(), batch.actions)
        expected_weight = torch.exp(3.0 * advantage)
        expected = -(expected_weight * log_prob).mean()
    torch.testing.assert_close(weight, expected_weight)
    torch.testing.assert_close(loss.detach(), expected)


def test_actor_weights_are_clipped_at_100(random_batch):
    agent = make_agent(temperature=3.0, max_weight=100.0)
    batch = random_batch(BATCH, OBS_DIM, ACT_DIM, torch.Generator().manual_seed(4))
    advantage = torch.tensor([0.0, 1.0, 10.0, 1000.0])  # exp(3000) overflows to inf: still 100
    loss, weight = agent.actor_loss(batch.observations, batch.actions, advantage)
    torch.testing.assert_close(weight, torch.tensor([1.0, math.exp(3.0), 100.0, 100.0]))
    log_prob = agent.actor.log_prob(batch.observations, batch.actions).detach()
    torch.testing.assert_close(loss.detach(), -(weight * log_prob).mean())
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in agent.actor.parameters())


def test_actor_learning_rate_follows_a_cosine_to_zero_and_stays_there(behaviour_dataset):
    agent = make_agent(actor_lr=1e-3, max_steps=10)
    dataset = behaviour_dataset(64, OBS_DIM, ACT_DIM, torch.Generator().manual_seed(0))
    lrs = []
    for _ in range(12):
        agent.update(dataset)
        lrs.append(agent.actor_opt.param_groups[0]["lr"])
    expected = [1e-3 * 0.5 * (1 + math.cos(math.pi * min(t, 10) / 10)) for t in range(1, 13)]
    assert lrs == pytest.approx(expected, abs=1e-12)
    assert lrs[-1] == 0.0
    # The value and critic learning rates do not decay.
    assert agent.critic_opt.param_groups[0]["lr"] == 3e-4
    assert agent.value_opt.param_groups[0]["lr"] == 3e-4


def test_non_positive_max_steps_is_rejected():
    with pytest.raises(ValueError, match="max_steps"):
        IQL(OBS_DIM, ACT_DIM, IQLConfig(max_steps=0))


def test_checkpoint_round_trip_keeps_normalization_and_training_state(random_batch):
    agent = make_agent(max_steps=20)
    agent.set_observation_statistics(torch.tensor([1.0, -2.0, 3.0]), torch.tensor([0.5, 2.0, 4.0]))
    generator = torch.Generator().manual_seed(0)
    for _ in range(3):
        agent.update(random_batch(16, OBS_DIM, ACT_DIM, generator))

    clone = IQL(OBS_DIM, ACT_DIM, IQLConfig(max_steps=20))
    clone.load_state_dict(save_and_load(agent.state_dict()))
    obs = torch.randn(8, OBS_DIM) * 3
    torch.testing.assert_close(clone.act(obs, True), agent.act(obs, True), rtol=0, atol=0)

    # Optimizer moments and the lr schedule come back too: the next update is the same.
    batch = random_batch(16, OBS_DIM, ACT_DIM, generator)
    expected, got = agent.update(batch), clone.update(batch)
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=0, atol=0)
    assert clone.actor_opt.param_groups[0]["lr"] == agent.actor_opt.param_groups[0]["lr"]
    torch.testing.assert_close(clone.act(obs, True), agent.act(obs, True), rtol=0, atol=0)


def test_updates_reduce_value_and_critic_losses_with_detached_finite_metrics(behaviour_dataset):
    agent = make_agent()
    dataset = behaviour_dataset(256, OBS_DIM, ACT_DIM, torch.Generator().manual_seed(0))
    generator = torch.Generator().manual_seed(1)
    history = []
    for _ in range(300):
        idx = torch.randint(256, (32,), generator=generator)
        metrics = agent.update(TransitionBatch(*(column[idx] for column in dataset)))
        history.append(metrics)
    for name, value in metrics.items():
        assert value.shape == () and not value.requires_grad, name
        assert torch.isfinite(value), name
    for name in ("critic_loss", "value_loss"):
        first = torch.stack([m[name] for m in history[:20]]).mean()
        last = torch.stack([m[name] for m in history[-20:]]).mean()
        assert last < 0.5 * first, (name, first, last)


def test_update_reports_the_actor_log_std_and_the_share_of_clipped_weights(random_batch):
    agent = make_agent()
    batch = random_batch(16, OBS_DIM, ACT_DIM, torch.Generator().manual_seed(3))
    with torch.no_grad():
        agent.actor.log_std.copy_(torch.tensor([-7.0] + [0.5] * (ACT_DIM - 1)))
    # The clamped value, before this update's step: (−5 + 0.5·(A − 1)) / A.
    expected_log_std = (-5.0 + 0.5 * (ACT_DIM - 1)) / ACT_DIM
    _, _, _, metrics = agent.losses(batch)
    assert metrics["actor_log_std"].item() == pytest.approx(expected_log_std)
    # Advantages far above max_weight's log for half the rows: those, and only those, clip.
    agent.config = dataclasses.replace(agent.config, max_weight=2.0)
    advantage = torch.tensor([5.0] * 8 + [-5.0] * 8)
    _, weight = agent.actor_loss(agent.normalizer(batch.observations), batch.actions, advantage)
    assert (weight >= 2.0).float().mean().item() == 0.5
    metrics = agent.update(batch)
    assert 0.0 <= metrics["weight_clipped_share"].item() <= 1.0


@pytest.mark.parametrize("deterministic", [True, False])
def test_actions_are_in_the_action_box(deterministic):
    agent = make_agent()
    actions = agent.act(torch.randn(10, OBS_DIM) * 100, deterministic)
    assert actions.shape == (10, ACT_DIM)
    assert actions.abs().max() <= 1.0


@pytest.mark.slow  # kill/resume, process pool or torch.compile: see README
def test_compiled_update_equals_the_eager_update(random_batch, monkeypatch):
    batch = random_batch(16, OBS_DIM, ACT_DIM, torch.Generator().manual_seed(5))
    monkeypatch.setenv(COMPILE_ENV_VAR, "0")
    eager = make_agent()
    monkeypatch.setenv(COMPILE_ENV_VAR, "1")
    compiled = make_agent()
    assert compiled._losses.compiled is not None
    for _ in range(3):
        expected, got = eager.update(batch), compiled.update(batch)
        for name in expected:
            torch.testing.assert_close(got[name], expected[name], rtol=1e-5, atol=1e-6)
    assert compiled._losses.compiled is not None, "fell back to eager"
    # Adam divides by the root of the squared gradient, so a gradient near 0 that differs in
    # its last bits can move a weight by a few 1e-6: well under one step (lr 3e-4).
    for mine, theirs in zip(compiled.actor.parameters(), eager.actor.parameters(), strict=True):
        torch.testing.assert_close(mine, theirs, rtol=1e-4, atol=1e-5)
