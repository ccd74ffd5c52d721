import numpy as np
import torch

from hybrid_rl.envs import make_env
from hybrid_rl.eval.rollout import evaluate_policy


def constant_policy(value: float, act_dim: int):
    return lambda obs: torch.full((obs.shape[0], act_dim), value)


def sequential_returns(env_id, value, act_dim, episodes, seed):
    returns, lengths = [], []
    for i in range(episodes):
        env = make_env(env_id)
        env.reset(seed=seed + i)
        total, steps, done = 0.0, 0, False
        while not done:
            _, r, term, trunc, _ = env.step(np.full(act_dim, value, dtype=np.float32))
            total, steps, done = total + r, steps + 1, term or trunc
        returns.append(total)
        lengths.append(steps)
    return np.array(returns), np.array(lengths)


def test_vectorized_evaluation_equals_sequential_episodes():
    # Hopper episodes end at different times: finished envs must not add reset-step rewards.
    result = evaluate_policy(constant_policy(0.3, 3), "Hopper-v4", episodes=3, seed=5)
    returns, lengths = sequential_returns("Hopper-v4", 0.3, 3, 3, 5)
    np.testing.assert_allclose(result.returns, returns, rtol=1e-10)
    np.testing.assert_array_equal(result.lengths, lengths)
    assert result.normalized.shape == (3,)
