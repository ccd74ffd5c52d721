"""Medium-replay snapshot sets: a few actor snapshots of one SAC run that stand in for its
replay buffer.

D4RL's medium-replay datasets are the replay buffer of the SAC run that produced the medium
policy, from its first step to the medium snapshot, in order. A set holds evenly spaced
snapshots of such a run up to that step (`hybrid-rl behavior ship-replay`). Every training
step of the run is attributed to the policy that stands for it: uniform random actions for
SAC's first `learning_starts` steps, after them the chosen snapshot nearest in training steps.
The replica builder rolls each policy out for its share of the buffer, in order
(`replica.collect_replay_transitions`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import torch

from hybrid_rl.algos.networks import TanhGaussianActor
from hybrid_rl.atomic_io import save_torch_atomic, write_json_atomic
from hybrid_rl.behavior.policies import load_verified, policy_paths, sha256_of
from hybrid_rl.behavior.portable_actor import PortableActor
from hybrid_rl.data.registry import env_name_of
from hybrid_rl.provenance import git_commit
from hybrid_rl.runs.folder import RunFolder

REPLAY_QUALITY = "medium-replay"
RANDOM_POLICY_STEP = 0  # the `policy_step` of SAC's uniform random actions
DIFFERENCES_FROM_A_REPLAY_BUFFER = (
    "A replay buffer holds the actions of an actor that changes with every update; here each "
    "snapshot acts for all the steps nearest to it, so the policy switches at the midpoints "
    "between snapshots instead of changing step by step.",
    "A buffer's episodes run on across policy updates; here a policy's last episode is cut at "
    "the end of its share (flagged as a timeout: a truncation that bootstraps), and the next "
    "policy starts new episodes, so no trajectory spans two snapshots.",
    "This SAC run reached the medium level at another step than D4RL's, so each policy's share "
    "is its number of training steps rescaled to D4RL's dataset size.",
    "Episodes are collected in a vector env and written when they end, so inside a share "
    "they are ordered by when they finished, not by when they started.",
)


@dataclass(frozen=True)
class ReplaySegment:
    """The training steps [first_step, end_step) of the run, attributed to the snapshot taken
    at `policy_step` (`RANDOM_POLICY_STEP`: uniform random actions)."""

    policy_step: int
    first_step: int
    end_step: int

    @property
    def steps(self) -> int:
        return self.end_step - self.first_step


def pick_snapshots(
    available: Sequence[int], up_to_step: int, count: int, learning_starts: int
) -> list[int]:
    """`count` snapshot steps evenly spaced among those after `learning_starts` up to
    `up_to_step`, the last being `up_to_step` itself. Errors name the valid choices."""
    if up_to_step not in available:
        steps = ", ".join(str(s) for s in sorted(available)) or "none"
        raise ValueError(
            f"--up-to-step {up_to_step} is not a saved snapshot of the run; saved steps: {steps}"
        )
    if up_to_step <= learning_starts:
        raise ValueError(
            f"--up-to-step {up_to_step} is within the run's {learning_starts} random-action "
            "steps: pick the medium snapshot, after them"
        )
    candidates = sorted(s for s in available if learning_starts < s <= up_to_step)
    if not 1 <= count <= len(candidates):
        raise ValueError(
            f"--snapshots must be between 1 and {len(candidates)} (the run's snapshots after "
            f"its {learning_starts} random-action steps up to {up_to_step}), got {count}"
        )
    # Index steps of len/count ≥ 1 never pick a snapshot twice and end on `up_to_step`.
    return [candidates[(j + 1) * len(candidates) // count - 1] for j in range(count)]


def plan_segments(
    snapshot_steps: Sequence[int], learning_starts: int, up_to_step: int
) -> list[ReplaySegment]:
    """Random actions for [0, learning_starts), then each snapshot for the steps nearer to it
    than to its neighbours (boundaries at the midpoints), up to `up_to_step`."""
    bounds = [learning_starts, *((a + b) // 2 for a, b in pairwise(snapshot_steps)), up_to_step]
    random_share = [ReplaySegment(RANDOM_POLICY_STEP, 0, learning_starts)]
    trained = [
        ReplaySegment(step, first, end)
        for step, first, end in zip(snapshot_steps, bounds[:-1], bounds[1:], strict=True)
    ]
    return [segment for segment in random_share + trained if segment.steps > 0]


def segment_rows(segments: Sequence[ReplaySegment], n_transitions: int) -> list[int]:
    """Each segment's rows of an `n_transitions` buffer, proportional to its training steps
    (largest remainders round, so the rows sum to `n_transitions` exactly)."""
    total = sum(segment.steps for segment in segments)
    quotients = [divmod(segment.steps * n_transitions, total) for segment in segments]
    rows = [quotient for quotient, _ in quotients]
    by_remainder = sorted(range(len(segments)), key=lambda i: (-quotients[i][1], i))
    for i in by_remainder[: n_transitions - sum(rows)]:
        rows[i] += 1
    return rows


@dataclass
class ReplayShipConfig:
    run_dir: str  # a `behavior train` output folder
    up_to_step: int  # the medium snapshot: the buffer ends here
    snapshots: int = 20
    policy_dir: str | None = None  # default: the package's policies/


def _snapshot_steps(run: Path) -> list[int]:
    paths = (run / "actors").glob("actor_step*.pt")
    return sorted(int(path.stem.removeprefix("actor_step")) for path in paths)


def ship_replay_set(config: ReplayShipConfig) -> dict[str, Any]:
    """Write `<env>_medium_replay.pt` (the chosen snapshots) and its card; returns the card.

    Every input is checked before anything is written; each file is written atomically and
    the card records the weights' sha256, so a set whose two files disagree is refused.
    """
    run = Path(config.run_dir)
    train_config = RunFolder(run).read_config()
    curve_path = run / "curve.json"
    if train_config is None or not curve_path.exists():
        raise FileNotFoundError(f"{run} holds no behaviour-training run (`behavior train`)")
    learning_starts = int(train_config["learning_starts"])
    steps = pick_snapshots(
        _snapshot_steps(run), config.up_to_step, config.snapshots, learning_starts
    )
    segments = plan_segments(steps, learning_starts, config.up_to_step)
    payloads = [
        torch.load(run / "actors" / f"actor_step{step}.pt", map_location="cpu", weights_only=True)
        for step in steps
    ]
    env_id = train_config["env_id"]
    env_name = env_name_of(env_id)
    curve = json.loads(curve_path.read_text())
    scores = {
        step: (stochastic, deterministic)
        for step, stochastic, deterministic in zip(
            curve["steps"], curve["stochastic"], curve["deterministic"], strict=True
        )
    }

    weights, card_path = policy_paths(env_name, REPLAY_QUALITY, _policy_dir(config))
    save_torch_atomic(
        weights,
        {
            "env_id": env_id,
            "obs_dim": payloads[0]["obs_dim"],
            "act_dim": payloads[0]["act_dim"],
            "train_steps": steps,
            "actors": [payload["actor"] for payload in payloads],
        },
    )
    card = {
        "dataset": f"{env_name}-{REPLAY_QUALITY}-v2 (replica)",
        "env_id": env_id,
        "algorithm": "SAC (hybrid_rl.algos.sac), automatic entropy tuning",
        "seed": train_config["seed"],
        "learning_starts": learning_starts,
        "up_to_step": config.up_to_step,
        "segments": [_segment_record(segment, scores) for segment in segments],
        "differences_from_a_replay_buffer": list(DIFFERENCES_FROM_A_REPLAY_BUFFER),
        "train_command": (
            f"hybrid-rl behavior train --env {env_id} --steps {train_config['total_steps']} "
            f"--seed {train_config['seed']} --eval-every {train_config['eval_every']} --threads 1"
        ),
        "ship_command": (
            f"hybrid-rl behavior ship-replay --run {config.run_dir} "
            f"--up-to-step {config.up_to_step} --snapshots {config.snapshots}"
        ),
        "git_commit": git_commit(),
        "weights_bytes": weights.stat().st_size,
        "sha256": sha256_of(weights),
    }
    write_json_atomic(card_path, card)
    return card


def _policy_dir(config: ReplayShipConfig) -> Path | None:
    return None if config.policy_dir is None else Path(config.policy_dir)


def _segment_record(
    segment: ReplaySegment, scores: dict[int, tuple[float, float]]
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "policy_step": segment.policy_step,
        "first_step": segment.first_step,
        "end_step": segment.end_step,
    }
    if segment.policy_step == RANDOM_POLICY_STEP:
        record["policy"] = "uniform random actions in [-1, 1]"
    elif segment.policy_step in scores:
        # The training curve's 10-episode evaluations of the snapshot (normalized).
        stochastic, deterministic = scores[segment.policy_step]
        record["curve_stochastic"] = stochastic
        record["curve_deterministic"] = deterministic
    return record


@dataclass(frozen=True)
class ReplaySet:
    """A shipped snapshot set: the segments in order and the actor of each trained one."""

    env_id: str
    segments: list[ReplaySegment]
    actors: dict[int, PortableActor]  # by `policy_step`
    card: dict[str, Any]


def load_replay_set(env_name: str, policy_dir: Path | None = None) -> ReplaySet:
    """The shipped set of `env_name`; raises if absent or if the weights do not match the
    card's sha256."""
    weights, card_path = policy_paths(env_name, REPLAY_QUALITY, policy_dir)
    if not weights.exists() or not card_path.exists():
        raise FileNotFoundError(
            f"no {REPLAY_QUALITY} snapshot set is shipped for {env_name!r} (looked for "
            f"{weights}); make one from a behaviour-training run with `hybrid-rl behavior "
            "ship-replay --run behavior_runs/<run> --up-to-step <medium step>`"
        )
    card, payload = load_verified(weights, card_path, "reinstall the package or ship the set again")
    if env_name_of(payload["env_id"]) != env_name:
        raise ValueError(f"{weights} holds snapshots of {payload['env_id']}, not of {env_name}")
    actors = {}
    for step, state in zip(payload["train_steps"], payload["actors"], strict=True):
        actor = TanhGaussianActor(payload["obs_dim"], payload["act_dim"])
        actor.load_state_dict(state)
        actors[step] = PortableActor.from_actor(actor)
    segments = [
        ReplaySegment(s["policy_step"], s["first_step"], s["end_step"]) for s in card["segments"]
    ]
    return ReplaySet(payload["env_id"], segments, actors, card)
