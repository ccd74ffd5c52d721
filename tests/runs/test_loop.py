"""The loop skeleton with a hand-made task: cadence, sparse metrics, divergence, resume."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest
import torch
from torch import Tensor

from hybrid_rl.runs.folder import RunFolder
from hybrid_rl.runs.loop import Cadence, LoopTask, default_log_every, finished_metrics, run_loop
from hybrid_rl.runs.metrics import MetricsLog


class CountingTask(LoopTask):
    """Loss = a random draw per step; an 'actor' metric every third step; NaN at `nan_at`."""

    def __init__(self, nan_at: int | None = None) -> None:
        self.total, self.evaluated, self.checkpoints = 0.0, [], []
        self.nan_at = nan_at

    def step(self, step: int) -> Mapping[str, Tensor]:
        value = float(torch.rand(()))
        self.total += value
        metrics = {"critic_loss": torch.tensor(value)}
        if step % 3 == 2:
            metrics["actor_loss"] = torch.tensor(float(step))
        if step == self.nan_at:
            metrics["critic_loss"] = torch.tensor(float("nan"))
        return metrics

    def evaluate(self, step: int, log: MetricsLog) -> None:
        self.evaluated.append(step)
        log.log_eval(step, np.array([self.total]), np.array([float(step)]))

    def state_dict(self, final: bool) -> dict[str, Any]:
        return {"total": self.total}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.total = state["total"]

    def after_checkpoint(self, step: int) -> None:
        self.checkpoints.append(step)


def run(folder: RunFolder, task: CountingTask, cadence: Cadence) -> dict[str, Any]:
    resume = folder.load_checkpoint()
    if (finished := finished_metrics(resume)) is not None:
        return finished
    return run_loop(folder, task, cadence, resume, torch.device("cpu"), 4, progress=False)


def test_cadence_logs_evaluates_and_checkpoints_where_asked(tmp_path):
    task = CountingTask()
    cadence = Cadence(12, log_every=3, eval_every=6, checkpoint_every=12)
    metrics = run(RunFolder(tmp_path / "run"), task, cadence)
    assert metrics["status"] == "completed"
    assert metrics["train"]["steps"] == [3, 6, 9, 12]
    assert metrics["train"]["actor_loss"] == [2.0, 5.0, 8.0, 11.0]  # one per interval
    assert task.evaluated == [0, 6, 12] and task.checkpoints == [12]
    assert metrics["summary"]["final_normalized_return"] == 12.0


def test_a_resumed_run_ends_where_an_uninterrupted_one_does(tmp_path):
    cadence = Cadence(12, log_every=3, eval_every=6)
    torch.manual_seed(0)
    whole = run(RunFolder(tmp_path / "whole"), CountingTask(), cadence)

    torch.manual_seed(0)
    half = RunFolder(tmp_path / "half")
    run_loop(half, CountingTask(), Cadence(6, 3, 6), None, torch.device("cpu"), 4, False)
    # Continue the same folder to 12 steps, as a resumed run does after an interruption.
    state = half.load_checkpoint()
    state["metrics"]["status"] = "running"
    half.save_checkpoint(state)
    resumed = run(half, CountingTask(), cadence)
    assert resumed["train"] == whole["train"]
    assert resumed["eval"] == whole["eval"]


def test_a_non_finite_metric_ends_the_run_as_diverged_with_a_checkpoint(tmp_path):
    folder = RunFolder(tmp_path / "run")
    metrics = run(folder, CountingTask(nan_at=4), Cadence(12, log_every=3, eval_every=6))
    assert metrics["status"] == "diverged"
    assert metrics["summary"]["diverged_at_step"] == 6
    assert metrics["summary"]["non_finite_metrics"] == ["critic_loss", "critic_loss_rolling_var"]
    assert folder.load_checkpoint()["step"] == 6
    assert folder.read_metrics()["summary"] == metrics["summary"]  # NaN != NaN in the rest


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"total_steps": 10, "log_every": 3, "eval_every": 6}, "multiple of log_every"),
        ({"total_steps": 12, "log_every": 3, "eval_every": 4}, "eval_every .4. must be"),
        ({"total_steps": 0, "log_every": 1, "eval_every": 1}, "total_steps must be positive"),
    ],
)
def test_inconsistent_cadences_are_refused(settings, message):
    with pytest.raises(ValueError, match=message):
        Cadence(**settings)


class StageWatchingTask(CountingTask):
    """Records what metrics.json says the run is doing at its first evaluation and step."""

    def __init__(self, folder: RunFolder) -> None:
        super().__init__()
        self.folder, self.seen = folder, []

    def _read_stage(self) -> None:
        metrics = self.folder.read_metrics()
        self.seen.append(None if metrics is None else metrics.get("stage"))

    def evaluate(self, step: int, log: MetricsLog) -> None:
        if step == 0:
            self._read_stage()
        super().evaluate(step, log)

    def step(self, step: int) -> Mapping[str, Tensor]:
        if step == 0:
            self._read_stage()
        return super().step(step)

    def first_steps_stage(self) -> str:
        return "compiling the update"


def test_a_run_says_what_it_does_until_its_first_log_and_then_stops_saying_it(tmp_path):
    # A grid's bar reads metrics.json from another process: the stage must be on disk.
    folder = RunFolder(tmp_path / "run")
    task = StageWatchingTask(folder)
    metrics = run(folder, task, Cadence(6, log_every=3, eval_every=6))
    assert task.seen == ["first evaluation", "compiling the update"]
    assert "stage" not in metrics and "stage" not in folder.read_metrics()


@pytest.mark.parametrize(
    ("eval_every", "log_every"),
    [(5_000, 1_000), (2_500, 500), (1_000, 1_000), (300, 300), (1_001, 1)],
)
def test_the_default_log_every_divides_eval_every_and_logs_at_least_every_1000_steps(
    eval_every, log_every
):
    assert default_log_every(eval_every) == log_every
    Cadence(10 * eval_every, default_log_every(eval_every), eval_every)  # accepted
