"""Learning cross-check against d3rlpy 2.8.1: same data, hyperparameters, steps, seeds and scorer.

For one algorithm (IQL or CQL) and one dataset, trains our agent (`hybrid_rl.train.train_offline`)
and d3rlpy's for the same number of gradient steps and seeds, scores both with the same
evaluation code, and reports whether our final mean score lies within d3rlpy's seed spread:

    python benchmarks/compare_d3rlpy.py --algo iql --steps 100000 --seeds 0 1 2 \\
        --ours-results results_evidence --workers 2
    python benchmarks/compare_d3rlpy.py --algo cql --steps 20000 --seeds 0 1 2 --workers 2

d3rlpy runs in a worker process of its own virtualenv (this file's `--d3rlpy-train` mode, which
imports no hybrid_rl; the venv is created on first use under benchmarks/.d3rlpy-venv, or given
with --d3rlpy-python). It is never a dependency of hybrid-rl.

What is the same on both sides:
- Data: the replica HDF5 file of the dataset (`load_dataset(..., "replica")`), whose sha256 is
  checked on both sides. d3rlpy makes transitions from consecutive rows of an episode and drops
  the last row of an episode that does not terminate; so that it trains on exactly our
  1,000,000 transitions, the worker appends to each such episode one extra row holding its last
  `next_observation` (action and reward 0: never sampled, it only serves as the successor).
  This needs files that store `next_observations`, as replicas do.
- Observations standardized with the mean and std (float64, ddof 0) of all rows, divided by
  std + 1e-3 (d3rlpy's `StandardObservationScaler` eps is 1e-3, like our
  `ObservationNormalizer`); the statistics are passed in, not fitted by d3rlpy.
- IQL rewards multiplied by 1000 / (max − min trajectory return), trajectories split on
  terminals | timeouts (d3rlpy's `ReturnBasedRewardScaler(multiplier=1000)` computes
  multiplier · r / (max − min); its min and max are passed in, because its own fit would leave
  out the last reward of every timed-out episode). CQL: rewards unscaled on both sides.
- Hyperparameters: `d3rlpy_env.d3rlpy_algo_config` (batch 256, [256, 256] MLPs, γ 0.99, τ 0.005,
  twin critics; IQL expectile 0.7, β 3, max weight 100, lr 3e-4, actor lr cosine to 0 over the
  run; CQL weight 5 fixed, 10 samples, actor 1e-4, critic 3e-4, temperature 1.0 at lr 1e-4, no
  entropy in the backup).
- Evaluation: every --eval-every steps (and at step 0) d3rlpy's greedy policy is exported with
  `save_policy` (TorchScript, observation scaler included) and scored here by our
  `PolicyEvaluator`: --eval-episodes episodes, env i reset with seed 1_000_000 · seed + step + i,
  the rule our training uses for its own evaluations. Each side's curve is its mean normalized
  return at those steps; "final" is the value at the last step.
- Compute: every training is one process with --threads torch threads, up to --workers at once.

What config cannot make the same (d3rlpy 2.8.1 hard-codes it) is listed in KNOWN_DIFFERENCES
and written into the result JSON.

Re-running: our runs resume from their checkpoints and finished ones are skipped (point
--ours-results at existing results to reuse them; runs there made with other settings or data
are refused). d3rlpy cannot resume: an interrupted d3rlpy run restarts from scratch, a finished
one (done.json) is skipped. Evaluations of d3rlpy snapshots are cached in evaluations.json next to
them. Outputs in --out: compare_<algo>_<dataset>.json (curves, finals, both configs, versions,
dataset sha256, machine) and .png (normalized return vs step, mean ± std over seeds); a markdown
table goes to stdout.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from common import machine_info, write_json
from d3rlpy_env import (
    D3RLPY_VERSION,
    IQL_RETURN_RANGE_TARGET,
    add_d3rlpy_arguments,
    d3rlpy_python,
    d3rlpy_training_config,
)

ALGOS = ("iql", "cql")
LOG_EVERY = 1000  # our training's default metrics interval, shortened for tiny runs

KNOWN_DIFFERENCES = {
    "both": [
        "Random streams: both sample minibatches uniformly with replacement from the same "
        "transitions and initialize layers like torch.nn.Linear, but ours draws batches from a "
        "torch.Generator seeded with the seed and d3rlpy from numpy's global RNG after "
        "d3rlpy.seed(seed): equal seeds give neither equal batches nor equal initial weights.",
        "Adam: ours uses torch's fused kernel, d3rlpy the default one (same update rule).",
    ],
    "iql": [
        "Actor log std: d3rlpy's state-independent log std is a sigmoid squashed into [-5, 2] "
        "that starts at -1.5 (std 0.22); ours is a free parameter clamped to [-5, 2] that starts "
        "at 0 (std 1). Hard-coded in d3rlpy's IQL.inner_create_impl.",
        "Update order: d3rlpy steps V and Q first (one Adam over both, lr 3e-4, as our two Adams "
        "at 3e-4) and then the actor, with advantages from the updated V; ours forms all three "
        "losses from the networks before the step (as CORL does).",
        "Actor lr cosine: torch's CosineAnnealingLR(T_max=steps) in d3rlpy, our LambdaLR "
        "0.5 (1 + cos(pi t / T)): the same schedule up to rounding.",
        "Reward scale: applied per batch in float32 by d3rlpy, once in float64 by ours (the same "
        "up to float32 rounding).",
    ],
    "cql": [
        "Backup action: with soft_q_backup=False d3rlpy backs up min Q_target(s', tanh mu(s')), "
        "the policy's deterministic action; ours samples a' ~ pi(.|s') (as CORL does), also "
        "without the entropy term. soft_q_backup=True would sample but also subtract "
        "alpha log pi, which ours does not.",
        "Actor log std clamp: [-20, 2] in d3rlpy (hard-coded for CQL), [-5, 2] in ours.",
        "Temperature: d3rlpy's loss is -alpha (log pi - |A|) (gradient scaled by alpha), ours "
        "-log alpha (log pi - |A|): same fixed point, and Adam makes the scale nearly "
        "irrelevant. d3rlpy steps the temperature before its actor loss, which then uses the "
        "new alpha; ours uses alpha from before the step.",
        "Conservative term: d3rlpy subtracts its alpha_threshold (10) inside the penalty, a "
        "constant without effect on gradients while the weight is fixed.",
    ],
}


def shown_path(path: str | Path) -> str:
    """`path` as the result JSON records it: relative to the working directory when inside it,
    else with the home directory as ~, so committed results name no machine's folders."""
    resolved = Path(path).resolve()
    if resolved.is_relative_to(Path.cwd()):
        return str(resolved.relative_to(Path.cwd()))
    if resolved.is_relative_to(Path.home()):
        return str(Path("~") / resolved.relative_to(Path.home()))
    return str(resolved)


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write `obj` as JSON through a temporary file and a rename: never a half-written file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2) + "\n")
    os.replace(tmp, path)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def d3rlpy_run_dir(results: Path, algo: str, dataset: str, seed: int) -> Path:
    return results / f"{algo}_{dataset}_s{seed}"


def snapshot_steps(steps: int, eval_every: int) -> list[int]:
    """The evaluated steps of a run: 0, eval_every, ..., steps (a multiple of eval_every)."""
    return list(range(0, steps + 1, eval_every))


# --- d3rlpy worker (runs inside the d3rlpy virtualenv: no hybrid_rl imports here) --------------


def read_replica_for_d3rlpy(path: Path) -> dict[str, Any]:
    """The file's rows as d3rlpy episodes, plus the statistics our training computes.

    Returns MDPDataset arrays in which every trajectory that does not terminate (timeout, or
    the last rows of the file) is followed by one extra row: its last next_observation, action
    and reward 0, flagged as the timeout. d3rlpy takes no transition from the last row of an
    episode that does not terminate, so it sees exactly the file's transitions, each with the
    stored next observation.
    """
    import h5py

    with h5py.File(path, "r") as f:
        if "next_observations" not in f:
            raise SystemExit(
                f"{path} stores no next_observations; this cross-check needs a file that does "
                "(replicas do), so that both sides train on the same transitions"
            )
        obs = f["observations"][:].astype(np.float32)
        next_obs = f["next_observations"][:].astype(np.float32)
        actions = f["actions"][:].astype(np.float32)
        rewards = f["rewards"][:].astype(np.float32)
        terminals = f["terminals"][:].astype(bool)
        timeouts = f["timeouts"][:].astype(bool)
    n = rewards.shape[0]
    ends = terminals | timeouts
    ends[-1] = True  # the last row always ends a trajectory (as split_trajectories does)
    inner = ~ends[:-1]
    if not np.array_equal(next_obs[:-1][inner], obs[1:][inner]):
        raise SystemExit(
            f"{path}: next_observations[i] != observations[i + 1] inside a trajectory; d3rlpy "
            "cannot represent such data, so the comparison would not use the same transitions"
        )
    starts = np.concatenate([[0], np.flatnonzero(ends)[:-1] + 1])
    returns = np.add.reduceat(rewards.astype(np.float64), starts)
    open_ends = np.flatnonzero(ends & ~terminals)  # ends that bootstrap: timeouts, last row
    at = open_ends + 1
    obs64 = obs.astype(np.float64)
    return {
        "observations": np.insert(obs, at, next_obs[open_ends], axis=0),
        "actions": np.insert(actions, at, 0.0, axis=0),
        "rewards": np.insert(rewards, at, 0.0),
        "terminals": np.insert(terminals, at, False).astype(np.float32),
        # A terminal row that is also flagged as a timeout stays terminal (no bootstrap), as
        # in ours; d3rlpy refuses rows flagged as both.
        "timeouts": np.insert(np.zeros(n, dtype=bool), at, True).astype(np.float32),
        "transitions": n,
        "trajectories": int(starts.size),
        "observation_mean": obs64.mean(axis=0),
        "observation_std": obs64.std(axis=0),
        "return_min": float(returns.min()),
        "return_max": float(returns.max()),
    }


def d3rlpy_train(args: argparse.Namespace) -> None:
    """Train d3rlpy's `args.algo` for one seed, saving the greedy policy every eval_every steps.

    Writes `policy_<step>.pt` (TorchScript) for step 0, eval_every, ..., steps and, when done,
    `done.json` into `args.run_dir`. Starts from scratch: snapshots of an earlier, unfinished
    attempt are deleted first.
    """
    import d3rlpy
    import torch
    from d3rlpy.constants import ActionSpace
    from d3rlpy.logging import NoopAdapterFactory

    torch.set_num_threads(args.threads)
    run_dir: Path = args.run_dir
    seed, steps, eval_every = args.seeds[0], args.steps, args.eval_every
    run_dir.mkdir(parents=True, exist_ok=True)
    for stale in [*run_dir.glob("policy_*.pt"), run_dir / "evaluations.json"]:
        stale.unlink(missing_ok=True)

    sha256 = file_sha256(args.dataset_file)
    data = read_replica_for_d3rlpy(args.dataset_file)
    dataset = d3rlpy.dataset.MDPDataset(
        data["observations"],
        data["actions"],
        data["rewards"],
        data["terminals"],
        data["timeouts"],
        action_space=ActionSpace.CONTINUOUS,
    )
    if dataset.transition_count != data["transitions"]:
        raise SystemExit(
            f"d3rlpy sees {dataset.transition_count} transitions, the file has "
            f"{data['transitions']}: the episode construction in read_replica_for_d3rlpy is wrong"
        )
    config = d3rlpy_training_config(
        args.algo,
        observation_mean=data["observation_mean"],
        observation_std=data["observation_std"],
        return_min=data["return_min"],
        return_max=data["return_max"],
        steps=steps,
    )
    d3rlpy.seed(seed)
    algo = config.create(device="cpu:0")
    algo.build_with_dataset(dataset)

    def save_policy(step: int) -> None:
        tmp = run_dir / f"policy_{step}.tmp.pt"  # save_policy picks the format by the suffix
        algo.save_policy(str(tmp))
        os.replace(tmp, run_dir / f"policy_{step}.pt")

    save_policy(0)
    start = time.perf_counter()

    def on_epoch(algo: Any, epoch: int, total_step: int) -> None:
        save_policy(total_step)
        elapsed = time.perf_counter() - start
        print(
            f"step {total_step}/{steps}: {total_step / elapsed:.1f} steps/s, "
            f"{elapsed / 60:.1f} min",
            flush=True,
        )

    algo.fit(
        dataset,
        n_steps=steps,
        n_steps_per_epoch=eval_every,
        logger_adapter=NoopAdapterFactory(),
        show_progress=False,
        epoch_callback=on_epoch,
    )
    elapsed = time.perf_counter() - start
    write_json_atomic(
        run_dir / "done.json",
        {
            "algo": args.algo,
            "seed": seed,
            "steps": steps,
            "eval_every": eval_every,
            "dataset_file": str(args.dataset_file),
            "dataset_sha256": sha256,
            "transitions": data["transitions"],
            "trajectories": data["trajectories"],
            "reward_scale": (
                IQL_RETURN_RANGE_TARGET / (data["return_max"] - data["return_min"])
                if args.algo == "iql"
                else 1.0
            ),
            "config": json.loads(config.serialize()),
            "versions": {
                "d3rlpy": d3rlpy.__version__,
                "torch": torch.__version__,
                "numpy": np.__version__,
                "python": platform.python_version(),
            },
            "threads": args.threads,
            "train_seconds": round(elapsed, 1),
            "steps_per_second": round(steps / elapsed, 2),
        },
    )


# --- our side (our virtualenv) ------------------------------------------------------------------


def ours_train_config(args: argparse.Namespace, seed: int) -> Any:
    """Our TrainConfig of the comparison: the algorithm's defaults, the replica, this budget."""
    from hybrid_rl.train import TrainConfig

    return TrainConfig(
        algo=args.algo,
        dataset=args.dataset,
        source="replica",
        seed=seed,
        total_steps=args.steps,
        log_every=math.gcd(LOG_EVERY, args.eval_every, args.steps),
        eval_every=args.eval_every,
        eval_episodes=args.eval_episodes,
        device="cpu",
        results_dir=str(args.ours_results),
    )


def ours_train(args: argparse.Namespace) -> None:
    """Run (resume, or skip if finished) our run of one seed: this file's `--ours-train` mode."""
    import torch

    from hybrid_rl.train import train_offline

    torch.set_num_threads(args.threads)
    train_offline(ours_train_config(args, args.seeds[0]), progress=False)


def ours_run_finished(config: Any, dataset_sha256: str) -> bool:
    """Whether our run of `config` is finished; refuses one made with other settings or data."""
    run_dir: Path = config.run_dir
    saved_config = run_dir / "config.json"
    if not saved_config.exists():
        return False
    saved = json.loads(saved_config.read_text())
    wanted = dataclasses.asdict(config)
    problems = [
        f"{key} {saved['config'].get(key)!r} (wanted {wanted[key]!r})"
        for key in (
            *("algo", "dataset", "removal", "k_percent", "reward_noise_std", "seed"),
            *("total_steps", "eval_every", "eval_episodes"),
        )
        if saved["config"].get(key) != wanted[key]
    ]
    saved_agent, wanted_agent = saved["config"]["agent"], wanted["agent"]
    problems += [
        f"agent.{key} {saved_agent[key]!r} (wanted {wanted_agent[key]!r})"
        for key in sorted(saved_agent.keys() & wanted_agent.keys() - {"compile"})
        if saved_agent[key] != wanted_agent[key]
    ]
    if saved["dataset"]["sha256"] != dataset_sha256:
        problems.append(
            f"dataset sha256 {saved['dataset']['sha256'][:12]}... (wanted {dataset_sha256[:12]}..."
            f", the replica given to d3rlpy)"
        )
    if problems:
        raise SystemExit(
            f"{run_dir} was trained with other settings than this comparison: "
            f"{'; '.join(problems)}. Point --ours-results at another directory."
        )
    metrics = run_dir / "metrics.json"
    return metrics.exists() and json.loads(metrics.read_text())["status"] != "running"


def d3rlpy_run_finished(run_dir: Path, args: argparse.Namespace, seed: int, sha256: str) -> bool:
    """Whether d3rlpy's run in `run_dir` is finished; refuses one made with other settings."""
    done_file = run_dir / "done.json"
    if not done_file.exists():
        return False
    done = json.loads(done_file.read_text())
    wanted = {
        "algo": args.algo,
        "seed": seed,
        "steps": args.steps,
        "eval_every": args.eval_every,
        "dataset_sha256": sha256,
    }
    problems = [f"{k} {done[k]!r} (wanted {v!r})" for k, v in wanted.items() if done[k] != v]
    if problems:
        raise SystemExit(
            f"{run_dir} holds a finished d3rlpy run with other settings: {'; '.join(problems)}. "
            "Point --d3rlpy-results at another directory (or delete that run)."
        )
    return True


# --- running the trainings ------------------------------------------------------------------------


@dataclasses.dataclass
class Job:
    name: str
    command: list[str]
    log: Path


def run_jobs(jobs: list[Job], workers: int) -> None:
    """Run the jobs as subprocesses, at most `workers` at a time; output goes to their logs."""
    pending = list(jobs)
    running: list[tuple[Job, subprocess.Popen[bytes], float, Any]] = []
    failed: list[Job] = []
    try:
        while pending or running:
            while pending and len(running) < workers:
                job = pending.pop(0)
                job.log.parent.mkdir(parents=True, exist_ok=True)
                log = job.log.open("w")
                process = subprocess.Popen(
                    job.command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
                )
                print(f"started {job.name} (log: {job.log})", flush=True)
                running.append((job, process, time.perf_counter(), log))
            time.sleep(0.5)
            for entry in list(running):
                job, process, start, log = entry
                code = process.poll()
                if code is None:
                    continue
                running.remove(entry)
                log.close()
                minutes = (time.perf_counter() - start) / 60
                if code == 0:
                    print(f"finished {job.name} in {minutes:.1f} min", flush=True)
                else:
                    print(f"FAILED {job.name} (exit code {code}); see {job.log}", flush=True)
                    failed.append(job)
    finally:
        for _, process, _, log in running:  # only on an interruption or error
            process.terminate()
            process.wait()
            log.close()
    if failed:
        raise SystemExit(
            f"{len(failed)} training run(s) failed: "
            + ", ".join(f"{job.name} (log {job.log})" for job in failed)
        )


def training_jobs(
    args: argparse.Namespace, d3rlpy_exe: Path, dataset_file: Path, sha256: str
) -> list[Job]:
    """A job for every run not finished yet, d3rlpy's and ours of each seed in turn."""
    script = str(Path(__file__).resolve())
    shared = [
        "--algo",
        args.algo,
        "--dataset",
        args.dataset,
        "--steps",
        str(args.steps),
        "--eval-every",
        str(args.eval_every),
        "--eval-episodes",
        str(args.eval_episodes),
        "--threads",
        str(args.threads),
    ]
    jobs = []
    for seed in args.seeds:
        run_dir = d3rlpy_run_dir(args.d3rlpy_results, args.algo, args.dataset, seed)
        if not d3rlpy_run_finished(run_dir, args, seed, sha256):
            jobs.append(
                Job(
                    f"d3rlpy {args.algo} seed {seed}",
                    [
                        *(str(d3rlpy_exe), script, "--d3rlpy-train", *shared),
                        *("--seeds", str(seed), "--run-dir", str(run_dir)),
                        *("--dataset-file", str(dataset_file)),
                    ],
                    run_dir / "train.log",
                )
            )
        config = ours_train_config(args, seed)
        if not ours_run_finished(config, sha256):
            jobs.append(
                Job(
                    f"ours {args.algo} seed {seed}",
                    [
                        *(sys.executable, script, "--ours-train", *shared),
                        *("--seeds", str(seed), "--ours-results", str(args.ours_results)),
                    ],
                    config.run_dir / "compare_train.log",
                )
            )
    return jobs


# --- scoring and reporting ----------------------------------------------------------------------


def evaluate_d3rlpy_run(
    run_dir: Path, steps: list[int], env_id: str, episodes: int, seed: int
) -> list[dict[str, Any]]:
    """Normalized-return means and stds of d3rlpy's snapshots at `steps`, cached on disk.

    Scored by our PolicyEvaluator with our training's seed rule (1_000_000 · seed + step).
    """
    import torch

    from hybrid_rl.eval.rollout import PolicyEvaluator

    cache_file = run_dir / "evaluations.json"
    cache: dict[str, Any] = {"env_id": env_id, "episodes": episodes, "steps": {}}
    if cache_file.exists():
        saved = json.loads(cache_file.read_text())
        # Evaluations of another env or episode count are not reused.
        if saved.get("env_id") == env_id and saved.get("episodes") == episodes:
            cache = {**cache, "steps": saved.get("steps", {})}
    missing = [step for step in steps if str(step) not in cache["steps"]]
    if missing:
        with PolicyEvaluator(env_id, episodes) as evaluator:
            for step in missing:
                policy = torch.jit.load(str(run_dir / f"policy_{step}.pt"), map_location="cpu")
                policy.eval()
                eval_seed = 1_000_000 * seed + step
                result = evaluator.evaluate(policy, seed=eval_seed)
                cache["steps"][str(step)] = {
                    "eval_seed": eval_seed,
                    "normalized_return_mean": result.normalized_mean,
                    "normalized_return_std": result.normalized_std,
                    "return_mean": float(result.returns.mean()),
                    "return_std": float(result.returns.std()),
                }
                write_json_atomic(cache_file, cache)
        print(f"evaluated {len(missing)} d3rlpy snapshot(s) of {run_dir.name}", flush=True)
    return [cache["steps"][str(step)] for step in steps]


def seed_statistics(values: list[float]) -> dict[str, Any]:
    """Mean, sample std (ddof 1; 0 for one seed), min and max over seeds."""
    array = np.asarray(values, dtype=np.float64)
    return {
        "values": [float(v) for v in array],
        "mean": float(array.mean()),
        "std": float(array.std(ddof=1)) if array.size > 1 else 0.0,
        "min": float(array.min()),
        "max": float(array.max()),
    }


def collect(args: argparse.Namespace, loaded: Any) -> dict[str, Any]:
    """Curves, finals and configs of both sides, and the verdict, as one JSON-able dict."""
    from hybrid_rl.data.registry import normalized_score
    from hybrid_rl.data.transitions import split_trajectories

    provenance = loaded.provenance
    env_id = provenance.env_id
    steps = snapshot_steps(args.steps, args.eval_every)
    ours_runs, d3_runs = {}, {}
    ours_config: dict[str, Any] = {}
    d3_config: dict[str, Any] = {}
    d3_versions: dict[str, Any] = {}
    for seed in args.seeds:
        config = ours_train_config(args, seed)
        metrics = json.loads((config.run_dir / "metrics.json").read_text())
        saved = json.loads((config.run_dir / "config.json").read_text())
        # This script hands its runs absolute folders; the JSON is committed, so show them relative.
        ours_config = {**saved["config"], "results_dir": shown_path(saved["config"]["results_dir"])}
        scores = metrics["eval"]["normalized_return_mean"]
        ours_runs[str(seed)] = {
            "run_dir": shown_path(config.run_dir),
            "status": metrics["status"],
            "steps": metrics["eval"]["steps"],
            "normalized_return_mean": scores,
            "normalized_return_std": metrics["eval"]["normalized_return_std"],
            "final": scores[-1],
            "git_commit": saved.get("git_commit"),
            "versions": saved.get("versions"),
        }
        run_dir = d3rlpy_run_dir(args.d3rlpy_results, args.algo, args.dataset, seed)
        done = json.loads((run_dir / "done.json").read_text())
        d3_config, d3_versions = done["config"], done["versions"]
        evaluations = evaluate_d3rlpy_run(run_dir, steps, env_id, args.eval_episodes, seed)
        d3_runs[str(seed)] = {
            "run_dir": shown_path(run_dir),
            "steps": steps,
            "normalized_return_mean": [e["normalized_return_mean"] for e in evaluations],
            "normalized_return_std": [e["normalized_return_std"] for e in evaluations],
            "final": evaluations[-1]["normalized_return_mean"],
            "train_seconds": done["train_seconds"],
            "steps_per_second": done["steps_per_second"],
        }
    ours_final = seed_statistics([run["final"] for run in ours_runs.values()])
    d3_final = seed_statistics([run["final"] for run in d3_runs.values()])
    difference = ours_final["mean"] - d3_final["mean"]
    trajectories = split_trajectories(loaded.transitions)
    machine = machine_info()
    machine["threads"] = args.threads
    return {
        "algo": args.algo,
        "dataset": args.dataset,
        "env_id": env_id,
        "data": {
            "source": provenance.source,
            "path": shown_path(provenance.path),
            "sha256": provenance.sha256,
            "transitions": len(loaded.transitions),
            "trajectories": len(trajectories),
            "normalized_return_mean": float(normalized_score(env_id, trajectories.returns).mean()),
        },
        "settings": {
            "steps": args.steps,
            "seeds": args.seeds,
            "eval_every": args.eval_every,
            "eval_episodes": args.eval_episodes,
            "eval_seed_rule": "1_000_000 * seed + step (env i: + i)",
            "threads": args.threads,
        },
        "ours": {
            "results_dir": shown_path(args.ours_results),
            "config": ours_config,
            "runs": ours_runs,
            "final": ours_final,
        },
        "d3rlpy": {
            "results_dir": shown_path(args.d3rlpy_results),
            "config": d3_config,
            "versions": d3_versions,
            "runs": d3_runs,
            "final": d3_final,
        },
        "verdict": {
            "definition": "our final mean lies within [min, max] of d3rlpy's per-seed finals",
            "ours_mean_within_d3rlpy_seed_spread": bool(
                d3_final["min"] <= ours_final["mean"] <= d3_final["max"]
            ),
            "difference_of_means": difference,
            "difference_in_d3rlpy_std": (
                difference / d3_final["std"] if d3_final["std"] > 0 else None
            ),
        },
        "known_differences": KNOWN_DIFFERENCES["both"] + KNOWN_DIFFERENCES[args.algo],
        "machine": machine,
    }


def curve_band(runs: dict[str, Any], steps: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Mean and sample std over seeds at `steps` (NaN where a run has no evaluation)."""
    rows = []
    for run in runs.values():
        by_step = dict(zip(run["steps"], run["normalized_return_mean"], strict=True))
        rows.append([by_step.get(step, np.nan) for step in steps])
    values = np.asarray(rows, dtype=np.float64)
    mean = np.nanmean(values, axis=0)
    std = np.nanstd(values, axis=0, ddof=1) if len(rows) > 1 else np.zeros(len(steps))
    return mean, std


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    settings = result["settings"]
    steps = snapshot_steps(settings["steps"], settings["eval_every"])
    fig, ax = plt.subplots(figsize=(8, 5))
    sides = (("ours", "hybrid-rl", "C0"), ("d3rlpy", f"d3rlpy {D3RLPY_VERSION}", "C1"))
    for key, label, color in sides:
        runs = result[key]["runs"]
        for run in runs.values():
            ax.plot(run["steps"], run["normalized_return_mean"], color=color, alpha=0.3, lw=0.8)
        mean, std = curve_band(runs, steps)
        final = result[key]["final"]
        ax.plot(
            steps,
            mean,
            color=color,
            lw=2,
            label=f"{label}: final {final['mean']:.1f} ± {final['std']:.1f}",
        )
        ax.fill_between(steps, mean - std, mean + std, color=color, alpha=0.2)
    data = result["data"]
    ax.axhline(
        data["normalized_return_mean"],
        color="gray",
        ls="--",
        lw=1,
        label=f"dataset trajectories' mean {data['normalized_return_mean']:.1f}",
    )
    ax.set_xlabel("gradient steps")
    ax.set_ylabel("D4RL normalized return")
    seeds = ", ".join(str(s) for s in settings["seeds"])
    ax.set_title(
        f"{result['algo'].upper()}: hybrid-rl vs d3rlpy on {result['env_id']}, "
        f"{result['dataset']} ({data['source']}, sha256 {data['sha256'][:10]})\n"
        f"seeds {seeds}, {settings['steps']:,} steps, {settings['eval_episodes']} eval "
        f"episodes per point; mean ± std over seeds, thin lines: single seeds",
        fontsize=9,
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def print_table(result: dict[str, Any]) -> None:
    ours, d3 = result["ours"], result["d3rlpy"]
    settings = result["settings"]
    print(
        f"\n{result['algo'].upper()} on {result['dataset']} ({result['data']['source']}), "
        f"{settings['steps']:,} steps, final normalized return "
        f"({settings['eval_episodes']} episodes):\n"
    )
    print("| seed | ours | d3rlpy |\n|---:|---:|---:|")
    for seed in settings["seeds"]:
        print(
            f"| {seed} | {ours['runs'][str(seed)]['final']:.1f} | "
            f"{d3['runs'][str(seed)]['final']:.1f} |"
        )
    print(
        f"| mean ± std | {ours['final']['mean']:.1f} ± {ours['final']['std']:.1f} | "
        f"{d3['final']['mean']:.1f} ± {d3['final']['std']:.1f} |\n"
    )
    verdict = result["verdict"]
    within = verdict["ours_mean_within_d3rlpy_seed_spread"]
    print(
        f"Our final mean {ours['final']['mean']:.1f} "
        f"{'lies' if within else 'does NOT lie'} within d3rlpy's seed spread "
        f"[{d3['final']['min']:.1f}, {d3['final']['max']:.1f}] (min and max of its per-seed "
        "finals)."
    )
    z = verdict["difference_in_d3rlpy_std"]
    print(
        f"Difference of means (ours − d3rlpy): {verdict['difference_of_means']:+.1f} = "
        + (f"{z:+.2f} × d3rlpy's std." if z is not None else "n/a × d3rlpy's std (one seed).")
    )


def run(args: argparse.Namespace) -> None:
    import torch

    from hybrid_rl.behavior.replica import ensure_replica
    from hybrid_rl.data.loader import load_dataset

    torch.set_num_threads(args.threads)
    loaded = load_dataset(args.dataset, "replica", replica_provider=ensure_replica)
    dataset_file = Path(loaded.provenance.path)
    python = d3rlpy_python(args, torch.__version__.split("+")[0])
    jobs = training_jobs(args, python, dataset_file, loaded.provenance.sha256)
    if jobs:
        run_jobs(jobs, args.workers)
    else:
        print("all runs are finished; scoring and reporting only", flush=True)
    result = collect(args, loaded)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"compare_{args.algo}_{args.dataset}"
    write_json(args.out / f"{stem}.json", result)
    plot(result, args.out / f"{stem}.png")
    print_table(result)
    print(f"\nwrote {args.out / stem}.json and .png")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--algo", choices=ALGOS, required=True)
    parser.add_argument("--dataset", default="halfcheetah-medium-v2")
    parser.add_argument("--steps", type=int, default=100_000, help="gradient steps per run")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--eval-every", type=int, default=5_000)
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("--workers", type=int, default=1, help="training processes at once")
    parser.add_argument(
        "--ours-results",
        type=Path,
        default=Path("results_compare"),
        help="our run dirs; finished runs there are reused, missing ones trained",
    )
    parser.add_argument("--d3rlpy-results", type=Path, default=Path("results_d3rlpy"))
    parser.add_argument("--out", type=Path, default=Path("docs/compare-d3rlpy"))
    add_d3rlpy_arguments(parser)
    parser.add_argument("--d3rlpy-train", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--ours-train", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--run-dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--dataset-file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    for name in ("steps", "eval_every", "eval_episodes", "threads", "workers"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be positive")
    if args.steps % args.eval_every:
        parser.error(
            f"--steps ({args.steps}) must be a multiple of --eval-every ({args.eval_every}): "
            "d3rlpy trains whole epochs of eval_every steps"
        )
    for name in ("ours_results", "d3rlpy_results", "out"):
        setattr(args, name, getattr(args, name).resolve())
    if args.d3rlpy_train:
        d3rlpy_train(args)
    elif args.ours_train:
        ours_train(args)
    else:
        run(args)


if __name__ == "__main__":
    main()
