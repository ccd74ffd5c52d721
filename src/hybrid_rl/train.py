"""The offline training loop of Phase I: corrupt a dataset, train an agent on it, evaluate.

A run writes into `results_dir/<run name>/`:
- `config.json`: the full config, git commit, software versions, dataset provenance and
  corruption stats;
- `metrics.json`: training metrics every `log_every` steps, evaluations every `eval_every`
  steps, `status` (running | completed | diverged) and a summary;
- `checkpoint.pt`: agent, optimizers, sampler and RNG states, step: an interrupted run resumes
  from it. All three are written atomically.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from tqdm import tqdm

from hybrid_rl.algos.iql import IQLConfig
from hybrid_rl.algos.registry import Agent, AgentConfig, default_config, make_agent
from hybrid_rl.atomic_io import save_torch_atomic, write_json_atomic
from hybrid_rl.behavior.replica import ensure_replica
from hybrid_rl.data.corruption import CorruptionConfig, CorruptionStats, RemovalMode, corrupt
from hybrid_rl.data.dataset import OfflineDataset, iql_reward_scale
from hybrid_rl.data.loader import LoadedDataset, load_dataset
from hybrid_rl.eval.rollout import PolicyEvaluator
from hybrid_rl.provenance import git_commit, software_versions
from hybrid_rl.seeding import resolve_device, restore_rng_state, rng_state, seed_everything

# From this many gradient steps on, IQL's update is compiled by default: the compile costs
# 4-30 s once, compiled updates save about 1 ms each (docs/benchmarks.md).
COMPILE_MIN_STEPS = 50_000


@dataclass
class TrainConfig:
    algo: str = "iql"
    dataset: str = "halfcheetah-medium-v2"
    source: str = "auto"
    removal: RemovalMode = "top"  # "top" | "random": which trajectories k% removes
    k_percent: float = 0.0
    reward_noise_std: float = 0.0
    seed: int = 0
    total_steps: int = 500_000
    log_every: int = 1_000
    eval_every: int = 5_000
    eval_episodes: int = 10
    loss_variance_window: int = 1_000  # steps of critic loss behind each rolling variance
    device: str = "auto"
    results_dir: str = "results"
    tensorboard: bool = False
    agent: AgentConfig | None = None  # None: the algorithm's DESIGN.md defaults

    def __post_init__(self) -> None:
        if self.agent is None:
            self.agent = default_config(self.algo)
            if isinstance(self.agent, IQLConfig):
                # IQL's actor-lr cosine decays over the whole run.
                self.agent.max_steps = self.total_steps
                self.agent.compile = self.total_steps >= COMPILE_MIN_STEPS
        for name in (
            "total_steps",
            "log_every",
            "eval_every",
            "eval_episodes",
            "loss_variance_window",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.total_steps % self.log_every:
            raise ValueError(
                f"total_steps ({self.total_steps}) must be a multiple of log_every "
                f"({self.log_every}) so that the last step is logged"
            )
        if self.eval_every % self.log_every:
            raise ValueError(
                f"eval_every ({self.eval_every}) must be a multiple of log_every "
                f"({self.log_every}) so that checkpoints fall on logged steps"
            )

    @property
    def corruption(self) -> CorruptionConfig:
        return CorruptionConfig(self.removal, self.k_percent, self.reward_noise_std)

    @property
    def run_name(self) -> str:
        dataset = (
            Path(self.dataset).stem if self.dataset.endswith((".hdf5", ".h5")) else self.dataset
        )
        return f"{self.algo}_{dataset}_{self.corruption.name_part}_s{self.seed}"

    @property
    def run_dir(self) -> Path:
        return Path(self.results_dir) / self.run_name


def prepare_dataset(
    config: TrainConfig, device: torch.device
) -> tuple[LoadedDataset, OfflineDataset, CorruptionStats, float]:
    """Load, corrupt and move the run's dataset to `device`; also returns the reward scale."""
    loaded = load_dataset(config.dataset, config.source, replica_provider=ensure_replica)
    corrupted, stats = corrupt(loaded.transitions, config.corruption, config.seed)
    # IQL's locomotion rule scales by the return range of the data it actually trains on.
    scale = iql_reward_scale(corrupted) if config.algo == "iql" else 1.0
    return loaded, OfflineDataset(corrupted, device, config.seed, scale), stats, scale


class MetricsLog:
    """Training metrics every `log_every` steps and evaluations, kept as plain lists."""

    def __init__(self, state: dict[str, Any] | None = None) -> None:
        self.data: dict[str, Any] = state or {
            "status": "running",
            "train": {"steps": []},
            "eval": {
                "steps": [],
                "normalized_return_mean": [],
                "normalized_return_std": [],
                "return_mean": [],
                "return_std": [],
            },
            "summary": {},
        }

    def log_train(self, step: int, values: dict[str, float]) -> None:
        train = self.data["train"]
        train["steps"].append(step)
        for key, value in values.items():
            train.setdefault(key, []).append(value)

    def log_eval(self, step: int, returns: Tensor | Any, normalized: Any) -> None:
        ev = self.data["eval"]
        ev["steps"].append(step)
        ev["normalized_return_mean"].append(float(normalized.mean()))
        ev["normalized_return_std"].append(float(normalized.std()))
        ev["return_mean"].append(float(returns.mean()))
        ev["return_std"].append(float(returns.std()))

    def latest_score(self) -> float | None:
        scores = self.data["eval"]["normalized_return_mean"]
        return scores[-1] if scores else None

    def finish_if_diverged(self, step: int, values: dict[str, float], run_name: str) -> bool:
        """Mark the run diverged at `step` if any logged value is NaN or infinite."""
        bad = sorted(k for k, v in values.items() if not math.isfinite(v))
        if not bad:
            return False
        self.finish("diverged", diverged_at_step=step, non_finite_metrics=bad)
        print(
            f"{run_name}: diverged before step {step} ({', '.join(bad)} not finite); "
            "recorded, moving on",
            file=sys.stderr,
        )
        return True

    def finish(self, status: str, **extra: Any) -> None:
        scores = self.data["eval"]["normalized_return_mean"]
        self.data["status"] = status
        self.data["summary"] = {
            "final_normalized_return": scores[-1] if scores else None,
            "best_normalized_return": max(scores) if scores else None,
            "evaluations": len(scores),
            **extra,
        }


class LossWindow:
    """The last `size` per-step losses, kept on the device (no host sync per step)."""

    def __init__(self, size: int, device: torch.device) -> None:
        self.values = torch.full((size,), float("nan"), device=device)
        self.count = 0

    def push(self, loss: Tensor) -> None:
        self.values[self.count % self.values.shape[0]] = loss
        self.count += 1

    def variance(self) -> Tensor:
        filled = self.values[: min(self.count, self.values.shape[0])]
        return filled.var() if filled.numel() > 1 else torch.zeros((), device=filled.device)


def _write_config(
    config: TrainConfig,
    loaded: LoadedDataset,
    stats: CorruptionStats,
    reward_scale: float,
    device: torch.device,
) -> None:
    write_json_atomic(
        config.run_dir / "config.json",
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
        },
    )


def _checkpoint(
    path: Path,
    agent: Agent,
    dataset: OfflineDataset,
    log: MetricsLog,
    loss_window: LossWindow,
    step: int,
) -> None:
    save_torch_atomic(
        path,
        {
            "agent": agent.state_dict(),
            "sampler": dataset.state_dict(),
            "rng": rng_state(),
            "metrics": log.data,
            "loss_window": (loss_window.values.cpu(), loss_window.count),
            "step": step,
        },
    )


def train_offline(config: TrainConfig, progress: bool = True) -> dict[str, Any]:
    """Run (or resume, or skip if complete) one offline run; returns its metrics."""
    run_dir = config.run_dir
    device = resolve_device(config.device)
    seed_everything(config.seed)
    loaded, dataset, stats, reward_scale = prepare_dataset(config, device)
    agent = make_agent(
        config.algo, dataset.observations.shape[1], dataset.actions.shape[1], config.agent, device
    )
    agent.set_observation_statistics(dataset.observation_mean, dataset.observation_std)
    log, loss_window, start = MetricsLog(), LossWindow(config.loss_variance_window, device), 0

    checkpoint_path = run_dir / "checkpoint.pt"
    if checkpoint_path.exists():
        state = torch.load(checkpoint_path, map_location=device, weights_only=False)
        if state["metrics"]["status"] != "running":
            return state["metrics"]
        agent.load_state_dict(state["agent"])
        dataset.load_state_dict(state["sampler"])
        restore_rng_state(state["rng"])
        log, start = MetricsLog(state["metrics"]), state["step"]
        loss_window.values.copy_(state["loss_window"][0])
        loss_window.count = state["loss_window"][1]
        print(f"resuming {run_dir.name} from step {start}", file=sys.stderr)
    _write_config(config, loaded, stats, reward_scale, device)
    writer = _tensorboard_writer(run_dir) if config.tensorboard else None

    def act(obs: Tensor) -> Tensor:
        return agent.act(obs, deterministic=True)

    evaluator = PolicyEvaluator(
        loaded.provenance.env_id or config.dataset, config.eval_episodes, device
    )

    def evaluate(step: int) -> None:
        result = evaluator.evaluate(act, seed=1_000_000 * config.seed + step)
        log.log_eval(step, result.returns, result.normalized)
        if writer is not None:
            writer.add_scalar("eval/normalized_return", result.normalized_mean, step)

    if start == 0:
        evaluate(0)
    batch_size = config.agent.batch_size  # type: ignore[union-attr]
    sums: dict[str, Tensor] = {}
    bar = tqdm(
        range(start, config.total_steps),
        initial=start,
        total=config.total_steps,
        desc=config.run_name,
        disable=not progress,
        mininterval=2,
        leave=False,
    )
    for step in bar:
        metrics = agent.update(dataset.sample(batch_size))
        for key, value in metrics.items():
            sums[key] = sums[key] + value if key in sums else value.clone()
        loss_window.push(metrics.get("critic_loss", metrics["actor_loss"]))
        done = step + 1
        if done % config.log_every:
            continue
        # One host sync per log interval: means over the interval and the rolling variance.
        means = {k: v / config.log_every for k, v in sums.items()}
        means["critic_loss_rolling_var"] = loss_window.variance()
        values = dict(zip(means, torch.stack(list(means.values())).tolist(), strict=True))
        sums = {}
        log.log_train(done, values)
        if writer is not None:
            for key, value in values.items():
                writer.add_scalar(f"train/{key}", value, done)
        if log.finish_if_diverged(done, values, config.run_name):
            break
        if done % config.eval_every == 0 or done == config.total_steps:
            evaluate(done)
            bar.set_postfix(score=f"{log.latest_score():.1f}")
            if done == config.total_steps:
                log.finish("completed")
            _checkpoint(checkpoint_path, agent, dataset, log, loss_window, done)
            write_json_atomic(run_dir / "metrics.json", log.data)
    bar.close()
    evaluator.close()
    if log.data["status"] == "diverged":
        _checkpoint(checkpoint_path, agent, dataset, log, loss_window, done)
    write_json_atomic(run_dir / "metrics.json", log.data)
    if writer is not None:
        writer.close()
    return log.data


def _tensorboard_writer(run_dir: Path) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as err:
        raise RuntimeError(
            "--tensorboard needs the tensorboard package: pip install 'hybrid-rl[tensorboard]'"
        ) from err
    return SummaryWriter(log_dir=str(run_dir / "tensorboard"))
