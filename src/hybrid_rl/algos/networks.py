"""Network blocks shared by every algorithm.

Linear layers carry a leading member axis, so twin Q (2 members), a Phase II ensemble
(N members) or a single network (1 member) are all evaluated with one batched matmul.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

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
        sizes = [in_dim, *hidden_sizes, out_dim]
        self.layers = nn.ModuleList(
            BatchedLinear(members, a, b) for a, b in itertools.pairwise(sizes)
        )

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 2:
            x = x.unsqueeze(0).expand(self.members, -1, -1)
        for layer in self.layers[:-1]:
            x = torch.relu(layer(x))
        return self.layers[-1](x)


class ObservationNormalizer(nn.Module):
    """(obs − mean) / std with the statistics stored as buffers, so they travel in checkpoints."""

    mean: Tensor
    std: Tensor

    def __init__(self, obs_dim: int, eps: float = 1e-3) -> None:
        super().__init__()
        self.eps = eps
        self.register_buffer("mean", torch.zeros(obs_dim))
        self.register_buffer("std", torch.ones(obs_dim))

    def set_statistics(self, mean: Tensor, std: Tensor) -> None:
        self.mean.copy_(mean)
        self.std.copy_(std)

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


def tanh_gaussian_log_prob(normal: Normal, pre_tanh: Tensor) -> Tensor:
    """log π(tanh(u)) summed over action dims, with the tanh change-of-variables term.

    Uses log(1 − tanh(u)²) = 2·(log 2 − u − softplus(−2u)), stable for large |u|.
    """
    correction = 2.0 * (math.log(2.0) - pre_tanh - nn.functional.softplus(-2.0 * pre_tanh))
    return (normal.log_prob(pre_tanh) - correction).sum(-1)


class TanhGaussianActor(nn.Module):
    """SAC/CQL policy: a = tanh(u), u ~ N(μ(s), σ(s)); deterministic action tanh(μ(s))."""

    def __init__(self, obs_dim: int, act_dim: int) -> None:
        super().__init__()
        self.net = EnsembleMLP(1, obs_dim, 2 * act_dim)

    def distribution(self, obs: Tensor) -> Normal:
        mean, log_std = self.net(obs)[0].chunk(2, dim=-1)
        log_std = log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)
        return Normal(mean, log_std.exp())

    def sample(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        """Reparameterized action in (−1, 1) and its log-probability [B]."""
        normal = self.distribution(obs)
        pre_tanh = normal.rsample()
        return torch.tanh(pre_tanh), tanh_gaussian_log_prob(normal, pre_tanh)

    def deterministic(self, obs: Tensor) -> Tensor:
        return torch.tanh(self.net(obs)[0].chunk(2, dim=-1)[0])


class GaussianActor(nn.Module):
    """IQL policy: a ~ N(tanh(μ(s)), σ) with a state-independent log σ; deterministic tanh(μ(s))."""

    def __init__(self, obs_dim: int, act_dim: int) -> None:
        super().__init__()
        self.net = EnsembleMLP(1, obs_dim, act_dim)
        self.log_std = nn.Parameter(torch.zeros(act_dim))

    def distribution(self, obs: Tensor) -> Normal:
        mean = torch.tanh(self.net(obs)[0])
        std = self.log_std.clamp(LOG_STD_MIN, LOG_STD_MAX).exp()
        return Normal(mean, std.expand_as(mean))

    def log_prob(self, obs: Tensor, act: Tensor) -> Tensor:
        return self.distribution(obs).log_prob(act).sum(-1)

    def sample(self, obs: Tensor) -> Tensor:
        return self.distribution(obs).sample().clamp(-1.0, 1.0)

    def deterministic(self, obs: Tensor) -> Tensor:
        return torch.tanh(self.net(obs)[0])


def soft_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    """target ← (1 − τ)·target + τ·source, for all parameters at once."""
    with torch.no_grad():
        torch._foreach_lerp_(list(target.parameters()), list(source.parameters()), tau)
