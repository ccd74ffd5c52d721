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
- Checkpoints (every `eval_every` steps, atomic) hold the agent with its optimizers, the
  samplers, the online buffer, the RNG states and the step. At every checkpoint the collecting
  episode is restarted from a seed derived from (seed, step); a resumed run restarts it in the
  same way, so it continues exactly as an uninterrupted run. The restart cuts at most one
  episode per checkpoint; the transition before the cut is stored as it happened (not
  terminal), so no data is falsified.

A run writes `results_dir/<run name>/config.json`, `metrics.json` and `checkpoint.pt`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple, get_args

import numpy as np
import torch
from torch import Tensor

from hybrid_rl.algos.agent import OnlineAgent
from hybrid_rl.algos.ensemble import MAX_MEMBERS, MIN_MEMBERS
from hybrid_rl.algos.registry import PHASE2_ALGORITHMS, default_config, get_algorithm
from hybrid_rl.batch import TransitionBatch, concat_batches
from hybrid_rl.data.corruption import CorruptionConfig, RemovalMode
from hybrid_rl.data.dataset import OfflineDataset
from hybrid_rl.data.hdf5_format import file_sha256
from hybrid_rl.data.loader import DatasetProvenance
from hybrid_rl.data.replay_buffer import ReplayBuffer
from hybrid_rl.envs import make_env
from hybrid_rl.eval.rollout import PolicyEvaluator
from hybrid_rl.provenance import git_commit, software_versions
from hybrid_rl.runs.folder import RunFolder
from hybrid_rl.runs.identity import check_same_run, identity_conflict
from hybrid_rl.runs.loop import Cadence, LoopTask, finished_metrics, run_loop
from hybrid_rl.runs.metrics import MetricsLog
from hybrid_rl.runs.spec import RunCost
from hybrid_rl.seeding import resolve_device, seed_everything
from hybrid_rl.settings import EXECUTION, with_former_settings
from hybrid_rl.train import TrainConfig, prepare_dataset

BonusType = Literal["ensemble", "none"]
BONUS_TYPES: tuple[BonusType, ...] = get_args(BonusType)
# An online step (an env step, an action, a disagreement forward and an update) costs about
# one offline update (measured ~1.0 on 2-core machines); rounded up, for wall-time estimates.
ONLINE_STEP_COST = 1.2
# Streams of derived seeds, so no two random streams of a run share their bits.
_ONLINE_SAMPLER_STREAM, _EPISODE_STREAM = 1, 2


@dataclass
class FinetuneConfig:
    algo: str = "iql"
    dataset: str = "halfcheetah-medium-v2"
    k_percent: float = 0.0
    reward_noise_std: float = 0.0
    removal: RemovalMode = "top"
    seed: int = 0
    n_ensemble: int = 3
    bonus_type: BonusType = "ensemble"
    bonus_coeff: float = 1.0  # λ
    online_ratio: float = 0.5  # share of each batch drawn from the online buffer
    online_steps: int = 250_000  # env steps (= gradient updates + batch_size − 1 warm-up steps)
    eval_every: int = 5_000
    eval_episodes: int = 10
    log_every: int = 1_000
    loss_variance_window: int = 1_000  # updates of critic loss behind each rolling variance
    batch_size: int = 256
    phase1_results_dir: str = field(default="results", metadata=EXECUTION)
    results_dir: str = field(default="results_phase2", metadata=EXECUTION)
    device: str = field(default="auto", metadata=EXECUTION)

    def __post_init__(self) -> None:
        if self.algo not in PHASE2_ALGORITHMS:
            raise ValueError(
                f"Phase II fine-tunes {' or '.join(PHASE2_ALGORITHMS)}, got algo={self.algo!r}"
            )
        if self.bonus_type not in BONUS_TYPES:
            raise ValueError(
                f"bonus_type must be one of {', '.join(BONUS_TYPES)}, got {self.bonus_type!r}"
            )
        if not MIN_MEMBERS <= self.n_ensemble <= MAX_MEMBERS:
            raise ValueError(
                f"n_ensemble must be in [{MIN_MEMBERS}, {MAX_MEMBERS}], got {self.n_ensemble}"
            )
        if not (math.isfinite(self.bonus_coeff) and self.bonus_coeff >= 0):
            raise ValueError(f"bonus_coeff must be finite and ≥ 0, got {self.bonus_coeff}")
        if not 0.0 <= self.online_ratio <= 1.0:
            raise ValueError(f"online_ratio must be in [0, 1], got {self.online_ratio}")
        for name in ("eval_episodes", "loss_variance_window", "batch_size"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        self.corruption  # noqa: B018 (validates k, σ and the removal mode)
        self.cadence  # noqa: B018 (validates the step settings)
        if self.log_every < self.batch_size:
            raise ValueError(
                f"log_every ({self.log_every}) must be ≥ batch_size ({self.batch_size}): "
                "updates start once the online buffer holds batch_size rows, and every log "
                "interval must contain updates"
            )

    @property
    def corruption(self) -> CorruptionConfig:
        return CorruptionConfig(self.removal, self.k_percent, self.reward_noise_std)

    @property
    def cadence(self) -> Cadence:
        return Cadence(self.online_steps, self.log_every, self.eval_every)

    @property
    def online_rows(self) -> int:
        """Rows of each batch from the online buffer: online_ratio · B rounded half up."""
        return math.floor(self.online_ratio * self.batch_size + 0.5)

    def phase1_train_config(self) -> TrainConfig:
        """The Phase I run this run starts from (its name and folder; not its full settings)."""
        return TrainConfig(
            algo=self.algo,
            dataset=self.dataset,
            removal=self.removal,
            k_percent=self.k_percent,
            reward_noise_std=self.reward_noise_std,
            seed=self.seed,
            results_dir=self.phase1_results_dir,
        )

    @property
    def run_name(self) -> str:
        """`ft_{Phase I run name with _{bonus_type} before _s{seed}}`."""
        phase1 = self.phase1_train_config().run_name
        seed_suffix = f"_s{self.seed}"
        return f"ft_{phase1.removesuffix(seed_suffix)}_{self.bonus_type}{seed_suffix}"

    @property
    def run_dir(self) -> Path:
        return Path(self.results_dir) / self.run_name

    # The run-spec interface (runs.spec.RunSpec) the launchers use.
    @property
    def folder(self) -> RunFolder:
        return RunFolder(self.run_dir)

    @property
    def budget(self) -> int:
        return self.online_steps

    @property
    def prerequisite(self) -> RunFolder | None:
        return self.phase1_train_config().folder

    @property
    def cost(self) -> RunCost:
        evaluations = self.online_steps // self.eval_every + 1
        return RunCost(
            "Phase II", self.algo, "online steps", ONLINE_STEP_COST, evaluations, self.eval_episodes
        )

    def identity_conflict(self) -> str | None:
        saved = self.folder.read_config()
        return None if saved is None else identity_conflict(self, saved["config"])

    def execute(self, progress: bool) -> dict[str, Any]:
        return finetune(self, progress)


class Phase1RunError(RuntimeError):
    """The Phase I run a Phase II run starts from is missing, unfinished or unusable."""


def phase1_command(config: FinetuneConfig) -> str:
    """The `run_phase1.py` command that creates the Phase I run `config` starts from."""
    parts = [
        "python run_phase1.py",
        f"--algo {config.algo}",
        f"--env {config.dataset}",
        f"--remove_top_k {config.k_percent:g}",
        f"--seed {config.seed}",
    ]
    if config.removal != "top":
        parts.append(f"--removal {config.removal}")
    if config.reward_noise_std:
        parts.append(f"--reward_noise {config.reward_noise_std:g}")
    results_dir = Path(config.phase1_results_dir)
    # `--quick` runs live in a 'quick' sub-folder; name the budget, not just the folder.
    if results_dir.name == "quick":
        parts.append("--quick")
        results_dir = results_dir.parent
    if results_dir != Path("results"):
        parts.append(f"--results_dir {results_dir}")
    return " ".join(parts)


@dataclass(frozen=True)
class Phase1Run:
    """A completed Phase I run, as a Phase II run needs it."""

    train_config: TrainConfig  # the full settings it was trained with
    checkpoint: Path
    checkpoint_sha256: str
    saved_config: dict[str, Any]  # its config.json
    final_normalized_return: float | None


def find_phase1_run(config: FinetuneConfig) -> Phase1Run:
    """The completed Phase I run of `config`; Phase1RunError (naming the command) otherwise."""
    folder = config.phase1_train_config().folder
    run_dir, checkpoint = folder.path, folder.checkpoint_path
    command = phase1_command(config)
    metrics, saved = folder.read_metrics(), folder.read_config()
    if not checkpoint.exists() or metrics is None or saved is None:
        raise Phase1RunError(
            f"Phase II run {config.run_name} starts from the Phase I checkpoint {checkpoint}, "
            f"which does not exist. Create it with:\n  {command}"
        )
    status = metrics["status"]
    if status == "running":
        raise Phase1RunError(
            f"the Phase I run in {run_dir} is unfinished (status 'running'); finish it first "
            f"(the same command resumes it):\n  {command}"
        )
    if status != "completed":
        raise Phase1RunError(
            f"the Phase I run in {run_dir} ended with status {status!r} "
            f"({metrics.get('summary', {})}); Phase II cannot start from it"
        )
    return Phase1Run(
        train_config=_train_config_from_json(saved["config"]),
        checkpoint=checkpoint,
        checkpoint_sha256=file_sha256(checkpoint),
        saved_config=saved,
        final_normalized_return=metrics["summary"].get("final_normalized_return"),
    )


def _train_config_from_json(fields: dict[str, Any]) -> TrainConfig:
    fields = with_former_settings(TrainConfig, fields)
    agent_fields = fields.pop("agent")
    agent = dataclasses.replace(default_config(fields["algo"]), **agent_fields)
    return TrainConfig(**fields, agent=agent)


def _derived_seed(*entropy: int) -> int:
    return int(np.random.SeedSequence(list(entropy)).generate_state(1)[0])


@torch.no_grad()
def ensemble_disagreement(agent: OnlineAgent, observations: Tensor, actions: Tensor) -> Tensor:
    """Unbiased std over critic members of Q(s, a) at raw observations [B, obs_dim]: [B]."""
    return agent.critic.disagreement(agent.normalizer(observations), actions)


class HybridSampler:
    """Batches of `online_rows` buffer rows followed by `batch_size − online_rows` dataset rows.

    Both parts are drawn uniformly with replacement, each from its own seeded generator.
    """

    def __init__(
        self,
        offline: OfflineDataset,
        online: ReplayBuffer,
        batch_size: int,
        online_rows: int,
        seed: int,
    ) -> None:
        if not 0 <= online_rows <= batch_size:
            raise ValueError(f"online_rows must be in [0, {batch_size}], got {online_rows}")
        self.offline, self.online = offline, online
        self.online_rows, self.offline_rows = online_rows, batch_size - online_rows
        self._generator = torch.Generator(device=online.device)
        self._generator.manual_seed(seed)

    def sample(self) -> TransitionBatch:
        if self.online_rows == 0:
            return self.offline.sample(self.offline_rows)
        online = self.online.sample(self.online_rows, generator=self._generator)
        if self.offline_rows == 0:
            return online
        return concat_batches(online, self.offline.sample(self.offline_rows))

    def state_dict(self) -> dict[str, Any]:
        return {"offline": self.offline.state_dict(), "online": self._generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.offline.load_state_dict(state["offline"])
        self._generator.set_state(state["online"])


class CollectedStep(NamedTuple):
    raw_reward: float  # env units
    disagreement: Tensor  # [1] at (s, a), critic units
    bonus: Tensor  # [1] added to the stored reward, critic units
    episode_return: float | None  # raw return of the episode that ended here, else None
    episode_length: int | None


class OnlineCollector:
    """Steps one env with the agent's stochastic policy and stores each transition.

    The stored reward is `reward_scale · r_env + bonus`, bonus = `bonus_coeff` ·
    disagreement(s, a) (or 0 with `bonus_coeff=None`). The real next observation is stored
    (Gymnasium 1.x single env: `step` returns it even at episode ends), with `terminated` and
    `truncated` kept apart.
    """

    def __init__(
        self,
        env_id: str,
        agent: OnlineAgent,
        buffer: ReplayBuffer,
        reward_scale: float,
        bonus_coeff: float | None,
        device: torch.device,
    ) -> None:
        self.env = make_env(env_id)
        self.agent, self.buffer, self.device = agent, buffer, device
        self.reward_scale, self.bonus_coeff = reward_scale, bonus_coeff
        self._obs: np.ndarray | None = None
        self._episode_return, self._episode_length = 0.0, 0

    def restart(self, seed: int | None) -> None:
        """Begin a new episode (seeded, or continuing the env's RNG with None)."""
        self._obs, _ = self.env.reset(seed=seed)
        self._episode_return, self._episode_length = 0.0, 0

    def step(self) -> CollectedStep:
        if self._obs is None:
            raise RuntimeError("call restart(seed) before the first step")
        obs = torch.as_tensor(self._obs, dtype=torch.float32, device=self.device).unsqueeze(0)
        action = self.agent.act(obs, deterministic=False)
        disagreement = ensemble_disagreement(self.agent, obs, action)
        next_obs, reward, terminated, truncated, _ = self.env.step(action[0].cpu().numpy())
        if self.bonus_coeff is None:
            bonus = torch.zeros_like(disagreement)
        else:
            bonus = self.bonus_coeff * disagreement
        self.buffer.add(
            obs,
            action,
            bonus + self.reward_scale * float(reward),
            next_obs[None],
            np.array([terminated]),
            np.array([truncated]),
        )
        self._episode_return += float(reward)
        self._episode_length += 1
        if not (terminated or truncated):
            self._obs = next_obs
            return CollectedStep(float(reward), disagreement, bonus, None, None)
        finished = (self._episode_return, self._episode_length)
        self.restart(None)
        return CollectedStep(float(reward), disagreement, bonus, *finished)

    def close(self) -> None:
        self.env.close()


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
    ) -> None:
        self.config, self.agent, self.buffer, self.sampler = config, agent, buffer, sampler
        self.collector, self.evaluator, self.phase1 = collector, evaluator, phase1
        self.reward_scale = reward_scale
        self.updates, self.raw_reward_sum = 0, 0.0
        self.episodes: dict[str, list[Any]] = {}

    def begin(self, start: int, log: MetricsLog) -> None:
        empty: dict[str, list[Any]] = {"steps": [], "return": [], "length": []}
        self.episodes = log.data.setdefault("online_episodes", empty)
        self.collector.restart(_derived_seed(self.config.seed, _EPISODE_STREAM, start))

    def step(self, step: int) -> dict[str, Tensor]:
        collected = self.collector.step()
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
        metrics |= self.agent.update(batch)
        online = self.sampler.online_rows
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
        return {
            "agent": self.agent.state_dict(),
            "sampler": self.sampler.state_dict(),
            "replay_buffer": None if final else self.buffer.state_dict(),
            "updates": self.updates,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.agent.load_state_dict(state["agent"])
        self.sampler.load_state_dict(state["sampler"])
        self.buffer.load_state_dict(state["replay_buffer"])
        self.updates = int(state["updates"])

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
    phase1 = find_phase1_run(config)
    if resume is not None:
        saved = folder.read_config()
        check_same_run(config, saved, folder.path)
        if saved is not None and saved["phase1"]["checkpoint_sha256"] != phase1.checkpoint_sha256:
            raise Phase1RunError(
                f"the Phase I checkpoint {phase1.checkpoint} changed since {folder.path} "
                f"started from it; start the Phase II run over with `hybrid-rl runs reset "
                f"{folder.path}`"
            )

    seed_everything(config.seed)
    loaded, dataset, stats, reward_scale, _ = prepare_dataset(phase1.train_config, device)
    _check_same_dataset(phase1, loaded.provenance.sha256, reward_scale)
    from_phase1 = get_algorithm(config.algo).from_phase1
    assert from_phase1 is not None  # FinetuneConfig accepts only algorithms that fine-tune
    agent = from_phase1(phase1.checkpoint, config.n_ensemble, phase1.train_config.agent, device)
    buffer = ReplayBuffer(config.online_steps, dataset.obs_dim, dataset.act_dim, device)
    sampler = HybridSampler(
        dataset,
        buffer,
        config.batch_size,
        config.online_rows,
        _derived_seed(config.seed, _ONLINE_SAMPLER_STREAM),
    )
    env_id = loaded.provenance.env_id or config.dataset
    bonus_coeff = config.bonus_coeff if config.bonus_type == "ensemble" else None
    collector = OnlineCollector(env_id, agent, buffer, reward_scale, bonus_coeff, device)
    _write_config(config, phase1, loaded.provenance, stats.to_dict(), reward_scale, agent, device)
    evaluator = PolicyEvaluator(env_id, config.eval_episodes, device)
    task = OnlineTask(config, agent, buffer, sampler, collector, evaluator, phase1, reward_scale)
    return run_loop(
        folder, task, config.cadence, resume, device, config.loss_variance_window, progress
    )


def _check_same_dataset(phase1: Phase1Run, sha256: str, reward_scale: float) -> None:
    expected_sha = phase1.saved_config["dataset"]["sha256"]
    if sha256 != expected_sha:
        raise Phase1RunError(
            f"the dataset file now has sha256 {sha256}, but the Phase I run trained on "
            f"{expected_sha}; restore that file (or rerun Phase I) so both phases see the "
            "same data"
        )
    if reward_scale != phase1.saved_config["reward_scale"]:
        raise Phase1RunError(
            f"the rebuilt dataset's reward scale is {reward_scale}, Phase I used "
            f"{phase1.saved_config['reward_scale']}; the corruption is not reproduced"
        )


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
            "online_agent_config": dataclasses.asdict(agent_config),
            "agent_config_class": type(agent_config).__name__,
            "online_batch": {
                "online_rows": config.online_rows,
                "offline_rows": config.batch_size - config.online_rows,
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
