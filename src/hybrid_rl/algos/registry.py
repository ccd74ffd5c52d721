"""The offline algorithms by name, and the protocol every agent satisfies."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor

from hybrid_rl.algos.bc import BC, BCConfig
from hybrid_rl.algos.cql import CQL, CQLConfig
from hybrid_rl.algos.iql import IQL, IQLConfig
from hybrid_rl.batch import TransitionBatch

AgentConfig = CQLConfig | IQLConfig | BCConfig


class Agent(Protocol):
    def update(self, batch: TransitionBatch) -> dict[str, Tensor]: ...

    def act(self, obs: Tensor, deterministic: bool) -> Tensor: ...

    def set_observation_statistics(
        self, mean: Tensor | np.ndarray, std: Tensor | np.ndarray
    ) -> None: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


_CONFIGS: dict[str, type[AgentConfig]] = {"cql": CQLConfig, "iql": IQLConfig, "bc": BCConfig}
_AGENTS: dict[str, Callable[..., Agent]] = {"cql": CQL, "iql": IQL, "bc": BC}
ALGORITHMS = tuple(_AGENTS)


def default_config(name: str) -> AgentConfig:
    """The DESIGN.md defaults of algorithm `name`."""
    return _config_class(name)()


def make_agent(
    name: str,
    obs_dim: int,
    act_dim: int,
    config: AgentConfig | None = None,
    device: str | torch.device = "cpu",
) -> Agent:
    """A fresh agent of algorithm `name` ("cql", "iql" or "bc"); `config=None` means defaults."""
    config_class = _config_class(name)
    if config is None:
        config = config_class()
    elif not isinstance(config, config_class):
        raise TypeError(
            f"algorithm {name!r} takes a {config_class.__name__}, got a "
            f"{type(config).__name__}; pass default_config({name!r}) or None"
        )
    return _AGENTS[name](obs_dim, act_dim, config, device)


def _config_class(name: str) -> type[AgentConfig]:
    try:
        return _CONFIGS[name]
    except KeyError:
        raise KeyError(
            f"unknown algorithm {name!r}; valid names are: {', '.join(ALGORITHMS)}"
        ) from None
