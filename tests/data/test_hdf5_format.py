"""Reading, validating and writing the D4RL HDF5 layout."""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

import h5py
import numpy as np
import pytest

from hybrid_rl.data.hdf5_format import (
    DatasetFormatError,
    file_sha256,
    read_d4rl_hdf5,
    read_d4rl_metadata,
    write_d4rl_hdf5,
)
from hybrid_rl.data.transitions import split_trajectories

HOPPER_OBS_DIM, HOPPER_ACT_DIM = 11, 3


def _without(arrays: dict[str, np.ndarray], *keys: str) -> dict[str, np.ndarray]:
    return {k: v for k, v in arrays.items() if k not in keys}


def reference_qlearning_dataset(data: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """d4rl.qlearning_dataset's documented rules, written out row by row.

    For every row i but the last: skip it if its timeout flag is set (its successor starts a
    new episode); otherwise emit (obs[i], action[i], reward[i], obs[i + 1], terminal[i]).
    """
    out: dict[str, list] = {"obs": [], "act": [], "rew": [], "next": [], "term": []}
    for i in range(len(data["rewards"]) - 1):
        if data["timeouts"][i]:
            continue
        out["obs"].append(data["observations"][i])
        out["act"].append(data["actions"][i])
        out["rew"].append(data["rewards"][i])
        out["next"].append(data["observations"][i + 1])
        out["term"].append(bool(data["terminals"][i]))
    return {k: np.asarray(v) for k, v in out.items()}


# --- transition semantics ---------------------------------------------------------------


def test_stored_next_observations_are_used_as_is(tmp_path, hopper_rollout, raw_d4rl_file):
    path = raw_d4rl_file(tmp_path / "with_next.hdf5", hopper_rollout)
    t = read_d4rl_hdf5(path, HOPPER_OBS_DIM, HOPPER_ACT_DIM)

    assert len(t) == len(hopper_rollout["rewards"])
    for key in ("observations", "actions", "rewards", "next_observations"):
        np.testing.assert_array_equal(getattr(t, key), hopper_rollout[key])
        assert getattr(t, key).dtype == np.float32
    np.testing.assert_array_equal(t.terminals, hopper_rollout["terminals"])
    np.testing.assert_array_equal(t.timeouts, hopper_rollout["timeouts"])
    # At an episode end the stored next obs is the true final one, not the next reset obs.
    end = int(np.flatnonzero(hopper_rollout["timeouts"][:-1])[0])
    assert not np.array_equal(t.next_observations[end], t.observations[end + 1])


def test_without_next_observations_matches_plain_qlearning_dataset(
    tmp_path, hopper_rollout, raw_d4rl_file
):
    data = _without(hopper_rollout, "next_observations")
    path = raw_d4rl_file(tmp_path / "no_next.hdf5", data)
    t = read_d4rl_hdf5(path)
    expected = reference_qlearning_dataset(data)

    assert len(t) == len(expected["rew"])
    assert len(t) < len(data["rewards"]) - 1  # timeout rows were dropped
    np.testing.assert_array_equal(t.observations, expected["obs"])
    np.testing.assert_array_equal(t.actions, expected["act"])
    np.testing.assert_array_equal(t.rewards, expected["rew"])
    np.testing.assert_array_equal(t.next_observations, expected["next"])
    np.testing.assert_array_equal(t.terminals, expected["term"])


def test_qlearning_rules_keep_trajectories_apart(tmp_path, hopper_rollout, raw_d4rl_file):
    data = _without(hopper_rollout, "next_observations")
    path = raw_d4rl_file(tmp_path / "no_next.hdf5", data)
    t = read_d4rl_hdf5(path)
    trajectories = split_trajectories(t)

    episodes_in_file = int((data["terminals"] | data["timeouts"]).sum())
    assert not (data["terminals"][-1] or data["timeouts"][-1])  # the file ends mid-episode
    # Every episode of the file keeps rows (none has length 1 here), plus the open last one.
    assert len(trajectories) == episodes_in_file + 1
    for start, end in zip(trajectories.starts, trajectories.ends, strict=True):
        # Inside a trajectory each transition continues the previous one...
        np.testing.assert_array_equal(
            t.next_observations[start : end - 1], t.observations[start + 1 : end]
        )
        # ...and only its last row may be terminal or cut.
        assert not (t.terminals[start : end - 1] | t.timeouts[start : end - 1]).any()
    assert not (t.terminals & t.timeouts).any()


def test_qlearning_rules_on_consecutive_timeouts_and_a_terminal_before_a_dropped_row(
    tmp_path, raw_d4rl_file
):
    # obs value = row index. Row 2 terminal; rows 3, 5, 6 time out; row 7 is the last row.
    n = 8
    data = {
        "observations": np.arange(n, dtype=np.float32)[:, None],
        "actions": np.zeros((n, 1), dtype=np.float32),
        "rewards": np.arange(n, dtype=np.float32),
        "terminals": np.isin(np.arange(n), [2]),
        "timeouts": np.isin(np.arange(n), [3, 5, 6]),
    }
    t = read_d4rl_hdf5(raw_d4rl_file(tmp_path / "edge.hdf5", data))

    np.testing.assert_array_equal(t.observations[:, 0], [0, 1, 2, 4])
    np.testing.assert_array_equal(t.next_observations[:, 0], [1, 2, 3, 5])
    np.testing.assert_array_equal(t.terminals, [False, False, True, False])
    # Row 2 is followed by a dropped row but is terminal already; row 4 is cut (bootstraps).
    np.testing.assert_array_equal(t.timeouts, [False, False, False, True])


def test_numeric_dtypes_are_cast_to_float32_and_bool(tmp_path, hopper_rollout, raw_d4rl_file):
    data = {
        k: v.astype(np.float64)
        for k, v in hopper_rollout.items()
        if k not in ("terminals", "timeouts")
    }
    data["terminals"] = hopper_rollout["terminals"].astype(np.uint8)
    data["timeouts"] = hopper_rollout["timeouts"].astype(np.float32)
    t = read_d4rl_hdf5(raw_d4rl_file(tmp_path / "f64.hdf5", data))

    assert t.observations.dtype == t.actions.dtype == t.rewards.dtype == np.float32
    assert t.next_observations.dtype == np.float32
    assert t.terminals.dtype == t.timeouts.dtype == np.bool_
    np.testing.assert_array_equal(t.terminals, hopper_rollout["terminals"])
    np.testing.assert_array_equal(t.timeouts, hopper_rollout["timeouts"])


# --- validation -------------------------------------------------------------------------


def _expect_format_error(path: Path, *fragments: str, **dims: int) -> DatasetFormatError:
    with pytest.raises(DatasetFormatError) as info:
        read_d4rl_hdf5(path, **dims)
    message = str(info.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    return info.value


def test_missing_key_names_the_file_and_the_key(tmp_path, hopper_rollout, raw_d4rl_file):
    path = raw_d4rl_file(tmp_path / "no_timeouts.hdf5", _without(hopper_rollout, "timeouts"))
    _expect_format_error(path, "missing", "timeouts")


def test_wrong_observation_dim_names_both_dims(tmp_path, hopper_rollout, raw_d4rl_file):
    path = raw_d4rl_file(tmp_path / "hopper.hdf5", hopper_rollout)
    _expect_format_error(path, "observation dim is 11", "17", expected_obs_dim=17)


def test_wrong_action_dim_names_both_dims(tmp_path, hopper_rollout, raw_d4rl_file):
    path = raw_d4rl_file(tmp_path / "hopper.hdf5", hopper_rollout)
    _expect_format_error(path, "action dim is 3", "6", expected_act_dim=6)


def test_nan_reward_names_the_key_and_row(tmp_path, hopper_rollout, raw_d4rl_file):
    data = dict(hopper_rollout)
    data["rewards"] = hopper_rollout["rewards"].copy()
    data["rewards"][7] = np.nan
    path = raw_d4rl_file(tmp_path / "nan.hdf5", data)
    _expect_format_error(path, "rewards", "non-finite", "row 7")


def test_infinite_observation_is_refused(tmp_path, hopper_rollout, raw_d4rl_file):
    data = dict(hopper_rollout)
    data["observations"] = hopper_rollout["observations"].copy()
    data["observations"][12, 4] = np.inf
    path = raw_d4rl_file(tmp_path / "inf.hdf5", data)
    _expect_format_error(path, "observations", "non-finite", "row 12")


def test_mismatched_lengths_list_every_length(tmp_path, hopper_rollout, raw_d4rl_file):
    data = dict(hopper_rollout)
    data["actions"] = hopper_rollout["actions"][:-5]
    path = raw_d4rl_file(tmp_path / "short_actions.hdf5", data)
    n = len(hopper_rollout["rewards"])
    _expect_format_error(path, "different lengths", f"'actions': {n - 5}", f"'rewards': {n}")


def test_wrong_rank_is_refused(tmp_path, hopper_rollout, raw_d4rl_file):
    data = dict(hopper_rollout)
    data["rewards"] = hopper_rollout["rewards"][:, None]
    path = raw_d4rl_file(tmp_path / "rank.hdf5", data)
    _expect_format_error(path, "rewards", "shape [N]", str(data["rewards"].shape))


def test_non_numeric_dtype_is_refused(tmp_path, hopper_rollout, raw_d4rl_file):
    data = dict(hopper_rollout)
    data["terminals"] = np.array([b"no"] * len(hopper_rollout["rewards"]))
    path = raw_d4rl_file(tmp_path / "strings.hdf5", data)
    _expect_format_error(path, "terminals", "non-numeric")


def test_flags_other_than_zero_or_one_are_refused(tmp_path, hopper_rollout, raw_d4rl_file):
    data = dict(hopper_rollout)
    data["timeouts"] = hopper_rollout["timeouts"].astype(np.int64) * 2
    path = raw_d4rl_file(tmp_path / "flags.hdf5", data)
    _expect_format_error(path, "timeouts", "0/1", "[2]")


def test_next_observation_dim_must_match(tmp_path, hopper_rollout, raw_d4rl_file):
    data = dict(hopper_rollout)
    data["next_observations"] = hopper_rollout["next_observations"][:, :5]
    path = raw_d4rl_file(tmp_path / "next_dim.hdf5", data)
    _expect_format_error(path, "next_observations has dim 5")


def test_empty_file_is_refused(tmp_path, hopper_rollout, raw_d4rl_file):
    data = {k: v[:0] for k, v in hopper_rollout.items()}
    path = raw_d4rl_file(tmp_path / "empty.hdf5", data)
    _expect_format_error(path, "no transitions")


def test_truncated_file_says_to_delete_and_fetch_again(tmp_path, hopper_rollout, raw_d4rl_file):
    path = raw_d4rl_file(tmp_path / "truncated.hdf5", hopper_rollout)
    content = path.read_bytes()
    path.write_bytes(content[: len(content) // 2])
    error = _expect_format_error(path, "truncated or corrupt", "delete it", "fetch it again")
    assert error.unreadable


def test_garbage_file_is_unreadable(tmp_path):
    path = tmp_path / "garbage.hdf5"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    assert _expect_format_error(path, "cannot be read as HDF5").unreadable


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope\.hdf5"):
        read_d4rl_hdf5(tmp_path / "nope.hdf5")


# --- metadata, writing, hashing ---------------------------------------------------------


def test_write_then_read_keeps_arrays_nested_keys_and_metadata(tmp_path, hopper_rollout):
    qpos = np.random.default_rng(1).normal(size=(len(hopper_rollout["rewards"]), 6))
    arrays = {**hopper_rollout, "infos/qpos": qpos}
    metadata = {"source": "replica", "env_id": "Hopper-v4", "seed": 3, "target_score": 33.5}
    path = write_d4rl_hdf5(tmp_path / "out" / "replica.hdf5", arrays, metadata)

    assert sorted(p.name for p in path.parent.iterdir()) == ["replica.hdf5"]  # no temp left
    with h5py.File(path, "r") as f:
        np.testing.assert_array_equal(f["infos"]["qpos"][()], qpos)
        assert f["metadata"]["env_id"].shape == ()
    assert read_d4rl_metadata(path) == metadata
    t = read_d4rl_hdf5(path, HOPPER_OBS_DIM, HOPPER_ACT_DIM)
    np.testing.assert_array_equal(t.next_observations, hopper_rollout["next_observations"])
    np.testing.assert_array_equal(t.timeouts, hopper_rollout["timeouts"])


def test_failed_write_leaves_no_file(tmp_path, hopper_rollout):
    arrays = {**hopper_rollout, "infos/bad": np.array([object()] * 3)}
    with pytest.raises(TypeError):
        write_d4rl_hdf5(tmp_path / "bad.hdf5", arrays, {})
    assert list(tmp_path.iterdir()) == []


def test_writer_refuses_missing_keys_and_unstorable_metadata(tmp_path, hopper_rollout):
    with pytest.raises(ValueError, match="timeouts"):
        write_d4rl_hdf5(tmp_path / "a.hdf5", _without(hopper_rollout, "timeouts"), {})
    with pytest.raises(ValueError, match="list"):
        write_d4rl_hdf5(tmp_path / "b.hdf5", hopper_rollout, {"seeds": [1, 2]})  # type: ignore[dict-item]
    assert list(tmp_path.iterdir()) == []


def test_metadata_reader_skips_non_scalar_entries(tmp_path, hopper_rollout, raw_d4rl_file):
    path = raw_d4rl_file(tmp_path / "d4rl_like.hdf5", hopper_rollout, {"algorithm": "SAC"})
    with h5py.File(path, "a") as f:
        f.create_dataset("metadata/policy/fc0/weight", data=np.ones((4, 4)))
    assert read_d4rl_metadata(path) == {"algorithm": "SAC"}


def test_file_sha256_streams_the_whole_file(tmp_path):
    path = tmp_path / "blob.bin"
    content = np.random.default_rng(2).bytes(10_000)
    path.write_bytes(content)
    assert file_sha256(path, chunk_bytes=999) == hashlib.sha256(content).hexdigest()


def test_format_error_survives_pickling(tmp_path):
    error = DatasetFormatError(tmp_path / "x.hdf5", "cannot be read as HDF5", unreadable=True)
    copy = pickle.loads(pickle.dumps(error))
    assert (str(copy), copy.where, copy.problem, copy.unreadable) == (
        str(error),
        error.where,
        error.problem,
        True,
    )
