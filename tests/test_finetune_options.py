"""Phase II options beyond the spec, through the online loop on real Phase I checkpoints:
names, the bonus recomputed at update, the shuffled control, UCB, warm-up, and resume."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from hybrid_rl.algos import online_iql
from hybrid_rl.algos.bonus import BonusScale, BonusSettings, ShuffledBonuses
from hybrid_rl.algos.explorers import Explorer, ShuffledCollectBonus, UpdateBonus
from hybrid_rl.data.replay_buffer import ReplayBuffer
from hybrid_rl.finetune import OnlineTask, finetune
from hybrid_rl.finetune_config import FinetuneConfig
from hybrid_rl.online_collection import HybridSampler, OnlineCollector, ensemble_disagreement
from hybrid_rl.phase2_options import PHASE2_PRESETS, Phase2Options, preset_options
from hybrid_rl.runs.metrics import MetricsLog
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


def config_of(**fields) -> FinetuneConfig:
    """A config from flat fields, the options among them (as config.json files once held
    them): the parametrized cases below mix run settings and options."""
    return FinetuneConfig.from_saved(fields)


def test_the_spec_name_is_unchanged_and_every_arm_has_its_own_name():
    spec = FinetuneConfig(dataset="hopper-medium-v2", k_percent=30, seed=2)
    assert spec.run_name == "ft_iql_hopper-medium-v2_k30_noise0_ensemble_s2"
    assert spec.variant == "" and spec.arm_label == "ensemble (as specified)"
    # The spec's values given explicitly are the spec.
    assert FinetuneConfig(options=preset_options("spec")).run_name == FinetuneConfig().run_name
    enoto = FinetuneConfig(options=preset_options("enoto"))
    assert enoto.run_name == "ft_iql_halfcheetah-medium-v2_k0_noise0_ensemble_enoto_s0"
    assert enoto.arm_label == "ensemble (enoto preset)"
    arms = [
        FinetuneConfig(),
        FinetuneConfig(bonus_type="none"),
        FinetuneConfig(bonus_type="shuffled"),
        FinetuneConfig(n_ensemble=2, bonus_type="none"),  # the 2-member reference
        enoto,
        FinetuneConfig(bonus_type="none", options=preset_options("enoto")),
        FinetuneConfig(options=Phase2Options(fresh_init="warmup:100")),
        FinetuneConfig(options=Phase2Options(fresh_init="warmup:200")),
        FinetuneConfig(options=Phase2Options(fresh_init="phase1")),
        FinetuneConfig(options=Phase2Options(target_reduce="min_loaded")),
        FinetuneConfig(options=Phase2Options(actor_reduce="min_loaded")),
        FinetuneConfig(options=Phase2Options(target_reduce="mean_minus_std:1")),
        FinetuneConfig(options=Phase2Options(target_reduce="mean_minus_std:2")),
        FinetuneConfig(options=Phase2Options(bonus_time="update")),
        FinetuneConfig(options=Phase2Options(bonus_units="per_step")),
        FinetuneConfig(options=Phase2Options(bonus_norm="running")),
        FinetuneConfig(options=Phase2Options(bonus_schedule="linear:1000")),
        FinetuneConfig(options=Phase2Options(exploration="ucb:8")),
        FinetuneConfig(options=Phase2Options(keep_critic_optimizer=True)),
        FinetuneConfig(options=Phase2Options(iql_actor_lr=1e-4)),
    ]
    names = [a.run_name for a in arms]
    assert len(set(names)) == len(names), names
    assert names[3] == "ft_iql_halfcheetah-medium-v2_k0_noise0_none_m2_s0"
    assert all("/" not in n and ":" not in n for n in names)
    assert (
        FinetuneConfig(options=Phase2Options(fresh_init="phase1"))
        .phase1_train_config()
        .run_name.endswith("_c3_s0")
    )
    # IQL's actor lr names only IQL runs
    assert FinetuneConfig(algo="cql", options=Phase2Options(iql_actor_lr=1e-4)).variant == ""


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"fresh_init": "warmup:10", "n_ensemble": 2}, "fresh_init warmup:10 warms up"),
        ({"target_reduce": "redq:4"}, "target_reduce: .*at most 3"),
        ({"actor_reduce": "max"}, "actor_reduce: unknown reduction"),
        ({"bonus_time": "later"}, "bonus_time must be one of collect, update"),
        ({"bonus_units": "return"}, "bonus_units must be one of q, per_step"),
        ({"bonus_norm": "batch"}, "bonus_norm must be one of none, running"),
        ({"bonus_schedule": "linear:0"}, "bonus_schedule: "),
        ({"exploration": "ucb:1"}, "exploration: "),
        ({"exploration": "ucb:4", "bonus_type": "shuffled"}, "shuffled means nothing"),
        ({"exploration": "ucb:4", "bonus_time": "update"}, "bonus_time cannot apply"),
        ({"iql_actor_lr": 0.0}, "iql_actor_lr must be finite and > 0"),
        ({"bonus_type": "random"}, "bonus_type must be one of ensemble, none, shuffled"),
    ],
)
def test_bad_options_are_refused_naming_the_field(fields, message):
    with pytest.raises(ValueError, match=message):
        config_of(**fields)


def iql_pieces(run: TrainConfig, capacity: int, explorer: Explorer):
    _, dataset, _, scale, _ = prepare_dataset(run, CPU)
    torch.manual_seed(0)
    agent = online_iql.from_phase1_checkpoint(run.run_dir / "checkpoint.pt", 3, run.agent)
    buffer = ReplayBuffer(capacity, dataset.obs_dim, dataset.act_dim)
    collector = OnlineCollector("Hopper-v4", agent, buffer, scale, explorer, CPU)
    return dataset, scale, agent, buffer, collector


def test_the_update_time_bonus_is_recomputed_by_the_current_critic(phase1_runs, tmp_path):
    run = phase1_runs["iql"]
    config = config_of(**settings(run, tmp_path, bonus_time="update", bonus_coeff=2.0))
    bonus = BonusScale(config.bonus_settings(), gamma=0.99)
    dataset, scale, agent, buffer, collector = iql_pieces(run, 96, UpdateBonus(bonus))
    raw_rewards = []
    collect = collector.step

    def recorded_step(step):
        collected = collect(step)
        raw_rewards.append(collected.raw_reward)
        return collected

    collector.step = recorded_step  # type: ignore[method-assign]
    sampler = HybridSampler(dataset, buffer, 32, config.online_rows, 5, collector.explorer)
    task = OnlineTask(config, agent, buffer, sampler, collector, None, None, 1.0)  # type: ignore[arg-type]
    seen = []
    update = agent.update

    def checked_update(batch):
        # At the moment of the update the online rows carry stored reward + λ·d(current critic).
        online = batch.observations[:16]
        rows = (online[:, None] == buffer.observations[None, : len(buffer)]).all(-1).float()
        stored = buffer.rewards[rows.argmax(1)]
        d = ensemble_disagreement(agent, online, batch.actions[:16])
        torch.testing.assert_close(batch.rewards[:16], stored + 2.0 * d)
        seen.append((online.clone(), batch.actions[:16].clone(), d))
        return update(batch)

    agent.update = checked_update  # type: ignore[method-assign]
    task.begin(0, MetricsLog())
    for step in range(40):
        task.step(step)
    assert len(seen) == 40 - 32 + 1
    # Nothing is stored at collection: the buffer holds the scaled env rewards alone.
    expected = scale * torch.tensor(raw_rewards, dtype=torch.float64)
    torch.testing.assert_close(buffer.rewards[:40], expected.float())
    # The same (s, a) gets another bonus once the critic has changed.
    obs, actions, d_then = seen[0]
    d_now = ensemble_disagreement(agent, obs, actions)
    assert not torch.allclose(d_now, d_then)


def test_collected_bonuses_shuffled_keep_their_multiset_and_stay_out_of_stored_rewards(
    phase1_runs,
):
    run = phase1_runs["iql"]
    steps = 80
    store = ShuffledBonuses(steps, seed=4, device=CPU)
    bonus = BonusScale(BonusSettings(coeff=1.0, shuffled=True), gamma=0.99)
    explorer = ShuffledCollectBonus(bonus, store)
    dataset, scale, agent, buffer, collector = iql_pieces(run, steps, explorer)
    collector.restart(seed=3)
    stepped = [collector.step(i) for i in range(steps)]
    collected = torch.cat([c.bonus for c in stepped])
    raw = torch.tensor([c.raw_reward for c in stepped], dtype=torch.float64)
    torch.testing.assert_close(buffer.rewards[:steps], (scale * raw).float())
    d = ensemble_disagreement(agent, buffer.observations[:steps], buffer.actions[:steps])
    torch.testing.assert_close(collected, d)
    served = store.for_rows(torch.arange(steps))
    torch.testing.assert_close(served.sort().values, collected.sort().values)
    assert (served != collected).float().mean() > 0.9
    sampler = HybridSampler(dataset, buffer, 32, 32, seed=1, explorer=explorer)
    batch = sampler.sample()
    rows = (batch.observations[:, None] == buffer.observations[None, :steps]).all(-1)
    index = rows.float().argmax(1)
    torch.testing.assert_close(batch.rewards, buffer.rewards[index] + served[index])


@pytest.mark.parametrize(
    "options",
    [
        {"exploration": "ucb:4"},
        {**dataclasses.asdict(PHASE2_PRESETS["enoto"]), "fresh_init": "warmup:20"},
        {"bonus_type": "shuffled", "bonus_norm": "running", "bonus_units": "per_step"},
        {"bonus_type": "shuffled", "bonus_time": "update", "bonus_schedule": "linear:50"},
    ],
)
def test_runs_with_options_complete_and_record_their_arm(phase1_runs, tmp_path, options):
    run = phase1_runs["iql"]
    config = config_of(**settings(run, tmp_path, **options))
    metrics = finetune(config, progress=False)
    assert metrics["status"] == "completed"
    saved = json.loads((config.run_dir / "config.json").read_text())
    assert saved["arm"] == config.arm_label != "ensemble (as specified)"
    assert config.variant in config.run_name
    train = metrics["train"]
    if options.get("exploration", "").startswith("ucb"):
        assert train["bonus_mean"] == [0.0, 0.0]  # UCB adds nothing to the reward
    if options.get("bonus_time") == "update":
        assert train["bonus_mean"] == [0.0, 0.0]  # nothing stored at collection
        assert all(v is not None and v > 0 for v in train["bonus_update_mean"][1:])
    if "fresh_init" in options:
        assert metrics["warmup"]["warmup_gap_to_loaded"] >= 0
        assert saved["online_agent_config"]["target_reduce"] == "redq:2"


class Interrupted(Exception):
    pass


@pytest.mark.slow  # two runs of 288 online steps
@pytest.mark.parametrize(
    "options",
    [
        {
            **dataclasses.asdict(PHASE2_PRESETS["enoto"]),
            "fresh_init": "warmup:30",
            "bonus_type": "shuffled",
        },
        {
            "bonus_type": "shuffled",
            "bonus_norm": "running",
            "bonus_schedule": "linear:200",
            "target_reduce": "mean_minus_std:0.5",
            "exploration": "reward_bonus",
        },
        {"exploration": "ucb:4", "actor_reduce": "redq:2", "keep_critic_optimizer": True},
    ],
)
def test_an_interrupted_run_with_options_resumes_to_the_uninterrupted_result(
    phase1_runs, tmp_path, monkeypatch, options
):
    run = phase1_runs["iql"]
    common = settings(run, tmp_path / "clean", online_steps=288, eval_every=96, **options)
    clean = finetune(config_of(**common), progress=False)

    interrupted = config_of(**{**common, "results_dir": str(tmp_path / "interrupted")})
    original = OnlineTask.after_checkpoint

    def stop_after_first_checkpoint(self, step):
        original(self, step)
        if step == 96:
            raise Interrupted

    monkeypatch.setattr(OnlineTask, "after_checkpoint", stop_after_first_checkpoint)
    with pytest.raises(Interrupted):
        finetune(interrupted, progress=False)
    monkeypatch.setattr(OnlineTask, "after_checkpoint", original)
    partial = torch.load(interrupted.run_dir / "checkpoint.pt", weights_only=False)
    assert partial["step"] == 96 and partial["metrics"]["status"] == "running"

    resumed = finetune(interrupted, progress=False)
    assert resumed["status"] == clean["status"] == "completed"
    assert resumed["train"] == clean["train"]
    assert resumed["eval"] == clean["eval"]
    assert resumed["online_episodes"] == clean["online_episodes"]
    assert resumed.get("warmup") == clean.get("warmup")
