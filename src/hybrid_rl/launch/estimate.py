"""The wall-time estimate printed before a grid or a study starts: rough speeds measured on
2-core machines, so that a user knows whether to wait or to come back later."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from hybrid_rl.behavior.replica import replica_path
from hybrid_rl.data.download import d4rl_cache_dir
from hybrid_rl.data.registry import DATASETS, get_dataset_spec
from hybrid_rl.runs.folder import FINISHED_STATUSES
from hybrid_rl.runs.spec import RunSpec

# Speeds behind the wall-time estimate, measured on 2-core machines with one torch thread per
# run, two runs side by side, batch 256. IQL did 60–150 updates/s depending on the machine and
# its load; CQL 11.6–13.4 in the quick Phase I grid on a quiet AMD EPYC VM (docs/benchmarks.md),
# rounded down. A Phase II step (an env step, an action, a disagreement forward and an update)
# cost about one IQL update (each run's `cost` says what its steps cost in updates). Erring
# slow: a user should come back to a finished grid.
UPDATES_PER_SECOND = {"iql": 70.0, "cql": 11.0}
EVAL_SECONDS_PER_EPISODE = 0.15  # 1,000 HalfCheetah steps in a vector env, batched policy
RUN_START_SECONDS = 5.0  # process start, imports, dataset load and corruption
REPLICA_BUILD_SECONDS = 240.0  # a 1M-transition replica (3–5 min on 2 cores, once)


@dataclass(frozen=True)
class WallTimeEstimate:
    seconds: float
    lines: tuple[str, ...]  # the arithmetic behind it, one line per part


def estimate_wall_time(configs: Sequence[RunSpec], workers: int) -> WallTimeEstimate:
    """The expected wall time of `configs` (Phase I runs, Phase II runs or both) on `workers`
    single-threaded workers, from the speeds above: runs already finished are left out, a
    Phase I dataset not on disk yet adds a replica build. The runs take
    max(total run time / workers, longest Phase I + Phase II chain)."""
    lines: list[str] = []
    data_seconds = 0.0
    for dataset, source in dict.fromkeys(d for c in configs for d in c.cost.datasets):
        if not dataset_on_disk(dataset, source):
            data_seconds += REPLICA_BUILD_SECONDS
            lines.append(
                f"data: {dataset} is not on disk: a replica build takes "
                f"~{REPLICA_BUILD_SECONDS / 60:.0f} min (once; if D4RL's file cannot be fetched)"
            )
    pending = [c for c in configs if c.folder.status() not in FINISHED_STATUSES]
    seconds = {c.run_name: _run_seconds(c) for c in pending}
    for phase in dict.fromkeys(c.cost.phase for c in pending):
        lines += _phase_lines(phase, [c for c in pending if c.cost.phase == phase], seconds)
    work = sum(seconds.values())
    chain = max((_chain_seconds(c, seconds) for c in pending), default=0.0)
    run_seconds = max(work / workers, chain)
    if pending:
        lines.append(
            f"runs: {work / 60:.1f} worker-min on {workers} worker{'s' if workers != 1 else ''}"
            f" ≈ {run_seconds / 60:.1f} min"
            + (
                " (a Phase II run starts when its Phase I run ends)"
                if any(c.prerequisite is not None for c in pending)
                else ""
            )
        )
    else:
        lines.append("runs: all finished already; only the report is written")
    return WallTimeEstimate(data_seconds + run_seconds, tuple(lines))


def _phase_lines(phase: str, runs: Sequence[RunSpec], seconds: Mapping[str, float]) -> list[str]:
    lines = []
    for algo in sorted({c.cost.algo for c in runs}):
        own = [c for c in runs if c.cost.algo == algo]
        rate = _updates_per_second(algo) / own[0].cost.updates_per_step
        lines.append(
            f"{phase}: {len(own)} {algo.upper()} run{'s' if len(own) != 1 else ''} × "
            f"{max(c.budget for c in own):,} {own[0].cost.step_unit} at ~{rate:.0f}/s, plus "
            f"evaluations and start-up: ~{max(seconds[c.run_name] for c in own) / 60:.1f} min each"
        )
    return lines


def _updates_per_second(algo: str) -> float:
    return UPDATES_PER_SECOND.get(algo, min(UPDATES_PER_SECOND.values()))


def dataset_on_disk(dataset: str, source: str) -> bool:
    """Whether loading `dataset` needs no download or replica build."""
    if dataset.lower().endswith((".hdf5", ".h5")) or source == "minari":
        return True
    if dataset not in DATASETS:
        return True  # an unknown id fails at once when loaded; nothing to wait for
    spec = get_dataset_spec(dataset)
    d4rl_file = (d4rl_cache_dir() / spec.file_name).is_file()
    replica = replica_path(dataset).is_file()
    return {"d4rl": d4rl_file, "replica": replica}.get(source, d4rl_file or replica)


def _run_seconds(config: RunSpec) -> float:
    cost = config.cost
    rate = _updates_per_second(cost.algo)
    eval_seconds = cost.evaluations * cost.eval_episodes * EVAL_SECONDS_PER_EPISODE
    return RUN_START_SECONDS + config.budget * cost.updates_per_step / rate + eval_seconds


def _chain_seconds(config: RunSpec, seconds: Mapping[str, float]) -> float:
    """The run's time plus its prerequisite's, when that one is still to run."""
    prerequisite = config.prerequisite
    before = 0.0 if prerequisite is None else seconds.get(prerequisite.name, 0.0)
    return seconds[config.run_name] + before


def format_minutes(seconds: float) -> str:
    """E.g. "~16 min", "~40 s"."""
    return f"~{seconds:.0f} s" if seconds < 90 else f"~{math.ceil(seconds / 60)} min"
