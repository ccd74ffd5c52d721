"""The Phase II loop on real Phase I checkpoints (tiny Hopper runs of train_offline)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from hybrid_rl.algos import online_iql
from hybrid_rl.algos.bonus import BonusScale, BonusSettings
from hybrid_rl.algos.explorers import CollectBonus, Explorer
from hybrid_rl.data.hdf5_format import file_sha256
from hybrid_rl.data.replay_buffer import ReplayBuffer
from hybrid_rl.envs import make_env
from hybrid_rl.finetune import finetune
from hybrid_rl.finetune_config import FinetuneConfig
from hybrid_rl.online_collection import HybridSampler, OnlineCollector
from hybrid_rl.phase1_run import Phase1RunError, phase1_command
from hybrid_rl.train import TrainConfig, prepare_dataset

CPU = torch.device("cpu")


def settings(run: TrainConfig, results, **overrides) -> dict:
    base = dict(
        algo=run.algo,
        dataset=run.dataset,
        online_steps=96,
        eval_every=48,
        log_every=48,
        batch_size=32,
        eval_episodes=1,
        device="cpu",
        phase1_results_dir=run.results_dir,
        results_dir=str(results),
    )
    return {**base, **overrides}


def iql_online_setup(run: TrainConfig, capacity: int, bonus_coeff: float | None):
    """The objects `finetune` builds for an IQL run, minus the loop."""
    _, dataset, _, scale, _ = prepare_dataset(run, CPU)
    torch.manual_seed(0)
    agent = online_iql.from_phase1_checkpoint(run.run_dir / "checkpoint.pt", 3, run.agent)
    buffer = ReplayBuffer(capacity, dataset.obs_dim, dataset.act_dim)
    explorer = Explorer()
    if bonus_coeff is not None:
        explorer = CollectBonus(BonusScale(BonusSettings(coeff=bonus_coeff), gamma=0.99))
    collector = OnlineCollector("Hopper-v4", agent, buffer, scale, explorer, CPU)
    return dataset, scale, agent, buffer, collector


def unbiased_member_std(agent, obs, act):
    with torch.no_grad():
        q = agent.critic(agent.normalizer(obs), act)  # [N, B]
    n = q.shape[0]
    return torch.sqrt(((q - q.mean(0)) ** 2).sum(0) / (n - 1))


def test_missing_phase1_checkpoint_error_names_the_command(phase1_runs, tmp_path):
    run = phase1_runs["cql"]
    config = FinetuneConfig(**settings(run, tmp_path, k_percent=30, seed=2))
    with pytest.raises(Phase1RunError) as error:
        finetune(config, progress=False)
    message = str(error.value)
    assert (
        f"python run_phase1.py --algo cql --env {run.dataset} --remove_top_k 30 --seed 2 "
        f"--results_dir {run.results_dir}"
    ) in message
    assert str(config.phase1_train_config().run_dir / "checkpoint.pt") in message
    assert not config.run_dir.exists()

    noisy = FinetuneConfig(
        **settings(run, tmp_path, k_percent=10, removal="random", reward_noise_std=0.1)
    )
    with pytest.raises(
        Phase1RunError,
        match=r"--remove_top_k 10 --seed 0 --removal random "
        r"--reward_noise 0\.1 --results_dir",
    ):
        finetune(noisy, progress=False)


def test_phase1_command_for_a_quick_folder_names_the_quick_budget():
    quick = FinetuneConfig(
        algo="iql", dataset="hopper-medium-v2", k_percent=60, phase1_results_dir="results/quick"
    )
    assert phase1_command(quick.phase1_train_config()) == (
        "python run_phase1.py --algo iql --env hopper-medium-v2 --remove_top_k 60 --seed 0 --quick"
    )
    elsewhere = FinetuneConfig(
        algo="iql", dataset="hopper-medium-v2", phase1_results_dir="/data/runs/quick"
    )
    assert phase1_command(elsewhere.phase1_train_config()).endswith(
        "--quick --results_dir /data/runs"
    )


@pytest.mark.parametrize("bonus_coeff", [2.0, None])
def test_collected_transitions_store_the_real_step_with_scaled_reward_plus_bonus(
    phase1_runs, bonus_coeff
):
    steps = 150
    _, scale, agent, buffer, collector = iql_online_setup(phase1_runs["iql"], steps, bonus_coeff)
    assert scale != pytest.approx(1.0)  # IQL's locomotion scale is in play
    collector.restart(seed=7)
    collected = [collector.step() for _ in range(steps)]
    assert sum(c.episode_return is not None for c in collected) >= 2

    # Replay the stored actions in an independent env: same observations, next observations,
    # env rewards and end flags.
    env = make_env("Hopper-v4")
    obs, _ = env.reset(seed=7)
    raw = []
    for i in range(steps):
        np.testing.assert_array_equal(buffer.observations[i].numpy(), obs.astype(np.float32))
        next_obs, reward, terminated, truncated, _ = env.step(buffer.actions[i].numpy())
        np.testing.assert_array_equal(
            buffer.next_observations[i].numpy(), next_obs.astype(np.float32)
        )
        assert (bool(buffer.terminated[i]), bool(buffer.truncated[i])) == (terminated, truncated)
        assert collected[i].raw_reward == reward
        raw.append(reward)
        obs = env.reset()[0] if terminated or truncated else next_obs
    assert buffer.terminated[:steps].any()

    disagreement = unbiased_member_std(agent, buffer.observations[:steps], buffer.actions[:steps])
    scaled = scale * torch.tensor(raw, dtype=torch.float64)
    if bonus_coeff is None:
        torch.testing.assert_close(buffer.rewards[:steps], scaled.float())
    else:
        assert (disagreement > 0).all()
        torch.testing.assert_close(
            buffer.rewards[:steps], (scaled + bonus_coeff * disagreement).float()
        )
        torch.testing.assert_close(
            torch.cat([c.bonus for c in collected]), bonus_coeff * disagreement
        )


@pytest.mark.parametrize(
    ("online_ratio", "batch_size", "online_rows"),
    [(0.5, 64, 32), (0.3, 10, 3), (0.25, 10, 3), (0.0, 16, 0), (1.0, 16, 16)],
)
def test_hybrid_batches_split_exactly_and_offline_rows_keep_their_rewards(
    phase1_runs, online_ratio, batch_size, online_rows
):
    run = phase1_runs["iql"]
    config = FinetuneConfig(
        **settings(
            run,
            "unused",
            online_ratio=online_ratio,
            batch_size=batch_size,
            log_every=96,
            eval_every=96,
        )
    )
    assert config.online_rows == online_rows
    dataset, _, agent, buffer, collector = iql_online_setup(run, 80, bonus_coeff=1.0)
    offline_rewards = dataset.rewards.clone()
    collector.restart(seed=1234)  # not a seed of the dataset's envs (0-3): distinct states
    for _ in range(80):
        collector.step()
    sampler = HybridSampler(dataset, buffer, batch_size, config.online_rows, seed=5)

    for _ in range(5):
        batch = sampler.sample()
        assert len(batch) == batch_size
        in_buffer = (batch.observations[:, None] == buffer.observations[None]).all(-1)
        in_dataset = (batch.observations[:, None] == dataset.observations[None]).all(-1)
        assert in_buffer[:online_rows].any(1).all() and not in_dataset[:online_rows].any()
        assert in_dataset[online_rows:].any(1).all() and not in_buffer[online_rows:].any()
        # Every row carries the reward of the row it came from: augmented online, as-is offline.
        buffer_rows = in_buffer[:online_rows].float().argmax(1)
        dataset_rows = in_dataset[online_rows:].float().argmax(1)
        assert torch.equal(batch.rewards[:online_rows], buffer.rewards[buffer_rows])
        assert torch.equal(batch.rewards[online_rows:], dataset.rewards[dataset_rows])
        agent.update(batch)
    assert torch.equal(dataset.rewards, offline_rewards)


def test_run_writes_config_metrics_checkpoint_and_is_skipped_when_complete(phase1_runs, tmp_path):
    run = phase1_runs["cql"]
    config = FinetuneConfig(**settings(run, tmp_path))
    metrics = finetune(config, progress=False)

    assert config.run_name == "ft_cql_hopper-tiny_k0_noise0_ensemble_s0"
    assert metrics["status"] == "completed"
    assert metrics["eval"]["steps"] == [0, 48, 96]
    train = metrics["train"]
    assert train["steps"] == [48, 96]
    # Updates start once the buffer holds batch_size rows: 96 − 32 + 1 in total.
    assert train["updates"] == [17, 65]
    for key in (
        "critic_loss",
        "cql_penalty",
        "disagreement_batch_online",
        "disagreement_batch_offline",
        "disagreement_collected",
        "critic_loss_rolling_var",
    ):
        assert len(train[key]) == 2
    np.testing.assert_allclose(train["bonus_mean"], train["disagreement_collected"], rtol=1e-5)
    np.testing.assert_allclose(  # CQL's reward scale is 1
        train["reward_augmented_mean"],
        np.add(train["reward_raw_mean"], train["bonus_mean"]),
        rtol=1e-6,
    )
    assert all(v > 0 for v in train["bonus_mean"])
    assert json.loads((config.run_dir / "metrics.json").read_text()) == metrics

    saved = json.loads((config.run_dir / "config.json").read_text())
    phase1_checkpoint = run.run_dir / "checkpoint.pt"
    assert saved["phase1"]["checkpoint_sha256"] == file_sha256(phase1_checkpoint)
    assert saved["phase1"]["run_name"] == run.run_name
    assert saved["online_agent_config"]["cql_alpha"] == 1.0
    assert saved["online_agent_config"]["critic_members"] == 3
    assert saved["online_batch"] == {
        "online_rows": 16,
        "offline_rows": 16,
        "online_share": "const",
        "updates_start_when_buffer_holds": 32,
    }
    assert saved["config"]["bonus_coeff"] == 1.0 and saved["git_commit"]
    assert saved["dataset"]["sha256"] == file_sha256(run.dataset)

    stamp = (config.run_dir / "checkpoint.pt").stat().st_mtime_ns
    assert finetune(config, progress=False) == metrics
    assert (config.run_dir / "checkpoint.pt").stat().st_mtime_ns == stamp


def test_without_bonus_the_stored_rewards_are_the_scaled_env_rewards(phase1_runs, tmp_path):
    run = phase1_runs["iql"]
    config = FinetuneConfig(**settings(run, tmp_path, bonus_type="none"))
    train = finetune(config, progress=False)["train"]
    scale = json.loads((run.run_dir / "config.json").read_text())["reward_scale"]
    assert config.run_name.endswith("_none_s0")
    assert train["bonus_mean"] == [0.0, 0.0]
    np.testing.assert_allclose(
        train["reward_augmented_mean"], scale * np.array(train["reward_raw_mean"]), rtol=1e-12
    )
    assert all(v > 0 for v in train["disagreement_collected"])  # still measured


@pytest.mark.slow  # kill/resume, process pool or torch.compile: see README
def test_killed_run_resumes_with_its_replay_buffer_to_the_uninterrupted_result(
    phase1_runs, tmp_path
):
    run = phase1_runs["iql"]
    killed = settings(run, tmp_path / "killed", online_steps=288, eval_every=96)
    config = FinetuneConfig(**killed)
    script = (
        "import torch\n"
        "torch.set_num_threads(1)\n"
        "from hybrid_rl.finetune import finetune\n"
        "from hybrid_rl.finetune_config import FinetuneConfig\n"
        f"finetune(FinetuneConfig(**{killed!r}), progress=False)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script])
    # A run writes metrics.json before its first step (what it is doing, for progress bars):
    # the first checkpoint, written atomically, is the sign that it is under way.
    checkpoint_file = config.run_dir / "checkpoint.pt"
    deadline = time.monotonic() + 120
    while not checkpoint_file.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = torch.load(config.run_dir / "checkpoint.pt", weights_only=False)
    assert partial["metrics"]["status"] == "running", "the run finished before it was killed"
    assert partial["replay_buffer"]["size"] == partial["step"] > 0

    resumed = finetune(config, progress=False)
    clean = finetune(
        FinetuneConfig(**{**killed, "results_dir": str(tmp_path / "clean")}), progress=False
    )

    assert resumed["status"] == clean["status"] == "completed"
    # Same buffer, samplers and RNG streams after the resume: the same numbers throughout.
    assert resumed["train"] == clean["train"]
    assert resumed["eval"] == clean["eval"]
    assert resumed["online_episodes"] == clean["online_episodes"]


def test_diverging_run_is_recorded_not_raised(phase1_runs, tmp_path):
    # A bonus of ~1e38 per step squares past float32's range in the critic loss.
    config = FinetuneConfig(
        **settings(
            phase1_runs["cql"],
            tmp_path,
            bonus_coeff=1e38,
            online_steps=64,
            log_every=64,
            eval_every=64,
        )
    )
    metrics = finetune(config, progress=False)
    assert metrics["status"] == "diverged"
    assert metrics["summary"]["diverged_at_step"] == 64
    assert "critic_loss" in metrics["summary"]["non_finite_metrics"]
    assert json.loads((config.run_dir / "metrics.json").read_text())["status"] == "diverged"
    stamp = (config.run_dir / "checkpoint.pt").stat().st_mtime_ns
    assert finetune(config, progress=False)["status"] == "diverged"  # recorded, not rerun
    assert (config.run_dir / "checkpoint.pt").stat().st_mtime_ns == stamp
