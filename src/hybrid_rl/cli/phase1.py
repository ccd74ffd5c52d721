"""`hybrid-rl phase1` (and run_phase1.py): the Phase I grid from its flags, run, then the
figures and report."""

from __future__ import annotations

import argparse

from hybrid_rl.cli.execution import (
    EXECUTION_FLAGS,
    Execution,
    checked,
    execution_from_args,
    print_estimate,
)
from hybrid_rl.cli.flags import add_flags, add_quick_flag, field_flags, given_values, overrides
from hybrid_rl.launch.phase1_grid import Phase1Grid
from hybrid_rl.train import TrainConfig

PHASE1_FLAGS = field_flags(Phase1Grid)


def add_phase1_command(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "phase1",
        help="Phase I: CQL, IQL and BC offline on corrupted datasets, then plots and report",
        description="Run the Phase I grid (algo × env × k × σ × seed; finished runs are "
        "skipped), then write the plots and report.md. List flags take several values, "
        "comma-separated or repeated. Every value is checked before any run starts.",
    )
    default, quick = Phase1Grid(), Phase1Grid.quick()
    add_quick_flag(parser, PHASE1_FLAGS, default, quick)
    add_flags(parser, PHASE1_FLAGS, default, quick)
    add_flags(parser, EXECUTION_FLAGS, Execution())
    parser.set_defaults(func=run_phase1_command)


def phase1_grid_from_args(args: argparse.Namespace) -> Phase1Grid:
    """The grid the `phase1` flags ask for: `Phase1Grid` (or its `quick()` variant) with only
    the flags actually given overriding its defaults."""
    values = overrides(given_values(args, PHASE1_FLAGS))
    return Phase1Grid.quick(**values) if args.quick else Phase1Grid(**values)


def _checked_phase1(args: argparse.Namespace) -> tuple[Phase1Grid, list[TrainConfig], Execution]:
    grid = phase1_grid_from_args(args)
    return grid, grid.validate(), execution_from_args(args)


def run_phase1_command(args: argparse.Namespace) -> int:
    from hybrid_rl.launch.datasets import datasets_loaded_once
    from hybrid_rl.launch.executor import run_grid
    from hybrid_rl.report.report import write_phase1_outputs

    ready = checked("phase1", args, PHASE1_FLAGS, lambda: _checked_phase1(args))
    if ready is None:
        return 2
    grid, configs, execution = ready
    failed = 0
    if not execution.plot_only:
        headline = f"phase1: {len(configs)} runs in {grid.results_dir}"
        runs = grid.run_specs(configs)
        print_estimate(headline, runs, execution)
        with datasets_loaded_once((c.dataset, c.source) for c in configs):
            summary = run_grid(
                runs,
                execution.workers,
                execution.threads,
                launcher=execution.remote_launcher(),
            )
        print(summary.line())
        failed = summary.count("failed")
    outputs = write_phase1_outputs(grid.results_dir, grid.plots_dir)
    print(f"wrote {outputs.report}, {outputs.html} and {len(outputs.plots)} figures (PNG and PDF)")
    return 1 if failed else 0
