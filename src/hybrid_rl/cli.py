"""The `hybrid-rl` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

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
    _add_behavior_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
