"""Transition arrays in D4RL's semantics, and their split into trajectories."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TransitionArrays:
    """N transitions as numpy arrays (never mutated in place by this package).

    `terminals` marks true terminations only (no bootstrap). `timeouts` marks a trajectory that
    was cut without terminating (episode cap, or the row before one dropped by the
    `qlearning_dataset` rules): it still bootstraps. A trajectory ends at a row where either
    flag is set, or at the last row of the arrays.
    """

    observations: np.ndarray  # [N, obs_dim] float32
    actions: np.ndarray  # [N, act_dim] float32
    rewards: np.ndarray  # [N] float32
    next_observations: np.ndarray  # [N, obs_dim] float32
    terminals: np.ndarray  # [N] bool
    timeouts: np.ndarray  # [N] bool

    def __len__(self) -> int:
        return int(self.rewards.shape[0])

    @property
    def obs_dim(self) -> int:
        return int(self.observations.shape[1])

    @property
    def act_dim(self) -> int:
        return int(self.actions.shape[1])

    def take(self, rows: np.ndarray) -> TransitionArrays:
        """A new TransitionArrays with the given rows (index array or boolean mask), copied."""
        return TransitionArrays(
            **{f.name: getattr(self, f.name)[rows].copy() for f in dataclasses.fields(self)}
        )

    def with_rewards(self, rewards: np.ndarray) -> TransitionArrays:
        return dataclasses.replace(self, rewards=rewards)


@dataclass(frozen=True)
class Trajectories:
    """Trajectory i holds rows starts[i] .. ends[i] - 1 of the arrays it was computed from."""

    starts: np.ndarray  # [T] int64
    ends: np.ndarray  # [T] int64, exclusive
    returns: np.ndarray  # [T] float64 undiscounted sums of rewards

    def __len__(self) -> int:
        return int(self.starts.shape[0])

    @property
    def lengths(self) -> np.ndarray:
        return self.ends - self.starts

    def rows_of(self, trajectory_ids: np.ndarray) -> np.ndarray:
        """Row indices of the given trajectories, in ascending row order."""
        ids = np.sort(np.asarray(trajectory_ids, dtype=np.int64))
        if ids.size == 0:
            return np.zeros(0, dtype=np.int64)
        return np.concatenate([np.arange(self.starts[i], self.ends[i]) for i in ids])


def split_trajectories(transitions: TransitionArrays) -> Trajectories:
    """Segment on `terminals | timeouts` (never on a fixed stride); the last row always ends one."""
    n = len(transitions)
    if n == 0:
        empty = np.zeros(0, dtype=np.int64)
        return Trajectories(empty, empty, np.zeros(0))
    is_end = transitions.terminals | transitions.timeouts
    ends = np.flatnonzero(is_end) + 1
    if ends.size == 0 or ends[-1] != n:
        ends = np.append(ends, n)
    starts = np.concatenate([[0], ends[:-1]])
    sums = np.add.reduceat(transitions.rewards.astype(np.float64), starts)
    return Trajectories(starts.astype(np.int64), ends.astype(np.int64), sums)
