"""Replica collection speed: the batched vector-env builder against a single-env loop.

Builds a full replica (default 1M transitions) with `build_replica`, and measures the
throughput of a plain loop (one env, one policy forward per step) on a shorter budget, in the
same invocation. Prints a table and, with --json, writes the numbers to a file.

    python benchmarks/bench_replica.py --dataset hopper-medium-v2 --n 1000000 --baseline-n 50000
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import torch

from hybrid_rl.behavior.policies import load_shipped_policy
from hybrid_rl.behavior.replica import build_replica
from hybrid_rl.data.registry import get_dataset_spec
from hybrid_rl.envs import make_env


def single_env_loop(dataset_id: str, n: int, seed: int) -> float:
    """Seconds to collect `n` transitions with one env and a batch-of-one policy forward."""
    spec = get_dataset_spec(dataset_id)
    actor, _ = load_shipped_policy(spec.env_name, spec.quality)
    env = make_env(spec.gym_env_id, seed=seed)
    obs, _ = env.reset(seed=seed)
    rows = []
    start = time.perf_counter()
    for _ in range(n):
        with torch.no_grad():
            action = actor.sample(torch.as_tensor(obs, dtype=torch.float32)[None])[0][0].numpy()
        next_obs, reward, terminated, truncated, _ = env.step(action)
        rows.append((obs, action, reward, next_obs, terminated, truncated))
        obs = env.reset()[0] if terminated or truncated else next_obs
    elapsed = time.perf_counter() - start
    env.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", default="halfcheetah-medium-v2")
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--baseline-n", type=int, default=50_000)
    parser.add_argument("--num-envs", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="keep the built replica here (e.g. the replica cache path)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        build_replica(
            args.dataset,
            args.n,
            seed=0,
            path=args.out or Path(tmp) / "replica.hdf5",
            num_envs=args.num_envs,
            progress=False,
        )
        build_seconds = time.perf_counter() - start
    loop_seconds = single_env_loop(args.dataset, args.baseline_n, seed=0)

    builder_rate = args.n / build_seconds
    loop_rate = args.baseline_n / loop_seconds
    result = {
        "dataset": args.dataset,
        "machine": platform.machine(),
        "torch_threads": torch.get_num_threads(),
        "build_transitions": args.n,
        "build_seconds": round(build_seconds, 1),
        "builder_transitions_per_s": round(builder_rate),
        "single_env_loop_transitions": args.baseline_n,
        "single_env_loop_transitions_per_s": round(loop_rate),
        "speedup": round(builder_rate / loop_rate, 2),
    }
    print(f"{'method':<34}{'transitions':>12}{'seconds':>10}{'transitions/s':>15}")
    print(
        f"{'build_replica (vector env)':<34}{args.n:>12,}{build_seconds:>10.1f}"
        f"{builder_rate:>15,.0f}"
    )
    print(
        f"{'single-env loop (batch-1 forward)':<34}{args.baseline_n:>12,}{loop_seconds:>10.1f}"
        f"{loop_rate:>15,.0f}"
    )
    print(
        f"speedup {result['speedup']}x; 1M transitions in {build_seconds * 1e6 / args.n / 60:.1f}"
        " min with the builder"
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
