import pytest
import torch

from hybrid_rl.algos.ensemble import EnsembleQNetwork
from hybrid_rl.algos.networks import QEnsemble

OBS_DIM, ACT_DIM, BATCH = 4, 2, 9


def member_outputs(net, member_mlp, obs, act):
    """[N, B] from plain per-member matmuls, independent of the batched forward."""
    x = torch.cat([obs, act], dim=-1)
    return torch.stack([member_mlp(net.net, m, x)[:, 0] for m in range(net.members)])


def inputs(seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(BATCH, OBS_DIM, generator=g), torch.rand(BATCH, ACT_DIM, generator=g) * 2 - 1


@pytest.mark.parametrize("members", [1, 11, 0])
def test_member_counts_outside_2_to_10_are_rejected_with_the_range(members):
    with pytest.raises(ValueError, match=rf"2 to 10 members, got {members}"):
        EnsembleQNetwork(OBS_DIM, ACT_DIM, members)


def test_default_is_three_members_and_the_bounds_are_allowed():
    assert EnsembleQNetwork(OBS_DIM, ACT_DIM).members == 3
    assert EnsembleQNetwork(OBS_DIM, ACT_DIM, 2).members == 2
    assert EnsembleQNetwork(OBS_DIM, ACT_DIM, 10).members == 10


@pytest.mark.parametrize("members", [2, 3, 5])
def test_disagreement_is_the_unbiased_std_of_the_member_outputs(members, member_mlp):
    torch.manual_seed(members)
    net = EnsembleQNetwork(OBS_DIM, ACT_DIM, members)
    obs, act = inputs()
    q = member_outputs(net, member_mlp, obs, act)
    mean = q.sum(0) / members
    expected = torch.sqrt(((q - mean) ** 2).sum(0) / (members - 1))
    got = net.disagreement(obs, act)
    assert got.shape == (BATCH,)
    torch.testing.assert_close(got, expected)
    assert (got > 0).all()  # independently initialized members do disagree


def test_q_min_is_the_smallest_member_output(member_mlp):
    torch.manual_seed(0)
    net = EnsembleQNetwork(OBS_DIM, ACT_DIM, 4)
    obs, act = inputs(1)
    q = member_outputs(net, member_mlp, obs, act)
    expected = torch.tensor([min(q[:, i].tolist()) for i in range(BATCH)])
    torch.testing.assert_close(net.q_min(obs, act), expected)


def test_load_double_q_fills_members_0_and_1_and_keeps_the_rest(member_mlp):
    torch.manual_seed(0)
    twin = QEnsemble(2, OBS_DIM, ACT_DIM)
    net = EnsembleQNetwork(OBS_DIM, ACT_DIM, 4)
    obs, act = inputs(2)
    before = member_outputs(net, member_mlp, obs, act)

    net.load_double_q(twin.state_dict())

    after = member_outputs(net, member_mlp, obs, act)
    twin_q = member_outputs(twin, member_mlp, obs, act)
    torch.testing.assert_close(after[:2], twin_q, rtol=0, atol=0)
    torch.testing.assert_close(after[2:], before[2:], rtol=0, atol=0)
    assert not torch.equal(after[2], after[0]) and not torch.equal(after[2], after[1])
    # The loaded members are copies: training the source later does not reach them.
    with torch.no_grad():
        next(twin.parameters()).add_(1.0)
    torch.testing.assert_close(member_outputs(net, member_mlp, obs, act), after, rtol=0, atol=0)


def test_load_double_q_rejects_critics_that_are_not_twin_q_of_this_shape():
    net = EnsembleQNetwork(OBS_DIM, ACT_DIM, 3)
    with pytest.raises(ValueError, match=r"shape \(3, 6, 256\), expected \(2, 6, 256\)"):
        net.load_double_q(QEnsemble(3, OBS_DIM, ACT_DIM).state_dict())
    with pytest.raises(ValueError, match=r"shape \(2, 7, 256\), expected \(2, 6, 256\)"):
        net.load_double_q(QEnsemble(2, OBS_DIM + 1, ACT_DIM).state_dict())
    with pytest.raises(ValueError, match="not a twin-Q critic state dict"):
        net.load_double_q({"weight": torch.zeros(2, 6, 256)})
