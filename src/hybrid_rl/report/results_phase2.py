"""Phase II run folders as a tidy table, and that table aggregated over seeds per condition.

A condition (cell) is (algo, dataset, corruption of the Phase I data, bonus type). Sample
efficiency follows DESIGN.md §6: online env steps until the normalized return first reaches
`THRESHOLD_FRACTION` (80 %) of the clean offline score of the same algo, dataset and seed. The
clean offline score is the final normalized return of the clean (k = 0, σ = 0) Phase I run of
that algo, dataset and seed, read from the summary of its metrics.json; a Phase I run that is
missing, damaged or not completed gives no reference. Steps are counted at evaluations only,
so they are multiples of the run's `eval_every`. A run that never reaches the threshold is
censored ("not reached"): it is counted, never dropped. As in Phase I, statistics use the
completed runs; diverged, failed and running runs are counted.
"""

from __future__ import annotations

import dataclasses
import math
import os
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hybrid_rl.data.corruption import CLEAN, CorruptionConfig
from hybrid_rl.finetune import FinetuneConfig
from hybrid_rl.report.results import (
    MetricSeries,
    corruption_order,
    dataset_label,
    load_run_folders,
    mean_or_nan,
    read_run_files,
    sample_std,
    train_metric_series,
)
from hybrid_rl.report.sample_efficiency import steps_to_threshold
from hybrid_rl.runs.folder import DamagedRunFile, RunFolder

THRESHOLD_FRACTION = 0.8
# The training metric behind "disagreement": the ensemble std of Q at the collected (s, a),
# averaged over each log interval (critic units).
DISAGREEMENT_METRIC = "disagreement_collected"
BONUS_ORDER = {"ensemble": 0, "none": 1}


@dataclass(frozen=True)
class Phase2CellKey:
    """A Phase II condition: algo, dataset, the corruption of the Phase I data the run starts
    from, and the bonus type."""

    algo: str
    dataset: str
    corruption: CorruptionConfig
    bonus_type: str


@dataclass(frozen=True)
class FinetuneRecord:
    """One Phase II run folder: its condition, status, reference score and curves."""

    run_name: str
    run_dir: Path
    algo: str
    dataset: str  # dataset id, or a file's stem when the data came from a file without one
    source: str  # config.json's dataset.source
    corruption: CorruptionConfig  # of the Phase I data the run starts from
    # The arm: "ensemble" | "none" as specified; with a Phase II variant (a preset's name or
    # option tokens, `FinetuneConfig.variant`) "ensemble (enoto)", "shuffled (upd)", ...
    bonus_type: str
    seed: int
    status: str  # "completed" | "diverged" | "failed" | "running"
    online_steps: int  # the run's budget of online env steps
    final_normalized_return: float | None
    clean_offline_score: float | None  # Phase I k = 0 final normalized return, same seed
    eval_steps: tuple[int, ...]
    eval_normalized_returns: tuple[float, ...]
    train_steps: tuple[int, ...]
    train_metrics: dict[str, MetricSeries] = field(repr=False)  # aligned with train_steps

    @property
    def cell(self) -> Phase2CellKey:
        return Phase2CellKey(self.algo, self.dataset, self.corruption, self.bonus_type)

    @property
    def step0_normalized_return(self) -> float | None:
        """The evaluation before any online step: the Phase I policy, evaluated again."""
        if self.eval_steps and self.eval_steps[0] == 0:
            return self.eval_normalized_returns[0]
        return None

    @property
    def dip(self) -> float | None:
        """The lowest evaluation minus the step-0 score (≤ 0); None without a step-0 score."""
        step0 = self.step0_normalized_return
        if step0 is None:
            return None
        return min(self.eval_normalized_returns) - step0

    @property
    def threshold(self) -> float | None:
        """`THRESHOLD_FRACTION` × the clean offline score; None without a reference."""
        if self.clean_offline_score is None:
            return None
        return THRESHOLD_FRACTION * self.clean_offline_score

    @property
    def steps_to_threshold(self) -> int | None:
        """Online steps of the first evaluation reaching `threshold`; None if none did (or no
        reference: see `threshold`)."""
        if self.threshold is None:
            return None
        return steps_to_threshold(self.eval_steps, self.eval_normalized_returns, self.threshold)

    @property
    def reached(self) -> bool | None:
        """Whether the run reached the threshold; None without a reference."""
        return None if self.threshold is None else self.steps_to_threshold is not None

    @property
    def final_disagreement(self) -> float | None:
        """The last logged ensemble disagreement at collected transitions (critic units);
        intervals that logged none (before updates start) are skipped."""
        values = [v for v in self.train_metrics.get(DISAGREEMENT_METRIC, ()) if v is not None]
        return float(values[-1]) if values and math.isfinite(values[-1]) else None


@dataclass(frozen=True)
class FinetuneCell:
    """One condition over its completed seeds. Stds are sample stds (ddof=1); NaN when n < 2."""

    algo: str
    dataset: str
    source: str
    corruption: CorruptionConfig
    bonus_type: str
    n: int  # completed runs, the ones behind every statistic
    seeds: tuple[int, ...]  # of those runs
    step0_mean: float
    step0_std: float
    final_mean: float
    final_std: float
    threshold_mean: float  # mean over the runs with a reference of their own threshold
    steps_median: float | None  # math.inf: the median run did not reach it; None: no reference
    reached: int  # runs that reached their threshold
    censored: int  # runs with a reference that never reached it ("not reached")
    no_reference: int  # runs whose clean Phase I run is missing or unfinished
    budget: int  # the longest budget among the runs, in online steps
    disagreement_mean: float  # final disagreement
    disagreement_std: float
    diverged: int
    failed: int
    running: int
    # Dip: the lowest evaluation minus the step-0 score (≤ 0), mean over the completed seeds.
    dip_mean: float = math.nan

    @property
    def key(self) -> Phase2CellKey:
        return Phase2CellKey(self.algo, self.dataset, self.corruption, self.bonus_type)

    @property
    def with_reference(self) -> int:
        return self.reached + self.censored


def load_finetune_run(
    run_dir: str | Path, phase1_results_dir: str | os.PathLike[str] | None = None
) -> FinetuneRecord:
    """Read one Phase II run folder (config.json and metrics.json, as `finetune` writes them).

    The clean offline score is looked up in `phase1_results_dir` (default: the folder the run
    itself read its Phase I checkpoint from, as saved in its config.json). Raises
    `UnreadableRun` when a file is missing and `DamagedRunFile` when one cannot be parsed.
    """
    folder = RunFolder(Path(run_dir))
    saved, metrics = read_run_files(folder)
    config = FinetuneConfig(**saved["config"])
    provenance = saved.get("dataset") or {}
    summary = metrics.get("summary") or {}
    evaluation = metrics.get("eval", {})
    train = metrics.get("train", {})
    final = summary.get("final_normalized_return")
    return FinetuneRecord(
        run_name=saved.get("run_name", folder.name),
        run_dir=folder.path,
        algo=config.algo,
        dataset=provenance.get("dataset_id") or dataset_label(config.dataset),
        source=provenance.get("source", "unknown"),
        corruption=config.phase1_train_config().corruption,
        bonus_type=arm_of(config),
        seed=config.seed,
        status=metrics["status"],
        online_steps=config.online_steps,
        final_normalized_return=None if final is None else float(final),
        clean_offline_score=clean_offline_score(config, phase1_results_dir),
        eval_steps=tuple(evaluation.get("steps", ())),
        eval_normalized_returns=tuple(evaluation.get("normalized_return_mean", ())),
        train_steps=tuple(train.get("steps", ())),
        train_metrics=train_metric_series(train),
    )


def arm_of(config: FinetuneConfig) -> str:
    """The arm a run belongs to: its bonus type, followed by its variant when it has one."""
    return config.arm_label if config.variant else config.bonus_type


def arm_text(arm: str) -> str:
    """An arm as tables show it: the spec's arms labelled "as specified"."""
    return arm if "(" in arm else f"{arm} (as specified)"


def clean_offline_score(
    config: FinetuneConfig, phase1_results_dir: str | os.PathLike[str] | None = None
) -> float | None:
    """The final normalized return of the completed clean Phase I run of `config`'s algo,
    dataset and seed (from its metrics.json); None if it is missing, damaged or not completed."""
    clean = dataclasses.replace(
        config,
        removal=CLEAN.removal,
        k_percent=CLEAN.k_percent,
        reward_noise_std=CLEAN.reward_noise_std,
    )
    if phase1_results_dir is not None:
        clean = dataclasses.replace(clean, phase1_results_dir=str(phase1_results_dir))
    try:
        metrics = clean.phase1_train_config().folder.read_metrics()
    except DamagedRunFile:
        return None
    if metrics is None or metrics.get("status") != "completed":
        return None
    score = (metrics.get("summary") or {}).get("final_normalized_return")
    return None if score is None else float(score)


def load_finetune_runs(
    results_dir: str | Path, phase1_results_dir: str | os.PathLike[str] | None = None
) -> tuple[list[FinetuneRecord], list[str]]:
    """Every Phase II run folder directly under `results_dir`, sorted by run name, and a line
    for each sub-folder that could not be read (see `load_finetune_run`)."""
    return load_run_folders(
        results_dir, lambda run_dir: load_finetune_run(run_dir, phase1_results_dir)
    )


def median_steps(records: Sequence[FinetuneRecord]) -> float | None:
    """The median over `records` with a reference of their steps to threshold, a censored run
    counting as beyond every budget: math.inf when the median falls on (or, for an even
    count, next to) a censored run; None when no record has a reference."""
    values = [
        math.inf if (steps := r.steps_to_threshold) is None else float(steps)
        for r in records
        if r.threshold is not None
    ]
    return float(statistics.median(values)) if values else None


def aggregate_finetune(runs: Iterable[FinetuneRecord]) -> list[FinetuneCell]:
    """One `FinetuneCell` per condition, sorted by dataset, algo, condition (`corruption_order`),
    then ensemble before none."""
    by_cell: dict[Phase2CellKey, list[FinetuneRecord]] = {}
    for run in runs:
        by_cell.setdefault(run.cell, []).append(run)
    cells = [_summarize(key, group) for key, group in by_cell.items()]
    return sorted(
        cells,
        key=lambda c: (
            c.dataset,
            c.algo,
            corruption_order(c.corruption),
            BONUS_ORDER.get(c.bonus_type, 9),
            c.bonus_type,
        ),
    )


def _summarize(key: Phase2CellKey, group: list[FinetuneRecord]) -> FinetuneCell:
    completed = sorted((r for r in group if r.status == "completed"), key=lambda r: r.seed)
    step0 = [v for r in completed if (v := r.step0_normalized_return) is not None]
    finals = [v for r in completed if (v := r.final_normalized_return) is not None]
    thresholds = [v for r in completed if (v := r.threshold) is not None]
    disagreements = [v for r in completed if (v := r.final_disagreement) is not None]
    dips = [v for r in completed if (v := r.dip) is not None]
    return FinetuneCell(
        algo=key.algo,
        dataset=key.dataset,
        source="/".join(sorted({r.source for r in group})),
        corruption=key.corruption,
        bonus_type=key.bonus_type,
        n=len(completed),
        seeds=tuple(r.seed for r in completed),
        step0_mean=mean_or_nan(step0),
        step0_std=sample_std(step0),
        final_mean=mean_or_nan(finals),
        final_std=sample_std(finals),
        threshold_mean=float(np.mean(thresholds)) if thresholds else math.nan,
        steps_median=median_steps(completed),
        reached=sum(r.reached is True for r in completed),
        censored=sum(r.reached is False for r in completed),
        no_reference=sum(r.reached is None for r in completed),
        budget=max(r.online_steps for r in group),
        disagreement_mean=mean_or_nan(disagreements),
        disagreement_std=sample_std(disagreements),
        diverged=sum(r.status == "diverged" for r in group),
        failed=sum(r.status == "failed" for r in group),
        running=sum(r.status == "running" for r in group),
        dip_mean=mean_or_nan(dips),
    )
