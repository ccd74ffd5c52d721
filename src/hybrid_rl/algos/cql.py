"""Conservative Q-Learning, CQL(H) with importance sampling (Kumar et al. 2020), on top of SAC.

The critic is one `EnsembleQNetwork` of `critic_members` members: 2 offline (twin Q), N in
Phase II; targets and the actor use the min over all members. The conservative term needs
Q(s, ·) at the dataset action and at 3 × n sampled actions (uniform, π(s), π(s')); all of them,
for every member, come out of one `fused_critic.summed_critic_loss` call over B·(1 + 3n) rows,
an optimisation that on a CPU runs the critic's forward and backward chunk by chunk of states
(`cql_critic_loss` adds up over states).
Observations are normalized once per update by one `ObservationNormalizer` shared by the actor and
the critics, and the normalizer is part of the checkpoint.
"""

from __future__ import annotations

import copy
import functools
import math
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor

from hybrid_rl.algos.agent_state import StatefulPart, load_parts, save_parts
from hybrid_rl.algos.ensemble import EnsembleQNetwork
from hybrid_rl.algos.fused_critic import summed_critic_loss
from hybrid_rl.algos.networks import (
    ObservationNormalizer,
    TanhGaussianActor,
    make_adam,
    soft_update,
)
from hybrid_rl.algos.precision import Precision, check_precision, matmul_dtype
from hybrid_rl.algos.reductions import Reduction
from hybrid_rl.batch import TransitionBatch


@dataclass
class CQLConfig:
    critic_lr: float = 3e-4
    actor_lr: float = 1e-4
    # CORL steps the entropy temperature with the policy's learning rate.
    alpha_lr: float = 1e-4
    gamma: float = 0.99
    tau: float = 0.005
    batch_size: int = 256
    init_alpha: float = 1.0
    cql_alpha: float = 5.0  # weight of the conservative term (1.0 online in Phase II)
    num_sampled_actions: int = 10  # per source: uniform, π(s), π(s')
    critic_members: int = 2  # twin Q offline; the Phase II ensemble size online
    # How members' Q values are combined (`algos.reductions`) for the TD target and the
    # actor; None: as the target (min over all members, the spec).
    target_reduce: str = "min_all"
    actor_reduce: str | None = None
    # The dtype of the critic loss's hidden-layer matrix products (`algos.precision`): bf16
    # where the hardware does it natively (fp32 elsewhere, with a warning), fp32 otherwise.
    # It changes every Q value's rounding, so it is part of what a run computes.
    precision: Precision = "fp32"

    def __post_init__(self) -> None:
        check_precision(self.precision)


class CQLActionSamples(NamedTuple):
    """The actions one update evaluates; n = `num_sampled_actions`, B = batch size."""

    uniform: Tensor  # [n, B, act_dim] uniform in [−1, 1]
    current: Tensor  # [n, B, act_dim] a ~ π(·|s)
    current_log_prob: Tensor  # [n, B] log π(a|s)
    next: Tensor  # [n, B, act_dim] a' ~ π(·|s'), evaluated as Q(s, a')
    next_log_prob: Tensor  # [n, B] log π(a'|s')
    target: Tensor  # [B, act_dim] a' ~ π(·|s') for the TD target, drawn apart from `next`


def importance_sampled_logsumexp(q_sampled: Tensor, log_density: Tensor) -> Tensor:
    """log Σ_k exp(Q(s, a_k) − log p(a_k)) over the sampled actions: [M, K, B] -> [M, B].

    Each term is Q minus the log-density its action was drawn from ([K, B]), so the
    logsumexp estimates log ∫ exp Q(s, a) da (up to the constant log K).
    """
    return torch.logsumexp(q_sampled - log_density, dim=1)


def cql_critic_loss(
    q: Tensor, td_target: Tensor, log_density: Tensor, cql_alpha: float, batch_size: int
) -> Tensor:
    """CQL(H) critic loss of b states: TD error + cql_alpha · (logsumexp Q(s, ·) − Q(s, a_data)).

    q [M, 1 + 3n, b]: each member's Q at the dataset action (index 0), then at the n uniform,
    n π(s) and n π(s') actions; td_target [b]; log_density [3n, b]: the log-density each
    sampled action was drawn from. Summed over members and states and divided by the whole
    batch's size B: over all B states it is the sum over members of batch means (for twin Q,
    CORL's qf1_loss + qf2_loss), and the losses of chunks of states add up to it.
    """
    q_data = q[:, 0]  # [M, b]
    td_error = (q_data - td_target).pow(2)
    q_ood = importance_sampled_logsumexp(q[:, 1:], log_density)
    return (td_error + cql_alpha * (q_ood - q_data)).sum() / batch_size


class CQL:
    """CQL agent: `update(batch)` does one critic, actor and temperature step."""

    def __init__(
        self, obs_dim: int, act_dim: int, config: CQLConfig, device: str | torch.device = "cpu"
    ) -> None:
        self.config = config
        self.act_dim = act_dim
        self.device = torch.device(device)
        self.normalizer = ObservationNormalizer(obs_dim).to(self.device)
        self.actor = TanhGaussianActor(obs_dim, act_dim).to(self.device)
        self.critic = EnsembleQNetwork(obs_dim, act_dim, config.critic_members).to(self.device)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.matmul_dtype = matmul_dtype(config.precision, self.device)
        self.target_reduction = Reduction.parse(config.target_reduce)
        self.actor_reduction = Reduction.parse(config.actor_reduce or "min_all")
        for reduction in (self.target_reduction, self.actor_reduction):
            reduction.check_members(config.critic_members)
        self.log_alpha = torch.tensor(
            math.log(config.init_alpha), device=self.device, requires_grad=True
        )
        self.target_entropy = -float(act_dim)
        self.actor_opt = make_adam(self.actor.parameters(), config.actor_lr)
        self.critic_opt = make_adam(self.critic.parameters(), config.critic_lr)
        self.alpha_opt = make_adam([self.log_alpha], config.alpha_lr)

    @torch.no_grad()
    def sample_actions(self, obs: Tensor, next_obs: Tensor) -> CQLActionSamples:
        """Draw every action of one update from normalized observations [B, obs_dim]."""
        n = self.config.num_sampled_actions
        current, current_log_prob = self.actor.sample(obs, (n,))
        # One extra draw at s' serves the TD target, so it stays independent of the n others.
        next_actions, next_log_prob = self.actor.sample(next_obs, (n + 1,))
        uniform = torch.empty_like(current).uniform_(-1.0, 1.0)
        return CQLActionSamples(
            uniform=uniform,
            current=current,
            current_log_prob=current_log_prob,
            next=next_actions[1:],
            next_log_prob=next_log_prob[1:],
            target=next_actions[0],
        )

    def critic_loss(
        self, obs: Tensor, next_obs: Tensor, batch: TransitionBatch, samples: CQLActionSamples
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """`cql_critic_loss` of the whole batch, and detached statistics.

        `obs`/`next_obs` are normalized. Returns the loss summed over the members and its
        statistics: `cql_penalty` is logsumexp − Q(s, a_data) averaged over batch and members,
        before the `cql_alpha` factor; `q_ood_mean` is the logsumexp term alone.
        """
        with torch.no_grad():
            next_q = self.critic_target.reduce(next_obs, samples.target, self.target_reduction)
            # No entropy bonus in the backup: CORL's CQL default
            # (algorithms/offline/cql.py, TrainConfig.backup_entropy = False).
            # Terminals stop bootstrapping; timeouts are not terminal and keep it.
            td_target = batch.rewards + self.config.gamma * (1.0 - batch.terminals) * next_q

        # Q(s, ·) at the dataset action and the 3n sampled ones: [1 + 3n, B, A], with the
        # log-density each sampled action was drawn from: [3n, B].
        actions = torch.cat(
            [batch.actions.unsqueeze(0), samples.uniform, samples.current, samples.next]
        )
        # Uniform on [−1, 1]^A: density 2^−A.
        uniform_log_density = torch.full_like(
            samples.current_log_prob, self.act_dim * math.log(0.5)
        )
        log_density = torch.cat(
            [uniform_log_density, samples.current_log_prob, samples.next_log_prob]
        )

        # One loss over all B states; on a CPU the fused critic evaluates it chunk by chunk.
        loss_of_states = functools.partial(
            cql_critic_loss, cql_alpha=self.config.cql_alpha, batch_size=obs.shape[0]
        )
        loss, q = summed_critic_loss(
            self.critic, obs, actions, loss_of_states, (td_target, log_density), self.matmul_dtype
        )  # q: [M, 1 + 3n, B], detached

        q_data = q[:, 0]
        q_ood = importance_sampled_logsumexp(q[:, 1:], log_density)  # [M, B]
        stats = {
            "td_loss": (q_data - td_target).pow(2).mean(dim=1).sum(),
            "cql_penalty": (q_ood - q_data).mean(),
            "q_data_mean": q_data.mean(),
            "q_data_std": q_data.std(),
            "q_ood_mean": q_ood.mean(),
        }
        return loss, stats

    def actor_loss(self, obs: Tensor, alpha: Tensor) -> tuple[Tensor, Tensor]:
        """SAC policy loss α·log π(a|s) − Q(s, a), a ~ π(s), Q reduced over members by
        `actor_reduction` (min by default); also returns log π [B]."""
        actions, log_prob = self.actor.sample(obs)
        q = self.critic.reduce(obs, actions, self.actor_reduction)
        return (alpha * log_prob - q).mean(), log_prob

    def alpha_loss(self, log_prob: Tensor) -> Tensor:
        """Temperature loss driving the policy entropy toward −|A|."""
        return -(self.log_alpha * (log_prob.detach() + self.target_entropy)).mean()

    def update(self, batch: TransitionBatch) -> dict[str, Tensor]:
        obs = self.normalizer(batch.observations)
        next_obs = self.normalizer(batch.next_observations)

        samples = self.sample_actions(obs, next_obs)
        critic_loss, stats = self.critic_loss(obs, next_obs, batch, samples)
        self.critic_opt.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_opt.step()

        alpha = self.log_alpha.exp().detach()
        # The actor loss must not train the critic: keep its parameters out of the graph.
        self.critic.requires_grad_(False)
        actor_loss, log_prob = self.actor_loss(obs, alpha)
        self.critic.requires_grad_(True)
        alpha_loss = self.alpha_loss(log_prob)
        self.actor_opt.zero_grad(set_to_none=True)
        self.alpha_opt.zero_grad(set_to_none=True)
        # One backward pass for both: the actor loss does not depend on log α (α is detached)
        # and the temperature loss not on the actor (log π is detached), so the sum gives each
        # parameter exactly the gradient of its own loss.
        (actor_loss + alpha_loss).backward()
        self.actor_opt.step()
        self.alpha_opt.step()

        soft_update(self.critic_target, self.critic, self.config.tau)
        return {
            "critic_loss": critic_loss.detach(),
            "actor_loss": actor_loss.detach(),
            "alpha": alpha,
            "entropy": -log_prob.detach().mean(),
            **stats,
        }

    @torch.no_grad()
    def warmup_target(self, batch: TransitionBatch) -> Tensor:
        """r + γ(1 − d)·min over the loaded target members of Q(s', a'), a' ~ π(s') [B]: the
        TD target without the fresh members, for warming them up."""
        next_obs = self.normalizer(batch.next_observations)
        next_actions, _ = self.actor.sample(next_obs)
        loaded = self.critic_target.loaded_members
        next_q = self.critic_target(next_obs, next_actions)[:loaded].min(0).values
        return batch.rewards + self.config.gamma * (1.0 - batch.terminals) * next_q

    @torch.no_grad()
    def act(self, obs: Tensor, deterministic: bool) -> Tensor:
        """Actions [n, act_dim] in [−1, 1] for raw observations [n, obs_dim]."""
        obs = self.normalizer(obs)
        if deterministic:
            return self.actor.deterministic(obs)
        return self.actor.sample(obs)[0]

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
            "log_alpha": self.log_alpha,
            "actor_opt": self.actor_opt,
            "critic_opt": self.critic_opt,
            "alpha_opt": self.alpha_opt,
        }

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume; "critic" holds q1, q2 (, ...) as members 0, 1 (, ...)."""
        return save_parts(self.stateful_parts())

    def load_state_dict(self, state: dict[str, Any]) -> None:
        load_parts(self.stateful_parts(), state)
