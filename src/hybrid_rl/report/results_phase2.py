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

Beside it, `report.recovery` measures recovery relative to the corrupted start against the
clean reference of the condition pooled over its seeds (each seed's clean run: the mean of its
last evaluations), and the two arms (bonus and none) are compared paired on seed
(`compare_arms`).
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
from hybrid_rl.finetune_config import FinetuneConfig
from hybrid_rl.report.recovery import (
    CLEAN_LEVELS,
    RECOVERY_LEVELS,
    CleanReference,
    CurveRecovery,
    PooledReference,
    Recovery,
    clean_reference,
    curve_recovery,
    dip,
    pooled_reference,
    recovery_metrics,
    time_averaged_score,
)
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
from hybrid_rl.report.statistics import (
    NO_RUNS,
    Interval,
    PairedDifference,
    interval_over_seeds,
    paired_difference,
    probability_of_improvement_interval,
)
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
    eval_normalized_stds: tuple[float, ...] = ()  # std over each evaluation's episodes
    eval_episodes: int = 10
    clean_reference: CleanReference | None = None  # the clean Phase I run, same seed
    # The clean references of every seed of the same algo and dataset, pooled (set by
    # `load_finetune_runs`, which sees them all).
    pooled_reference: PooledReference | None = None
    # The same arm fine-tuned from the clean (k = 0) checkpoint of the same seed, as
    # (eval steps, scores); None when that run is not among the results (or is this one).
    clean_finetuned_curve: tuple[tuple[int, ...], tuple[float, ...]] | None = None
    git_commit: str | None = None

    @property
    def cell(self) -> Phase2CellKey:
        return Phase2CellKey(self.algo, self.dataset, self.corruption, self.bonus_type)

    @property
    def auc(self) -> float | None:
        """The time-averaged normalized score over fine-tuning (None without evaluations)."""
        if not self.eval_normalized_returns:
            return None
        return time_averaged_score(self.eval_steps, self.eval_normalized_returns)

    @property
    def dip_depth(self) -> float | None:
        """How far the score falls below the step-0 evaluation at its lowest (≥ 0); None
        without a step-0 evaluation."""
        if self.step0_normalized_return is None:
            return None
        return dip(self.eval_steps, self.eval_normalized_returns)[0]

    @property
    def recovery(self) -> Recovery | None:
        """Recovery relative to the step-0 score against the pooled clean reference; None
        without a reference or a step-0 evaluation."""
        if self.pooled_reference is None:
            return None
        return recovery_metrics(
            self.eval_steps,
            self.eval_normalized_returns,
            self.eval_normalized_stds,
            self.eval_episodes,
            self.pooled_reference,
        )

    @property
    def curve_recovery(self) -> CurveRecovery | None:
        """Recovery toward the clean agent's own fine-tuned curve at the same online steps;
        None without that run."""
        if self.clean_finetuned_curve is None:
            return None
        return curve_recovery(
            self.eval_steps, self.eval_normalized_returns, *self.clean_finetuned_curve
        )

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
    # IQM over the completed seeds with the interval their number allows (a 95% bootstrap CI
    # from 5 seeds, else their range: `statistics.interval_over_seeds`).
    final_iqm: Interval = NO_RUNS
    auc_iqm: Interval = NO_RUNS
    dip_iqm: Interval = NO_RUNS
    # Recovery: runs with a clean reference, those of them with no gap to close, the IQM of
    # the final recovery fraction over the others, and per level the median steps to it.
    with_clean_reference: int = 0
    clean_seeds: int = 0  # seeds pooled in the clean reference of the runs' algo and dataset
    no_gap: int = 0
    gap_mean: float = math.nan  # mean over those runs of robust clean − step-0 score
    recovery_iqm: Interval = NO_RUNS
    recovery_steps_median: dict[float, float | None] = field(default_factory=dict)
    # Per fraction of the pooled clean reference, the median smoothed steps to it over the
    # runs with a reference (math.inf: the median run did not reach it).
    clean_steps_median: dict[float, float | None] = field(default_factory=dict)
    # Toward the clean agent's own fine-tuned curve (same arm and seed): the runs that have
    # one, the IQM of their final recovery fraction, the median steps to match it.
    curve_targets: int = 0
    curve_recovery_iqm: Interval = NO_RUNS
    curve_steps_median: float | None = None
    run_dirs: tuple[Path, ...] = ()
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
    config = FinetuneConfig.from_saved(saved["config"])
    provenance = saved.get("dataset") or {}
    summary = metrics.get("summary") or {}
    evaluation = metrics.get("eval", {})
    train = metrics.get("train", {})
    final = summary.get("final_normalized_return")
    reference = clean_reference_of(config, phase1_results_dir)
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
        clean_offline_score=None if reference is None else reference.final,
        eval_steps=tuple(evaluation.get("steps", ())),
        eval_normalized_returns=tuple(evaluation.get("normalized_return_mean", ())),
        train_steps=tuple(train.get("steps", ())),
        train_metrics=train_metric_series(train),
        eval_normalized_stds=tuple(evaluation.get("normalized_return_std", ())),
        eval_episodes=config.eval_episodes,
        clean_reference=reference,
        git_commit=saved.get("git_commit"),
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
    reference = clean_reference_of(config, phase1_results_dir)
    return None if reference is None else reference.final


def clean_reference_of(
    config: FinetuneConfig, phase1_results_dir: str | os.PathLike[str] | None = None
) -> CleanReference | None:
    """The completed clean Phase I run of `config`'s algo, dataset and seed as a reference
    (its final score, and the robust mean of its last evaluations); None if it is missing,
    damaged or not completed."""
    clean = dataclasses.replace(
        config,
        removal=CLEAN.removal,
        k_percent=CLEAN.k_percent,
        reward_noise_std=CLEAN.reward_noise_std,
    )
    if phase1_results_dir is not None:
        clean = dataclasses.replace(clean, phase1_results_dir=str(phase1_results_dir))
    train_config = clean.phase1_train_config()
    try:
        metrics = train_config.folder.read_metrics()
    except DamagedRunFile:
        return None
    if metrics is None or metrics.get("status") != "completed":
        return None
    score = (metrics.get("summary") or {}).get("final_normalized_return")
    if score is None:
        return None
    evaluation = metrics.get("eval") or {}
    scores = [float(v) for v in evaluation.get("normalized_return_mean", ())]
    reference = clean_reference(train_config.run_name, scores)
    if reference is None:
        return None
    # the summary's final score is the spec's reference, whatever the list holds
    return dataclasses.replace(reference, final=float(score))


def load_finetune_runs(
    results_dir: str | Path, phase1_results_dir: str | os.PathLike[str] | None = None
) -> tuple[list[FinetuneRecord], list[str]]:
    """Every Phase II run folder directly under `results_dir`, sorted by run name, each with
    the clean reference of its algo and dataset pooled over the seeds (`with_pooled_references`),
    and a line for each sub-folder that could not be read (see `load_finetune_run`)."""
    records, unreadable = load_run_folders(
        results_dir, lambda run_dir: load_finetune_run(run_dir, phase1_results_dir)
    )
    return with_clean_finetuned_curves(with_pooled_references(records)), unreadable


def with_clean_finetuned_curves(records: Sequence[FinetuneRecord]) -> list[FinetuneRecord]:
    """`records`, each corrupted run given the curve of the completed run of the same algo,
    dataset, arm and seed fine-tuned from the clean (k = 0) checkpoint, when there is one."""
    clean = {
        (r.algo, r.dataset, r.bonus_type, r.seed): (r.eval_steps, r.eval_normalized_returns)
        for r in records
        if r.corruption.is_clean and r.status == "completed"
    }
    return [
        record
        if record.corruption.is_clean
        else dataclasses.replace(
            record,
            clean_finetuned_curve=clean.get(
                (record.algo, record.dataset, record.bonus_type, record.seed)
            ),
        )
        for record in records
    ]


def with_pooled_references(records: Sequence[FinetuneRecord]) -> list[FinetuneRecord]:
    """`records`, each given the clean reference pooled over every seed whose clean Phase I
    run of the same algo and dataset one of them found (one reference per seed)."""
    by_seed: dict[tuple[str, str], dict[int, CleanReference]] = {}
    for record in records:
        if record.clean_reference is not None:
            by_seed.setdefault((record.algo, record.dataset), {})[record.seed] = (
                record.clean_reference
            )
    pooled = {
        key: pooled_reference([references[s] for s in sorted(references)])
        for key, references in by_seed.items()
    }
    return [
        dataclasses.replace(record, pooled_reference=pooled.get((record.algo, record.dataset)))
        for record in records
    ]


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
    recoveries = [rec for r in completed if (rec := r.recovery) is not None]
    with_gap = [rec for rec in recoveries if not rec.no_gap]
    dips = [v for r in completed if (v := r.dip) is not None]
    toward_curve = [toward for r in completed if (toward := r.curve_recovery) is not None]
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
        final_iqm=interval_over_seeds([finals]),
        auc_iqm=interval_over_seeds([[v for r in completed if (v := r.auc) is not None]]),
        dip_iqm=interval_over_seeds([[v for r in completed if (v := r.dip_depth) is not None]]),
        with_clean_reference=len(recoveries),
        clean_seeds=max((rec.clean_seeds for rec in recoveries), default=0),
        no_gap=len(recoveries) - len(with_gap),
        gap_mean=mean_or_nan([rec.gap for rec in recoveries]),
        recovery_iqm=interval_over_seeds(
            [[rec.final_recovery for rec in with_gap if rec.final_recovery is not None]]
        ),
        recovery_steps_median={
            level: _median_censored([rec.steps_to_recovery[level] for rec in with_gap])
            for level in RECOVERY_LEVELS
        },
        clean_steps_median={
            fraction: _median_censored([rec.steps_to_clean[fraction] for rec in recoveries])
            for fraction in CLEAN_LEVELS
        },
        curve_targets=len(toward_curve),
        curve_recovery_iqm=interval_over_seeds(
            [[rec.final_fraction for rec in toward_curve if rec.final_fraction is not None]]
        ),
        curve_steps_median=_median_censored([rec.steps_to_match for rec in toward_curve]),
        run_dirs=tuple(r.run_dir for r in sorted(group, key=lambda r: r.seed)),
        dip_mean=mean_or_nan(dips),
    )


def _median_censored(steps: Sequence[int | None]) -> float | None:
    """The median with None (not reached) counting as beyond every budget (math.inf); None
    without values."""
    values = [math.inf if s is None else float(s) for s in steps]
    return float(statistics.median(values)) if values else None


@dataclass(frozen=True)
class ArmComparison:
    """The ensemble bonus against none for one algo, dataset, Phase I condition and variant
    (the spec's arms, or a preset's bonus arm against the same preset without it), paired on
    seed (both arms start from the same checkpoint and share evaluation seeds)."""

    algo: str
    dataset: str
    corruption: CorruptionConfig
    variant: str  # "" for the spec's arms, else the arms' shared " (enoto preset)" suffix
    final: PairedDifference  # bonus − none, final normalized score
    auc: PairedDifference  # bonus − none, time-averaged score
    dip: PairedDifference  # bonus − none, dip depth
    improvement: Interval  # P(a bonus run ends above a no-bonus run)
    run_dirs: tuple[Path, ...]


def _by_seed(group: list[FinetuneRecord], metric: str) -> dict[int, float]:
    """`metric` (a record attribute) of each run of `group` by seed, where it has one."""
    values: dict[int, float] = {}
    for run in group:
        value = getattr(run, metric)
        if value is not None:
            values[run.seed] = float(value)
    return values


def compare_arms(runs: Iterable[FinetuneRecord]) -> list[ArmComparison]:
    """One `ArmComparison` per algo × dataset × condition × variant that has completed runs
    in both its bonus and its no-bonus arm, in the cells' order, the spec's pair first."""
    completed = [r for r in runs if r.status == "completed"]
    groups: dict[tuple[str, str, CorruptionConfig], dict[str, list[FinetuneRecord]]] = {}
    for run in completed:
        arms = groups.setdefault((run.algo, run.dataset, run.corruption), {})
        arms.setdefault(run.bonus_type, []).append(run)
    comparisons = []
    for (algo, dataset, corruption), arms in sorted(
        groups.items(), key=lambda kv: (kv[0][1], kv[0][0], corruption_order(kv[0][2]))
    ):
        variants = sorted({arm[len("ensemble") :] for arm in arms if arm.startswith("ensemble")})
        for variant in variants:
            bonus, plain = arms["ensemble" + variant], arms.get("none" + variant, [])
            if not plain:
                continue
            bonus_finals = _by_seed(bonus, "final_normalized_return")
            plain_finals = _by_seed(plain, "final_normalized_return")
            comparisons.append(
                ArmComparison(
                    algo=algo,
                    dataset=dataset,
                    corruption=corruption,
                    variant=variant,
                    final=paired_difference(bonus_finals, plain_finals),
                    auc=paired_difference(_by_seed(bonus, "auc"), _by_seed(plain, "auc")),
                    dip=paired_difference(
                        _by_seed(bonus, "dip_depth"), _by_seed(plain, "dip_depth")
                    ),
                    improvement=probability_of_improvement_interval(
                        [list(bonus_finals.values())], [list(plain_finals.values())]
                    ),
                    run_dirs=tuple(r.run_dir for r in sorted(bonus + plain, key=lambda r: r.seed)),
                )
            )
    return comparisons
