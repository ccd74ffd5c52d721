"""The `hybrid-rl` command line."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import torch


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hybrid-rl", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    _add_dataset_commands(sub)
    _add_behavior_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
