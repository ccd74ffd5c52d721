"""`hybrid-rl dataset info|build|verify|card|report`: inspect, build and check offline datasets."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from hybrid_rl.behavior.replica_card import DEFAULT_RETURN_RTOL
from hybrid_rl.data.registry import DATASETS

_PROJECT_IDS = ", ".join(i for i, spec in DATASETS.items() if not spec.in_d4rl)
_REPLICA_IDS = (
    "{halfcheetah,hopper}-{medium,medium-replay,medium-expert,expert,random}-v2, or this "
    f"project's own {_PROJECT_IDS}"
)


def add_dataset_commands(sub: argparse._SubParsersAction) -> None:
    dataset = sub.add_parser("dataset", help="inspect and build offline datasets")
    dsub = dataset.add_subparsers(dest="dataset_command", required=True)
    info = dsub.add_parser("info", help="sizes, returns and provenance of a dataset")
    info.add_argument("dataset", help="a dataset id (e.g. hopper-medium-v2) or an .hdf5 path")
    info.add_argument("--source", default="auto", help="auto | d4rl | minari | replica")
    info.add_argument("--json", action="store_true", help="print JSON instead of a table")
    info.set_defaults(func=_dataset_info)
    build = dsub.add_parser("build", help="build a replica dataset from a shipped policy")
    build.add_argument("dataset", help=_REPLICA_IDS)
    build.add_argument(
        "--n", type=int, default=None, help="transitions (default: D4RL's size of the dataset)"
    )
    build.add_argument("--seed", type=int, default=0)
    build.add_argument("--out", default=None, help="output .hdf5 (default: the replica cache)")
    build.set_defaults(func=_dataset_build)
    verify = dsub.add_parser(
        "verify",
        help="check a local replica (built if absent) against the summary in its card",
        description="Exit 0 when every statistic matches the card, 1 when one differs, "
        "2 on bad input. Counts and episode lengths must be equal; return statistics agree "
        "within --rtol.",
    )
    verify.add_argument("dataset", help=_REPLICA_IDS)
    verify.add_argument("--file", default=None, help="check this .hdf5 instead of the cache")
    verify.add_argument("--card", default=None, help="a card .json (default: the shipped one)")
    verify.add_argument(
        "--rtol", type=float, default=DEFAULT_RETURN_RTOL, help="relative tolerance on returns"
    )
    verify.set_defaults(func=_dataset_verify)
    card = dsub.add_parser(
        "card",
        help="build a replica (if absent) and write its summary into the shipped card",
        description="For maintainers, after the policy or the build recipe changed.",
    )
    card.add_argument("dataset", help=_REPLICA_IDS)
    card.add_argument("--card", default=None, help="a card .json (default: the shipped one)")
    card.add_argument(
        "--refresh",
        action="store_true",
        help="recompute the summary from the recorded build (cached, or --file), adding the "
        "statistics it lacks and changing none it has; no rebuild",
    )
    card.add_argument("--file", default=None, help="with --refresh: the recorded build's .hdf5")
    card.set_defaults(func=_dataset_card)
    report = dsub.add_parser(
        "report",
        help="every shipped replica card beside D4RL's statistics, with return histograms",
        description="Rewrites the generated part of OUT/datasets.md (between its two marker "
        "lines; the rest is kept) and OUT/<id>-returns.png, from the cards alone.",
    )
    report.add_argument("--out", default="docs", help="folder of datasets.md and the figures")
    report.add_argument(
        "--cards", default=None, help="folder of the cards (default: the shipped ones)"
    )
    report.set_defaults(func=_dataset_report)


def _dataset_report(args: argparse.Namespace) -> int:
    from hybrid_rl.behavior.policies import POLICY_DIR
    from hybrid_rl.report.dataset_report import shipped_cards, write_dataset_report

    card_dir = Path(args.cards) if args.cards else POLICY_DIR
    cards = shipped_cards(card_dir)
    if not cards:
        raise FileNotFoundError(f"no card (*.json) in {card_dir}")
    print(f"wrote {write_dataset_report(cards, Path(args.out))} from {len(cards)} cards")
    return 0


def _dataset_build(args: argparse.Namespace) -> int:
    from hybrid_rl.behavior.replica import build_replica

    path = build_replica(args.dataset, args.n, args.seed, Path(args.out) if args.out else None)
    print(f"wrote {path}")
    return 0


def _current_build(
    dataset_id: str, n_transitions: int, seed: int, num_envs: int, rebuild_stale: bool = False
) -> Path:
    """The cached replica with these settings, built first when absent (or, with
    `rebuild_stale`, when an older recipe or another shipped policy built it)."""
    from hybrid_rl.behavior.replica import build_replica, built_from_shipped_policy, replica_path

    path = replica_path(dataset_id, n_transitions, seed, num_envs)
    stale = path.exists() and not built_from_shipped_policy(path, dataset_id)
    if not path.exists() or (stale and rebuild_stale):
        print(f"building {path} (this takes a few minutes)")
        build_replica(dataset_id, n_transitions, seed, path, num_envs)
    return path


def _dataset_verify(args: argparse.Namespace) -> int:
    from hybrid_rl.behavior.replica_card import (
        check_return_rtol,
        read_replica_record,
        replica_card_path,
        verify_replica,
    )

    check_return_rtol(args.rtol)  # before a build that can take minutes
    card = Path(args.card) if args.card else replica_card_path(args.dataset)
    record = read_replica_record(card, args.dataset)
    if args.file:
        path = Path(args.file)
        if not path.exists():
            raise FileNotFoundError(f"--file {path} does not exist")
    else:
        path = _current_build(
            args.dataset, record["n_transitions"], record["seed"], record["num_envs"]
        )
    result = verify_replica(path, record, args.rtol)
    print(f"{args.dataset}: {path} against {card}")
    print("\n".join(result.lines()))
    if result.recipe_actual != result.recipe_expected:
        print(
            f"the file was built by another recipe: delete it, or rebuild it with "
            f"`hybrid-rl dataset build {args.dataset}`"
        )
    return 0 if result.matches else 1


def _dataset_card(args: argparse.Namespace) -> int:
    from hybrid_rl.behavior.replica import DEFAULT_NUM_ENVS, default_transitions
    from hybrid_rl.behavior.replica_card import (
        replica_card_path,
        replica_record,
        write_replica_record,
    )

    card = Path(args.card) if args.card else replica_card_path(args.dataset)
    if args.refresh:
        return _refresh_card(card, args.dataset, args.file)
    if args.file:
        raise ValueError("--file goes with --refresh; a card is otherwise written from a build")
    path = _current_build(
        args.dataset, default_transitions(args.dataset), 0, DEFAULT_NUM_ENVS, rebuild_stale=True
    )
    record = replica_record(path, args.dataset)
    write_replica_record(card, record)
    print(f"wrote the summary of {path} (sha256 {record['sha256']}) into {card}")
    return 0


def _refresh_card(card: Path, dataset_id: str, file: str | None) -> int:
    from hybrid_rl.behavior.replica import replica_path
    from hybrid_rl.behavior.replica_card import (
        read_replica_record,
        refresh_summary,
        write_replica_record,
    )

    if file:
        path = Path(file)
    else:
        record = read_replica_record(card, dataset_id)
        path = replica_path(dataset_id, record["n_transitions"], record["seed"], record["num_envs"])
    if not path.exists():
        raise FileNotFoundError(
            f"{path} does not exist: --refresh reads the recorded build; name it with --file, "
            f"or build it with `hybrid-rl dataset build {dataset_id}`"
        )
    write_replica_record(card, refresh_summary(card, dataset_id, path))
    print(f"refreshed the summary in {card} from {path}")
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
