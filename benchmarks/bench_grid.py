"""Grid throughput: the same small Phase I grid with one worker using every core, or one
single-threaded worker per core.

Each split runs the real grid runner (`hybrid_rl.launch.executor.run_grid`, as `run_phase1.py
--workers N` does) on the same runs, in a fresh results folder, and the splits alternate round
by round (A, B, A, B, ...) so that load changes on a shared machine hit both. Reported: wall
time, runs per hour and gradient steps per hour (median over rounds), and the ratio. The
faster split is the grid runner's default (`default_workers`).

Runs are short, so their fixed costs (process start, dataset load and corruption, the two
evaluations at step 0 and at the end) weigh more than in a 500k-step run; the per-step part is
what `bench_update.py` measures. The default grid mixes CQL and IQL like the study does.

    python benchmarks/bench_grid.py --rounds 2 --steps 1000 --json grid.json

`--seeds-per-process N` compares instead, on one worker per core, the grid's runs for seeds
0..N-1 executed as separate processes or N seeds stacked in one process (`SeedGroup`, what
`run_phase1.py --seeds_per_process N` does):

    python benchmarks/bench_grid.py --algo iql --k 0 30 --seeds-per-process 3 --rounds 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from common import load_average, machine_info, write_json

from hybrid_rl.launch.executor import run_grid
from hybrid_rl.runs.spec import RunSpec
from hybrid_rl.train import SeedGroup, TrainConfig


def grid(args: argparse.Namespace, results_dir: Path, seeds: int = 1) -> list[TrainConfig]:
    return [
        TrainConfig(
            algo=algo,
            dataset=args.dataset,
            k_percent=k,
            seed=seed,
            total_steps=args.steps,
            log_every=args.steps,
            eval_every=args.steps,
            eval_episodes=args.eval_episodes,
            device="cpu",
            results_dir=str(results_dir),
        )
        for algo in args.algo
        for k in args.k
        for seed in range(seeds)
    ]


def units(configs: list[TrainConfig], seeds_per_process: int) -> list[RunSpec]:
    """The runs as the launcher gets them: separate, or consecutive seeds grouped."""
    if seeds_per_process == 1:
        return list(configs)
    return [
        SeedGroup(tuple(configs[i : i + seeds_per_process]))
        for i in range(0, len(configs), seeds_per_process)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--algo", nargs="+", default=["cql", "iql"])
    parser.add_argument("--k", nargs="+", type=float, default=[0.0, 60.0])
    parser.add_argument("--dataset", default="halfcheetah-medium-v2")
    parser.add_argument("--steps", type=int, default=2_000, help="gradient steps per run")
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument(
        "--seeds-per-process",
        type=int,
        default=1,
        help="N > 1: compare N seeds stacked per process with separate processes",
    )
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    info = machine_info()
    stacked = args.seeds_per_process
    # name: (workers, threads, seeds per process)
    splits = (
        {
            f"{cores} workers, separate runs": (cores, 1, 1),
            f"{cores} workers, {stacked} seeds/process": (cores, 1, stacked),
        }
        if stacked > 1
        else {
            f"{cores} worker(s) × 1 thread": (cores, 1, 1),
            f"1 worker × {cores} threads": (1, cores, 1),
        }
    )

    seconds: dict[str, list[float]] = {name: [] for name in splits}
    runs = len(args.algo) * len(args.k) * stacked
    with tempfile.TemporaryDirectory(prefix="bench-grid-") as scratch:
        for round_index in range(args.rounds):
            for name, (workers, threads, per_process) in splits.items():
                folder = Path(scratch) / f"round{round_index}-{workers}x{threads}x{per_process}"
                specs = units(grid(args, folder, stacked), per_process)
                start = time.perf_counter()
                summary = run_grid(specs, workers=workers, threads=threads, progress=False)
                seconds[name].append(time.perf_counter() - start)
                if summary.count("completed") != sum(len(spec.folders) for spec in specs):
                    raise SystemExit(f"{name}: not every run completed: {summary.line()}")
                print(
                    f"round {round_index + 1}/{args.rounds}, {name}: {summary.line()}", flush=True
                )
    info["load_average_after"] = load_average()

    rows: list[dict[str, Any]] = []
    for name, (workers, threads, _) in splits.items():
        median = statistics.median(seconds[name])
        rows.append(
            {
                "split": name,
                "workers": workers,
                "threads_per_worker": threads,
                "seconds": round(median, 1),
                "runs_per_hour": round(runs * 3600 / median, 1),
                "steps_per_hour": round(runs * args.steps * 3600 / median),
                "all_seconds": [round(s, 1) for s in seconds[name]],
            }
        )
    fastest = min(rows, key=lambda row: row["seconds"])
    result = {
        "machine": info,
        "grid": {
            "algo": args.algo,
            "k": args.k,
            "seeds": stacked,
            "dataset": args.dataset,
            "steps": args.steps,
        },
        "rows": rows,
        "faster": fastest["split"],
        "speedup": round(max(r["seconds"] for r in rows) / fastest["seconds"], 2),
    }
    print(
        f"\n{info['date']} | {info['cpu']} | {cores} cores | torch {info['torch']} | "
        f"load before {info['load_average_1_5_15']}, after {info['load_average_after']}"
    )
    print(
        f"grid: {runs} runs ({' '.join(args.algo)} × k {args.k} × {stacked} seed(s)) of "
        f"{args.steps} steps"
    )
    header = f"{'split':<32}{'seconds':>9}{'runs/hour':>11}{'steps/hour':>12}"
    print(header)
    print("-" * len(header))
    for row in rows:
        print(
            f"{row['split']:<32}{row['seconds']:>9.1f}{row['runs_per_hour']:>11.1f}"
            f"{row['steps_per_hour']:>12,}"
        )
    print(f"faster: {result['faster']} ({result['speedup']}×)")
    if args.json:
        write_json(args.json, result)


if __name__ == "__main__":
    main()
