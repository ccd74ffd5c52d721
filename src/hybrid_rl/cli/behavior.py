"""`hybrid-rl behavior train|carry|select|ship-replay`: the replicas' behaviour policies."""

from __future__ import annotations

import argparse
import json

import torch

from hybrid_rl.behavior.replay_set import ReplayShipConfig
from hybrid_rl.behavior.select import (
    SELECTABLE_QUALITIES,
    SelectionConfig,
    select_behavior_policy,
)


def add_behavior_commands(sub: argparse._SubParsersAction) -> None:
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
    train.add_argument(
        "--carry",
        default=None,
        help="a state written by `behavior carry`: a run folder without a checkpoint continues "
        "that run (its replay buffer left behind, refilled by the current policy)",
    )
    train.set_defaults(func=_behavior_train)
    carry = bsub.add_parser(
        "carry",
        help="write a run's latest checkpoint without its replay buffer, to commit and "
        "continue on another machine with `behavior train --carry`",
    )
    carry.add_argument("--run", required=True, help="a `behavior train` output folder")
    carry.add_argument("--out", required=True, help="the file to write, e.g. behavior_carry/X.pt")
    carry.set_defaults(func=_behavior_carry)
    select = bsub.add_parser(
        "select", help="ship the snapshot whose stochastic score is closest to a target"
    )
    select.add_argument("--run", required=True, help="a `behavior train` output folder")
    select.add_argument("--target", type=float, required=True, help="normalized score")
    select.add_argument("--band", type=float, required=True, help="allowed distance")
    select.add_argument("--episodes", type=int, default=30)
    select.add_argument("--seed", type=int, default=123)
    select.add_argument("--min-step", type=int, default=0, help="skip earlier snapshots")
    select.add_argument(
        "--max-std", type=float, default=None, help="at most this std of normalized returns"
    )
    select.add_argument(
        "--length-range",
        type=float,
        nargs=2,
        default=None,
        metavar=("MIN", "MAX"),
        help="mean episode length of the stochastic episodes within [MIN, MAX]",
    )
    select.add_argument(
        "--quality",
        choices=SELECTABLE_QUALITIES,
        default=SelectionConfig.quality,
        help="the replica the policy is for: ships <env>_<quality>.pt and .json (expert: "
        "also the second half of <env>-medium-expert-v2)",
    )
    select.add_argument(
        "--policy-dir",
        default=SelectionConfig.policy_dir,
        help="where to ship (default: the package's policies folder)",
    )
    select.set_defaults(func=_behavior_select)
    ship_replay = bsub.add_parser(
        "ship-replay",
        help="ship evenly spaced snapshots of a run as its medium-replay snapshot set",
        description="Picks --snapshots snapshots of the run, evenly spaced up to --up-to-step "
        "(the medium snapshot, the last one picked), and writes them with a card into the "
        "package's policies folder: <env>_medium_replay.pt and .json. The medium-replay "
        "replica rolls each out for the share of training steps it stands for.",
    )
    ship_replay.add_argument("--run", required=True, help="a `behavior train` output folder")
    ship_replay.add_argument(
        "--up-to-step", type=int, required=True, help="the medium snapshot's training step"
    )
    ship_replay.add_argument(
        "--snapshots", type=int, default=ReplayShipConfig.snapshots, help="how many to ship"
    )
    ship_replay.set_defaults(func=_behavior_ship_replay)


def _behavior_ship_replay(args: argparse.Namespace) -> int:
    from hybrid_rl.behavior.replay_set import ship_replay_set

    card = ship_replay_set(
        ReplayShipConfig(run_dir=args.run, up_to_step=args.up_to_step, snapshots=args.snapshots)
    )
    print(json.dumps(card, indent=2))
    return 0


def _behavior_carry(args: argparse.Namespace) -> int:
    from hybrid_rl.behavior.carry import pack_carry

    print(json.dumps(pack_carry(args.run, args.out), indent=2))
    return 0


def _behavior_select(args: argparse.Namespace) -> int:
    card = select_behavior_policy(
        SelectionConfig(
            run_dir=args.run,
            target=args.target,
            band=args.band,
            episodes=args.episodes,
            seed=args.seed,
            quality=args.quality,
            min_step=args.min_step,
            policy_dir=args.policy_dir,
            max_return_std=args.max_std,
            length_range=tuple(args.length_range) if args.length_range else None,
        )
    )
    print(json.dumps(card, indent=2))
    return 0


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
    train_behavior_policy(config, carry=args.carry)
    return 0
