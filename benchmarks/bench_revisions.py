"""Steps/s of our updates at two git revisions, side by side in one invocation.

    python benchmarks/bench_revisions.py --compare-rev 8b005c8 --threads 1 --json revs.json

`--compare-rev REV` ("before") is checked out into a temporary `git worktree`, removed at the
end; "after" is this working tree, uncommitted changes included, or `--rev REV2` checked out
the same way. Each side runs in a worker process of this same Python with PYTHONPATH set to
its tree's `src` (the worker checks that it imported hybrid_rl from there), and builds the same
rows as `bench_update.py` (`make_ours`, `our_training_step`) on the same seeded synthetic
batches: only the hybrid_rl code differs, the timing harness is this tree's. The workers take
turns block by block, in ABBA order over rounds, so a load change on a shared machine hits
both sides alike; reported are medians of wall-clock and CPU-time steps/s, their ratio
after/before, and the ratio of each round's pair of blocks: their median ("paired") and
spread (the noise of this run). `--rev REV` equal to `--compare-rev` gives an A/A control.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench_update import (
    D3RLPY_ROWS,
    OURS,
    POOL,
    TRAIN_STEP_SUFFIX,
    make_ours,
    our_training_step,
    synthetic_batches,
)
from common import Timing, load_average, machine_info, write_json

REPO = Path(__file__).resolve().parents[1]
DEFAULT_ROWS = ("CQL", "IQL")


def worker(threads: int, rows: list[str]) -> None:
    """Serve {"row": name, "steps": n} -> {"wall": s, "cpu": s} on stdin/stdout; {"quit": true}.

    Runs with PYTHONPATH at one revision's src; anything else printed goes to stderr.
    """
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    import torch

    import hybrid_rl

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    batches = synthetic_batches(POOL)
    updates, first_call = {}, {}
    for name in rows:
        agent, _ = make_ours(name.removesuffix(TRAIN_STEP_SUFFIX))
        update = agent.update
        if name.endswith(TRAIN_STEP_SUFFIX):
            update = our_training_step(agent, D3RLPY_ROWS[name][0])
        start = time.perf_counter()
        update(batches[0])
        first_call[name] = round(time.perf_counter() - start, 2)
        updates[name] = update
    ready = {"hybrid_rl": hybrid_rl.__file__, "first_call_s": first_call}
    protocol.write(json.dumps(ready) + "\n")
    step = 0
    for line in sys.stdin:
        request = json.loads(line)
        if request.get("quit"):
            break
        update = updates[request["row"]]
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(request["steps"]):
            update(batches[step % POOL])
            step += 1
        result = {"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu}
        protocol.write(json.dumps(result) + "\n")


class RevisionWorker:
    """This file's `--worker` mode with hybrid_rl imported from `tree`/src."""

    def __init__(self, tree: Path, threads: int, rows: list[str]) -> None:
        src = tree / "src"
        command = [sys.executable, str(Path(__file__).resolve()), "--worker"]
        command += ["--threads", str(threads), "--rows", *rows]
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(src)},
        )
        self.ready = self._receive()
        if not Path(self.ready["hybrid_rl"]).resolve().is_relative_to(src.resolve()):
            raise RuntimeError(
                f"the worker for {tree} imported hybrid_rl from {self.ready['hybrid_rl']}, not "
                f"from {src}: a non-editable install shadows PYTHONPATH; run from an "
                "environment without it"
            )

    def _receive(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"a revision worker exited (code {self.process.wait()})")
        reply: dict[str, Any] = json.loads(line)
        return reply

    def run(self, row: str, steps: int) -> tuple[float, float]:
        """Wall and CPU seconds of `steps` updates of benchmark row `row`."""
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps({"row": row, "steps": steps}) + "\n")
        self.process.stdin.flush()
        reply = self._receive()
        return reply["wall"], reply["cpu"]

    def close(self) -> None:
        if self.process.poll() is None and self.process.stdin is not None:
            self.process.stdin.write(json.dumps({"quit": True}) + "\n")
            self.process.stdin.close()
        self.process.wait(timeout=60)


def git(*args: str) -> str:
    out = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed: {out.stderr.strip()}")
    return out.stdout.strip()


@contextmanager
def checked_out(rev: str | None) -> Iterator[tuple[Path, str]]:
    """A tree at `rev` (a temporary detached worktree) or this working tree if None, and a
    label: the short commit, with "+ uncommitted changes" for a dirty working tree."""
    if rev is None:
        dirty = git("status", "--porcelain", "--", "src")
        yield REPO, git("rev-parse", "--short", "HEAD") + (" + uncommitted" if dirty else "")
        return
    commit = git("rev-parse", "--short", "--verify", f"{rev}^{{commit}}")
    parent = Path(tempfile.mkdtemp(prefix="bench-revisions-"))
    tree = parent / commit
    git("worktree", "add", "--detach", "--quiet", str(tree), commit)
    try:
        yield tree, commit
    finally:
        git("worktree", "remove", "--force", str(tree))
        shutil.rmtree(parent, ignore_errors=True)


def run(args: argparse.Namespace) -> dict[str, Any]:
    info = machine_info()
    info["threads"] = args.threads
    with checked_out(args.compare_rev) as before, checked_out(args.rev) as after:
        info["before"], info["after"] = before[1], after[1]
        sides = {"before": before[0], "after": after[0]}
        workers: dict[str, RevisionWorker] = {}
        try:
            for side, tree in sides.items():
                print(f"{side}: building {', '.join(args.rows)} at {info[side]}", flush=True)
                workers[side] = RevisionWorker(tree, args.threads, args.rows)
            timings: dict[str, dict[str, Timing]] = {side: {} for side in sides}
            for row in args.rows:
                for side_worker in workers.values():
                    side_worker.run(row, 3)  # warm up
                wall, _ = workers["after"].run(row, 2)
                steps = max(1, round(args.block_seconds / (wall / 2)))
                for side in sides:
                    timings[side][row] = Timing(steps)
                print(f"{row}: {steps} steps per block", flush=True)
            for round_index in range(args.rounds):
                # ABBA: each side goes first in half of the rounds.
                order = list(sides) if round_index % 2 == 0 else list(reversed(sides))
                for row in args.rows:
                    for side in order:
                        timing = timings[side][row]
                        wall, cpu = workers[side].run(row, timing.units)
                        timing.wall.append(wall)
                        timing.cpu.append(cpu)
                print(f"round {round_index + 1}/{args.rounds} done", flush=True)
        finally:
            for side_worker in workers.values():
                side_worker.close()
    info["load_average_after"] = load_average()
    results = []
    for row in args.rows:
        old, new = timings["before"][row], timings["after"][row]
        # Same steps per block on both sides: a round's ratio is before wall / after wall.
        per_round = [a / b for a, b in zip(old.wall, new.wall, strict=True)]
        results.append(
            {
                "update": row,
                "steps_per_block": old.units,
                "before_steps_per_s": round(old.rate(), 2),
                "after_steps_per_s": round(new.rate(), 2),
                "ratio": round(new.rate() / old.rate(), 3),
                "before_cpu_steps_per_s": round(old.cpu_rate(), 2),
                "after_cpu_steps_per_s": round(new.cpu_rate(), 2),
                "cpu_ratio": round(new.cpu_rate() / old.cpu_rate(), 3),
                "paired_ratio": round(statistics.median(per_round), 3),
                "round_ratios": [round(r, 3) for r in per_round],
                "first_call_s": {side: workers[side].ready["first_call_s"][row] for side in sides},
            }
        )
    return {"machine": info, "updates": results}


def print_table(result: dict[str, Any]) -> None:
    m = result["machine"]
    print(
        f"\n{m['date']} | {m['cpu']} | {m['threads']} thread(s) | torch {m['torch']} | "
        f"before {m['before']}, after {m['after']} | load (1, 5, 15 min) before "
        f"{m['load_average_1_5_15']}, after {m['load_average_after']}\n"
    )
    header = (
        f"{'update':<32}{'before/s':>9}{'after/s':>9}{'ratio':>7}"
        f"{'cpu before/s':>13}{'cpu after/s':>12}{'cpu ratio':>10}{'paired':>8}{'round ratios':>14}"
    )
    print(header)
    print("-" * len(header))
    for row in result["updates"]:
        ratios = row["round_ratios"]
        spread = f"{min(ratios):.3f}-{max(ratios):.3f}"
        print(
            f"{row['update']:<32}{row['before_steps_per_s']:>9.1f}{row['after_steps_per_s']:>9.1f}"
            f"{row['ratio']:>7.3f}{row['before_cpu_steps_per_s']:>13.1f}"
            f"{row['after_cpu_steps_per_s']:>12.1f}{row['cpu_ratio']:>10.3f}"
            f"{row['paired_ratio']:>8.3f}{spread:>14}"
        )
    print(
        "\nratio: after/before of the median rates; round ratios: after/before wall rate of "
        "each round's pair of blocks (min-max), paired: their median"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--compare-rev", required=False, help="the 'before' revision")
    parser.add_argument("--rev", default=None, help="the 'after' revision (default: this tree)")
    parser.add_argument("--rows", nargs="+", choices=OURS, default=list(DEFAULT_ROWS))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=7, help="timed blocks per side and row")
    parser.add_argument("--block-seconds", type=float, default=0.5)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.threads, args.rows)
        return
    if args.compare_rev is None:
        parser.error("--compare-rev REV is required: the revision to compare this tree with")
    result = run(args)
    print_table(result)
    if args.json:
        write_json(args.json, result)


if __name__ == "__main__":
    main()
