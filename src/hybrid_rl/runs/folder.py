"""A run's folder: where its three files live, how they are written (atomically) and read.

    <results_dir>/<run name>/config.json    the full config, provenance, corruption stats
                             metrics.json   status, training metrics, evaluations, summary
                             checkpoint.pt  everything needed to resume

Reading a damaged file (truncated by a full disk, say) raises `DamagedRunFile`, which names
the file and says how to start that one run over (`RunFolder.reset`, or
`hybrid-rl runs reset <folder>`).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from hybrid_rl.atomic_io import atomic_write, save_torch_atomic, write_json_atomic

FINISHED_STATUSES = ("completed", "diverged")
RUN_FILES = ("config.json", "metrics.json", "checkpoint.pt")


class DamagedRunFile(RuntimeError):
    """A run file exists but cannot be read."""

    def __init__(self, path: Path, reason: str) -> None:
        self.path = path
        super().__init__(
            f"{path} is damaged ({reason}); the run in {path.parent} cannot go on from it. "
            f"Start that run over with `hybrid-rl runs reset {path.parent}` (or delete the "
            "folder), then run the same command again"
        )


@dataclass(frozen=True)
class RunFolder:
    """The folder of one run; nothing is created until something is written."""

    path: Path

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def key(self) -> str:
        """One string per run folder, however its path was written (relative, with "..")."""
        return str(self.path.resolve())

    @property
    def config_path(self) -> Path:
        return self.path / "config.json"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.json"

    @property
    def checkpoint_path(self) -> Path:
        return self.path / "checkpoint.pt"

    def write_config(self, record: dict[str, Any]) -> None:
        write_json_atomic(self.config_path, record)

    def write_metrics(self, metrics: dict[str, Any]) -> None:
        write_json_atomic(self.metrics_path, metrics)

    def save_checkpoint(self, state: dict[str, Any]) -> None:
        save_torch_atomic(self.checkpoint_path, state)

    def read_config(self) -> dict[str, Any] | None:
        """config.json, or None when the run has not written one."""
        return _read_json(self.config_path)

    def read_metrics(self) -> dict[str, Any] | None:
        """metrics.json, or None when the run has not written one."""
        return _read_json(self.metrics_path)

    def load_checkpoint(self, device: torch.device | str = "cpu") -> dict[str, Any] | None:
        """checkpoint.pt, or None when the run has none."""
        if not self.checkpoint_path.exists():
            return None
        try:
            state = torch.load(self.checkpoint_path, map_location=device, weights_only=False)
        except (RuntimeError, EOFError, OSError, ValueError) as err:
            raise DamagedRunFile(self.checkpoint_path, f"{type(err).__name__}: {err}") from err
        if not isinstance(state, dict) or "step" not in state or "metrics" not in state:
            raise DamagedRunFile(self.checkpoint_path, "not a checkpoint of this project")
        return state

    def status(self) -> str | None:
        """The status in metrics.json (running, completed, diverged, failed), None without
        one, "damaged" when it cannot be read."""
        try:
            metrics = self.read_metrics()
        except DamagedRunFile:
            return "damaged"
        return None if metrics is None else str(metrics.get("status"))

    def is_finished(self) -> bool:
        return self.status() in FINISHED_STATUSES

    def archive_to(self, destination: Path, checkpoint: bool) -> list[Path]:
        """Copy a finished run's config.json, metrics.json and (with `checkpoint`) its final
        checkpoint.pt into the folder `destination` (e.g. one that is committed, so a later
        phase can start from it on another machine); returns the files written. Each file is
        copied atomically, the checkpoint first and metrics.json last, so an interrupted copy
        never looks like a finished run."""
        if not self.is_finished():
            raise ValueError(f"{self.path} is not a finished run (status {self.status()!r})")
        names = (["checkpoint.pt"] if checkpoint else []) + ["config.json", "metrics.json"]
        return [atomic_write(destination / name, _copy_from(self.path / name)) for name in names]

    def reset(self) -> list[Path]:
        """Remove the run's files (and its TensorBoard log) so it starts over; returns them."""
        removed = [self.path / name for name in RUN_FILES if (self.path / name).exists()]
        for path in removed:
            path.unlink()
        tensorboard = self.path / "tensorboard"
        if tensorboard.is_dir():
            shutil.rmtree(tensorboard)
            removed.append(tensorboard)
        return removed


def _copy_from(source: Path) -> Callable[[Path], None]:
    def copy(target: Path) -> None:
        shutil.copyfile(source, target)

    return copy


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    try:
        value = json.loads(text)
    except ValueError as err:
        raise DamagedRunFile(path, f"not valid JSON: {err}") from err
    if not isinstance(value, dict):
        raise DamagedRunFile(path, f"expected a JSON object, found {type(value).__name__}")
    return value
