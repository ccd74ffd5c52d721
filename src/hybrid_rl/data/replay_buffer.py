"""Fixed-capacity ring buffer of online transitions, stored as tensors on the device."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from hybrid_rl.batch import TransitionBatch

ArrayLike = np.ndarray | Tensor


class ReplayBuffer:
    """Online transitions; `terminated` (true end) is kept apart from `truncated` (time cap)."""

    def __init__(
        self, capacity: int, obs_dim: int, act_dim: int, device: str | torch.device = "cpu"
    ) -> None:
        if capacity <= 0:
            raise ValueError(f"replay buffer capacity must be positive, got {capacity}")
        self.capacity = capacity
        self.device = torch.device(device)
        f32 = torch.float32
        self.observations = torch.zeros(capacity, obs_dim, dtype=f32, device=self.device)
        self.actions = torch.zeros(capacity, act_dim, dtype=f32, device=self.device)
        self.rewards = torch.zeros(capacity, dtype=f32, device=self.device)
        self.next_observations = torch.zeros(capacity, obs_dim, dtype=f32, device=self.device)
        self.terminated = torch.zeros(capacity, dtype=torch.bool, device=self.device)
        self.truncated = torch.zeros(capacity, dtype=torch.bool, device=self.device)
        self.position = 0  # next row to write
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def add(
        self,
        observations: ArrayLike,
        actions: ArrayLike,
        rewards: ArrayLike,
        next_observations: ArrayLike,
        terminated: ArrayLike,
        truncated: ArrayLike,
    ) -> None:
        """Append n transitions (leading axis n); the oldest rows are overwritten when full."""
        columns = [
            (self.observations, observations),
            (self.actions, actions),
            (self.rewards, rewards),
            (self.next_observations, next_observations),
            (self.terminated, terminated),
            (self.truncated, truncated),
        ]
        n = len(rewards)
        if n > self.capacity:
            raise ValueError(f"cannot add {n} transitions to a buffer of capacity {self.capacity}")
        rows = (self.position + torch.arange(n, device=self.device)) % self.capacity
        for store, values in columns:
            store[rows] = (
                torch.as_tensor(values, device=self.device)
                .to(store.dtype)
                .reshape(n, *store.shape[1:])
            )
        self.position = (self.position + n) % self.capacity
        self.size = min(self.size + n, self.capacity)

    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> TransitionBatch:
        """`batch_size` rows drawn uniformly with replacement."""
        return self.rows(self.sample_rows(batch_size, generator))

    def sample_rows(self, batch_size: int, generator: torch.Generator | None = None) -> Tensor:
        """Indices [batch_size] of rows drawn uniformly with replacement (what `sample` draws)."""
        if self.size == 0:
            raise RuntimeError("cannot sample from an empty replay buffer")
        return torch.randint(self.size, (batch_size,), device=self.device, generator=generator)

    def rows(self, idx: Tensor) -> TransitionBatch:
        """The transitions at row indices `idx` [b]."""
        return TransitionBatch(
            self.observations[idx],
            self.actions[idx],
            self.rewards[idx],
            self.next_observations[idx],
            self.terminated[idx].float(),
        )

    def state_dict(self) -> dict[str, Any]:
        n = self.size
        return {
            "capacity": self.capacity,
            "position": self.position,
            "size": n,
            "observations": self.observations[:n].cpu(),
            "actions": self.actions[:n].cpu(),
            "rewards": self.rewards[:n].cpu(),
            "next_observations": self.next_observations[:n].cpu(),
            "terminated": self.terminated[:n].cpu(),
            "truncated": self.truncated[:n].cpu(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["capacity"] != self.capacity:
            raise ValueError(
                f"saved buffer has capacity {state['capacity']}, this one {self.capacity}"
            )
        n = state["size"]
        for name in (
            "observations",
            "actions",
            "rewards",
            "next_observations",
            "terminated",
            "truncated",
        ):
            getattr(self, name)[:n] = state[name].to(self.device)
        self.position, self.size = state["position"], n
