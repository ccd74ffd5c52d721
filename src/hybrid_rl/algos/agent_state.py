"""One checkpoint format for every agent: a mapping of named parts (modules, optimizers,
learning-rate schedulers, plain tensors) to their saved states."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from hybrid_rl.algos.networks import load_adam_state

StatefulPart = nn.Module | torch.optim.Optimizer | torch.optim.lr_scheduler.LRScheduler | Tensor


def save_parts(parts: Mapping[str, StatefulPart]) -> dict[str, Any]:
    """{name: state} for every part; tensors (e.g. a log-temperature) are copied."""
    return {
        name: part.detach().clone() if isinstance(part, Tensor) else part.state_dict()
        for name, part in parts.items()
    }


def load_parts(parts: Mapping[str, StatefulPart], state: Mapping[str, Any]) -> None:
    """Restore every part from `state`; a missing part is a KeyError naming it."""
    missing = sorted(set(parts) - set(state))
    if missing:
        raise KeyError(f"checkpoint lacks {', '.join(missing)}; it holds {', '.join(state)}")
    for name, part in parts.items():
        if isinstance(part, Tensor):
            with torch.no_grad():
                part.copy_(state[name])
        elif isinstance(part, torch.optim.Optimizer):
            load_adam_state(part, state[name])
        else:
            part.load_state_dict(state[name])
