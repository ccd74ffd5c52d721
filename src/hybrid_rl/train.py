"""The offline loop of Phase I: corrupt a dataset, train an agent on it, evaluate.

A run writes into `results_dir/<run name>/` (see `runs.folder`): config.json (the full
config, git commit, software versions, dataset provenance, corruption stats), metrics.json
and checkpoint.pt (agent, optimizers, sampler and RNG states, step), all atomically; an
interrupted run resumes from its checkpoint. Only what is offline-specific lives here: the
shared loop is `runs.loop`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple

import torch
from torch import Tensor

from hybrid_rl.algos.agent import Agent
from hybrid_rl.algos.ensemble import MAX_MEMBERS, PHASE1_MEMBERS
from hybrid_rl.algos.precision import Precision, check_precision
from hybrid_rl.algos.registry import PRECISION_ALGOS, get_algorithm
from hybrid_rl.algos.seed_stack import SeedStack, stackable
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
from hybrid_rl.runs.loop import Cadence, LoopTask, finished_metrics, run_lockstep, run_loop
from hybrid_rl.runs.metrics import MetricsLog
from hybrid_rl.runs.spec import RunCost
from hybrid_rl.seeding import resolve_device, rng_state, seed_everything
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
    def folders(self) -> tuple[RunFolder, ...]:
        return (self.folder,)

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
            "Phase I", self.algo, "updates", False, evaluations, self.eval_episodes, datasets
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

    def first_steps_stage(self) -> str:
        compiles = getattr(self.config.agent, "compile", False)
        return "compiling the update (seconds to minutes)" if compiles else "first steps"

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
    agent, dataset, env_id = _start_run(config, device)
    evaluator = PolicyEvaluator(env_id, config.eval_episodes, device)
    writer = _tensorboard_writer(folder.path) if config.tensorboard else None
    task = OfflineTask(config, agent, dataset, evaluator, writer)
    return run_loop(
        folder, task, config.cadence, resume, device, config.loss_variance_window, progress
    )


def _start_run(config: TrainConfig, device: torch.device) -> tuple[Agent, OfflineDataset, str]:
    """Seed, prepare the dataset, build the agent and write config.json, as every run starts;
    the agent, the dataset and the env id to evaluate in."""
    seed_everything(config.seed)
    loaded, dataset, stats, reward_scale, reward_scales = prepare_dataset(config, device)
    agent = get_algorithm(config.algo).agent_class(
        dataset.obs_dim, dataset.act_dim, config.agent, device
    )
    agent.set_observation_statistics(dataset.observation_mean, dataset.observation_std)
    config.folder.write_config(
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
    return agent, dataset, loaded.provenance.env_id or config.dataset


@dataclass(frozen=True)
class SeedGroup:
    """Runs that differ only in their seed, executed in one process as one seed stack
    (`algos.seed_stack`): each keeps its own folder, files, data stream, RNG and evaluation,
    and ends with the results its separate run would have (up to float rounding).

    A launcher sees it as one run (`runs.spec.RunSpec`) writing several folders.
    """

    runs: tuple[TrainConfig, ...]

    def __post_init__(self) -> None:
        first = self.runs[0]
        if not stackable(get_algorithm(first.algo).agent_class):
            raise ValueError(
                f"{first.algo} runs cannot share a process (seeds_per_process > 1 stacks "
                "iql, bc and td3bc); run them with seeds_per_process 1"
            )
        others = {repr(dataclasses.replace(run, seed=first.seed)) for run in self.runs}
        if len(others) != 1 or len({run.seed for run in self.runs}) != len(self.runs):
            raise ValueError("a seed group holds runs that differ in their seed only")

    @property
    def run_name(self) -> str:
        seeds = "+".join(str(run.seed) for run in self.runs)
        return f"{self.runs[0].run_name.rsplit('_s', 1)[0]}_s{seeds}"

    @property
    def folders(self) -> tuple[RunFolder, ...]:
        return tuple(run.folder for run in self.runs)

    @property
    def budget(self) -> int:
        return sum(run.budget for run in self.runs)

    @property
    def prerequisite(self) -> RunFolder | None:
        return None

    @property
    def device(self) -> str:
        return self.runs[0].device

    @property
    def cost(self) -> RunCost:
        # Priced as its runs one after the other: stacked IQL seeds ran at 0.9-1.2x the
        # per-seed speed of separate runs in first timings on a loaded machine
        # (docs/scaling.md); what they gain is to be measured by benchmarks/bench_grid.py.
        return dataclasses.replace(self.runs[0].cost, runs=len(self.runs))

    def identity_conflict(self) -> str | None:
        conflicts = [
            f"{run.folder.path}: {conflict}"
            for run in self.runs
            if (conflict := run.identity_conflict()) is not None
        ]
        return "; ".join(conflicts) or None

    def execute(self, progress: bool) -> dict[str, Any]:
        results = train_offline_group(self.runs, progress)
        statuses = {metrics["status"] for metrics in results}
        return {"status": "diverged" if "diverged" in statuses else "completed"}


class SeedTask(OfflineTask):
    """One seed of a seed stack as the loop sees it: its own data stream, evaluation and
    checkpoint; the stack does the update of all seeds at once."""

    def __init__(
        self,
        config: TrainConfig,
        stack: SeedStack,
        index: int,
        dataset: OfflineDataset,
        evaluator: PolicyEvaluator,
        rng: dict[str, Any],
    ) -> None:
        super().__init__(config, stack.agents[index], dataset, evaluator, writer=None)
        self.stack, self.index, self._rng = stack, index, rng

    def evaluate(self, step: int, log: MetricsLog) -> None:
        self.agent = self.stack.seed_agent(self.index)
        super().evaluate(step, log)

    def state_dict(self, final: bool) -> dict[str, Any]:
        return {"agent": self.stack.state_dict(self.index), "sampler": self.dataset.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.dataset.load_state_dict(state["sampler"])  # the agent: by the whole stack

    def rng_state(self) -> dict[str, Any]:
        # The seed's own torch stream in place of the process's (python and numpy are not
        # drawn from after the start; they are kept as they were then).
        return {**self._rng, "torch": self.stack.generators[self.index].get_state()}

    def restore_rng_state(self, state: dict[str, Any]) -> None:
        self.stack.generators[self.index].set_state(state["torch"])

    def close(self) -> None:
        """The evaluator is shared by the group; it closes it."""


def train_offline_group(runs: Sequence[TrainConfig], progress: bool = True) -> list[dict[str, Any]]:
    """Run (or resume, or skip if complete) runs that differ only in their seed as seed
    stacks; returns each run's metrics. Unfinished runs resumed from the same step train
    together; runs resumed from different steps (a stop between two runs' checkpoints) train
    in one stack per step, one after the other."""
    device = resolve_device(runs[0].device)
    results: dict[str, dict[str, Any]] = {}
    by_start: dict[int, list[tuple[TrainConfig, dict[str, Any] | None]]] = {}
    for config in runs:
        resume = config.folder.load_checkpoint(device)
        if (finished := finished_metrics(resume)) is not None:
            results[config.run_name] = finished
            continue
        if resume is not None:
            check_same_run(config, config.folder.read_config(), config.folder.path)
        by_start.setdefault(0 if resume is None else int(resume["step"]), []).append(
            (config, resume)
        )
    for members in by_start.values():
        metrics = _train_stack(members, device, progress)
        results |= {config.run_name: m for (config, _), m in zip(members, metrics, strict=True)}
    return [results[config.run_name] for config in runs]


def _train_stack(
    members: Sequence[tuple[TrainConfig, dict[str, Any] | None]],
    device: torch.device,
    progress: bool,
) -> list[dict[str, Any]]:
    agents, datasets, generators, rngs = [], [], [], []
    for config, _ in members:
        agent, dataset, env_id = _start_run(config, device)
        agents.append(agent)
        datasets.append(dataset)
        rngs.append(rng_state())
        generator = torch.Generator(device)
        generator.set_state(
            torch.get_rng_state() if device.type == "cpu" else torch.cuda.get_rng_state(device)
        )
        generators.append(generator)
    first = members[0][0]
    host = get_algorithm(first.algo).agent_class(
        datasets[0].obs_dim, datasets[0].act_dim, first.agent, device
    )
    stack = SeedStack(agents, host, generators)
    resumes = [resume for _, resume in members]
    if resumes[0] is not None:
        stack.load_state_dicts([resume["agent"] for resume in resumes if resume is not None])
    evaluator = PolicyEvaluator(env_id, first.eval_episodes, device)
    tasks = [
        SeedTask(config, stack, index, datasets[index], evaluator, rngs[index])
        for index, (config, _) in enumerate(members)
    ]
    batch_size = first.agent.batch_size

    def step(_: int) -> list[dict[str, Tensor]]:
        return stack.update([dataset.sample(batch_size) for dataset in datasets])

    runs = [
        (config.folder, task, resume) for (config, resume), task in zip(members, tasks, strict=True)
    ]
    try:
        return run_lockstep(runs, step, first.cadence, device, first.loss_variance_window, progress)
    finally:
        evaluator.close()


def _tensorboard_writer(run_dir: Path) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as err:
        raise RuntimeError(
            "--tensorboard needs the tensorboard package: pip install 'hybrid-rl[tensorboard]'"
        ) from err
    return SummaryWriter(log_dir=str(run_dir / "tensorboard"))
