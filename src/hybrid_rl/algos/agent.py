"""What every agent provides, and what the loops need to know of an algorithm.

An algorithm is one file in `algos/` (config dataclass, agent, and for Phase II a loader of
its Phase I checkpoint into an N-member critic) plus one `Algorithm` line in
`algos/registry.py`. Anything an algorithm needs from the loops beyond that is a hook here,
with a default that suits most algorithms.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor

from hybrid_rl.algos.ensemble import EnsembleQNetwork
from hybrid_rl.algos.networks import ObservationNormalizer
from hybrid_rl.batch import TransitionBatch


class Agent(Protocol):
    def update(self, batch: TransitionBatch) -> dict[str, Tensor]: ...

    def act(self, obs: Tensor, deterministic: bool) -> Tensor: ...

    def set_observation_statistics(
        self, mean: Tensor | np.ndarray, std: Tensor | np.ndarray
    ) -> None: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class OnlineAgent(Agent, Protocol):
    """An agent with an ensemble critic over normalized observations (Phase II)."""

    normalizer: ObservationNormalizer
    critic: EnsembleQNetwork
    critic_target: EnsembleQNetwork

    @property
    def config(self) -> Any: ...

    def warmup_target(self, batch: TransitionBatch) -> Tensor:
        """The TD target [B] the fresh critic members are warmed up toward (`algos.warmup`),
        from parts the warm-up does not train."""
        ...


@dataclass(frozen=True)
class OnlineOptions:
    """How a Phase I agent becomes a Phase II one, beyond the number of members; every
    default is the spec (DESIGN.md §6)."""

    target_reduce: str = "min_all"  # `algos.reductions`
    actor_reduce: str | None = None  # None: the algorithm's own (min over all; TD3+BC: member 0)
    # Keep the Phase I critic's Adam moments for the loaded members (`ensemble.
    # load_phase1_critic_optimizer`); False (the spec): a fresh Adam for all members.
    keep_critic_optimizer: bool = False
    # IQL's online actor lr (constant); None: the Phase I config's actor_lr.
    actor_lr: float | None = None


def same_config(config: Any, total_steps: int) -> Any:
    """The default budget hook: nothing in the config depends on the run's length."""
    return config


def unit_reward_scale(trajectory_returns: np.ndarray) -> float:
    """The default reward hook: rewards are used as they are."""
    return 1.0


@dataclass(frozen=True)
class Algorithm:
    """One algorithm, as the loops and the launchers see it."""

    name: str
    config_class: type
    agent_class: Callable[[int, int, Any, torch.device], Agent]
    # Phase II: (Phase I checkpoint path, critic members, Phase I config, device, options)
    # -> an agent with an N-member critic, members 0–1 (or all N, when Phase I trained N)
    # from the checkpoint; None: offline only.
    from_phase1: (
        Callable[[str | os.PathLike[str], int, Any, torch.device, OnlineOptions], OnlineAgent]
        | None
    ) = None
    # The config fitted to a run of `total_steps` updates (e.g. a schedule over the run).
    for_budget: Callable[[Any, int], Any] = same_config
    # Factor on every reward, from the training data's undiscounted trajectory returns.
    reward_scale: Callable[[np.ndarray], float] = unit_reward_scale

    @property
    def fine_tunes(self) -> bool:
        return self.from_phase1 is not None

    def default_config(self) -> Any:
        return self.config_class()
