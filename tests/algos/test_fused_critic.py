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


def bf16_and_fp32_passes(critic, obs, actions, inputs):
    """(loss, Q, flat critic gradient) of fused fp32, fused bf16 and autocast-bf16 autograd."""
    results = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        critic.zero_grad()
        loss, q = summed_critic_loss(critic, obs, actions, separable_loss, inputs, dtype)
        loss.backward()
        results[name] = (
            loss.detach(),
            q,
            torch.cat([p.grad.flatten() for p in critic.parameters()]),
        )
    critic.zero_grad()
    groups, batch = actions.shape[:2]
    rows = torch.cat([obs.expand(groups, -1, -1), actions], dim=-1).flatten(0, 1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        q = critic.net.layers[1](torch.relu(critic.net.layers[0](rows.expand(2, -1, -1)))).relu()
    q = critic.net.layers[2](q.float()).squeeze(-1).unflatten(1, (groups, batch))
    loss = separable_loss(q, *inputs)
    loss.backward()
    grads = torch.cat([p.grad.flatten() for p in critic.parameters()])
    results["autocast"] = (loss.detach(), q.detach(), grads)
    return results


def relative_error(got, expected):
    return ((got - expected).norm() / expected.norm()).item()


def test_bf16_products_round_like_autocast_and_stay_close_to_fp32():
    # A fixed batch at CQL's shapes: 2 members, 1 + 3·10 actions per state, [256, 256] nets;
    # 64 states in 2 chunks. Measured: Q within 1.5e-7 and gradients within 0.2% of autocast;
    # versus fp32, the loss within 1.5e-6 (relative), Q within 0.4% of its scale and the
    # gradient within 2.4% (bf16 keeps 8 mantissa bits: 0.4% per rounding). On a CPU with AMX
    # the two paths' kernels accumulate in another order, and one Q in 3,968 lands one bf16
    # rounding (2^-8 relative) away from autocast's: allow that, not more.
    torch.manual_seed(8)
    critic, batch = QEnsemble(2, 17, 6), 64
    obs, actions = torch.randn(batch, 17), torch.rand(31, batch, 6) * 2 - 1
    inputs = (torch.rand(batch), torch.randn(30, batch))
    results = bf16_and_fp32_passes(critic, obs, actions, inputs)

    loss, q, grads = results["bf16"]
    auto_loss, auto_q, auto_grads = results["autocast"]
    torch.testing.assert_close(q, auto_q, rtol=2**-8, atol=1e-5)
    assert (q - auto_q).abs().gt(1e-5 + 1e-5 * auto_q.abs()).float().mean() < 0.01
    torch.testing.assert_close(loss, auto_loss, rtol=1e-5, atol=0)
    assert relative_error(grads, auto_grads) < 0.01

    fp32_loss, fp32_q, fp32_grads = results["fp32"]
    torch.testing.assert_close(loss, fp32_loss, rtol=1e-4, atol=0)
    assert (q - fp32_q).abs().max() < 0.01 * fp32_q.abs().max()
    assert 1e-4 < relative_error(grads, fp32_grads) < 0.06  # bf16 did round
