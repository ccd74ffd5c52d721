"""Run the installed `hybrid-rl` console script as a user would, in a subprocess."""

from __future__ import annotations

import os
import shutil
import subprocess


def run_hybrid_rl(
    *args: str, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess:
    """`hybrid-rl ARGS...` with this process's environment plus `env`; output captured."""
    exe = shutil.which("hybrid-rl")
    assert exe, "the hybrid-rl console script is not installed"
    return subprocess.run(
        [exe, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )
