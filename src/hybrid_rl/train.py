"""The offline loop of Phase I: corrupt a dataset, train an agent on it, evaluate.

A run writes into `results_dir/<run name>/` (see `runs.folder`): config.json (the full
config, git commit, software versions, dataset provenance, corruption stats), metrics.json
and checkpoint.pt (agent, optimizers, sampler and RNG states, step), all atomically; an
interrupted run resumes from its checkpoint. Only what is offline-specific lives here: the
shared loop is `runs.loop`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple

import torch
from torch import Tensor

from hybrid_rl.algos.agent import Agent
from hybrid_rl.algos.ensemble import MAX_MEMBERS, PHASE1_MEMBERS
from hybrid_rl.algos.precision import Precision, check_precision
from hybrid_rl.algos.registry import PRECISION_ALGOS, get_algorithm
from hybrid_rl.behavior.replica import ensure_replica
from hybrid_rl.data.corruption import (
    AttackMode,
    AttackTarget,
    CorruptionConfig,
    CorruptionStats,
    RemovalMode,
    corrupt,
)
from hybrid_rl.data.dataset import OfflineDataset
from hybrid_rl.data.loader import LoadedDataset, load_dataset
from hybrid_rl.data.transitions import split_trajectories
from hybrid_rl.eval.rollout import PolicyEvaluator
from hybrid_rl.provenance import git_commit, software_versions
from hybrid_rl.runs.folder import RunFolder
from hybrid_rl.runs.identity import check_same_run, identity_conflict
from hybrid_rl.runs.loop import Cadence, LoopTask, finished_metrics, run_loop
from hybrid_rl.runs.metrics import MetricsLog
from hybrid_rl.runs.spec import RunCost
from hybrid_rl.seeding import resolve_device, seed_everything
from hybrid_rl.settings import EXECUTION, added_setting, with_former_settings


@dataclass
class TrainConfig:
    algo: str = "iql"
    dataset: str = "halfcheetah-medium-v2"
    source: str = "auto"
    removal: RemovalMode = "top"  # "top" | "random": which trajectories k% removes
    k_percent: float = 0.0
    reward_noise_std: float = 0.0
    attack: AttackTarget = "none"  # RIQL-style corruption of a share of the transitions
    attack_mode: AttackMode = "random"
    attack_rate: float = 0.3
    attack_scale: float = 1.0
    seed: int = 0
    total_steps: int = 500_000
    log_every: int = 1_000
    eval_every: int = 5_000
    eval_episodes: int = 10
    loss_variance_window: int = 1_000  # steps of critic loss behind each rolling variance
    # The data the algorithm's reward scale (IQL: 1000 / return range) is computed on: the
    # clean dataset, so that the units do not move with the corruption (DESIGN.md §5), or the
    # corrupted data the agent trains on (what runs saved before this setting did).
    reward_scale_data: Literal["clean", "corrupted"] = field(
        default="clean", metadata=added_setting("corrupted")
    )
    # Critic members trained offline: twin Q (the spec), or N so that Phase II can load every
    # member of its N-member ensemble trained (`--fresh_init phase1`, as ENOTO pretrains all).
    n_critics: int = PHASE1_MEMBERS
    # The dtype of the critic's matrix products (`algos.precision`; CQL only): bf16 changes
    # every Q value's rounding, so a run's precision is part of what it computes, not an
    # execution detail; where the hardware lacks bf16 the agent falls back to fp32 and says so.
    precision: Precision = "fp32"
    device: str = field(default="auto", metadata=EXECUTION)
    results_dir: str = field(default="results", metadata=EXECUTION)
    tensorboard: bool = field(default=False, metadata=EXECUTION)
    agent: Any = None  # the algorithm's config; None: its DESIGN.md defaults for this budget

    def __post_init__(self) -> None:
        algorithm = get_algorithm(self.algo)
        if self.agent is None:
            self.agent = algorithm.for_budget(algorithm.default_config(), self.total_steps)
        if hasattr(self.agent, "critic_members"):
            if not PHASE1_MEMBERS <= self.n_critics <= MAX_MEMBERS:
                raise ValueError(
                    f"n_critics must be in [{PHASE1_MEMBERS}, {MAX_MEMBERS}], got {self.n_critics}"
                )
            self.agent = dataclasses.replace(self.agent, critic_members=self.n_critics)
        elif self.n_critics != PHASE1_MEMBERS:
            raise ValueError(f"{self.algo} trains no critic; n_critics must stay {PHASE1_MEMBERS}")
        check_precision(self.precision)
        if hasattr(self.agent, "precision"):
            self.agent = dataclasses.replace(self.agent, precision=self.precision)
        elif self.precision != "fp32":
            raise ValueError(
                f"precision {self.precision} applies to {', '.join(PRECISION_ALGOS)} only, "
                f"not to {self.algo}"
            )
        self.corruption  # noqa: B018 (validates k, σ and the removal mode)
        for name in ("eval_episodes", "loss_variance_window"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        self.cadence  # noqa: B018 (validates the step settings)

    @classmethod
    def from_saved(cls, fields: dict[str, Any]) -> TrainConfig:
        """The config a run's config.json saved ("config"); a setting added since takes the
        value that reproduces what the run did (`settings.with_former_settings`)."""
        fields = with_former_settings(cls, fields)
        agent_fields = fields.pop("agent")
        agent = dataclasses.replace(get_algorithm(fields["algo"]).default_config(), **agent_fields)
        return cls(**fields, agent=agent)

    @property
    def corruption(self) -> CorruptionConfig:
        return CorruptionConfig(
            self.removal,
            self.k_percent,
            self.reward_noise_std,
            self.attack,
            self.attack_mode,
            self.attack_rate,
            self.attack_scale,
        )

    @property
    def cadence(self) -> Cadence:
        return Cadence(self.total_steps, self.log_every, self.eval_every)

    @property
    def run_name(self) -> str:
        dataset = (
            Path(self.dataset).stem if self.dataset.endswith((".hdf5", ".h5")) else self.dataset
        )
        critics = "" if self.n_critics == PHASE1_MEMBERS else f"_c{self.n_critics}"
        return f"{self.algo}_{dataset}_{self.corruption.name_part}{critics}_s{self.seed}"

    @property
    def run_dir(self) -> Path:
        return Path(self.results_dir) / self.run_name

    # The run-spec interface (runs.spec.RunSpec) the launchers use.
    @property
    def folder(self) -> RunFolder:
        return RunFolder(self.run_dir)

    @property
    def budget(self) -> int:
        return self.total_steps

    @property
    def prerequisite(self) -> RunFolder | None:
        return None

    @property
    def cost(self) -> RunCost:
        evaluations = self.total_steps // self.eval_every + 1
        datasets = ((self.dataset, self.source),)
        return RunCost(
            "Phase I", self.algo, "updates", 1.0, evaluations, self.eval_episodes, datasets
        )

    def identity_conflict(self) -> str | None:
        saved = self.folder.read_config()
        return None if saved is None else identity_conflict(self, saved["config"])

    def execute(self, progress: bool) -> dict[str, Any]:
        return train_offline(self, progress)


class PreparedData(NamedTuple):
    loaded: LoadedDataset
    dataset: OfflineDataset  # corrupted, rewards scaled, on the device
    stats: CorruptionStats
    reward_scale: float  # the one applied
    reward_scales: dict[str, float]  # {"clean": ..., "corrupted": ...}, both recorded


def prepare_dataset(config: TrainConfig, device: torch.device) -> PreparedData:
    """Load, corrupt and move the run's dataset to `device`, with the algorithm's reward scale
    from the data `config.reward_scale_data` names."""
    loaded = load_dataset(config.dataset, config.source, replica_provider=ensure_replica)
    corrupted, stats = corrupt(loaded.transitions, config.corruption, config.seed)
    hook = get_algorithm(config.algo).reward_scale
    scales = {
        "clean": hook(split_trajectories(loaded.transitions).returns),
        "corrupted": hook(split_trajectories(corrupted).returns),
    }
    scale = scales[config.reward_scale_data]
    dataset = OfflineDataset(corrupted, device, config.seed, scale)
    return PreparedData(loaded, dataset, stats, scale, scales)


class OfflineTask(LoopTask):
    """One update on one batch per step; evaluation of the deterministic policy."""

    def __init__(
        self,
        config: TrainConfig,
        agent: Agent,
        dataset: OfflineDataset,
        evaluator: PolicyEvaluator,
        writer: Any | None,
    ) -> None:
        self.config, self.agent, self.dataset = config, agent, dataset
        self.evaluator, self.writer = evaluator, writer
        self.batch_size = config.agent.batch_size

    def step(self, step: int) -> Mapping[str, Tensor]:
        return self.agent.update(self.dataset.sample(self.batch_size))

    def evaluate(self, step: int, log: MetricsLog) -> None:
        result = self.evaluator.evaluate(
            lambda obs: self.agent.act(obs, deterministic=True),
            seed=1_000_000 * self.config.seed + step,
        )
        log.log_eval(step, result.returns, result.normalized)
        if self.writer is not None:
            self.writer.add_scalar("eval/normalized_return", result.normalized_mean, step)

    def interval_values(
        self, step: int, values: dict[str, float | None]
    ) -> dict[str, float | None]:
        if self.writer is not None:
            for key, value in values.items():
                if value is not None:
                    self.writer.add_scalar(f"train/{key}", value, step)
        return values

    def state_dict(self, final: bool) -> dict[str, Any]:
        return {"agent": self.agent.state_dict(), "sampler": self.dataset.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.agent.load_state_dict(state["agent"])
        self.dataset.load_state_dict(state["sampler"])

    def close(self) -> None:
        self.evaluator.close()
        if self.writer is not None:
            self.writer.close()


def train_offline(config: TrainConfig, progress: bool = True) -> dict[str, Any]:
    """Run (or resume, or skip if complete) one offline run; returns its metrics."""
    folder = config.folder
    device = resolve_device(config.device)
    resume = folder.load_checkpoint(device)
    if (finished := finished_metrics(resume)) is not None:
        return finished
    if resume is not None:
        check_same_run(config, folder.read_config(), folder.path)
    seed_everything(config.seed)
    loaded, dataset, stats, reward_scale, reward_scales = prepare_dataset(config, device)
    agent = get_algorithm(config.algo).agent_class(
        dataset.obs_dim, dataset.act_dim, config.agent, device
    )
    agent.set_observation_statistics(dataset.observation_mean, dataset.observation_std)
    folder.write_config(
        {
            "run_name": config.run_name,
            "config": dataclasses.asdict(config),
            "agent_config_class": type(config.agent).__name__,
            "device": str(device),
            "git_commit": git_commit(),
            "versions": software_versions(),
            "dataset": dataclasses.asdict(loaded.provenance),
            "corruption": stats.to_dict(),
            "reward_scale": reward_scale,
            "reward_scales": reward_scales,
        }
    )
    evaluator = PolicyEvaluator(
        loaded.provenance.env_id or config.dataset, config.eval_episodes, device
    )
    writer = _tensorboard_writer(folder.path) if config.tensorboard else None
    task = OfflineTask(config, agent, dataset, evaluator, writer)
    return run_loop(
        folder, task, config.cadence, resume, device, config.loss_variance_window, progress
    )


def _tensorboard_writer(run_dir: Path) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as err:
        raise RuntimeError(
            "--tensorboard needs the tensorboard package: pip install 'hybrid-rl[tensorboard]'"
        ) from err
    return SummaryWriter(log_dir=str(run_dir / "tensorboard"))
