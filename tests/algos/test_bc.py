import io
import math

import torch

from hybrid_rl.algos.bc import BC, BCConfig
from hybrid_rl.algos.iql import IQL, IQLConfig
from hybrid_rl.batch import TransitionBatch

OBS_DIM, ACT_DIM, BATCH = 3, 2, 4


def save_and_load(state):
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def test_loss_is_gaussian_negative_log_likelihood(random_batch, member_mlp):
    torch.manual_seed(0)
    agent = BC(OBS_DIM, ACT_DIM, BCConfig())
    with torch.no_grad():
        agent.actor.log_std.copy_(torch.tensor([0.4, -1.0]))
    batch = random_batch(BATCH, OBS_DIM, ACT_DIM, torch.Generator().manual_seed(1))
    loss, mse = agent.actor_loss(batch.observations, batch.actions)

    with torch.no_grad():
        mean = torch.tanh(member_mlp(agent.actor.net, 0, batch.observations))
        std = torch.tensor([0.4, -1.0]).exp()
        z = (batch.actions - mean) / std
        log_prob = (-0.5 * z**2 - torch.log(std) - 0.5 * math.log(2 * math.pi)).sum(-1)
    torch.testing.assert_close(loss.detach(), -log_prob.mean())
    torch.testing.assert_close(mse.detach(), ((mean - batch.actions) ** 2).mean())


def test_loss_equals_iql_actor_loss_with_unit_weights(random_batch):
    torch.manual_seed(0)
    bc = BC(OBS_DIM, ACT_DIM, BCConfig())
    iql = IQL(OBS_DIM, ACT_DIM, IQLConfig())
    iql.actor.load_state_dict(bc.actor.state_dict())
    batch = random_batch(BATCH, OBS_DIM, ACT_DIM, torch.Generator().manual_seed(2))
    bc_loss, _ = bc.actor_loss(batch.observations, batch.actions)
    # Zero advantage gives weight exp(0) = 1 for every transition.
    iql_loss, weight = iql.actor_loss(batch.observations, batch.actions, torch.zeros(BATCH))
    torch.testing.assert_close(weight, torch.ones(BATCH))
    torch.testing.assert_close(bc_loss, iql_loss)


def test_updates_fit_the_behaviour_policy(behaviour_dataset):
    torch.manual_seed(0)
    agent = BC(OBS_DIM, ACT_DIM, BCConfig(lr=1e-3))
    dataset = behaviour_dataset(256, OBS_DIM, ACT_DIM, torch.Generator().manual_seed(0))
    generator = torch.Generator().manual_seed(1)
    history = []
    for _ in range(300):
        idx = torch.randint(256, (32,), generator=generator)
        history.append(agent.update(TransitionBatch(*(column[idx] for column in dataset))))
    for name, value in history[-1].items():
        assert value.shape == () and not value.requires_grad, name
        assert torch.isfinite(value), name
    first = torch.stack([m["actor_loss"] for m in history[:20]]).mean()
    last = torch.stack([m["actor_loss"] for m in history[-20:]]).mean()
    assert last < first - 0.5, (first, last)
    error = (agent.act(dataset.observations, True) - dataset.actions).pow(2).mean()
    assert error < 0.05, error


def test_checkpoint_round_trip_keeps_normalization_and_training_state(random_batch):
    torch.manual_seed(0)
    agent = BC(OBS_DIM, ACT_DIM, BCConfig())
    agent.set_observation_statistics(torch.tensor([1.0, -2.0, 3.0]), torch.tensor([0.5, 2.0, 4.0]))
    generator = torch.Generator().manual_seed(0)
    for _ in range(3):
        agent.update(random_batch(16, OBS_DIM, ACT_DIM, generator))

    clone = BC(OBS_DIM, ACT_DIM, BCConfig())
    clone.load_state_dict(save_and_load(agent.state_dict()))
    obs = torch.randn(8, OBS_DIM) * 3
    torch.testing.assert_close(clone.act(obs, True), agent.act(obs, True), rtol=0, atol=0)

    batch = random_batch(16, OBS_DIM, ACT_DIM, generator)
    expected, got = agent.update(batch), clone.update(batch)
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=0, atol=0)
    torch.testing.assert_close(clone.act(obs, True), agent.act(obs, True), rtol=0, atol=0)
