"""Synthetic Phase I and II run folders, written in the loops' own formats (TrainConfig,
FinetuneConfig, MetricsLog) through RunFolder."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hybrid_rl.runs.folder import RunFolder
from hybrid_rl.runs.metrics import MetricsLog
from hybrid_rl.train import TrainConfig

RunWriter = Callable[..., Path]


def write_synthetic_run(
    results_dir: Path,
    *,
    algo: str = "iql",
    dataset: str = "hopper-medium-v2",
    source: str = "replica",
    removal: str = "top",
    k: float = 0.0,
    sigma: float = 0.0,
    seed: int = 0,
    evals: Sequence[float] = (10.0, 20.0, 30.0),
    eval_every: int = 1_000,
    status: str = "completed",
    loss_variance: Sequence[float] | None = None,
    q_mean: Sequence[float] | None = None,
    q_std: Sequence[float] | None = None,
    train_values: Sequence[Mapping[str, float | None]] | None = None,
    eval_std: float = 0.0,
    reward_scale: float | None = None,
    corruption: Mapping[str, Any] | None = None,
) -> Path:
    """A run folder whose evaluations are `evals` at steps 0, eval_every, 2·eval_every, ...
    and whose train log has one row per evaluation after the first (`train_values`, if given,
    holds each row's extra metrics: a metric missing from a row, or None, is logged as null).
    `eval_std` is the std over the episodes of every evaluation; `reward_scale` and
    `corruption` (the corruption stats) are written to config.json as training writes them."""
    config = TrainConfig(
        algo=algo,
        dataset=dataset,
        source="auto",
        removal=removal,  # type: ignore[arg-type]
        k_percent=k,
        reward_noise_std=sigma,
        seed=seed,
        total_steps=eval_every * max(1, len(evals) - 1),
        log_every=eval_every,
        eval_every=eval_every,
        results_dir=str(results_dir),
    )
    log = MetricsLog()
    for i, score in enumerate(evals):
        _log_eval(log, i * eval_every, score, eval_std)
    for i in range(1, len(evals)):
        values: dict[str, float | None] = {"critic_loss": 1.0, "actor_loss": 0.5}
        if loss_variance is not None:
            values["critic_loss_rolling_var"] = loss_variance[i - 1]
        if q_mean is not None and q_std is not None:
            values["q_data_mean"] = q_mean[i - 1]
            values["q_data_std"] = q_std[i - 1]
        if train_values is not None:
            values.update(train_values[i - 1])
        log.log_train(i * eval_every, values)
    return _finish_and_write(log, status, config, source, dataset, reward_scale, corruption)


def _log_eval(log: MetricsLog, step: int, score: float, std: float) -> None:
    """Two "episodes" score ± std (one when std is 0), so the logged mean is exactly `score`
    and the logged std exactly `std`."""
    episodes = np.array([score - std, score + std]) if std else np.array([score])
    log.log_eval(step, episodes * 10.0, episodes)


def _finish_and_write(
    log: MetricsLog,
    status: str,
    config: Any,
    source: str,
    dataset: str,
    reward_scale: float | None = None,
    corruption: Mapping[str, Any] | None = None,
) -> Path:
    """End `log` with `status` and write the run folder's config.json and metrics.json."""
    if status == "failed":
        log.finish("failed", error="RuntimeError: boom", traceback="...")
    elif status != "running":
        log.finish(status)
    folder = RunFolder(config.run_dir)
    folder.write_config(
        {
            "run_name": config.run_name,
            "config": dataclasses.asdict(config),
            "dataset": {"source": source, "dataset_id": dataset, "path": "/data/x.hdf5"},
            "git_commit": "0123456789abcdef0123456789abcdef01234567",
            **({} if reward_scale is None else {"reward_scale": reward_scale}),
            **({} if corruption is None else {"corruption": dict(corruption)}),
        }
    )
    folder.write_metrics(log.data)
    return folder.path


@pytest.fixture
def write_run() -> RunWriter:
    return write_synthetic_run


def write_synthetic_finetune_run(
    results_dir: Path,
    phase1_results_dir: Path,
    *,
    algo: str = "iql",
    dataset: str = "hopper-medium-v2",
    source: str = "replica",
    removal: str = "top",
    k: float = 0.0,
    sigma: float = 0.0,
    bonus: str = "ensemble",
    seed: int = 0,
    evals: Sequence[float] = (10.0, 20.0, 30.0),
    eval_every: int = 1_000,
    disagreement: Sequence[float | None] | None = None,
    status: str = "completed",
    eval_std: float = 0.0,
    preset: str = "spec",
) -> Path:
    """A Phase II run folder in finetune.py's formats: evaluations `evals` at online steps 0,
    eval_every, ...; one train row per evaluation after the first, logging `disagreement`
    (None: not produced in that interval, logged as null); `preset`'s Phase II options."""
    from hybrid_rl.finetune_config import FinetuneConfig
    from hybrid_rl.phase2_options import preset_options

    config = FinetuneConfig(
        options=preset_options(preset),
        algo=algo,
        dataset=dataset,
        removal=removal,  # type: ignore[arg-type]
        k_percent=k,
        reward_noise_std=sigma,
        seed=seed,
        bonus_type=bonus,  # type: ignore[arg-type]
        online_steps=eval_every * max(1, len(evals) - 1),
        eval_every=eval_every,
        log_every=eval_every,
        results_dir=str(results_dir),
        phase1_results_dir=str(phase1_results_dir),
    )
    log = MetricsLog()
    for i, score in enumerate(evals):
        _log_eval(log, i * eval_every, score, eval_std)
    for i in range(1, len(evals)):
        values: dict[str, float | None] = {"critic_loss": 1.0}
        if disagreement is not None:
            values["disagreement_collected"] = disagreement[i - 1]
        log.log_train(i * eval_every, values)
    return _finish_and_write(log, status, config, source, dataset)


@pytest.fixture
def write_finetune_run() -> RunWriter:
    return write_synthetic_finetune_run
