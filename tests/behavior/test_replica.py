"""The replica builder on tiny budgets, checked against the loader and the real envs."""

from __future__ import annotations

import json
import shutil

import h5py
import numpy as np
import pytest

from hybrid_rl.behavior.policies import policy_paths
from hybrid_rl.behavior.replica import REPLICA_QUALITIES, build_replica, collect_transitions
from hybrid_rl.data.hdf5_format import file_sha256, read_d4rl_metadata
from hybrid_rl.data.loader import load_dataset
from hybrid_rl.data.registry import DATASETS
from hybrid_rl.data.transitions import split_trajectories
from hybrid_rl.envs import make_env


@pytest.fixture(scope="module")
def hopper_random(tmp_path_factory):
    path = tmp_path_factory.mktemp("replica") / "hopper-random.hdf5"
    build_replica(
        "hopper-random-v2", n_transitions=3_000, seed=0, path=path, num_envs=4, progress=False
    )
    return path


def test_loader_accepts_the_replica_and_labels_it(hopper_random):
    loaded = load_dataset(hopper_random)
    assert loaded.provenance.source == "replica"
    assert loaded.provenance.env_id == "Hopper-v4"
    assert loaded.provenance.dataset_id == "hopper-random-v2"
    assert len(loaded.transitions) == 3_000
    with h5py.File(hopper_random) as f:
        for key in ("infos/qpos", "infos/qvel", "infos/action_log_probs"):
            assert f[key].shape[0] == 3_000
        assert f["metadata/gymnasium_version"][()]


def test_hopper_falls_are_terminals_reproduced_by_the_env(hopper_random):
    with h5py.File(hopper_random) as f:
        qpos, qvel = f["infos/qpos"][:], f["infos/qvel"][:]
        actions, terminals = f["actions"][:], f["terminals"][:]
        next_obs = f["next_observations"][:]
    env = make_env("Hopper-v4", seed=0)
    env.reset(seed=0)
    terminal_rows = np.flatnonzero(terminals)
    assert terminal_rows.size > 10  # random actions make Hopper fall every few dozen steps
    non_terminal_rows = np.flatnonzero(~terminals)[:50]
    for row in [*terminal_rows[:20], *non_terminal_rows]:
        env.unwrapped.set_state(qpos[row], qvel[row])
        observed, _, terminated, _, _ = env.step(actions[row])
        assert terminated == terminals[row], f"row {row}"
        np.testing.assert_allclose(observed, next_obs[row], rtol=1e-5, atol=1e-5)


def test_trajectories_are_contiguous_and_never_cross_a_reset(hopper_random):
    transitions = load_dataset(hopper_random).transitions
    trajectories = split_trajectories(transitions)
    for start, end in zip(trajectories.starts, trajectories.ends, strict=True):
        # Inside a trajectory each next observation is the following row's observation.
        np.testing.assert_array_equal(
            transitions.next_observations[start : end - 1],
            transitions.observations[start + 1 : end],
        )


def test_halfcheetah_episodes_end_in_a_timeout_at_step_1000():
    arrays = collect_transitions("HalfCheetah-v4", None, 2_500, seed=1, num_envs=2, progress=False)
    assert not arrays["terminals"].any()
    np.testing.assert_array_equal(np.flatnonzero(arrays["timeouts"]), [999, 1999])
    # The last episode is cut at the budget: its final row carries no flag.
    assert not arrays["timeouts"][-1]


def test_same_seed_gives_the_same_data_and_another_seed_does_not():
    first = collect_transitions("Hopper-v4", None, 500, seed=3, num_envs=3, progress=False)
    again = collect_transitions("Hopper-v4", None, 500, seed=3, num_envs=3, progress=False)
    other = collect_transitions("Hopper-v4", None, 500, seed=4, num_envs=3, progress=False)
    for key in first:
        np.testing.assert_array_equal(first[key], again[key])
    assert not np.array_equal(first["observations"], other["observations"])


def test_every_known_dataset_has_a_replica_recipe():
    assert {spec.quality for spec in DATASETS.values()} == set(REPLICA_QUALITIES)


def test_same_seed_gives_a_byte_identical_file(tmp_path):
    # Provenance records the file's sha256: two users building the same replica must agree.
    paths = [tmp_path / "a.hdf5", tmp_path / "b.hdf5"]
    for path in paths:
        build_replica("hopper-random-v2", 300, seed=0, path=path, num_envs=2, progress=False)
    assert file_sha256(paths[0]) == file_sha256(paths[1])


def _halfcheetah_states(actions: np.ndarray) -> np.ndarray:
    env = make_env("HalfCheetah-v4", seed=0)
    env.reset(seed=0)
    states = []
    for action in actions:
        env.step(action)
        states.append(np.concatenate([env.unwrapped.data.qpos, env.unwrapped.data.qvel]))
    return np.array(states)


def test_mujoco_replays_the_same_actions_to_the_same_bits():
    actions = np.random.default_rng(0).uniform(-1, 1, (300, 6)).astype(np.float32)
    np.testing.assert_array_equal(_halfcheetah_states(actions), _halfcheetah_states(actions))


def test_one_ulp_in_one_action_grows_into_another_trajectory():
    # Why a replica needs a bit-exact policy forward: the dynamics amplify any rounding.
    actions = np.random.default_rng(0).uniform(-1, 1, (300, 6)).astype(np.float32)
    nudged = actions.copy()
    nudged[0, 0] = np.nextafter(nudged[0, 0], np.float32(2))
    gap = np.abs(_halfcheetah_states(actions) - _halfcheetah_states(nudged)).max(axis=1)
    assert 0 < gap[0] < 1e-5
    assert gap[-1] > 1e-2


def test_medium_replica_same_seed_gives_a_byte_identical_file(tmp_path):
    paths = [tmp_path / "a.hdf5", tmp_path / "b.hdf5"]
    for path in paths:
        build_replica("halfcheetah-medium-v2", 200, seed=0, path=path, num_envs=2, progress=False)
    assert file_sha256(paths[0]) == file_sha256(paths[1])


def test_the_bimodal_set_is_the_former_hopper_medium_policys_rows(tmp_path):
    # hopper-medium-bimodal-v2 rolls out hopper_medium_bimodal.pt as hopper-medium-v2 rolls
    # out hopper_medium.pt: with the bimodal weights in a medium policy's place, same rows.
    weights, card = policy_paths("hopper", "medium-bimodal")
    as_medium_dir = tmp_path / "policies"
    as_medium_dir.mkdir()
    shutil.copy(weights, as_medium_dir / "hopper_medium.pt")
    shutil.copy(card, as_medium_dir / "hopper_medium.json")
    own = build_replica(
        "hopper-medium-bimodal-v2", 400, path=tmp_path / "own.hdf5", num_envs=2, progress=False
    )
    as_medium = build_replica(
        "hopper-medium-v2",
        400,
        path=tmp_path / "as_medium.hdf5",
        num_envs=2,
        progress=False,
        policy_dir=as_medium_dir,
    )
    with h5py.File(own) as a, h5py.File(as_medium) as b:
        for key in ("observations", "actions", "rewards", "terminals", "timeouts"):
            np.testing.assert_array_equal(a[key][:], b[key][:])
    metadata = read_d4rl_metadata(own)
    assert metadata["dataset_id"] == "hopper-medium-bimodal-v2"
    assert metadata["policy_sha256"] == json.loads(card.read_text())["sha256"]
    shipped_medium = build_replica(
        "hopper-medium-v2", 400, path=tmp_path / "medium.hdf5", num_envs=2, progress=False
    )
    with h5py.File(own) as a, h5py.File(shipped_medium) as b:
        assert not np.array_equal(a["actions"][:], b["actions"][:])
