import numpy as np
import torch

from hybrid_rl.envs import make_env
from hybrid_rl.eval.rollout import PolicyEvaluator, evaluate_policy


def constant_policy(value: float, act_dim: int):
    return lambda obs: torch.full((obs.shape[0], act_dim), value)


def reactive_policy(act_dim: int):
    """Actions that depend on each row's observation, so a mixed-up row shows in the returns."""
    return lambda obs: torch.tanh(obs[:, 2 : 2 + act_dim] + obs[:, 8 : 8 + act_dim])


def sequential_returns(env_id, policy, episodes, seed):
    returns, lengths = [], []
    for i in range(episodes):
        env = make_env(env_id)
        obs, _ = env.reset(seed=seed + i)
        total, steps, done = 0.0, 0, False
        while not done:
            action = policy(torch.as_tensor(obs[None], dtype=torch.float32))[0].numpy()
            obs, r, term, trunc, _ = env.step(action)
            total, steps, done = total + r, steps + 1, term or trunc
        returns.append(total)
        lengths.append(steps)
    return np.array(returns), np.array(lengths)


def test_vectorized_evaluation_equals_sequential_episodes():
    # Hopper episodes end at different times: finished envs must not add reset-step rewards.
    policy = constant_policy(0.3, 3)
    result = evaluate_policy(policy, "Hopper-v4", episodes=3, seed=5)
    returns, lengths = sequential_returns("Hopper-v4", policy, 3, 5)
    np.testing.assert_allclose(result.returns, returns, rtol=1e-10)
    np.testing.assert_array_equal(result.lengths, lengths)
    assert result.normalized.shape == (3,)


def test_a_reused_evaluator_gives_each_call_the_episodes_of_its_seed():
    policy = reactive_policy(3)
    with PolicyEvaluator("Hopper-v4", episodes=4) as evaluator:
        results = [evaluator.evaluate(policy, seed) for seed in (5, 11, 5)]
    for result, seed in zip(results, (5, 11, 5), strict=True):
        returns, lengths = sequential_returns("Hopper-v4", policy, 4, seed)
        assert len(set(lengths)) > 1  # some episodes run on after others ended
        np.testing.assert_allclose(result.returns, returns, rtol=1e-10)
        np.testing.assert_array_equal(result.lengths, lengths)
    np.testing.assert_array_equal(results[0].returns, results[2].returns)
