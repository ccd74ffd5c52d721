"""The behaviour policy's sampling in arithmetic every CPU computes to the same bits.

A replica is a chaotic system driven by its policy: a one-ulp difference in one action grows
into a different trajectory within about 50 HalfCheetah steps (`benchmarks/replica_determinism.py`).
torch's float32 matmul does not give the same bits everywhere: MKL picks its kernel (and so its
summation order) by CPU, and numpy's float64 matmul goes through BLAS with ISA-dependent
blocking; numpy's own `tanh`, `exp` and `log` also take AVX-512, AVX2 or baseline code paths
whose results differ in the last bit. So the sampling here uses only operations that IEEE-754
rounds exactly (elementwise +, ×, max, float casts) in a fixed order, and libm (Python's
`math`) for the few transcendental functions.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from hybrid_rl.algos.networks import LOG_STD_MAX, LOG_STD_MIN, TanhGaussianActor

_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
_LOG_2 = math.log(2.0)


def _libm(function: Callable[[float], float], values: np.ndarray) -> np.ndarray:
    """`function` applied to every element through Python's math module (the C library)."""
    flat = np.fromiter((function(v) for v in values.ravel().tolist()), np.float64, values.size)
    return flat.reshape(values.shape)


def _softplus(value: float) -> float:
    """log(1 + e^x), stable for large |x|."""
    return max(value, 0.0) + math.log1p(math.exp(-abs(value)))


def _linear(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """bias + x @ weight, summed over the inputs in ascending order: [B, in] -> [B, out].

    An explicit loop because every matmul (BLAS, einsum) may reorder the sum by CPU.
    """
    out = np.repeat(bias[None], x.shape[0], axis=0)
    for k in range(weight.shape[0]):
        out += x[:, k, None] * weight[k]
    return out


def _sum_last_axis(values: np.ndarray) -> np.ndarray:
    """Sum over the last axis left to right (numpy's reductions may use SIMD lanes)."""
    total = values[..., 0].copy()
    for k in range(1, values.shape[-1]):
        total += values[..., k]
    return total


class PortableActor:
    """A `TanhGaussianActor`'s stochastic actions, computed in float64 in a fixed order."""

    def __init__(self, layers: list[tuple[np.ndarray, np.ndarray]]) -> None:
        self.layers = layers  # (weight [in, out], bias [out]) per layer, float64

    @classmethod
    def from_actor(cls, actor: TanhGaussianActor) -> PortableActor:
        layers = [
            (
                layer.weight[0].detach().to("cpu").double().numpy().copy(),
                layer.bias[0, 0].detach().to("cpu").double().numpy().copy(),
            )
            for layer in actor.net.linears
        ]
        return cls(layers)

    @property
    def act_dim(self) -> int:
        return self.layers[-1][1].shape[0] // 2

    def mean_and_log_std(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """μ(s) and the clamped log σ(s), each [B, act_dim] float64."""
        x = np.asarray(obs, dtype=np.float64)
        for weight, bias in self.layers[:-1]:
            x = np.maximum(_linear(x, weight, bias), 0.0)
        out = _linear(x, *self.layers[-1])
        mean, log_std = out[:, : self.act_dim], out[:, self.act_dim :]
        return mean, np.clip(log_std, LOG_STD_MIN, LOG_STD_MAX)

    def sample(self, obs: np.ndarray, noise: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Actions tanh(μ + σ·ε) [B, act_dim] and their log-probabilities [B], both float64.

        `noise` is ε ~ N(0, 1) [B, act_dim], drawn by the caller from a seeded numpy Generator.
        """
        mean, log_std = self.mean_and_log_std(obs)
        pre_tanh = mean + _libm(math.exp, log_std) * noise
        # log N(u; μ, σ) at u = μ + σ·ε is −ε²/2 − log σ − log √(2π); the squash's
        # log-determinant log(1 − tanh(u)²) = 2·(log 2 − u − softplus(−2u)).
        log_normal = -0.5 * (noise * noise) - log_std - _LOG_SQRT_2PI
        log_det = 2.0 * (_LOG_2 - pre_tanh - _libm(_softplus, -2.0 * pre_tanh))
        return _libm(math.tanh, pre_tanh), _sum_last_axis(log_normal - log_det)
