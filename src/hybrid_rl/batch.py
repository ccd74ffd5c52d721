"""The batch every algorithm's `update` consumes."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor


class TransitionBatch(NamedTuple):
    """B transitions; `terminals` is 1.0 only for true terminations (timeouts bootstrap)."""

    observations: Tensor  # [B, obs_dim] float32
    actions: Tensor  # [B, act_dim] float32
    rewards: Tensor  # [B] float32
    next_observations: Tensor  # [B, obs_dim] float32
    terminals: Tensor  # [B] float32 in {0, 1}

    def __len__(self) -> int:
        return self.observations.shape[0]


def concat_batches(first: TransitionBatch, second: TransitionBatch) -> TransitionBatch:
    """Rows of `first` followed by rows of `second`."""
    return TransitionBatch(*(torch.cat(pair) for pair in zip(first, second, strict=True)))
