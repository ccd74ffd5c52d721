"""What the grid commands (phase1, phase2, study) share: how the runs execute (`--workers`,
`--threads`, `--plot_only`), checking every value before anything is written, and the
wall-time estimate printed before the runs start."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from hybrid_rl.cli.flags import Flag, FlagError, error_line, field_flags, given_values, overrides
from hybrid_rl.launch.executor import default_workers
from hybrid_rl.launch.grid import SettingError, option
from hybrid_rl.runs.spec import RunSpec

Checked = TypeVar("Checked")


@dataclass(frozen=True)
class Execution:
    """How a grid command runs its runs (None: decided from the CPU count)."""

    workers: int | None = option(
        None,
        "workers",
        "runs in parallel, in a local process pool; 1 runs them in this process",
        shown="one per CPU core, single-threaded",
    )
    threads: int | None = option(
        None, "threads", "torch threads per run", shown="max(1, CPU cores // workers)"
    )
    plot_only: bool = option(False, "plot_only", "only write the figures and report.md")

    def __post_init__(self) -> None:
        for name in ("workers", "threads"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise SettingError(name, f"--{name} must be at least 1, got {value}")


EXECUTION_FLAGS = field_flags(Execution)


def execution_from_args(args: argparse.Namespace) -> Execution:
    return Execution(**overrides(given_values(args, EXECUTION_FLAGS)))


def checked(
    command: str,
    args: argparse.Namespace,
    flags: Sequence[Flag],
    check: Callable[[], Checked],
) -> Checked | None:
    """`check()` (which builds and validates everything the command will use), or None after
    one line on stderr naming the flag at fault; nothing is written either way."""
    try:
        return check()
    except FlagError as err:
        line = str(err)
    except SettingError as err:
        line = error_line(err, [*flags, *EXECUTION_FLAGS], args)
    print(f"hybrid-rl {command}: {line}", file=sys.stderr)
    return None


def print_estimate(headline: str, configs: Sequence[RunSpec], workers: int | None) -> None:
    """`headline`, the expected wall time of `configs` and the arithmetic behind it (stderr)."""
    from hybrid_rl.launch.estimate import estimate_wall_time, format_minutes

    workers = workers or default_workers()
    estimate = estimate_wall_time(configs, workers)
    print(
        f"{headline} on {workers} worker{'s' if workers != 1 else ''}; estimated wall time "
        f"{format_minutes(estimate.seconds)}:",
        file=sys.stderr,
    )
    for line in estimate.lines:
        print(f"  {line}", file=sys.stderr)
