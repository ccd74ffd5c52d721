"""The loop every run shares: resume, progress bar, interval logging, divergence, evaluation
and checkpoint cadence. What a run does in one step, how it evaluates and what its checkpoint
holds is its `LoopTask`; offline training, online fine-tuning and behaviour-policy training
each write only that.

Checkpoints are flat dicts: the task's state (e.g. "agent", "sampler") next to the loop's
"rng", "metrics", "loss_window" and "step".
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from tqdm import tqdm

from hybrid_rl.runs.folder import RunFolder
from hybrid_rl.runs.metrics import IntervalMeans, LossWindow, MetricsLog, host_values
from hybrid_rl.seeding import restore_rng_state, rng_state

# The per-step loss behind the rolling variance: the critic's, or the actor's for agents
# without a critic (BC).
LOSS_KEYS = ("critic_loss", "actor_loss")


@dataclass(frozen=True)
class Cadence:
    """When a run logs, evaluates and checkpoints, in steps."""

    total_steps: int
    log_every: int
    eval_every: int
    checkpoint_every: int | None = None  # None: at every evaluation
    evaluate_at_start: bool = True

    def __post_init__(self) -> None:
        for name in ("total_steps", "log_every", "eval_every"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.checkpoint_every is not None and self.checkpoint_every <= 0:
            raise ValueError(f"checkpoint_every must be positive, got {self.checkpoint_every}")
        if self.total_steps % self.log_every:
            raise ValueError(
                f"the step budget ({self.total_steps}) must be a multiple of log_every "
                f"({self.log_every}), so that the last step is logged"
            )
        if self.eval_every % self.log_every:
            raise ValueError(
                f"eval_every ({self.eval_every}) must be a multiple of log_every "
                f"({self.log_every}), so that evaluations fall on logged steps"
            )

    def checkpoints_at(self, step: int) -> bool:
        every = self.checkpoint_every or self.eval_every
        return step % every == 0 or step == self.total_steps

    def evaluates_at(self, step: int) -> bool:
        return step % self.eval_every == 0 or step == self.total_steps


class LoopTask:
    """What differs between loops. `step` is required; every other hook may stay as is."""

    def step(self, step: int) -> Mapping[str, Tensor]:
        """Do step `step` (0-based); the metrics it produced (any subset, as tensors)."""
        raise NotImplementedError

    def evaluate(self, step: int, log: MetricsLog) -> None:
        """Evaluate after `step` steps and record it in `log`."""

    def interval_values(
        self, step: int, values: dict[str, float | None]
    ) -> dict[str, float | None]:
        """The values logged for the interval ending at `step`; may add or derive some."""
        return values

    def state_dict(self, final: bool) -> dict[str, Any]:
        """What the checkpoint holds of this task; `final` when no resume will follow."""
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore from a checkpoint (the whole flat dict)."""

    def begin(self, start: int, log: MetricsLog) -> None:
        """Called once before the first step, `start` being the step resumed from (or 0) and
        `log` the run's log from then on (a task may keep sections of its own in it)."""

    def after_checkpoint(self, step: int) -> None:
        """Called after every checkpoint."""

    def summary(self, log: MetricsLog) -> dict[str, Any]:
        """Extra entries of the summary of a completed run."""
        return {}

    def close(self) -> None:
        """Release environments and other resources."""


def finished_metrics(resume: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The metrics of a checkpoint whose run has ended (nothing left to do), else None."""
    if resume is not None and resume["metrics"]["status"] != "running":
        return dict(resume["metrics"])
    return None


def run_loop(
    folder: RunFolder,
    task: LoopTask,
    cadence: Cadence,
    resume: Mapping[str, Any] | None,
    device: torch.device,
    loss_variance_window: int,
    progress: bool = True,
) -> dict[str, Any]:
    """Run `task` from step 0, or from the checkpoint `resume`, to `cadence.total_steps`.

    Each log interval costs one host sync: the means of the metrics produced in it and the
    rolling variance of the last `loss_variance_window` per-step losses. A non-finite value
    ends the run as "diverged" (recorded, not raised). Returns the metrics written to
    metrics.json.
    """
    log = MetricsLog()
    loss_window = LossWindow(loss_variance_window, device)
    start = 0
    if resume is not None:
        task.load_state_dict(resume)
        restore_rng_state(resume["rng"])
        log, start = MetricsLog(resume["metrics"]), int(resume["step"])
        loss_window.load_state_dict(resume["loss_window"])
        print(f"resuming {folder.name} from step {start}", file=sys.stderr)

    def checkpoint(step: int, final: bool) -> None:
        folder.save_checkpoint(
            {
                **task.state_dict(final),
                "rng": rng_state(),
                "metrics": log.data,
                "loss_window": loss_window.state_dict(),
                "step": step,
            }
        )
        folder.write_metrics(log.data)

    if start == 0 and cadence.evaluate_at_start:
        task.evaluate(0, log)
    task.begin(start, log)
    interval = IntervalMeans()
    bar = tqdm(
        range(start, cadence.total_steps),
        initial=start,
        total=cadence.total_steps,
        desc=folder.name,
        disable=not progress,
        mininterval=2,
        leave=False,
    )
    done = start
    try:
        for step in bar:
            metrics = task.step(step)
            interval.add(metrics)
            loss = next((metrics[k] for k in LOSS_KEYS if k in metrics), None)
            if loss is not None:
                loss_window.push(loss)
            done = step + 1
            if done % cadence.log_every:
                continue
            means = interval.means()
            if loss_window.count:
                means["critic_loss_rolling_var"] = loss_window.variance()
            interval.clear()
            values = task.interval_values(done, dict(host_values(means)))
            log.log_train(done, values)
            bad = log.non_finite(values)
            if bad:
                log.finish("diverged", diverged_at_step=done, non_finite_metrics=bad)
                print(
                    f"{folder.name}: diverged before step {done} ({', '.join(bad)} not "
                    "finite); recorded, moving on",
                    file=sys.stderr,
                )
                break
            if cadence.evaluates_at(done):
                task.evaluate(done, log)
                score = log.latest_score()
                if score is not None:
                    bar.set_postfix(score=f"{score:.1f}")
            if done == cadence.total_steps:
                log.finish("completed", **task.summary(log))
            if cadence.checkpoints_at(done):
                checkpoint(done, final=done == cadence.total_steps)
                task.after_checkpoint(done)
            elif cadence.evaluates_at(done):
                folder.write_metrics(log.data)
    finally:
        bar.close()
        task.close()
    if log.status == "diverged":
        checkpoint(done, final=True)
    return log.data
