"""The online loop of Phase II: fine-tune a Phase I agent online, with an optional ensemble bonus.

A run starts from the Phase I checkpoint of the same algo, dataset, corruption and seed, and
keeps training on a hybrid replay: each batch holds `round(online_ratio · B)` rows from the
online buffer followed by the rest from the same corrupted offline dataset Phase I used.

- Collection: one env, the stochastic policy from the first step, one gradient update per env
  step once the online buffer holds `batch_size` rows (before that, steps only collect).
- Bonus (`bonus_type="ensemble"`): each online transition is stored with reward
  `reward_scale · r_env + λ · disagreement(s, a)`, where disagreement is the unbiased std over
  the critic members of Q(s, a). The bonus is computed once, at collection, by the critic of
  that moment. Offline rewards are never touched. With `bonus_type="none"` the stored reward
  is `reward_scale · r_env`.
- Reward units: the critic is trained in the offline data's reward units, so online env
  rewards get the same `reward_scale` (IQL: 1000 / return range of the corrupted data; CQL:
  1). The disagreement is a std of Q values, already in those units, so the bonus is added
  as is, not scaled again: λ means "λ critic stds" for every algorithm.
- Exploration: how actions are chosen and what is added to which reward, when, is the run's
  `Explorer` (`algos.explorers`), built once from the bonus type and options; the collector,
  the sampler and the task call it at fixed points.
- Checkpoints (every `eval_every` steps, atomic) hold the agent with its optimizers, the
  samplers, the online buffer, the explorer's state (one entry), the RNG states and the step.
  At every checkpoint the collecting episode is restarted from a seed derived from (seed,
  step); a resumed run restarts it in the same way, so it continues exactly as an
  uninterrupted run. The restart cuts at most one episode per checkpoint; the transition
  before the cut is stored as it happened (not terminal), so no data is falsified.

Options beyond the spec (issue 14; every default is the spec, reported "as specified"):
fresh members warmed up or trained in Phase I (`fresh_init`, `algos.warmup`), other reductions
over members (`target_reduce`, `actor_reduce`, `algos.reductions`), the bonus's time, units,
normalisation and schedule (`algos.bonus`), UCB action selection instead of a reward bonus
(`exploration`, `algos.exploration`), the Phase I critic's Adam state kept
(`keep_critic_optimizer`), IQL's online actor lr (`iql_actor_lr`), the online share of each
batch rising from 0 or drawn uniformly over all rows (`online_share`, issue 31), a
shuffled-bonus control (`bonus_type="shuffled"`), and named sets of them: all declared in
`phase2_options`. A run with any option off its default is named for it
(`FinetuneConfig.variant`), so arms never share a folder.

A run writes `results_dir/<run name>/config.json`, `metrics.json` and `checkpoint.pt`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor

from hybrid_rl.algos.agent import OnlineAgent
from hybrid_rl.algos.bonus import (
    BonusScale,
    ShuffledBonuses,
)
from hybrid_rl.algos.explorers import (
    CollectBonus,
    Explorer,
    ShuffledCollectBonus,
    UCBExplorer,
    UpdateBonus,
)
from hybrid_rl.algos.registry import get_algorithm
from hybrid_rl.algos.warmup import warm_up_fresh_members
from hybrid_rl.data.loader import DatasetProvenance
from hybrid_rl.data.replay_buffer import ReplayBuffer
from hybrid_rl.eval.rollout import PolicyEvaluator
from hybrid_rl.finetune_config import FinetuneConfig
from hybrid_rl.online_collection import (
    HybridSampler,
    OnlineCollector,
    OnlineShare,
    ensemble_disagreement,
    with_rewards,
)
from hybrid_rl.phase1_run import Phase1Run, Phase1RunError, check_same_dataset, find_phase1_run
from hybrid_rl.provenance import git_commit, software_versions
from hybrid_rl.runs.identity import check_same_run
from hybrid_rl.runs.loop import LoopTask, finished_metrics, run_loop
from hybrid_rl.runs.metrics import MetricsLog
from hybrid_rl.seeding import resolve_device, seed_everything
from hybrid_rl.train import prepare_dataset

# Streams of derived seeds, so no two random streams of a run share their bits.
# Checkpoint keys of the explorer's parts before it was one entry: (its key, former key).
_FORMER_EXPLORATION_KEYS = (
    ("scale", "bonus_scale"),
    ("shuffled", "shuffled_bonuses"),
    ("shuffle_rng", "bonus_shuffle_rng"),
)
_ONLINE_SAMPLER_STREAM, _EPISODE_STREAM, _SHUFFLE_STREAM = 1, 2, 3


def _derived_seed(*entropy: int) -> int:
    return int(np.random.SeedSequence(list(entropy)).generate_state(1)[0])


class OnlineTask(LoopTask):
    """One env step per step, then one update on a hybrid batch once the buffer holds a batch."""

    def __init__(
        self,
        config: FinetuneConfig,
        agent: OnlineAgent,
        buffer: ReplayBuffer,
        sampler: HybridSampler,
        collector: OnlineCollector,
        evaluator: PolicyEvaluator,
        phase1: Phase1Run,
        reward_scale: float,
        warmup: Mapping[str, float] | None = None,
    ) -> None:
        self.config, self.agent, self.buffer, self.sampler = config, agent, buffer, sampler
        self.collector, self.evaluator, self.phase1 = collector, evaluator, phase1
        self.reward_scale = reward_scale
        self.updates, self.raw_reward_sum = 0, 0.0
        self.episodes: dict[str, list[Any]] = {}
        self.warmup = dict(warmup or {})
        self.explorer = collector.explorer

    def begin(self, start: int, log: MetricsLog) -> None:
        empty: dict[str, list[Any]] = {"steps": [], "return": [], "length": []}
        self.episodes = log.data.setdefault("online_episodes", empty)
        if self.warmup:
            log.data.setdefault("warmup", self.warmup)
        self.collector.restart(_derived_seed(self.config.seed, _EPISODE_STREAM, start))

    def step(self, step: int) -> dict[str, Tensor]:
        collected = self.collector.step(step)
        self.raw_reward_sum += collected.raw_reward
        if collected.episode_return is not None:
            self.episodes["steps"].append(step + 1)
            self.episodes["return"].append(collected.episode_return)
            self.episodes["length"].append(collected.episode_length)
        metrics = {
            "disagreement_collected": collected.disagreement[0],
            "bonus_mean": collected.bonus[0],
        }
        if len(self.buffer) < self.config.batch_size:
            return metrics  # collecting only, until the buffer holds one batch
        batch = self.sampler.sample()
        disagreement = ensemble_disagreement(self.agent, batch.observations, batch.actions)
        online = self.sampler.online_rows
        bonus = self.explorer.at_update(disagreement[:online], step) if online else None
        if bonus is not None:
            rewards = torch.cat([batch.rewards[:online] + bonus, batch.rewards[online:]])
            batch = with_rewards(batch, rewards)
            metrics["bonus_update_mean"] = bonus.mean()
        metrics |= self.agent.update(batch)
        if online:
            metrics["disagreement_batch_online"] = disagreement[:online].mean()
        if self.sampler.offline_rows:
            metrics["disagreement_batch_offline"] = disagreement[online:].mean()
        self.updates += 1
        return metrics

    def interval_values(
        self, step: int, values: dict[str, float | None]
    ) -> dict[str, float | None]:
        # Rewards per env step: raw in env units, augmented (scaled + bonus) in the critic's
        # units, as stored.
        raw = self.raw_reward_sum / self.config.log_every
        self.raw_reward_sum = 0.0
        bonus = values.get("bonus_mean") or 0.0
        return {
            **values,
            "reward_raw_mean": raw,
            "reward_augmented_mean": self.reward_scale * raw + bonus,
            "updates": self.updates,
        }

    def evaluate(self, step: int, log: MetricsLog) -> None:
        result = self.evaluator.evaluate(
            lambda obs: self.agent.act(obs, deterministic=True),
            seed=1_000_000 * self.config.seed + step,
        )
        log.log_eval(step, result.returns, result.normalized)

    def state_dict(self, final: bool) -> dict[str, Any]:
        # A finished run is never resumed: its checkpoint drops the buffer to save disk.
        state: dict[str, Any] = {
            "agent": self.agent.state_dict(),
            "sampler": self.sampler.state_dict(),
            "replay_buffer": None if final else self.buffer.state_dict(),
            "updates": self.updates,
            "exploration": self.explorer.state_dict(final),
        }
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.agent.load_state_dict(state["agent"])
        self.sampler.load_state_dict(state["sampler"])
        self.buffer.load_state_dict(state["replay_buffer"])
        self.updates = int(state["updates"])
        self.explorer.load_state_dict(exploration_state(state))

    def after_checkpoint(self, step: int) -> None:
        self.collector.restart(_derived_seed(self.config.seed, _EPISODE_STREAM, step))

    def summary(self, log: MetricsLog) -> dict[str, Any]:
        return {
            "step0_normalized_return": log.data["eval"]["normalized_return_mean"][0],
            "phase1_final_normalized_return": self.phase1.final_normalized_return,
            "online_episodes": len(self.episodes["steps"]),
        }

    def close(self) -> None:
        self.collector.close()
        self.evaluator.close()


def exploration_state(checkpoint: Mapping[str, Any]) -> dict[str, Any]:
    """The explorer's entry of a checkpoint; a checkpoint from before the exploration seam
    kept its parts under keys of their own."""
    if "exploration" in checkpoint:
        return dict(checkpoint["exploration"])
    return {new: checkpoint[old] for new, old in _FORMER_EXPLORATION_KEYS if old in checkpoint}


def finetune(config: FinetuneConfig, progress: bool = True) -> dict[str, Any]:
    """Run (or resume, or skip if complete) one Phase II run; returns its metrics.

    Raises Phase1RunError, naming the `run_phase1.py` command to run, when the Phase I run it
    starts from is missing or unfinished. A diverging run is recorded (status "diverged") and
    returned, not raised.
    """
    folder = config.folder
    device = resolve_device(config.device)
    resume = folder.load_checkpoint(device)
    if (finished := finished_metrics(resume)) is not None:
        return finished
    phase1 = find_phase1_run(config.phase1_train_config(), config.run_name)
    if resume is not None:
        saved = folder.read_config()
        if saved is not None:
            saved = {**saved, "config": FinetuneConfig.saved_identity(saved)}
        check_same_run(config, saved, folder.path)
        if saved is not None and saved["phase1"]["checkpoint_sha256"] != phase1.checkpoint_sha256:
            raise Phase1RunError(
                f"the Phase I checkpoint {phase1.checkpoint} changed since {folder.path} "
                f"started from it; start the Phase II run over with `hybrid-rl runs reset "
                f"{folder.path}`"
            )

    seed_everything(config.seed)
    loaded, dataset, stats, reward_scale, _ = prepare_dataset(phase1.train_config, device)
    check_same_dataset(phase1, loaded.provenance.sha256, reward_scale)
    from_phase1 = get_algorithm(config.algo).from_phase1
    assert from_phase1 is not None  # FinetuneConfig accepts only algorithms that fine-tune
    agent = from_phase1(
        phase1.checkpoint,
        config.n_ensemble,
        phase1.train_config.agent,
        device,
        config.online_options(),
    )
    warmup: dict[str, float] = {}
    kind, warmup_updates = config.options.fresh_members
    if kind == "warmup" and resume is None:  # a resumed run's checkpoint holds warmed members
        warmup = warm_up_fresh_members(
            agent, lambda: dataset.sample(config.batch_size), warmup_updates, agent.config.critic_lr
        )
    buffer = ReplayBuffer(config.online_steps, dataset.obs_dim, dataset.act_dim, device)
    explorer = _explorer(config, agent.config.gamma, device)
    sampler = HybridSampler(
        dataset,
        buffer,
        config.batch_size,
        config.online_rows,
        _derived_seed(config.seed, _ONLINE_SAMPLER_STREAM),
        explorer,
        share=None
        if config.options.online_share == "const"
        else OnlineShare(config.options.online_share, config.online_rows),
    )
    env_id = loaded.provenance.env_id or config.dataset
    collector = OnlineCollector(env_id, agent, buffer, reward_scale, explorer, device)
    _write_config(config, phase1, loaded.provenance, stats.to_dict(), reward_scale, agent, device)
    evaluator = PolicyEvaluator(env_id, config.eval_episodes, device)
    task = OnlineTask(
        config, agent, buffer, sampler, collector, evaluator, phase1, reward_scale, warmup
    )
    return run_loop(
        folder, task, config.cadence, resume, device, config.loss_variance_window, progress
    )


def _explorer(config: FinetuneConfig, gamma: float, device: torch.device) -> Explorer:
    """The run's way to explore, built once from its bonus type and options."""
    ucb = config.ucb()
    if ucb is not None:
        return UCBExplorer(ucb)
    settings = config.bonus_settings()
    if settings is None:
        return Explorer()
    scale = BonusScale(settings, gamma)
    shuffle_seed = _derived_seed(config.seed, _SHUFFLE_STREAM)
    if settings.time == "update":
        if not settings.shuffled:
            return UpdateBonus(scale)
        shuffle = torch.Generator(device=device)
        shuffle.manual_seed(shuffle_seed)
        return UpdateBonus(scale, shuffle)
    if settings.shuffled:
        return ShuffledCollectBonus(
            scale, ShuffledBonuses(config.online_steps, shuffle_seed, device)
        )
    return CollectBonus(scale)


def _write_config(
    config: FinetuneConfig,
    phase1: Phase1Run,
    provenance: DatasetProvenance,
    corruption: dict[str, Any],
    reward_scale: float,
    agent: OnlineAgent,
    device: torch.device,
) -> None:
    agent_config = agent.config
    config.folder.write_config(
        {
            "run_name": config.run_name,
            "config": dataclasses.asdict(config),
            "arm": config.arm_label,
            "online_agent_config": dataclasses.asdict(agent_config),
            "agent_config_class": type(agent_config).__name__,
            "online_batch": {
                "online_rows": config.online_rows,
                "offline_rows": config.batch_size - config.online_rows,
                "online_share": config.options.online_share,
                "updates_start_when_buffer_holds": config.batch_size,
            },
            "reward_scale": reward_scale,
            "device": str(device),
            "git_commit": git_commit(),
            "versions": software_versions(),
            "phase1": {
                "run_name": phase1.saved_config["run_name"],
                "checkpoint": str(phase1.checkpoint),
                "checkpoint_sha256": phase1.checkpoint_sha256,
                "config": phase1.saved_config["config"],
                "git_commit": phase1.saved_config.get("git_commit"),
                "final_normalized_return": phase1.final_normalized_return,
            },
            "dataset": dataclasses.asdict(provenance),
            "corruption": corruption,
        },
    )
