"""The Phase II critic: an N-member Q ensemble whose spread measures epistemic uncertainty,
and the reading of a Phase I checkpoint into it.

It is a `QEnsemble` (members batched on the leading axis, one matmul for all of them) with the
same parameter names, so a Phase I twin-Q state dict is its 2-member special case.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from hybrid_rl.algos.networks import QEnsemble

MIN_MEMBERS, MAX_MEMBERS = 2, 10
DEFAULT_MEMBERS = 3
PHASE1_MEMBERS = 2  # Phase I's twin Q: q1 and q2


class EnsembleQNetwork(QEnsemble):
    """Q(s, a) of `members` critics; forward returns [members, B].

    `disagreement` is the unbiased (Bessel-corrected, divisor N − 1) standard deviation over
    members; every place that reports or uses disagreement uses this one definition.
    """

    def __init__(self, obs_dim: int, act_dim: int, members: int = DEFAULT_MEMBERS) -> None:
        if not MIN_MEMBERS <= members <= MAX_MEMBERS:
            raise ValueError(
                f"an ensemble critic needs {MIN_MEMBERS} to {MAX_MEMBERS} members, got "
                f"{members}; pick n_ensemble in that range (Phase II default {DEFAULT_MEMBERS})"
            )
        super().__init__(members, obs_dim, act_dim)

    def q_min(self, obs: Tensor, act: Tensor) -> Tensor:
        """min over members of Q(s, a): [B] (targets and the actor use it)."""
        return self(obs, act).min(0).values

    def disagreement(self, obs: Tensor, act: Tensor) -> Tensor:
        """Unbiased std over members of Q(s, a): [B], in the critic's reward units."""
        return self(obs, act).std(dim=0, correction=1)

    @torch.no_grad()
    def load_double_q(self, critic_state: Mapping[str, Tensor]) -> None:
        """Copy a Phase I twin-Q state dict (q1, q2) into members 0 and 1.

        Members 2 .. N − 1 keep their current (fresh) parameters.
        """
        own = self.state_dict()
        if set(critic_state) != set(own):
            raise ValueError(
                f"not a twin-Q critic state dict of this architecture: expected keys "
                f"{sorted(own)}, got {sorted(critic_state)}"
            )
        for name, source in critic_state.items():
            expected = (PHASE1_MEMBERS, *own[name].shape[1:])
            if tuple(source.shape) != expected:
                raise ValueError(
                    f"critic parameter {name!r} has shape {tuple(source.shape)}, expected "
                    f"{expected} (a {PHASE1_MEMBERS}-member critic with this ensemble's "
                    "observation and action sizes)"
                )
        params = dict(self.named_parameters())
        for name, source in critic_state.items():
            params[name][:PHASE1_MEMBERS].copy_(source)


def read_phase1_agent_state(
    path: str | os.PathLike[str], device: str | torch.device = "cpu"
) -> dict[str, Any]:
    """The `agent` entry of a Phase I `checkpoint.pt` (see `train.py`), on `device`."""
    checkpoint = torch.load(path, map_location=device, weights_only=False)
    if not isinstance(checkpoint, dict) or "agent" not in checkpoint:
        raise ValueError(f"{path} is not a Phase I checkpoint (no 'agent' entry)")
    agent_state: dict[str, Any] = checkpoint["agent"]
    return agent_state


def phase1_dims(agent_state: Mapping[str, Any]) -> tuple[int, int]:
    """(obs_dim, act_dim) of the agent whose state dict this is."""
    obs_dim = int(agent_state["normalizer"]["mean"].shape[0])
    critic_in = int(agent_state["critic"]["net.layers.0.weight"].shape[1])
    return obs_dim, critic_in - obs_dim


def load_phase1_critics(
    critic: EnsembleQNetwork, critic_target: EnsembleQNetwork, agent_state: Mapping[str, Any]
) -> None:
    """Members 0-1 of the critic and of its target from the Phase I q1/q2 and their targets.

    The fresh members of the target keep whatever they hold: build the target as a copy of
    the fresh critic first, so each new member starts with target = online weights.
    """
    critic.load_double_q(agent_state["critic"])
    critic_target.load_double_q(agent_state["critic_target"])
