"""Execute a list of runs in this process or in a local process pool, one failure at a time;
or hand them to a `RemoteLauncher` (launch/ray_launcher.py: a Ray cluster) with the same skips,
failure records, progress bar and summary.

Runs are `RunSpec`s (runs/spec.py): the executor knows their names, folders, budgets and
prerequisites, not what kind of run they are. A run whose prerequisite is in the same grid
starts only once that run has finished, so one pool can run a whole study: Phase II runs of
the first finished cells fill the workers while the last Phase I runs still train.

Thread split: each worker runs `torch.set_num_threads(max(1, cores // workers))`, and by
default there is one worker per core. Updates here use batches of 256 through [256, 256] MLPs,
too small for intra-op threads to pay off fully, and evaluation steps MuJoCo on one thread, so
on a 2-core machine two single-threaded runs side by side do 1.2× the runs per hour of one run
using both cores (benchmarks/bench_grid.py).
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from typing import Literal, Protocol

import torch
from tqdm import tqdm

from hybrid_rl.runs.folder import FINISHED_STATUSES
from hybrid_rl.runs.metrics import MetricsLog
from hybrid_rl.runs.spec import RunSpec

# How often a step-counting bar reads the runs' metrics.json files, and a pool worker checks
# that its grid process is still there.
_POLL_SECONDS = 2.0


@dataclass(frozen=True)
class RunOutcome:
    run_name: str
    status: str  # "completed" | "diverged" | "failed" | "skipped"
    error: str | None = None  # what went wrong, for "failed"


@dataclass(frozen=True)
class GridSummary:
    outcomes: tuple[RunOutcome, ...]
    wall_time_s: float

    def count(self, status: str) -> int:
        return sum(outcome.status == status for outcome in self.outcomes)

    def line(self) -> str:
        """One line: how many runs completed, diverged, failed or were skipped, and the time."""
        counts = Counter(outcome.status for outcome in self.outcomes)
        minutes, seconds = divmod(round(self.wall_time_s), 60)
        return (
            f"{len(self.outcomes)} runs: {counts['completed']} completed, "
            f"{counts['diverged']} diverged, {counts['failed']} failed, "
            f"{counts['skipped']} skipped (already finished) in {minutes}m{seconds:02d}s"
        )


class RemoteLauncher(Protocol):
    """Runs a grid's pending runs elsewhere than this machine's pool (e.g. a Ray cluster)."""

    def run(
        self,
        pending: Sequence[RunSpec],
        threads: int,
        record: Callable[[RunSpec, RunOutcome], None],
    ) -> None:
        """Run every config of `pending` (a run only once its prerequisite, when that is in
        `pending` too, has finished), each with `threads` torch threads, and `record` each
        outcome as it comes, in this process."""
        ...


def default_workers() -> int:
    """One single-threaded run per CPU core: on a 2-core machine, 1.2× the runs per hour of one
    run using both cores (benchmarks/bench_grid.py, docs/benchmarks.md)."""
    return os.cpu_count() or 1


def threads_per_worker(workers: int, cores: int | None = None) -> int:
    """Torch intra-op threads for each of `workers` runs sharing `cores` (default: all)."""
    return max(1, (cores or os.cpu_count() or 1) // workers)


def run_grid(
    configs: Sequence[RunSpec],
    workers: int | None = None,
    threads: int | None = None,
    progress: bool = True,
    unit: Literal["run", "step"] | None = None,
    launcher: RemoteLauncher | None = None,
) -> GridSummary:
    """Run every config not already finished; never raises for a single run's failure.

    `workers=1` runs in this process (with each run's own progress bar), `workers=N > 1` in a
    pool of N spawned processes; the default is `default_workers()`. `threads` is torch's
    intra-op thread count per run (default `threads_per_worker(workers)`). A run whose
    metrics.json says completed or diverged is skipped. A run that raises gets metrics.json
    status "failed" with the error and traceback, and the other runs go on. Runs start in the
    order of `configs`, except that a run waits for its prerequisite (a Phase II run for its
    Phase I run) when that run is in `configs` too. The grid's bar counts runs (`unit="run"`)
    or steps (`unit="step"`: every run's budget, advanced as the runs' metrics.json files
    report progress, i.e. at each evaluation). By default it counts steps in a pool, whose
    runs show no bars of their own (a bar of runs would stand still through a whole 30-minute
    CQL run), and runs otherwise.
    Pool workers stop within seconds if this process is killed. With a `launcher`, the runs
    go to it instead (no `workers`; `threads` defaults to 1, as a pool worker of one core
    has, and the bar to steps). Returns every run's outcome, in the order of `configs` (a
    seed group's as one per seed).
    """
    if launcher is not None and workers is not None:
        raise ValueError("workers sets the local pool's size; a launcher schedules its own")
    workers = default_workers() if workers is None else workers
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    unit = unit or ("step" if workers > 1 or launcher is not None else "run")
    names = [config.run_name for config in configs]
    duplicates = sorted(name for name, n in Counter(names).items() if n > 1)
    if duplicates:
        raise ValueError(f"the grid names these runs more than once: {duplicates}")
    start = time.monotonic()
    outcomes: dict[str, RunOutcome] = {}
    pending: list[RunSpec] = []
    for config in configs:
        conflict = _conflict_with_saved_run(config)
        if conflict is not None:
            outcomes[config.run_name] = RunOutcome(config.run_name, "failed", conflict)
        elif all(folder.status() in FINISHED_STATUSES for folder in config.folders):
            outcomes[config.run_name] = RunOutcome(config.run_name, "skipped")
        else:
            pending.append(config)
    n_threads = threads or (1 if launcher is not None else threads_per_worker(workers))
    counter = (
        _StepCounter(configs, outcomes, progress)
        if unit == "step"
        else _RunCounter(len(configs), len(outcomes), progress)
    )
    queue = _Queue(pending)

    def record(config: RunSpec, outcome: RunOutcome) -> None:
        outcomes[config.run_name] = outcome
        queue.finished(config)
        counter.report(outcome)

    with counter:
        if launcher is not None:
            if pending:
                launcher.run(pending, n_threads, record)
        elif workers == 1:
            previous = torch.get_num_threads()
            torch.set_num_threads(n_threads)
            try:
                while (ready := queue.next_ready()) is not None:
                    record(ready, run_one(ready, progress))
            finally:
                torch.set_num_threads(previous)
        elif pending:
            _run_in_pool(queue, workers, n_threads, record)
    summary = GridSummary(
        tuple(o for c in configs for o in _seed_outcomes(c, outcomes[c.run_name])),
        time.monotonic() - start,
    )
    for outcome in summary.outcomes:
        if outcome.status == "failed":
            print(f"FAILED {outcome.run_name}: {outcome.error}", file=sys.stderr)
    return summary


def _seed_outcomes(config: RunSpec, outcome: RunOutcome) -> list[RunOutcome]:
    """A seed group's outcome as one per seed, each with its own folder's status (the group
    reports "diverged" when any of its seeds did); a single run's as it is."""
    if len(config.folders) == 1:
        return [outcome]
    return [
        RunOutcome(
            folder.path.name,
            status
            if outcome.status != "skipped" and (status := folder.status()) in FINISHED_STATUSES
            else outcome.status,
            outcome.error,
        )
        for folder in config.folders
    ]


def run_one(config: RunSpec, progress: bool = False) -> RunOutcome:
    """Run one config; an exception becomes a "failed" metrics.json instead of propagating."""
    try:
        metrics = config.execute(progress)
    except Exception as err:
        return record_failure(config, err)
    return RunOutcome(config.run_name, metrics["status"])


def _run_in_pool(
    queue: _Queue,
    workers: int,
    threads: int,
    record: Callable[[RunSpec, RunOutcome], None],
) -> None:
    # At most `workers` runs are submitted at a time, so a run waiting for its Phase I run
    # never sits in the pool's queue ahead of a run that could start.
    context = multiprocessing.get_context("spawn")  # fork would copy torch's thread pools
    with ProcessPoolExecutor(
        workers, mp_context=context, initializer=_init_worker, initargs=(threads, os.getpid())
    ) as pool:
        running: dict[Future[RunOutcome], RunSpec] = {}
        while True:
            while len(running) < workers and (config := queue.next_ready()) is not None:
                running[pool.submit(run_one, config, False)] = config
            if not running:
                return
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                config = running.pop(future)
                try:
                    outcome = future.result()
                except Exception as err:  # the worker process itself died
                    outcome = record_failure(config, err)
                record(config, outcome)


class _Queue:
    """Pending runs in order; a run is ready once its prerequisite (if in the grid) has
    finished, whatever its status (a failed Phase I run makes its Phase II run fail with a
    message naming it)."""

    def __init__(self, pending: Sequence[RunSpec]) -> None:
        self._waiting = list(pending)
        self._unfinished = {f.key for c in pending for f in c.folders}

    def next_ready(self) -> RunSpec | None:
        for config in self._waiting:
            prerequisite = config.prerequisite
            if prerequisite is None or prerequisite.key not in self._unfinished:
                self._waiting.remove(config)
                return config
        return None

    def finished(self, config: RunSpec) -> None:
        self._unfinished.difference_update(f.key for f in config.folders)


class _RunCounter:
    """A bar counting finished runs, the latest one's status beside it."""

    def __init__(self, total: int, already: int, progress: bool) -> None:
        self.bar = tqdm(
            total=total,
            initial=already,
            desc="runs",
            unit="run",
            disable=not progress,
            position=0,
        )

    def report(self, outcome: RunOutcome) -> None:
        self.bar.update(1)
        self.bar.set_postfix_str(f"{outcome.run_name}: {outcome.status}")

    def __enter__(self) -> _RunCounter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.close()


class _StepCounter:
    """A bar counting steps over all runs: a finished run counts its whole budget, a running
    one the last step its metrics.json logged. A background thread reads those files every
    few seconds, since runs in worker processes cannot report to this one directly."""

    def __init__(
        self, configs: Sequence[RunSpec], outcomes: dict[str, RunOutcome], progress: bool
    ) -> None:
        self.configs, self.outcomes = list(configs), outcomes
        self.bar = tqdm(
            total=sum(c.budget for c in configs),
            desc="steps (all runs)",
            unit="step",
            unit_scale=True,
            disable=not progress,
            position=0,
        )
        self.latest = ""  # the last finished run and its status
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def report(self, outcome: RunOutcome) -> None:
        self.latest = f"{outcome.run_name}: {outcome.status}"
        self.refresh()

    def refresh(self) -> None:
        done, stages = 0, []
        for config in self.configs:
            if config.run_name in self.outcomes:
                done += config.budget
                continue
            progress = _logged_progress(config)
            done += progress.steps
            stages += [f"{config.run_name}: {stage}" for stage in progress.stages]
        with self._lock:
            self.bar.update(done - self.bar.n)
            # Until a run logs its first steps (an evaluation, a compile: up to minutes), the
            # bar says what it is doing instead of sitting at 0 without a word.
            postfix = "; ".join(stages) or self.latest or ("" if done else _STARTING)
            self.bar.set_postfix_str(postfix)

    def _poll(self) -> None:
        while not self._stop.wait(_POLL_SECONDS):
            self.refresh()

    def __enter__(self) -> _StepCounter:
        self.refresh()
        if not self.bar.disable:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self.refresh()
        self.bar.close()


# What the step bar says before any run has written a word: the pool's processes start
# (importing torch) and each run loads its data.
_STARTING = "starting the runs (worker processes, data)"


@dataclass(frozen=True)
class _Progress:
    steps: int  # logged by the run's unfinished folders
    stages: tuple[str, ...]  # what those yet to log a step say they are doing


def _logged_progress(config: RunSpec) -> _Progress:
    """What its unfinished run folders' metrics.json files say of their progress."""
    budget = config.budget // len(config.folders)
    steps, stages = 0, []
    for folder in config.folders:
        try:
            metrics = folder.read_metrics()
            if metrics is None or metrics["status"] != "running":
                continue  # none yet, or left over from an earlier attempt that failed
            logged = metrics["train"]["steps"]
        except (RuntimeError, KeyError, TypeError):  # damaged: the run will report it
            continue
        steps += min(int(logged[-1]), budget) if logged else 0
        if metrics.get("stage"):
            stages.append(str(metrics["stage"]))
    return _Progress(steps, tuple(dict.fromkeys(stages)))


def _init_worker(threads: int, parent_pid: int) -> None:
    torch.set_num_threads(threads)
    threading.Thread(target=_exit_when_orphaned, args=(parent_pid,), daemon=True).start()


def _exit_when_orphaned(parent_pid: int) -> None:
    # A grid stopped by SIGTERM or SIGKILL (a scheduler's time limit, `kill`) never shuts its
    # pool down, and its workers trained on, unwatched, for up to half an hour. A run resumes
    # from its last checkpoint (written atomically), so leaving mid-run loses only the steps
    # since then.
    while os.getppid() == parent_pid:
        time.sleep(_POLL_SECONDS)
    os._exit(1)


def _conflict_with_saved_run(config: RunSpec) -> str | None:
    """Why the run folder belongs to a different run (e.g. another step budget), or None."""
    try:
        conflict = config.identity_conflict()
    except RuntimeError as err:  # a damaged config.json: the run reports it when it starts
        return str(err)
    if conflict is None:
        return None
    paths = " ".join(str(folder.path) for folder in config.folders)
    return (
        f"{paths} holds a run with a different config ({conflict}); left untouched. Use "
        f"another --results_dir, or `hybrid-rl runs reset {paths}` to rerun it"
    )


def record_failure(config: RunSpec, err: BaseException) -> RunOutcome:
    """Mark the run's unfinished folders failed in their metrics.json, keeping any metrics
    they had logged."""
    message = f"{type(err).__name__}: {err}"
    for folder in config.folders:
        try:
            state = folder.read_metrics()
        except RuntimeError:  # damaged: replaced by the failure record
            state = None
        log = MetricsLog(state)
        if log.status in FINISHED_STATUSES:
            continue
        log.finish("failed", error=message, traceback="".join(traceback.format_exception(err)))
        folder.write_metrics(log.data)
    return RunOutcome(config.run_name, "failed", message)
