"""The offline loop on a small real dataset: outputs, resume after a kill, divergence."""

from __future__ import annotations

import dataclasses
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hybrid_rl.algos.iql import COMPILE_MIN_STEPS
from hybrid_rl.runs.identity import as_json, identity_conflict
from hybrid_rl.train import TrainConfig, train_offline


def small_settings(dataset: Path, results: Path, **overrides) -> dict:
    settings = dict(
        algo="bc",
        dataset=str(dataset),
        total_steps=1_500,
        log_every=250,
        eval_every=500,
        eval_episodes=2,
        device="cpu",
        results_dir=str(results),
    )
    return {**settings, **overrides}


def small_config(dataset: Path, results: Path, **overrides) -> TrainConfig:
    return TrainConfig(**small_settings(dataset, results, **overrides))


def test_iql_is_compiled_by_default_only_in_runs_long_enough_to_repay_it():
    long_run = TrainConfig(algo="iql", total_steps=COMPILE_MIN_STEPS)
    short_run = TrainConfig(algo="iql", total_steps=COMPILE_MIN_STEPS - 1_000)
    assert long_run.agent.compile and not short_run.agent.compile


def test_run_writes_config_metrics_and_checkpoint(hopper_file, tmp_path):
    config = small_config(hopper_file, tmp_path, k_percent=30)
    metrics = train_offline(config, progress=False)
    run = config.run_dir
    saved = json.loads((run / "config.json").read_text())
    assert saved["config"]["k_percent"] == 30
    assert saved["dataset"]["sha256"] and saved["git_commit"]
    assert saved["corruption"]["trajectories_after"] < saved["corruption"]["trajectories_before"]
    on_disk = json.loads((run / "metrics.json").read_text())
    assert on_disk == metrics and metrics["status"] == "completed"
    assert metrics["eval"]["steps"] == [0, 500, 1000, 1500]
    assert metrics["train"]["steps"] == [250, 500, 750, 1000, 1250, 1500]
    assert len(metrics["train"]["critic_loss_rolling_var"]) == 6
    assert (run / "checkpoint.pt").exists()
    assert not list(run.glob(".*.tmp"))


@pytest.mark.slow  # kill/resume, process pool or torch.compile: see README
def test_killed_run_resumes_to_the_uninterrupted_result(hopper_file, tmp_path):
    killed_dir, clean_dir = tmp_path / "killed", tmp_path / "clean"
    settings = small_settings(hopper_file, killed_dir, total_steps=3_000)
    config = TrainConfig(**settings)
    script = (
        "import torch\n"
        "torch.set_num_threads(1)  # as the conftest fixture does in-process\n"
        "from hybrid_rl.train import TrainConfig, train_offline\n"
        f"train_offline(TrainConfig(**{settings!r}), progress=False)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script])
    metrics_file = config.run_dir / "metrics.json"
    # A run writes metrics.json before its first step (what it is doing, for progress bars):
    # the first checkpoint, written atomically, is the sign that it is under way.
    checkpoint_file = config.run_dir / "checkpoint.pt"
    deadline = time.monotonic() + 120
    while not checkpoint_file.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = json.loads(metrics_file.read_text())
    assert partial["status"] == "running", "the run finished before it could be killed"

    resumed = train_offline(config, progress=False)
    clean_config = small_config(hopper_file, clean_dir, total_steps=3_000)
    clean = train_offline(clean_config, progress=False)

    assert resumed["status"] == clean["status"] == "completed"
    assert resumed["train"]["steps"] == clean["train"]["steps"]
    assert resumed["eval"] == clean["eval"]  # same sampler and RNG streams: same scores
    saved = json.loads((config.run_dir / "config.json").read_text())["config"]
    assert saved == {
        **json.loads((clean_config.run_dir / "config.json").read_text())["config"],
        "results_dir": str(killed_dir),
    }


def test_completed_run_is_skipped(hopper_file, tmp_path):
    config = small_config(hopper_file, tmp_path, total_steps=500)
    first = train_offline(config, progress=False)
    stamp = (config.run_dir / "checkpoint.pt").stat().st_mtime_ns
    assert train_offline(config, progress=False) == first
    assert (config.run_dir / "checkpoint.pt").stat().st_mtime_ns == stamp


def test_diverging_run_is_recorded_not_raised(hopper_file, tmp_path):
    # Rewards of ~1e30 square past float32's range in the critic loss.
    config = small_config(
        hopper_file,
        tmp_path,
        algo="cql",
        total_steps=100,
        log_every=50,
        eval_every=50,
        reward_noise_std=1e30,
    )
    metrics = train_offline(config, progress=False)
    assert metrics["status"] == "diverged"
    assert metrics["summary"]["diverged_at_step"] == 50
    assert "critic_loss" in metrics["summary"]["non_finite_metrics"]
    assert json.loads((config.run_dir / "metrics.json").read_text())["status"] == "diverged"


def test_iql_reward_scale_comes_from_the_clean_data_unless_asked_otherwise(hopper_file, tmp_path):
    scales = {}
    for data in ("clean", "corrupted"):
        config = small_config(
            hopper_file,
            tmp_path / data,
            algo="iql",
            k_percent=60,
            total_steps=250,
            eval_every=250,
            reward_scale_data=data,
        )
        train_offline(config, progress=False)
        saved = json.loads((config.run_dir / "config.json").read_text())
        scales[data] = saved["reward_scales"]
        assert saved["reward_scale"] == saved["reward_scales"][data]
    assert scales["clean"] == scales["corrupted"]  # both recorded, whichever is applied
    # Removing the best 60% narrows the return range: the corrupted scale is larger.
    assert scales["clean"]["corrupted"] > scales["clean"]["clean"]


def test_a_run_saved_before_the_setting_keeps_the_corrupted_scale_it_used(hopper_file, tmp_path):
    config = small_config(hopper_file, tmp_path, algo="iql", k_percent=60)
    saved = as_json(config)
    del saved["reward_scale_data"]  # a config.json from before the setting
    assert identity_conflict(config, saved) == "reward_scale_data 'corrupted' there, 'clean' asked"
    former = dataclasses.replace(config, reward_scale_data="corrupted")
    assert identity_conflict(former, saved) is None
