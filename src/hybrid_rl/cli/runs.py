"""`hybrid-rl runs reset`: start one run over, e.g. after a damaged checkpoint;
`hybrid-rl runs archive`: copy finished runs somewhere they are kept (e.g. committed)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hybrid_rl.runs.folder import RUN_FILES, RunFolder


def add_runs_commands(sub: argparse._SubParsersAction) -> None:
    runs = sub.add_parser("runs", help="manage run folders")
    rsub = runs.add_subparsers(dest="runs_command", required=True)
    reset = rsub.add_parser(
        "reset",
        help="delete a run's files so that the next grid or study command starts it over",
        description=f"Delete {', '.join(RUN_FILES)} (and a TensorBoard log) of each run folder "
        "given; other files in it are kept. Then rerun the command that made the run.",
    )
    reset.add_argument("folders", nargs="+", type=Path, help="run folders, e.g. results/<run>")
    reset.set_defaults(func=_reset)
    archive = rsub.add_parser(
        "archive",
        help="copy the finished runs of a results folder into another (e.g. a committed one)",
        description="Copy config.json and metrics.json (and, with --checkpoints, the final "
        "checkpoint.pt) of every finished run folder in SOURCE to DESTINATION/<run>, so that "
        "the records, and the state a later phase starts from, survive a change of machine. "
        "Runs already archived are left as they are; unfinished runs are not copied. Grid "
        "commands pointed at DESTINATION skip its runs as finished.",
    )
    archive.add_argument("source", type=Path, help="a results folder, e.g. results")
    archive.add_argument("destination", type=Path, help="where the copies go")
    archive.add_argument(
        "--checkpoints",
        action="store_true",
        help="copy each run's final checkpoint.pt too (what a Phase II run loads)",
    )
    archive.set_defaults(func=_archive)


def _reset(args: argparse.Namespace) -> int:
    missing = [str(folder) for folder in args.folders if not folder.is_dir()]
    if missing:
        print(f"hybrid-rl runs reset: no such folder: {', '.join(missing)}", file=sys.stderr)
        return 2
    for folder in args.folders:
        removed = RunFolder(folder).reset()
        if removed:
            print(f"{folder}: removed {', '.join(path.name for path in removed)}")
        else:
            print(f"{folder}: holds no run files; nothing to reset")
    return 0


def _archive(args: argparse.Namespace) -> int:
    if not args.source.is_dir():
        print(f"hybrid-rl runs archive: no such folder: {args.source}", file=sys.stderr)
        return 2
    copied = kept = 0
    for path in sorted(p for p in args.source.iterdir() if p.is_dir()):
        folder, target = RunFolder(path), RunFolder(args.destination / path.name)
        if not folder.is_finished():
            continue
        wanted = ("checkpoint.pt",) if args.checkpoints else ()
        if target.is_finished() and all((target.path / n).exists() for n in wanted):
            kept += 1
            continue
        folder.archive_to(target.path, args.checkpoints)
        print(f"{path.name}: archived in {target.path}")
        copied += 1
    print(f"{copied} runs archived, {kept} already there")
    return 0
