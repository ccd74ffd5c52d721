"""A whole study in one go: Phase I, then Phase II on its checkpoints, then one report.

By default one algo (IQL: its updates cost about a tenth of CQL's on a CPU) on one dataset
(halfcheetah-medium-v2; the quick study: hopper-medium-replay-v2), k ∈ {0, 30, 60} %,
fine-tuned in three arms from the same Phase I checkpoints (`STUDY_ARMS`): the ensemble bonus
as specified, no bonus as specified, and the "enoto" preset of `phase2_options.PHASE2_PRESETS` with
its bonus. Both phases run on one process pool: a Phase II run starts as soon as its Phase I
run has finished, so the pool stays full. Runs live in the usual Phase I and Phase II folders
(a quick study shares its runs with `run_phase1.py --quick` and `run_phase2.py --quick` given
the same dataset and steps); the figures and the report go to the study's own folder.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from hybrid_rl.launch.datasets import datasets_loaded_once
from hybrid_rl.launch.executor import GridSummary, RemoteLauncher, run_grid
from hybrid_rl.launch.options import option
from hybrid_rl.launch.phase1_grid import QUICK_SUBDIR, Phase1Grid
from hybrid_rl.launch.phase2_grid import Phase2Grid
from hybrid_rl.report.report_study import StudyOutputs, write_study_outputs
from hybrid_rl.report.results import dataset_label
from hybrid_rl.runs.spec import RunSpec

Grid = TypeVar("Grid", Phase1Grid, Phase2Grid)
STUDY_ALGOS = ("iql",)
STUDY_DATASETS = ("halfcheetah-medium-v2",)
# The quick study needs data where top-k removal bites within its budget: on halfcheetah-medium
# it does not at any budget; on hopper-medium-replay IQL (seed 0) scored 28 clean, 16 at k = 30
# and 13 at k = 60 after 30k steps, 23 / 16 / 7 after 20k (docs/results-phase1.md, "Where
# top-k removal bites"). Its replica (402k transitions) builds in about half the time of
# halfcheetah-medium's 1M.
QUICK_STUDY_DATASETS = ("hopper-medium-replay-v2",)
QUICK_STUDY_PHASE1_STEPS = 30_000
STUDY_PLOTS_DIR = "plots_study"
# preset:bonus_type of each Phase II arm (launch.phase2_grid.Phase2Grid.arms). Each arm of a quick
# study adds about 1-2 min of IQL on 2 cores (plus the preset's 5,000 warm-up updates).
STUDY_ARMS = ("spec:ensemble", "spec:none", "enoto:ensemble")
# Phase II fields that choose arms; given any of them, the study does not impose STUDY_ARMS.
_ARM_FIELDS = ("arms", "bonus_types", "phase2_presets")


@dataclass(frozen=True)
class Study:
    """A Phase I grid, the Phase II grid fine-tuning its runs, and where the report goes."""

    phase1: Phase1Grid
    phase2: Phase2Grid
    plots_dir: str = option(STUDY_PLOTS_DIR, "plots_dir", "figures and report.md")

    @classmethod
    def create(
        cls,
        quick: bool = False,
        plots_dir: str | None = None,
        phase1: Mapping[str, Any] | None = None,
        phase2: Mapping[str, Any] | None = None,
        **shared: Any,
    ) -> Study:
        """The study of `STUDY_ALGOS` on `STUDY_DATASETS` with the grids' other defaults (with
        `quick`: on `QUICK_STUDY_DATASETS`, `QUICK_STUDY_PHASE1_STEPS` offline steps and the
        grids' other `quick()` settings). `shared` sets fields both grids have (algos,
        datasets, k_percents, seeds, device, eval_episodes); `phase1` / `phase2` set fields of
        one grid. Phase II reads the Phase I grid's results. Evaluation and logging intervals
        longer than a run's budget are cut to the budget, so a short study still evaluates
        its runs at their end."""
        datasets = QUICK_STUDY_DATASETS if quick else STUDY_DATASETS
        shared = {"algos": STUDY_ALGOS, "datasets": datasets, **shared}
        first = {**shared, **(phase1 or {})}
        if quick:
            first.setdefault("total_steps", QUICK_STUDY_PHASE1_STEPS)
        grid1 = Phase1Grid.quick(**first) if quick else Phase1Grid(**first)
        second = {"phase1_results_dir": grid1.results_dir, **shared, **(phase2 or {})}
        if not any(name in second for name in _ARM_FIELDS):
            second["arms"] = STUDY_ARMS
        grid2 = Phase2Grid.quick(**second) if quick else Phase2Grid(**second)
        default_plots = f"{STUDY_PLOTS_DIR}/{QUICK_SUBDIR}" if quick else STUDY_PLOTS_DIR
        return cls(
            phase1=_fit_intervals(grid1, grid1.total_steps),
            phase2=_fit_intervals(grid2, grid2.online_steps),
            plots_dir=plots_dir or default_plots,
        )

    def configs(self) -> list[RunSpec]:
        """Every Phase I run (seeds grouped per `seeds_per_process`), then every Phase II run
        (each waits for its Phase I run)."""
        return [*self.phase1.run_specs(self.phase1.expand()), *self.phase2.expand()]

    def validate(self) -> list[RunSpec]:
        """Everything a run of the study would refuse, checked before any run starts (see
        `Phase1Grid.validate`); returns `configs()`."""
        return [*self.phase1.run_specs(self.phase1.validate()), *self.phase2.validate()]

    def describe(self) -> list[str]:
        """What the study runs, in a few sentences (the report's introduction)."""
        p1, p2 = self.phase1, self.phase2
        n1, n2 = len(p1.expand()), len(p2.expand())
        seeds = f"seed{'s' if len(p1.seeds) != 1 else ''} {', '.join(map(str, p1.seeds))}"
        return [
            f"Phase I: {n1} offline run{'s' if n1 != 1 else ''} "
            f"({', '.join(a.upper() for a in p1.algos)} on {_datasets_text(p1.datasets)}, "
            f"top-k removal with k ∈ {{{', '.join(f'{k:g}' for k in p1.k_percents)}}} %, "
            f"{seeds}) of {p1.total_steps:,} gradient steps, in `{p1.results_dir}`.",
            f"Phase II: {n2} online run{'s' if n2 != 1 else ''} of {p2.online_steps:,} env "
            f"steps from those checkpoints, arms {_arms_text(p2)} "
            f"(λ = {p2.bonus_coeff:g}, {p2.n_ensemble} critic members, online share of each "
            f"batch {p2.online_ratio:g}), evaluated every {p2.eval_every:,} steps, in "
            f"`{p2.results_dir}`.",
        ]


def _arms_text(grid: Phase2Grid) -> str:
    """Each arm as reports label it: "ensemble (as specified), none (as specified), ..."."""
    labels = [
        grid.arm_config(preset, bonus_type).arm_label for preset, bonus_type in grid.arm_pairs()
    ]
    return ", ".join(labels)


def _fit_intervals(grid: Grid, budget: int) -> Grid:
    eval_every = min(grid.eval_every, budget)
    # Without a log_every given, the grid derives it from the eval_every cut here.
    log_every = None if grid.log_every is None else min(grid.log_every, eval_every)
    return dataclasses.replace(grid, eval_every=eval_every, log_every=log_every)


@dataclass(frozen=True)
class StudyResult:
    summary: GridSummary | None  # None with plot_only
    outputs: StudyOutputs
    wall_time_s: float


def run_study(
    study: Study,
    workers: int | None = None,
    threads: int | None = None,
    progress: bool = True,
    plot_only: bool = False,
    launcher: RemoteLauncher | None = None,
) -> StudyResult:
    """Prepare the data, run both phases (finished runs are skipped, failures recorded) in a
    local pool of `workers` or with `launcher` (see `run_grid`), then write the figures and
    `study.plots_dir/report.md`."""
    start = time.monotonic()
    summary = None
    if not plot_only:
        with datasets_loaded_once((d, study.phase1.source) for d in study.phase1.datasets):
            summary = run_grid(
                study.configs(), workers, threads, progress, unit="step", launcher=launcher
            )
    outputs = write_study_outputs(
        study.phase1.results_dir,
        study.phase2.results_dir,
        study.plots_dir,
        [c.run_name for c in study.phase1.expand()],
        [c.run_name for c in study.phase2.expand()],
        title=study_title(study),
        intro=study.describe(),
    )
    return StudyResult(summary, outputs, time.monotonic() - start)


def study_title(study: Study) -> str:
    algos = ", ".join(a.upper() for a in study.phase1.algos)
    datasets = _datasets_text(study.phase1.datasets)
    return f"Study: {algos} on {datasets}, offline under corruption, then online recovery"


def _datasets_text(datasets: Sequence[str]) -> str:
    return ", ".join(dataset_label(d) for d in datasets)


def summary_lines(result: StudyResult) -> Sequence[str]:
    """What the study did and where its outputs are."""
    lines = []
    if result.summary is not None:
        lines.append(result.summary.line())
    outputs = result.outputs
    figures = len(outputs.phase1.plots) + len(outputs.phase2.plots)
    html = "" if outputs.html is None else f", {outputs.html}"
    lines.append(f"wrote {outputs.report}{html} and {figures} figures (PNG and PDF)")
    minutes, seconds = divmod(round(result.wall_time_s), 60)
    lines.append(f"study wall time: {minutes}m{seconds:02d}s")
    return lines
