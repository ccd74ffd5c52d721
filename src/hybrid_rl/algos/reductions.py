"""How an N-member critic's Q values [N, B] become one Q per row [B], for targets and actors.

The Phase II spec (DESIGN.md §6) takes the min over all members everywhere (`min_all`). A
freshly initialised member outputs ≈ 0 while the loaded ones output Q̄, so under `min_all` the
untrained member *is* the target and the actor's objective; the other reductions exclude or
soften it:

- `min_all`: min over all N members (the spec; twin-Q's clipped double Q for N = 2).
- `min_loaded`: min over the members loaded from the Phase I checkpoint (members 0–1, or all
  N when Phase I trained N critics); the fresh members are trained but never trusted.
- `redq:M`: min over M members drawn at random without replacement at every call (REDQ, Chen
  et al. 2021; RLPD, Ball et al. 2023, uses a random pair of 10; ENOTO, Zhao et al. 2023,
  "RandomMinPair"). Draws use torch's global generator, which checkpoints capture.
- `mean`: mean over members (REDQ's and ENOTO's actor objective).
- `mean_minus_std:β`: mean − β·std over members, a lower confidence bound (std as in
  `EnsembleQNetwork.disagreement`: Bessel-corrected); β = 0 is `mean`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, get_args

import torch
from torch import Tensor

ReductionKind = Literal["min_all", "min_loaded", "redq", "mean", "mean_minus_std"]
REDUCTION_KINDS: tuple[ReductionKind, ...] = get_args(ReductionKind)
REDUCTION_FORMS = "min_all | min_loaded | redq:M | mean | mean_minus_std:β"


@dataclass(frozen=True)
class Reduction:
    """One reduction over critic members; `parse("redq:2")` builds it from its text."""

    kind: ReductionKind = "min_all"
    parameter: float = 0.0  # M of redq (an integer ≥ 2), β of mean_minus_std (≥ 0)

    @classmethod
    def parse(cls, text: str) -> Reduction:
        """A reduction from its text form; ValueError naming the forms otherwise."""
        kind, _, value = text.partition(":")
        if kind not in REDUCTION_KINDS:
            raise ValueError(f"unknown reduction {text!r}; choose {REDUCTION_FORMS}")
        takes_value = kind in ("redq", "mean_minus_std")
        if takes_value != bool(value):
            form = {"redq": "redq:M", "mean_minus_std": "mean_minus_std:β"}.get(kind, kind)
            raise ValueError(f"reduction {text!r} is malformed; write it as {form}")
        if not takes_value:
            return cls(kind)
        try:
            number = float(value)
        except ValueError:
            raise ValueError(f"reduction {text!r}: {value!r} is not a number") from None
        if kind == "redq" and not (number.is_integer() and number >= 2):
            raise ValueError(f"reduction {text!r}: redq needs an integer M ≥ 2 members")
        if kind == "mean_minus_std" and not (math.isfinite(number) and number >= 0):
            raise ValueError(f"reduction {text!r}: β must be finite and ≥ 0")
        return cls(kind, number)

    @property
    def text(self) -> str:
        if self.kind == "redq":
            return f"redq:{int(self.parameter)}"
        if self.kind == "mean_minus_std":
            return f"mean_minus_std:{self.parameter:g}"
        return self.kind

    def check_members(self, members: int) -> None:
        """ValueError when this reduction cannot apply to `members` members."""
        if self.kind == "redq" and self.parameter > members:
            raise ValueError(
                f"reduction {self.text} draws {int(self.parameter)} members of a "
                f"{members}-member critic; use at most {members}"
            )

    def __call__(self, q: Tensor, loaded_members: int) -> Tensor:
        """Q values [N, B] of all members -> [B]; members 0 .. loaded_members − 1 are the
        ones loaded from Phase I."""
        if self.kind == "min_all":
            return q.min(0).values
        if self.kind == "min_loaded":
            return q[:loaded_members].min(0).values
        if self.kind == "redq":
            chosen = torch.randperm(q.shape[0], device=q.device)[: int(self.parameter)]
            return q[chosen].min(0).values
        if self.kind == "mean":
            return q.mean(0)
        return q.mean(0) - self.parameter * q.std(dim=0, correction=1)


MIN_ALL = Reduction()
