"""Writes that never leave half a file: write to a temporary sibling, then rename."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch


def atomic_write(path: str | os.PathLike[str], write: Callable[[Path], None]) -> Path:
    """Call `write(tmp_path)` and rename the result onto `path` only if it succeeded."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        # mkstemp makes the file private (0600); give it the mode an ordinary write would.
        os.chmod(tmp, 0o666 & ~_current_umask())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target


def check_writable_dir(directory: str | os.PathLike[str]) -> None:
    """Create `directory` if needed and write a probe file in it, so that a long job whose
    result goes there fails before it starts (ValueError saying why), not at its end."""
    target = Path(directory)
    try:
        target.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-check.", dir=target)
    except OSError as exc:
        raise ValueError(f"cannot write to {target}: {exc.strerror or exc}") from exc
    os.close(fd)
    os.unlink(probe)


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json_atomic(path: str | os.PathLike[str], obj: Any) -> Path:
    def write(tmp: Path) -> None:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n")

    return atomic_write(path, write)


def save_torch_atomic(path: str | os.PathLike[str], obj: Any) -> Path:
    return atomic_write(path, lambda tmp: torch.save(obj, tmp))
