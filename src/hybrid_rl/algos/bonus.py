"""The Phase II disagreement bonus: from the critic members' std of Q to a reward term.

The spec (DESIGN.md §6) adds λ·d to an online transition's reward once, at collection, where
d = `EnsembleQNetwork.disagreement` (std over members of Q, return units). The settings here
change what is added and when (`BonusSettings`, all defaults = the spec):

- units: `q` adds d as is; `per_step` multiplies it by 1 − γ. Q sums ≈ 1/(1 − γ) per-step
  rewards, so a per-step bonus of (1 − γ)·λ·d raises Q by about λ·d: "λ critic stds" of
  optimism, the UCB reading, instead of a reward 1/(1 − γ) times larger.
- norm: `running` divides d by the running population std (divisor n, not n − 1) of the
  disagreement of every transition collected so far (RND, Burda et al. 2018, divides its
  intrinsic reward by a running std the same way), so λ is in units of "typical
  disagreements" on every dataset and ensemble size. While fewer than two transitions have
  been seen the std is 0 and the bonus is 0.
- schedule: `const` keeps λ; `linear:T` decays it as λ·max(0, 1 − t/T) over online step t.
- time (used by the loop): `collect` stores the bonus in the buffer; `update` recomputes it
  on the online rows of every batch with the critic of that update, so it is never stale.
- shuffled (a control): the same bonus values, permuted across online transitions, so they
  keep their magnitude but lose their information about (s, a).

The bonus is λ_t · u · d / σ̂: `BonusScale` holds u, the schedule and σ̂.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal, get_args

import torch
from torch import Tensor

BonusTime = Literal["collect", "update"]
BonusUnits = Literal["q", "per_step"]
BonusNorm = Literal["none", "running"]
BONUS_TIMES: tuple[BonusTime, ...] = get_args(BonusTime)
BONUS_UNITS: tuple[BonusUnits, ...] = get_args(BonusUnits)
BONUS_NORMS: tuple[BonusNorm, ...] = get_args(BonusNorm)


def parse_schedule(text: str) -> int | None:
    """`const` -> None; `linear:T` -> T (an integer ≥ 1). ValueError otherwise."""
    if text == "const":
        return None
    kind, _, value = text.partition(":")
    if kind == "linear" and value.isdigit() and int(value) >= 1:
        return int(value)
    raise ValueError(f"unknown bonus schedule {text!r}; choose const or linear:T (T ≥ 1 steps)")


def schedule_factor(decay_steps: int | None, step: int) -> float:
    """λ's factor at online step `step`: 1 (const) or max(0, 1 − step/T) (linear:T)."""
    if decay_steps is None:
        return 1.0
    return max(0.0, 1.0 - step / decay_steps)


class RunningStd:
    """Running population std (divisor n) of the values seen, by Chan et al.'s parallel update
    (exact in float64 whatever the order of the batches)."""

    def __init__(self) -> None:
        self.count, self.mean, self.m2 = 0, 0.0, 0.0

    def update(self, values: Tensor) -> None:
        batch = values.detach().double().flatten().cpu()
        n = int(batch.numel())
        if n == 0:
            return
        mean = float(batch.mean())
        m2 = float(((batch - mean) ** 2).sum())
        total = self.count + n
        delta = mean - self.mean
        self.mean += delta * n / total
        self.m2 += m2 + delta**2 * self.count * n / total
        self.count = total

    @property
    def std(self) -> float:
        return math.sqrt(self.m2 / self.count) if self.count >= 2 else 0.0

    def state_dict(self) -> dict[str, Any]:
        return {"count": self.count, "mean": self.mean, "m2": self.m2}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.count, self.mean, self.m2 = int(state["count"]), state["mean"], state["m2"]


@dataclass(frozen=True)
class BonusSettings:
    """What the bonus is; every default is the spec."""

    coeff: float = 1.0  # λ
    time: BonusTime = "collect"
    units: BonusUnits = "q"
    norm: BonusNorm = "none"
    schedule: str = "const"
    shuffled: bool = False

    def __post_init__(self) -> None:
        parse_schedule(self.schedule)


class BonusScale:
    """The factor λ_t · u / σ̂ turning disagreements into bonuses (see the module doc)."""

    def __init__(self, settings: BonusSettings, gamma: float) -> None:
        self.settings = settings
        self.units = 1.0 - gamma if settings.units == "per_step" else 1.0
        self.decay_steps = parse_schedule(settings.schedule)
        self.running = RunningStd()

    def observe(self, disagreement: Tensor) -> None:
        """Count collected disagreements in the running std (a no-op without `running`)."""
        if self.settings.norm == "running":
            self.running.update(disagreement)

    def factor(self, step: int) -> float:
        coeff = self.settings.coeff * schedule_factor(self.decay_steps, step) * self.units
        if self.settings.norm == "none":
            return coeff
        std = self.running.std
        return coeff / std if std > 0 else 0.0

    def __call__(self, disagreement: Tensor, step: int) -> Tensor:
        """Bonus values for disagreements [n] at online step `step`: [n]."""
        return self.factor(step) * disagreement

    def state_dict(self) -> dict[str, Any]:
        return {"running": self.running.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.running.load_state_dict(state["running"])


def permute_rows(values: Tensor, generator: torch.Generator) -> Tensor:
    """`values` [n] in a uniformly random order (same multiset)."""
    order = torch.randperm(values.shape[0], generator=generator, device=generator.device)
    return values[order.to(values.device)]


class ShuffledBonuses:
    """Bonuses computed at collection, each served to a random other transition.

    Row i of the online buffer gets `values[permutation[i]]`. The permutation of the n rows
    stored so far is kept uniformly random as rows arrive (the "inside-out" Fisher–Yates
    shuffle: row n swaps places with a random row j ≤ n), so at every step the rewards carry
    exactly the multiset of bonuses collected, in an order unrelated to their (s, a).
    """

    def __init__(self, capacity: int, seed: int, device: torch.device) -> None:
        self.values = torch.zeros(capacity, device=device)
        self.permutation = torch.zeros(capacity, dtype=torch.int64, device=device)
        self.size = 0
        self._generator = torch.Generator()  # on the CPU: one draw per collected transition
        self._generator.manual_seed(seed)

    def add(self, bonus: Tensor) -> None:
        """Append one collected bonus (a [1] or scalar tensor)."""
        n = self.size
        self.values[n] = bonus.reshape(())
        j = int(torch.randint(n + 1, (), generator=self._generator))
        self.permutation[n] = self.permutation[j].clone()
        self.permutation[j] = n
        self.size = n + 1

    def for_rows(self, rows: Tensor) -> Tensor:
        """The bonuses served to buffer rows [b]: [b]."""
        return self.values[self.permutation[rows]]

    def state_dict(self) -> dict[str, Any]:
        n = self.size
        return {
            "values": self.values[:n].cpu(),
            "permutation": self.permutation[:n].cpu(),
            "generator": self._generator.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        n = len(state["permutation"])
        self.values[:n] = state["values"].to(self.values.device)
        self.permutation[:n] = state["permutation"].to(self.permutation.device)
        self.size = n
        self._generator.set_state(state["generator"].cpu())
