"""Policy evaluation: all episodes at once in a vector env, one batched forward per step."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from hybrid_rl.data.registry import normalized_score
from hybrid_rl.envs import make_vector_env

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
    """Run `episodes` episodes in parallel (one env each) until every one has ended."""
    envs = make_vector_env(env_id, episodes, seed=seed)
    obs, _ = envs.reset(seed=[seed + i for i in range(episodes)])
    returns = np.zeros(episodes)
    lengths = np.zeros(episodes, dtype=np.int64)
    running = np.ones(episodes, dtype=bool)
    while running.any():
        actions = policy(torch.as_tensor(obs, dtype=torch.float32, device=device))
        obs, rewards, terminated, truncated, _ = envs.step(actions.cpu().numpy())
        # Finished envs keep stepping (autoreset); their output is ignored.
        returns += np.where(running, rewards, 0.0)
        lengths += running
        running &= ~(terminated | truncated)
    envs.close()
    return EvalResult(returns, lengths, normalized_score(env_id, returns))
