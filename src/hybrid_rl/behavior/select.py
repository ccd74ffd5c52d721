"""Pick the behaviour-policy snapshot whose stochastic score is nearest a target; ship it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from hybrid_rl.algos.networks import TanhGaussianActor
from hybrid_rl.atomic_io import save_torch_atomic, write_json_atomic
from hybrid_rl.behavior.policies import POLICY_DIR, policy_paths, sha256_of
from hybrid_rl.data.registry import env_name_of
from hybrid_rl.eval.rollout import EvalResult, PolicyFn, evaluate_policy
from hybrid_rl.provenance import git_commit
from hybrid_rl.runs.folder import RunFolder

# The qualities whose replica samples one shipped policy (medium-replay ships a snapshot set
# with `behavior ship-replay`; medium-expert rolls out the medium then the expert policy).
SELECTABLE_QUALITIES = ("medium", "expert")


@dataclass
class SelectionConfig:
    run_dir: str
    target: float  # D4RL normalized score the dataset should average
    band: float  # acceptable distance from the target
    episodes: int = 30
    seed: int = 123
    quality: str = "medium"  # one of SELECTABLE_QUALITIES: ships <env>_<quality>.pt
    min_step: int = 0  # ignore snapshots before this training step
    policy_dir: str = str(POLICY_DIR)
    # Shape of the data the policy would give, over its stochastic episodes: at most this std
    # of normalized returns (a unimodal dataset), mean episode length within this range.
    max_return_std: float | None = None
    length_range: tuple[float, float] | None = None

    def admits(self, result: EvalResult) -> bool:
        """Whether a snapshot's stochastic evaluation meets the shape constraints."""
        if self.max_return_std is not None and result.normalized_std > self.max_return_std:
            return False
        if self.length_range is not None:
            low, high = self.length_range
            return low <= float(result.lengths.mean()) <= high
        return True

    def constraints(self) -> str:
        parts = [f"normalized mean {self.target} ± {self.band}"]
        if self.max_return_std is not None:
            parts.append(f"std ≤ {self.max_return_std}")
        if self.length_range is not None:
            parts.append(f"mean length in [{self.length_range[0]:g}, {self.length_range[1]:g}]")
        return ", ".join(parts)


def _load_snapshot(path: Path) -> tuple[TanhGaussianActor, dict[str, Any]]:
    payload = torch.load(path, map_location="cpu", weights_only=True)
    actor = TanhGaussianActor(payload["obs_dim"], payload["act_dim"])
    actor.load_state_dict(payload["actor"])
    return actor, payload


def _sampling_policy(actor: TanhGaussianActor) -> PolicyFn:
    return lambda obs: actor.sample(obs)[0]


def _summary(result: EvalResult) -> dict[str, float]:
    return {
        "episodes": len(result.returns),
        "return_mean": float(result.returns.mean()),
        "return_std": float(result.returns.std()),
        "normalized_mean": result.normalized_mean,
        "normalized_std": result.normalized_std,
        "length_mean": float(result.lengths.mean()),
    }


def select_behavior_policy(config: SelectionConfig) -> dict[str, Any]:
    """Re-evaluate the snapshots near the target and write `<env>_<quality>.pt` plus its card."""
    if config.quality not in SELECTABLE_QUALITIES:
        raise ValueError(
            f"--quality must be one of {', '.join(SELECTABLE_QUALITIES)}, got {config.quality!r}"
        )
    run = Path(config.run_dir)
    folder = RunFolder(run)
    train_config, metrics = folder.read_config(), folder.read_metrics()
    if train_config is None or metrics is None:
        raise FileNotFoundError(f"{run} holds no behaviour-training run (`behavior train`)")
    curve = metrics["curve"]
    # The training curve's 10-episode scores are noisy: shortlist generously, then re-evaluate.
    shortlist = [
        step
        for step, score in zip(curve["steps"], curve["stochastic"], strict=True)
        if abs(score - config.target) <= 3 * config.band and step >= config.min_step
    ]
    if not shortlist:
        best = max(curve["stochastic"])
        raise RuntimeError(
            f"no snapshot of {run} scored within {3 * config.band} of {config.target} "
            f"(best stochastic score {best:.1f}); train longer or choose another seed"
        )
    scored = []
    for step in shortlist:
        actor, payload = _load_snapshot(run / "actors" / f"actor_step{step}.pt")
        torch.manual_seed(config.seed)
        result = evaluate_policy(
            _sampling_policy(actor), payload["env_id"], config.episodes, seed=config.seed
        )
        print(
            f"step {step}: stochastic normalized {result.normalized_mean:.1f} "
            f"± {result.normalized_std:.1f}, mean length {result.lengths.mean():.0f}"
        )
        if config.admits(result):
            scored.append((abs(result.normalized_mean - config.target), step, result))
    if not scored:
        raise RuntimeError(
            f"no snapshot of {run} near {config.target} gives data of the asked shape "
            f"({config.constraints()}) over {config.episodes} stochastic episodes; nothing "
            "was shipped. Train longer (the run resumes), or choose another seed"
        )
    distance, step, stochastic = min(scored, key=lambda item: (item[0], item[1]))
    if distance > config.band:
        raise RuntimeError(
            f"the closest admissible snapshot of {run} (step {step}) scores "
            f"{stochastic.normalized_mean:.1f} over {config.episodes} stochastic episodes, "
            f"outside {config.target} ± {config.band}; nothing was shipped. Train longer "
            "(the run resumes) or choose another seed"
        )
    actor, payload = _load_snapshot(run / "actors" / f"actor_step{step}.pt")
    deterministic = evaluate_policy(
        actor.deterministic, payload["env_id"], config.episodes, seed=config.seed
    )

    env_name = env_name_of(payload["env_id"])
    weights = policy_paths(env_name, config.quality, Path(config.policy_dir))[0]
    save_torch_atomic(
        weights,
        {
            "actor": actor.state_dict(),
            "obs_dim": payload["obs_dim"],
            "act_dim": payload["act_dim"],
            "env_id": payload["env_id"],
        },
    )
    card = {
        "dataset": f"{env_name}-{config.quality}-v2 (replica)",
        "env_id": payload["env_id"],
        "algorithm": "SAC (hybrid_rl.algos.sac), automatic entropy tuning",
        "train_step": step,
        "seed": train_config["seed"],
        "target_normalized": config.target,
        "target_band": config.band,
        "constraints": config.constraints(),
        "stochastic_eval": _summary(stochastic),
        "deterministic_eval": _summary(deterministic),
        "train_command": (
            f"hybrid-rl behavior train --env {payload['env_id']} "
            f"--steps {train_config['total_steps']} --seed {train_config['seed']} "
            f"--eval-every {train_config['eval_every']} --threads 1"
        ),
        "select_command": (
            f"hybrid-rl behavior select --run {config.run_dir} "
            f"--target {config.target} --band {config.band} "
            f"--episodes {config.episodes} --seed {config.seed} --min-step {config.min_step} "
            f"--quality {config.quality}"
            + ("" if config.max_return_std is None else f" --max-std {config.max_return_std}")
            + (
                ""
                if config.length_range is None
                else f" --length-range {config.length_range[0]:g} {config.length_range[1]:g}"
            )
        ),
        # Legs of the run continued on another machine without their replay buffer
        # (behavior.carry): the policy is not what one uninterrupted run would have given.
        "carried": metrics.get("carried", []),
        "git_commit": git_commit(),
        "sha256": sha256_of(weights),
    }
    write_json_atomic(weights.with_suffix(".json"), card)
    return card
