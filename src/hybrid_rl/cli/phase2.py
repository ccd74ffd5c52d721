"""`hybrid-rl phase2` (and run_phase2.py): the Phase II grid from its flags, run on the Phase I
runs that are finished (naming the command that creates the others), then the figures and
report."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from hybrid_rl.cli.execution import (
    EXECUTION_FLAGS,
    Execution,
    checked,
    execution_from_args,
    print_estimate,
)
from hybrid_rl.cli.flags import add_flags, add_quick_flag, field_flags, given_values, overrides
from hybrid_rl.finetune_config import FinetuneConfig
from hybrid_rl.launch.phase1_grid import Phase1Grid
from hybrid_rl.launch.phase2_grid import Phase2Grid

PHASE2_FLAGS = field_flags(Phase2Grid)


def add_phase2_command(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "phase2",
        help="Phase II: fine-tune the Phase I agents online, with and without the ensemble "
        "bonus, then plots and report",
        description="Run the Phase II grid (algo × env × k × bonus type × seed; finished runs "
        "are skipped; runs whose Phase I run is not finished wait, with the command that "
        "creates it), then write the plots and report.md. List flags take several values, "
        "comma-separated or repeated. Every value is checked before any run starts.",
    )
    default, quick = Phase2Grid(), Phase2Grid.quick()
    add_quick_flag(parser, PHASE2_FLAGS, default, quick)
    add_flags(parser, PHASE2_FLAGS, default, quick)
    add_flags(parser, EXECUTION_FLAGS, Execution())
    parser.set_defaults(func=run_phase2_command)


def phase2_grid_from_args(args: argparse.Namespace) -> Phase2Grid:
    """The grid the `phase2` flags ask for: `Phase2Grid` (or its `quick()` variant) with only
    the flags actually given overriding its defaults."""
    values = overrides(given_values(args, PHASE2_FLAGS))
    return Phase2Grid.quick(**values) if args.quick else Phase2Grid(**values)


def phase1_command_for(configs: Sequence[FinetuneConfig]) -> str:
    """One `run_phase1.py` command creating the Phase I runs `configs` start from (with
    the union of their algos, envs, k and seeds; Phase I skips the runs already finished)."""

    def values(items: Sequence[Any]) -> str:
        return ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in dict.fromkeys(items))

    parts = ["python run_phase1.py"]
    folders = {c.phase1_results_dir for c in configs}
    for folder in sorted(folders):
        if folder == Phase1Grid.quick().results_dir:
            parts.append("--quick")
        elif folder != Phase1Grid().results_dir:
            parts.append(f"--results_dir {folder}")
    parts += [
        f"--algo {values([c.algo for c in configs])}",
        f"--env {values([c.dataset for c in configs])}",
        f"--remove_top_k {values(sorted(c.k_percent for c in configs))}",
        f"--seed {values(sorted(c.seed for c in configs))}",
    ]
    # `--fresh_init phase1` starts from Phase I runs that trained N critics (one N per grid).
    critics = {c.phase1_train_config().n_critics for c in configs} - {Phase1Grid().n_critics}
    if critics:
        parts.append(f"--n_critics {max(critics)}")
    return " ".join(parts)


def _checked_phase2(
    args: argparse.Namespace,
) -> tuple[Phase2Grid, list[FinetuneConfig], Execution]:
    grid = phase2_grid_from_args(args)
    return grid, grid.validate(), execution_from_args(args)


def run_phase2_command(args: argparse.Namespace) -> int:
    from hybrid_rl.launch.datasets import datasets_loaded_once
    from hybrid_rl.launch.executor import run_grid
    from hybrid_rl.report.report_phase2 import write_phase2_outputs

    ready_to_check = checked("phase2", args, PHASE2_FLAGS, lambda: _checked_phase2(args))
    if ready_to_check is None:
        return 2
    grid, configs, execution = ready_to_check
    failed = waiting = 0
    if not execution.plot_only:
        phase1 = {c.run_name: c.phase1_train_config().folder.status() for c in configs}
        ready = [c for c in configs if phase1[c.run_name] == "completed"]
        diverged = [c for c in configs if phase1[c.run_name] == "diverged"]
        missing = [c for c in configs if phase1[c.run_name] not in ("completed", "diverged")]
        waiting = len(missing) + len(diverged)
        if missing:
            print(
                f"phase2: {len(missing)} of {len(configs)} runs wait for Phase I runs that are "
                f"missing or unfinished in {grid.phase1_results_dir}; create them with:\n  "
                f"{phase1_command_for(missing)}",
                file=sys.stderr,
            )
        if diverged:
            print(
                f"phase2: {len(diverged)} runs cannot start, their Phase I run diverged: "
                f"{', '.join(c.run_name for c in diverged)}",
                file=sys.stderr,
            )
        # With nothing ready the estimate would say "all finished already": not so, they wait.
        if ready:
            print_estimate(f"phase2: {len(ready)} runs in {grid.results_dir}", ready, execution)
            with datasets_loaded_once(_phase1_datasets(ready)):
                summary = run_grid(
                    ready,
                    execution.workers,
                    execution.threads,
                    launcher=execution.remote_launcher(),
                )
            print(summary.line())
            failed = summary.count("failed")
    outputs = write_phase2_outputs(grid.results_dir, grid.plots_dir, grid.phase1_results_dir)
    print(f"wrote {outputs.report}, {outputs.html} and {len(outputs.plots)} figures (PNG and PDF)")
    return 1 if failed or waiting else 0


def _phase1_datasets(ready: Sequence[FinetuneConfig]) -> list[tuple[str, str]]:
    """(dataset, source) that each run's Phase I run trained on, as its config.json says."""
    pairs = []
    for config in ready:
        saved = config.phase1_train_config().folder.read_config() or {}
        pairs.append((config.dataset, str(saved.get("config", {}).get("source", "auto"))))
    return pairs
