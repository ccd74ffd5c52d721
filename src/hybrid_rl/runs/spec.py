"""What a launcher needs of a run, whatever kind of run it is (offline, online, ...)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from hybrid_rl.runs.folder import RunFolder


@dataclass(frozen=True)
class RunCost:
    """What a wall-time estimate needs to know of a run besides its budget."""

    phase: str  # how the estimate names this kind of run, e.g. "Phase I"
    algo: str
    step_unit: str  # what a step is, e.g. "updates", "online steps"
    online: bool  # a step is an online step (an env step, an action and an update)
    evaluations: int
    eval_episodes: int
    # (dataset, source) pairs the run loads itself; () when another run has loaded them.
    datasets: tuple[tuple[str, str], ...] = ()
    # Runs it executes in one process (a seed group's seeds); its budget counts the steps of
    # all of them, `evaluations` those of each.
    runs: int = 1
    # Updates done before the first step (fitting fresh critic members on the offline data).
    warmup_updates: int = 0


class RunSpec(Protocol):
    """One run of a grid: its name, folder and budget, what must finish before it starts,
    and how to execute it. Launchers (the local pool, a cluster) and the wall-time estimate
    use only this."""

    @property
    def run_name(self) -> str: ...

    @property
    def folders(self) -> tuple[RunFolder, ...]:
        """The run folders it writes: one, or several for runs sharing a process."""
        ...

    @property
    def budget(self) -> int:
        """Steps the run takes (what its progress counts)."""
        ...

    @property
    def prerequisite(self) -> RunFolder | None:
        """The folder of a run that must be finished before this one starts, if any."""
        ...

    @property
    def cost(self) -> RunCost: ...

    @property
    def device(self) -> str:
        """The torch device the run asks for ("cpu", "cuda", "cuda:N", "auto"): a cluster
        launcher reserves a GPU for a run on "cuda"."""
        ...

    def identity_conflict(self) -> str | None:
        """Why the folder holds a different run (other settings), or None."""
        ...

    def execute(self, progress: bool) -> dict[str, Any]:
        """Run (or resume, or skip if finished); returns the metrics."""
        ...
