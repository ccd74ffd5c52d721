"""Several seeds of one algorithm trained in lockstep, as one agent.

Each seed's agent is built exactly as a separate run builds it (same seed, same draws). Their
parameters, buffers and optimizer moments are then stacked on a new leading seed axis inside a
host agent of the same class, whose own `update` runs unchanged: the methods through which it
reads its networks (the class's `SEED_STACKED_METHODS`, each returning `(losses..., metrics)`)
are replaced on the host by versions `torch.func.vmap`ped over the seed axis (a member-batched
layer then multiplies all seeds' members in one `bmm`), with each loss summed over seeds.

Why that equals separate runs: the seeds share no parameter, so the summed loss gives every
seed's parameters the gradient of that seed's own loss; Adam is elementwise and no update of
these algorithms clips or normalizes gradients over all parameters, so one optimizer step over
the stacked parameters is each seed's own step; soft target updates are elementwise too. The
one random draw inside an update (`standard_normal`, TD3+BC's smoothing noise) comes from one
generator per seed, continuing the global stream a separate run would draw from; vmap's
default `randomness="error"` refuses any draw hidden inside the stacked methods.

A seed's checkpoint is its slice of the host's state: the same format as a separate run's.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call, vmap

from hybrid_rl.batch import TransitionBatch


def stackable(agent_class: object) -> bool:
    """Whether agents of `agent_class` can be trained as a seed stack."""
    return hasattr(agent_class, "SEED_STACKED_METHODS")


class _Networks(nn.Module):
    """The host's modules under one root, so that `functional_call` can swap one seed's
    tensors in for the stacked ones; `forward(name, *args)` runs the host's method `name`."""

    def __init__(self, host: Any, modules: Mapping[str, nn.Module]) -> None:
        super().__init__()
        self.parts = nn.ModuleDict(modules)
        self._host = (host,)  # in a tuple: the agent is not a module to register

    def forward(self, name: str, *args: Any) -> Any:
        host = self._host[0]
        return getattr(type(host), name)(host, *args)


class SeedStack:
    """`agents` (one per seed, freshly built, of one class) trained as one through `host`
    (another instance of that class, whose networks and optimizers become the stacked ones).

    `generators[i]` continues seed i's global torch stream from where its agent was built.
    """

    def __init__(
        self, agents: Sequence[Any], host: Any, generators: Sequence[torch.Generator]
    ) -> None:
        if not stackable(type(host)) or any(type(a) is not type(host) for a in agents):
            raise TypeError(
                f"a seed stack needs agents of one class with SEED_STACKED_METHODS, got "
                f"{sorted({type(a).__name__ for a in (host, *agents)})}"
            )
        self.agents, self.host, self.generators = list(agents), host, list(generators)
        self.size = len(self.agents)
        host_parts = host.stateful_parts()
        self._modules = {n: p for n, p in host_parts.items() if isinstance(p, nn.Module)}
        self._optimizers = [p for p in host_parts.values() if isinstance(p, torch.optim.Optimizer)]
        stacked_of: dict[int, nn.Parameter] = {}
        for name, module in self._modules.items():
            seeds = [agent.stateful_parts()[name] for agent in self.agents]
            stacked_of |= _stack_into(module, seeds)
        for optimizer in self._optimizers:  # still without state: nothing else to move
            for group in optimizer.param_groups:
                group["params"] = [stacked_of[id(p)] for p in group["params"]]
        self._networks = _Networks(host, self._modules)
        for name in type(host).SEED_STACKED_METHODS:
            setattr(host, name, self._stacked_method(name))
        host.standard_normal = self._standard_normal

    def update(self, batches: Sequence[TransitionBatch]) -> list[dict[str, Tensor]]:
        """One update of every seed, seed i on `batches[i]`; each seed's metrics."""
        batch = TransitionBatch(*(torch.stack(column) for column in zip(*batches, strict=True)))
        metrics = self.host.update(batch)
        return [{key: value[i] for key, value in metrics.items()} for i in range(self.size)]

    def seed_agent(self, index: int) -> Any:
        """Seed `index`'s agent holding the stack's current networks (its optimizers are not
        kept up to date), e.g. to evaluate it."""
        agent_parts = self.agents[index].stateful_parts()
        for name, module in self._modules.items():
            state = {key: value[index] for key, value in module.state_dict().items()}
            agent_parts[name].load_state_dict(state)
        return self.agents[index]

    def state_dict(self, index: int) -> dict[str, Any]:
        """Seed `index`'s agent state, as its own agent's `state_dict` would give it: a copy
        (slices are cloned: torch.save of a view would write every seed's storage)."""
        state = self.host.state_dict()
        for name, part in self.host.stateful_parts().items():
            if isinstance(part, nn.Module):
                state[name] = {key: value[index].clone() for key, value in state[name].items()}
            elif isinstance(part, torch.optim.Optimizer):
                state[name] = _map_moments(state[name], lambda p, key, t: t[index].clone())
        # The rest (step counts, schedulers) refers to the live state: copy it too.
        return copy.deepcopy(state)

    def load_state_dicts(self, states: Sequence[Mapping[str, Any]]) -> None:
        """Continue from the seeds' agent states (one per seed, saved at the same step)."""
        stacked = dict(states[0])  # shared parts (schedulers, counters): seed 0's
        for name, part in self.host.stateful_parts().items():
            if isinstance(part, nn.Module):
                stacked[name] = {
                    key: torch.stack([state[name][key] for state in states])
                    for key in states[0][name]
                }
            elif isinstance(part, torch.optim.Optimizer):
                stacked[name] = _map_moments(states[0][name], _stacked_moment(states, name))
        self.host.load_state_dict(stacked)

    def _stacked_method(self, name: str) -> Callable[..., Any]:
        def one_seed(params: dict[str, Tensor], buffers: dict[str, Tensor], *args: Any) -> Any:
            args = tuple(TransitionBatch(*a) if isinstance(a, list) else a for a in args)
            return functional_call(self._networks, (params, buffers), (name, *args))

        all_seeds = vmap(one_seed)

        def stacked(*args: Any) -> Any:
            # vmap cannot flatten a TransitionBatch (its len() is its row count): pass a list.
            args = tuple(list(a) if isinstance(a, TransitionBatch) else a for a in args)
            params: dict[str, Tensor] = dict(self._networks.named_parameters())
            buffers = dict(self._networks.named_buffers())
            *losses, metrics = all_seeds(params, buffers, *args)
            return (*(loss.sum() for loss in losses), metrics)

        return stacked

    def _standard_normal(self, like: Tensor) -> Tensor:
        return torch.stack(
            [
                torch.randn(like.shape[1:], generator=g, dtype=like.dtype, device=like.device)
                for g in self.generators
            ]
        )


def _stack_into(module: nn.Module, seeds: Sequence[nn.Module]) -> dict[int, nn.Parameter]:
    """Replace every parameter and buffer of `module` by the seeds' values stacked on a new
    leading axis; {id of the replaced parameter: its stacked replacement}."""
    replaced: dict[int, nn.Parameter] = {}
    seed_states = [seed.state_dict() for seed in seeds]
    for owner_name, owner in list(module.named_modules()):
        prefix = f"{owner_name}." if owner_name else ""
        for key, old in list(owner._parameters.items()):
            if old is None:
                continue
            values = torch.stack([state[prefix + key] for state in seed_states])
            new = nn.Parameter(values.clone(), requires_grad=old.requires_grad)
            owner._parameters[key] = new
            replaced[id(old)] = new
        for key, buffer in list(owner._buffers.items()):
            if buffer is not None:
                owner._buffers[key] = torch.stack([state[prefix + key] for state in seed_states])
    return replaced


def _map_moments(
    state: Mapping[str, Any], moment: Callable[[Any, str, Tensor], Tensor]
) -> dict[str, Any]:
    """An optimizer state dict with each per-parameter moment (a tensor of its parameter's
    shape) replaced by `moment(parameter index, name, tensor)`; step counts (0-d tensors) are
    the same for every seed and kept."""
    return {
        **state,
        "state": {
            param: {
                key: moment(param, key, value)
                if isinstance(value, Tensor) and value.dim() > 0
                else value
                for key, value in values.items()
            }
            for param, values in state["state"].items()
        },
    }


def _stacked_moment(
    states: Sequence[Mapping[str, Any]], optimizer: str
) -> Callable[[Any, str, Tensor], Tensor]:
    """The seeds' moments of one parameter of optimizer part `optimizer`, stacked."""
    seeds = [state[optimizer]["state"] for state in states]
    return lambda param, key, _: torch.stack([seed[param][key] for seed in seeds])
