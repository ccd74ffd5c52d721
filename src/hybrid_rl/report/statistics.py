"""Aggregate statistics over seeds: IQM with stratified-bootstrap confidence intervals,
performance profiles, probability of improvement and paired per-seed differences.

What interval a number gets depends on how many seeds stand behind it, and one function
decides it (`interval_over_seeds`, used by every table, sentence and figure): with fewer than
`MIN_SEEDS_FOR_CI` seeds a percentile bootstrap is no confidence interval at all (with 3 seeds
the all-minimum resample has probability 1/27 > 2.5 %, so the "95 % CI" is exactly the seeds'
[min, max]); those numbers carry the seeds' range, labelled "range (n seeds)". From 5 seeds
on: the stratified-bootstrap percentile interval, and for a paired difference a paired
Student-t interval beside it.

These follow Agarwal et al. 2021 ("Deep RL at the edge of the statistical precipice") and
their library `rliable`, in plain numpy so the report needs neither rliable nor its pins
(rliable 1.2 imports `arch`, which fails with pandas 3). Scores are given per task (a task is
one condition, e.g. an algo × dataset × corruption cell) as a 1-D array over runs (seeds).

The bootstrap draws its indices exactly as rliable's `StratifiedBootstrap` does (one
`RandomState.choice(n_runs, (n_runs, n_tasks))` per replication from a seeded legacy
generator) and takes percentile intervals as `arch` does, so with the same seed and a
rectangular score matrix the intervals are identical to rliable's (a test checks this).
Tasks with different numbers of runs are resampled task by task.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

BOOTSTRAP_REPS = 10_000
BOOTSTRAP_SEED = 0
CONFIDENCE = 0.95
# Fewer seeds than this (per task) get their range, never a "95% CI".
MIN_SEEDS_FOR_CI = 5

# Per task (a condition), the scores of its runs; or rliable's [runs, tasks] matrix.
Scores = Sequence[Sequence[float] | np.ndarray] | np.ndarray
Thresholds = Sequence[float] | np.ndarray


@dataclass(frozen=True)
class Interval:
    """A point estimate with the interval its sample allows (`kind`):

    - "ci": a 95 % stratified-bootstrap percentile interval (at least `MIN_SEEDS_FOR_CI` seeds
      in every task);
    - "range": the lowest and highest of the runs' values (fewer seeds: a bootstrap would
      return that range anyway and call it a CI);
    - "none": no interval (one run; or a probability of improvement below 5 seeds, whose
      bootstrap is degenerate and which has no range of its own).
    """

    point: float
    low: float
    high: float
    n: int  # runs behind the estimate (all tasks together)
    kind: str = "none"
    sample: str = ""  # the sample in words: "3 seeds", "3 vs 2 seeds", "6 runs, 3 tasks"

    @property
    def has_ci(self) -> bool:
        return self.kind == "ci"

    def format(self, digits: int = 1, signed: bool = False) -> str:
        """The estimate as text: "47.1 [46.0, 48.2] 95% CI", "47.1 [40.2, 51.0] range (3
        seeds)", "47.1 (1 seed)", "—" (no run); `signed`: a leading "+" or "−"."""
        if self.n == 0 or not math.isfinite(self.point):
            return "—"
        point = _number(self.point, digits, signed)
        if self.kind == "none":
            return f"{point} ({self.sample})"
        bounds = f"[{_number(self.low, digits)}, {_number(self.high, digits)}]"
        label = "95% CI" if self.kind == "ci" else f"range ({self.sample})"
        return f"{point} {bounds} {label}"


def _number(value: float, digits: int, signed: bool = False) -> str:
    """`value` with a true minus sign ("−3.2"), and a "+" when `signed` and not negative."""
    sign = "−" if value < 0 else ("+" if signed else "")
    return f"{sign}{abs(value):.{digits}f}"


def seed_count(n: int) -> str:
    """ "1 seed", "3 seeds"."""
    return f"{n} seed{'s' if n != 1 else ''}"


NO_RUNS = Interval(math.nan, math.nan, math.nan, 0, "none", "no run")  # the estimate of nothing


def interquartile_mean(scores: Scores) -> float:
    """The 25 %-trimmed mean of every score of every task together (rliable's
    `aggregate_iqm`, i.e. `scipy.stats.trim_mean(x, 0.25, axis=None)`): the lowest and highest
    ⌊n/4⌋ of the n scores are dropped. With fewer than 4 scores nothing is dropped (the mean)."""
    flat = np.sort(_flatten(scores))
    if flat.size == 0:
        return math.nan
    cut = int(0.25 * flat.size)
    return float(np.mean(flat[cut : flat.size - cut]))


def _iqm_rows(samples: np.ndarray) -> np.ndarray:
    """`interquartile_mean` of each row of `samples` [reps, n]."""
    ordered = np.sort(samples, axis=1)
    cut = int(0.25 * samples.shape[1])
    return ordered[:, cut : samples.shape[1] - cut].mean(axis=1)


def _mean_rows(samples: np.ndarray) -> np.ndarray:
    return samples.mean(axis=1)


ROW_STATISTICS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "iqm": _iqm_rows,
    "mean": _mean_rows,
}


def interval_kind(fewest_seeds: int) -> str:
    """The reports' one rule for what interval a statistic over seeds gets, from the fewest
    seeds (runs) any of its tasks has: "ci" (a 95 % bootstrap interval) from
    `MIN_SEEDS_FOR_CI` on, "range" (the seeds' [min, max]) from 2, "none" below."""
    if fewest_seeds >= MIN_SEEDS_FOR_CI:
        return "ci"
    return "range" if fewest_seeds >= 2 else "none"


def interval_over_seeds(scores: Scores, statistic: str = "iqm") -> Interval:
    """`statistic` ("iqm" or "mean") over every run of every task, with the interval
    `interval_kind` allows: the stratified bootstrap (`stratified_bootstrap`) when every task
    has 5 seeds or more, else the lowest and highest run, labelled as a range."""
    tasks = _finite_tasks(scores)
    n = sum(t.size for t in tasks)
    if n == 0:
        return NO_RUNS
    kind = interval_kind(min(t.size for t in tasks))
    sample = seed_count(n) if len(tasks) == 1 else f"{n} runs over {len(tasks)} tasks"
    if kind == "ci":
        return dataclasses.replace(stratified_bootstrap(tasks, statistic), sample=sample)
    point = float(ROW_STATISTICS[statistic](np.concatenate(tasks)[None, :])[0])
    if kind == "none":
        return Interval(point, math.nan, math.nan, n, "none", sample)
    everything = np.concatenate(tasks)
    return Interval(point, float(everything.min()), float(everything.max()), n, "range", sample)


def stratified_bootstrap(
    scores: Scores,
    statistic: str = "iqm",
    reps: int = BOOTSTRAP_REPS,
    confidence: float = CONFIDENCE,
    seed: int = BOOTSTRAP_SEED,
) -> Interval:
    """`statistic` ("iqm" or "mean", over every run of every task) with a percentile
    stratified-bootstrap interval: each replication resamples the runs of each task with
    replacement, keeping the tasks (rliable's `get_interval_estimates` with
    `task_bootstrap=False`). Whatever the number of seeds: reports call
    `interval_over_seeds`, which uses it only where it is a confidence interval."""
    tasks = _finite_tasks(scores)
    n = sum(t.size for t in tasks)
    row_statistic = ROW_STATISTICS[statistic]
    if n == 0:
        return NO_RUNS
    point = float(row_statistic(np.concatenate(tasks)[None, :])[0])
    if n < 2 or all(t.size < 2 for t in tasks):
        return Interval(point, math.nan, math.nan, n, "none", seed_count(n))
    samples = _stratified_samples(tasks, reps, seed)
    low, high = _percentile_interval(row_statistic(samples), confidence)
    return Interval(point, low, high, n, "ci", seed_count(n))


def _finite_tasks(scores: Scores) -> list[np.ndarray]:
    """The finite scores of each task, tasks without any left out."""
    tasks = [np.asarray(t, dtype=np.float64) for t in _tasks(scores)]
    tasks = [t[np.isfinite(t)] for t in tasks]
    return [t for t in tasks if t.size]


def _stratified_samples(tasks: list[np.ndarray], reps: int, seed: int) -> np.ndarray:
    """[reps, n] resampled scores, the runs of each task drawn within that task."""
    rng = np.random.RandomState(seed)
    sizes = {t.size for t in tasks}
    if len(sizes) == 1:
        # Rectangular [runs, tasks]: one draw of the whole index matrix per replication,
        # as rliable's StratifiedBootstrap.update_indices does.
        matrix = np.stack(tasks, axis=1)
        runs, width = matrix.shape
        columns = np.arange(width)[None, :]
        draws = [
            matrix[rng.choice(runs, (runs, width), replace=True), columns] for _ in range(reps)
        ]
        return np.stack(draws).reshape(reps, -1)
    parts = []
    for _ in range(reps):
        parts.append(np.concatenate([t[rng.choice(t.size, t.size, replace=True)] for t in tasks]))
    return np.stack(parts)


def _percentile_interval(values: np.ndarray, confidence: float) -> tuple[float, float]:
    alpha = (1.0 - confidence) / 2.0
    low, high = np.percentile(values, [100.0 * alpha, 100.0 * (1.0 - alpha)])
    return float(low), float(high)


def probability_of_improvement(x: Scores, y: Scores) -> float:
    """P(X > Y) + ½·P(X = Y) for a run of X and a run of Y of the same task, averaged over the
    tasks (rliable's `probability_of_improvement`: the Mann-Whitney U / (n_x · n_y)). Tasks
    are paired by position; a task without runs on either side is skipped."""
    values = [
        _improvement(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64))
        for a, b in zip(_tasks(x), _tasks(y), strict=True)
        if len(a) and len(b)
    ]
    return float(np.mean(values)) if values else math.nan


def _improvement(a: np.ndarray, b: np.ndarray) -> float:
    greater = (a[:, None] > b[None, :]).mean()
    ties = (a[:, None] == b[None, :]).mean()
    return float(greater + 0.5 * ties)


def probability_of_improvement_interval(
    x: Scores,
    y: Scores,
    reps: int = BOOTSTRAP_REPS,
    confidence: float = CONFIDENCE,
    seed: int = BOOTSTRAP_SEED,
) -> Interval:
    """`probability_of_improvement` with a percentile bootstrap interval, X and Y resampled
    independently within each task (rliable's `StratifiedIndependentBootstrap`), when
    `interval_kind` allows one for the fewest seeds of either side; else the point alone,
    saying how many seeds it compares ("0.83 (3 vs 3 seeds)"): with few seeds its bootstrap
    interval is degenerate and it has no range of its own."""
    xs = [np.asarray(t, dtype=np.float64) for t in _tasks(x)]
    ys = [np.asarray(t, dtype=np.float64) for t in _tasks(y)]
    pairs = [(a, b) for a, b in zip(xs, ys, strict=True) if a.size and b.size]
    n = sum(a.size + b.size for a, b in pairs)
    if not pairs:
        return NO_RUNS
    point = float(np.mean([_improvement(a, b) for a, b in pairs]))
    n_x, n_y = sum(a.size for a, _ in pairs), sum(b.size for _, b in pairs)
    sample = f"{n_x} vs {seed_count(n_y)}"
    if len(pairs) > 1:
        sample += f" over {len(pairs)} tasks"
    if interval_kind(min(min(a.size, b.size) for a, b in pairs)) != "ci":
        return Interval(point, math.nan, math.nan, n, "none", sample)
    rng = np.random.RandomState(seed)
    rectangular = len({a.size for a, _ in pairs}) == 1 and len({b.size for _, b in pairs}) == 1
    values = np.empty(reps)
    if rectangular:
        mx, my = np.stack([a for a, _ in pairs], 1), np.stack([b for _, b in pairs], 1)
        cols = np.arange(mx.shape[1])[None, :]
        for r in range(reps):
            rx = mx[rng.choice(mx.shape[0], mx.shape, replace=True), cols]
            ry = my[rng.choice(my.shape[0], my.shape, replace=True), cols]
            values[r] = np.mean([_improvement(rx[:, j], ry[:, j]) for j in range(mx.shape[1])])
    else:
        for r in range(reps):
            values[r] = np.mean(
                [
                    _improvement(
                        a[rng.choice(a.size, a.size, replace=True)],
                        b[rng.choice(b.size, b.size, replace=True)],
                    )
                    for a, b in pairs
                ]
            )
    low, high = _percentile_interval(values, confidence)
    return Interval(point, low, high, n, "ci", sample)


@dataclass(frozen=True)
class PairedDifference:
    """Per-seed differences x_s − y_s over the seeds both arms have, their mean with the
    interval `interval_over_seeds` allows (the differences' range below 5 seeds, a bootstrap
    CI from 5), and from 5 seeds a paired Student-t 95 % interval beside it."""

    seeds: tuple[int, ...]
    differences: tuple[float, ...]
    mean: Interval
    t_interval: tuple[float, float] | None = None

    def format(self, digits: int = 1) -> str:
        """ "+3.0 [1.2, 4.5] 95% CI; paired t [0.9, 5.1]", "+16.0 [1.6, 25.6] range (3 seeds)",
        "−4.7 (1 seed)" or "—"."""
        text = self.mean.format(digits, signed=True)
        if self.t_interval is None:
            return text
        low, high = self.t_interval
        return f"{text}; paired t [{_number(low, digits)}, {_number(high, digits)}]"


def paired_difference(
    x: dict[int, float],
    y: dict[int, float],
    confidence: float = CONFIDENCE,
) -> PairedDifference:
    """x − y paired on seed (`x`, `y`: score by seed). The two Phase II arms share seeds,
    evaluation seeds and the Phase I checkpoint, so the per-seed difference removes the
    seed-to-seed spread that two independent means would carry."""
    seeds = tuple(s for s in sorted(set(x) & set(y)) if math.isfinite(x[s]) and math.isfinite(y[s]))
    differences = tuple(x[s] - y[s] for s in seeds)
    interval = interval_over_seeds([differences], "mean")
    if not interval.has_ci:
        return PairedDifference(seeds, differences, interval)
    t_interval = paired_t_interval(differences, confidence)
    return PairedDifference(seeds, differences, interval, t_interval)


def paired_t_interval(
    differences: Sequence[float], confidence: float = CONFIDENCE
) -> tuple[float, float]:
    """The Student-t interval of the mean of paired differences: mean ± t_{n−1} · sd / √n
    (sd with ddof = 1), as `scipy.stats.t.interval(confidence, n − 1, mean, sem)`."""
    values = np.asarray(differences, dtype=np.float64)
    n = values.size
    quantile = float(stats.t.ppf(0.5 + confidence / 2, n - 1))
    half = quantile * float(values.std(ddof=1)) / math.sqrt(n)
    mean = float(values.mean())
    return mean - half, mean + half


def performance_profile(scores: Scores, thresholds: Thresholds) -> np.ndarray:
    """The fraction of all runs (every task) whose score is above each threshold τ (rliable's
    run-score distribution): [len(thresholds)]."""
    flat = _flatten(scores)
    taus = np.asarray(thresholds, dtype=np.float64)
    if flat.size == 0:
        return np.full(taus.shape, math.nan)
    return (flat[None, :] > taus[:, None]).mean(axis=1)


def performance_profile_interval(
    scores: Scores,
    thresholds: Thresholds,
    reps: int = 2_000,
    confidence: float = CONFIDENCE,
    seed: int = BOOTSTRAP_SEED,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(profile, low, high) over `thresholds`, with a stratified-bootstrap band (runs
    resampled within each task) where `interval_kind` allows a CI; below 5 seeds in a task the
    band is the profile itself (no band)."""
    tasks = [np.asarray(t, dtype=np.float64) for t in _tasks(scores)]
    tasks = [t for t in tasks if t.size]
    profile = performance_profile(tasks, thresholds)
    if not tasks or interval_kind(min(t.size for t in tasks)) != "ci":
        return profile, profile.copy(), profile.copy()
    samples = _stratified_samples(tasks, reps, seed)  # [reps, n]
    taus = np.asarray(thresholds, dtype=np.float64)
    fractions = (samples[:, None, :] > taus[None, :, None]).mean(axis=2)  # [reps, taus]
    alpha = (1.0 - confidence) / 2.0
    low, high = np.percentile(fractions, [100.0 * alpha, 100.0 * (1.0 - alpha)], axis=0)
    return profile, low, high


def _tasks(scores: Scores) -> list[Sequence[float] | np.ndarray]:
    if isinstance(scores, np.ndarray):
        if scores.ndim == 1:
            return [scores]
        return [scores[:, j] for j in range(scores.shape[1])]  # rliable's [runs, tasks]
    return list(scores)


def _flatten(scores: Scores) -> np.ndarray:
    parts = [np.asarray(t, dtype=np.float64).ravel() for t in _tasks(scores)]
    flat = np.concatenate(parts) if parts else np.empty(0)
    return flat[np.isfinite(flat)]
