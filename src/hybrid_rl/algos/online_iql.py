"""IQL fine-tuned online (Phase II): the Phase I `IQL` update, unchanged, on an N-member critic.

Nothing is re-implemented here: `IQL` already trains any number of critic members (each toward
r + γ(1 − d)·V(s'), min over members for V's target). This module sets the online
hyperparameters and loads a Phase I checkpoint into the wider agent.

IQL keeps its offline hyperparameters online (expectile 0.7, temperature 3.0, learning rates):
the IQL authors fine-tune with the values they used offline (their AntMaze fine-tuning config
repeats the offline expectile and temperature), and keeping them leaves the online data and the
bonus as the only things that change from Phase I to Phase II. The one exception is the actor's
cosine lr decay, which had reached 0 at the end of Phase I: online, the actor lr is the
constant `actor_lr`, as in the IQL authors' fine-tuning config (no lr decay): 3e-4 by default
(`ONLINE_ACTOR_LR`, the Phase I value), or `OnlineOptions.actor_lr` (`--iql_actor_lr`).
"""

from __future__ import annotations

import dataclasses
import os

import torch

from hybrid_rl.algos.agent import OnlineOptions
from hybrid_rl.algos.ensemble import (
    DEFAULT_MEMBERS,
    phase1_dims,
    read_phase1_agent_state,
    widen_from_phase1,
)
from hybrid_rl.algos.iql import IQL, IQLConfig

# The online actor lr by default: IQLConfig's actor_lr (the IQL authors' value, kept constant
# in their fine-tuning); `--iql_actor_lr` sets another.
ONLINE_ACTOR_LR = IQLConfig.actor_lr


def online_iql_config(
    phase1: IQLConfig, n_ensemble: int = DEFAULT_MEMBERS, options: OnlineOptions | None = None
) -> IQLConfig:
    """The Phase I hyperparameters with a constant actor lr, an `n_ensemble`-member critic
    and the `options`' reductions and actor lr."""
    options = options or OnlineOptions()
    return dataclasses.replace(
        phase1,
        actor_lr_cosine_decay=False,
        critic_members=n_ensemble,
        target_reduce=options.target_reduce,
        actor_reduce=options.actor_reduce,
        actor_lr=phase1.actor_lr if options.actor_lr is None else options.actor_lr,
    )


def from_phase1_checkpoint(
    path: str | os.PathLike[str],
    n_ensemble: int = DEFAULT_MEMBERS,
    phase1_config: IQLConfig | None = None,
    device: str | torch.device = "cpu",
    options: OnlineOptions | None = None,
) -> IQL:
    """An IQL agent for online fine-tuning, started from a Phase I IQL `checkpoint.pt`.

    `phase1_config` is the config the checkpoint was trained with (None: DESIGN.md defaults).
    Loaded: observation normalizer, actor, value net, the actor's and value net's Adam states,
    and q1/q2 (and their targets) as critic members 0 and 1 (all N members when Phase I
    trained N). Members 2 .. N − 1 are freshly initialized, each with its target equal to
    itself. The actor's Adam keeps its moments, but its lr is reset from the decayed Phase I
    value to the online `actor_lr`.

    By default (the spec) the critic's Adam starts fresh for all members: its Phase I moments
    exist for two members only. `options.keep_critic_optimizer` keeps them for the loaded
    members (`ensemble.load_phase1_critic_optimizer` says how the fresh ones start).
    """
    state = read_phase1_agent_state(path, device)
    obs_dim, act_dim = phase1_dims(state)
    options = options or OnlineOptions()
    config = online_iql_config(phase1_config or IQLConfig(), n_ensemble, options)
    agent = IQL(obs_dim, act_dim, config, device)
    kept = ("normalizer", "actor", "value", "actor_opt", "value_opt")
    widen_from_phase1(agent, state, kept, options.keep_critic_optimizer)
    for group in agent.actor_opt.param_groups:
        group["lr"] = group["initial_lr"] = config.actor_lr
    return agent
