import pytest
import torch

from hybrid_rl.algos import fused_critic
from hybrid_rl.algos.fused_critic import summed_critic_loss
from hybrid_rl.algos.networks import EnsembleMLP, QEnsemble


def separable_loss(q, weights, offsets):
    # Per state: a logsumexp over its actions (each offset by its own value, like CQL's
    # log-densities), a square, a weight per state; summed.
    per_state = torch.logsumexp(q[:, 1:] - offsets, dim=1) - q[:, 0] + (q[:, 0] - 0.3).pow(2)
    return (per_state * weights).sum()


@pytest.mark.parametrize("hidden_sizes", [(8, 8), (8, 6, 7)])
@pytest.mark.parametrize("states_per_chunk", [1, 2, 4, None])
def test_summed_critic_loss_by_chunks_equals_one_autograd_pass(
    monkeypatch, states_per_chunk, hidden_sizes
):
    members, groups, batch = 3, 4, 5
    if states_per_chunk is not None:  # chunk floats = members × hidden width × groups × states
        monkeypatch.setattr(fused_critic, "_CHUNK_FLOATS", members * 8 * groups * states_per_chunk)
    torch.manual_seed(5)
    critic = QEnsemble(members, 3, 2)
    critic.net = EnsembleMLP(members, 5, 1, hidden_sizes=hidden_sizes)
    obs, actions = torch.randn(batch, 3), torch.rand(groups, batch, 2) * 2 - 1
    weights, offsets = torch.rand(batch), torch.randn(groups - 1, batch)

    loss, q = summed_critic_loss(critic, obs, actions, separable_loss, (weights, offsets))
    loss.backward()
    grads = [p.grad.clone() for p in critic.parameters()]
    critic.zero_grad()

    rows = torch.cat([obs.expand(groups, -1, -1), actions], dim=-1).flatten(0, 1)
    expected_q = critic.net(rows).squeeze(-1).unflatten(1, (groups, batch))
    expected = separable_loss(expected_q, weights, offsets)
    expected.backward()
    assert not q.requires_grad and q.shape == (members, groups, batch)
    torch.testing.assert_close(q, expected_q.detach())
    torch.testing.assert_close(loss.detach(), expected.detach())
    for got, p in zip(grads, critic.parameters(), strict=True):
        torch.testing.assert_close(got, p.grad)


def test_summed_critic_loss_without_gradients_is_the_loss_of_all_states():
    torch.manual_seed(6)
    critic = QEnsemble(2, 3, 2)
    obs, actions = torch.randn(4, 3), torch.rand(3, 4, 2)
    weights, offsets = torch.rand(4), torch.randn(2, 4)
    with torch.no_grad():
        loss, q = summed_critic_loss(critic, obs, actions, separable_loss, (weights, offsets))
        rows = torch.cat([obs.expand(3, -1, -1), actions], dim=-1).flatten(0, 1)
        expected_q = critic.net(rows).squeeze(-1).unflatten(1, (3, 4))
    torch.testing.assert_close(q, expected_q)
    torch.testing.assert_close(loss, separable_loss(expected_q, weights, offsets))


def test_each_network_keeps_its_own_workspace_from_call_to_call():
    torch.manual_seed(7)
    critics = [QEnsemble(2, 3, 2), QEnsemble(2, 3, 2)]
    obs, actions = torch.randn(4, 3), torch.rand(3, 4, 2)
    weights, offsets = torch.rand(4), torch.randn(2, 4)
    workspaces = []
    for critic in critics * 2:
        summed_critic_loss(critic, obs, actions, separable_loss, (weights, offsets))
        workspaces.append(fused_critic._workspaces[critic.net])
    assert workspaces[0] is workspaces[2] and workspaces[1] is workspaces[3]
    assert workspaces[0] is not workspaces[1]
