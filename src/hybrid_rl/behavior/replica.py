"""Replica D4RL datasets: roll out a shipped behaviour policy (or random actions, a
medium-replay snapshot set, or the medium policy then the expert one) into an HDF5 file with
D4RL's layout, for when the real D4RL files cannot be downloaded.
"""

from __future__ import annotations

import importlib.metadata
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from tqdm import tqdm

from hybrid_rl import __version__
from hybrid_rl.atomic_io import check_writable_dir
from hybrid_rl.behavior.policies import load_shipped_policy, policy_paths
from hybrid_rl.behavior.portable_actor import PortableActor
from hybrid_rl.behavior.replay_set import ReplaySet, load_replay_set, segment_rows
from hybrid_rl.data.hdf5_format import read_d4rl_metadata, write_d4rl_hdf5
from hybrid_rl.data.registry import get_dataset_spec
from hybrid_rl.envs import make_vector_env

REPLICA_QUALITIES = (
    "medium",
    "medium-replay",
    "medium-expert",
    "expert",
    "random",
    "medium-bimodal",
)
# Rolled out from one shipped policy of that quality (<env>_<quality>.pt).
_ONE_POLICY_QUALITIES = ("medium", "expert", "medium-bimodal")
DEFAULT_TRANSITIONS = 1_000_000
# D4RL's medium-expert files are its medium file followed by its expert file.
MEDIUM_EXPERT_PARTS = ("medium", "expert")
REPLICA_DIR_ENV_VAR = "HYBRID_RL_DATA_DIR"
# D4RL's medium-replay sizes: the behaviour run's buffer up to its medium snapshot.
REPLAY_TRANSITIONS = {"halfcheetah": 202_000, "hopper": 402_000}
DEFAULT_NUM_ENVS = 20
# Raised whenever the same seed would give different data; stored in every replica, so a file
# built by an older recipe is recognised. 2: the policy samples through `PortableActor` with
# numpy noise (1: torch float32 forward, torch noise).
REPLICA_RECIPE = 2


def replica_cache_dir() -> Path:
    """$HYBRID_RL_DATA_DIR, else ~/.cache/hybrid-rl/datasets."""
    override = os.environ.get(REPLICA_DIR_ENV_VAR)
    return Path(override) if override else Path.home() / ".cache" / "hybrid-rl" / "datasets"


def default_transitions(dataset_id: str) -> int:
    """D4RL's size of `dataset_id`: 1M, the medium-replay buffer's size, or 2M (medium-expert)."""
    spec = get_dataset_spec(dataset_id)
    if spec.quality == "medium-replay":
        return REPLAY_TRANSITIONS[spec.env_name]
    if spec.quality == "medium-expert":
        return len(MEDIUM_EXPERT_PARTS) * DEFAULT_TRANSITIONS
    return DEFAULT_TRANSITIONS


def medium_expert_rows(n_transitions: int) -> list[int]:
    """The rows of the medium part and of the expert part of an `n_transitions` medium-expert
    replica: halves (the medium part one row longer when `n_transitions` is odd)."""
    return [n_transitions - n_transitions // 2, n_transitions // 2]


def replica_path(
    dataset_id: str,
    n_transitions: int | None = None,
    seed: int = 0,
    num_envs: int = DEFAULT_NUM_ENVS,
) -> Path:
    """Where the replica built with these settings is cached (the defaults: no suffix;
    `n_transitions` None: D4RL's size, `default_transitions`)."""
    full_size = default_transitions(dataset_id)
    n_transitions = full_size if n_transitions is None else n_transitions
    default = (n_transitions, seed) == (full_size, 0)
    suffix = "" if default else f"-n{n_transitions}-s{seed}"
    # The number of envs decides which episodes are laid end to end: part of the data.
    suffix += "" if num_envs == DEFAULT_NUM_ENVS else f"-e{num_envs}"
    return replica_cache_dir() / f"{dataset_id}-replica{suffix}.hdf5"


@dataclass
class _EpisodeBuffers:
    """Per-env rows of the episodes in progress, [num_envs, 1000, ...]."""

    columns: dict[str, np.ndarray]
    lengths: np.ndarray

    @classmethod
    def allocate(
        cls, num_envs: int, shapes: dict[str, tuple[int, ...]], dtypes: dict[str, type]
    ) -> _EpisodeBuffers:
        columns: dict[str, np.ndarray] = {
            k: np.zeros((num_envs, 1000, *s), dtype=dtypes[k]) for k, s in shapes.items()
        }
        return cls(columns, np.zeros(num_envs, dtype=np.int64))


def _mujoco_state(envs: gym.vector.SyncVectorEnv) -> tuple[np.ndarray, np.ndarray]:
    """Simulator qpos and qvel of every env, [num_envs, nq] and [num_envs, nv]."""
    data = [env.unwrapped.data for env in envs.envs]  # type: ignore[attr-defined]
    return np.stack([d.qpos for d in data]), np.stack([d.qvel for d in data])


def collect_transitions(
    env_id: str,
    actor: PortableActor | None,
    n_transitions: int,
    seed: int,
    num_envs: int = DEFAULT_NUM_ENVS,
    progress: bool = True,
) -> dict[str, np.ndarray]:
    """`n_transitions` rows in D4RL's layout from whole episodes laid end to end.

    Actions are sampled (stochastic) from `actor`, or uniform in [-1, 1] when it is None, with
    noise from one numpy Generator seeded by `seed`; the float32 action stored is the one the
    env receives. The episodes run in a vector env with one batched policy forward per step;
    an episode is written out when it ends, so each trajectory's rows are contiguous. The last
    episode is cut at `n_transitions` rows (its final row then carries neither flag, as in
    D4RL's own files).
    """
    envs = make_vector_env(env_id, num_envs, seed=seed)
    obs, _ = envs.reset(seed=[seed + i for i in range(num_envs)])
    obs_dim, act_dim = obs.shape[1], gym.spaces.flatdim(envs.single_action_space)
    qpos, qvel = _mujoco_state(envs)
    qpos_dim, qvel_dim = qpos.shape[1], qvel.shape[1]
    shapes: dict[str, tuple[int, ...]] = {
        "observations": (obs_dim,),
        "actions": (act_dim,),
        "rewards": (),
        "next_observations": (obs_dim,),
        "terminals": (),
        "timeouts": (),
        "infos/qpos": (qpos_dim,),
        "infos/qvel": (qvel_dim,),
        "infos/action_log_probs": (),
    }
    dtypes: dict[str, type] = {k: np.float32 for k in shapes}
    dtypes.update(
        {
            "terminals": np.bool_,
            "timeouts": np.bool_,
            "infos/qpos": np.float64,
            "infos/qvel": np.float64,
        }
    )
    out: dict[str, np.ndarray] = {
        k: np.zeros((n_transitions, *s), dtype=dtypes[k]) for k, s in shapes.items()
    }
    episodes = _EpisodeBuffers.allocate(num_envs, shapes, dtypes)
    rng = np.random.default_rng(seed)
    uniform_log_prob = -act_dim * math.log(2.0)
    # After an episode ends, Gymnasium's NEXT_STEP autoreset spends that env's next step on a
    # reset: its output is a new first observation, not a transition, and is not stored.
    resetting = np.zeros(num_envs, dtype=bool)
    filled = 0
    bar = tqdm(total=n_transitions, desc=f"replica {env_id}", disable=not progress, mininterval=2)
    while filled < n_transitions:
        qpos, qvel = _mujoco_state(envs)
        if actor is None:
            actions = rng.uniform(-1.0, 1.0, size=(num_envs, act_dim)).astype(np.float32)
            log_probs = np.full(num_envs, uniform_log_prob, dtype=np.float32)
        else:
            noise = rng.standard_normal((num_envs, act_dim))
            sampled, sampled_log_probs = actor.sample(obs, noise)
            actions = sampled.astype(np.float32)
            log_probs = sampled_log_probs.astype(np.float32)
        next_obs, rewards, terminated, truncated, _ = envs.step(actions)
        rows = {
            "observations": obs,
            "actions": actions,
            "rewards": rewards,
            "next_observations": next_obs,
            "terminals": terminated,
            "timeouts": truncated & ~terminated,
            "infos/qpos": qpos,
            "infos/qvel": qvel,
            "infos/action_log_probs": log_probs,
        }
        live = np.flatnonzero(~resetting)
        t = episodes.lengths[live]
        for key, values in rows.items():
            episodes.columns[key][live, t] = values[live]
        episodes.lengths[live] += 1
        ended = ~resetting & (terminated | truncated)
        for i in np.flatnonzero(ended):
            take = min(int(episodes.lengths[i]), n_transitions - filled)
            for key in out:
                out[key][filled : filled + take] = episodes.columns[key][i, :take]
            filled += take
            bar.update(take)
            episodes.lengths[i] = 0
            if filled == n_transitions:
                break
        resetting = ended
        obs = next_obs
    bar.close()
    envs.close()
    return out


def collect_replay_transitions(
    replay_set: ReplaySet,
    n_transitions: int,
    seed: int,
    num_envs: int = DEFAULT_NUM_ENVS,
    progress: bool = True,
) -> dict[str, np.ndarray]:
    """A medium-replay buffer of `n_transitions` rows: each segment of the set, in order,
    rolled out by its policy for its share (`replay_set.segment_rows`).

    Every segment is a `collect_transitions` of its own, seeded from (`seed`, its index); the
    extra column `infos/policy_step` names the snapshot that acted in each row (0: uniform
    random actions).
    """
    parts = []
    rows = segment_rows(replay_set.segments, n_transitions)
    for index, (segment, segment_size) in enumerate(zip(replay_set.segments, rows, strict=True)):
        if segment_size == 0:
            continue
        segment_seed = int(np.random.SeedSequence([seed, index]).generate_state(1)[0])
        actor = replay_set.actors.get(segment.policy_step)
        arrays = collect_transitions(
            replay_set.env_id, actor, segment_size, segment_seed, num_envs, progress
        )
        arrays["infos/policy_step"] = np.full(segment_size, segment.policy_step, np.int64)
        parts.append(arrays)
    # A segment's last episode is cut at the end of its share: a truncation (it bootstraps),
    # flagged so that no trajectory runs into the next policy's first episode. The file's
    # last row stays unflagged, as in the other replicas.
    for arrays in parts[:-1]:
        arrays["timeouts"][-1] |= ~arrays["terminals"][-1]
    return {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}


def collect_medium_expert_transitions(
    env_id: str,
    policies: list[tuple[PortableActor, int]],
    n_transitions: int,
    seed: int,
    num_envs: int = DEFAULT_NUM_ENVS,
    progress: bool = True,
) -> dict[str, np.ndarray]:
    """The medium part then the expert part (`medium_expert_rows`), each the rows the replica
    of its own quality with this `seed` holds (`policies`: (actor, training step) of each).

    The extra column `infos/policy_step` names the policy of each row by its training step,
    as in medium-replay. The medium part's last episode, cut at the end of the part, is
    flagged as a timeout there (unless it fell on that step), as medium-replay flags each
    policy switch: so the part differs from the medium replica in that one flag, and no
    trajectory runs from the medium policy into the expert's first episode. D4RL's file, its
    medium file followed by its expert file, leaves that row unflagged (TFDS counts 3,214
    hopper-medium-expert-v2 episodes, one fewer than medium's 2,187 and expert's 1,028), so
    top-k removal there ranks one trajectory made of two policies' episodes.
    """
    parts = []
    rows = medium_expert_rows(n_transitions)
    for (actor, policy_step), part_rows in zip(policies, rows, strict=True):
        arrays = collect_transitions(env_id, actor, part_rows, seed, num_envs, progress)
        arrays["infos/policy_step"] = np.full(part_rows, policy_step, np.int64)
        parts.append(arrays)
    medium = parts[0]
    medium["timeouts"][-1] |= ~medium["terminals"][-1]
    return {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}


def _shipped_actor(
    env_name: str, quality: str, policy_dir: Path | None
) -> tuple[PortableActor, dict[str, Any]]:
    torch_actor, card = load_shipped_policy(env_name, quality, policy_dir)
    return PortableActor.from_actor(torch_actor), card


def build_replica(
    dataset_id: str,
    n_transitions: int | None = None,
    seed: int = 0,
    path: Path | None = None,
    num_envs: int = DEFAULT_NUM_ENVS,
    progress: bool = True,
    policy_dir: Path | None = None,
) -> Path:
    """Build the replica of `dataset_id` (e.g. 'hopper-medium-v2', any quality of
    `REPLICA_QUALITIES`) atomically; `n_transitions` None is D4RL's size, `policy_dir` None the
    shipped policies."""
    spec = get_dataset_spec(dataset_id)
    if spec.quality not in REPLICA_QUALITIES:
        raise ValueError(
            f"no replica recipe for {dataset_id!r}: replicas exist for the qualities "
            f"{', '.join(REPLICA_QUALITIES)} (e.g. {spec.env_name}-medium-v2)"
        )
    n_transitions = default_transitions(dataset_id) if n_transitions is None else n_transitions
    if n_transitions <= 0:
        raise ValueError(f"--n must be positive, got {n_transitions}")
    target = path or replica_path(dataset_id, n_transitions, seed, num_envs)
    check_writable_dir(target.parent)
    metadata: dict[str, str | int | float] = {
        "source": "replica",
        "dataset_id": dataset_id,
        "env_id": spec.gym_env_id,
        "seed": seed,
        "n_transitions": n_transitions,
        "num_envs": num_envs,
        "recipe": REPLICA_RECIPE,
        "hybrid_rl_version": __version__,
        "gymnasium_version": importlib.metadata.version("gymnasium"),
        "mujoco_version": importlib.metadata.version("mujoco"),
    }
    if spec.quality == "medium-replay":
        replay_set = load_replay_set(spec.env_name, policy_dir)
        metadata["policy_sha256"] = replay_set.card["sha256"]
        metadata["policy_steps"] = ",".join(str(s.policy_step) for s in replay_set.segments)
        metadata["segment_rows"] = ",".join(
            str(rows) for rows in segment_rows(replay_set.segments, n_transitions)
        )
        metadata["policy"] = (
            "uniform random actions, then SAC actor snapshots of one run in training order "
            "(stochastic actions, float64 in a fixed order)"
        )
        arrays = collect_replay_transitions(replay_set, n_transitions, seed, num_envs, progress)
    elif spec.quality == "medium-expert":
        # Both policies are loaded (and checked) before the first rollout.
        policies = [_shipped_actor(spec.env_name, q, policy_dir) for q in MEDIUM_EXPERT_PARTS]
        metadata["policy_sha256"] = ",".join(card["sha256"] for _, card in policies)
        metadata["policy_steps"] = ",".join(str(card["train_step"]) for _, card in policies)
        metadata["segment_rows"] = ",".join(str(rows) for rows in medium_expert_rows(n_transitions))
        metadata["policy"] = (
            "the medium replica's rows, then the expert replica's (SAC actors, stochastic "
            "actions, float64 in a fixed order)"
        )
        arrays = collect_medium_expert_transitions(
            spec.gym_env_id,
            [(actor, card["train_step"]) for actor, card in policies],
            n_transitions,
            seed,
            num_envs,
            progress,
        )
    elif spec.quality in _ONE_POLICY_QUALITIES:
        actor, card = _shipped_actor(spec.env_name, spec.quality, policy_dir)
        metadata["policy_sha256"] = card["sha256"]
        metadata["policy_train_step"] = card["train_step"]
        metadata["policy"] = "SAC actor (stochastic actions, float64 in a fixed order)"
        arrays = collect_transitions(
            spec.gym_env_id, actor, n_transitions, seed, num_envs, progress
        )
    else:
        metadata["policy"] = "uniform random actions"
        arrays = collect_transitions(spec.gym_env_id, None, n_transitions, seed, num_envs, progress)
    write_d4rl_hdf5(target, arrays, metadata)
    return target


def shipped_policy_sha256(
    env_name: str, quality: str, policy_dir: Path | None = None
) -> str | None:
    """The `policy_sha256` a replica of `quality` built now records: the sha256 in the shipped
    card (medium-expert: the medium then the expert card's, comma-separated); None when a
    card or its sha256 is missing (random: a card without weights)."""
    digests = []
    for part in MEDIUM_EXPERT_PARTS if quality == "medium-expert" else (quality,):
        card_path = policy_paths(env_name, part, policy_dir)[1]
        digest = json.loads(card_path.read_text()).get("sha256") if card_path.exists() else None
        if digest is None:
            return None
        digests.append(digest)
    return ",".join(digests)


def built_from_shipped_policy(path: Path, dataset_id: str, policy_dir: Path | None = None) -> bool:
    """Whether the replica at `path` was built by the current recipe from the policies (or
    snapshot set) shipped now, by the sha256 its metadata records (random replicas: none)."""
    metadata = read_d4rl_metadata(path)
    spec = get_dataset_spec(dataset_id)
    shipped = shipped_policy_sha256(spec.env_name, spec.quality, policy_dir)
    return metadata.get("recipe") == REPLICA_RECIPE and metadata.get("policy_sha256") == shipped


def ensure_replica(dataset_id: str) -> Path:
    """The default replica of `dataset_id`, built on first use (the loader's `auto` fallback)."""
    path = replica_path(dataset_id)
    if not path.exists():
        build_replica(dataset_id, path=path)
    return path
