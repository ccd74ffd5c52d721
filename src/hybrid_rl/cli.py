"""The `hybrid-rl` command line."""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from hybrid_rl.launch.grid import Phase1Grid


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
    from hybrid_rl.launch.executor import run_grid
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
        f"(default: {inspect.signature(run_grid).parameters['workers'].default})",
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

    overrides: dict[str, Any] = {}
    for flag, (name, kind) in _PHASE1_LIST_FLAGS.items():
        raw = getattr(args, flag)
        if raw is None:
            continue
        items = [item.strip() for value in raw for item in value.split(",") if item.strip()]
        if flag == "algo" and "all" in items:
            items = list(ALGORITHMS)
        try:
            overrides[name] = tuple(dict.fromkeys(kind(item) for item in items))
        except ValueError:
            raise ValueError(
                f"--{flag} takes {kind.__name__} values, got {' '.join(raw)!r}"
            ) from None
    for name in _PHASE1_SCALAR_FLAGS:
        if getattr(args, name) is not None:
            overrides[name] = getattr(args, name)
    return Phase1Grid.quick(**overrides) if args.quick else Phase1Grid(**overrides)


def _phase1(args: argparse.Namespace) -> int:
    from hybrid_rl.eval.report import write_phase1_outputs
    from hybrid_rl.launch.executor import run_grid

    try:
        grid = phase1_grid_from_args(args)
        configs = grid.expand()  # TrainConfig checks the step settings of every run
        for flag in ("workers", "threads"):
            if getattr(args, flag) is not None and getattr(args, flag) < 1:
                raise ValueError(f"--{flag} must be at least 1, got {getattr(args, flag)}")
    except ValueError as err:
        print(f"hybrid-rl phase1: {err}", file=sys.stderr)
        return 2
    failed = 0
    if not args.plot_only:
        print(f"phase1: {len(configs)} runs in {grid.results_dir}", file=sys.stderr)
        execution = {"workers": args.workers, "threads": args.threads}
        summary = run_grid(configs, **{k: v for k, v in execution.items() if v is not None})
        print(summary.line())
        failed = summary.count("failed")
    outputs = write_phase1_outputs(grid.results_dir, grid.plots_dir)
    print(f"wrote {outputs.report} and {len(outputs.plots)} figures (PNG and PDF)")
    return 1 if failed else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hybrid-rl", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    _add_dataset_commands(sub)
    _add_behavior_commands(sub)
    _add_phase1_commands(sub)
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
