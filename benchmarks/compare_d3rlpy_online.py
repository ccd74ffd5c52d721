"""Online cross-check against d3rlpy 2.8.1 (issue 31): fine-tune IQL online from each side's own
Phase I agent trained on the same corrupted rows, and score both with our evaluator.

    # ours: the Phase I run must exist (hybrid-rl phase1 ...); the Phase II run is made here
    python benchmarks/compare_d3rlpy_online.py --side ours --env hopper-medium-bimodal-v2 \\
        --remove_top_k 30 --seed 0 --offline-steps 100000 --online-steps 30000 \\
        --eval-every 2500 --phase1-results results_i31/phase1 --ours-results results_i31/xcheck
    # d3rlpy: Phase I (offline) then fit_online, in its own virtualenv (benchmarks/.d3rlpy-venv)
    python benchmarks/compare_d3rlpy_online.py --side d3rlpy ...   # same flags
    # both curves, scored and drawn: docs/compare-d3rlpy/online_iql_<env>_k<k>.json / .png
    python benchmarks/compare_d3rlpy_online.py --side report ...   # same flags

What is the same on both sides:
- Data: the rows our Phase I trained on (the replica with the top k% of trajectories removed,
  `hybrid_rl.data.corruption`), written once to an HDF5 file that d3rlpy reads as episodes
  exactly as `compare_d3rlpy.read_replica_for_d3rlpy` does (every row a transition).
- Observation standardization with those rows' mean and std (eps 1e-3); IQL's reward scale is
  ours (1000 / return range of the clean data, DESIGN.md §5), passed to d3rlpy's
  `ReturnBasedRewardScaler` as return_min 0, return_max 1000 / scale. Online env rewards get
  the same scale on both sides.
- Phase I: IQL at our defaults (`d3rlpy_env.d3rlpy_algo_config`), `--offline-steps` updates, the
  actor lr on a cosine to 0 over them.
- Phase II: one env step then one update per step on Hopper-v4 (1000-step cap), the stochastic
  policy collecting from the first step. Evaluations every `--eval-every` online steps (and at
  step 0) with 10 deterministic episodes by our `PolicyEvaluator`, env i reset with seed
  1_000_000 · seed + step + i, as our Phase II evaluates.

What differs (ONLINE_DIFFERENCES, written into the JSON): the replay mixing (ours: the arm's
`online_share`, by default half of every batch from the online buffer; d3rlpy: uniform over the
offline episodes and the online ones in one FIFO buffer, so the online share grows from 0 to
n/(n + N)); the actor lr online (ours: constant `iql_actor_lr`, 3e-4; d3rlpy: its cosine
scheduler keeps stepping past T_max, so the lr climbs back from 0 along the cosine, ≈ 6e-5 after
30% of the offline steps); when updates start (ours: once 256 online rows exist; d3rlpy: from
the first step, the buffer already holding the offline data); the last transition of a
truncated online episode (ours keeps it, bootstrapping; d3rlpy's episode drops it); the critic
(ours: the arm's critic; d3rlpy: its twin Q continued with its Adam state).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from common import machine_info, write_json
from compare_d3rlpy import (
    KNOWN_DIFFERENCES,
    file_sha256,
    read_replica_for_d3rlpy,
    shown_path,
    write_json_atomic,
)
from d3rlpy_env import D3RLPY_VERSION, add_d3rlpy_arguments, d3rlpy_python

ONLINE_DIFFERENCES = [
    "Replay: ours samples the arm's online share of each batch from the online buffer (the "
    "spec: half of every batch from the first update); d3rlpy's fit_online samples uniformly "
    "over one FIFO buffer holding the offline episodes and the online ones, so its online share "
    "grows from 0 to n / (n + N).",
    "Actor lr online: ours is constant (iql_actor_lr, default 3e-4); d3rlpy's "
    "CosineAnnealingLR keeps stepping after T_max = offline steps, so the lr climbs back from 0 "
    "along the cosine (3e-4 · (1 − cos(π t / T)) / 2 at online step t).",
    "Update start: ours once 256 online rows exist; d3rlpy from the first online step.",
    "Truncated online episodes: ours stores the last transition (not terminal, bootstrapped); "
    "d3rlpy's episode ends at its last observation, so that transition is dropped.",
    "Critic: ours is the arm's critic (see the ours config); d3rlpy continues its twin Q and "
    "V with their Adam states (one Adam over Q and V).",
    "Online rollouts: ours restarts the collecting episode at every checkpoint (every eval "
    "step); d3rlpy runs episodes to their end.",
]


def phase1_train_config(args: argparse.Namespace) -> Any:
    from hybrid_rl.train import TrainConfig

    return TrainConfig(
        algo="iql",
        dataset=args.env,
        k_percent=args.remove_top_k,
        seed=args.seed,
        results_dir=str(args.phase1_results),
    )


def finetune_config(args: argparse.Namespace) -> Any:
    from hybrid_rl.finetune import FinetuneConfig, preset_options

    preset, bonus_type = args.arm.split(":")
    options = preset_options(preset)
    if args.online_share is not None:
        options["online_share"] = args.online_share
    return FinetuneConfig(
        algo="iql",
        dataset=args.env,
        k_percent=args.remove_top_k,
        seed=args.seed,
        n_ensemble=args.n_ensemble,
        bonus_type=bonus_type,
        online_steps=args.online_steps,
        eval_every=args.eval_every,
        log_every=math_gcd(500, args.eval_every),
        phase1_results_dir=str(args.phase1_results),
        results_dir=str(args.ours_results),
        device="cpu",
        **options,
    )


def math_gcd(a: int, b: int) -> int:
    import math

    return math.gcd(a, b)


def d3rlpy_run_dir(args: argparse.Namespace) -> Path:
    start = "" if args.start == "own" else "_from_ours"
    name = f"iql_{args.env}_k{args.remove_top_k:g}_s{args.seed}{start}"
    return Path(args.d3rlpy_results) / name


def corrupted_rows_file(args: argparse.Namespace) -> tuple[Path, float]:
    """The rows our Phase I trained on, as an HDF5 file d3rlpy reads; and our reward scale."""
    import h5py

    from hybrid_rl.algos.iql import reward_scale
    from hybrid_rl.behavior.replica import ensure_replica
    from hybrid_rl.data.corruption import corrupt
    from hybrid_rl.data.loader import load_dataset
    from hybrid_rl.data.transitions import split_trajectories

    config = phase1_train_config(args)
    loaded = load_dataset(config.dataset, config.source, replica_provider=ensure_replica)
    rows, _ = corrupt(loaded.transitions, config.corruption, config.seed)
    scale = reward_scale(split_trajectories(loaded.transitions).returns)  # the clean data's
    path = Path(args.d3rlpy_results) / f"rows_{args.env}_k{args.remove_top_k:g}_s{args.seed}.hdf5"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        with h5py.File(tmp, "w") as f:
            for name in ("observations", "next_observations", "actions", "rewards"):
                f[name] = getattr(rows, name)
            f["terminals"] = rows.terminals
            f["timeouts"] = rows.timeouts
        os.replace(tmp, path)
    return path, scale


# --- d3rlpy worker (runs inside the d3rlpy virtualenv: no hybrid_rl imports here) -------------


def d3rlpy_worker(args: argparse.Namespace) -> None:
    """Phase I (saved as offline.d3, reused on a rerun) then fit_online, saving the greedy
    policy at online step 0 and every eval_every steps, and done.json at the end."""
    import d3rlpy
    import gymnasium as gym
    import torch
    from d3rlpy.constants import ActionSpace
    from d3rlpy.logging import NoopAdapterFactory
    from d3rlpy_env import d3rlpy_training_config

    torch.set_num_threads(args.threads)
    run_dir = d3rlpy_run_dir(args)
    run_dir.mkdir(parents=True, exist_ok=True)
    data = read_replica_for_d3rlpy(args.rows_file)
    dataset = d3rlpy.dataset.MDPDataset(
        data["observations"],
        data["actions"],
        data["rewards"],
        data["terminals"],
        data["timeouts"],
        action_space=ActionSpace.CONTINUOUS,
    )
    assert dataset.transition_count == data["transitions"]
    offline_model = run_dir / "offline.d3"
    d3rlpy.seed(args.seed)
    start = time.perf_counter()
    if args.start == "ours":
        algo = d3rlpy_from_our_weights(args, dataset)
    elif offline_model.exists():
        algo = d3rlpy.load_learnable(str(offline_model), device="cpu:0")
        print("loaded the finished Phase I model", flush=True)
    else:
        config = d3rlpy_training_config(
            "iql",
            observation_mean=data["observation_mean"],
            observation_std=data["observation_std"],
            return_min=0.0,
            return_max=1000.0 / args.reward_scale,
            steps=args.offline_steps,
        )
        algo = config.create(device="cpu:0")
        algo.build_with_dataset(dataset)

        def on_epoch(algo: Any, epoch: int, total_step: int) -> None:
            rate = total_step / (time.perf_counter() - start)
            print(f"offline step {total_step}: {rate:.1f} steps/s", flush=True)

        algo.fit(
            dataset,
            n_steps=args.offline_steps,
            n_steps_per_epoch=10_000,
            logger_adapter=NoopAdapterFactory(),
            show_progress=False,
            epoch_callback=on_epoch,
        )
        algo.save(str(run_dir / "offline.tmp.d3"))
        os.replace(run_dir / "offline.tmp.d3", offline_model)
    offline_seconds = time.perf_counter() - start

    def save_policy(step: int) -> None:
        tmp = run_dir / f"online_{step}.tmp.pt"
        algo.save_policy(str(tmp))
        os.replace(tmp, run_dir / f"online_{step}.pt")

    for stale in run_dir.glob("online_*.pt"):
        stale.unlink()
    save_policy(0)
    episodes: dict[str, list[float]] = {"steps": [], "return": [], "length": []}

    class EpisodeLog(gym.Wrapper):  # type: ignore[misc]
        """Records every collecting episode's return and length."""

        def reset(self, **kwargs: Any) -> Any:
            self.total, self.length = 0.0, 0
            return self.env.reset(**kwargs)

        def step(self, action: Any) -> Any:
            out = self.env.step(action)
            self.total += float(out[1])
            self.length += 1
            if out[2] or out[3]:
                episodes["steps"].append(sum(episodes["length"]) + self.length)
                episodes["return"].append(self.total)
                episodes["length"].append(self.length)
            return out

    env = EpisodeLog(gym.make("Hopper-v4"))
    env.reset(seed=args.seed)
    buffer = d3rlpy.dataset.create_fifo_replay_buffer(
        limit=data["transitions"] + 2 * args.online_steps, episodes=dataset.episodes
    )
    online_start = time.perf_counter()

    def on_step(algo: Any, epoch: int, total_step: int) -> None:
        if total_step % args.eval_every == 0:
            save_policy(total_step)
            print(f"online step {total_step}", flush=True)

    algo.fit_online(
        env,
        buffer,
        n_steps=args.online_steps,
        n_steps_per_epoch=args.eval_every,
        logger_adapter=NoopAdapterFactory(),
        show_progress=False,
        callback=on_step,
    )
    write_json_atomic(
        run_dir / "done.json",
        {
            "seed": args.seed,
            "offline_steps": args.offline_steps,
            "online_steps": args.online_steps,
            "eval_every": args.eval_every,
            "start": args.start,
            "rows_sha256": file_sha256(args.rows_file),
            "transitions": data["transitions"],
            "reward_scale": args.reward_scale,
            "online_episodes": episodes,
            "offline_seconds": round(offline_seconds, 1),
            "online_seconds": round(time.perf_counter() - online_start, 1),
            "config": json.loads(algo.config.serialize()),
            "versions": {"d3rlpy": d3rlpy.__version__, "torch": torch.__version__},
        },
    )


def d3rlpy_from_our_weights(args: argparse.Namespace, dataset: Any) -> Any:
    """d3rlpy's IQL holding our Phase I agent's weights (`export_our_weights`), its actor lr
    scheduler advanced through the offline steps, as its own Phase I would leave it (lr ≈ 0,
    climbing back along the cosine online); its Adam states are fresh."""
    import torch
    from d3rlpy_env import d3rlpy_training_config

    weights = np.load(args.weights_file)
    config = d3rlpy_training_config(
        "iql",
        observation_mean=weights["observation_mean"],
        observation_std=weights["observation_std"],
        return_min=0.0,
        return_max=1000.0 / args.reward_scale,
        steps=args.offline_steps,
    )
    algo = config.create(device="cpu:0")
    algo.build_with_dataset(dataset)
    modules = algo.impl.modules
    targets = {
        "policy": modules.policy,
        "q": modules.q_funcs,
        "q_target": modules.targ_q_funcs,
        "value": modules.value_func,
    }
    with torch.no_grad():
        for key in weights.files:
            part, _, name = key.partition("/")
            if part not in targets:
                continue
            param = targets[part].get_parameter(name)
            value = torch.as_tensor(weights[key], dtype=param.dtype)
            if tuple(value.shape) != tuple(param.shape):
                raise SystemExit(f"{key}: shape {tuple(value.shape)} != {tuple(param.shape)}")
            param.copy_(value)
    # The ported agent must act and value as ours does on the check rows.
    obs = torch.as_tensor(weights["check_obs"], dtype=torch.float32)
    scaled = algo.observation_scaler.transform(obs)
    action = modules.policy(scaled).squashed_mu
    errors = {
        "action": (action - torch.as_tensor(weights["check_action"])).abs().max(),
        "value": (modules.value_func(scaled).view(-1) - torch.as_tensor(weights["check_v"]))
        .abs()
        .max(),
    }
    for member in (0, 1):
        ours_q = torch.as_tensor(weights["check_q"][member])
        q = modules.q_funcs[member](scaled, action).q_value.view(-1)
        errors[f"q{member}"] = (q - ours_q).abs().max()
    print(f"port check, max abs differences: { {k: float(v) for k, v in errors.items()} }")
    if max(float(v) for v in errors.values()) > 1e-3:
        raise SystemExit("the ported d3rlpy agent does not reproduce ours; not fine-tuning it")
    scheduler = modules.actor_optim._lr_scheduler
    for _ in range(args.offline_steps):
        scheduler.step()
    print(f"loaded our Phase I weights; actor lr now {scheduler.get_last_lr()}", flush=True)
    return algo


def export_our_weights(args: argparse.Namespace) -> Path:
    """Our Phase I checkpoint's actor, twin Q (and targets), V and observation statistics in
    d3rlpy 2.8.1's IQL parameter names and layouts, as an .npz of arrays."""
    import torch

    from hybrid_rl.algos.ensemble import read_phase1_agent_state

    config = phase1_train_config(args)
    state = read_phase1_agent_state(config.run_dir / "checkpoint.pt")
    out: dict[str, np.ndarray] = {
        "observation_mean": state["normalizer"]["mean"].double().numpy(),
        "observation_std": state["normalizer"]["std"].double().numpy(),
    }

    def linears(prefix: str, net: dict[str, torch.Tensor], member: int, last: str) -> None:
        names = ("_encoder._layers.0", "_encoder._layers.2", last)
        for layer, name in enumerate(names):
            weight = net[f"net.layers.{layer}.weight"][member]  # [in, out]
            bias = net[f"net.layers.{layer}.bias"][member, 0]
            out[f"{prefix}{name}.weight"] = weight.T.contiguous().numpy()
            out[f"{prefix}{name}.bias"] = bias.numpy()

    linears("policy/", state["actor"], 0, "_mu")
    # d3rlpy: log std = −5 + 7 · sigmoid(p); ours: the clamped parameter.
    log_std = state["actor"]["log_std"].clamp(-5.0, 2.0)
    share = ((log_std + 5.0) / 7.0).clamp(1e-6, 1 - 1e-6)
    out["policy/_logstd"] = torch.logit(share)[None].numpy()
    for member in (0, 1):
        linears(f"q/{member}.", state["critic"], member, "_fc")
        linears(f"q_target/{member}.", state["critic_target"], member, "_fc")
    linears("value/", state["value"], 0, "_fc")
    # Check rows: our agent's greedy action, its twin Q there and V, for the port check.
    from hybrid_rl.algos.iql import IQL

    agent = IQL(len(out["observation_mean"]), state["actor"]["log_std"].shape[0], config.agent)
    agent.load_state_dict(state)
    generator = torch.Generator().manual_seed(0)
    mean, std = state["normalizer"]["mean"], state["normalizer"]["std"]
    obs = mean + std * torch.randn(16, mean.shape[0], generator=generator)
    with torch.no_grad():
        action = agent.act(obs, deterministic=True)
        normalized = agent.normalizer(obs)
        out["check_obs"] = obs.numpy()
        out["check_action"] = action.numpy()
        out["check_q"] = agent.critic(normalized, action).numpy()
        out["check_v"] = agent.value(normalized).numpy()
    path = Path(args.d3rlpy_results) / f"our_phase1_{config.run_name}.npz"
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **out)
    return path


# --- our side, and the report -------------------------------------------------------------------


def run_ours(args: argparse.Namespace) -> None:
    import torch

    from hybrid_rl.finetune import finetune

    torch.set_num_threads(args.threads)
    finetune(finetune_config(args), progress=False)


def run_d3rlpy(args: argparse.Namespace) -> None:
    import torch

    rows_file, scale = corrupted_rows_file(args)
    python = d3rlpy_python(args, torch.__version__.split("+")[0])
    command = [
        str(python),
        str(Path(__file__).resolve()),
        "--side",
        "d3rlpy-worker",
        *("--env", args.env, "--remove_top_k", str(args.remove_top_k)),
        *("--seed", str(args.seed), "--offline-steps", str(args.offline_steps)),
        *("--online-steps", str(args.online_steps), "--eval-every", str(args.eval_every)),
        *("--threads", str(args.threads), "--d3rlpy-results", str(args.d3rlpy_results)),
        *("--rows-file", str(rows_file), "--reward-scale", repr(scale)),
        *("--start", args.start),
    ]
    if args.start == "ours":
        command += ["--weights-file", str(export_our_weights(args))]
    subprocess.run(command, check=True)


def evaluate_d3rlpy(args: argparse.Namespace, env_id: str) -> dict[str, Any]:
    import torch

    from hybrid_rl.eval.rollout import PolicyEvaluator

    run_dir = d3rlpy_run_dir(args)
    cache_file = run_dir / "evaluations.json"
    cache = json.loads(cache_file.read_text()) if cache_file.exists() else {}
    steps = [
        step
        for step in range(0, args.online_steps + 1, args.eval_every)
        if (run_dir / f"online_{step}.pt").exists()  # an unfinished run: its snapshots so far
    ]
    evaluator = PolicyEvaluator(env_id, 10)
    try:
        for step in steps:
            if str(step) in cache:
                continue
            policy = torch.jit.load(str(run_dir / f"online_{step}.pt"), map_location="cpu")
            policy.eval()
            result = evaluator.evaluate(policy, seed=1_000_000 * args.seed + step)
            cache[str(step)] = [result.normalized_mean, result.normalized_std]
            write_json_atomic(cache_file, cache)
    finally:
        evaluator.close()
    return {"steps": steps, "normalized_return_mean": [cache[str(s)][0] for s in steps]}


def curve_summary(steps: list[int], scores: list[float]) -> dict[str, Any]:
    later = scores[1:]
    low = int(np.argmin(later)) + 1
    return {
        "step0": scores[0],
        "lowest_after_step0": scores[low],
        "lowest_step": steps[low],
        "final": scores[-1],
        "mean": float(np.mean(scores)),
    }


def report(args: argparse.Namespace) -> None:
    config = finetune_config(args)
    metrics = json.loads((config.run_dir / "metrics.json").read_text())
    saved = json.loads((config.run_dir / "config.json").read_text())
    env_id = saved["dataset"]["env_id"]
    ours_steps = metrics["eval"]["steps"]
    ours_scores = metrics["eval"]["normalized_return_mean"]
    d3 = evaluate_d3rlpy(args, env_id)
    done_file = d3rlpy_run_dir(args) / "done.json"
    done: dict[str, Any] = json.loads(done_file.read_text()) if done_file.exists() else {}
    result = {
        "env": args.env,
        "env_id": env_id,
        "remove_top_k": args.remove_top_k,
        "seed": args.seed,
        "offline_steps": args.offline_steps,
        "online_steps": args.online_steps,
        "eval_every": args.eval_every,
        "eval_seed_rule": "1_000_000 * seed + step (env i: + i), 10 deterministic episodes",
        "ours": {
            "arm": saved["arm"],
            "run_dir": shown_path(config.run_dir),
            "phase1": saved["phase1"]["run_name"],
            "phase1_final": saved["phase1"]["final_normalized_return"],
            "steps": ours_steps,
            "normalized_return_mean": ours_scores,
            "summary": curve_summary(ours_steps, ours_scores),
            "online_episode_lengths": metrics.get("online_episodes", {}).get("length", []),
            "config": saved["config"],
            "git_commit": saved.get("git_commit"),
        },
        "d3rlpy": {
            "run_dir": shown_path(d3rlpy_run_dir(args)),
            **d3,
            "summary": curve_summary(d3["steps"], d3["normalized_return_mean"]),
            "start": "our Phase I weights, ported" if args.start == "ours" else "its own Phase I",
            "finished": bool(done),
            "online_episode_lengths": done.get("online_episodes", {}).get("length", []),
            "config": done.get("config"),
            "versions": done.get("versions"),
            "rows_sha256": done.get("rows_sha256"),
            "seconds": {
                "offline": done.get("offline_seconds"),
                "online": done.get("online_seconds"),
            },
        },
        "known_differences": KNOWN_DIFFERENCES["both"]
        + KNOWN_DIFFERENCES["iql"]
        + ONLINE_DIFFERENCES,
        "machine": machine_info(),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    start = "" if args.start == "own" else "_d3rlpy-from-ours"
    variant = config.variant or "spec"
    stem = f"online_iql_{args.env}_k{args.remove_top_k:g}_s{args.seed}_{variant}{start}"
    write_json(args.out / f"{stem}.json", result)
    plot(result, args.out / f"{stem}.png")
    for side in ("ours", "d3rlpy"):
        s = result[side]["summary"]
        print(
            f"{side}: step 0 {s['step0']:.1f}, lowest {s['lowest_after_step0']:.1f} "
            f"({s['lowest_step']}), final {s['final']:.1f}, mean {s['mean']:.1f}"
        )
    print(f"wrote {args.out / stem}.json and .png")


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    sides = (
        ("ours", f"hybrid-rl, {result['ours']['arm']}", "C0"),
        ("d3rlpy", f"d3rlpy {D3RLPY_VERSION} fit_online", "C1"),
    )
    for key, label, color in sides:
        side = result[key]
        s = side["summary"]
        ax.plot(
            side["steps"],
            side["normalized_return_mean"],
            "o-",
            color=color,
            label=f"{label}: step 0 {s['step0']:.1f}, lowest {s['lowest_after_step0']:.1f}, "
            f"final {s['final']:.1f}",
        )
    ax.set_xlabel("online steps")
    ax.set_ylabel("D4RL normalized return (10 episodes)")
    ax.set_title(
        f"IQL fine-tuned online; d3rlpy starts from {result['d3rlpy']['start']} "
        f"({result['offline_steps']:,} steps)\n{result['env']}, top "
        f"{result['remove_top_k']:g}% removed, seed "
        f"{result['seed']}: one seed",
        fontsize=9,
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--side", choices=("ours", "d3rlpy", "report", "d3rlpy-worker"))
    parser.add_argument("--env", default="hopper-medium-bimodal-v2")
    parser.add_argument("--remove_top_k", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--offline-steps", type=int, default=100_000)
    parser.add_argument("--online-steps", type=int, default=30_000)
    parser.add_argument("--eval-every", type=int, default=2_500)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--arm", default="enoto:none", help="our arm, preset:bonus_type")
    parser.add_argument("--n-ensemble", type=int, default=3)
    parser.add_argument("--online-share", default=None, help="our online_share (default: arm's)")
    parser.add_argument("--phase1-results", type=Path, default=Path("results_i31/phase1"))
    parser.add_argument("--ours-results", type=Path, default=Path("results_i31/xcheck"))
    parser.add_argument("--d3rlpy-results", type=Path, default=Path("results_i31/d3rlpy"))
    parser.add_argument("--out", type=Path, default=Path("docs/compare-d3rlpy"))
    parser.add_argument(
        "--start",
        choices=("own", "ours"),
        default="own",
        help="d3rlpy's Phase I: its own (trained here), or our Phase I weights ported",
    )
    parser.add_argument("--weights-file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--rows-file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--reward-scale", type=float, help=argparse.SUPPRESS)
    add_d3rlpy_arguments(parser)
    args = parser.parse_args()
    if args.online_steps % args.eval_every:
        parser.error("--online-steps must be a multiple of --eval-every")
    {
        "ours": run_ours,
        "d3rlpy": run_d3rlpy,
        "report": report,
        "d3rlpy-worker": d3rlpy_worker,
    }[args.side](args)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
