"""Soft Actor-Critic (Haarnoja et al. 2018, with automatic entropy tuning).

Used online to train the behaviour policies of the replica datasets. Twin Q is one
2-member `QEnsemble`, so both critics run in one batched matmul.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from hybrid_rl.algos.agent_state import StatefulPart, load_parts, save_parts
from hybrid_rl.algos.networks import QEnsemble, TanhGaussianActor, soft_update
from hybrid_rl.batch import TransitionBatch


@dataclass
class SACConfig:
    actor_lr: float = 3e-4
    critic_lr: float = 3e-4
    alpha_lr: float = 3e-4
    gamma: float = 0.99
    tau: float = 0.005
    batch_size: int = 256
    init_alpha: float = 1.0


class SAC:
    def __init__(self, obs_dim: int, act_dim: int, config: SACConfig, device: str = "cpu") -> None:
        self.config = config
        self.device = torch.device(device)
        self.actor = TanhGaussianActor(obs_dim, act_dim).to(self.device)
        self.critic = QEnsemble(2, obs_dim, act_dim).to(self.device)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.log_alpha = torch.tensor(
            math.log(config.init_alpha), device=self.device, requires_grad=True
        )
        self.target_entropy = -float(act_dim)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=config.actor_lr, foreach=True)
        self.critic_opt = torch.optim.Adam(
            self.critic.parameters(), lr=config.critic_lr, foreach=True
        )
        self.alpha_opt = torch.optim.Adam([self.log_alpha], lr=config.alpha_lr, foreach=True)

    def critic_loss(self, batch: TransitionBatch, alpha: Tensor) -> tuple[Tensor, Tensor]:
        with torch.no_grad():
            next_actions, next_log_prob = self.actor.sample(batch.next_observations)
            next_q = self.critic_target(batch.next_observations, next_actions).min(0).values
            soft_next_v = next_q - alpha * next_log_prob
            # Terminals stop bootstrapping; timeouts are not terminal and keep it.
            target = batch.rewards + self.config.gamma * (1.0 - batch.terminals) * soft_next_v
        q = self.critic(batch.observations, batch.actions)  # [2, B]
        return F.mse_loss(q, target.expand_as(q)) * q.shape[0], q

    def actor_and_alpha_loss(self, batch: TransitionBatch) -> tuple[Tensor, Tensor, Tensor]:
        actions, log_prob = self.actor.sample(batch.observations)
        q = self.critic(batch.observations, actions).min(0).values
        alpha = self.log_alpha.exp()
        actor_loss = (alpha.detach() * log_prob - q).mean()
        alpha_loss = -(self.log_alpha * (log_prob.detach() + self.target_entropy)).mean()
        return actor_loss, alpha_loss, log_prob

    def update(self, batch: TransitionBatch) -> dict[str, Tensor]:
        alpha = self.log_alpha.exp().detach()
        critic_loss, q = self.critic_loss(batch, alpha)
        self.critic_opt.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_opt.step()

        # The critic is not trained by the actor loss: keep its gradients out of the graph.
        self.critic.requires_grad_(False)
        actor_loss, alpha_loss, log_prob = self.actor_and_alpha_loss(batch)
        self.critic.requires_grad_(True)
        self.actor_opt.zero_grad(set_to_none=True)
        actor_loss.backward()
        self.actor_opt.step()
        self.alpha_opt.zero_grad(set_to_none=True)
        alpha_loss.backward()
        self.alpha_opt.step()

        soft_update(self.critic_target, self.critic, self.config.tau)
        return {
            "critic_loss": critic_loss.detach(),
            "actor_loss": actor_loss.detach(),
            "alpha": alpha,
            "entropy": -log_prob.detach().mean(),
            "q_mean": q.detach().mean(),
        }

    @torch.no_grad()
    def act(self, obs: Tensor, deterministic: bool) -> Tensor:
        if deterministic:
            return self.actor.deterministic(obs)
        return self.actor.sample(obs)[0]

    def stateful_parts(self) -> dict[str, StatefulPart]:
        """The named parts a checkpoint holds (see `agent_state`)."""
        return {
            "actor": self.actor,
            "critic": self.critic,
            "critic_target": self.critic_target,
            "log_alpha": self.log_alpha,
            "actor_opt": self.actor_opt,
            "critic_opt": self.critic_opt,
            "alpha_opt": self.alpha_opt,
        }

    def state_dict(self) -> dict[str, Any]:
        return save_parts(self.stateful_parts())

    def load_state_dict(self, state: dict[str, Any]) -> None:
        load_parts(self.stateful_parts(), state)
