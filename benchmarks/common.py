"""Shared pieces of the benchmark scripts: machine description and interleaved timing.

Benchmarks here run on shared 2-core machines where other jobs come and go, so every script
alternates its variants in short blocks (A, B, C, A, B, C, ...) and reports medians: a load
change then hits all variants alike instead of whichever happened to run during it.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (platform.processor() elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def load_average() -> list[float]:
    """1, 5 and 15-minute load averages (what `uptime` shows), or [] where unavailable."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).parent,
        )
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def machine_info() -> dict[str, Any]:
    """Date, CPU, core count, load, Python and torch versions: the header of every result."""
    import torch

    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "cpu": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "load_average_1_5_15": load_average(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "git_commit": git_commit(),
    }


@dataclass
class Timing:
    """Wall-clock and CPU seconds of repeated blocks of `units` units of work each."""

    units: int
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)

    def rate(self) -> float:
        """Units per second of wall time, median over blocks."""
        return self.units / statistics.median(self.wall)

    def cpu_rate(self) -> float:
        """Units per second of the process's CPU time, median over blocks.

        Time the scheduler gave to other processes is not counted, so under contention this
        is steadier than `rate`; with one thread on an idle machine it equals `rate`.
        """
        return self.units / statistics.median(self.cpu)


def time_block(work: Callable[[], None], timing: Timing) -> None:
    """Run `work` once and append its wall and process CPU seconds to `timing`."""
    wall, cpu = time.perf_counter(), time.process_time()
    work()
    timing.cpu.append(time.process_time() - cpu)
    timing.wall.append(time.perf_counter() - wall)


def write_json(path: Path, result: dict[str, Any]) -> None:
    path.write_text(json.dumps(result, indent=2) + "\n")
