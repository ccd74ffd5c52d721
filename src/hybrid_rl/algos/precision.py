"""The dtype of a critic's matrix products: fp32, or bf16 where the hardware does it natively.

bf16 products (8-bit mantissa, fp32 accumulation inside each product) run 2-3× faster than
fp32 ones on CPUs with AVX512-BF16 or AMX and on GPUs since Ampere. Elsewhere bf16 is
emulated and slower than fp32, so a bf16 request falls back to fp32 there, with one warning
line per process. Master weights, optimizer state, losses and gradient sums stay fp32.
"""

from __future__ import annotations

import functools
import warnings
from pathlib import Path
from typing import Literal

import torch

Precision = Literal["fp32", "bf16"]
PRECISIONS: tuple[Precision, ...] = ("fp32", "bf16")
# CPU flags (as /proc/cpuinfo spells them) of native bf16 matrix products.
CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def check_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")


@functools.cache
def cpu_flags() -> str:
    """This CPU's feature flags, space-separated, from /proc/cpuinfo ('' where there is none,
    e.g. macOS or Windows)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""
    for line in text.splitlines():
        if line.startswith("flags"):
            return line.partition(":")[2].strip()
    return ""


def missing_bf16(device: torch.device, flags: str | None = None) -> str | None:
    """Why `device` cannot do bf16 matrix products natively, or None if it can.

    `flags`: the CPU's flags (None: this machine's, `cpu_flags()`).
    """
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported(including_emulation=False):
            return None
        return f"{torch.cuda.get_device_name(device)} has no native bf16"
    if device.type != "cpu":
        return f"bf16 on {device.type} devices is not supported here"
    present = set((cpu_flags() if flags is None else flags).split())
    if present.intersection(CPU_BF16_FLAGS):
        return None
    return f"this CPU lacks {' and '.join(CPU_BF16_FLAGS)}"


def matmul_dtype(precision: str, device: torch.device, flags: str | None = None) -> torch.dtype:
    """The dtype of the critic's matrix products for `precision` on `device`: bf16 only when
    asked for and native there; otherwise fp32, saying why once per process."""
    check_precision(precision)
    if precision == "fp32":
        return torch.float32
    reason = missing_bf16(device, flags)
    if reason is None:
        return torch.bfloat16
    _warn_once(f"precision bf16 asked for, but {reason}: using fp32")
    return torch.float32


@functools.cache
def _warn_once(message: str) -> None:
    warnings.warn(message, RuntimeWarning, stacklevel=3)
