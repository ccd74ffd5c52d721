"""The loop every run shares: resume, progress bar, interval logging, divergence, evaluation
and checkpoint cadence. What a run does in one step, how it evaluates and what its checkpoint
holds is its `LoopTask`; offline training, online fine-tuning and behaviour-policy training
each write only that.

Checkpoints are flat dicts: the task's state (e.g. "agent", "sampler") next to the loop's
"rng", "metrics", "loss_window" and "step".
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Mapping, Sequence
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
# Log at least this often; with evaluations further apart, log_every's default divides both.
USUAL_LOG_EVERY = 1_000
LOG_EVERY_DEFAULT_TEXT = (
    f"--eval_every when that is at most {USUAL_LOG_EVERY:,}, else the largest divisor of "
    f"{USUAL_LOG_EVERY:,} that divides it"
)


def default_log_every(eval_every: int) -> int:
    """log_every when none is given: every evaluation falls on a logged step for any positive
    eval_every (5,000 -> 1,000; 2,500 -> 500; 300 -> 300), so no eval_every is refused for a
    log_every the user never chose. A non-positive eval_every is returned as is, for the
    check that names it."""
    if eval_every <= USUAL_LOG_EVERY:
        return eval_every
    return math.gcd(eval_every, USUAL_LOG_EVERY)


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

    def first_steps_stage(self) -> str:
        """What the steps before the first log are doing, as a progress line says it (a
        task whose first step compiles its update says so: that takes seconds to minutes)."""
        return "first steps"

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

    def rng_state(self) -> dict[str, Any]:
        """The random state a checkpoint saves: the process's generators."""
        return rng_state()

    def restore_rng_state(self, state: dict[str, Any]) -> None:
        """Restore what `rng_state` saved."""
        restore_rng_state(state)

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


class _Run:
    """One run's side of the loop: its log, loss window and interval means, evaluation,
    divergence and checkpoints, fed the metrics of each step."""

    def __init__(
        self,
        folder: RunFolder,
        task: LoopTask,
        cadence: Cadence,
        resume: Mapping[str, Any] | None,
        device: torch.device,
        loss_variance_window: int,
    ) -> None:
        self.folder, self.task, self.cadence = folder, task, cadence
        self.log = MetricsLog()
        self.loss_window = LossWindow(loss_variance_window, device)
        self.interval = IntervalMeans()
        self.start = self.done = 0
        if resume is not None:
            task.load_state_dict(resume)
            task.restore_rng_state(resume["rng"])
            self.log, self.start = MetricsLog(resume["metrics"]), int(resume["step"])
            self.done = self.start
            self.loss_window.load_state_dict(resume["loss_window"])
            print(f"resuming {folder.name} from step {self.start}", file=sys.stderr)

    def begin(self, bar: tqdm) -> None:
        if self.start == 0 and self.cadence.evaluate_at_start:
            self.announce("first evaluation", bar)
            self.task.evaluate(0, self.log)
        self.task.begin(self.start, self.log)
        self.announce(self.task.first_steps_stage(), bar)

    def announce(self, stage: str, bar: tqdm) -> None:
        """Say what the run is doing until its first log: on its own bar, and in
        metrics.json, where a grid's bar (in another process) reads it."""
        self.log.set_stage(stage)
        self.folder.write_metrics(self.log.data)
        bar.set_postfix_str(stage, refresh=True)

    def checkpoint(self, step: int, final: bool) -> None:
        self.folder.save_checkpoint(
            {
                **self.task.state_dict(final),
                "rng": self.task.rng_state(),
                "metrics": self.log.data,
                "loss_window": self.loss_window.state_dict(),
                "step": step,
            }
        )
        self.folder.write_metrics(self.log.data)

    def record(self, metrics: Mapping[str, Tensor]) -> bool:
        """Account for the step just done, which produced `metrics`; False once the run has
        ended (completed, or diverged: recorded, checkpointed, not raised)."""
        cadence, log = self.cadence, self.log
        self.interval.add(metrics)
        loss = next((metrics[k] for k in LOSS_KEYS if k in metrics), None)
        if loss is not None:
            self.loss_window.push(loss)
        self.done = done = self.done + 1
        if done % cadence.log_every:
            return True
        means = self.interval.means()
        if self.loss_window.count:
            means["critic_loss_rolling_var"] = self.loss_window.variance()
        self.interval.clear()
        values = self.task.interval_values(done, dict(host_values(means)))
        log.log_train(done, values)
        bad = log.non_finite(values)
        if bad:
            log.finish("diverged", diverged_at_step=done, non_finite_metrics=bad)
            print(
                f"{self.folder.name}: diverged before step {done} ({', '.join(bad)} not "
                "finite); recorded, moving on",
                file=sys.stderr,
            )
            self.checkpoint(done, final=True)
            return False
        if cadence.evaluates_at(done):
            self.task.evaluate(done, log)
        if done == cadence.total_steps:
            log.finish("completed", **self.task.summary(log))
        if cadence.checkpoints_at(done):
            self.checkpoint(done, final=done == cadence.total_steps)
            self.task.after_checkpoint(done)
        elif cadence.evaluates_at(done):
            self.folder.write_metrics(log.data)
        return done < cadence.total_steps


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
    run = _Run(folder, task, cadence, resume, device, loss_variance_window)
    bar = _bar(folder.name, run.start, cadence.total_steps, progress)
    try:
        run.begin(bar)
        for step in bar:
            if not run.record(task.step(step)):
                break
            if step == run.start:  # the first step, which may have compiled, is done
                bar.set_postfix_str("")
            score = run.log.latest_score()
            if cadence.evaluates_at(run.done) and score is not None:
                bar.set_postfix(score=f"{score:.1f}")
    finally:
        bar.close()
        task.close()
    return run.log.data


def run_lockstep(
    runs: Sequence[tuple[RunFolder, LoopTask, Mapping[str, Any] | None]],
    step: Callable[[int], Sequence[Mapping[str, Tensor]]],
    cadence: Cadence,
    device: torch.device,
    loss_variance_window: int,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Several runs stepped together from the same step: `step(i)` does step i of all of
    them and returns each one's metrics, in the order of `runs` (folder, task, checkpoint to
    resume or None). Each run logs, evaluates, checkpoints and diverges as `run_loop` would
    do it alone; a diverged run is still stepped (its results are no longer read) until all
    have ended. Returns each run's metrics."""
    each = [
        _Run(f, task, cadence, resume, device, loss_variance_window) for f, task, resume in runs
    ]
    starts = {run.start for run in each}
    if len(starts) != 1:
        raise ValueError(f"runs stepped together must resume from one step, got {sorted(starts)}")
    running = [run.done < cadence.total_steps for run in each]
    name = f"{each[0].folder.name} (+{len(each) - 1})"
    bar = _bar(name, each[0].start, cadence.total_steps, progress)
    try:
        for run in each:
            run.begin(bar)
        for i in bar:
            if not any(running):
                break
            metrics = step(i)
            for index, run in enumerate(each):
                if running[index]:
                    running[index] = run.record(metrics[index])
    finally:
        bar.close()
        for run in each:
            run.task.close()
    return [run.log.data for run in each]


def _bar(name: str, start: int, total: int, progress: bool) -> tqdm:
    return tqdm(
        range(start, total),
        initial=start,
        total=total,
        desc=name,
        disable=not progress,
        mininterval=2,
        leave=False,
    )
