"""A study's plan before anything runs: its runs, steps and CPU-hours, and its wall time on
this machine and on clusters of N nodes, at the wall-time estimate's measured speeds
(`launch.estimate`, the one home of those speeds). Nothing is run or written.

The wall time comes from simulating how the runs are scheduled, not from total time / slots:
whenever a slot (one single-threaded run) is free, the first run in the study's order whose
prerequisite has finished starts there, as `launch.executor`'s queue does. A Phase II run
cannot start before its Phase I run ends, so a long Phase I run and its Phase II run bound
the study's wall time however many nodes there are.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from hybrid_rl.launch import estimate
from hybrid_rl.launch.estimate import data_preparation, run_seconds
from hybrid_rl.launch.options import SettingError, option
from hybrid_rl.runs.spec import RunCost, RunSpec

HOUR = 3600.0


@dataclass(frozen=True)
class PlanOptions:
    """Whether to print the plan instead of running, and the clusters it estimates."""

    plan: bool = option(
        False,
        "plan",
        "print the runs, steps, CPU-hours and estimated wall time here and on --plan_nodes "
        "nodes, then exit: nothing is run or written",
    )
    plan_nodes: tuple[int, ...] = option(
        (1, 4, 16, 36), "plan_nodes", "cluster sizes, in nodes, the plan estimates"
    )
    plan_cores: int = option(
        2, "plan_cores", "cores per node of --plan_nodes: one single-threaded run on each"
    )

    def __post_init__(self) -> None:
        bad = [n for n in self.plan_nodes if n < 1]
        if bad or not self.plan_nodes:
            raise SettingError("plan_nodes", f"--plan_nodes must each be at least 1, got {bad}")
        if self.plan_cores < 1:
            raise SettingError(
                "plan_cores", f"--plan_cores must be at least 1, got {self.plan_cores}"
            )


@dataclass(frozen=True)
class PlannedRun:
    name: str
    cost: RunCost
    steps: int
    seconds: float  # on one single-threaded worker
    prerequisite: str | None  # the name of the planned run it waits for


def planned_runs(configs: Sequence[RunSpec]) -> list[PlannedRun]:
    """Every run of `configs` in order, finished or not, timed by `estimate.run_seconds`. A
    prerequisite that is not among `configs` (a Phase I run of an earlier grid) is taken as
    finished. A seed group (several runs in one process) is planned as one, waited for by
    each of its runs' folders."""
    names = {folder.key: c.run_name for c in configs for folder in c.folders}
    return [
        PlannedRun(
            c.run_name,
            c.cost,
            c.budget,
            run_seconds(c),
            None if c.prerequisite is None else names.get(c.prerequisite.key),
        )
        for c in configs
    ]


def simulate(runs: Sequence[PlannedRun], slots: int) -> dict[str, tuple[float, float]]:
    """(start, end) of each run, in seconds from the start, on `slots` single-threaded slots:
    whenever a slot is free, the first waiting run (in the order of `runs`) whose
    prerequisite has ended starts there."""
    times: dict[str, tuple[float, float]] = {}
    ended: set[str] = set()
    waiting = list(runs)
    running: list[tuple[float, str]] = []  # a heap of (end, name)
    now = 0.0
    while waiting or running:
        while len(running) < slots:
            ready = next(
                (r for r in waiting if r.prerequisite is None or r.prerequisite in ended), None
            )
            if ready is None:
                break
            waiting.remove(ready)
            times[ready.name] = (now, now + ready.seconds)
            heapq.heappush(running, (now + ready.seconds, ready.name))
        now, name = heapq.heappop(running)
        ended.add(name)
    return times


@dataclass(frozen=True)
class StudyPlan:
    """The runs of a study (or grid) with their times, and the data preparation before them."""

    runs: tuple[PlannedRun, ...]
    data_seconds: float  # replica builds before the first run, on a node without the data
    data_lines: tuple[str, ...]

    @classmethod
    def of(cls, configs: Sequence[RunSpec]) -> StudyPlan:
        data_seconds, data_lines = data_preparation(configs)
        return cls(tuple(planned_runs(configs)), data_seconds, tuple(data_lines))

    @property
    def cpu_seconds(self) -> float:
        return sum(r.seconds for r in self.runs)

    @property
    def longest_chain_seconds(self) -> float:
        """The longest run plus the run it waits for: no number of slots finishes sooner."""
        seconds = {r.name: r.seconds for r in self.runs}
        return max(
            (r.seconds + seconds.get(r.prerequisite or "", 0.0) for r in self.runs), default=0.0
        )

    def wall_seconds(self, slots: int) -> float:
        """Data preparation, then the simulated schedule's last end on `slots` slots."""
        ends = [end for _, end in simulate(self.runs, slots).values()]
        return self.data_seconds + max(ends, default=0.0)

    def bound_seconds(self, slots: int) -> float:
        """No schedule beats this: max(CPU time / slots, longest chain), plus the data."""
        return self.data_seconds + max(self.cpu_seconds / slots, self.longest_chain_seconds)

    def lines(self, workers: int, options: PlanOptions) -> list[str]:
        """The plan as text: speeds, each kind of run's cost, totals, and the wall time on
        `workers` slots here and on each cluster of `options`."""
        phases = list(dict.fromkeys(r.cost.phase for r in self.runs))
        counts = ", ".join(
            f"{_count(r for r in self.runs if r.cost.phase == p)} {p}" for p in phases
        )
        rates = sorted(estimate.UPDATES_PER_SECOND.items())
        speeds = ", ".join(f"{algo.upper()} {rate:g}" for algo, rate in rates)
        lines = [
            f"Plan: {counts} runs; nothing is run or written.",
            f"Speeds (launch/estimate.py, measured in docs/benchmarks.md): one single-threaded "
            f"run does {speeds} updates/s; an evaluation episode takes "
            f"{estimate.EVAL_SECONDS_PER_EPISODE:g} s, a run's start "
            f"{estimate.RUN_START_SECONDS:g} s.",
            "",
            "Each run, on one single-threaded worker:",
            "",
            *_table(
                ("phase", "algo", "runs", "steps", "updates per step", "evaluations", "hours"),
                [
                    (
                        run.cost.phase,
                        run.cost.algo.upper(),
                        str(_count(same)),
                        f"{run.steps // run.cost.runs:,} {run.cost.step_unit}",
                        f"{estimate.updates_per_step(run.cost, run.steps):.2f}",
                        f"{run.cost.evaluations} × {run.cost.eval_episodes} episodes",
                        f"{run.seconds / run.cost.runs / HOUR:.2f}",
                    )
                    for same in _kinds(self.runs)
                    for run in same[:1]
                ],
            ),
            "",
            "All runs:",
            "",
            *_table(("phase", "algo", "runs", "steps", "CPU-hours"), self._total_rows()),
            "",
            "Wall time (a Phase II run starts when its Phase I run ends; a free slot takes the "
            "first ready run in the study's order, as the local pool does):",
            "",
            *_table(
                ("where", "slots", "wall time", "bound: max(CPU-h / slots, longest chain)"),
                [
                    self._wall_row(f"this machine ({workers} worker{_s(workers)})", workers),
                    *(
                        self._wall_row(
                            f"{n} node{_s(n)} × {options.plan_cores} core{_s(options.plan_cores)}",
                            n * options.plan_cores,
                        )
                        for n in options.plan_nodes
                    ),
                ],
                left=1,
            ),
            "",
            f"Longest chain (a run and the run it waits for): "
            f"{_duration(self.longest_chain_seconds)}.",
        ]
        if self.data_lines:
            lines += [
                f"{line}: included above, on each node without it" for line in self.data_lines
            ]
        return lines

    def _total_rows(self) -> list[tuple[str, ...]]:
        groups: dict[tuple[str, str], list[PlannedRun]] = {}
        for run in self.runs:
            groups.setdefault((run.cost.phase, run.cost.algo), []).append(run)
        rows = [
            (
                phase,
                algo.upper(),
                str(_count(runs)),
                _steps_text(runs),
                f"{sum(r.seconds for r in runs) / HOUR:.1f}",
            )
            for (phase, algo), runs in groups.items()
        ]
        everything = ("all", "", str(_count(self.runs)), "", f"{self.cpu_seconds / HOUR:.1f}")
        return [*rows, everything]

    def _wall_row(self, where: str, slots: int) -> tuple[str, ...]:
        return (
            where,
            str(slots),
            _duration(self.wall_seconds(slots)),
            _duration(self.bound_seconds(slots)),
        )


def _kinds(runs: Sequence[PlannedRun]) -> list[list[PlannedRun]]:
    """The runs in groups that cost the same, phase by phase, algos sorted."""
    kinds: dict[tuple[object, ...], list[PlannedRun]] = {}
    for run in runs:
        cost = run.cost
        key = (cost.phase, cost.algo, run.steps, cost.warmup_updates, cost.runs, run.seconds)
        kinds.setdefault(key, []).append(run)
    phases = list(dict.fromkeys(r.cost.phase for r in runs))
    return sorted(
        kinds.values(), key=lambda same: (phases.index(same[0].cost.phase), same[0].cost.algo)
    )


def _count(runs: Iterable[PlannedRun]) -> int:
    """How many runs: a seed group counts its seeds."""
    return sum(r.cost.runs for r in runs)


def _steps_text(runs: Sequence[PlannedRun]) -> str:
    units = dict.fromkeys(r.cost.step_unit for r in runs)
    return " + ".join(
        f"{sum(r.steps for r in runs if r.cost.step_unit == unit):,} {unit}" for unit in units
    )


def _duration(seconds: float) -> str:
    """E.g. "22.2 h", "325.3 h (13.6 days)", "12 min"."""
    if seconds < HOUR:
        return f"{seconds / 60:.0f} min"
    hours = f"{seconds / HOUR:.1f} h"
    return f"{hours} ({seconds / (24 * HOUR):.1f} days)" if seconds >= 48 * HOUR else hours


def _s(n: int) -> str:
    return "" if n == 1 else "s"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], left: int = 2) -> list[str]:
    """A Markdown table, columns padded so that it reads in a terminal too; the first `left`
    columns aligned left, the others (numbers) right."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        padded = [
            cell.ljust(width) if i < left else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ]
        return "| " + " | ".join(padded) + " |"

    rule = (
        "|"
        + "|".join("-" * (w + 2) if i < left else "-" * (w + 1) + ":" for i, w in enumerate(widths))
        + "|"
    )
    return [line(header), rule, *(line(row) for row in rows)]
