import torch

from hybrid_rl.algos.sac import SAC, SACConfig
from hybrid_rl.batch import TransitionBatch


def test_sac_fits_a_one_step_bandit():
    # Reward -(a - 0.5)^2 per dim, every step terminal: Q must learn it and the actor find 0.5.
    torch.manual_seed(0)
    agent = SAC(2, 1, SACConfig(actor_lr=1e-3, critic_lr=1e-3))
    for _ in range(400):
        obs = torch.randn(64, 2)
        act = torch.rand(64, 1) * 2 - 1
        reward = -10.0 * ((act - 0.5) ** 2).sum(-1)
        batch = TransitionBatch(obs, act, reward, obs, torch.ones(64))
        metrics = agent.update(batch)
    best = agent.act(torch.randn(64, 2), deterministic=True)
    assert (best - 0.5).abs().mean() < 0.15
    assert torch.isfinite(torch.stack(list(metrics.values()))).all()


def test_sac_state_dict_round_trip_gives_same_actions():
    torch.manual_seed(0)
    agent, clone = SAC(3, 2, SACConfig()), SAC(3, 2, SACConfig())
    clone.load_state_dict(agent.state_dict())
    obs = torch.randn(5, 3)
    torch.testing.assert_close(agent.act(obs, True), clone.act(obs, True))
