"""Why replicas built on different CPUs differed, and what the portable policy forward costs.

    PYTHONPATH=src python benchmarks/replica_determinism.py [--transitions 20000]

1. "Another CPU", emulated on this one: MKL's matmul kernel forced onto its reproducible
   branch (MKL_CBWR=COMPATIBLE) and numpy's AVX2/AVX-512 loops switched off
   (NPY_DISABLE_CPU_FEATURES). Counts how many outputs of torch's float32 actor forward and of
   numpy's float64 tanh/exp change, and checks that the portable sampling does not change.
2. How far one ulp in one action carries: a closed-loop HalfCheetah episode of the shipped
   policy, run twice, the second with its first action nudged by one float32 ulp.
3. Cost: CPU seconds of one policy forward at 20 envs (torch float32 vs portable float64), and
   of collecting `--transitions` HalfCheetah-medium transitions with the portable actor.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np
import torch

from hybrid_rl.behavior.policies import load_shipped_policy
from hybrid_rl.behavior.portable_actor import PortableActor
from hybrid_rl.behavior.replica import collect_transitions
from hybrid_rl.envs import make_env

_PROBE = """
import json, sys, numpy as np, torch
from hybrid_rl.behavior.policies import load_shipped_policy
from hybrid_rl.behavior.portable_actor import PortableActor
actor = load_shipped_policy("halfcheetah")[0]
rng = np.random.default_rng(0)
obs, noise = rng.standard_normal((20, 17)) * 3, rng.standard_normal((20, 6))
x = rng.standard_normal(100_000) * 3
with torch.no_grad():
    f32 = actor.net(torch.as_tensor(obs, dtype=torch.float32))[0].numpy()
actions, log_probs = PortableActor.from_actor(actor).sample(obs, noise)
portable = actions.ravel().tolist() + log_probs.tolist()
print(json.dumps({"torch_f32": f32.tolist(), "np_tanh": np.tanh(x).tolist(),
                  "np_exp": np.exp(x).tolist(), "portable": portable}))
"""


def probe(env: dict[str, str]) -> dict[str, np.ndarray]:
    result = subprocess.run(
        [sys.executable, "-c", _PROBE],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **env},
    )
    return {k: np.array(v) for k, v in json.loads(result.stdout).items()}


def emulate_another_cpu() -> None:
    from numpy._core._multiarray_umath import __cpu_dispatch__

    here = probe({})
    other = probe(
        {"MKL_CBWR": "COMPATIBLE", "NPY_DISABLE_CPU_FEATURES": " ".join(__cpu_dispatch__)}
    )
    print("1. another CPU, emulated (MKL_CBWR=COMPATIBLE, numpy without its SIMD dispatch)")
    for key in here:
        a, b = here[key], other[key]
        print(f"   {key:10} {int((a != b).sum()):>7} of {a.size:>7} values differ")


def one_ulp_episode(actor: torch.nn.Module, nudge: bool) -> tuple[float, np.ndarray]:
    env = make_env("HalfCheetah-v4", seed=0)
    obs, _ = env.reset(seed=0)
    portable = PortableActor.from_actor(actor)
    rng = np.random.default_rng(0)
    total, states = 0.0, []
    for step in range(1000):
        action = portable.sample(obs[None], rng.standard_normal((1, 6)))[0][0].astype(np.float32)
        if nudge and step == 0:
            action[0] = np.nextafter(action[0], np.float32(2))
        obs, reward, *_ = env.step(action)
        total += float(reward)
        states.append(np.concatenate([env.unwrapped.data.qpos, env.unwrapped.data.qvel]))
    return total, np.array(states)


def amplification(actor: torch.nn.Module) -> None:
    plain, states = one_ulp_episode(actor, nudge=False)
    nudged, nudged_states = one_ulp_episode(actor, nudge=True)
    gap = np.abs(states - nudged_states).max(axis=1)
    print("2. one float32 ulp in the first action of a closed-loop HalfCheetah episode")
    for step in (0, 10, 25, 50, 100, 999):
        print(f"   step {step:4}: max |state difference| {gap[step]:.3g}")
    print(f"   episode return {plain:.1f} vs {nudged:.1f}")


def cost(actor: torch.nn.Module, transitions: int) -> None:
    portable = PortableActor.from_actor(actor)
    obs = np.random.default_rng(0).standard_normal((20, 17))
    noise = np.random.default_rng(1).standard_normal((20, 6))
    obs32 = torch.as_tensor(obs, dtype=torch.float32)
    repeats = 500
    start = time.process_time()
    with torch.no_grad():
        for _ in range(repeats):
            actor.distribution(obs32).sample()
    torch_ms = (time.process_time() - start) / repeats * 1e3
    start = time.process_time()
    for _ in range(repeats):
        portable.sample(obs, noise)
    portable_ms = (time.process_time() - start) / repeats * 1e3
    steps = 1_000_000 / 20
    print("3. cost (CPU time)")
    print(
        f"   policy step at 20 envs: torch float32 {torch_ms:.2f} ms, portable {portable_ms:.2f} ms"
    )
    print(f"   extra CPU for a 1M-transition build: {(portable_ms - torch_ms) * steps / 1e3:.0f} s")
    start = time.process_time()
    collect_transitions("HalfCheetah-v4", portable, transitions, seed=0, progress=False)
    seconds = time.process_time() - start
    print(
        f"   {transitions:,} HalfCheetah-medium transitions: {seconds:.1f} CPU s "
        f"(x{1_000_000 / transitions:g} = {seconds * 1_000_000 / transitions / 60:.1f} min for 1M)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transitions", type=int, default=20_000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    actor = load_shipped_policy("halfcheetah")[0]
    emulate_another_cpu()
    amplification(actor)
    cost(actor, args.transitions)


if __name__ == "__main__":
    main()
