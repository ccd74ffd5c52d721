"""The Phase I run a Phase II run starts from: found, checked and described.

Phase II widens a completed Phase I run's critic and trains on the same corrupted data; this
module finds that run's folder, rebuilds its full settings from its config.json, and names
the `run_phase1.py` command that creates or finishes it when it is missing or unfinished.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hybrid_rl.algos.ensemble import PHASE1_MEMBERS
from hybrid_rl.data.hdf5_format import file_sha256
from hybrid_rl.train import TrainConfig


class Phase1RunError(RuntimeError):
    """The Phase I run a Phase II run starts from is missing, unfinished or unusable."""


def phase1_command(config: TrainConfig) -> str:
    """The `run_phase1.py` command that creates the Phase I run `config`."""
    parts = [
        "python run_phase1.py",
        f"--algo {config.algo}",
        f"--env {config.dataset}",
        f"--remove_top_k {config.k_percent:g}",
        f"--seed {config.seed}",
    ]
    if config.removal != "top":
        parts.append(f"--removal {config.removal}")
    if config.reward_noise_std:
        parts.append(f"--reward_noise {config.reward_noise_std:g}")
    if config.n_critics != PHASE1_MEMBERS:
        parts.append(f"--n_critics {config.n_critics}")
    results_dir = Path(config.results_dir)
    # `--quick` runs live in a 'quick' sub-folder; name the budget, not just the folder.
    if results_dir.name == "quick":
        parts.append("--quick")
        results_dir = results_dir.parent
    if results_dir != Path("results"):
        parts.append(f"--results_dir {results_dir}")
    return " ".join(parts)


@dataclass(frozen=True)
class Phase1Run:
    """A completed Phase I run, as a Phase II run needs it."""

    train_config: TrainConfig  # the full settings it was trained with
    checkpoint: Path
    checkpoint_sha256: str
    saved_config: dict[str, Any]  # its config.json
    final_normalized_return: float | None


def find_phase1_run(config: TrainConfig, for_run: str) -> Phase1Run:
    """The completed Phase I run `config` names (its folder; its full settings are read from
    there), which the Phase II run `for_run` starts from; Phase1RunError naming the command
    that creates or finishes it otherwise."""
    folder = config.folder
    run_dir, checkpoint = folder.path, folder.checkpoint_path
    command = phase1_command(config)
    metrics, saved = folder.read_metrics(), folder.read_config()
    if not checkpoint.exists() or metrics is None or saved is None:
        raise Phase1RunError(
            f"Phase II run {for_run} starts from the Phase I checkpoint {checkpoint}, "
            f"which does not exist. Create it with:\n  {command}"
        )
    status = metrics["status"]
    if status == "running":
        raise Phase1RunError(
            f"the Phase I run in {run_dir} is unfinished (status 'running'); finish it first "
            f"(the same command resumes it):\n  {command}"
        )
    if status != "completed":
        raise Phase1RunError(
            f"the Phase I run in {run_dir} ended with status {status!r} "
            f"({metrics.get('summary', {})}); Phase II cannot start from it"
        )
    return Phase1Run(
        train_config=TrainConfig.from_saved(saved["config"]),
        checkpoint=checkpoint,
        checkpoint_sha256=file_sha256(checkpoint),
        saved_config=saved,
        final_normalized_return=metrics["summary"].get("final_normalized_return"),
    )


def check_same_dataset(phase1: Phase1Run, sha256: str, reward_scale: float) -> None:
    """Phase II rebuilds its Phase I run's dataset: it must be the same file and corruption."""
    expected_sha = phase1.saved_config["dataset"]["sha256"]
    if sha256 != expected_sha:
        raise Phase1RunError(
            f"the dataset file now has sha256 {sha256}, but the Phase I run trained on "
            f"{expected_sha}; restore that file (or rerun Phase I) so both phases see the "
            "same data"
        )
    if reward_scale != phase1.saved_config["reward_scale"]:
        raise Phase1RunError(
            f"the rebuilt dataset's reward scale is {reward_scale}, Phase I used "
            f"{phase1.saved_config['reward_scale']}; the corruption is not reproduced"
        )
