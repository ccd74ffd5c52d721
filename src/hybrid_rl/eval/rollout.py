"""Policy evaluation: all episodes at once in a vector env, one batched forward per step."""

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


@torch.no_grad()
def evaluate_policy(
    policy: PolicyFn,
    env_id: str,
    episodes: int = 10,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> EvalResult:
    """Run `episodes` episodes side by side (env i reset with seed + i) until all have ended.

    One batched policy forward per step over the episodes still running. Plain envs rather
    than a vector env: finished episodes stop stepping instead of autoresetting, which saves
    the vector env's bookkeeping (measured in benchmarks/bench_eval.py).
    """
    envs = [make_env(env_id) for _ in range(episodes)]
    obs = np.stack([env.reset(seed=seed + i)[0] for i, env in enumerate(envs)])
    returns = np.zeros(episodes)
    lengths = np.zeros(episodes, dtype=np.int64)
    running = np.arange(episodes)
    while running.size:
        batch = torch.as_tensor(obs[running], dtype=torch.float32, device=device)
        actions = policy(batch).cpu().numpy()
        still_running = []
        for i, action in zip(running, actions, strict=True):
            obs[i], reward, terminated, truncated, _ = envs[i].step(action)
            returns[i] += reward
            lengths[i] += 1
            if not (terminated or truncated):
                still_running.append(i)
        running = np.asarray(still_running, dtype=np.int64)
    for env in envs:
        env.close()
    return EvalResult(returns, lengths, normalized_score(env_id, returns))
