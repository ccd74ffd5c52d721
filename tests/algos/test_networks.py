import pytest
import torch
from torch.distributions import Normal

from hybrid_rl.algos import networks
from hybrid_rl.algos.networks import (
    EnsembleMLP,
    GaussianActor,
    ObservationNormalizer,
    QEnsemble,
    TanhGaussianActor,
    load_adam_state,
    make_adam,
    tanh_gaussian_log_prob,
)


def test_ensemble_members_equal_separate_mlps():
    torch.manual_seed(0)
    net = EnsembleMLP(3, 5, 2, hidden_sizes=(8, 8))
    x = torch.randn(4, 5)
    out = net(x)
    assert out.shape == (3, 4, 2)
    for m in range(3):
        h = x
        for i, layer in enumerate(net.layers):
            h = h @ layer.weight[m] + layer.bias[m, 0]
            if i < len(net.layers) - 1:
                h = torch.relu(h)
        torch.testing.assert_close(out[m], h)


def test_members_are_initialized_independently():
    net = QEnsemble(2, 3, 1)
    w = net.net.layers[0].weight
    assert not torch.equal(w[0], w[1])


def test_tanh_gaussian_log_prob_matches_change_of_variables():
    torch.manual_seed(1)
    actor = TanhGaussianActor(4, 3)
    obs = torch.randn(16, 4)
    normal = actor.distribution(obs)
    u = normal.sample()
    naive = (normal.log_prob(u) - torch.log(1 - torch.tanh(u) ** 2)).sum(-1)
    torch.testing.assert_close(tanh_gaussian_log_prob(normal, u), naive, rtol=1e-4, atol=1e-4)


def test_normalizer_statistics_travel_in_the_state_dict():
    norm = ObservationNormalizer(2)
    norm.set_statistics(torch.tensor([1.0, 2.0]), torch.tensor([2.0, 4.0]))
    restored = ObservationNormalizer(2)
    restored.load_state_dict(norm.state_dict())
    torch.testing.assert_close(
        restored(torch.tensor([[3.0, 6.0]])), norm(torch.tensor([[3.0, 6.0]]))
    )


def test_actor_sample_draws_rsample_noise_and_its_tanh_gaussian_log_prob():
    torch.manual_seed(2)
    actor = TanhGaussianActor(4, 3)
    obs = torch.randn(6, 4)
    torch.manual_seed(3)
    actions, log_prob = actor.sample(obs, (5,))
    torch.manual_seed(3)
    normal = actor.distribution(obs)
    pre_tanh = normal.rsample((5,))
    assert actions.shape == (5, 6, 3) and log_prob.shape == (5, 6)
    torch.testing.assert_close(actions, torch.tanh(pre_tanh))
    torch.testing.assert_close(log_prob, tanh_gaussian_log_prob(normal, pre_tanh))


def test_gaussian_actor_log_prob_is_the_normal_log_density():
    torch.manual_seed(4)
    actor = GaussianActor(4, 3)
    with torch.no_grad():
        actor.log_std.copy_(torch.tensor([-0.7, 0.0, 0.4]))
    obs, act = torch.randn(6, 4), torch.rand(6, 3) * 2 - 1
    mean = torch.tanh(actor.net(obs)[0])
    expected = Normal(mean, actor.log_std.exp()).log_prob(act).sum(-1)
    torch.testing.assert_close(actor.log_prob(obs, act), expected)


def test_adam_is_fused_on_cpu_and_keeps_its_kernel_when_loading_a_foreach_state():
    torch.manual_seed(7)
    net = QEnsemble(2, 3, 2)
    fused = make_adam(net.parameters(), 1e-3)
    assert fused.param_groups[0]["fused"]
    foreach = torch.optim.Adam(net.parameters(), lr=1e-3, foreach=True)
    net(torch.randn(4, 3), torch.rand(4, 2)).sum().backward()
    foreach.step()
    load_adam_state(fused, foreach.state_dict())
    assert fused.param_groups[0]["fused"] and not fused.param_groups[0]["foreach"]
    first = next(iter(net.parameters()))
    torch.testing.assert_close(fused.state[first]["exp_avg"], foreach.state[first]["exp_avg"])
    assert float(fused.state[first]["step"]) == 1.0


def test_normalizer_accepts_arrays_and_rejects_wrong_shapes():
    import numpy as np
    import pytest

    norm = ObservationNormalizer(2)
    norm.set_statistics(np.array([1.0, 2.0]), np.array([2.0, 4.0]))
    torch.testing.assert_close(norm.mean, torch.tensor([1.0, 2.0]))
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        norm.set_statistics(torch.tensor(1.0), torch.tensor([1.0, 1.0]))


@pytest.mark.parametrize(
    ("enabled", "env", "compiles"),
    [
        (False, None, False),
        (True, None, True),
        (True, "0", False),
        (False, "1", True),
    ],
)
def test_maybe_compiled_follows_its_flag_unless_the_environment_overrides_it(
    monkeypatch, enabled, env, compiles
):
    if env is None:
        monkeypatch.delenv(networks.COMPILE_ENV_VAR, raising=False)
    else:
        monkeypatch.setenv(networks.COMPILE_ENV_VAR, env)
    wrapped = networks.MaybeCompiled(torch.sin, enabled)
    assert (wrapped.compiled is not None) == compiles
