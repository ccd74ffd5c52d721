"""CQL fine-tuned online (Phase II): the Phase I `CQL` update, unchanged, on an N-member critic.

Nothing is re-implemented here: `CQL` already trains any number of critic members (TD error and
conservative penalty per member, min over members for targets and the actor). This module only
sets the online hyperparameters and loads a Phase I checkpoint into the wider agent.

Online changes, and only these: α_cql 5.0 → 1.0 (DESIGN.md §6: online data is no longer
out-of-distribution, so the pessimism is relaxed), `critic_members` = N.
"""

from __future__ import annotations

import dataclasses
import os

import torch

from hybrid_rl.algos.agent import OnlineOptions
from hybrid_rl.algos.cql import CQL, CQLConfig
from hybrid_rl.algos.ensemble import (
    DEFAULT_MEMBERS,
    phase1_dims,
    read_phase1_agent_state,
    widen_from_phase1,
)

ONLINE_CQL_ALPHA = 1.0


def online_cql_config(
    phase1: CQLConfig, n_ensemble: int = DEFAULT_MEMBERS, options: OnlineOptions | None = None
) -> CQLConfig:
    """The Phase I hyperparameters with α_cql = 1.0, an `n_ensemble`-member critic and the
    `options`' reductions."""
    options = options or OnlineOptions()
    return dataclasses.replace(
        phase1,
        cql_alpha=ONLINE_CQL_ALPHA,
        critic_members=n_ensemble,
        target_reduce=options.target_reduce,
        actor_reduce=options.actor_reduce,
    )


def from_phase1_checkpoint(
    path: str | os.PathLike[str],
    n_ensemble: int = DEFAULT_MEMBERS,
    phase1_config: CQLConfig | None = None,
    device: str | torch.device = "cpu",
    options: OnlineOptions | None = None,
) -> CQL:
    """A CQL agent for online fine-tuning, started from a Phase I CQL `checkpoint.pt`.

    `phase1_config` is the config the checkpoint was trained with (None: DESIGN.md defaults).
    Loaded: observation normalizer, actor, entropy temperature, the actor's and temperature's
    Adam states, and q1/q2 (and their targets) as critic members 0 and 1 (all N members when
    Phase I trained N). Members 2 .. N − 1 are freshly initialized, each with its target equal
    to itself.

    By default (the spec) the critic's Adam starts fresh for all members: its Phase I moments
    exist for two members only. `options.keep_critic_optimizer` keeps them for the loaded
    members (`ensemble.load_phase1_critic_optimizer` says how the fresh ones start).
    """
    state = read_phase1_agent_state(path, device)
    obs_dim, act_dim = phase1_dims(state)
    options = options or OnlineOptions()
    config = online_cql_config(phase1_config or CQLConfig(), n_ensemble, options)
    agent = CQL(obs_dim, act_dim, config, device)
    kept = ("normalizer", "actor", "log_alpha", "actor_opt", "alpha_opt")
    widen_from_phase1(agent, state, kept, options.keep_critic_optimizer)
    return agent
