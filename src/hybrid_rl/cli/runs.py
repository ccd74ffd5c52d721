"""`hybrid-rl runs reset`: start one run over, e.g. after a damaged checkpoint."""

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
