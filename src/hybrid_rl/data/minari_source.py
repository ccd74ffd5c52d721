"""Local Minari datasets (optional extra) as D4RL-semantics TransitionArrays."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hybrid_rl.data.hdf5_format import DatasetFormatError
from hybrid_rl.data.transitions import TransitionArrays


@dataclass(frozen=True)
class MinariRead:
    """A Minari dataset's transitions and where they came from."""

    transitions: TransitionArrays
    data_path: Path  # the dataset's `data` folder
    sha256: str  # over the relative names, sizes and bytes of every file in `data_path`
    env_id: str | None  # Gymnasium id recorded by Minari (MuJoCo datasets use v5 envs)


def load_minari(dataset_id: str) -> TransitionArrays:
    """Transitions of the local Minari dataset `dataset_id` (see `read_minari`)."""
    return read_minari(dataset_id).transitions


def read_minari(dataset_id: str) -> MinariRead:
    """Read a local Minari dataset (never downloads) into D4RL's transition semantics.

    Each Minari episode holds T+1 observations and T actions, rewards, terminations and
    truncations: its rows are obs = o[:-1], next_obs = o[1:], terminals = terminations,
    timeouts = truncations. An episode whose last step is neither terminated nor truncated was
    cut short by the collector; its last row gets timeouts=True (bootstraps) so it is not
    merged with the next episode. Observations and actions must be flat Box spaces.
    """
    minari = _import_minari()
    try:
        dataset = minari.load_dataset(dataset_id, download=False)
    except FileNotFoundError as exc:
        raise FileNotFoundError(
            f"no local Minari dataset {dataset_id!r} ({exc}); download it with "
            f"`minari download {dataset_id}` or check $MINARI_DATASETS_PATH"
        ) from exc
    data_path = Path(dataset.storage.data_path)
    transitions = _episodes_to_transitions(dataset_id, dataset.iterate_episodes())
    env_spec = dataset.env_spec
    return MinariRead(
        transitions=transitions,
        data_path=data_path,
        sha256=_folder_sha256(data_path),
        env_id=env_spec.id if env_spec is not None else None,
    )


def _import_minari() -> Any:
    try:
        import minari
    except ImportError as exc:
        raise ImportError(
            "the Minari source needs the optional `minari` package: pip install 'hybrid-rl[minari]'"
        ) from exc
    return minari


def _episodes_to_transitions(dataset_id: str, episodes: Any) -> TransitionArrays:
    parts: dict[str, list[np.ndarray]] = {
        "observations": [],
        "actions": [],
        "rewards": [],
        "next_observations": [],
        "terminals": [],
        "timeouts": [],
    }
    for episode in episodes:
        where = f"Minari dataset {dataset_id!r}, episode {episode.id}"
        obs, actions = episode.observations, episode.actions
        if not isinstance(obs, np.ndarray) or not isinstance(actions, np.ndarray):
            raise DatasetFormatError(
                where,
                f"observations and actions must be flat arrays (Box spaces), got "
                f"{type(obs).__name__} and {type(actions).__name__}",
            )
        steps = len(episode.rewards)
        if obs.ndim != 2 or actions.ndim != 2 or len(obs) != steps + 1 or len(actions) != steps:
            raise DatasetFormatError(
                where,
                f"expected {steps + 1} observations [T+1, obs_dim] and {steps} actions "
                f"[T, act_dim], got shapes {obs.shape} and {actions.shape}",
            )
        terminals = np.asarray(episode.terminations, dtype=bool)
        timeouts = np.asarray(episode.truncations, dtype=bool).copy()
        if steps > 0 and not (terminals[-1] or timeouts[-1]):
            timeouts[-1] = True
        parts["observations"].append(obs[:-1])
        parts["actions"].append(actions)
        parts["rewards"].append(np.asarray(episode.rewards))
        parts["next_observations"].append(obs[1:])
        parts["terminals"].append(terminals)
        parts["timeouts"].append(timeouts)
    if not parts["rewards"] or sum(len(r) for r in parts["rewards"]) == 0:
        raise DatasetFormatError(f"Minari dataset {dataset_id!r}", "holds no transitions")
    arrays = {key: np.concatenate(chunks) for key, chunks in parts.items()}
    for key in ("observations", "actions", "rewards", "next_observations"):
        if not np.isfinite(arrays[key]).all():
            raise DatasetFormatError(
                f"Minari dataset {dataset_id!r}", f"{key} has non-finite values (NaN or inf)"
            )
    return TransitionArrays(
        observations=arrays["observations"].astype(np.float32),
        actions=arrays["actions"].astype(np.float32),
        rewards=arrays["rewards"].astype(np.float32),
        next_observations=arrays["next_observations"].astype(np.float32),
        terminals=arrays["terminals"],
        timeouts=arrays["timeouts"],
    )


def _folder_sha256(folder: Path) -> str:
    # Minari splits a dataset into several files; hashing names with contents pins them all.
    digest = hashlib.sha256()
    for file in sorted(p for p in folder.rglob("*") if p.is_file()):
        header = f"{file.relative_to(folder).as_posix()}\0{file.stat().st_size}\0"
        digest.update(header.encode())
        with open(file, "rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()
