"""Sample efficiency of online fine-tuning: how many online steps until a score is reached."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence


def steps_to_threshold(
    eval_steps: Sequence[int], scores: Sequence[float], threshold: float
) -> int | None:
    """The first evaluation step whose score is ≥ `threshold`, in online env steps.

    `eval_steps` must be strictly increasing and aligned with `scores` (e.g. a run's
    `metrics["eval"]["steps"]` and `["normalized_return_mean"]`). Returns 0 when the step-0
    evaluation already reaches the threshold, and None when no evaluation does: the run is
    censored at its last evaluation ("not reached"), which is not the same as "never". A NaN
    score never reaches the threshold.
    """
    if len(eval_steps) != len(scores):
        raise ValueError(
            f"eval_steps has {len(eval_steps)} entries but scores has {len(scores)}; pass "
            "the aligned lists of one run"
        )
    if math.isnan(threshold):
        raise ValueError("threshold is NaN; pass a finite score to reach")
    for previous, current in itertools.pairwise(eval_steps):
        if current <= previous:
            raise ValueError(
                f"eval_steps must be strictly increasing, got {previous} then {current}"
            )
    for step, score in zip(eval_steps, scores, strict=True):
        if score >= threshold:
            return int(step)
    return None
