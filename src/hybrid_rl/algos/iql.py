"""Implicit Q-Learning (Kostrikov et al. 2021).

V(s) is fitted by expectile regression toward min Q_target(s, a) at dataset actions only, each Q
member (twin Q offline, `critic_members` in Phase II) toward r + γ(1 − d)·V(s'), and the
Gaussian actor by advantage-weighted log-likelihood of the dataset actions. No action outside the
dataset is ever evaluated.

Rewards are used as they arrive: the locomotion reward scale of DESIGN.md (1000 / return range,
`reward_scale`) is this module's hook, applied by the training loop to the dataset once.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from hybrid_rl.algos.agent_state import StatefulPart, load_parts, save_parts
from hybrid_rl.algos.ensemble import EnsembleQNetwork
from hybrid_rl.algos.networks import (
    GaussianActor,
    MaybeCompiled,
    ObservationNormalizer,
    ValueNetwork,
    make_adam,
    soft_update,
)
from hybrid_rl.algos.reductions import Reduction
from hybrid_rl.batch import TransitionBatch
from hybrid_rl.settings import EXECUTION


@dataclass
class IQLConfig:
    critic_lr: float = 3e-4
    value_lr: float = 3e-4
    actor_lr: float = 3e-4
    gamma: float = 0.99
    tau: float = 0.005
    batch_size: int = 256
    expectile: float = 0.7
    temperature: float = 3.0  # β in exp(β·advantage)
    max_weight: float = 100.0  # exp-advantage weights are clipped here
    # The actor lr follows a cosine from actor_lr to 0 over this many updates, then stays at 0:
    # set it to the run's number of gradient steps.
    max_steps: int = 500_000
    # False keeps the actor lr constant (IQL's online fine-tuning does not decay it).
    actor_lr_cosine_decay: bool = True
    critic_members: int = 2  # twin Q offline; the Phase II ensemble size online
    # How members' Q_target values are combined (`algos.reductions`) for V's target and for
    # the actor's advantage; actor None: the advantage uses V's target (the paper's min).
    target_reduce: str = "min_all"
    actor_reduce: str | None = None
    # torch.compile the loss computation (see `MaybeCompiled`); the training loop turns it on
    # for runs long enough to repay the compile time.
    compile: bool = field(default=False, metadata=EXECUTION)


# From this many gradient steps on, the update is compiled by default: the compile costs
# 4-30 s once, compiled updates save about 1 ms each (docs/benchmarks.md).
COMPILE_MIN_STEPS = 50_000
# IQL's locomotion rule: rewards scaled so that the trajectory returns span this range.
RETURN_RANGE_TARGET = 1000.0


def for_budget(config: IQLConfig, total_steps: int) -> IQLConfig:
    """The actor-lr cosine decays over the whole run; long runs compile the update."""
    return dataclasses.replace(
        config, max_steps=total_steps, compile=total_steps >= COMPILE_MIN_STEPS
    )


def reward_scale(trajectory_returns: np.ndarray) -> float:
    """IQL's locomotion reward scale: 1000 / (max trajectory return − min trajectory return).

    Returns are undiscounted, over trajectories split on `terminals | timeouts`. Raises
    ValueError when all returns are equal (including a single trajectory): the range is 0.
    """
    if trajectory_returns.size == 0:
        raise ValueError("cannot compute IQL's reward scale of an empty dataset")
    spread = float(trajectory_returns.max() - trajectory_returns.min())
    if not spread > 0:
        raise ValueError(
            f"IQL's reward scale needs trajectories with different returns, but all "
            f"{trajectory_returns.size} trajectories return {float(trajectory_returns[0])}"
        )
    return RETURN_RANGE_TARGET / spread


def expectile_loss(diff: Tensor, expectile: float) -> Tensor:
    """Mean of w·diff² with w = `expectile` where diff > 0 and 1 − `expectile` where diff < 0.

    With diff = target − prediction and expectile > 0.5, under-estimates cost more, so the
    prediction approaches an upper expectile of the target.
    """
    weight = torch.where(diff > 0, expectile, 1.0 - expectile)
    return (weight * diff.pow(2)).mean()


def cosine_decay(step: int, max_steps: int) -> float:
    """Learning-rate factor 0.5·(1 + cos(π·t/T)) for t ≤ T, and 0 after."""
    progress = min(step, max_steps) / max_steps
    return 0.5 * (1.0 + math.cos(math.pi * progress))


class IQL:
    """IQL agent: `update(batch)` does one value, critic and actor step."""

    # The methods through which `update` reads the networks (see `algos.seed_stack`).
    SEED_STACKED_METHODS: ClassVar[tuple[str, ...]] = ("losses",)

    def __init__(
        self, obs_dim: int, act_dim: int, config: IQLConfig, device: str | torch.device = "cpu"
    ) -> None:
        if config.max_steps <= 0:
            raise ValueError(
                f"IQLConfig.max_steps must be positive (the actor lr decays over it), "
                f"got {config.max_steps}; set it to the run's number of gradient steps"
            )
        self.config = config
        self.device = torch.device(device)
        self.normalizer = ObservationNormalizer(obs_dim).to(self.device)
        self.actor = GaussianActor(obs_dim, act_dim).to(self.device)
        self.critic = EnsembleQNetwork(obs_dim, act_dim, config.critic_members).to(self.device)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.target_reduction = Reduction.parse(config.target_reduce)
        self.actor_reduction = (
            None if config.actor_reduce is None else Reduction.parse(config.actor_reduce)
        )
        for reduction in (self.target_reduction, self.actor_reduction):
            if reduction is not None:
                reduction.check_members(config.critic_members)
        self.value = ValueNetwork(obs_dim).to(self.device)
        self.actor_opt = make_adam(self.actor.parameters(), config.actor_lr)
        self.critic_opt = make_adam(self.critic.parameters(), config.critic_lr)
        self.value_opt = make_adam(self.value.parameters(), config.value_lr)
        # `self.losses` looked up at each call, so that a seed stack's version of it
        # (`algos.seed_stack`) is the one run, and compiled.
        self._losses = MaybeCompiled(lambda batch: self.losses(batch), config.compile)
        self.actor_scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.actor_opt,
            lambda step: (
                cosine_decay(step, config.max_steps) if config.actor_lr_cosine_decay else 1.0
            ),
        )

    def value_loss(self, obs: Tensor, actions: Tensor) -> tuple[Tensor, Tensor]:
        """Expectile loss of V(s) toward min Q_target(s, a) (or the `target_reduce` of the
        members); also the detached advantage [B] the actor is weighted by."""
        with torch.no_grad():
            q = self.critic_target(obs, actions)  # [M, B]
            loaded = self.critic_target.loaded_members
            target_q = self.target_reduction(q, loaded)
        value = self.value(obs)
        advantage = target_q - value
        if self.actor_reduction is None:
            actor_advantage = advantage.detach()
        else:
            actor_advantage = (self.actor_reduction(q, loaded) - value).detach()
        return expectile_loss(advantage, self.config.expectile), actor_advantage

    def critic_loss(
        self, obs: Tensor, next_obs: Tensor, batch: TransitionBatch
    ) -> tuple[Tensor, Tensor]:
        """MSE of each Q member toward r + γ(1 − d)·V(s'), summed over members; also Q [M, B]."""
        with torch.no_grad():
            # Terminals stop bootstrapping; timeouts are not terminal and keep it.
            target = batch.rewards + self.config.gamma * (1.0 - batch.terminals) * self.value(
                next_obs
            )
        q = self.critic(obs, batch.actions)  # [M, B]
        # Sum over members as in the IQL paper's code and d3rlpy (CORL averages instead).
        return (q - target).pow(2).mean(dim=1).sum(), q.detach()

    def actor_loss(self, obs: Tensor, actions: Tensor, advantage: Tensor) -> tuple[Tensor, Tensor]:
        """−mean(w·log π(a|s)) with w = min(exp(β·advantage), max_weight); also w [B]."""
        weight = torch.exp(self.config.temperature * advantage).clamp(max=self.config.max_weight)
        return -(weight * self.actor.log_prob(obs, actions)).mean(), weight

    def losses(self, batch: TransitionBatch) -> tuple[Tensor, Tensor, Tensor, dict[str, Tensor]]:
        """Value, critic and actor losses of one update, all before any step; and metrics.

        The critic's target and the actor's advantage both use V before this update's value
        step (as CORL does), and the value target uses Q_target before its soft update, so
        all three can be formed first.
        """
        obs = self.normalizer(batch.observations)
        next_obs = self.normalizer(batch.next_observations)
        value_loss, advantage = self.value_loss(obs, batch.actions)
        critic_loss, q = self.critic_loss(obs, next_obs, batch)
        actor_loss, weight = self.actor_loss(obs, batch.actions, advantage)
        metrics = {
            "value_loss": value_loss.detach(),
            "critic_loss": critic_loss.detach(),
            "actor_loss": actor_loss.detach(),
            "q_data_mean": q.mean(),
            "q_data_std": q.std(),
            "advantage_mean": advantage.mean(),
            "weight_mean": weight.detach().mean(),
            # Share of rows whose exp-advantage weight is clipped at max_weight, and the
            # actor's (state-independent) log std: the two things AWR moves when advantages
            # go wrong (issue 31).
            "weight_clipped_share": (weight.detach() >= self.config.max_weight).float().mean(),
            "actor_log_std": self.actor.clamped_log_std().detach().mean(),
        }
        return value_loss, critic_loss, actor_loss, metrics

    def update(self, batch: TransitionBatch) -> dict[str, Tensor]:
        value_loss, critic_loss, actor_loss, metrics = self._losses(batch)
        self.value_opt.zero_grad(set_to_none=True)
        self.critic_opt.zero_grad(set_to_none=True)
        self.actor_opt.zero_grad(set_to_none=True)
        # One backward pass for all three: each loss reaches only its own network's parameters
        # (V(s') in the critic's target and the advantage are detached, Q_target has no
        # gradient), so the sum gives every parameter exactly the gradient of its own loss.
        (value_loss + critic_loss + actor_loss).backward()
        self.value_opt.step()
        self.critic_opt.step()
        self.actor_opt.step()
        self.actor_scheduler.step()
        soft_update(self.critic_target, self.critic, self.config.tau)
        return metrics

    @torch.no_grad()
    def warmup_target(self, batch: TransitionBatch) -> Tensor:
        """The critic's own target r + γ(1 − d)·V(s') [B], for warming up fresh members."""
        next_value = self.value(self.normalizer(batch.next_observations))
        return batch.rewards + self.config.gamma * (1.0 - batch.terminals) * next_value

    @torch.no_grad()
    def act(self, obs: Tensor, deterministic: bool) -> Tensor:
        """Actions [n, act_dim] in [−1, 1] for raw observations [n, obs_dim]."""
        obs = self.normalizer(obs)
        if deterministic:
            return self.actor.deterministic(obs)
        return self.actor.sample(obs)

    def set_observation_statistics(
        self, mean: Tensor | np.ndarray, std: Tensor | np.ndarray
    ) -> None:
        """Dataset mean and std [obs_dim] used to normalize every observation."""
        self.normalizer.set_statistics(mean, std)

    def stateful_parts(self) -> dict[str, StatefulPart]:
        """The named parts a checkpoint holds (see `agent_state`)."""
        return {
            "normalizer": self.normalizer,
            "actor": self.actor,
            "critic": self.critic,
            "critic_target": self.critic_target,
            "value": self.value,
            "actor_opt": self.actor_opt,
            "critic_opt": self.critic_opt,
            "value_opt": self.value_opt,
            "actor_scheduler": self.actor_scheduler,
        }

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume; "critic" holds q1, q2 (, ...) as members 0, 1 (, ...)."""
        return save_parts(self.stateful_parts())

    def load_state_dict(self, state: dict[str, Any]) -> None:
        load_parts(self.stateful_parts(), state)
