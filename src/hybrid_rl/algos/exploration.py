"""Phase II exploration by action selection: UCB over the critic members (SUNRISE, Lee et al.
2021; ENOTO, Zhao et al. 2023, explores the same way).

`--exploration ucb:K` samples K actions from the policy at the current state and executes the
one with the highest mean over members of Q + λ·std over members of Q (std as
`EnsembleQNetwork.disagreement`: Bessel-corrected). No bonus is added to the reward then:
optimism acts on what is collected, not on what is learned from it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from hybrid_rl.algos.agent import OnlineAgent
from hybrid_rl.algos.bonus import schedule_factor

EXPLORATION_FORMS = "reward_bonus | ucb:K"


def parse_exploration(text: str) -> int | None:
    """`reward_bonus` -> None; `ucb:K` -> K (an integer ≥ 2). ValueError otherwise."""
    if text == "reward_bonus":
        return None
    kind, _, value = text.partition(":")
    if kind == "ucb" and value.isdigit() and int(value) >= 2:
        return int(value)
    raise ValueError(
        f"unknown exploration {text!r}; choose {EXPLORATION_FORMS} (K ≥ 2 sampled actions)"
    )


@dataclass(frozen=True)
class UCBExploration:
    """K sampled actions, λ (decayed linearly over `decay_steps` online steps if set)."""

    samples: int
    coeff: float
    decay_steps: int | None = None

    def coeff_at(self, step: int) -> float:
        return self.coeff * schedule_factor(self.decay_steps, step)


def ucb_scores(q: Tensor, coeff: float) -> Tensor:
    """mean over members + coeff · std over members of Q values [N, K]: [K]."""
    return q.mean(0) + coeff * q.std(dim=0, correction=1)


@torch.no_grad()
def ucb_action(agent: OnlineAgent, obs: Tensor, samples: int, coeff: float) -> Tensor:
    """The action [1, act_dim] among `samples` draws of the stochastic policy at the raw
    observation `obs` [1, obs_dim] with the highest `ucb_scores`."""
    states = obs.expand(samples, -1)
    candidates = agent.act(states, deterministic=False)  # [K, act_dim]
    q = agent.critic(agent.normalizer(states), candidates)  # [N, K]
    best = int(ucb_scores(q, coeff).argmax())
    return candidates[best : best + 1]
