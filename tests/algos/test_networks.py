import torch

from hybrid_rl.algos.networks import (
    EnsembleMLP,
    ObservationNormalizer,
    QEnsemble,
    TanhGaussianActor,
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
