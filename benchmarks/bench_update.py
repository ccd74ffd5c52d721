"""Gradient-step throughput of our CQL, IQL, BC and Phase II updates, against d3rlpy and a matmul.

All in one invocation, on synthetic batches of HalfCheetah's shapes (obs 17, act 6, batch 256,
default hyperparameters), interleaved in short blocks so that load changes on a shared machine
hit every variant alike:

- ours: CQL, IQL (eager, and torch.compile'd with HYBRID_RL_COMPILE=1), BC, and the Phase II
  online CQL / IQL updates (3-member critic, CQL α 1.0: `online_cql_config`/`online_iql_config`);
- d3rlpy 2.8.1's CQL and IQL at the same hyperparameters, run by this same file in a worker
  process of a separate virtualenv (created on first use under benchmarks/.d3rlpy-venv, or given
  with --d3rlpy-python); d3rlpy is never a dependency of hybrid-rl;
- CQL with `--precision bf16` (the critic loss's hidden-layer products in bf16), where the
  CPU has native bf16 (AVX512-BF16 or AMX; elsewhere the rows say "(fp32 fallback)");
- a 2048×2048 matmul in fp32 and in bf16: the machine's matrix-product speed at the same
  thread count (bf16 rows are measured against the bf16 one), and the products of one chunk
  of CQL's fused critic (2 members × 1,023 rows, [256, 256] nets) in both dtypes;
- whole training steps, "sample + update", for CQL and IQL on both sides: a batch drawn from a
  1M-transition dataset (synthetic, HalfCheetah-shaped, 1,000 episodes of 1,000 steps) and
  the update on it, with observation standardization (and IQL's reward scaling) switched on,
  as each library's own training loop does it: ours `OfflineDataset.sample` + `update` +
  the metric sums of `train.py`; d3rlpy's `sample_transition_batch` + `algo.update` + keeping
  the returned losses, the body of its `fit` loop without logger and progress bar.

Achieved GFLOP/s counts only the matrix products of each update, analytically (see
`update_gflop`); elementwise work, Adam and sampling are left out, so it is a lower bound.

    python benchmarks/bench_update.py --threads 1 --json update.json
    python benchmarks/bench_update.py --threads 2 --no-d3rlpy --only CQL   # CQL fp32 vs bf16
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import time
import warnings
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from common import Timing, load_average, machine_info, time_block, write_json
from d3rlpy_env import (
    add_d3rlpy_arguments,
    d3rlpy_algo_config,
    d3rlpy_python,
    d3rlpy_training_config,
)

OBS_DIM, ACT_DIM, BATCH = 17, 6, 256  # HalfCheetah
HIDDEN = (256, 256)
MATMUL_SIZE = 2048
POOL = 16  # distinct synthetic batches cycled through


# --- FLOP counts -----------------------------------------------------------------------------


def mlp_forward_flop(rows: int, sizes: Sequence[int]) -> int:
    """2 · rows · Σ in·out: the multiply-adds of one member's forward, counted as 2 FLOP."""
    return 2 * rows * sum(a * b for a, b in itertools.pairwise(sizes))


def mlp_input_grad_flop(rows: int, sizes: Sequence[int], through_first: bool) -> int:
    """Backward products that carry the gradient to each layer's input.

    The first layer's only when something upstream needs it (`through_first`), e.g. CQL's
    actor loss, which differentiates Q with respect to the action.
    """
    pairs = list(itertools.pairwise(sizes))
    if not through_first:
        pairs = pairs[1:]
    return 2 * rows * sum(a * b for a, b in pairs)


def mlp_train_flop(rows: int, sizes: Sequence[int], through_first: bool = False) -> int:
    """Forward + weight gradients (same products as the forward) + input gradients."""
    forward = mlp_forward_flop(rows, sizes)
    return 2 * forward + mlp_input_grad_flop(rows, sizes, through_first)


def update_gflop(algo: str, members: int = 2, samples: int = 10) -> float:
    """GFLOP of the matrix products of one update of `algo` at batch 256, [256, 256] nets.

    With B = 256, M critic members, n sampled actions, q = (17+6, 256, 256, 1):
    - CQL: actor forward on s and s' (2B rows); target critic forward (M·B); critic forward,
      weight and input gradients on B·(1 + 3n) rows per member; actor loss: actor forward and
      backward on B rows, critic forward on B rows and its input gradient down to the action.
    - IQL: target critic (M·B), V(s), V(s'), critic (M·B) and actor forwards; V, critic and
      actor backwards (weight gradients and input gradients of layers 2-3).
    - BC: actor forward and backward.
    """
    q = (OBS_DIM + ACT_DIM, *HIDDEN, 1)
    b = BATCH
    if algo == "cql":
        actor = (OBS_DIM, *HIDDEN, 2 * ACT_DIM)
        rows = b * (1 + 3 * samples)
        flop = (
            mlp_forward_flop(2 * b, actor)
            + members * mlp_forward_flop(b, q)
            + members * mlp_train_flop(rows, q)
            + mlp_train_flop(b, actor)
            + members * (mlp_forward_flop(b, q) + mlp_input_grad_flop(b, q, through_first=True))
        )
    elif algo == "iql":
        value, actor = (OBS_DIM, *HIDDEN, 1), (OBS_DIM, *HIDDEN, ACT_DIM)
        flop = (
            members * mlp_forward_flop(b, q)  # Q_target(s, a)
            + mlp_forward_flop(b, value)  # V(s') for the critic's target
            + mlp_train_flop(b, value)
            + members * mlp_train_flop(b, q)
            + mlp_train_flop(b, actor)
        )
    elif algo == "bc":
        flop = mlp_train_flop(b, (OBS_DIM, *HIDDEN, ACT_DIM))
    else:
        raise ValueError(f"no FLOP count for {algo!r}")
    return flop / 1e9


# --- synthetic offline data (numpy only: both sides build the same arrays) ---------------------

DATASET_EPISODES, EPISODE_LENGTH = 1000, 1000


def synthetic_episodes() -> dict[str, Any]:
    """1M HalfCheetah-shaped transitions in 1,000 episodes that end by timeout, seeded.

    `observations` has one more row per episode than it has transitions (the last next
    observation), so both libraries see exactly the same transitions.
    """
    import numpy as np

    rng = np.random.default_rng(0)
    n = DATASET_EPISODES * EPISODE_LENGTH
    return {
        "states": rng.standard_normal(
            (DATASET_EPISODES, EPISODE_LENGTH + 1, OBS_DIM), dtype=np.float32
        ),
        "actions": rng.uniform(-1, 1, (n, ACT_DIM)).astype(np.float32),
        "rewards": rng.standard_normal(n, dtype=np.float32),
    }


# --- d3rlpy worker (runs inside the d3rlpy virtualenv: no hybrid_rl imports here) --------------


def d3rlpy_worker(threads: int) -> None:
    """Serve timing requests on stdin/stdout, one JSON object per line.

    Requests: {"algo": "cql"|"iql", "steps": n, "train_step": bool} -> {"wall": s, "cpu": s};
    {"quit": true}. Anything d3rlpy prints goes to stderr, so stdout carries only the protocol.
    """
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    import d3rlpy
    import torch
    from d3rlpy.torch_utility import TorchMiniBatch

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    # Our defaults (see d3rlpy_env); no scalers or lr schedule: only the update is timed.
    configs = {name: d3rlpy_algo_config(name) for name in ("iql", "cql")}
    impls = {}
    for name, config in configs.items():
        algo = config.create(device="cpu:0")
        algo.create_impl((OBS_DIM,), ACT_DIM)
        impls[name] = algo.impl
    batches = [
        TorchMiniBatch(
            observations=torch.randn(BATCH, OBS_DIM),
            actions=torch.rand(BATCH, ACT_DIM) * 2 - 1,
            rewards=torch.randn(BATCH, 1),
            next_observations=torch.randn(BATCH, OBS_DIM),
            next_actions=torch.rand(BATCH, ACT_DIM) * 2 - 1,
            returns_to_go=torch.zeros(BATCH, 1),
            terminals=(torch.rand(BATCH, 1) < 0.01).float(),
            intervals=torch.ones(BATCH, 1),
            device="cpu:0",
        )
        for _ in range(POOL)
    ]
    dataset, trainers = d3rlpy_training_setup()
    losses: dict[str, list[float]] = defaultdict(list)
    step = 0
    protocol.write(
        json.dumps({"ready": True, "d3rlpy": d3rlpy.__version__, "torch": torch.__version__}) + "\n"
    )
    for line in sys.stdin:
        request = json.loads(line)
        if request.get("quit"):
            break
        wall, cpu = time.perf_counter(), time.process_time()
        if request.get("train_step"):
            trainer = trainers[request["algo"]]
            for _ in range(request["steps"]):
                # The body of d3rlpy's fit loop (QLearningAlgoBase.fitter), minus its logger.
                loss = trainer.update(dataset.sample_transition_batch(BATCH))
                for name, value in loss.items():
                    losses[name].append(value)
        else:
            impl = impls[request["algo"]]
            for _ in range(request["steps"]):
                impl.update(batches[step % POOL], step)
                step += 1
        result = {"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu}
        protocol.write(json.dumps(result) + "\n")


def d3rlpy_training_setup() -> tuple[Any, dict[str, Any]]:
    """The synthetic dataset as a d3rlpy MDPDataset, and CQL/IQL built on it with the scalers
    our training uses (observations standardized; IQL rewards scaled by 1000 / return range,
    IQL actor lr on a cosine), as `compare_d3rlpy.py` configures them."""
    import d3rlpy
    import numpy as np
    from d3rlpy.constants import ActionSpace

    data = synthetic_episodes()
    # d3rlpy keeps the last row of an episode that times out only as a successor: give each
    # episode its final next observation as an extra row (action and reward 0, never sampled).
    states = data["states"]
    actions = np.zeros((DATASET_EPISODES, EPISODE_LENGTH + 1, ACT_DIM), np.float32)
    actions[:, :-1] = data["actions"].reshape(DATASET_EPISODES, EPISODE_LENGTH, ACT_DIM)
    rewards = np.zeros((DATASET_EPISODES, EPISODE_LENGTH + 1), np.float32)
    rewards[:, :-1] = data["rewards"].reshape(DATASET_EPISODES, EPISODE_LENGTH)
    timeouts = np.zeros_like(rewards)
    timeouts[:, -1] = 1.0
    dataset = d3rlpy.dataset.MDPDataset(
        states.reshape(-1, OBS_DIM),
        actions.reshape(-1, ACT_DIM),
        rewards.reshape(-1, 1),
        np.zeros_like(timeouts).reshape(-1),
        timeouts.reshape(-1),
        action_space=ActionSpace.CONTINUOUS,
    )
    observations = states[:, :-1].reshape(-1, OBS_DIM).astype(np.float64)
    returns = data["rewards"].reshape(DATASET_EPISODES, EPISODE_LENGTH).sum(axis=1)
    trainers = {}
    for name in ("cql", "iql"):
        config = d3rlpy_training_config(
            name,
            observation_mean=observations.mean(axis=0),
            observation_std=observations.std(axis=0),
            return_min=float(returns.min()),
            return_max=float(returns.max()),
            steps=500_000,
        )
        trainer = config.create(device="cpu:0")
        trainer.build_with_dataset(dataset)
        trainers[name] = trainer
    return dataset, trainers


class D3rlpyWorker:
    """This file's `--d3rlpy-worker` mode running in the d3rlpy virtualenv's Python."""

    def __init__(self, python: Path, threads: int) -> None:
        self.process = subprocess.Popen(
            [
                str(python),
                str(Path(__file__).resolve()),
                "--d3rlpy-worker",
                "--threads",
                str(threads),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self.versions = self._receive()

    def _receive(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(
                f"the d3rlpy worker exited (code {self.process.wait()}); run it by hand to see "
                f"why: {self.process.args[0]} {Path(__file__).name} --d3rlpy-worker"
            )
        reply: dict[str, Any] = json.loads(line)
        return reply

    def run(self, algo: str, steps: int, train_step: bool = False) -> tuple[float, float]:
        """Wall and CPU seconds of `steps` d3rlpy updates (or whole training steps) of `algo`."""
        assert self.process.stdin is not None
        request = {"algo": algo, "steps": steps, "train_step": train_step}
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        reply = self._receive()
        return reply["wall"], reply["cpu"]

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.write(json.dumps({"quit": True}) + "\n")
            self.process.stdin.close()
        self.process.wait(timeout=60)


# --- our updates --------------------------------------------------------------------------------


def make_ours(name: str) -> tuple[Any, float]:
    """A fresh agent for benchmark row `name`, and its GFLOP per update."""
    from hybrid_rl.algos.bc import BC, BCConfig
    from hybrid_rl.algos.cql import CQL, CQLConfig
    from hybrid_rl.algos.iql import IQL, IQLConfig
    from hybrid_rl.algos.networks import COMPILE_ENV_VAR
    from hybrid_rl.algos.online_cql import online_cql_config
    from hybrid_rl.algos.online_iql import online_iql_config

    compiled = name.endswith("compiled")
    previous = os.environ.get(COMPILE_ENV_VAR)
    os.environ[COMPILE_ENV_VAR] = "1" if compiled else "0"
    try:
        if name in ("CQL", "CQL bf16"):
            precision = "bf16" if name.endswith("bf16") else "fp32"
            agent: Any = CQL(OBS_DIM, ACT_DIM, CQLConfig(precision=precision))
            gflop = update_gflop("cql")
        elif name == "online CQL (N=3)":
            config = online_cql_config(CQLConfig(), n_ensemble=3)
            agent, gflop = CQL(OBS_DIM, ACT_DIM, config), update_gflop("cql", members=3)
        elif name.startswith("IQL"):
            agent, gflop = IQL(OBS_DIM, ACT_DIM, IQLConfig()), update_gflop("iql")
        elif name.startswith("online IQL"):
            config = online_iql_config(IQLConfig(), n_ensemble=3)
            agent, gflop = IQL(OBS_DIM, ACT_DIM, config), update_gflop("iql", members=3)
        elif name == "BC":
            agent, gflop = BC(OBS_DIM, ACT_DIM, BCConfig()), update_gflop("bc")
        else:
            raise ValueError(f"unknown benchmark row {name!r}")
    finally:
        if previous is None:
            os.environ.pop(COMPILE_ENV_VAR, None)
        else:
            os.environ[COMPILE_ENV_VAR] = previous
    return agent, gflop


def our_training_step(agent: Any, algo: str) -> Callable[[Any], None]:
    """One step of `train.py`'s loop for `agent` on the synthetic dataset: sample, update, add
    the metrics to the running sums. Takes (and ignores) a batch, like an `update`."""
    import numpy as np

    from hybrid_rl.algos.registry import get_algorithm
    from hybrid_rl.data.dataset import OfflineDataset
    from hybrid_rl.data.transitions import TransitionArrays, split_trajectories

    data = synthetic_episodes()
    n = DATASET_EPISODES * EPISODE_LENGTH
    timeouts = np.zeros(n, dtype=bool)
    timeouts[EPISODE_LENGTH - 1 :: EPISODE_LENGTH] = True
    transitions = TransitionArrays(
        observations=data["states"][:, :-1].reshape(-1, OBS_DIM),
        actions=data["actions"],
        rewards=data["rewards"],
        next_observations=data["states"][:, 1:].reshape(-1, OBS_DIM),
        terminals=np.zeros(n, dtype=bool),
        timeouts=timeouts,
    )
    scale = get_algorithm(algo).reward_scale(split_trajectories(transitions).returns)
    dataset = OfflineDataset(transitions, seed=0, reward_scale=scale)
    agent.set_observation_statistics(dataset.observation_mean, dataset.observation_std)
    sums: dict[str, Any] = {}

    def step(_batch: Any) -> None:
        metrics = agent.update(dataset.sample(BATCH))
        for key, value in metrics.items():
            sums[key] = sums[key] + value if key in sums else value.clone()

    return step


def synthetic_batches(count: int, rows: int = BATCH) -> list[Any]:
    import torch

    from hybrid_rl.batch import TransitionBatch

    return [
        TransitionBatch(
            observations=torch.randn(rows, OBS_DIM),
            actions=torch.rand(rows, ACT_DIM) * 2 - 1,
            rewards=torch.randn(rows),
            next_observations=torch.randn(rows, OBS_DIM),
            terminals=(torch.rand(rows) < 0.01).float(),
        )
        for _ in range(count)
    ]


# --- the benchmark ------------------------------------------------------------------------------


OURS = (
    "CQL",
    "CQL bf16",
    "online CQL (N=3)",
    "IQL",
    "IQL compiled",
    "online IQL (N=3)",
    "online IQL (N=3) compiled",
    "BC",
    "CQL, sample + update",
    "CQL bf16, sample + update",
    "IQL compiled, sample + update",
)
# Our row -> the d3rlpy algorithm and whether whole training steps are timed.
D3RLPY_ROWS = {
    "CQL": ("cql", False),
    "CQL bf16": ("cql", False),
    "IQL": ("iql", False),
    "IQL compiled": ("iql", False),
    "CQL, sample + update": ("cql", True),
    "CQL bf16, sample + update": ("cql", True),
    "IQL compiled, sample + update": ("iql", True),
}
TRAIN_STEP_SUFFIX = ", sample + update"


# Matrix products timed beside the updates: (batch, rows, inner, columns, dtype). The first two
# are the machine's matmul speed in each dtype; the others the products of one chunk of CQL's
# fused critic (33 states × 31 actions = 1,023 rows, 2 members): a hidden layer's forward
# (its input gradient has the same shape) and its weight gradient.
PRODUCTS = {
    "fp32": (1, MATMUL_SIZE, MATMUL_SIZE, MATMUL_SIZE, "float32"),
    "bf16": (1, MATMUL_SIZE, MATMUL_SIZE, MATMUL_SIZE, "bfloat16"),
    "chunk forward fp32": (2, 1023, 257, 256, "float32"),
    "chunk forward bf16": (2, 1023, 257, 256, "bfloat16"),
    "chunk weight grad fp32": (2, 257, 1023, 256, "float32"),
    "chunk weight grad bf16": (2, 257, 1023, 256, "bfloat16"),
}


class Product:
    """A batched matrix product of one `PRODUCTS` shape, timed in blocks of ~`seconds`."""

    def __init__(
        self, batch: int, rows: int, inner: int, columns: int, dtype: str, seconds: float
    ) -> None:
        import torch

        self.a = torch.randn(batch, rows, inner, dtype=getattr(torch, dtype))
        self.b = torch.randn(batch, inner, columns, dtype=getattr(torch, dtype))
        self.gflop = 2 * batch * rows * inner * columns / 1e9
        self.timing = Timing(1)
        self.work()
        start = time.perf_counter()
        self.work()
        self.timing.units = max(1, round(seconds / (time.perf_counter() - start)))

    def work(self) -> None:
        import torch

        for _ in range(self.timing.units):
            torch.bmm(self.a, self.b)

    def rate(self) -> float:
        """GFLOP/s, median over blocks."""
        return self.gflop * self.timing.rate()

    def cpu_rate(self) -> float:
        return self.gflop * self.timing.cpu_rate()


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    info = machine_info()
    info["threads"] = args.threads

    worker = None
    if not args.no_d3rlpy:
        python = d3rlpy_python(args, torch.__version__.split("+")[0])
        worker = D3rlpyWorker(python, args.threads)
        info["d3rlpy"] = worker.versions

    batches = synthetic_batches(POOL)
    counter = {"step": 0}

    def block(update: Callable[[Any], Any], steps: int) -> Callable[[], None]:
        def work() -> None:
            for _ in range(steps):
                update(batches[counter["step"] % POOL])
                counter["step"] += 1

        return work

    # Build, compile and warm up; size each block to about `block_seconds`.
    rows: dict[str, dict[str, Any]] = {}
    for name in OURS:
        if args.only and not name.startswith(tuple(args.only)):
            continue
        agent, gflop = make_ours(name.removesuffix(TRAIN_STEP_SUFFIX))
        label = name
        if "bf16" in name and agent.matmul_dtype != torch.bfloat16:
            label = f"{name} (fp32 fallback)"
        update = agent.update
        if name.endswith(TRAIN_STEP_SUFFIX):
            update = our_training_step(agent, D3RLPY_ROWS[name][0])
        start = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", RuntimeWarning)
            update(batches[0])
        first = time.perf_counter() - start
        if any("torch.compile" in str(w.message) for w in caught):
            label = label.replace("compiled", "(compile failed: eager)")
        for i in range(3):
            update(batches[i])
        start = time.perf_counter()
        update(batches[1])
        per_step = time.perf_counter() - start
        steps = max(1, round(args.block_seconds / per_step))
        rows[name] = {
            "update": update,
            "label": label,
            "gflop": gflop,
            "timing": Timing(steps),
            "first_call_s": first,
        }
        print(f"{label}: first update {first:.1f} s, {steps} steps per block", flush=True)
    d3 = {}
    if worker is not None:
        for algo, train_step in {D3RLPY_ROWS[name] for name in rows if name in D3RLPY_ROWS}:
            worker.run(algo, 3, train_step)
            wall, _ = worker.run(algo, 2, train_step)
            d3[algo, train_step] = Timing(max(1, round(args.block_seconds / (wall / 2))))
    products = {name: Product(*shapes, args.block_seconds) for name, shapes in PRODUCTS.items()}
    for round_index in range(args.rounds):
        for product in products.values():
            time_block(product.work, product.timing)
        timed = set()
        for name, row in rows.items():
            time_block(block(row["update"], row["timing"].units), row["timing"])
            # Each d3rlpy variant is timed once per round, next to the first row using it.
            key = D3RLPY_ROWS.get(name)
            if worker is not None and key is not None and key not in timed:
                timed.add(key)
                algo, train_step = key
                wall, cpu = worker.run(algo, d3[key].units, train_step)
                d3[key].wall.append(wall)
                d3[key].cpu.append(cpu)
        print(f"round {round_index + 1}/{args.rounds} done", flush=True)
    if worker is not None:
        worker.close()
    info["load_average_after"] = load_average()

    results = []
    for name, row in rows.items():
        timing: Timing = row["timing"]
        matmul_rate = products["bf16" if "bf16" in name else "fp32"].rate()
        entry: dict[str, Any] = {
            "update": row["label"],
            "steps_per_s": round(timing.rate(), 2),
            "cpu_steps_per_s": round(timing.cpu_rate(), 2),
            "gflop_per_step": round(row["gflop"], 3),
            "gflop_per_s": round(row["gflop"] * timing.rate(), 1),
            "fraction_of_matmul": round(row["gflop"] * timing.rate() / matmul_rate, 3),
            "first_call_s": round(row["first_call_s"], 2),
            "blocks": len(timing.wall),
            "steps_per_block": timing.units,
        }
        key = D3RLPY_ROWS.get(name)
        if key in d3:
            entry["d3rlpy_steps_per_s"] = round(d3[key].rate(), 2)
            entry["d3rlpy_cpu_steps_per_s"] = round(d3[key].cpu_rate(), 2)
            entry["ratio"] = round(timing.rate() / d3[key].rate(), 2)
            entry["cpu_ratio"] = round(timing.cpu_rate() / d3[key].cpu_rate(), 2)
        results.append(entry)
    matmul = products["fp32"]
    return {
        "machine": info,
        "matmul": {
            "size": MATMUL_SIZE,
            "gflop_per_s": round(matmul.rate(), 1),
            "cpu_gflop_per_s": round(matmul.cpu_rate(), 1),
        },
        # GFLOP/s of every product in PRODUCTS (the 2048² matmul, the fused critic's chunk).
        "products": {
            name: {"shapes": PRODUCTS[name][:2], "gflop_per_s": round(product.rate(), 1)}
            for name, product in products.items()
        },
        "updates": results,
    }


def print_table(result: dict[str, Any]) -> None:
    m = result["machine"]
    print(
        f"\n{m['date']} | {m['cpu']} | {m['threads']} thread(s) | torch {m['torch']} | "
        f"d3rlpy {m.get('d3rlpy', {}).get('d3rlpy', '-')} | load (1, 5, 15 min) before "
        f"{m['load_average_1_5_15']}, after {m['load_average_after']}"
    )
    mm = result["matmul"]
    print(
        f"matmul {mm['size']}x{mm['size']}: {mm['gflop_per_s']} GFLOP/s "
        f"({mm['cpu_gflop_per_s']} per CPU-second); bf16 rows are against the bf16 one"
    )
    for name, product in result["products"].items():
        print(f"  {name:<24}{product['gflop_per_s']:>8.1f} GFLOP/s")
    print()
    header = (
        f"{'update':<28}{'ours/s':>9}{'d3rlpy/s':>10}{'ratio':>7}{'cpu ratio':>10}"
        f"{'GFLOP':>8}{'GFLOP/s':>9}{'of mm':>7}{'1st call s':>11}"
    )
    print(header)
    print("-" * len(header))
    for row in result["updates"]:
        d3, ratio, cpu_ratio = "-", "-", "-"
        if "d3rlpy_steps_per_s" in row:
            d3 = f"{row['d3rlpy_steps_per_s']:.1f}"
            ratio, cpu_ratio = f"{row['ratio']:.2f}", f"{row['cpu_ratio']:.2f}"
        print(
            f"{row['update']:<28}{row['steps_per_s']:>9.1f}{d3:>10}{ratio:>7}{cpu_ratio:>10}"
            f"{row['gflop_per_step']:>8.3f}{row['gflop_per_s']:>9.1f}"
            f"{row['fraction_of_matmul']:>7.0%}{row['first_call_s']:>11.1f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=7, help="timed blocks per variant")
    parser.add_argument("--block-seconds", type=float, default=0.5)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument(
        "--only",
        action="append",
        metavar="PREFIX",
        help="time only our rows whose name starts with PREFIX (repeatable), e.g. --only CQL",
    )
    add_d3rlpy_arguments(parser)
    parser.add_argument("--no-d3rlpy", action="store_true")
    parser.add_argument("--d3rlpy-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.d3rlpy_worker:
        d3rlpy_worker(args.threads)
        return
    result = run(args)
    print_table(result)
    if args.json:
        write_json(args.json, result)


if __name__ == "__main__":
    main()
