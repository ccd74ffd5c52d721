"""What a result file records about the code that produced it."""

from __future__ import annotations

import importlib.metadata
import subprocess
from pathlib import Path

from hybrid_rl import __version__


def git_commit() -> str:
    """The commit of the checkout holding this package (+ '-dirty' if it has changes)."""
    here = Path(__file__).parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True, cwd=here
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
            cwd=here,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return head + ("-dirty" if dirty.strip() else "")


def software_versions() -> dict[str, str]:
    versions = {"hybrid_rl": __version__}
    for package in ("torch", "gymnasium", "mujoco", "numpy", "h5py"):
        versions[package] = importlib.metadata.version(package)
    return versions
