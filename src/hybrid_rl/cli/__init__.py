"""The `hybrid-rl` command line: one module per command, flags generated from the config
dataclasses (`flags.py`), every value checked before any run starts."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

from hybrid_rl.cli.behavior import add_behavior_commands
from hybrid_rl.cli.dataset import add_dataset_commands, format_summary
from hybrid_rl.cli.phase1 import add_phase1_command, phase1_grid_from_args
from hybrid_rl.cli.phase2 import add_phase2_command, phase1_command_for, phase2_grid_from_args
from hybrid_rl.cli.runs import add_runs_commands
from hybrid_rl.cli.study import add_study_command, study_from_args
from hybrid_rl.report.document import reporting_command

__all__ = [
    "build_parser",
    "format_summary",
    "main",
    "phase1_command_for",
    "phase1_grid_from_args",
    "phase2_grid_from_args",
    "study_from_args",
]


class _Parser(argparse.ArgumentParser):
    """A parser that matches no flag by an abbreviation: argparse's prefix matching would make
    `--seeds 3` mean `--seeds_per_process 3`. Subcommands' parsers are of this class too
    (`add_subparsers` makes parsers of its parser's class)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="hybrid-rl", description="Offline RL under corrupted data, then online fine-tuning."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    add_dataset_commands(sub)
    add_behavior_commands(sub)
    add_phase1_command(sub)
    add_phase2_command(sub)
    add_study_command(sub)
    add_runs_commands(sub)
    return parser


# Errors that describe bad input or a missing resource: shown as one line, not a traceback.
_USER_ERRORS = (KeyError, ValueError, FileNotFoundError, RuntimeError)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        with reporting_command(["hybrid-rl", *(sys.argv[1:] if argv is None else argv)]):
            return int(args.func(args))
    except _USER_ERRORS as err:
        if os.environ.get("HYBRID_RL_DEBUG"):
            raise
        message = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
        print(f"hybrid-rl: error: {message}", file=sys.stderr)
        print("(set HYBRID_RL_DEBUG=1 for the full traceback)", file=sys.stderr)
        return 2
