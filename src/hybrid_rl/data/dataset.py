"""An offline dataset held as tensors on the training device, sampled without host syncs."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

from hybrid_rl.batch import TransitionBatch
from hybrid_rl.data.transitions import TransitionArrays


class OfflineDataset:
    """N transitions as float32 tensors on `device`, sampled uniformly with replacement.

    Every draw comes from a `torch.Generator` on `device` seeded with `seed`, so the stream of
    batches is a function of the seed alone and can be resumed with `state_dict`. The tensors
    are copies: later changes to `transitions` do not reach the dataset.

    `reward_scale` multiplies every reward once, here (e.g. IQL's, from its algorithm's hook).
    `terminals` is 1.0 for true terminations only; timeouts bootstrap.
    """

    def __init__(
        self,
        transitions: TransitionArrays,
        device: str | torch.device = "cpu",
        seed: int = 0,
        reward_scale: float = 1.0,
    ) -> None:
        if len(transitions) == 0:
            raise ValueError("cannot build an OfflineDataset from zero transitions")
        if not (math.isfinite(reward_scale) and reward_scale > 0):
            raise ValueError(f"reward_scale must be finite and > 0, got {reward_scale}")
        self.device = torch.device(device)
        self.reward_scale = float(reward_scale)

        def to_device(values: np.ndarray) -> Tensor:
            return torch.tensor(values, dtype=torch.float32, device=self.device)

        self.observations = to_device(transitions.observations)
        self.actions = to_device(transitions.actions)
        # Scaled in float64, then stored as float32 like every other column.
        self.rewards = to_device(transitions.rewards.astype(np.float64) * self.reward_scale)
        self.next_observations = to_device(transitions.next_observations)
        self.terminals = to_device(transitions.terminals.astype(np.float32))

        # Population (ddof=0) statistics in float64, stored as float32. No epsilon is added:
        # a constant feature has std 0 here, and ObservationNormalizer adds its own eps when
        # dividing, so adding one here too would count it twice.
        observations64 = transitions.observations.astype(np.float64)
        self.observation_mean = to_device(observations64.mean(axis=0))
        self.observation_std = to_device(observations64.std(axis=0))

        self._generator = torch.Generator(device=self.device)
        self._generator.manual_seed(seed)

    def __len__(self) -> int:
        return int(self.rewards.shape[0])

    @property
    def obs_dim(self) -> int:
        return int(self.observations.shape[1])

    @property
    def act_dim(self) -> int:
        return int(self.actions.shape[1])

    def sample(self, batch_size: int) -> TransitionBatch:
        """`batch_size` rows drawn uniformly with replacement, with one index draw on the device."""
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        idx = torch.randint(len(self), (batch_size,), device=self.device, generator=self._generator)
        return TransitionBatch(
            self.observations[idx],
            self.actions[idx],
            self.rewards[idx],
            self.next_observations[idx],
            self.terminals[idx],
        )

    def state_dict(self) -> dict[str, Any]:
        """The sampler's position, for a checkpoint; the data itself is rebuilt from its source."""
        return {"transitions": len(self), "generator": self._generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue the batch stream saved by `state_dict` (the data must be the same size)."""
        if state["transitions"] != len(self):
            raise ValueError(
                f"the saved sampler state belongs to a dataset of {state['transitions']} "
                f"transitions, but this one has {len(self)}; rebuild the dataset with the "
                "run's original corruption config before resuming"
            )
        self._generator.set_state(state["generator"])
