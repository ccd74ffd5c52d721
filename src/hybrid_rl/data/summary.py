"""Descriptive statistics of a transition set: what `hybrid-rl dataset info` prints."""

from __future__ import annotations

from typing import Any

import numpy as np

from hybrid_rl.data.registry import normalized_score
from hybrid_rl.data.transitions import TransitionArrays, split_trajectories


def _stats(values: np.ndarray) -> dict[str, float]:
    if values.size == 0:
        return {"mean": float("nan"), "std": float("nan"), "min": float("nan"), "max": float("nan")}
    return {
        "mean": float(values.mean()),
        "std": float(values.std()),
        "min": float(values.min()),
        "max": float(values.max()),
    }


def summarize_transitions(transitions: TransitionArrays, env_id: str | None) -> dict[str, Any]:
    """Sizes, dims, episode lengths and returns (raw, and normalized when `env_id` is known).

    Returns are undiscounted sums over trajectories split on terminals | timeouts.
    """
    trajectories = split_trajectories(transitions)
    summary: dict[str, Any] = {
        "transitions": len(transitions),
        "trajectories": len(trajectories),
        "terminals": int(transitions.terminals.sum()),
        "timeouts": int(transitions.timeouts.sum()),
        "obs_dim": transitions.obs_dim,
        "act_dim": transitions.act_dim,
        "episode_length": _stats(trajectories.lengths.astype(np.float64)),
        "return": _stats(trajectories.returns),
    }
    if env_id is not None:
        summary["normalized_return"] = _stats(normalized_score(env_id, trajectories.returns))
    return summary
