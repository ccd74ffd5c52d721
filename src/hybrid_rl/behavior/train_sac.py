"""Online SAC training of a behaviour policy, with actor snapshots to choose a replica level from.

Outputs in `out_dir`: config.json, metrics.json (training metrics, deterministic evaluations
and the curve), checkpoint.pt (networks, optimizers, replay buffer, RNG, step: an interrupted
run resumes from it, through the loop every run shares, `runs.loop`), curve.json
(deterministic and stochastic evaluations), curve.png and actors/actor_step{N}.pt (policy
snapshots).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from hybrid_rl.algos.sac import SAC, SACConfig
from hybrid_rl.atomic_io import save_torch_atomic, write_json_atomic
from hybrid_rl.behavior.carry import start_from_carry
from hybrid_rl.data.replay_buffer import ReplayBuffer
from hybrid_rl.envs import make_env
from hybrid_rl.eval.rollout import evaluate_policy
from hybrid_rl.runs.folder import RunFolder
from hybrid_rl.runs.loop import Cadence, LoopTask, finished_metrics, run_loop
from hybrid_rl.runs.metrics import MetricsLog
from hybrid_rl.seeding import resolve_device, seed_everything
from hybrid_rl.settings import EXECUTION


@dataclass
class BehaviorTrainConfig:
    env_id: str = "HalfCheetah-v4"
    total_steps: int = 300_000
    seed: int = 0
    learning_starts: int = 5_000
    eval_every: int = 5_000
    eval_episodes: int = 10
    log_every: int = 1_000
    resume_every: int = 25_000
    out_dir: str = dataclasses.field(default="behavior_runs/halfcheetah_s0", metadata=EXECUTION)
    device: str = dataclasses.field(default="cpu", metadata=EXECUTION)
    sac: SACConfig = dataclasses.field(default_factory=SACConfig)


def save_actor_snapshot(
    path: Path, agent: SAC, config: BehaviorTrainConfig, step: int, obs_dim: int, act_dim: int
) -> None:
    save_torch_atomic(
        path,
        {
            "actor": agent.actor.state_dict(),
            "actor_class": "TanhGaussianActor",
            "env_id": config.env_id,
            "obs_dim": obs_dim,
            "act_dim": act_dim,
            "train_step": step,
            "seed": config.seed,
        },
    )


def plot_curve(curve: dict[str, list[float]], env_id: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(curve["steps"], curve["deterministic"], label="deterministic (tanh of mean)")
    ax.plot(curve["steps"], curve["stochastic"], label="stochastic (sampled actions)")
    ax.set_xlabel("environment steps")
    ax.set_ylabel("D4RL normalized return")
    ax.set_title(f"SAC behaviour policy on {env_id}")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


class BehaviorTask(LoopTask):
    """One env step per step (random actions until `learning_starts`), then one SAC update."""

    def __init__(
        self, config: BehaviorTrainConfig, agent: SAC, buffer: ReplayBuffer, device: torch.device
    ) -> None:
        self.config, self.agent, self.buffer, self.device = config, agent, buffer, device
        self.env = make_env(config.env_id, seed=config.seed)
        self.obs_dim = gym.spaces.flatdim(self.env.observation_space)
        self.act_dim = gym.spaces.flatdim(self.env.action_space)
        self.out = Path(config.out_dir)
        self.curve: dict[str, list[float]] = {}
        self.obs = np.zeros(self.obs_dim, dtype=np.float32)  # set by `begin`

    def begin(self, start: int, log: MetricsLog) -> None:
        empty: dict[str, list[float]] = {"steps": [], "deterministic": [], "stochastic": []}
        self.curve = log.data.setdefault("curve", empty)
        self.obs, _ = self.env.reset(seed=self.config.seed + start)

    def step(self, step: int) -> Mapping[str, Tensor]:
        if step < self.config.learning_starts:
            action = self.env.action_space.sample()
        else:
            obs = torch.as_tensor(self.obs, dtype=torch.float32, device=self.device).unsqueeze(0)
            action = self.agent.act(obs, deterministic=False)[0].cpu().numpy()
        next_obs, reward, terminated, truncated, _ = self.env.step(action)
        self.buffer.add(
            self.obs[None],
            action[None],
            np.array([reward], dtype=np.float32),
            next_obs[None],
            np.array([terminated]),
            np.array([truncated]),
        )
        self.obs = self.env.reset()[0] if terminated or truncated else next_obs
        # A run carried to another machine (behavior.carry) left its buffer behind: the
        # current policy refills it before updates resume.
        if step < self.config.learning_starts or len(self.buffer) < self.config.learning_starts:
            return {}
        return self.agent.update(self.buffer.sample(self.config.sac.batch_size))

    def evaluate(self, step: int, log: MetricsLog) -> None:
        config = self.config
        deterministic = evaluate_policy(
            lambda o: self.agent.act(o, True),
            config.env_id,
            config.eval_episodes,
            seed=10_000 + step,
            device=self.device,
        )
        stochastic = evaluate_policy(
            lambda o: self.agent.act(o, False),
            config.env_id,
            config.eval_episodes,
            seed=20_000 + step,
            device=self.device,
        )
        log.log_eval(step, deterministic.returns, deterministic.normalized)
        self.curve["steps"].append(step)
        self.curve["deterministic"].append(deterministic.normalized_mean)
        self.curve["stochastic"].append(stochastic.normalized_mean)
        save_actor_snapshot(
            self.out / "actors" / f"actor_step{step}.pt",
            self.agent,
            config,
            step,
            self.obs_dim,
            self.act_dim,
        )
        write_json_atomic(self.out / "curve.json", self.curve)
        plot_curve(self.curve, config.env_id, self.out / "curve.png")

    def state_dict(self, final: bool) -> dict[str, Any]:
        # The buffer is kept even at the end: a finished run can be continued for more steps.
        return {"agent": self.agent.state_dict(), "buffer": self.buffer.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.agent.load_state_dict(state["agent"])
        if state["buffer"] is not None:  # None: a carried run's first leg here (behavior.carry)
            self.buffer.load_state_dict(state["buffer"])

    def close(self) -> None:
        self.env.close()


def train_behavior_policy(
    config: BehaviorTrainConfig, progress: bool = True, carry: str | Path | None = None
) -> dict[str, list[float]]:
    """Train (or resume) a behaviour policy; returns its curve of normalized scores. With
    `carry` (a state written by `behavior.carry.pack_carry`), a run folder without a
    checkpoint continues the carried run instead of starting at step 0."""
    folder = RunFolder(Path(config.out_dir))
    if carry is not None and not folder.checkpoint_path.exists():
        start_from_carry(carry, config)
    device = resolve_device(config.device)
    resume = folder.load_checkpoint(device)
    if (finished := finished_metrics(resume)) is not None:
        return dict(finished["curve"])
    seed_everything(config.seed)
    probe = make_env(config.env_id)
    obs_dim = gym.spaces.flatdim(probe.observation_space)
    act_dim = gym.spaces.flatdim(probe.action_space)
    probe.close()
    agent = SAC(obs_dim, act_dim, config.sac, device=str(device))
    buffer = ReplayBuffer(config.total_steps, obs_dim, act_dim, device)
    folder.write_config(dataclasses.asdict(config))
    cadence = Cadence(
        config.total_steps,
        config.log_every,
        config.eval_every,
        checkpoint_every=config.resume_every,
        evaluate_at_start=False,
    )
    task = BehaviorTask(config, agent, buffer, device)
    metrics = run_loop(folder, task, cadence, resume, device, config.log_every, progress)
    return dict(metrics["curve"])
