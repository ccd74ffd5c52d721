"""Policy evaluation: all episodes side by side, one batched policy forward per step."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from hybrid_rl.data.registry import normalized_score
from hybrid_rl.envs import make_env

PolicyFn = Callable[[Tensor], Tensor]  # observations [n, obs_dim] -> actions [n, act_dim]


@dataclass(frozen=True)
class EvalResult:
    returns: np.ndarray  # [episodes] undiscounted returns
    lengths: np.ndarray  # [episodes] steps per episode
    normalized: np.ndarray  # [episodes] D4RL normalized scores

    @property
    def normalized_mean(self) -> float:
        return float(self.normalized.mean())

    @property
    def normalized_std(self) -> float:
        return float(self.normalized.std())


class PolicyEvaluator:
    """Evaluation episodes run side by side in envs created once and reused for every call.

    Creating a MuJoCo env compiles its model (about 3 ms each), so a training run keeps one
    evaluator for its whole length. Plain envs rather than a vector env: finished episodes
    stop stepping instead of autoresetting, which saves the vector env's bookkeeping
    (measured in benchmarks/bench_eval.py).
    """

    def __init__(self, env_id: str, episodes: int = 10, device: str | torch.device = "cpu") -> None:
        self.env_id = env_id
        self.device = torch.device(device)
        self.envs = [make_env(env_id) for _ in range(episodes)]
        obs_shape = self.envs[0].observation_space.shape
        assert obs_shape is not None
        # float32 rows the policy reads without a conversion; env observations are cast once,
        # on the write into this buffer.
        self.obs = np.zeros((episodes, *obs_shape), dtype=np.float32)

    @torch.inference_mode()
    def evaluate(self, policy: PolicyFn, seed: int = 0) -> EvalResult:
        """One episode per env (env i reset with seed + i), until all have ended.

        One batched policy forward per step over the episodes still running.
        """
        episodes = len(self.envs)
        for i, env in enumerate(self.envs):
            self.obs[i] = env.reset(seed=seed + i)[0]
        returns, lengths = [0.0] * episodes, [0] * episodes
        running = list(range(episodes))
        while running:
            rows = self.obs if len(running) == episodes else self.obs[running]
            actions = policy(torch.from_numpy(rows).to(self.device)).cpu().numpy()
            still_running = []
            for i, action in zip(running, actions, strict=True):
                obs, reward, terminated, truncated, _ = self.envs[i].step(action)
                self.obs[i] = obs
                returns[i] += float(reward)
                lengths[i] += 1
                if not (terminated or truncated):
                    still_running.append(i)
            running = still_running
        returns_array = np.asarray(returns)
        return EvalResult(
            returns_array,
            np.asarray(lengths, dtype=np.int64),
            normalized_score(self.env_id, returns_array),
        )

    def close(self) -> None:
        for env in self.envs:
            env.close()

    def __enter__(self) -> PolicyEvaluator:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def evaluate_policy(
    policy: PolicyFn,
    env_id: str,
    episodes: int = 10,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> EvalResult:
    """`episodes` episodes of `policy` in fresh envs (env i reset with seed + i)."""
    with PolicyEvaluator(env_id, episodes, device) as evaluator:
        return evaluator.evaluate(policy, seed)
