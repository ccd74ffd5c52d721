"""TD3+BC (Fujimoto & Gu 2021, "A Minimalist Approach to Offline Reinforcement Learning").

TD3 with one added term. The critic is TD3's: each member regresses to
r + γ(1 − d)·min_i Q_target_i(s', ã') with target policy smoothing
ã' = clip(π_target(s') + clip(ε, −c, c), −1, 1), ε ~ N(0, σ²). Every `policy_delay` critic
updates, the deterministic actor minimizes −λ·mean Q_0(s, π(s)) + mean (π(s) − a)², with
λ = α / mean|Q_0(s, π(s))| (no gradient through λ) so the balance between the two terms does not
depend on the scale of the returns; the actor's and the critic's targets move on those steps only.

States are normalized by the dataset mean and std, as in the paper, by one
`ObservationNormalizer` shared by actor and critic and saved in the checkpoint. Rewards are used as
they arrive (any scaling happens in the dataset layer).

Phase II (end of the file): the same update on an N-member critic, loaded from a Phase I
checkpoint the way `online_cql` and `online_iql` load theirs.
"""

from __future__ import annotations

import copy
import dataclasses
import os
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from hybrid_rl.algos.agent import OnlineOptions
from hybrid_rl.algos.agent_state import StatefulPart, load_parts, save_parts
from hybrid_rl.algos.ensemble import (
    DEFAULT_MEMBERS,
    EnsembleQNetwork,
    phase1_dims,
    read_phase1_agent_state,
    widen_from_phase1,
)
from hybrid_rl.algos.networks import EnsembleMLP, ObservationNormalizer, make_adam, soft_update
from hybrid_rl.algos.reductions import Reduction
from hybrid_rl.batch import TransitionBatch


@dataclass
class TD3BCConfig:
    actor_lr: float = 3e-4
    critic_lr: float = 3e-4
    gamma: float = 0.99
    tau: float = 0.005
    batch_size: int = 256
    alpha: float = 2.5  # α in λ = α / mean|Q|: larger trusts Q more, 0 is pure behaviour cloning
    policy_noise: float = 0.2  # σ of the target policy smoothing noise, in action units
    noise_clip: float = 0.5  # c: the smoothing noise is clipped to [−c, c]
    policy_delay: int = 2  # the actor and the targets step once every this many updates
    exploration_noise: float = 0.1  # σ of the Gaussian noise `act` adds online
    critic_members: int = 2  # twin Q offline; the Phase II ensemble size online
    # How members' Q values are combined (`algos.reductions`) for the TD target and the
    # actor; actor None: member 0 alone, as in the paper.
    target_reduce: str = "min_all"
    actor_reduce: str | None = None


class DeterministicTanhActor(nn.Module):
    """π(s) = tanh(MLP(s)): actions [B, act_dim] in (−1, 1) for normalized states [B, obs_dim]."""

    def __init__(self, obs_dim: int, act_dim: int) -> None:
        super().__init__()
        self.net = EnsembleMLP(1, obs_dim, act_dim)

    def forward(self, obs: Tensor) -> Tensor:
        return torch.tanh(self.net(obs)[0])


class TD3BC:
    """TD3+BC agent: `update(batch)` does one critic step, and every `policy_delay`-th update
    also one actor step and the soft updates of both targets."""

    # The methods through which `update` reads the networks (see `algos.seed_stack`).
    SEED_STACKED_METHODS: ClassVar[tuple[str, ...]] = ("critic_losses", "actor_losses")

    def __init__(
        self, obs_dim: int, act_dim: int, config: TD3BCConfig, device: str | torch.device = "cpu"
    ) -> None:
        if config.policy_delay < 1:
            raise ValueError(
                f"TD3BCConfig.policy_delay must be at least 1 (the actor steps once every "
                f"policy_delay updates), got {config.policy_delay}; the paper uses 2"
            )
        self.config = config
        self.device = torch.device(device)
        self.normalizer = ObservationNormalizer(obs_dim).to(self.device)
        self.actor = DeterministicTanhActor(obs_dim, act_dim).to(self.device)
        self.actor_target = copy.deepcopy(self.actor).requires_grad_(False)
        self.critic = EnsembleQNetwork(obs_dim, act_dim, config.critic_members).to(self.device)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.target_reduction = Reduction.parse(config.target_reduce)
        self.actor_reduction = (
            None if config.actor_reduce is None else Reduction.parse(config.actor_reduce)
        )
        for reduction in (self.target_reduction, self.actor_reduction):
            if reduction is not None:
                reduction.check_members(config.critic_members)
        self.actor_opt = make_adam(self.actor.parameters(), config.actor_lr)
        self.critic_opt = make_adam(self.critic.parameters(), config.critic_lr)
        # Updates done so far. Kept on the CPU whatever the device, so deciding whether this is
        # an actor step never waits for the GPU; saved, so a resumed run keeps the same phase.
        self.update_count = torch.zeros((), dtype=torch.int64)

    def critic_loss(
        self, obs: Tensor, next_obs: Tensor, batch: TransitionBatch, smoothing_noise: Tensor
    ) -> tuple[Tensor, Tensor]:
        """MSE of each Q member toward the TD3 target, summed over members; also Q [M, B].

        `obs`/`next_obs` are normalized; `smoothing_noise` [B, act_dim] is ε ~ N(0, σ²) before
        clipping (drawn by `update`, passed in so a test can fix it).
        """
        config = self.config
        with torch.no_grad():
            noise = smoothing_noise.clamp(-config.noise_clip, config.noise_clip)
            next_actions = (self.actor_target(next_obs) + noise).clamp(-1.0, 1.0)
            next_q = self.critic_target.reduce(next_obs, next_actions, self.target_reduction)
            # Terminals stop bootstrapping; timeouts are not terminal and keep it.
            target = batch.rewards + config.gamma * (1.0 - batch.terminals) * next_q
        q = self.critic(obs, batch.actions)  # [M, B]
        # Σ over members of the mean squared error, as the paper's code (Q1 loss + Q2 loss).
        return (q - target).pow(2).mean(dim=1).sum(), q.detach()

    def actor_loss(self, obs: Tensor, actions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """−λ·mean Q_0(s, π(s)) + mean (π(s) − a)²; also the BC term and λ, both detached.

        The paper's actor uses the first critic only (TD3's Q1), not the min over members;
        with `actor_reduce` set, Q is the members' Q reduced by it instead.
        """
        policy_actions = self.actor(obs)
        if self.actor_reduction is None:
            q = self.critic(obs, policy_actions)[0]
        else:
            q = self.critic.reduce(obs, policy_actions, self.actor_reduction)
        q_lambda = self.config.alpha / q.abs().mean().detach()
        bc_loss = (policy_actions - actions).pow(2).mean()
        return -q_lambda * q.mean() + bc_loss, bc_loss.detach(), q_lambda

    def critic_losses(
        self, batch: TransitionBatch, smoothing_noise: Tensor
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """The critic loss of one update on raw `batch`, and its metrics."""
        obs = self.normalizer(batch.observations)
        next_obs = self.normalizer(batch.next_observations)
        critic_loss, q = self.critic_loss(obs, next_obs, batch, smoothing_noise)
        metrics = {
            "critic_loss": critic_loss.detach(),
            "q_data_mean": q.mean(),
            "q_data_std": q.std(),
        }
        return critic_loss, metrics

    def actor_losses(self, batch: TransitionBatch) -> tuple[Tensor, dict[str, Tensor]]:
        """The actor loss of an actor step on raw `batch` (with the critic just updated), and
        its metrics."""
        obs = self.normalizer(batch.observations)
        actor_loss, bc_loss, q_lambda = self.actor_loss(obs, batch.actions)
        return actor_loss, {
            "actor_loss": actor_loss.detach(),
            "bc_loss": bc_loss,
            "q_lambda": q_lambda,
        }

    def standard_normal(self, like: Tensor) -> Tensor:
        """N(0, 1) noise shaped like `like`, from torch's global generator (the one random
        draw of an update; a seed stack draws each seed's from its own generator)."""
        return torch.randn_like(like)

    def update(self, batch: TransitionBatch) -> dict[str, Tensor]:
        """One update; `actor_loss`, `bc_loss` and `q_lambda` are reported on actor steps only."""
        config = self.config
        smoothing_noise = self.standard_normal(batch.actions) * config.policy_noise
        critic_loss, metrics = self.critic_losses(batch, smoothing_noise)
        self.critic_opt.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_opt.step()

        self.update_count += 1
        if int(self.update_count) % config.policy_delay == 0:
            # The actor loss must not train the critic: keep its parameters out of the graph.
            self.critic.requires_grad_(False)
            actor_loss, actor_metrics = self.actor_losses(batch)
            self.critic.requires_grad_(True)
            self.actor_opt.zero_grad(set_to_none=True)
            actor_loss.backward()
            self.actor_opt.step()
            soft_update(self.actor_target, self.actor, config.tau)
            soft_update(self.critic_target, self.critic, config.tau)
            metrics |= actor_metrics
        return metrics

    @torch.no_grad()
    def warmup_target(self, batch: TransitionBatch) -> Tensor:
        """The TD3 target with the loaded target members only [B], for warming up fresh
        members: r + γ(1 − d)·min over them of Q(s', ã'), ã' the smoothed target action."""
        config = self.config
        next_obs = self.normalizer(batch.next_observations)
        noise = (torch.randn_like(batch.actions) * config.policy_noise).clamp(
            -config.noise_clip, config.noise_clip
        )
        next_actions = (self.actor_target(next_obs) + noise).clamp(-1.0, 1.0)
        loaded = self.critic_target.loaded_members
        next_q = self.critic_target(next_obs, next_actions)[:loaded].min(0).values
        return batch.rewards + config.gamma * (1.0 - batch.terminals) * next_q

    @torch.no_grad()
    def act(self, obs: Tensor, deterministic: bool) -> Tensor:
        """Actions [n, act_dim] in [−1, 1] for raw observations [n, obs_dim].

        Deterministic: π(s). Otherwise TD3's exploration, π(s) + N(0, exploration_noise²)
        clipped to [−1, 1].
        """
        actions = self.actor(self.normalizer(obs))
        if deterministic:
            return actions
        noise = torch.randn_like(actions) * self.config.exploration_noise
        return (actions + noise).clamp(-1.0, 1.0)

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
            "actor_target": self.actor_target,
            "critic": self.critic,
            "critic_target": self.critic_target,
            "actor_opt": self.actor_opt,
            "critic_opt": self.critic_opt,
            "update_count": self.update_count,
        }

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume; "critic" holds q1, q2 (, ...) as members 0, 1 (, ...)."""
        return save_parts(self.stateful_parts())

    def load_state_dict(self, state: dict[str, Any]) -> None:
        load_parts(self.stateful_parts(), state)


# Phase II: TD3+BC fine-tuned online, the update above unchanged on an N-member critic.


def online_td3bc_config(
    phase1: TD3BCConfig, n_ensemble: int = DEFAULT_MEMBERS, options: OnlineOptions | None = None
) -> TD3BCConfig:
    """The Phase I hyperparameters, α included, with an `n_ensemble`-member critic and the
    `options`' reductions.

    TD3+BC keeps its behaviour-cloning term online at the offline α = 2.5: a choice, which
    leaves the online data and the bonus as the only things that change from Phase I to
    Phase II (as for IQL). Targets use the min over all N members; the actor, as offline,
    follows member 0 only.
    """
    options = options or OnlineOptions()
    return dataclasses.replace(
        phase1,
        critic_members=n_ensemble,
        target_reduce=options.target_reduce,
        actor_reduce=options.actor_reduce,
    )


def from_phase1_checkpoint(
    path: str | os.PathLike[str],
    n_ensemble: int = DEFAULT_MEMBERS,
    phase1_config: TD3BCConfig | None = None,
    device: str | torch.device = "cpu",
    options: OnlineOptions | None = None,
) -> TD3BC:
    """A TD3+BC agent for online fine-tuning, started from a Phase I TD3+BC `checkpoint.pt`.

    `phase1_config` is the config the checkpoint was trained with (None: the paper's defaults).
    Loaded: observation normalizer, actor, actor target, the actor's Adam state, the update
    count (so the actor steps keep their phase), and q1/q2 (and their targets) as critic
    members 0 and 1 (all N members when Phase I trained N). Members 2 .. N − 1 are freshly
    initialized, each with its target equal to itself.

    By default (the spec) the critic's Adam starts fresh for all members: its Phase I moments
    exist for two members only. `options.keep_critic_optimizer` keeps them for the loaded
    members (`ensemble.load_phase1_critic_optimizer` says how the fresh ones start).
    """
    state = read_phase1_agent_state(path, device)
    obs_dim, act_dim = phase1_dims(state)
    options = options or OnlineOptions()
    config = online_td3bc_config(phase1_config or TD3BCConfig(), n_ensemble, options)
    agent = TD3BC(obs_dim, act_dim, config, device)
    kept = ("normalizer", "actor", "actor_target", "actor_opt", "update_count")
    widen_from_phase1(agent, state, kept, options.keep_critic_optimizer)
    return agent
