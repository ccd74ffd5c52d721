"""Phase I run folders as a tidy table, and that table aggregated over seeds per condition.

A condition (cell) is an algo, a dataset and a `CorruptionConfig`; its clean reference is the
cell of the same algo and dataset with the clean condition (`CorruptionConfig.is_clean`).
Return statistics use the completed runs only: a diverged run's last evaluation says nothing
about where training would have ended, so divergences are counted instead; failed and
still-running runs are counted too.

Run folders are read through `hybrid_rl.runs.folder.RunFolder` only; a folder whose files are
missing or damaged is listed as unreadable with the reason, never a crash.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from hybrid_rl.data.corruption import CLEAN, CorruptionConfig
from hybrid_rl.data.registry import normalized_score
from hybrid_rl.report.diagnostics import Diagnostics, run_diagnostics
from hybrid_rl.report.statistics import (
    NO_RUNS,
    Interval,
    interval_over_seeds,
    probability_of_improvement_interval,
)
from hybrid_rl.runs.folder import DamagedRunFile, RunFolder

Record = TypeVar("Record")
# A logged training metric: one value per log interval, None where it was not produced.
MetricSeries = tuple[float | None, ...]


@dataclass(frozen=True)
class CellKey:
    """A Phase I condition: the algorithm, the dataset and what was done to the data."""

    algo: str
    dataset: str
    corruption: CorruptionConfig

    @property
    def clean(self) -> CellKey:
        """The clean condition of the same algo and dataset: the reference of this one."""
        return CellKey(self.algo, self.dataset, CLEAN)


def corruption_order(corruption: CorruptionConfig) -> tuple[bool, str, float, float]:
    """Sort key of conditions: clean (and noise-only) first, then by removal mode, σ, k."""
    return (
        corruption.removes,
        corruption.removal,
        corruption.reward_noise_std,
        corruption.k_percent,
    )


class UnreadableRun(ValueError):
    """A run folder the report cannot use; the message says why (for the report's list)."""


@dataclass(frozen=True)
class KeptData:
    """What a run trained on after its corruption (config.json's corruption stats); returns
    normalized with D4RL's references (None without them)."""

    trajectories_before: int
    trajectories_after: int
    transitions_before: int
    transitions_after: int
    kept_normalized_mean: float | None
    kept_normalized_max: float | None


@dataclass(frozen=True)
class RunRecord:
    """One run folder: its condition, status, summary numbers and curves."""

    run_name: str
    run_dir: Path
    algo: str
    dataset: str  # dataset id, or a file's stem when the data came from a file without one
    source: str  # config.json's dataset.source: "d4rl" | "replica" | "minari" | "hdf5-file"
    corruption: CorruptionConfig
    seed: int
    status: str  # "completed" | "diverged" | "failed" | "running"
    final_normalized_return: float | None
    best_normalized_return: float | None
    eval_steps: tuple[int, ...]
    eval_normalized_returns: tuple[float, ...]
    train_steps: tuple[int, ...]
    train_metrics: dict[str, MetricSeries] = field(repr=False)  # aligned with train_steps
    # Mean normalized return of the dataset's trajectories before corruption (the behaviour
    # policy's level), when config.json records it and the environment has D4RL references.
    dataset_normalized_mean: float | None = None
    # Std over the episodes of each evaluation (aligned with eval_steps) and their number.
    eval_normalized_stds: tuple[float, ...] = ()
    eval_episodes: int = 10
    reward_scale: float = 1.0  # config.json's reward_scale (IQL: 1000 / return range)
    agent_config: dict[str, Any] = field(default_factory=dict, repr=False)
    git_commit: str | None = None  # of the code that ran it (config.json)
    kept: KeptData | None = None  # None for runs saved before the stats were recorded

    @property
    def cell(self) -> CellKey:
        return CellKey(self.algo, self.dataset, self.corruption)

    @property
    def diagnostics(self) -> Diagnostics:
        """TD-loss variance, Q level and Q fluctuation in comparable units (see
        `report.diagnostics`)."""
        return run_diagnostics(
            self.train_steps,
            self.train_metrics,
            self.eval_steps,
            self.reward_scale,
            self.agent_config,
        )

    @property
    def mean_loss_variance(self) -> float | None:
        """Mean of the logged rolling loss variances that are finite (critic loss; for BC,
        which has no critic, the actor loss); intervals that logged none are skipped."""
        logged = self.train_metrics.get("critic_loss_rolling_var", ())
        values = [v for v in logged if v is not None and math.isfinite(v)]
        return float(np.mean(values)) if values else None


@dataclass(frozen=True)
class CellSummary:
    """One condition over its seeds. Stds are sample stds (ddof=1); NaN when n < 2."""

    algo: str
    dataset: str
    source: str
    corruption: CorruptionConfig
    n: int  # completed runs, the ones behind the return statistics
    seeds: tuple[int, ...]  # of those runs
    final_mean: float
    final_std: float
    best_mean: float
    best_std: float
    final_change_pct: float | None  # vs the clean cell's final mean; None for the clean cell
    best_change_pct: float | None
    diverged: int
    failed: int
    running: int
    mean_loss_variance: float | None  # mean over completed runs of each run's mean
    # IQM of the final scores over the completed seeds, with the interval its seeds allow
    # (`statistics.interval_over_seeds`: a 95% bootstrap CI from 5 seeds, else their range).
    final_iqm: Interval = NO_RUNS
    # Diagnostics averaged over the completed runs that have them (None: none has).
    late_td_loss_variance: float | None = None
    late_td_loss_cv: float | None = None
    late_q_mean: float | None = None
    q_fluctuation: float | None = None
    run_dirs: tuple[Path, ...] = ()  # every run of the condition, whatever its status
    finals_by_seed: tuple[tuple[int, float], ...] = ()  # completed runs
    # P(a run of this condition ends above a clean run), with a bootstrap CI from 5 seeds a
    # side; None for the clean cell or without clean runs.
    improvement_vs_clean: Interval | None = None

    @property
    def finals(self) -> list[float]:
        return [score for _, score in self.finals_by_seed]

    @property
    def key(self) -> CellKey:
        return CellKey(self.algo, self.dataset, self.corruption)


def load_run(run_dir: str | Path) -> RunRecord:
    """Read one run folder (config.json and metrics.json, as written by `train_offline`).

    Raises `UnreadableRun` when a file is missing and `DamagedRunFile` (naming the file) when
    one cannot be parsed."""
    folder = RunFolder(Path(run_dir))
    saved, metrics = read_run_files(folder)
    config = saved["config"]
    provenance = saved.get("dataset") or {}
    summary = metrics.get("summary") or {}
    train = metrics.get("train", {})
    evaluation = metrics.get("eval", {})
    return RunRecord(
        run_name=saved.get("run_name", folder.name),
        run_dir=folder.path,
        algo=config["algo"],
        dataset=provenance.get("dataset_id") or dataset_label(config["dataset"]),
        source=provenance.get("source", "unknown"),
        corruption=saved_corruption(config),
        seed=int(config["seed"]),
        status=metrics["status"],
        final_normalized_return=_optional_float(summary.get("final_normalized_return")),
        best_normalized_return=_optional_float(summary.get("best_normalized_return")),
        eval_steps=tuple(evaluation.get("steps", ())),
        eval_normalized_returns=tuple(evaluation.get("normalized_return_mean", ())),
        train_steps=tuple(train.get("steps", ())),
        train_metrics=train_metric_series(train),
        dataset_normalized_mean=_dataset_normalized_mean(saved),
        eval_normalized_stds=tuple(evaluation.get("normalized_return_std", ())),
        eval_episodes=int(config.get("eval_episodes", 10)),
        reward_scale=float(saved.get("reward_scale") or 1.0),
        agent_config=dict(config.get("agent") or {}),
        git_commit=saved.get("git_commit"),
        kept=_kept_data(saved),
    )


def read_run_files(folder: RunFolder) -> tuple[dict[str, Any], dict[str, Any]]:
    """A run's saved config (config.json) and metrics (metrics.json).

    Raises `UnreadableRun` saying why when either is missing (a run that failed before it
    started has metrics.json only, holding the error) and `DamagedRunFile` when one cannot be
    parsed."""
    saved = folder.read_config()
    metrics = folder.read_metrics()
    if saved is None:
        error = ((metrics or {}).get("summary") or {}).get("error")
        if error is not None:
            raise UnreadableRun(f"failed before it started ({error})")
        raise UnreadableRun(f"{folder.config_path.name} is missing")
    if metrics is None:
        raise UnreadableRun(f"{folder.metrics_path.name} is missing (the run has not logged yet)")
    return saved, metrics


def saved_corruption(config: Mapping[str, Any]) -> CorruptionConfig:
    """The condition of a saved run config (config.json's "config": removal, k_percent,
    reward_noise_std and, when present, the attack settings, which runs saved before them
    lack: absent means none); canonical, so k = 0 is removal "none" whatever was saved."""
    attack = {
        name: config[name]
        for name in ("attack", "attack_mode", "attack_rate", "attack_scale")
        if name in config
    }
    return CorruptionConfig(
        config["removal"],
        float(config["k_percent"]),
        float(config["reward_noise_std"]),
        **attack,
    )


def train_metric_series(train: Mapping[str, Any]) -> dict[str, MetricSeries]:
    """metrics.json's "train" lists (besides "steps") as tuples, None kept where a metric was
    not produced in a log interval."""
    return {
        name: tuple(None if v is None else float(v) for v in values)
        for name, values in train.items()
        if name != "steps"
    }


def _dataset_normalized_mean(saved: dict[str, Any]) -> float | None:
    mean = ((saved.get("corruption") or {}).get("returns_before") or {}).get("mean")
    return _normalized(saved, mean)


def _kept_data(saved: dict[str, Any]) -> KeptData | None:
    stats = saved.get("corruption") or {}
    counts = (
        "trajectories_before",
        "trajectories_after",
        "transitions_before",
        "transitions_after",
    )
    if any(stats.get(name) is None for name in counts):
        return None
    kept = stats.get("returns_after") or {}
    return KeptData(
        int(stats["trajectories_before"]),
        int(stats["trajectories_after"]),
        int(stats["transitions_before"]),
        int(stats["transitions_after"]),
        _normalized(saved, kept.get("mean")),
        _normalized(saved, kept.get("max")),
    )


def _normalized(saved: dict[str, Any], value: float | None) -> float | None:
    """A raw return of the run's dataset in D4RL's normalized units, when it has references."""
    provenance = saved.get("dataset") or {}
    env = provenance.get("env_id") or provenance.get("dataset_id")
    if env is None or value is None:
        return None
    try:
        return float(normalized_score(env, value))
    except KeyError:  # an environment without D4RL reference scores
        return None


def load_runs(results_dir: str | Path) -> tuple[list[RunRecord], list[str]]:
    """Every Phase I run folder directly under `results_dir`, sorted by run name.

    Returns the records and, for each sub-folder that could not be read, a line saying why
    (e.g. a run that failed before writing config.json, or a damaged metrics.json).
    """
    return load_run_folders(results_dir, load_run)


def load_run_folders(
    results_dir: str | Path, load: Callable[[Path], Record]
) -> tuple[list[Record], list[str]]:
    """`load(run_dir)` for every run folder directly under `results_dir`, sorted by name, and
    for each sub-folder that could not be read a line "<name>: <why>" (a damaged file: the
    `DamagedRunFile` message, which names it)."""
    records: list[Record] = []
    unreadable: list[str] = []
    root = Path(results_dir)
    for run_dir in sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []:
        folder = RunFolder(run_dir)
        if not folder.metrics_path.exists() and not folder.config_path.exists():
            continue  # not a run folder (e.g. the quick runs' folder)
        try:
            records.append(load(run_dir))
        except (UnreadableRun, DamagedRunFile) as err:
            unreadable.append(f"{folder.name}: {err}")
        except (OSError, ValueError, KeyError, TypeError) as err:
            unreadable.append(f"{folder.name}: {type(err).__name__}: {err}")
    return records, unreadable


def aggregate(runs: Iterable[RunRecord]) -> list[CellSummary]:
    """One `CellSummary` per condition, sorted by dataset, algo, then `corruption_order`."""
    by_cell: dict[CellKey, list[RunRecord]] = {}
    for run in runs:
        by_cell.setdefault(run.cell, []).append(run)
    partial = {key: _summarize(key, group) for key, group in by_cell.items()}
    cells = []
    for key, stats in partial.items():
        clean = partial.get(key.clean)
        is_clean = key.corruption.is_clean
        stats["final_change_pct"] = None if is_clean else _change(stats, clean, "final_mean")
        stats["best_change_pct"] = None if is_clean else _change(stats, clean, "best_mean")
        stats["improvement_vs_clean"] = (
            None
            if is_clean
            or clean is None
            or not clean["finals_by_seed"]
            or not stats["finals_by_seed"]
            else probability_of_improvement_interval(
                [[v for _, v in stats["finals_by_seed"]]],
                [[v for _, v in clean["finals_by_seed"]]],
            )
        )
        cells.append(CellSummary(**stats))
    return sorted(cells, key=lambda c: (c.dataset, c.algo, corruption_order(c.corruption)))


def clean_cell(cells: Sequence[CellSummary], cell: CellSummary) -> CellSummary | None:
    """The clean cell of `cell`'s algo and dataset, if it is in `cells`."""
    clean = cell.key.clean
    return next((other for other in cells if other.key == clean), None)


def percent_change(value: float, reference: float) -> float | None:
    """100 · (value − reference) / |reference|; None when the reference is 0 or not finite."""
    if not _finite(reference) or reference == 0 or not _finite(value):
        return None
    return 100.0 * (value - reference) / abs(reference)


def _summarize(key: CellKey, group: list[RunRecord]) -> dict[str, Any]:
    completed = sorted((r for r in group if r.status == "completed"), key=lambda r: r.seed)
    finals = [r.final_normalized_return for r in completed if r.final_normalized_return is not None]
    bests = [r.best_normalized_return for r in completed if r.best_normalized_return is not None]
    variances = [v for r in completed if (v := r.mean_loss_variance) is not None]
    sources = sorted({r.source for r in group})
    diagnostics = [r.diagnostics for r in completed]
    return {
        "algo": key.algo,
        "dataset": key.dataset,
        "source": "/".join(sources),
        "corruption": key.corruption,
        "n": len(completed),
        "seeds": tuple(r.seed for r in completed),
        "final_mean": mean_or_nan(finals),
        "final_std": sample_std(finals),
        "best_mean": mean_or_nan(bests),
        "best_std": sample_std(bests),
        "diverged": sum(r.status == "diverged" for r in group),
        "failed": sum(r.status == "failed" for r in group),
        "running": sum(r.status == "running" for r in group),
        "mean_loss_variance": float(np.mean(variances)) if variances else None,
        "final_iqm": interval_over_seeds([finals]),
        "late_td_loss_variance": mean_or_none([d.late_td_loss_variance for d in diagnostics]),
        "late_td_loss_cv": mean_or_none([d.late_td_loss_cv for d in diagnostics]),
        "late_q_mean": mean_or_none([d.late_q_mean for d in diagnostics]),
        "q_fluctuation": mean_or_none([d.q_fluctuation for d in diagnostics]),
        "run_dirs": tuple(r.run_dir for r in sorted(group, key=lambda r: r.seed)),
        "finals_by_seed": tuple(
            (r.seed, r.final_normalized_return)
            for r in completed
            if r.final_normalized_return is not None
        ),
    }


def mean_or_none(values: Sequence[float | None]) -> float | None:
    """The mean of the values that are not None (and finite); None without any."""
    kept = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(kept)) if kept else None


def _change(stats: dict[str, Any], clean: dict[str, Any] | None, name: str) -> float | None:
    return None if clean is None else percent_change(stats[name], clean[name])


def mean_or_nan(values: Sequence[float]) -> float:
    """The mean, NaN without values."""
    return float(np.mean(values)) if values else math.nan


def sample_std(values: Sequence[float]) -> float:
    """The sample std (ddof = 1), NaN with fewer than two values."""
    return float(np.std(values, ddof=1)) if len(values) >= 2 else math.nan


def _finite(value: Any) -> bool:
    return value is not None and math.isfinite(value)


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


def dataset_label(dataset: str) -> str:
    """A dataset id as is; a file path as its stem (as in run names)."""
    return Path(dataset).stem if dataset.lower().endswith((".hdf5", ".h5")) else dataset
