"""The algorithms by name: one line each."""

from __future__ import annotations

from typing import Any

import torch

from hybrid_rl.algos import iql, online_cql, online_iql, td3bc
from hybrid_rl.algos.agent import Agent, Algorithm
from hybrid_rl.algos.bc import BC, BCConfig
from hybrid_rl.algos.cql import CQL, CQLConfig
from hybrid_rl.algos.iql import IQL, IQLConfig

ALGORITHMS: dict[str, Algorithm] = {
    a.name: a
    for a in (
        Algorithm("cql", CQLConfig, CQL, online_cql.from_phase1_checkpoint),
        Algorithm(
            "iql",
            IQLConfig,
            IQL,
            online_iql.from_phase1_checkpoint,
            iql.for_budget,
            iql.reward_scale,
        ),
        Algorithm("bc", BCConfig, BC),
        Algorithm("td3bc", td3bc.TD3BCConfig, td3bc.TD3BC, td3bc.from_phase1_checkpoint),
    )
}
# The algorithms Phase II can fine-tune (those with a critic to widen into an ensemble).
PHASE2_ALGORITHMS = tuple(name for name, a in ALGORITHMS.items() if a.fine_tunes)
# The algorithms whose critic can compute in bf16 (`algos.precision`): a `precision` field.
PRECISION_ALGOS = tuple(
    name for name, a in ALGORITHMS.items() if hasattr(a.default_config(), "precision")
)


def get_algorithm(name: str) -> Algorithm:
    try:
        return ALGORITHMS[name]
    except KeyError:
        raise KeyError(
            f"unknown algorithm {name!r}; valid names are: {', '.join(ALGORITHMS)}"
        ) from None


def default_config(name: str) -> Any:
    """The DESIGN.md defaults of algorithm `name`."""
    return get_algorithm(name).default_config()


def make_agent(
    name: str,
    obs_dim: int,
    act_dim: int,
    config: Any | None = None,
    device: str | torch.device = "cpu",
) -> Agent:
    """A fresh agent of algorithm `name`; `config=None` means its defaults."""
    algorithm = get_algorithm(name)
    if config is None:
        config = algorithm.default_config()
    elif not isinstance(config, algorithm.config_class):
        raise TypeError(
            f"algorithm {name!r} takes a {algorithm.config_class.__name__}, got a "
            f"{type(config).__name__}; pass default_config({name!r}) or None"
        )
    return algorithm.agent_class(obs_dim, act_dim, config, torch.device(device))
