"""d3rlpy for the benchmark scripts: its virtualenv, and its IQL / CQL configs at our defaults.

d3rlpy is never a dependency of hybrid-rl: it lives in a virtualenv of its own (created on first
use under benchmarks/.d3rlpy-venv, gitignored), and the scripts run their d3rlpy side in a
worker process of that environment's Python. This module imports only the standard library at
the top, so both environments can import it; `d3rlpy_algo_config` imports d3rlpy when called.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path
from typing import Any

D3RLPY_VERSION = "2.8.1"
DEFAULT_VENV = Path(__file__).parent / ".d3rlpy-venv"
BATCH = 256
HIDDEN = (256, 256)
IQL_RETURN_RANGE_TARGET = 1000.0  # as hybrid_rl.data.dataset.IQL_RETURN_RANGE_TARGET
OBSERVATION_EPS = 1e-3  # ObservationNormalizer's and StandardObservationScaler's eps


def add_d3rlpy_arguments(parser: argparse.ArgumentParser) -> None:
    """--d3rlpy-venv and --d3rlpy-python: where the d3rlpy side runs (see `d3rlpy_python`)."""
    parser.add_argument(
        "--d3rlpy-venv",
        type=Path,
        default=DEFAULT_VENV,
        help="virtualenv for d3rlpy, created if missing",
    )
    parser.add_argument(
        "--d3rlpy-python",
        type=Path,
        default=None,
        help="Python of an existing environment with d3rlpy installed",
    )


def d3rlpy_python(args: argparse.Namespace, torch_version: str) -> Path:
    """The Python given by --d3rlpy-python, else that of --d3rlpy-venv (created if missing)."""
    python: Path = args.d3rlpy_python or ensure_d3rlpy_venv(args.d3rlpy_venv, torch_version)
    return python


def ensure_d3rlpy_venv(venv: Path, torch_version: str) -> Path:
    """Python of a virtualenv with d3rlpy 2.8.1 and our torch version, created if missing."""
    python = venv / "bin" / "python"
    if python.exists():
        return python
    print(f"creating {venv} with d3rlpy=={D3RLPY_VERSION}, torch=={torch_version} ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    # Pinning our torch keeps both sides on the same kernels (and lets pip take a local CPU
    # wheel where one is provided instead of a multi-GB CUDA build).
    subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "-q",
            f"d3rlpy=={D3RLPY_VERSION}",
            f"torch=={torch_version}",
        ],
        check=True,
    )
    return python


def d3rlpy_algo_config(
    algo: str,
    *,
    observation_scaler: Any = None,
    reward_scaler: Any = None,
    actor_lr_cosine_steps: int | None = None,
) -> Any:
    """d3rlpy 2.8.1's `IQLConfig` / `CQLConfig` at the defaults of `hybrid_rl.algos.{iql,cql}`.

    Both: batch 256, [256, 256] ReLU MLPs, γ 0.99, τ 0.005, twin critics, Adam.
    - IQL: lr 3e-4 for actor, critics and V (d3rlpy steps Q and V with one Adam at the critic
      lr), expectile 0.7, β 3, weights clipped at 100. `actor_lr_cosine_steps`: the actor lr
      follows a cosine to 0 over that many updates (ours: `actor_lr_cosine_decay` over
      `max_steps`); None keeps it constant.
    - CQL: actor 1e-4, critic 3e-4, entropy temperature from 1.0 at lr 1e-4, conservative
      weight 5 held fixed (alpha lr 0: 5 · exp(log α = 0)), 10 sampled actions per source, no
      entropy term in the backup (soft_q_backup False).
    The scalers are passed through (None: none); the caller builds them, fitted or not.
    """
    import d3rlpy
    from d3rlpy.models import MeanQFunctionFactory, VectorEncoderFactory
    from d3rlpy.optimizers import AdamFactory, CosineAnnealingLRFactory

    def encoder() -> Any:
        return VectorEncoderFactory(hidden_units=list(HIDDEN), activation="relu")

    common: dict[str, Any] = {
        "batch_size": BATCH,
        "gamma": 0.99,
        "tau": 0.005,
        "n_critics": 2,
        "observation_scaler": observation_scaler,
        "reward_scaler": reward_scaler,
        "actor_encoder_factory": encoder(),
        "critic_encoder_factory": encoder(),
    }
    if algo == "iql":
        schedule = (
            CosineAnnealingLRFactory(T_max=actor_lr_cosine_steps)
            if actor_lr_cosine_steps is not None
            else None
        )
        return d3rlpy.algos.IQLConfig(
            actor_learning_rate=3e-4,
            critic_learning_rate=3e-4,
            actor_optim_factory=AdamFactory(lr_scheduler_factory=schedule),
            critic_optim_factory=AdamFactory(),
            value_encoder_factory=encoder(),
            expectile=0.7,
            weight_temp=3.0,
            max_weight=100.0,
            **common,
        )
    if algo == "cql":
        return d3rlpy.algos.CQLConfig(
            actor_learning_rate=1e-4,
            critic_learning_rate=3e-4,
            temp_learning_rate=1e-4,
            alpha_learning_rate=0.0,
            initial_alpha=1.0,
            initial_temperature=1.0,
            conservative_weight=5.0,
            n_action_samples=10,
            soft_q_backup=False,
            max_q_backup=False,
            q_func_factory=MeanQFunctionFactory(),
            **common,
        )
    raise ValueError(f"no d3rlpy config for {algo!r}; expected 'iql' or 'cql'")


def d3rlpy_training_config(
    algo: str,
    *,
    observation_mean: Any,
    observation_std: Any,
    return_min: float,
    return_max: float,
    steps: int,
) -> Any:
    """`d3rlpy_algo_config` with the preprocessing our training applies to its data.

    Observations standardized with the given (not fitted) statistics and our eps; IQL rewards
    multiplied by 1000 / (return_max − return_min) and its actor lr on a cosine over `steps`;
    CQL rewards unscaled.
    """
    from d3rlpy.preprocessing import ReturnBasedRewardScaler, StandardObservationScaler

    reward_scaler = None
    if algo == "iql":
        reward_scaler = ReturnBasedRewardScaler(
            return_max=return_max, return_min=return_min, multiplier=IQL_RETURN_RANGE_TARGET
        )
    return d3rlpy_algo_config(
        algo,
        observation_scaler=StandardObservationScaler(
            mean=observation_mean, std=observation_std, eps=OBSERVATION_EPS
        ),
        reward_scaler=reward_scaler,
        actor_lr_cosine_steps=steps if algo == "iql" else None,
    )
