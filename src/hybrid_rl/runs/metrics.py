"""A run's metrics as they are logged: training metrics per log interval, evaluations, status.

metrics.json holds `status` (running | completed | diverged | failed), `train` (a `steps`
list and one list per metric, aligned with it: a metric that was not produced in an
interval, e.g. an actor loss updated every other step or an online update that has not
started, holds null there), `eval` (steps and normalized/raw return mean and std) and a
`summary` written when the run ends.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

RUN_STATUSES = ("running", "completed", "diverged", "failed")


class MetricsLog:
    """The contents of metrics.json, kept as plain lists."""

    def __init__(self, state: dict[str, Any] | None = None) -> None:
        self.data: dict[str, Any] = state or {
            "status": "running",
            "train": {"steps": []},
            "eval": {
                "steps": [],
                "normalized_return_mean": [],
                "normalized_return_std": [],
                "return_mean": [],
                "return_std": [],
            },
            "summary": {},
        }

    @property
    def status(self) -> str:
        return str(self.data["status"])

    def set_stage(self, stage: str | None) -> None:
        """What the run is doing before its first logged step (e.g. "first evaluation"), for
        progress lines that read metrics.json; None once steps are logged."""
        if stage is None:
            self.data.pop("stage", None)
        else:
            self.data["stage"] = stage

    @property
    def stage(self) -> str | None:
        return self.data.get("stage")

    def log_train(self, step: int, values: Mapping[str, float | None]) -> None:
        """Metrics of the interval ending at `step`; every metric list stays aligned with
        `steps` (null where a metric was not produced)."""
        self.set_stage(None)
        train = self.data["train"]
        earlier = len(train["steps"])
        train["steps"].append(step)
        for key, value in values.items():
            train.setdefault(key, [None] * earlier).append(value)
        for column in train.values():
            if len(column) == earlier:
                column.append(None)

    def log_eval(self, step: int, returns: Any, normalized: Any) -> None:
        ev = self.data["eval"]
        ev["steps"].append(step)
        ev["normalized_return_mean"].append(float(normalized.mean()))
        ev["normalized_return_std"].append(float(normalized.std()))
        ev["return_mean"].append(float(returns.mean()))
        ev["return_std"].append(float(returns.std()))

    def latest_score(self) -> float | None:
        scores = self.data["eval"]["normalized_return_mean"]
        return scores[-1] if scores else None

    def non_finite(self, values: Mapping[str, float | None]) -> list[str]:
        """The metrics among `values` that are NaN or infinite."""
        return sorted(k for k, v in values.items() if v is not None and not math.isfinite(v))

    def finish(self, status: str, **extra: Any) -> None:
        scores = self.data["eval"]["normalized_return_mean"]
        self.data["status"] = status
        self.data["summary"] = {
            "final_normalized_return": scores[-1] if scores else None,
            "best_normalized_return": max(scores) if scores else None,
            "evaluations": len(scores),
            **extra,
        }


class IntervalMeans:
    """Per-metric sums and counts over a log interval, on the device (no host sync per step).

    A metric's mean divides by the number of steps that produced it, so a metric produced on
    some steps only (an actor updated every other step) is not diluted.
    """

    def __init__(self) -> None:
        self.sums: dict[str, Tensor] = {}
        self.counts: dict[str, int] = {}

    def add(self, values: Mapping[str, Tensor]) -> None:
        for key, value in values.items():
            value = value.detach()
            self.sums[key] = self.sums[key] + value if key in self.sums else value.clone()
            self.counts[key] = self.counts.get(key, 0) + 1

    def means(self) -> dict[str, Tensor]:
        return {key: total / self.counts[key] for key, total in self.sums.items()}

    def clear(self) -> None:
        self.sums, self.counts = {}, {}


class LossWindow:
    """The last `size` per-step losses, kept on the device (no host sync per step)."""

    def __init__(self, size: int, device: torch.device) -> None:
        self.values = torch.full((size,), float("nan"), device=device)
        self.count = 0

    def push(self, loss: Tensor) -> None:
        self.values[self.count % self.values.shape[0]] = loss
        self.count += 1

    def variance(self) -> Tensor:
        filled = self.values[: min(self.count, self.values.shape[0])]
        return filled.var() if filled.numel() > 1 else torch.zeros((), device=filled.device)

    def state_dict(self) -> tuple[Tensor, int]:
        return self.values.cpu(), self.count

    def load_state_dict(self, state: tuple[Tensor, int]) -> None:
        self.values.copy_(state[0])
        self.count = state[1]


def host_values(tensors: Mapping[str, Tensor]) -> dict[str, float]:
    """Scalar tensors as floats, in one host sync."""
    if not tensors:
        return {}
    return dict(zip(tensors, torch.stack(list(tensors.values())).tolist(), strict=True))
