"""Evaluation overhead: our batched rollout against a sequential loop and raw env stepping.

Evaluates 10 HalfCheetah episodes of 1000 steps three ways, in one invocation, with the same
policy (a CQL agent's deterministic `act`, as the training loop evaluates) and the same seeds:

- `PolicyEvaluator.evaluate` (hybrid_rl.eval.rollout), as the training loops evaluate: all
  episodes side by side in a plain list of envs created once per run, one batched policy
  forward per step over the running ones;
- `evaluate_policy`: the same, with the envs created by the call;
- a plain sequential loop: one env, one episode after another, a batch-of-one forward per step;
- raw stepping (the limit): the same envs and episode lengths stepped with no policy at all,
  with pre-drawn random actions, and with the policy's own actions recorded beforehand (the
  very same episodes: MuJoCo's step cost depends on the contacts, hence on the actions);
  reported without and with the creation of the 10 envs;
- the previous implementation: the same batched forward per step in a SyncVectorEnv (finished
  envs keep autoresetting and stepping, per-step info merging).

The variants alternate (A, B, C, A, B, C, ...) and medians are reported; the overhead is
PolicyEvaluator's time over raw stepping's with the policy's own actions (the goal is at most
30%).

    python benchmarks/bench_eval.py --rounds 3 --json eval.json
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from common import load_average, machine_info, write_json

from hybrid_rl.algos.cql import CQL, CQLConfig
from hybrid_rl.envs import make_env, make_vector_env
from hybrid_rl.eval.rollout import PolicyEvaluator, evaluate_policy

EPISODE_STEPS = 1000


def make_policy(env_id: str) -> Any:
    """A CQL agent's deterministic action, as `train.py` evaluates it (fresh weights)."""
    env = make_env(env_id)
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    env.close()
    agent = CQL(obs_dim, act_dim, CQLConfig())

    def act(obs: torch.Tensor) -> torch.Tensor:
        return agent.act(obs, deterministic=True)

    return act


def batched_rollout(policy: Any, env_id: str, episodes: int, seed: int) -> int:
    result = evaluate_policy(policy, env_id, episodes, seed=seed)
    return int(result.lengths.sum())


@torch.no_grad()
def sequential(
    policy: Any, env_id: str, episodes: int, seed: int, record: list[list[Any]] | None = None
) -> int:
    """Episodes one after another; appends each episode's actions to `record` if given."""
    env = make_env(env_id)
    steps = 0
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)
        done = False
        taken = []
        while not done:
            action = policy(torch.as_tensor(obs, dtype=torch.float32)[None])[0].numpy()
            obs, _, terminated, truncated, _ = env.step(action)
            done = terminated or truncated
            steps += 1
            taken.append(action)
        if record is not None:
            record.append(taken)
    env.close()
    return steps


@torch.no_grad()
def sync_vector_env(policy: Any, env_id: str, episodes: int, seed: int) -> int:
    """The previous evaluate_policy: a SyncVectorEnv whose finished envs keep autoresetting."""
    envs = make_vector_env(env_id, episodes, seed=seed)
    obs, _ = envs.reset(seed=[seed + i for i in range(episodes)])
    running = np.ones(episodes, dtype=bool)
    steps = 0
    while running.any():
        actions = policy(torch.as_tensor(obs, dtype=torch.float32)).numpy()
        obs, _, terminated, truncated, _ = envs.step(actions)
        steps += int(running.sum())
        running &= ~(terminated | truncated)
    envs.close()
    return steps


def raw_stepping(envs: list[Any], actions: Any, seed: int) -> int:
    """Step env i from reset(seed + i) through actions[i] (or until its episode ends)."""
    steps = 0
    for episode, env in enumerate(envs):
        env.reset(seed=seed + episode)
        for action in actions[episode]:
            _, _, terminated, truncated, _ = env.step(action)
            steps += 1
            if terminated or truncated:
                break
    return steps


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--env", default="HalfCheetah-v4")
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    info = machine_info()
    info["threads"] = args.threads

    policy = make_policy(args.env)
    probe = make_env(args.env)
    rng = np.random.default_rng(args.seed)
    actions = rng.uniform(-1, 1, (args.episodes, EPISODE_STEPS, probe.action_space.shape[0]))
    probe.close()

    def raw_with_creation() -> int:
        envs = [make_env(args.env) for _ in range(args.episodes)]
        steps = raw_stepping(envs, actions.astype(np.float32), args.seed)
        for env in envs:
            env.close()
        return steps

    recorded: list[list[Any]] = []
    sequential(policy, args.env, args.episodes, args.seed, record=recorded)
    created = [make_env(args.env) for _ in range(args.episodes)]
    evaluator = PolicyEvaluator(args.env, args.episodes)
    variants = {
        "PolicyEvaluator (envs reused)": lambda: int(
            evaluator.evaluate(policy, args.seed).lengths.sum()
        ),
        "evaluate_policy (envs created)": lambda: batched_rollout(
            policy, args.env, args.episodes, args.seed
        ),
        "sequential episode loop": lambda: sequential(policy, args.env, args.episodes, args.seed),
        "SyncVectorEnv, batched (previous)": lambda: sync_vector_env(
            policy, args.env, args.episodes, args.seed
        ),
        "raw stepping, random actions": lambda: raw_stepping(
            created, actions.astype(np.float32), args.seed
        ),
        "raw stepping + env creation": raw_with_creation,
        "raw stepping, policy's actions": lambda: raw_stepping(created, recorded, args.seed),
    }
    seconds: dict[str, list[float]] = {name: [] for name in variants}
    steps: dict[str, int] = {}
    for round_index in range(args.rounds):
        for name, run in variants.items():
            start = time.perf_counter()
            steps[name] = run()
            seconds[name].append(time.perf_counter() - start)
        print(f"round {round_index + 1}/{args.rounds} done", flush=True)
    for env in created:
        env.close()
    evaluator.close()
    info["load_average_after"] = load_average()

    raw = statistics.median(seconds["raw stepping, random actions"])
    raw_created = statistics.median(seconds["raw stepping + env creation"])
    raw_same = statistics.median(seconds["raw stepping, policy's actions"])
    rows = []
    for name, values in seconds.items():
        median = statistics.median(values)
        rows.append(
            {
                "variant": name,
                "seconds": round(median, 3),
                "env_steps": steps[name],
                "env_steps_per_s": round(steps[name] / median),
                "overhead_vs_raw": round(median / raw - 1, 3),
                "overhead_vs_raw_with_creation": round(median / raw_created - 1, 3),
                "overhead_vs_raw_policy_actions": round(median / raw_same - 1, 3),
            }
        )
    result = {"machine": info, "env": args.env, "episodes": args.episodes, "rows": rows}

    print(
        f"\n{info['date']} | {info['cpu']} | {args.threads} thread(s) | torch {info['torch']} | "
        f"load before {info['load_average_1_5_15']}, after {info['load_average_after']}"
    )
    header = (
        f"{'variant':<38}{'seconds':>9}{'steps/s':>10}{'vs raw':>9}{'vs raw+create':>15}"
        f"{'vs same actions':>17}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        print(
            f"{row['variant']:<38}{row['seconds']:>9.2f}{row['env_steps_per_s']:>10,}"
            f"{row['overhead_vs_raw']:>+9.0%}{row['overhead_vs_raw_with_creation']:>+15.0%}"
            f"{row['overhead_vs_raw_policy_actions']:>+17.0%}"
        )
    if args.json:
        write_json(args.json, result)


if __name__ == "__main__":
    main()
