"""The D4RL MuJoCo datasets this project knows: env ids, download URLs and reference scores."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

D4RL_BASE_URL = "http://rail.eecs.berkeley.edu/datasets/offline_rl/gym_mujoco_v2"
EPISODE_CAP = 1000

# D4RL's random and expert returns (d4rl/infos.py REF_MIN_SCORE / REF_MAX_SCORE).
_REFERENCE_SCORES = {
    "halfcheetah": (-280.178953, 12135.0),
    "hopper": (-20.272305, 3234.3),
}
_GYM_ENV_IDS = {"halfcheetah": "HalfCheetah-v4", "hopper": "Hopper-v4"}
# (obs_dim, act_dim) of D4RL's v2 datasets, equal to the Gymnasium v4 envs' spaces.
_DIMS = {"halfcheetah": (17, 6), "hopper": (11, 3)}
_QUALITIES = ("random", "medium", "medium-replay", "medium-expert", "expert")
# This project's own datasets, replicas only (D4RL publishes no such file): env → {quality:
# the D4RL quality it varies}. hopper-medium-bimodal-v2 is the first hopper-medium replica,
# whose policy either falls early or runs the full 1,000 steps (std 36 normalized against
# D4RL's 11.6): a stress case.
_PROJECT_QUALITIES = {"hopper": {"medium-bimodal": "medium"}}


@dataclass(frozen=True)
class DatasetSpec:
    """Everything the project needs to know about one dataset id: D4RL's, or this project's
    own (then `d4rl_id` names the D4RL dataset it varies)."""

    dataset_id: str
    env_name: str  # "halfcheetah" | "hopper"
    quality: str  # "random" | "medium" | ...
    gym_env_id: str
    ref_min_score: float
    ref_max_score: float
    obs_dim: int
    act_dim: int
    d4rl_id: str  # this id when D4RL publishes it

    @property
    def in_d4rl(self) -> bool:
        """False for this project's own datasets, built as replicas only."""
        return self.d4rl_id == self.dataset_id

    @property
    def url(self) -> str:
        return f"{D4RL_BASE_URL}/{self.file_name}"

    @property
    def file_name(self) -> str:
        return f"{self.env_name}_{self.quality.replace('-', '_')}-v2.hdf5"


def _spec(env: str, quality: str, d4rl_quality: str) -> DatasetSpec:
    return DatasetSpec(
        dataset_id=f"{env}-{quality}-v2",
        env_name=env,
        quality=quality,
        gym_env_id=_GYM_ENV_IDS[env],
        ref_min_score=_REFERENCE_SCORES[env][0],
        ref_max_score=_REFERENCE_SCORES[env][1],
        obs_dim=_DIMS[env][0],
        act_dim=_DIMS[env][1],
        d4rl_id=f"{env}-{d4rl_quality}-v2",
    )


DATASETS: dict[str, DatasetSpec] = {
    **{f"{env}-{q}-v2": _spec(env, q, q) for env in _GYM_ENV_IDS for q in _QUALITIES},
    **{
        f"{env}-{q}-v2": _spec(env, q, varied)
        for env, qualities in _PROJECT_QUALITIES.items()
        for q, varied in qualities.items()
    },
}


def get_dataset_spec(dataset_id: str) -> DatasetSpec:
    """Return the spec of `dataset_id`; an unknown id raises a KeyError listing the valid ones."""
    try:
        return DATASETS[dataset_id]
    except KeyError:
        valid = ", ".join(sorted(DATASETS))
        raise KeyError(f"unknown dataset id {dataset_id!r}; valid ids are: {valid}") from None


def env_name_of(env_or_dataset_id: str) -> str:
    """Map a dataset id ('hopper-medium-v2') or Gymnasium id ('Hopper-v4') to 'hopper'."""
    lowered = env_or_dataset_id.lower()
    for env in _GYM_ENV_IDS:
        if lowered.startswith(env):
            return env
    raise KeyError(
        f"no reference scores for {env_or_dataset_id!r}; known environments: "
        f"{', '.join(sorted(_GYM_ENV_IDS))}"
    )


def gym_env_id_of(env_or_dataset_id: str) -> str:
    """The Gymnasium id used for rollouts of a dataset id or env name."""
    return _GYM_ENV_IDS[env_name_of(env_or_dataset_id)]


def env_dims(env_or_dataset_id: str) -> tuple[int, int]:
    """(obs_dim, act_dim) of a known environment, e.g. 'Hopper-v4' -> (11, 3)."""
    return _DIMS[env_name_of(env_or_dataset_id)]


def reference_scores(env_or_dataset_id: str) -> tuple[float, float]:
    """D4RL's (random, expert) returns for the environment of `env_or_dataset_id`."""
    return _REFERENCE_SCORES[env_name_of(env_or_dataset_id)]


def normalized_score(env_or_dataset_id: str, returns: float | np.ndarray) -> np.ndarray:
    """D4RL's normalized score 100·(return − random)/(expert − random), elementwise (float64)."""
    low, high = reference_scores(env_or_dataset_id)
    return 100.0 * (np.asarray(returns, dtype=np.float64) - low) / (high - low)
