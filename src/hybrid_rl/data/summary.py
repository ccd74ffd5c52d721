"""Descriptive statistics of a transition set: what `hybrid-rl dataset info` prints."""

from __future__ import annotations

from typing import Any

import numpy as np

from hybrid_rl.data.registry import normalized_score
from hybrid_rl.data.transitions import TransitionArrays, split_trajectories

# Quantiles of trajectory returns a summary records (as "q05" ... "q95").
RETURN_QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
# Bins of the normalized-return histogram a summary records: fixed, so that histograms of
# different datasets and builds compare bin by bin. 2 points wide from -5 to 125 on D4RL's
# scale (0 random, 100 expert); bins are [a, a + 2) except the last, [123, 125].
HISTOGRAM_LOW, HISTOGRAM_HIGH, HISTOGRAM_WIDTH = -5.0, 125.0, 2.0


def histogram_edges() -> np.ndarray:
    """The bin edges of `normalized_return_histogram` (66 edges, 65 bins)."""
    n_bins = round((HISTOGRAM_HIGH - HISTOGRAM_LOW) / HISTOGRAM_WIDTH)
    return HISTOGRAM_LOW + HISTOGRAM_WIDTH * np.arange(n_bins + 1)


def normalized_return_histogram(normalized: np.ndarray) -> dict[str, Any]:
    """Counts of normalized trajectory returns in the fixed bins, plus those below the first
    edge (`underflow`) and above the last (`overflow`); the counts sum to len(normalized)."""
    edges = histogram_edges()
    counts, _ = np.histogram(normalized, bins=edges)
    return {
        "low": HISTOGRAM_LOW,
        "high": HISTOGRAM_HIGH,
        "width": HISTOGRAM_WIDTH,
        "underflow": int((normalized < edges[0]).sum()),
        "counts": [int(count) for count in counts],
        "overflow": int((normalized > edges[-1]).sum()),
    }


def _stats(values: np.ndarray, quantiles: tuple[float, ...] = ()) -> dict[str, float]:
    names = ["mean", "std", "min", "max", *(f"q{round(100 * q):02d}" for q in quantiles)]
    if values.size == 0:
        return dict.fromkeys(names, float("nan"))
    figures = [values.mean(), values.std(), values.min(), values.max()]
    figures += list(np.quantile(values, quantiles)) if quantiles else []
    return {name: float(figure) for name, figure in zip(names, figures, strict=True)}


def summarize_transitions(transitions: TransitionArrays, env_id: str | None) -> dict[str, Any]:
    """Sizes, dims, episode lengths and returns (raw, and normalized when `env_id` is known).

    Returns are undiscounted sums over trajectories split on terminals | timeouts; their
    statistics include the quantiles RETURN_QUANTILES, and normalized returns also a histogram
    (`normalized_return_histogram`).
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
        "return": _stats(trajectories.returns, RETURN_QUANTILES),
    }
    if env_id is not None:
        normalized = normalized_score(env_id, trajectories.returns)
        summary["normalized_return"] = _stats(normalized, RETURN_QUANTILES)
        summary["normalized_return_histogram"] = normalized_return_histogram(normalized)
    return summary
