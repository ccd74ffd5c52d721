"""IQL fine-tuned online (Phase II): the Phase I `IQL` update, unchanged, on an N-member critic.

Nothing is re-implemented here: `IQL` already trains any number of critic members (each toward
r + γ(1 − d)·V(s'), min over members for V's target). This module sets the online
hyperparameters and loads a Phase I checkpoint into the wider agent.

IQL keeps its offline hyperparameters online (expectile 0.7, temperature 3.0, learning rates):
the IQL authors fine-tune with the values they used offline (their AntMaze fine-tuning config
repeats the offline expectile and temperature), and keeping them leaves the online data and the
bonus as the only things that change from Phase I to Phase II. The one exception is the actor's
cosine lr decay, which had reached 0 at the end of Phase I: online, the actor lr is the
constant `actor_lr`, as in the IQL authors' fine-tuning config (no lr decay).
"""

from __future__ import annotations

import dataclasses
import os

import torch

from hybrid_rl.algos.agent_state import load_parts
from hybrid_rl.algos.ensemble import (
    DEFAULT_MEMBERS,
    load_phase1_critics,
    phase1_dims,
    read_phase1_agent_state,
)
from hybrid_rl.algos.iql import IQL, IQLConfig


def online_iql_config(phase1: IQLConfig, n_ensemble: int = DEFAULT_MEMBERS) -> IQLConfig:
    """The Phase I hyperparameters with a constant actor lr and an `n_ensemble`-member critic."""
    return dataclasses.replace(phase1, actor_lr_cosine_decay=False, critic_members=n_ensemble)


def from_phase1_checkpoint(
    path: str | os.PathLike[str],
    n_ensemble: int = DEFAULT_MEMBERS,
    phase1_config: IQLConfig | None = None,
    device: str | torch.device = "cpu",
) -> IQL:
    """An IQL agent for online fine-tuning, started from a Phase I IQL `checkpoint.pt`.

    `phase1_config` is the config the checkpoint was trained with (None: DESIGN.md defaults).
    Loaded: observation normalizer, actor, value net, the actor's and value net's Adam states,
    and q1/q2 (and their targets) as critic members 0 and 1. Members 2 .. N − 1 are freshly
    initialized, each with its target equal to itself. The actor's Adam keeps its moments, but
    its lr is reset from the decayed Phase I value to `actor_lr`.

    The critic's Adam starts fresh for all members: its Phase I moments exist for two members
    only, and splicing them next to zero moments would give the new members Phase I's step
    count, so Adam's bias correction would scale their first updates wrongly.
    """
    state = read_phase1_agent_state(path, device)
    obs_dim, act_dim = phase1_dims(state)
    config = online_iql_config(phase1_config or IQLConfig(), n_ensemble)
    agent = IQL(obs_dim, act_dim, config, device)
    parts = agent.stateful_parts()
    kept = ("normalizer", "actor", "value", "actor_opt", "value_opt")
    load_parts({name: parts[name] for name in kept}, state)
    for group in agent.actor_opt.param_groups:
        group["lr"] = group["initial_lr"] = config.actor_lr
    load_phase1_critics(agent.critic, agent.critic_target, state)
    return agent
