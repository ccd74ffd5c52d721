"""What the grid commands (phase1, phase2, study) share: how the runs execute (`--workers`,
`--threads`, `--launcher`, `--ray_address`, `--plot_only`), checking every value before
anything is written, and the wall-time estimate printed before the runs start."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, TypeVar

from hybrid_rl.cli.flags import Flag, FlagError, error_line, field_flags, given_values, overrides
from hybrid_rl.launch.executor import RemoteLauncher, default_workers
from hybrid_rl.launch.options import SettingError, option
from hybrid_rl.launch.ray_launcher import (
    RAY_INSTALL_COMMAND,
    RayLauncher,
    address_form_problem,
    ray_installed,
    unreachable_address_problem,
)
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
        None,
        "threads",
        "torch threads per run (with --launcher ray: the CPUs each run asks Ray for)",
        shown="max(1, CPU cores // workers); with --launcher ray: 1",
    )
    launcher: Literal["local", "ray"] = option(
        "local",
        "launcher",
        "local: a process pool on this machine | ray: one Ray task per run on a Ray cluster "
        f"(needs `{RAY_INSTALL_COMMAND}`, and the results folders on a filesystem every node "
        "sees)",
    )
    ray_address: str | None = option(
        None,
        "ray_address",
        "host:port of the Ray cluster's head, with --launcher ray",
        shown="a Ray instance started on this machine for the grid",
    )
    plot_only: bool = option(False, "plot_only", "only write the figures and report.md")

    def __post_init__(self) -> None:
        for name in ("workers", "threads"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise SettingError(name, f"--{name} must be at least 1, got {value}")
        if self.launcher not in ("local", "ray"):
            raise SettingError(
                "launcher", f"--launcher must be local or ray, got {self.launcher!r}"
            )
        if self.ray_address is not None and self.launcher != "ray":
            raise SettingError(
                "ray_address", "--ray_address applies to --launcher ray only; add it"
            )
        # The form is checked here, with the other values, so that a bad address is named as
        # such whatever this machine has installed.
        if self.ray_address is not None:
            problem = address_form_problem(self.ray_address)
            if problem is not None:
                raise SettingError("ray_address", problem)
        if self.workers is not None and self.launcher == "ray":
            raise SettingError(
                "workers",
                "--workers sizes the local pool; with --launcher ray the cluster's CPUs decide "
                "how many runs run at once (each asks for --threads CPUs, default 1)",
            )

    def check_environment(self) -> None:
        """What depends on this machine, for a well-formed grid about to run: a cluster
        answering at --ray_address, then Ray installed here."""
        if self.plot_only or self.launcher != "ray":
            return
        if self.ray_address is not None:
            problem = unreachable_address_problem(self.ray_address)
            if problem is not None:
                raise SettingError("ray_address", problem)
        if not ray_installed():
            raise SettingError(
                "launcher",
                f"--launcher ray needs Ray, which is not installed here: {RAY_INSTALL_COMMAND}",
            )

    def remote_launcher(self) -> RemoteLauncher | None:
        """The launcher `run_grid` hands the runs to, or None for the local pool."""
        return RayLauncher(self.ray_address) if self.launcher == "ray" else None


EXECUTION_FLAGS = field_flags(Execution)


def execution_from_args(args: argparse.Namespace) -> Execution:
    execution = Execution(**overrides(given_values(args, EXECUTION_FLAGS)))
    execution.check_environment()
    return execution


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


def print_estimate(headline: str, configs: Sequence[RunSpec], execution: Execution) -> None:
    """`headline`, the expected wall time of `configs` and the arithmetic behind it (stderr);
    on Ray, where the cluster's size decides it, only where the runs go."""
    from hybrid_rl.launch.estimate import estimate_wall_time, format_minutes

    if execution.launcher == "ray":
        where = execution.ray_address or "a Ray instance started on this machine"
        threads = execution.threads or 1
        print(
            f"{headline} on Ray ({where}), one task of {threads} CPU{'s' if threads > 1 else ''}"
            " per run",
            file=sys.stderr,
        )
        return
    workers = execution.workers or default_workers()
    estimate = estimate_wall_time(configs, workers)
    print(
        f"{headline} on {workers} worker{'s' if workers != 1 else ''}; estimated wall time "
        f"{format_minutes(estimate.seconds)}:",
        file=sys.stderr,
    )
    for line in estimate.lines:
        print(f"  {line}", file=sys.stderr)
