"""Recovery of an online fine-tuning run relative to where it started (DESIGN.md §6 "Metrics").

The spec's sample efficiency (steps until one evaluation reaches 80 % of the clean offline
score) is 0 by construction when the corrupted policy already starts above that threshold,
and it compares one noisy evaluation with another. These metrics measure the gap the run
actually had to close:

- start: the step-0 evaluation (the Phase I policy before any online step);
- clean reference of one seed: the mean of the clean Phase I run's last
  `CLEAN_REFERENCE_EVALS` evaluations (not its single final one), and of no more than the
  later half of its evaluations: a short run's first ones score an untrained policy;
- pooled clean reference of a condition (`pooled_reference`): the mean of those per-seed
  references over the seeds that have one, with a standard error from the between-seed spread
  and the within-run spread of those evaluations. The noise that matters is seed to seed and
  evaluation to evaluation: on hopper-medium-replay one clean run's last five evaluations
  spread by ≈ 8 points and two seeds differ by 17–24, while the spread of the episodes within
  one deterministic evaluation is a fraction of a point;
- gap = pooled clean − start; "no gap" when it is under `NO_GAP_STANDARD_ERRORS` standard
  errors (the pooled reference's and the start evaluation's together), with `MIN_GAP_POINTS`
  kept as a minimum, so a run that starts at (or above) the clean level is reported as having
  nothing to recover, never as 0 steps;
- recovery fraction at an evaluation: (score − start) / (clean − start);
- every threshold is crossed smoothed: by the running mean of `RUNNING_MEAN_EVALS`
  evaluations (consecutive hopper evaluations differ by 30–90 points, so one lucky evaluation
  crosses anything), sustained over `SUSTAINED_EVALS` evaluations (`smoothed_crossing`);
- steps to 50 % / 80 % recovery: the first evaluation at which the running mean of the
  recovery fraction reaches the level and stays there at the next, None if none;
- steps to 80 % / 100 % of clean: the same crossing of that fraction of the pooled clean
  reference (beside the spec's first raw evaluation ≥ 80 % of the seed's clean final score,
  which `sample_efficiency.steps_to_threshold` keeps "as specified");
- recovery toward the clean agent's own fine-tuned curve (`curve_recovery`), when the same
  arm was also run from the clean (k = 0) checkpoint of the same seed: fine-tuning moves the
  clean agent too (the quick study's preset lifts its clean start from 25.2 to 41.1 in 5k
  steps), so the target at online step t is that run's score at t, not the clean offline
  score: (corrupted(t) − start) / (clean_finetuned(t) − start), and the steps until the
  corrupted running mean reaches the clean fine-tuned running mean at the same step, within
  `NO_GAP_STANDARD_ERRORS` standard errors of the difference of two running means;
- normalized AUC: the time average of the score over the fine-tuning run (trapezoid rule over
  the evaluation steps, divided by their span), in normalized-score points;
- dip depth: how far the score falls below the start at its lowest (0 if it never does).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

CLEAN_REFERENCE_EVALS = 5
NO_GAP_STANDARD_ERRORS = 2.0
MIN_GAP_POINTS = 5.0  # normalized-score points: the least gap, however quiet the reference
RECOVERY_LEVELS = (0.5, 0.8)
CLEAN_LEVELS = (0.8, 1.0)  # fractions of the pooled clean reference
RUNNING_MEAN_EVALS = 3
SUSTAINED_EVALS = 2


@dataclass(frozen=True)
class CleanReference:
    """The clean Phase I run of one algo, dataset and seed, as a reference score."""

    run_name: str
    final: float  # its last evaluation (the spec's reference)
    robust: float  # mean of its last `evaluations` evaluations
    tail: tuple[float, ...]  # those evaluations

    @property
    def evaluations(self) -> int:
        return len(self.tail)


def clean_reference(run_name: str, scores: Sequence[float]) -> CleanReference | None:
    """The reference of a clean Phase I run from its evaluations (`scores`: normalized return
    means). The robust score is the mean of the last m = min(`CLEAN_REFERENCE_EVALS`,
    max(1, ⌊n/2⌋)) of its n evaluations (a 20k-step run evaluated every 5k has 5, the first
    at step 0: its reference is the mean of the last 2)."""
    if not scores:
        return None
    last = min(CLEAN_REFERENCE_EVALS, max(1, len(scores) // 2))
    tail = tuple(float(v) for v in scores[-last:])
    return CleanReference(run_name, float(scores[-1]), float(np.mean(tail)), tail)


@dataclass(frozen=True)
class PooledReference:
    """The clean reference of a condition pooled over its seeds (see `pooled_reference`)."""

    level: float  # mean over the seeds of each seed's robust reference
    standard_error: float  # NaN: one seed with one evaluation, no spread to measure
    run_names: tuple[str, ...]  # the clean runs pooled, one per seed

    @property
    def seeds(self) -> int:
        return len(self.run_names)


def pooled_reference(references: Sequence[CleanReference]) -> PooledReference | None:
    """The mean of the per-seed references r_s (s = 1..n, each the mean of m_s evaluations
    with sample variance w_s²), with standard error sqrt(max(b², mean_s(w_s² / m_s)) / n),
    b² being the sample variance of the r_s (0 with one seed). In a model where each seed has
    its own level and each evaluation its own noise, b² estimates the level spread plus the
    evaluation noise left in an r_s, and w_s² / m_s that evaluation noise alone: so b² / n is
    the variance of the mean, and the within-run term keeps it from vanishing when few seeds
    happen to agree (or there is one). None without references."""
    if not references:
        return None
    levels = np.array([r.robust for r in references])
    n = levels.size
    between = float(levels.var(ddof=1)) if n >= 2 else 0.0
    # each seed's evaluation noise left in its reference: w_s² / m_s
    within = [
        float(np.var(r.tail, ddof=1)) / r.evaluations for r in references if r.evaluations > 1
    ]
    if n < 2 and not within:
        se = math.nan  # one seed, one evaluation: no spread to measure
    else:
        se = math.sqrt(max(between, float(np.mean(within)) if within else 0.0) / n)
    return PooledReference(float(levels.mean()), se, tuple(r.run_name for r in references))


@dataclass(frozen=True)
class Recovery:
    """The recovery metrics of one fine-tuning run (see the module docstring)."""

    start: float
    clean: float  # the pooled clean reference's level
    clean_seeds: int  # seeds behind it
    gap: float  # clean − start
    gap_standard_error: float
    no_gap: bool
    final: float
    final_recovery: float | None  # None when there is no gap
    steps_to_recovery: dict[float, int | None]  # level -> steps; None: not reached / no gap
    steps_to_clean: dict[float, int | None]  # fraction of clean -> steps; None: not reached
    auc: float  # time-averaged normalized score
    dip_depth: float  # start − lowest score, ≥ 0
    dip_step: int | None  # step of the lowest score after step 0 (None: no dip)
    budget: int  # the last evaluation step

    def steps_text(self, level: float) -> str:
        """ "no gap", "not reached (> 5,000)" or "3,000"."""
        if self.no_gap:
            return "no gap"
        steps = self.steps_to_recovery.get(level)
        return f"not reached (> {self.budget:,})" if steps is None else f"{steps:,}"


def recovery_fraction(score: float, start: float, clean: float) -> float:
    """(score − start) / (clean − start); callers check there is a gap first."""
    return (score - start) / (clean - start)


def running_mean(values: Sequence[float], window: int = RUNNING_MEAN_EVALS) -> list[float]:
    """The trailing mean of each value and the `window` − 1 before it (fewer at the start:
    the first value is its own mean)."""
    return [float(np.mean(values[max(0, i + 1 - window) : i + 1])) for i in range(len(values))]


def smoothed_crossing(
    eval_steps: Sequence[int], values: Sequence[float], level: float
) -> int | None:
    """The step of the first evaluation where the running mean of `values` is ≥ `level`
    there and at the next `SUSTAINED_EVALS` − 1 evaluations; None if that never happens (the
    last evaluations alone cannot confirm a crossing)."""
    return smoothed_crossing_of(eval_steps, running_mean(values), level)


def smoothed_crossing_of(
    eval_steps: Sequence[int], smoothed: Sequence[float], level: float
) -> int | None:
    """`smoothed_crossing` of values already smoothed (e.g. a difference of running means)."""
    for i in range(len(smoothed) - SUSTAINED_EVALS + 1):
        if all(v >= level for v in smoothed[i : i + SUSTAINED_EVALS]):
            return int(eval_steps[i])
    return None


def time_averaged_score(eval_steps: Sequence[int], scores: Sequence[float]) -> float:
    """∫ score d(step) / (last step − first step), trapezoid rule over the evaluations (the
    normalized area under the curve, in score points); the score itself for one evaluation."""
    if len(scores) == 0:
        return math.nan
    if len(scores) == 1:
        return float(scores[0])
    steps = np.asarray(eval_steps, dtype=np.float64)
    values = np.asarray(scores, dtype=np.float64)
    area = float(np.sum((values[1:] + values[:-1]) * np.diff(steps)) / 2.0)
    return area / float(steps[-1] - steps[0])


def dip(eval_steps: Sequence[int], scores: Sequence[float]) -> tuple[float, int | None]:
    """(depth, step): how far the lowest evaluation after the first falls below the first,
    ≥ 0, and its step (None when the score never falls below the first evaluation)."""
    later = list(scores[1:])
    if not later:
        return 0.0, None
    lowest = min(later)
    depth = max(0.0, float(scores[0]) - lowest)
    return depth, (int(eval_steps[1 + later.index(lowest)]) if depth > 0 else None)


def recovery_metrics(
    eval_steps: Sequence[int],
    scores: Sequence[float],
    episode_stds: Sequence[float],
    episodes: int,
    clean: PooledReference,
) -> Recovery | None:
    """The recovery of a run whose evaluations are (`eval_steps`, `scores`), the first at
    online step 0, against the pooled reference `clean`; None without a step-0 evaluation.
    The start's standard error is its episode std / sqrt(episodes); an unknown one (NaN)
    counts as 0, leaving the reference's and the floor."""
    if not scores or not eval_steps or eval_steps[0] != 0:
        return None
    start = float(scores[0])
    start_se = float(episode_stds[0]) / math.sqrt(max(episodes, 1)) if episode_stds else math.nan
    gap_se = math.sqrt(sum(se**2 for se in (start_se, clean.standard_error) if math.isfinite(se)))
    gap = clean.level - start
    no_gap = gap < max(NO_GAP_STANDARD_ERRORS * gap_se, MIN_GAP_POINTS)
    fractions = [recovery_fraction(s, start, clean.level) for s in scores] if not no_gap else []
    steps = {
        level: None if no_gap else smoothed_crossing(eval_steps, fractions, level)
        for level in RECOVERY_LEVELS
    }
    to_clean = {
        fraction: smoothed_crossing(eval_steps, scores, fraction * clean.level)
        for fraction in CLEAN_LEVELS
    }
    depth, dip_step = dip(eval_steps, scores)
    return Recovery(
        start=start,
        clean=clean.level,
        clean_seeds=clean.seeds,
        gap=gap,
        gap_standard_error=gap_se,
        no_gap=no_gap,
        final=float(scores[-1]),
        final_recovery=None if no_gap else fractions[-1],
        steps_to_recovery=steps,
        steps_to_clean=to_clean,
        auc=time_averaged_score(eval_steps, scores),
        dip_depth=depth,
        dip_step=dip_step,
        budget=int(eval_steps[-1]),
    )


@dataclass(frozen=True)
class CurveRecovery:
    """Recovery toward the clean agent's fine-tuned curve (same arm, same seed)."""

    final_fraction: float | None  # at the last shared step; None: the target is within
    # `MIN_GAP_POINTS` of the start there (nothing to recover toward)
    steps_to_match: int | None  # None: not reached within the shared steps
    target_final: float  # the clean fine-tuned score at the last shared step
    budget: int  # the last shared step


def evaluation_noise(scores: Sequence[float]) -> float:
    """The standard deviation of one evaluation about the run's trend, from successive
    differences (von Neumann: sqrt(mean((x_{i+1} − x_i)²) / 2)), which a slow trend barely
    inflates; NaN with fewer than two evaluations."""
    if len(scores) < 2:
        return math.nan
    return math.sqrt(float(np.mean(np.diff(np.asarray(scores, dtype=np.float64)) ** 2)) / 2)


def curve_recovery(
    eval_steps: Sequence[int],
    scores: Sequence[float],
    clean_steps: Sequence[int],
    clean_scores: Sequence[float],
) -> CurveRecovery | None:
    """Recovery of the run (`eval_steps`, `scores`, the first at step 0) toward the clean
    fine-tuned run (`clean_steps`, `clean_scores`), both read at the steps they share; None
    without a step-0 evaluation or a shared step after it. The match is the first shared step
    where the corrupted running mean is at least the clean running mean minus
    `NO_GAP_STANDARD_ERRORS` · σ · sqrt(2 / `RUNNING_MEAN_EVALS`) (σ: the clean run's
    `evaluation_noise`; the difference of two running means of 3 carries 2σ²/3), sustained
    for `SUSTAINED_EVALS` shared steps."""
    clean_at = dict(zip(clean_steps, clean_scores, strict=True))
    shared = [
        (step, score) for step, score in zip(eval_steps, scores, strict=True) if step in clean_at
    ]
    if len(shared) < 2 or shared[0][0] != 0 or eval_steps[0] != 0:
        return None
    steps = [step for step, _ in shared]
    own = [score for _, score in shared]
    target = [clean_at[step] for step in steps]
    start = float(scores[0])
    sigma = evaluation_noise(target)
    tolerance = NO_GAP_STANDARD_ERRORS * sigma * math.sqrt(2 / RUNNING_MEAN_EVALS)
    shortfall = [t - o for o, t in zip(running_mean(own), running_mean(target), strict=True)]
    # reached where the shortfall is within the tolerance: cross "−shortfall ≥ −tolerance"
    matched = smoothed_crossing_of(steps, [-d for d in shortfall], -tolerance)
    room = target[-1] - start
    return CurveRecovery(
        final_fraction=(own[-1] - start) / room if room >= MIN_GAP_POINTS else None,
        steps_to_match=matched,
        target_final=float(target[-1]),
        budget=int(steps[-1]),
    )
