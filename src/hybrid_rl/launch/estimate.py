"""The wall-time estimate printed before a grid or a study starts: rough speeds measured on
2-core machines, so that a user knows whether to wait or to come back later."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from hybrid_rl.behavior.replica import default_transitions, replica_path
from hybrid_rl.data.download import d4rl_cache_dir
from hybrid_rl.data.registry import DATASETS, get_dataset_spec
from hybrid_rl.runs.folder import FINISHED_STATUSES
from hybrid_rl.runs.spec import RunCost, RunSpec

# Speeds behind the wall-time estimate and the study's plan (launch/plan.py), for one
# single-threaded run with another beside it on a 2-core machine, batch 256, rounded down:
# erring slow, so that a user comes back to a finished grid. From docs/benchmarks.md:
# - CQL 11 updates/s: six 20k-step CQL runs two at a time did 11.6–13.4 including their
#   evaluations ("The quick Phase I grid", AMD EPYC, quiet); the update alone 13.7 (Intel)
#   and 14.3 (AMD) on 1 thread, quiet ("Gradient-step throughput").
# - IQL 70 updates/s: 60–150 in grids, depending on the machine and its load; 120–145 in the
#   quick grid (quiet, not compiled below 50k steps); compiled, the update alone does 153–171
#   on 1 thread, quiet; a load of 4–5 on the 2 cores halves it ("Fused critic moved to its
#   own module").
UPDATES_PER_SECOND = {"iql": 70.0, "cql": 11.0}
# 1,000 HalfCheetah steps, batched policy: 10 episodes took 1.57 s on a loaded machine and
# 0.40–0.53 s on quiet ones ("Evaluation overhead"); Hopper's episodes end sooner.
EVAL_SECONDS_PER_EPISODE = 0.15
# An online step (an env step, an action, a disagreement forward and an update), in offline
# updates of the same algorithm, for wall-time estimates. IQL's: about one (measured ~1.0 on
# 2-core machines), rounded up. CQL's is its N = 3 critic update, 1.5 of its twin-Q update:
# 9.5 vs 14.3 updates/s on 1 thread (docs/benchmarks.md, "Second machine: AMD EPYC"), as the
# FLOP counts say (10.474 vs 7.044 GFLOP); the env step adds little next to it.
ONLINE_STEP_COST = {"cql": 1.5, "iql": 1.2}
DEFAULT_ONLINE_STEP_COST = 1.2  # an algorithm not measured online (TD3+BC)
# A warm-up update (critic forward and backward, no actor or V step) costs about half an
# offline update (an estimate, rounded up), spread over the online steps in the estimate.
WARMUP_UPDATE_COST = 0.5
RUN_START_SECONDS = 5.0  # process start, imports, dataset load and corruption
# A 1M-transition replica, once: 125 s quiet, 1.2–2.3 min in fresh clones, 7 min 40 s on a
# saturated machine ("Replica dataset build", "The quick study"); other sizes in proportion.
REPLICA_BUILD_SECONDS_PER_MILLION = 240.0


@dataclass(frozen=True)
class WallTimeEstimate:
    seconds: float
    lines: tuple[str, ...]  # the arithmetic behind it, one line per part


def estimate_wall_time(configs: Sequence[RunSpec], workers: int) -> WallTimeEstimate:
    """The expected wall time of `configs` (Phase I runs, Phase II runs or both) on `workers`
    single-threaded workers, from the speeds above: runs already finished are left out, a
    Phase I dataset not on disk yet adds a replica build. The runs take
    max(total run time / workers, longest Phase I + Phase II chain)."""
    data_seconds, lines = data_preparation(configs)
    pending = [c for c in configs if any(f.status() not in FINISHED_STATUSES for f in c.folders)]
    seconds = {c.run_name: run_seconds(c) for c in pending}
    for phase in dict.fromkeys(c.cost.phase for c in pending):
        lines += _phase_lines(phase, [c for c in pending if c.cost.phase == phase], seconds)
    work = sum(seconds.values())
    chain = max((_chain_seconds(c, seconds) for c in pending), default=0.0)
    wall_seconds = max(work / workers, chain)
    if pending:
        lines.append(
            f"runs: {work / 60:.1f} worker-min on {workers} worker{'s' if workers != 1 else ''}"
            f" ≈ {wall_seconds / 60:.1f} min"
            + (
                " (a Phase II run starts when its Phase I run ends)"
                if any(c.prerequisite is not None for c in pending)
                else ""
            )
        )
    else:
        lines.append("runs: all finished already; only the report is written")
    return WallTimeEstimate(data_seconds + wall_seconds, tuple(lines))


def data_preparation(configs: Sequence[RunSpec]) -> tuple[float, list[str]]:
    """The seconds of replica builds the runs' datasets need before the first run on this
    machine (each dataset not on disk), and a line for each."""
    seconds, lines = 0.0, []
    for dataset, source in dict.fromkeys(d for c in configs for d in c.cost.datasets):
        if not dataset_on_disk(dataset, source):
            build = replica_build_seconds(dataset)
            seconds += build
            lines.append(
                f"data: {dataset} is not on disk: a replica build takes "
                f"{format_minutes(build)} (once; if D4RL's file cannot be fetched)"
            )
    return seconds, lines


def replica_build_seconds(dataset: str) -> float:
    """The expected build time of `dataset`'s replica, in proportion to its size."""
    return REPLICA_BUILD_SECONDS_PER_MILLION * default_transitions(dataset) / 1e6


def _phase_lines(phase: str, runs: Sequence[RunSpec], seconds: Mapping[str, float]) -> list[str]:
    lines = []
    for algo in sorted({c.cost.algo for c in runs}):
        own = [c for c in runs if c.cost.algo == algo]
        rate = _updates_per_second(algo) / updates_per_step(own[0].cost, own[0].budget)
        count = sum(c.cost.runs for c in own)
        # seed groups: several runs per process, each process timed
        each = "each" if count == len(own) else f"per process ({len(own)} processes)"
        lines.append(
            f"{phase}: {count} {algo.upper()} run{'s' if count != 1 else ''} × "
            f"{max(c.budget // c.cost.runs for c in own):,} {own[0].cost.step_unit} at "
            f"~{rate:.0f}/s, plus evaluations and start-up: "
            f"~{max(seconds[c.run_name] for c in own) / 60:.1f} min {each}"
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
    replica = replica_path(dataset).is_file()
    if not spec.in_d4rl:  # always its replica, whatever lies in the D4RL cache
        return replica
    d4rl_file = (d4rl_cache_dir() / spec.file_name).is_file()
    return {"d4rl": d4rl_file, "replica": replica}.get(source, d4rl_file or replica)


def run_seconds(config: RunSpec) -> float:
    """What `config` takes on one single-threaded worker, at the speeds above."""
    cost = config.cost
    rate = _updates_per_second(cost.algo)
    eval_seconds = cost.runs * cost.evaluations * cost.eval_episodes * EVAL_SECONDS_PER_EPISODE
    steps = config.budget * updates_per_step(cost, config.budget)
    return RUN_START_SECONDS + steps / rate + eval_seconds


def updates_per_step(cost: RunCost, budget: int) -> float:
    """A step's cost in offline updates of its algorithm, warm-up updates spread over the
    `budget` steps: 1 for an offline update, the measured cost above for an online step."""
    step = ONLINE_STEP_COST.get(cost.algo, DEFAULT_ONLINE_STEP_COST) if cost.online else 1.0
    return step + cost.warmup_updates * WARMUP_UPDATE_COST * cost.runs / budget


def _chain_seconds(config: RunSpec, seconds: Mapping[str, float]) -> float:
    """The run's time plus its prerequisite's, when that one is still to run."""
    prerequisite = config.prerequisite
    before = 0.0 if prerequisite is None else seconds.get(prerequisite.name, 0.0)
    return seconds[config.run_name] + before


def format_minutes(seconds: float) -> str:
    """E.g. "~16 min", "~40 s"."""
    return f"~{seconds:.0f} s" if seconds < 90 else f"~{math.ceil(seconds / 60)} min"
