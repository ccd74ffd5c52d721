"""The `hybrid-rl` command line."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from hybrid_rl.finetune import FinetuneConfig
    from hybrid_rl.launch.grid import Phase1Grid, Phase2Grid
    from hybrid_rl.launch.study import Study
    from hybrid_rl.runs.spec import RunSpec


def _add_behavior_commands(sub: argparse._SubParsersAction) -> None:
    behavior = sub.add_parser("behavior", help="behaviour policies for the replica datasets")
    bsub = behavior.add_subparsers(dest="behavior_command", required=True)
    train = bsub.add_parser("train", help="train a SAC behaviour policy online")
    train.add_argument("--env", default="HalfCheetah-v4", help="Gymnasium id, e.g. Hopper-v4")
    train.add_argument("--steps", type=int, default=300_000)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--eval-every", type=int, default=5_000)
    train.add_argument("--out", default=None, help="output folder (default behavior_runs/...)")
    train.add_argument("--device", default="cpu", help="cpu | cuda | auto")
    train.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    train.set_defaults(func=_behavior_train)
    select = bsub.add_parser(
        "select", help="ship the snapshot whose stochastic score is closest to a target"
    )
    select.add_argument("--run", required=True, help="a `behavior train` output folder")
    select.add_argument("--target", type=float, required=True, help="normalized score")
    select.add_argument("--band", type=float, required=True, help="allowed distance")
    select.add_argument("--episodes", type=int, default=30)
    select.add_argument("--seed", type=int, default=123)
    select.add_argument("--min-step", type=int, default=0, help="skip earlier snapshots")
    select.set_defaults(func=_behavior_select)


def _behavior_select(args: argparse.Namespace) -> int:
    from hybrid_rl.behavior.select import SelectionConfig, select_behavior_policy

    card = select_behavior_policy(
        SelectionConfig(
            run_dir=args.run,
            target=args.target,
            band=args.band,
            episodes=args.episodes,
            seed=args.seed,
            min_step=args.min_step,
        )
    )
    print(json.dumps(card, indent=2))
    return 0


def _add_dataset_commands(sub: argparse._SubParsersAction) -> None:
    dataset = sub.add_parser("dataset", help="inspect and build offline datasets")
    dsub = dataset.add_subparsers(dest="dataset_command", required=True)
    info = dsub.add_parser("info", help="sizes, returns and provenance of a dataset")
    info.add_argument("dataset", help="a dataset id (e.g. hopper-medium-v2) or an .hdf5 path")
    info.add_argument("--source", default="auto", help="auto | d4rl | minari | replica")
    info.add_argument("--json", action="store_true", help="print JSON instead of a table")
    info.set_defaults(func=_dataset_info)
    build = dsub.add_parser("build", help="build a replica dataset from a shipped policy")
    build.add_argument("dataset", help="{halfcheetah,hopper}-{medium,random}-v2")
    build.add_argument("--n", type=int, default=1_000_000, help="transitions")
    build.add_argument("--seed", type=int, default=0)
    build.add_argument("--out", default=None, help="output .hdf5 (default: the replica cache)")
    build.set_defaults(func=_dataset_build)
    report = dsub.add_parser(
        "report", help="replica statistics beside D4RL's, with return histograms"
    )
    report.add_argument("datasets", nargs="+", help="dataset ids or .hdf5 paths")
    report.add_argument("--source", default="auto", help="auto | d4rl | minari | replica")
    report.add_argument("--out", default="docs", help="folder for datasets.md and figures")
    report.set_defaults(func=_dataset_report)


def _dataset_report(args: argparse.Namespace) -> int:
    from hybrid_rl.behavior.replica import ensure_replica
    from hybrid_rl.data.loader import load_dataset
    from hybrid_rl.report.dataset_report import write_dataset_report

    loaded = [
        load_dataset(dataset, args.source, replica_provider=ensure_replica)
        for dataset in args.datasets
    ]
    print(f"wrote {write_dataset_report(loaded, Path(args.out))}")
    return 0


def _dataset_build(args: argparse.Namespace) -> int:
    from hybrid_rl.behavior.replica import build_replica

    path = build_replica(args.dataset, args.n, args.seed, Path(args.out) if args.out else None)
    print(f"wrote {path}")
    return 0


def _dataset_info(args: argparse.Namespace) -> int:
    from hybrid_rl.behavior.replica import ensure_replica
    from hybrid_rl.data.loader import load_dataset
    from hybrid_rl.data.summary import summarize_transitions

    loaded = load_dataset(args.dataset, args.source, replica_provider=ensure_replica)
    summary = summarize_transitions(loaded.transitions, loaded.provenance.env_id)
    summary["provenance"] = dataclasses.asdict(loaded.provenance)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(format_summary(summary))
    return 0


def format_summary(summary: dict) -> str:
    """A human-readable table of `summarize_transitions` output plus provenance."""
    prov = summary["provenance"]
    lines = [
        f"dataset       {prov['dataset_id'] or prov['path']}",
        f"source        {prov['source']}" + (f"  ({prov['note']})" if prov["note"] else ""),
        f"path          {prov['path']}",
        f"sha256        {prov['sha256']}",
        f"env           {prov['env_id'] or 'unknown'}",
        f"dims          obs {summary['obs_dim']}, act {summary['act_dim']}",
        f"transitions   {summary['transitions']:,}",
        f"trajectories  {summary['trajectories']:,}  (terminals {summary['terminals']:,}, "
        f"timeouts {summary['timeouts']:,})",
    ]
    rows = [("episode length", summary["episode_length"]), ("return", summary["return"])]
    if "normalized_return" in summary:
        rows.append(("normalized", summary["normalized_return"]))
    lines.append(f"{'':14}{'mean':>12}{'std':>12}{'min':>12}{'max':>12}")
    for name, s in rows:
        lines.append(f"{name:14}{s['mean']:12.1f}{s['std']:12.1f}{s['min']:12.1f}{s['max']:12.1f}")
    return "\n".join(lines)


def _behavior_train(args: argparse.Namespace) -> int:
    from hybrid_rl.behavior.train_sac import BehaviorTrainConfig, train_behavior_policy

    if args.threads:
        torch.set_num_threads(args.threads)
    env_name = args.env.split("-")[0].lower()
    config = BehaviorTrainConfig(
        env_id=args.env,
        total_steps=args.steps,
        seed=args.seed,
        eval_every=args.eval_every,
        out_dir=args.out or f"behavior_runs/{env_name}_s{args.seed}",
        device=args.device,
    )
    train_behavior_policy(config)
    return 0


def _add_phase1_commands(sub: argparse._SubParsersAction) -> None:
    from hybrid_rl.launch.grid import QUICK_SEEDS, QUICK_TOTAL_STEPS, Phase1Grid

    def default(name: str) -> str:
        value = getattr(Phase1Grid, name)
        return ", ".join(map(str, value)) if isinstance(value, tuple) else str(value)

    phase1 = sub.add_parser(
        "phase1",
        help="Phase I: CQL, IQL and BC offline on corrupted datasets, then plots and report",
        description="Run the Phase I grid (algo × env × k × σ × seed; finished runs are "
        "skipped), then write the plots and report.md. List flags take several values, "
        "comma-separated or repeated.",
    )
    lists = {"action": "extend", "nargs": "+", "metavar": "VALUE"}
    phase1.add_argument(
        "--algo", **lists, help=f"cql | iql | bc | all (default: {default('algos')})"
    )
    phase1.add_argument(
        "--env", **lists, help=f"dataset ids or .hdf5 paths (default: {default('datasets')})"
    )
    phase1.add_argument(
        "--remove_top_k",
        **lists,
        help=f"k: percent of trajectories removed (default: {default('k_percents')})",
    )
    phase1.add_argument("--seed", **lists, help=f"seeds (default: {default('seeds')})")
    phase1.add_argument(
        "--reward_noise",
        **lists,
        help=f"σ of Gaussian reward noise (default: {default('reward_noise_stds')})",
    )
    phase1.add_argument(
        "--removal",
        **lists,
        help=f"top | random: which trajectories k%% removes (default: {default('removals')})",
    )
    phase1.add_argument(
        "--total_steps",
        type=int,
        help=f"gradient steps per run (default: {default('total_steps')})",
    )
    phase1.add_argument(
        "--quick",
        action="store_true",
        help=f"{QUICK_TOTAL_STEPS:,} steps, seed {', '.join(map(str, QUICK_SEEDS))}, outputs "
        "in a 'quick' sub-folder of the results and plots folders",
    )
    phase1.add_argument("--plot_only", action="store_true", help="only write plots and report")
    phase1.add_argument(
        "--workers",
        type=int,
        help="runs in parallel, in a local process pool; 1 runs them in this process "
        "(default: one per CPU core, single-threaded)",
    )
    phase1.add_argument(
        "--threads",
        type=int,
        help="torch threads per run (default: max(1, CPU cores // workers))",
    )
    phase1.add_argument("--device", help=f"cpu | cuda | auto (default: {default('device')})")
    phase1.add_argument(
        "--source", help=f"auto | d4rl | minari | replica (default: {default('source')})"
    )
    phase1.add_argument("--results_dir", help=f"(default: {default('results_dir')})")
    phase1.add_argument("--plots_dir", help=f"(default: {default('plots_dir')})")
    phase1.add_argument(
        "--eval_every",
        type=int,
        help=f"steps between evaluations (default: {default('eval_every')})",
    )
    phase1.add_argument(
        "--eval_episodes",
        type=int,
        help=f"episodes per evaluation (default: {default('eval_episodes')})",
    )
    phase1.add_argument(
        "--log_every",
        type=int,
        help=f"steps between metric logs (default: {default('log_every')})",
    )
    phase1.set_defaults(func=_phase1)


# flag -> (Phase1Grid field, element type) for the list flags
_PHASE1_LIST_FLAGS: dict[str, tuple[str, type]] = {
    "algo": ("algos", str),
    "env": ("datasets", str),
    "remove_top_k": ("k_percents", float),
    "seed": ("seeds", int),
    "reward_noise": ("reward_noise_stds", float),
    "removal": ("removals", str),
}
_PHASE1_SCALAR_FLAGS = (
    "total_steps",
    "device",
    "source",
    "results_dir",
    "plots_dir",
    "eval_every",
    "eval_episodes",
    "log_every",
)


def phase1_grid_from_args(args: argparse.Namespace) -> Phase1Grid:
    """The grid the `phase1` flags ask for: `Phase1Grid` (or its `quick()` variant) with only
    the flags actually given overriding its defaults."""
    from hybrid_rl.algos.registry import ALGORITHMS
    from hybrid_rl.launch.grid import Phase1Grid

    overrides = _list_overrides(args, _PHASE1_LIST_FLAGS, {"algo": ("all", tuple(ALGORITHMS))})
    overrides |= _scalar_overrides(args, {name: name for name in _PHASE1_SCALAR_FLAGS})
    return Phase1Grid.quick(**overrides) if args.quick else Phase1Grid(**overrides)


def _list_overrides(
    args: argparse.Namespace,
    flags: Mapping[str, tuple[str, type]],
    everything: Mapping[str, tuple[str, Sequence[str]]],
) -> dict[str, Any]:
    """Grid fields from the list flags given: comma-separated or repeated values, duplicates
    dropped; with `everything[flag] = (word, values)`, `values` replace the values given when
    `word` (e.g. "all") is among them."""
    overrides: dict[str, Any] = {}
    for flag, (name, kind) in flags.items():
        raw = getattr(args, flag, None)
        if raw is None:
            continue
        items = [item.strip() for value in raw for item in value.split(",") if item.strip()]
        if flag in everything and everything[flag][0] in items:
            items = list(everything[flag][1])
        try:
            overrides[name] = tuple(dict.fromkeys(kind(item) for item in items))
        except ValueError:
            raise ValueError(
                f"--{flag} takes {kind.__name__} values, got {' '.join(raw)!r}"
            ) from None
    return overrides


def _scalar_overrides(args: argparse.Namespace, flags: Mapping[str, str]) -> dict[str, Any]:
    """Grid fields (`flags[flag]`) from the scalar flags given."""
    return {
        name: getattr(args, flag) for flag, name in flags.items() if getattr(args, flag) is not None
    }


def _check_execution_flags(args: argparse.Namespace) -> None:
    for flag in ("workers", "threads"):
        if getattr(args, flag) is not None and getattr(args, flag) < 1:
            raise ValueError(f"--{flag} must be at least 1, got {getattr(args, flag)}")


def _phase1(args: argparse.Namespace) -> int:
    from hybrid_rl.launch.executor import run_grid
    from hybrid_rl.report.report import write_phase1_outputs

    try:
        grid = phase1_grid_from_args(args)
        configs = grid.expand()  # TrainConfig checks the step settings of every run
        _check_execution_flags(args)
    except ValueError as err:
        print(f"hybrid-rl phase1: {err}", file=sys.stderr)
        return 2
    failed = 0
    if not args.plot_only:
        _print_estimate(f"phase1: {len(configs)} runs in {grid.results_dir}", configs, args.workers)
        execution = {"workers": args.workers, "threads": args.threads}
        summary = run_grid(configs, **{k: v for k, v in execution.items() if v is not None})
        print(summary.line())
        failed = summary.count("failed")
    outputs = write_phase1_outputs(grid.results_dir, grid.plots_dir)
    print(f"wrote {outputs.report} and {len(outputs.plots)} figures (PNG and PDF)")
    return 1 if failed else 0


def _print_estimate(headline: str, configs: Sequence[RunSpec], workers: int | None) -> None:
    """`headline`, the expected wall time of `configs` and the arithmetic behind it (stderr)."""
    from hybrid_rl.launch.estimate import estimate_wall_time, format_minutes
    from hybrid_rl.launch.executor import default_workers

    workers = workers or default_workers()
    estimate = estimate_wall_time(configs, workers)
    print(
        f"{headline} on {workers} worker{'s' if workers != 1 else ''}; estimated wall time "
        f"{format_minutes(estimate.seconds)}:",
        file=sys.stderr,
    )
    for line in estimate.lines:
        print(f"  {line}", file=sys.stderr)


_LIST_FLAG = {"action": "extend", "nargs": "+", "metavar": "VALUE"}


def _add_phase2_commands(sub: argparse._SubParsersAction) -> None:
    from hybrid_rl.launch.grid import (
        QUICK_ONLINE_EVAL_EVERY,
        QUICK_ONLINE_STEPS,
        QUICK_SEEDS,
        Phase2Grid,
    )

    def default(name: str) -> str:
        return _default_text(getattr(Phase2Grid, name))

    quick = Phase2Grid.quick()
    phase2 = sub.add_parser(
        "phase2",
        help="Phase II: fine-tune the Phase I agents online, with and without the ensemble "
        "bonus, then plots and report",
        description="Run the Phase II grid (algo × env × k × bonus type × seed; finished runs "
        "are skipped; runs whose Phase I run is not finished wait, with the command that "
        "creates it), then write the plots and report.md. List flags take several values, "
        "comma-separated or repeated.",
    )
    phase2.add_argument(
        "--algo", **_LIST_FLAG, help=f"cql | iql | all (default: {default('algos')})"
    )
    phase2.add_argument(
        "--env", **_LIST_FLAG, help=f"dataset ids or .hdf5 paths (default: {default('datasets')})"
    )
    phase2.add_argument(
        "--remove_top_k",
        **_LIST_FLAG,
        help=f"k of the Phase I runs to start from (default: {default('k_percents')})",
    )
    phase2.add_argument("--seed", **_LIST_FLAG, help=f"seeds (default: {default('seeds')})")
    phase2.add_argument(
        "--bonus_type",
        **_LIST_FLAG,
        help=f"ensemble | none | both (default: {default('bonus_types')})",
    )
    phase2.add_argument(
        "--total_steps",
        type=int,
        help=f"online env steps per run (default: {default('online_steps')})",
    )
    phase2.add_argument(
        "--quick",
        action="store_true",
        help=f"{QUICK_ONLINE_STEPS:,} online steps evaluated every {QUICK_ONLINE_EVAL_EVERY:,}, "
        f"seed {', '.join(map(str, QUICK_SEEDS))}, from the quick Phase I runs "
        f"({quick.phase1_results_dir}), outputs in a 'quick' sub-folder",
    )
    phase2.add_argument("--plot_only", action="store_true", help="only write plots and report")
    phase2.add_argument(
        "--workers",
        type=int,
        help="runs in parallel, in a local process pool; 1 runs them in this process "
        "(default: one per CPU core, single-threaded)",
    )
    phase2.add_argument(
        "--threads", type=int, help="torch threads per run (default: max(1, CPU cores // workers))"
    )
    phase2.add_argument("--device", help=f"cpu | cuda | auto (default: {default('device')})")
    phase2.add_argument(
        "--n_ensemble", type=int, help=f"critic members, 2–10 (default: {default('n_ensemble')})"
    )
    phase2.add_argument(
        "--bonus_coeff", type=float, help=f"λ of the bonus (default: {default('bonus_coeff')})"
    )
    phase2.add_argument(
        "--online_ratio",
        type=float,
        help=f"share of each batch from the online buffer (default: {default('online_ratio')})",
    )
    phase2.add_argument("--results_dir", help=f"(default: {default('results_dir')})")
    phase2.add_argument(
        "--phase1_results_dir",
        help=f"where the Phase I runs are (default: {default('phase1_results_dir')}; "
        f"with --quick: {quick.phase1_results_dir})",
    )
    phase2.add_argument("--plots_dir", help=f"(default: {default('plots_dir')})")
    phase2.add_argument(
        "--eval_every",
        type=int,
        help=f"online steps between evaluations (default: {default('eval_every')})",
    )
    phase2.add_argument(
        "--eval_episodes",
        type=int,
        help=f"episodes per evaluation (default: {default('eval_episodes')})",
    )
    phase2.add_argument(
        "--log_every",
        type=int,
        help=f"online steps between metric logs (default: {default('log_every')})",
    )
    phase2.set_defaults(func=_phase2)


def _default_text(value: Any) -> str:
    return ", ".join(map(str, value)) if isinstance(value, tuple) else str(value)


# flag -> (Phase2Grid field, element type) for the list flags
_PHASE2_LIST_FLAGS: dict[str, tuple[str, type]] = {
    "algo": ("algos", str),
    "env": ("datasets", str),
    "remove_top_k": ("k_percents", float),
    "seed": ("seeds", int),
    "bonus_type": ("bonus_types", str),
}
# flag -> Phase2Grid field for the scalar flags
_PHASE2_SCALAR_FLAGS = {
    "total_steps": "online_steps",
    "device": "device",
    "n_ensemble": "n_ensemble",
    "bonus_coeff": "bonus_coeff",
    "online_ratio": "online_ratio",
    "results_dir": "results_dir",
    "phase1_results_dir": "phase1_results_dir",
    "plots_dir": "plots_dir",
    "eval_every": "eval_every",
    "eval_episodes": "eval_episodes",
    "log_every": "log_every",
}


def _phase2_everything() -> dict[str, tuple[str, Sequence[str]]]:
    from hybrid_rl.finetune import BONUS_TYPES, PHASE2_ALGORITHMS

    return {"algo": ("all", PHASE2_ALGORITHMS), "bonus_type": ("both", BONUS_TYPES)}


def phase2_grid_from_args(args: argparse.Namespace) -> Phase2Grid:
    """The grid the `phase2` flags ask for: `Phase2Grid` (or its `quick()` variant) with only
    the flags actually given overriding its defaults."""
    from hybrid_rl.launch.grid import Phase2Grid

    overrides = _list_overrides(args, _PHASE2_LIST_FLAGS, _phase2_everything())
    overrides |= _scalar_overrides(args, _PHASE2_SCALAR_FLAGS)
    return Phase2Grid.quick(**overrides) if args.quick else Phase2Grid(**overrides)


def phase1_command_for(configs: Sequence[FinetuneConfig]) -> str:
    """One `run_phase1.py` command creating the Phase I runs `configs` start from (with
    the union of their algos, envs, k and seeds; Phase I skips the runs already finished)."""
    from hybrid_rl.launch.grid import Phase1Grid

    def values(items: Sequence[Any]) -> str:
        return ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in dict.fromkeys(items))

    parts = ["python run_phase1.py"]
    folders = {c.phase1_results_dir for c in configs}
    for folder in sorted(folders):
        if folder == Phase1Grid.quick().results_dir:
            parts.append("--quick")
        elif folder != Phase1Grid().results_dir:
            parts.append(f"--results_dir {folder}")
    parts += [
        f"--algo {values([c.algo for c in configs])}",
        f"--env {values([c.dataset for c in configs])}",
        f"--remove_top_k {values(sorted(c.k_percent for c in configs))}",
        f"--seed {values(sorted(c.seed for c in configs))}",
    ]
    return " ".join(parts)


def _phase2(args: argparse.Namespace) -> int:
    from hybrid_rl.launch.executor import run_grid, saved_status
    from hybrid_rl.report.report_phase2 import write_phase2_outputs

    try:
        grid = phase2_grid_from_args(args)
        configs = grid.expand()  # FinetuneConfig checks the settings of every run
        _check_execution_flags(args)
    except ValueError as err:
        print(f"hybrid-rl phase2: {err}", file=sys.stderr)
        return 2
    failed = waiting = 0
    if not args.plot_only:
        phase1 = {c.run_name: saved_status(c.phase1_train_config().run_dir) for c in configs}
        ready = [c for c in configs if phase1[c.run_name] == "completed"]
        diverged = [c for c in configs if phase1[c.run_name] == "diverged"]
        missing = [c for c in configs if phase1[c.run_name] not in ("completed", "diverged")]
        waiting = len(missing) + len(diverged)
        if missing:
            print(
                f"phase2: {len(missing)} of {len(configs)} runs wait for Phase I runs that are "
                f"missing or unfinished in {grid.phase1_results_dir}; create them with:\n  "
                f"{phase1_command_for(missing)}",
                file=sys.stderr,
            )
        if diverged:
            print(
                f"phase2: {len(diverged)} runs cannot start, their Phase I run diverged: "
                f"{', '.join(c.run_name for c in diverged)}",
                file=sys.stderr,
            )
        _print_estimate(f"phase2: {len(ready)} runs in {grid.results_dir}", ready, args.workers)
        execution = {"workers": args.workers, "threads": args.threads}
        summary = run_grid(ready, **{k: v for k, v in execution.items() if v is not None})
        print(summary.line())
        failed = summary.count("failed")
    outputs = write_phase2_outputs(grid.results_dir, grid.plots_dir, grid.phase1_results_dir)
    print(f"wrote {outputs.report} and {len(outputs.plots)} figures (PNG and PDF)")
    return 1 if failed or waiting else 0


def _add_study_command(sub: argparse._SubParsersAction) -> None:
    from hybrid_rl.launch.grid import Phase1Grid, Phase2Grid
    from hybrid_rl.launch.study import STUDY_ALGOS, STUDY_DATASETS, Study

    quick = Study.create(quick=True)
    full = Study.create()
    study = sub.add_parser(
        "study",
        help="Phase I then Phase II for one algo and env, then figures and one report "
        "(start here: `hybrid-rl study --quick`)",
        description="The whole study in one command: build or load the dataset, train the "
        "Phase I runs, fine-tune each online with and without the ensemble bonus (a Phase II "
        "run starts as soon as its Phase I run ends), then write the figures and one "
        "report.md with both phases. Prints a wall-time estimate first; finished runs are "
        "skipped, so an interrupted study resumes.",
    )
    study.add_argument(
        "--quick",
        action="store_true",
        help=f"Phase I {quick.phase1.total_steps:,} steps, Phase II "
        f"{quick.phase2.online_steps:,} online steps, seed "
        f"{_default_text(quick.phase1.seeds)} (default budgets: {full.phase1.total_steps:,} "
        f"and {full.phase2.online_steps:,}, seeds {_default_text(full.phase1.seeds)})",
    )
    study.add_argument(
        "--algo", **_LIST_FLAG, help=f"cql | iql | all (default: {_default_text(STUDY_ALGOS)})"
    )
    study.add_argument(
        "--env",
        **_LIST_FLAG,
        help=f"dataset ids or .hdf5 paths (default: {_default_text(STUDY_DATASETS)})",
    )
    study.add_argument(
        "--remove_top_k", **_LIST_FLAG, help=f"k (default: {_default_text(Phase1Grid.k_percents)})"
    )
    study.add_argument("--seed", **_LIST_FLAG, help="seeds (default: see --quick)")
    study.add_argument(
        "--bonus_type",
        **_LIST_FLAG,
        help=f"ensemble | none | both (default: {_default_text(Phase2Grid.bonus_types)})",
    )
    study.add_argument("--phase1_steps", type=int, help="gradient steps per Phase I run")
    study.add_argument("--online_steps", type=int, help="online env steps per Phase II run")
    study.add_argument(
        "--n_ensemble", type=int, help=f"critic members (default: {Phase2Grid.n_ensemble})"
    )
    study.add_argument(
        "--bonus_coeff", type=float, help=f"λ of the bonus (default: {Phase2Grid.bonus_coeff})"
    )
    study.add_argument(
        "--online_ratio",
        type=float,
        help=f"online share of each batch (default: {Phase2Grid.online_ratio})",
    )
    study.add_argument(
        "--eval_episodes",
        type=int,
        help=f"episodes per evaluation (default: {Phase1Grid.eval_episodes})",
    )
    study.add_argument("--device", help=f"cpu | cuda | auto (default: {Phase1Grid.device})")
    study.add_argument(
        "--source", help=f"auto | d4rl | minari | replica (default: {Phase1Grid.source})"
    )
    study.add_argument(
        "--workers", type=int, help="runs in parallel (default: one per CPU core, single-threaded)"
    )
    study.add_argument(
        "--threads", type=int, help="torch threads per run (default: max(1, CPU cores // workers))"
    )
    study.add_argument(
        "--results_dir",
        help=f"Phase I runs (default: {full.phase1.results_dir}; "
        f"with --quick: {quick.phase1.results_dir})",
    )
    study.add_argument(
        "--phase2_results_dir",
        help=f"Phase II runs (default: {full.phase2.results_dir}; "
        f"with --quick: {quick.phase2.results_dir})",
    )
    study.add_argument(
        "--plots_dir",
        help=f"figures and report.md (default: {full.plots_dir}; with --quick: {quick.plots_dir})",
    )
    study.add_argument("--plot_only", action="store_true", help="only write figures and report")
    study.set_defaults(func=_study)


_STUDY_SHARED_LIST_FLAGS: dict[str, tuple[str, type]] = {
    "algo": ("algos", str),
    "env": ("datasets", str),
    "remove_top_k": ("k_percents", float),
    "seed": ("seeds", int),
}


def study_from_args(args: argparse.Namespace) -> Study:
    """The study the `study` flags ask for: `Study.create` with only the flags given."""
    from hybrid_rl.launch.study import Study

    everything = _phase2_everything()
    shared = _list_overrides(args, _STUDY_SHARED_LIST_FLAGS, everything)
    shared |= _scalar_overrides(args, {"device": "device", "eval_episodes": "eval_episodes"})
    phase1 = _scalar_overrides(
        args, {"phase1_steps": "total_steps", "source": "source", "results_dir": "results_dir"}
    )
    phase2 = _list_overrides(args, {"bonus_type": ("bonus_types", str)}, everything)
    phase2 |= _scalar_overrides(
        args,
        {
            "online_steps": "online_steps",
            "n_ensemble": "n_ensemble",
            "bonus_coeff": "bonus_coeff",
            "online_ratio": "online_ratio",
            "phase2_results_dir": "results_dir",
        },
    )
    return Study.create(args.quick, args.plots_dir, phase1, phase2, **shared)


def _study(args: argparse.Namespace) -> int:
    from hybrid_rl.launch.executor import default_workers
    from hybrid_rl.launch.study import run_study, summary_lines

    try:
        study = study_from_args(args)
        configs = study.configs()  # the run configs check every setting
        _check_execution_flags(args)
    except ValueError as err:
        print(f"hybrid-rl study: {err}", file=sys.stderr)
        return 2
    workers = args.workers or default_workers()
    if not args.plot_only:
        phase1_runs = len(study.phase1.expand())
        headline = f"study: {phase1_runs} Phase I + {len(configs) - phase1_runs} Phase II runs"
        _print_estimate(headline, configs, workers)
    result = run_study(study, workers, args.threads, plot_only=args.plot_only)
    for line in summary_lines(result):
        print(line)
    return 1 if result.summary is not None and result.summary.count("failed") else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hybrid-rl", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    _add_dataset_commands(sub)
    _add_behavior_commands(sub)
    _add_phase1_commands(sub)
    _add_phase2_commands(sub)
    _add_study_command(sub)
    return parser


# Errors that describe bad input or a missing resource: shown as one line, not a traceback.
_USER_ERRORS = (KeyError, ValueError, FileNotFoundError, RuntimeError)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except _USER_ERRORS as err:
        if os.environ.get("HYBRID_RL_DEBUG"):
            raise
        message = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
        print(f"hybrid-rl: error: {message}", file=sys.stderr)
        print("(set HYBRID_RL_DEBUG=1 for the full traceback)", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
