"""How a Phase II agent explores online: one seam, one implementation per strategy.

The collector, the sampler and the online task call an `Explorer` at fixed points (as
d3rlpy's `Explorer` plugs into `fit_online`):
- `act`: the action to execute at a state;
- `at_collection`: what is stored beside the task reward of a collected transition;
- `at_sampling`: what the online rows of a batch carry on top of their stored reward;
- `at_update`: what is added to the online rows' rewards just before an update;
- `state_dict` / `load_state_dict`: its state, one entry of the run's checkpoint.

`Explorer` itself is plain stochastic-policy exploration with no bonus (the spec's `none`
arm). The spec's collect-time bonus, the update-time bonus, the shuffled control and UCB action
selection are the other implementations; `algos.bonus` and `algos.exploration` hold their
arithmetic.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from hybrid_rl.algos.agent import OnlineAgent
from hybrid_rl.algos.bonus import BonusScale, ShuffledBonuses, permute_rows
from hybrid_rl.algos.exploration import UCBExploration, ucb_action


class Explorer:
    """The stochastic policy, no bonus; the base every strategy overrides where it differs."""

    def act(self, agent: OnlineAgent, obs: Tensor, step: int) -> Tensor:
        """The action [1, act_dim] to execute at the raw observation `obs` [1, obs_dim]."""
        return agent.act(obs, deterministic=False)

    def at_collection(self, disagreement: Tensor, step: int) -> tuple[Tensor, Tensor]:
        """(stored, bonus) for a transition whose critic disagreement is `disagreement` [1]:
        what is stored beside the task reward, and the bonus it stands for (logged)."""
        zero = torch.zeros_like(disagreement)
        return zero, zero

    def at_sampling(self, rows: Tensor, rewards: Tensor) -> Tensor:
        """The rewards [b] of the online rows `rows` [b] as the batch carries them."""
        return rewards

    def at_update(self, disagreement: Tensor, step: int) -> Tensor | None:
        """The bonus [b] added to the online rows whose disagreement is `disagreement` [b]
        before the update; None: nothing is added."""
        return None

    def state_dict(self, final: bool) -> dict[str, Any]:
        """Its state; `final`: the run will not resume, so what only resumption needs may go."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict` returned."""


class CollectBonus(Explorer):
    """The spec's bonus: λ·disagreement stored with the transition's reward at collection."""

    def __init__(self, scale: BonusScale) -> None:
        self.scale = scale

    def at_collection(self, disagreement: Tensor, step: int) -> tuple[Tensor, Tensor]:
        self.scale.observe(disagreement)
        bonus = self.scale(disagreement, step)
        return bonus, bonus

    def state_dict(self, final: bool) -> dict[str, Any]:
        return {"scale": self.scale.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "scale" in state:  # absent from checkpoints of runs without a running std
            self.scale.load_state_dict(state["scale"])


class ShuffledCollectBonus(CollectBonus):
    """The shuffled control: the collected bonuses, each served to a random other online row
    at sampling (`ShuffledBonuses`), so they keep their magnitude but not their (s, a)."""

    def __init__(self, scale: BonusScale, shuffled: ShuffledBonuses) -> None:
        super().__init__(scale)
        self.shuffled = shuffled

    def at_collection(self, disagreement: Tensor, step: int) -> tuple[Tensor, Tensor]:
        _, bonus = super().at_collection(disagreement, step)
        self.shuffled.add(bonus)  # served to a random row at sampling, not to this one
        return torch.zeros_like(bonus), bonus

    def at_sampling(self, rows: Tensor, rewards: Tensor) -> Tensor:
        return rewards + self.shuffled.for_rows(rows)

    def state_dict(self, final: bool) -> dict[str, Any]:
        state = super().state_dict(final)
        if not final:  # as large as the buffer, which a final checkpoint drops too
            state["shuffled"] = self.shuffled.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        if "shuffled" in state:
            self.shuffled.load_state_dict(state["shuffled"])


class UpdateBonus(Explorer):
    """The bonus recomputed with the current critic on the online rows of every batch; the
    collected disagreements still feed its running std. With `shuffle` (the control), the
    bonuses are permuted within each batch's online rows."""

    def __init__(self, scale: BonusScale, shuffle: torch.Generator | None = None) -> None:
        self.scale, self.shuffle = scale, shuffle

    def at_collection(self, disagreement: Tensor, step: int) -> tuple[Tensor, Tensor]:
        self.scale.observe(disagreement)
        return super().at_collection(disagreement, step)

    def at_update(self, disagreement: Tensor, step: int) -> Tensor | None:
        bonus = self.scale(disagreement, step)
        return bonus if self.shuffle is None else permute_rows(bonus, self.shuffle)

    def state_dict(self, final: bool) -> dict[str, Any]:
        state: dict[str, Any] = {"scale": self.scale.state_dict()}
        if self.shuffle is not None:
            state["shuffle_rng"] = self.shuffle.get_state()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "scale" in state:
            self.scale.load_state_dict(state["scale"])
        if "shuffle_rng" in state and self.shuffle is not None:
            self.shuffle.set_state(state["shuffle_rng"])


class UCBExplorer(Explorer):
    """UCB action selection (`algos.exploration`): optimism acts on what is collected; no
    bonus is added to any reward."""

    def __init__(self, ucb: UCBExploration) -> None:
        self.ucb = ucb

    def act(self, agent: OnlineAgent, obs: Tensor, step: int) -> Tensor:
        return ucb_action(agent, obs, self.ucb.samples, self.ucb.coeff_at(step))
