"""Online SAC training of a behaviour policy, with actor snapshots to choose a replica level from.

Outputs in `out_dir`: config.json, curve.json (deterministic and stochastic evaluations),
curve.png, actors/actor_step{N}.pt (policy snapshots) and resume.pt (everything needed to
continue an interrupted run: networks, optimizers, replay buffer, RNG, step).
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from tqdm import tqdm

from hybrid_rl.algos.sac import SAC, SACConfig
from hybrid_rl.atomic_io import save_torch_atomic, write_json_atomic
from hybrid_rl.data.replay_buffer import ReplayBuffer
from hybrid_rl.envs import make_env
from hybrid_rl.eval.rollout import evaluate_policy
from hybrid_rl.seeding import resolve_device, restore_rng_state, rng_state, seed_everything


@dataclass
class BehaviorTrainConfig:
    env_id: str = "HalfCheetah-v4"
    total_steps: int = 300_000
    seed: int = 0
    learning_starts: int = 5_000
    eval_every: int = 5_000
    eval_episodes: int = 10
    resume_every: int = 25_000
    out_dir: str = "behavior_runs/halfcheetah_s0"
    device: str = "cpu"
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


def train_behavior_policy(config: BehaviorTrainConfig) -> dict[str, list[float]]:
    out = Path(config.out_dir)
    device = resolve_device(config.device)
    seed_everything(config.seed)
    env = make_env(config.env_id, seed=config.seed)
    obs_dim = gym.spaces.flatdim(env.observation_space)
    act_dim = gym.spaces.flatdim(env.action_space)
    agent = SAC(obs_dim, act_dim, config.sac, device=str(device))
    buffer = ReplayBuffer(config.total_steps, obs_dim, act_dim, device)
    curve: dict[str, list[float]] = {"steps": [], "deterministic": [], "stochastic": []}
    start = 0

    resume_path = out / "resume.pt"
    if resume_path.exists():
        state: dict[str, Any] = torch.load(resume_path, weights_only=False)
        agent.load_state_dict(state["agent"])
        buffer.load_state_dict(state["buffer"])
        restore_rng_state(state["rng"])
        curve, start = state["curve"], state["step"]
        print(f"resumed {out} at step {start}", file=sys.stderr)
    write_json_atomic(out / "config.json", dataclasses.asdict(config))

    obs, _ = env.reset(seed=config.seed + start)
    progress = tqdm(
        range(start, config.total_steps),
        initial=start,
        total=config.total_steps,
        desc=f"SAC {config.env_id}",
        mininterval=5,
    )
    for step in progress:
        if step < config.learning_starts:
            action = env.action_space.sample()
        else:
            obs_t = torch.as_tensor(obs, dtype=torch.float32, device=device).unsqueeze(0)
            action = agent.act(obs_t, deterministic=False)[0].cpu().numpy()
        next_obs, reward, terminated, truncated, _ = env.step(action)
        buffer.add(
            obs[None],
            action[None],
            np.array([reward], dtype=np.float32),
            next_obs[None],
            np.array([terminated]),
            np.array([truncated]),
        )
        obs = next_obs
        if terminated or truncated:
            obs, _ = env.reset()

        if step >= config.learning_starts:
            agent.update(buffer.sample(config.sac.batch_size))

        done_steps = step + 1
        if done_steps % config.eval_every == 0:
            det = evaluate_policy(
                lambda o: agent.act(o, True),
                config.env_id,
                config.eval_episodes,
                seed=10_000 + done_steps,
                device=device,
            )
            sto = evaluate_policy(
                lambda o: agent.act(o, False),
                config.env_id,
                config.eval_episodes,
                seed=20_000 + done_steps,
                device=device,
            )
            curve["steps"].append(done_steps)
            curve["deterministic"].append(det.normalized_mean)
            curve["stochastic"].append(sto.normalized_mean)
            save_actor_snapshot(
                out / "actors" / f"actor_step{done_steps}.pt",
                agent,
                config,
                done_steps,
                obs_dim,
                act_dim,
            )
            write_json_atomic(out / "curve.json", curve)
            plot_curve(curve, config.env_id, out / "curve.png")
            progress.set_postfix(det=f"{det.normalized_mean:.1f}", sto=f"{sto.normalized_mean:.1f}")
        if done_steps % config.resume_every == 0 or done_steps == config.total_steps:
            save_torch_atomic(
                resume_path,
                {
                    "agent": agent.state_dict(),
                    "buffer": buffer.state_dict(),
                    "rng": rng_state(),
                    "curve": curve,
                    "step": done_steps,
                },
            )
    env.close()
    return curve
