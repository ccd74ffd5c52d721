"""Behaviour cloning: maximum likelihood of the dataset actions.

The policy is IQL's `GaussianActor`, so BC is exactly IQL's actor step with every weight equal
to 1; the gap between the two isolates what IQL's value weighting adds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from hybrid_rl.algos.agent_state import StatefulPart, load_parts, save_parts
from hybrid_rl.algos.networks import (
    GaussianActor,
    ObservationNormalizer,
    gaussian_log_prob,
    make_adam,
)
from hybrid_rl.batch import TransitionBatch


@dataclass
class BCConfig:
    lr: float = 3e-4
    batch_size: int = 256


class BC:
    """BC agent: `update(batch)` does one maximum-likelihood step of the actor."""

    # The methods through which `update` reads the networks (see `algos.seed_stack`).
    SEED_STACKED_METHODS: ClassVar[tuple[str, ...]] = ("losses",)

    def __init__(
        self, obs_dim: int, act_dim: int, config: BCConfig, device: str | torch.device = "cpu"
    ) -> None:
        self.config = config
        self.device = torch.device(device)
        self.normalizer = ObservationNormalizer(obs_dim).to(self.device)
        self.actor = GaussianActor(obs_dim, act_dim).to(self.device)
        self.actor_opt = make_adam(self.actor.parameters(), config.lr)

    def actor_loss(self, obs: Tensor, actions: Tensor) -> tuple[Tensor, Tensor]:
        """−mean log π(a|s) over the batch; also the mean squared error of the policy mean."""
        mean = self.actor.mean_action(obs)
        log_prob = gaussian_log_prob(mean, self.actor.clamped_log_std(), actions)
        mse = (mean - actions).pow(2).mean()
        return -log_prob.mean(), mse

    def losses(self, batch: TransitionBatch) -> tuple[Tensor, dict[str, Tensor]]:
        """The actor loss of one update, and the metrics."""
        actor_loss, mse = self.actor_loss(self.normalizer(batch.observations), batch.actions)
        return actor_loss, {"actor_loss": actor_loss.detach(), "action_mse": mse.detach()}

    def update(self, batch: TransitionBatch) -> dict[str, Tensor]:
        actor_loss, metrics = self.losses(batch)
        self.actor_opt.zero_grad(set_to_none=True)
        actor_loss.backward()
        self.actor_opt.step()
        return metrics

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
            "actor_opt": self.actor_opt,
        }

    def state_dict(self) -> dict[str, Any]:
        return save_parts(self.stateful_parts())

    def load_state_dict(self, state: dict[str, Any]) -> None:
        load_parts(self.stateful_parts(), state)
