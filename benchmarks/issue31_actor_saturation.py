"""Issue 31's clamp check: how saturated each run's deterministic action is on a fixed set of
states (the Phase I policy's own deterministic rollout, env seed 5).

Per action dim: the share of states with |tanh mu| > 0.9 and > 0.99, the mean inward pull of
clipping a sigma-noisy sample there (|E[clip(m + sigma eps)] - m|), the mean distance of the
run's mean action from the Phase I one, and sigma. Run from the repository root after the
issue-31 runs (results_i31/phase1, results_i31/p2_*):

    PYTHONPATH=src python benchmarks/issue31_actor_saturation.py
"""

from __future__ import annotations

import glob
import json
from pathlib import Path

import numpy as np
import torch

from hybrid_rl.algos.iql import IQL, IQLConfig
from hybrid_rl.envs import make_env

PHASE1 = "results_i31/phase1/iql_hopper-medium-bimodal-v2_k30_noise0_s0/checkpoint.pt"


def load(path: str, members: int) -> IQL:
    state = torch.load(path, map_location="cpu", weights_only=False)["agent"]
    agent = IQL(11, 3, IQLConfig(critic_members=members))
    agent.load_state_dict(state)
    return agent


def rollout_states(agent: IQL, seed: int = 5) -> torch.Tensor:
    env = make_env("Hopper-v4")
    obs, _ = env.reset(seed=seed)
    states = []
    for _ in range(1000):
        states.append(obs)
        action = agent.act(torch.tensor(obs, dtype=torch.float32)[None], True)[0].numpy()
        obs, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            break
    return torch.tensor(np.array(states), dtype=torch.float32)


def main() -> None:
    phase1 = load(PHASE1, 2)
    states = rollout_states(phase1)
    runs = [("phase1", phase1)]
    for path in sorted(glob.glob("results_i31/p2_*/ft_*/checkpoint.pt")):
        step = torch.load(path, map_location="cpu", weights_only=False)["step"]
        config = json.loads((Path(path).parent / "config.json").read_text())["config"]
        name = f"{Path(path).parts[1].removeprefix('p2_')}@{step}"
        runs.append((name, load(path, config["n_ensemble"])))
    torch.manual_seed(0)
    noise = torch.randn(500, len(states), 3)
    with torch.no_grad():
        start = phase1.actor.mean_action(phase1.normalizer(states))
        for name, agent in runs:
            mean = agent.actor.mean_action(agent.normalizer(states))
            sigma = agent.actor.clamped_log_std().exp()
            pull = ((mean + sigma * noise).clamp(-1, 1).mean(0) - mean).abs().mean(0)
            shift = (mean - start).abs().mean(0)
            past_09 = (mean.abs() > 0.9).float().mean(0).numpy().round(3)
            past_099 = (mean.abs() > 0.99).float().mean(0).numpy().round(3)
            print(
                f"{name:22s} |m|>0.9 {past_09} |m|>0.99 {past_099} "
                f"clip pull {pull.numpy().round(4)} |m - m_phase1| {shift.numpy().round(3)} "
                f"sigma {sigma.numpy().round(3)}"
            )


if __name__ == "__main__":
    main()
