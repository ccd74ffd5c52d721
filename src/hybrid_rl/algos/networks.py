"""Network blocks shared by every algorithm.

Linear layers carry a leading member axis, so twin Q (2 members), a Phase II ensemble
(N members) or a single network (1 member) are all evaluated with one batched matmul.
"""

from __future__ import annotations

import itertools
import math
import os
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Generic, ParamSpec, TypeVar, cast

import numpy as np
import torch
from torch import Tensor, nn
from torch.distributions import Normal

HIDDEN_SIZES = (256, 256)
LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0


class BatchedLinear(nn.Module):
    """`members` independent linear layers: [M, B, in] -> [M, B, out] with one baddbmm."""

    def __init__(self, members: int, in_features: int, out_features: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(members, in_features, out_features))
        self.bias = nn.Parameter(torch.empty(members, 1, out_features))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # Same distribution as torch.nn.Linear's default, drawn per member.
        bound = 1.0 / math.sqrt(self.weight.shape[1])
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: Tensor) -> Tensor:
        if torch.compiler.is_compiling():
            # Under torch.compile a plain product plus bias lets the bias add fuse with the
            # next ReLU (+2 to +6% IQL steps/s); eagerly, baddbmm does both in one call.
            return torch.bmm(x, self.weight) + self.bias
        return torch.baddbmm(self.bias, x, self.weight)


class EnsembleMLP(nn.Module):
    """`members` MLPs with ReLU hidden layers, evaluated together.

    Input [B, in] is shared by all members; input [M, B, in] gives each member its own rows.
    Output is [M, B, out].
    """

    def __init__(
        self,
        members: int,
        in_dim: int,
        out_dim: int,
        hidden_sizes: Sequence[int] = HIDDEN_SIZES,
    ) -> None:
        super().__init__()
        self.members = members
        self.sizes = (in_dim, *hidden_sizes, out_dim)
        self.layers = nn.ModuleList(
            BatchedLinear(members, a, b) for a, b in itertools.pairwise(self.sizes)
        )

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 2 and self.members == 1:
            return self._single_forward(x).unsqueeze(0)
        if x.dim() == 2:
            x = x.unsqueeze(0).expand(self.members, -1, -1)
        for layer in self.layers[:-1]:
            # In place: baddbmm's backward needs only its inputs, so its output can be reused,
            # which saves one [M, B, hidden] allocation per layer.
            x = torch.relu_(layer(x))
        return self.layers[-1](x)

    def _single_forward(self, x: Tensor) -> Tensor:
        """One network on rows [B, in]: 2-D products, half the calls of the batched path.

        Actors and V networks take this path; at the batch of 10 rows of an evaluation step
        their forward is mostly per-call overhead.
        """
        for layer in self.linears[:-1]:
            x = torch.relu_(torch.addmm(layer.bias[0], x, layer.weight[0]))
        last = self.linears[-1]
        return torch.addmm(last.bias[0], x, last.weight[0])

    @property
    def linears(self) -> list[BatchedLinear]:
        return [cast(BatchedLinear, layer) for layer in self.layers]


class ObservationNormalizer(nn.Module):
    """(obs − mean) / std with the statistics stored as buffers, so they travel in checkpoints."""

    mean: Tensor
    std: Tensor

    def __init__(self, obs_dim: int, eps: float = 1e-3) -> None:
        super().__init__()
        self.eps = eps
        self.register_buffer("mean", torch.zeros(obs_dim))
        self.register_buffer("std", torch.ones(obs_dim))

    def set_statistics(self, mean: Tensor | np.ndarray, std: Tensor | np.ndarray) -> None:
        """Dataset mean and std [obs_dim] (tensors or arrays, on any device)."""
        for buffer, values in ((self.mean, mean), (self.std, std)):
            values = torch.as_tensor(values, dtype=buffer.dtype, device=buffer.device)
            if values.shape != buffer.shape:
                raise ValueError(
                    f"observation statistics must have shape {tuple(buffer.shape)}, "
                    f"got {tuple(values.shape)}"
                )
            buffer.copy_(values)

    def forward(self, obs: Tensor) -> Tensor:
        return (obs - self.mean) / (self.std + self.eps)


class QEnsemble(nn.Module):
    """Q(s, a) for `members` critics at once: returns [M, B]."""

    def __init__(self, members: int, obs_dim: int, act_dim: int) -> None:
        super().__init__()
        self.net = EnsembleMLP(members, obs_dim + act_dim, 1)

    @property
    def members(self) -> int:
        return self.net.members

    def forward(self, obs: Tensor, act: Tensor) -> Tensor:
        return self.net(torch.cat([obs, act], dim=-1)).squeeze(-1)


class ValueNetwork(nn.Module):
    """V(s): returns [B]."""

    def __init__(self, obs_dim: int) -> None:
        super().__init__()
        self.net = EnsembleMLP(1, obs_dim, 1)

    def forward(self, obs: Tensor) -> Tensor:
        return self.net(obs)[0, :, 0]


_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


def _tanh_log_det(pre_tanh: Tensor) -> Tensor:
    """log(1 − tanh(u)²) = 2·(log 2 − u − softplus(−2u)), stable for large |u|."""
    return 2.0 * (math.log(2.0) - pre_tanh - nn.functional.softplus(-2.0 * pre_tanh))


def gaussian_log_prob(mean: Tensor, log_std: Tensor, value: Tensor) -> Tensor:
    """log N(value; mean, exp(log_std)²) summed over the last (action) axis.

    The closed form of `Normal.log_prob(value).sum(-1)`, without building a distribution
    object (whose argument checks cost more than the arithmetic at batch 256 on CPU).
    """
    z = (value - mean) * torch.exp(-log_std)
    return (-0.5 * z.pow(2) - log_std - _LOG_SQRT_2PI).sum(-1)


def tanh_gaussian_log_prob(normal: Normal, pre_tanh: Tensor) -> Tensor:
    """log π(tanh(u)) summed over action dims, with the tanh change-of-variables term.

    Uses log(1 − tanh(u)²) = 2·(log 2 − u − softplus(−2u)), stable for large |u|.
    """
    return (normal.log_prob(pre_tanh) - _tanh_log_det(pre_tanh)).sum(-1)


class TanhGaussianActor(nn.Module):
    """SAC/CQL policy: a = tanh(u), u ~ N(μ(s), σ(s)); deterministic action tanh(μ(s))."""

    def __init__(self, obs_dim: int, act_dim: int) -> None:
        super().__init__()
        self.net = EnsembleMLP(1, obs_dim, 2 * act_dim)

    def mean_and_log_std(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        """μ(s) and the clamped log σ(s), each [B, act_dim]."""
        mean, log_std = self.net(obs)[0].chunk(2, dim=-1)
        return mean, log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)

    def distribution(self, obs: Tensor) -> Normal:
        mean, log_std = self.mean_and_log_std(obs)
        return Normal(mean, log_std.exp(), validate_args=False)

    def sample(self, obs: Tensor, sample_shape: tuple[int, ...] = ()) -> tuple[Tensor, Tensor]:
        """Reparameterized actions [*sample_shape, B, act_dim] in (−1, 1) and log-probs.

        The log-probabilities [*sample_shape, B] are those of the tanh-squashed Gaussian.
        Draws the same standard normal noise as `distribution(obs).rsample(sample_shape)`.
        """
        mean, log_std = self.mean_and_log_std(obs)
        noise = torch.randn((*sample_shape, *mean.shape), dtype=mean.dtype, device=mean.device)
        pre_tanh = mean + log_std.exp() * noise
        # log N(u; μ, σ) at u = μ + σ·ε is −ε²/2 − log σ − log √(2π): no division needed.
        log_normal = -0.5 * noise.pow(2) - log_std - _LOG_SQRT_2PI
        return torch.tanh(pre_tanh), (log_normal - _tanh_log_det(pre_tanh)).sum(-1)

    def deterministic(self, obs: Tensor) -> Tensor:
        return torch.tanh(self.net(obs)[0].chunk(2, dim=-1)[0])


class GaussianActor(nn.Module):
    """IQL policy: a ~ N(tanh(μ(s)), σ) with a state-independent log σ; deterministic tanh(μ(s))."""

    def __init__(self, obs_dim: int, act_dim: int) -> None:
        super().__init__()
        self.net = EnsembleMLP(1, obs_dim, act_dim)
        self.log_std = nn.Parameter(torch.zeros(act_dim))

    def mean_action(self, obs: Tensor) -> Tensor:
        """The Gaussian's mean tanh(μ(s)) [B, act_dim]."""
        return torch.tanh(self.net(obs)[0])

    def clamped_log_std(self) -> Tensor:
        return self.log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)

    def distribution(self, obs: Tensor) -> Normal:
        mean = self.mean_action(obs)
        std = self.clamped_log_std().exp()
        return Normal(mean, std.expand_as(mean), validate_args=False)

    def log_prob(self, obs: Tensor, act: Tensor) -> Tensor:
        """log π(a|s) [B], summed over action dims."""
        return gaussian_log_prob(self.mean_action(obs), self.clamped_log_std(), act)

    def sample(self, obs: Tensor) -> Tensor:
        return self.distribution(obs).sample().clamp(-1.0, 1.0)

    def deterministic(self, obs: Tensor) -> Tensor:
        return self.mean_action(obs)


# Device types whose torch build ships a fused Adam kernel (torch 2.13: these and a few more).
_FUSED_ADAM_DEVICES = frozenset({"cpu", "cuda", "mps", "xpu"})


def make_adam(params: Iterable[Tensor], lr: float) -> torch.optim.Adam:
    """Adam with the fused kernel where the parameters' device has one, else the foreach one.

    Same update rule either way; fused is one kernel per step instead of several per parameter
    (about 2× faster for a twin-Q critic on CPU at these sizes).
    """
    params = list(params)
    if all(p.device.type in _FUSED_ADAM_DEVICES for p in params):
        return torch.optim.Adam(params, lr=lr, fused=True)
    return torch.optim.Adam(params, lr=lr, foreach=True)


def load_adam_state(optimizer: torch.optim.Optimizer, state: Mapping[str, Any]) -> None:
    """`optimizer.load_state_dict(state)` that keeps the optimizer's own kernel choice.

    A state dict carries the fused/foreach flags of the process that saved it; without this,
    a checkpoint from an older version or another device would switch the kernel on resume.
    """
    # Set before loading, so the step counters are placed for the kernel this optimizer uses.
    saved_groups = [
        {**saved, "fused": own["fused"], "foreach": own["foreach"]}
        for saved, own in zip(state["param_groups"], optimizer.param_groups, strict=False)
    ]
    optimizer.load_state_dict({**state, "param_groups": saved_groups})


COMPILE_ENV_VAR = "HYBRID_RL_COMPILE"

_P = ParamSpec("_P")
_R = TypeVar("_R")


class MaybeCompiled(Generic[_P, _R]):
    """`fn`, run through `torch.compile` when `enabled`, or when HYBRID_RL_COMPILE says so.

    The environment variable overrides `enabled` in both directions: "1" compiles, "0" does
    not. Compiling takes seconds to tens of seconds once per process and input shape, and pays
    off for long runs of an update dominated by small operations (IQL: +20 to +25% steps/s on
    CPU). If compiling or running the compiled code fails (no C++ compiler, an unsupported torch
    build...), one warning is issued and `fn` runs eagerly from then on: same results, only
    slower. `compile_seconds` is the wall time of the first compiled call (0 if eager).
    """

    def __init__(self, fn: Callable[_P, _R], enabled: bool = False) -> None:
        self.fn = fn
        self.compiled: Callable[_P, _R] | None = None
        self.compile_seconds = 0.0
        if os.environ.get(COMPILE_ENV_VAR, "1" if enabled else "0") == "1":
            self.compiled = cast(Callable[_P, _R], torch.compile(fn))
        self._first_call = True

    def __call__(self, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        if self.compiled is None:
            return self.fn(*args, **kwargs)
        start = time.perf_counter()
        try:
            result = self.compiled(*args, **kwargs)
        except Exception as error:  # any failure of the compiler stack: run eagerly instead
            warnings.warn(
                f"torch.compile of {getattr(self.fn, '__qualname__', self.fn)} failed "
                f"({type(error).__name__}: {error}); running eagerly. Set "
                f"{COMPILE_ENV_VAR}=0 to skip compiling.",
                RuntimeWarning,
                stacklevel=2,
            )
            self.compiled = None
            return self.fn(*args, **kwargs)
        if self._first_call:
            self.compile_seconds, self._first_call = time.perf_counter() - start, False
        return result


def soft_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    """target ← (1 − τ)·target + τ·source, for all parameters at once."""
    with torch.no_grad():
        torch._foreach_lerp_(list(target.parameters()), list(source.parameters()), tau)
