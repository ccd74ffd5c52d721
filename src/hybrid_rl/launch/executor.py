"""Execute a list of runs in this process or in a local process pool, one failure at a time.

Thread split: each worker runs `torch.set_num_threads(max(1, cores // workers))`. Updates here
use batches of 256 through [256, 256] MLPs, too small for intra-op threads to pay off, so on a
2-core machine two single-threaded runs side by side (`workers=2`) nearly double the throughput
of one run using both cores (issue 6 measures it).
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import sys
import time
import traceback
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from hybrid_rl.atomic_io import write_json_atomic
from hybrid_rl.train import MetricsLog, TrainConfig, train_offline

FINISHED_STATUSES = ("completed", "diverged")
# Settings that may change between invocations of the same run without making it another run.
_NOT_IDENTITY = ("device", "results_dir", "tensorboard")


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


def threads_per_worker(workers: int, cores: int | None = None) -> int:
    """Torch intra-op threads for each of `workers` runs sharing `cores` (default: all)."""
    return max(1, (cores or os.cpu_count() or 1) // workers)


def run_grid(
    configs: Sequence[TrainConfig],
    workers: int = 1,
    threads: int | None = None,
    progress: bool = True,
) -> GridSummary:
    """Run every config not already finished; never raises for a single run's failure.

    `workers=1` runs in this process (with each run's own progress bar), `workers=N > 1` in a
    pool of N spawned processes. `threads` is torch's intra-op thread count per run (default
    `threads_per_worker(workers)`). A run whose metrics.json says completed or diverged is
    skipped. A run that raises gets metrics.json status "failed" with the error and traceback,
    and the other runs go on. Returns every run's outcome, in the order of `configs`.
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    names = [config.run_name for config in configs]
    duplicates = sorted(name for name, n in Counter(names).items() if n > 1)
    if duplicates:
        raise ValueError(f"the grid names these runs more than once: {duplicates}")
    start = time.monotonic()
    outcomes: dict[str, RunOutcome] = {}
    pending: list[TrainConfig] = []
    for config in configs:
        conflict = _conflict_with_saved_run(config)
        if conflict is not None:
            outcomes[config.run_name] = RunOutcome(config.run_name, "failed", conflict)
        elif _saved_status(config.run_dir) in FINISHED_STATUSES:
            outcomes[config.run_name] = RunOutcome(config.run_name, "skipped")
        else:
            pending.append(config)
    n_threads = threads or threads_per_worker(workers)
    bar = tqdm(
        total=len(configs),
        initial=len(outcomes),
        desc="runs",
        unit="run",
        disable=not progress,
        position=0,
    )
    if workers == 1:
        previous = torch.get_num_threads()
        torch.set_num_threads(n_threads)
        try:
            for config in pending:
                outcome = run_one(config, progress)
                outcomes[config.run_name] = outcome
                _report(bar, outcome)
        finally:
            torch.set_num_threads(previous)
    elif pending:
        context = multiprocessing.get_context("spawn")  # fork would copy torch's thread pools
        with ProcessPoolExecutor(
            workers, mp_context=context, initializer=_init_worker, initargs=(n_threads,)
        ) as pool:
            futures: dict[Future[RunOutcome], TrainConfig] = {
                pool.submit(run_one, config, False): config for config in pending
            }
            for future in as_completed(futures):
                config = futures[future]
                try:
                    outcome = future.result()
                except Exception as err:  # the worker process itself died
                    outcome = _record_failure(config, err)
                outcomes[config.run_name] = outcome
                _report(bar, outcome)
    bar.close()
    summary = GridSummary(tuple(outcomes[name] for name in names), time.monotonic() - start)
    for outcome in summary.outcomes:
        if outcome.status == "failed":
            print(f"FAILED {outcome.run_name}: {outcome.error}", file=sys.stderr)
    return summary


def run_one(config: TrainConfig, progress: bool = False) -> RunOutcome:
    """Train one run; an exception becomes a "failed" metrics.json instead of propagating."""
    try:
        metrics = train_offline(config, progress=progress)
    except Exception as err:
        return _record_failure(config, err)
    return RunOutcome(config.run_name, metrics["status"])


def _init_worker(threads: int) -> None:
    torch.set_num_threads(threads)


def _report(bar: tqdm, outcome: RunOutcome) -> None:
    bar.update(1)
    bar.set_postfix_str(f"{outcome.run_name}: {outcome.status}")


def _saved_status(run_dir: Path) -> str | None:
    try:
        return str(json.loads((run_dir / "metrics.json").read_text())["status"])
    except (OSError, ValueError, KeyError):
        return None


def _identity(config: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in config.items() if k not in _NOT_IDENTITY}


def _conflict_with_saved_run(config: TrainConfig) -> str | None:
    """Why the run folder belongs to a different run (e.g. another step budget), or None."""
    try:
        saved = json.loads((config.run_dir / "config.json").read_text())["config"]
    except (OSError, ValueError, KeyError):
        return None
    wanted = json.loads(json.dumps(dataclasses.asdict(config)))
    if _identity(saved) == _identity(wanted):
        return None
    differing = sorted(
        k
        for k in set(saved) | set(wanted)
        if k not in _NOT_IDENTITY and saved.get(k) != wanted.get(k)
    )
    details = ", ".join(f"{k} {saved.get(k)!r} there, {wanted.get(k)!r} asked" for k in differing)
    return (
        f"{config.run_dir} holds a run with a different config ({details}); left untouched. "
        "Use another --results_dir, or delete that folder to rerun it"
    )


def _record_failure(config: TrainConfig, err: BaseException) -> RunOutcome:
    """Mark the run failed in its metrics.json, keeping any metrics it had logged."""
    path = config.run_dir / "metrics.json"
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        state = None
    log = MetricsLog(state)
    message = f"{type(err).__name__}: {err}"
    log.finish(
        "failed",
        error=message,
        traceback="".join(traceback.format_exception(err)),
    )
    write_json_atomic(path, log.data)
    return RunOutcome(config.run_name, "failed", message)
