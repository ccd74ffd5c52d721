"""`hybrid-rl dataset info|build|report`: inspect and build offline datasets."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path


def add_dataset_commands(sub: argparse._SubParsersAction) -> None:
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
