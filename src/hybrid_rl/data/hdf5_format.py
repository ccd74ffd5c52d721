"""The D4RL HDF5 layout: read with validation, write atomically, and hash.

Layout (one HDF5 file, N rows): top-level datasets `observations` [N, obs_dim],
`actions` [N, act_dim], `rewards` [N], `terminals` [N], `timeouts` [N], optionally
`next_observations` [N, obs_dim]; any other datasets (`infos/qpos`, ...) are carried along
but not read. Provenance lives in `metadata/<name>` scalar datasets, as in D4RL's own files.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path

import h5py
import numpy as np

from hybrid_rl.atomic_io import atomic_write
from hybrid_rl.data.transitions import TransitionArrays

REQUIRED_KEYS = ("observations", "actions", "rewards", "terminals", "timeouts")
OPTIONAL_KEYS = ("next_observations",)
METADATA_GROUP = "metadata"
# Metadata names this project writes and reads back.
METADATA_SOURCE = "source"  # e.g. "replica"
METADATA_ENV_ID = "env_id"  # Gymnasium id the data was collected on
METADATA_DATASET_ID = "dataset_id"  # registry id the file stands for, e.g. "hopper-medium-v2"

MetadataValue = str | int | float

_FLOAT_KEYS = ("observations", "actions", "rewards", "next_observations")
_FLAG_KEYS = ("terminals", "timeouts")
_NDIM = {
    "observations": 2,
    "actions": 2,
    "next_observations": 2,
    "rewards": 1,
    "terminals": 1,
    "timeouts": 1,
}


class DatasetFormatError(ValueError):
    """A dataset that is unreadable or does not follow the D4RL layout.

    `where` names the file (or dataset), `problem` says what is wrong; `unreadable` marks a
    truncated or corrupt file, whose message also says to delete it and fetch it again.
    """

    def __init__(self, where: str | os.PathLike[str], problem: str, unreadable: bool = False):
        self.where = str(where)
        self.problem = problem
        self.unreadable = unreadable
        message = f"{self.where}: {problem}"
        if unreadable:
            message += (
                f". The file is truncated or corrupt: delete it (rm '{self.where}') and fetch it "
                "again: download it again, or rebuild it with `hybrid-rl dataset build <id>` "
                "if it is a replica."
            )
        super().__init__(message)

    def __reduce__(self) -> tuple[type, tuple[str, str, bool]]:
        # Rebuild from the fields, so the error survives a process pool's pickling.
        return type(self), (self.where, self.problem, self.unreadable)


def read_d4rl_hdf5(
    path: str | os.PathLike[str],
    expected_obs_dim: int | None = None,
    expected_act_dim: int | None = None,
) -> TransitionArrays:
    """Read and validate a D4RL-layout file into float32 / bool TransitionArrays.

    With `next_observations` stored, every row is returned as stored. Without it,
    `d4rl.qlearning_dataset`'s rules apply: next_observations[i] = observations[i + 1], rows
    whose timeout flag is set are dropped (their successor row starts the next episode), and
    the last row is dropped (it has no successor). Dropping rows would merge trajectories, so
    the kept row just before each dropped row gets `timeouts=True` unless it is terminal: it
    ends its trajectory but, not being a true termination, still bootstraps. All returned
    rows then have next_observations[i] == observations[i + 1] within a trajectory.

    Raises FileNotFoundError for a missing file and DatasetFormatError (naming the file) for a
    truncated/corrupt file, a missing key, mismatched lengths, wrong ranks or dims, a
    non-numeric dtype, flags other than 0/1, non-finite values, or no transitions at all.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such dataset file")
    raw = _read_datasets(path)
    _validate(path, raw, expected_obs_dim, expected_act_dim)
    obs = raw["observations"].astype(np.float32, copy=False)
    actions = raw["actions"].astype(np.float32, copy=False)
    rewards = raw["rewards"].astype(np.float32, copy=False)
    terminals = raw["terminals"].astype(bool, copy=False)
    timeouts = raw["timeouts"].astype(bool, copy=False)
    if "next_observations" in raw:
        return TransitionArrays(
            observations=obs,
            actions=actions,
            rewards=rewards,
            next_observations=raw["next_observations"].astype(np.float32, copy=False),
            terminals=terminals,
            timeouts=timeouts,
        )
    transitions = _apply_qlearning_rules(obs, actions, rewards, terminals, timeouts)
    if len(transitions) == 0:
        raise DatasetFormatError(
            path,
            f"no transitions are left after dropping timeout rows and the last row "
            f"(the file has {len(rewards)} rows and no next_observations)",
        )
    return transitions


def read_d4rl_metadata(path: str | os.PathLike[str]) -> dict[str, MetadataValue]:
    """The scalar datasets directly under `metadata/` (strings decoded); {} when there are none.

    Non-scalar entries (D4RL stores policy weights under `metadata/policy/...`) are skipped.
    """
    path = Path(path)
    try:
        with h5py.File(path, "r") as f:
            group = f.get(METADATA_GROUP)
            if not isinstance(group, h5py.Group):
                return {}
            metadata: dict[str, MetadataValue] = {}
            for name, item in group.items():
                if isinstance(item, h5py.Dataset) and item.shape == ():
                    metadata[name] = _python_scalar(item[()])
            return metadata
    except (OSError, KeyError, RuntimeError) as exc:
        raise _unreadable(path, exc) from exc


def write_d4rl_hdf5(
    path: str | os.PathLike[str],
    arrays: Mapping[str, np.ndarray],
    metadata: Mapping[str, MetadataValue],
) -> Path:
    """Write `arrays` as datasets and `metadata` as `metadata/<name>` scalars, atomically.

    A key with '/' (e.g. 'infos/qpos') becomes a nested dataset. Arrays are written with the
    dtypes given (callers pass float32 arrays and bool flags to match D4RL). The file appears
    at `path` only once fully written (`atomic_write`); returns `path`.
    """
    missing = [key for key in REQUIRED_KEYS if key not in arrays]
    if missing:
        raise ValueError(f"cannot write {path}: arrays lack required keys {missing}")
    clashing = [key for key in arrays if key.split("/")[0] == METADATA_GROUP]
    if clashing:
        raise ValueError(f"cannot write {path}: pass {clashing} through `metadata`, not `arrays`")
    for name, value in metadata.items():
        if "/" in name or not name:
            raise ValueError(
                f"cannot write {path}: metadata name {name!r} must be non-empty, no '/'"
            )
        if not isinstance(value, str | int | float):
            raise ValueError(
                f"cannot write {path}: metadata {name!r} is a {type(value).__name__}; "
                "only str, int and float are stored"
            )

    def write(tmp: Path) -> None:
        with h5py.File(tmp, "w") as f:
            for key, array in arrays.items():
                f.create_dataset(key, data=np.asarray(array))
            for name, value in metadata.items():
                f.create_dataset(f"{METADATA_GROUP}/{name}", data=value)

    return atomic_write(path, write)


def file_sha256(path: str | os.PathLike[str], chunk_bytes: int = 1 << 20) -> str:
    """Hex sha256 of the file's bytes, read in chunks (constant memory)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def _unreadable(path: Path, exc: BaseException) -> DatasetFormatError:
    return DatasetFormatError(path, f"cannot be read as HDF5 ({exc})", unreadable=True)


def _read_datasets(path: Path) -> dict[str, np.ndarray]:
    try:
        with h5py.File(path, "r") as f:
            missing = [key for key in REQUIRED_KEYS if key not in f]
            if missing:
                raise DatasetFormatError(
                    path,
                    f"missing required dataset(s) {missing}; a D4RL-layout file needs "
                    f"{list(REQUIRED_KEYS)} (and optionally {list(OPTIONAL_KEYS)}), "
                    f"found top-level keys {sorted(f.keys())}",
                )
            present = [key for key in (*REQUIRED_KEYS, *OPTIONAL_KEYS) if key in f]
            not_datasets = [key for key in present if not isinstance(f[key], h5py.Dataset)]
            if not_datasets:
                raise DatasetFormatError(path, f"{not_datasets} must be datasets, not groups")
            return {key: np.asarray(f[key][()]) for key in present}
    except DatasetFormatError:
        raise
    except (OSError, KeyError, RuntimeError, ValueError) as exc:
        raise _unreadable(path, exc) from exc


def _validate(
    path: Path,
    raw: Mapping[str, np.ndarray],
    expected_obs_dim: int | None,
    expected_act_dim: int | None,
) -> None:
    for key, array in raw.items():
        # b: bool, i/u: integers, f: floats; strings, objects and complex numbers are refused.
        if array.dtype.kind not in "biuf":
            raise DatasetFormatError(path, f"{key} has non-numeric dtype {array.dtype}")
        if array.ndim != _NDIM[key]:
            expected = "[N, dim]" if _NDIM[key] == 2 else "[N]"
            raise DatasetFormatError(
                path, f"{key} must have shape {expected}, got shape {array.shape}"
            )
    lengths = {key: int(array.shape[0]) for key, array in raw.items()}
    if len(set(lengths.values())) != 1:
        raise DatasetFormatError(path, f"datasets have different lengths {lengths}")
    if lengths["rewards"] == 0:
        raise DatasetFormatError(path, "the file holds no transitions (0 rows)")

    obs_dim = int(raw["observations"].shape[1])
    act_dim = int(raw["actions"].shape[1])
    if "next_observations" in raw and raw["next_observations"].shape[1] != obs_dim:
        raise DatasetFormatError(
            path,
            f"next_observations has dim {raw['next_observations'].shape[1]}, "
            f"observations has dim {obs_dim}",
        )
    if expected_obs_dim is not None and obs_dim != expected_obs_dim:
        raise DatasetFormatError(
            path,
            f"observation dim is {obs_dim}, the environment's is {expected_obs_dim}; "
            "is this file for another environment?",
        )
    if expected_act_dim is not None and act_dim != expected_act_dim:
        raise DatasetFormatError(
            path,
            f"action dim is {act_dim}, the environment's is {expected_act_dim}; "
            "is this file for another environment?",
        )

    for key in _FLOAT_KEYS:
        if key not in raw:
            continue
        finite = np.isfinite(raw[key])
        if not finite.all():
            bad_rows = np.flatnonzero(~finite.reshape(len(finite), -1).all(axis=1))
            raise DatasetFormatError(
                path,
                f"{key} has {int((~finite).sum())} non-finite value(s) (NaN or inf), "
                f"first in row {int(bad_rows[0])}",
            )
    for key in _FLAG_KEYS:
        flags = raw[key]
        if flags.dtype.kind != "b" and not np.isin(flags, (0, 1)).all():
            raise DatasetFormatError(
                path,
                f"{key} must hold only 0/1 (or bool), found values "
                f"{np.unique(flags[~np.isin(flags, (0, 1))])[:5].tolist()}",
            )


def _apply_qlearning_rules(
    obs: np.ndarray,
    actions: np.ndarray,
    rewards: np.ndarray,
    terminals: np.ndarray,
    timeouts: np.ndarray,
) -> TransitionArrays:
    # A timeout row's successor is the next episode's first observation, so it cannot be
    # paired; the last row has no successor at all.
    keep = ~timeouts
    keep[-1] = False
    rows = np.flatnonzero(keep)
    successor_dropped = ~keep[rows + 1]
    return TransitionArrays(
        observations=obs[rows],
        actions=actions[rows],
        rewards=rewards[rows],
        next_observations=obs[rows + 1],
        terminals=terminals[rows],
        timeouts=successor_dropped & ~terminals[rows],
    )


def _python_scalar(value: object) -> MetadataValue:
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, str | int | float):
        return value
    return str(value)
