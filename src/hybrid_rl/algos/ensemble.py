"""The Phase II critic: an N-member Q ensemble whose spread measures epistemic uncertainty,
and the reading of a Phase I checkpoint into it.

It is a `QEnsemble` (members batched on the leading axis, one matmul for all of them) with the
same parameter names, so a Phase I twin-Q state dict is its 2-member special case.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from hybrid_rl.algos.agent_state import load_parts
from hybrid_rl.algos.networks import QEnsemble, load_adam_state
from hybrid_rl.algos.reductions import Reduction

MIN_MEMBERS, MAX_MEMBERS = 2, 10
DEFAULT_MEMBERS = 3
PHASE1_MEMBERS = 2  # Phase I's twin Q: q1 and q2


class EnsembleQNetwork(QEnsemble):
    """Q(s, a) of `members` critics; forward returns [members, B].

    `disagreement` is the unbiased (Bessel-corrected, divisor N − 1) standard deviation over
    members; every place that reports or uses disagreement uses this one definition.
    `loaded_members`: members 0 .. loaded_members − 1 hold trained (Phase I) weights; all of
    them unless `load_double_q` loaded only the twin Q into a wider ensemble.
    """

    def __init__(self, obs_dim: int, act_dim: int, members: int = DEFAULT_MEMBERS) -> None:
        if not MIN_MEMBERS <= members <= MAX_MEMBERS:
            raise ValueError(
                f"an ensemble critic needs {MIN_MEMBERS} to {MAX_MEMBERS} members, got "
                f"{members}; pick n_ensemble in that range (Phase II default {DEFAULT_MEMBERS})"
            )
        super().__init__(members, obs_dim, act_dim)
        self.loaded_members = members

    def q_min(self, obs: Tensor, act: Tensor) -> Tensor:
        """min over members of Q(s, a): [B] (targets and the actor use it)."""
        return self(obs, act).min(0).values

    def reduce(self, obs: Tensor, act: Tensor, reduction: Reduction) -> Tensor:
        """Q(s, a) of all members reduced to [B] by `reduction` (see `algos.reductions`)."""
        return reduction(self(obs, act), self.loaded_members)

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
        self.loaded_members = PHASE1_MEMBERS


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


def phase1_critic_members(agent_state: Mapping[str, Any]) -> int:
    """How many critic members the Phase I agent trained (2: twin Q; N with `--n_critics`)."""
    return int(agent_state["critic"]["net.layers.0.weight"].shape[0])


def load_phase1_critics(
    critic: EnsembleQNetwork, critic_target: EnsembleQNetwork, agent_state: Mapping[str, Any]
) -> None:
    """The critic and its target from a Phase I checkpoint.

    A twin-Q checkpoint fills members 0-1 (`load_double_q`); the fresh members of the target
    keep whatever they hold, so build the target as a copy of the fresh critic first and each
    new member starts with target = online weights. A checkpoint whose critic has as many
    members as this one (Phase I trained with `--n_critics N`, as ENOTO pretrains all members)
    fills all of them.
    """
    trained = phase1_critic_members(agent_state)
    if trained == critic.members:
        critic.load_state_dict(agent_state["critic"])
        critic_target.load_state_dict(agent_state["critic_target"])
        critic.loaded_members = critic_target.loaded_members = trained
        return
    if trained != PHASE1_MEMBERS:
        raise ValueError(
            f"the Phase I critic has {trained} members; a {critic.members}-member ensemble "
            f"loads either {PHASE1_MEMBERS} (twin Q) or {critic.members}: rerun Phase I with "
            f"--n_critics {critic.members}, or fine-tune with --n_ensemble {trained}"
        )
    critic.load_double_q(agent_state["critic"])
    critic_target.load_double_q(agent_state["critic_target"])


@torch.no_grad()
def load_phase1_critic_optimizer(
    optimizer: torch.optim.Optimizer, critic: EnsembleQNetwork, agent_state: Mapping[str, Any]
) -> None:
    """The Phase I critic's Adam state, for the members loaded from Phase I.

    All members loaded: the saved state as is. Twin Q into N members: members 0-1 keep their
    first and second moments; each fresh member gets first moments 0 and, as second moments,
    the mean of the loaded members' (a scale for its gradients). All members share the
    parameter's step count (they are one tensor), Phase I's, at which Adam's bias correction
    is ≈ 1; so a fresh member's first steps are at most ≈ 3.2·lr (0.1·g / √(0.001·g²)) while
    its moments fill, where a fresh Adam's are ≈ lr. A Phase I critic that never stepped
    leaves the optimizer fresh.
    """
    saved = agent_state["critic_opt"]
    if not saved["state"]:
        return
    if phase1_critic_members(agent_state) == critic.members:
        load_adam_state(optimizer, saved)
        return
    state: dict[int, dict[str, Tensor]] = {}
    for index, param in enumerate(critic.parameters()):
        old = saved["state"][index]
        first = torch.zeros_like(param)
        first[:PHASE1_MEMBERS] = old["exp_avg"]
        second = old["exp_avg_sq"].mean(0, keepdim=True).expand_as(param).clone()
        second[:PHASE1_MEMBERS] = old["exp_avg_sq"]
        state[index] = {"step": old["step"].clone(), "exp_avg": first, "exp_avg_sq": second}
    load_adam_state(optimizer, {"state": state, "param_groups": saved["param_groups"]})


def widen_from_phase1(
    agent: Any, state: Mapping[str, Any], kept: Sequence[str], keep_critic_optimizer: bool
) -> None:
    """Load a Phase I agent `state` into a Phase II `agent` (with `stateful_parts`, `critic`,
    `critic_target`, `critic_opt`): the `kept` parts as they were saved, the checkpoint's
    critic members and targets as the first members of the wider critic, and with
    `keep_critic_optimizer` their Adam moments too (`load_phase1_critic_optimizer`)."""
    parts = agent.stateful_parts()
    load_parts({name: parts[name] for name in kept}, state)
    load_phase1_critics(agent.critic, agent.critic_target, state)
    if keep_critic_optimizer:
        load_phase1_critic_optimizer(agent.critic_opt, agent.critic, state)
