"""Medium-replay replicas on a tiny real SAC run: snapshots shipped to a temporary policy
folder, a replay buffer of a few thousand transitions built from them and checked against the
snapshots and the real env."""

from __future__ import annotations

import json
import math
import subprocess
from itertools import pairwise

import h5py
import numpy as np
import pytest
import torch
from cli_runner import run_hybrid_rl
from hypothesis import given
from hypothesis import strategies as st

from hybrid_rl.algos.networks import TanhGaussianActor
from hybrid_rl.behavior.policies import POLICY_DIR
from hybrid_rl.behavior.replay_set import (
    RANDOM_POLICY_STEP,
    ReplaySegment,
    ReplayShipConfig,
    load_replay_set,
    pick_snapshots,
    plan_segments,
    segment_rows,
    ship_replay_set,
)
from hybrid_rl.behavior.replica import (
    build_replica,
    built_from_shipped_policy,
    default_transitions,
    replica_path,
)
from hybrid_rl.behavior.replica_card import (
    replica_card_path,
    replica_record,
    verify_replica,
    write_replica_record,
)
from hybrid_rl.behavior.train_sac import BehaviorTrainConfig, train_behavior_policy
from hybrid_rl.data.hdf5_format import REQUIRED_KEYS, file_sha256
from hybrid_rl.data.loader import load_dataset
from hybrid_rl.data.transitions import split_trajectories
from hybrid_rl.envs import make_env

DATASET = "hopper-medium-replay-v2"
N_TRANSITIONS = 3_000
# Snapshots at 250, 500, ..., 1500; the first 500 steps are random actions.
TINY_RUN = {"total_steps": 1_500, "learning_starts": 500, "eval_every": 250}
SHIPPED_STEPS = [750, 1000, 1500]


def test_snapshots_are_evenly_spaced_and_end_at_the_medium_one():
    available = list(range(10_000, 160_001, 10_000))
    assert pick_snapshots(available, 150_000, 5, 5_000) == [
        30_000,
        60_000,
        90_000,
        120_000,
        150_000,
    ]
    assert pick_snapshots(available, 150_000, 15, 5_000) == available[:15]
    assert pick_snapshots(available, 40_000, 1, 5_000) == [40_000]


@pytest.mark.parametrize(
    ("up_to_step", "count", "message"),
    [
        (155_000, 5, "not a saved snapshot"),
        (150_000, 16, "between 1 and 15"),
        (150_000, 0, "between 1 and 15"),
        (10_000, 1, "random-action steps"),
    ],
)
def test_bad_snapshot_choices_name_the_valid_ones(up_to_step, count, message):
    available = list(range(10_000, 160_001, 10_000))
    learning_starts = 10_000 if up_to_step == 10_000 else 5_000
    with pytest.raises(ValueError, match=message):
        pick_snapshots(available, up_to_step, count, learning_starts)


def test_each_snapshot_stands_for_the_steps_nearest_to_it():
    segments = plan_segments([30_000, 60_000, 150_000], 5_000, 150_000)
    assert segments == [
        ReplaySegment(RANDOM_POLICY_STEP, 0, 5_000),
        ReplaySegment(30_000, 5_000, 45_000),
        ReplaySegment(60_000, 45_000, 105_000),
        ReplaySegment(150_000, 105_000, 150_000),
    ]


@given(
    lengths=st.lists(st.integers(1, 100_000), min_size=1, max_size=30),
    n_transitions=st.integers(1, 1_000_000),
)
def test_shares_sum_to_the_size_and_follow_the_training_steps(lengths, n_transitions):
    bounds = np.concatenate([[0], np.cumsum(lengths)])
    segments = [ReplaySegment(i, int(a), int(b)) for i, (a, b) in enumerate(pairwise(bounds))]
    rows = segment_rows(segments, n_transitions)
    assert sum(rows) == n_transitions
    total = sum(lengths)
    for share, length in zip(rows, lengths, strict=True):
        assert abs(share - length * n_transitions / total) < 1


def test_replay_sizes_are_d4rls():
    assert default_transitions("hopper-medium-replay-v2") == 402_000
    assert default_transitions("halfcheetah-medium-replay-v2") == 202_000
    assert default_transitions("hopper-medium-v2") == 1_000_000
    assert replica_path(DATASET).name == "hopper-medium-replay-v2-replica.hdf5"
    assert replica_card_path(DATASET) == POLICY_DIR / "hopper_medium_replay.json"


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    """A tiny SAC run on Hopper and its snapshot set in a temporary policy folder."""
    folder = tmp_path_factory.mktemp("replay")
    run = folder / "run"
    torch.set_num_threads(1)
    config = BehaviorTrainConfig(
        env_id="Hopper-v4", **TINY_RUN, eval_episodes=1, log_every=250, out_dir=str(run)
    )
    train_behavior_policy(config, progress=False)
    card = ship_replay_set(
        ReplayShipConfig(str(run), up_to_step=1_500, snapshots=3, policy_dir=str(folder / "pol"))
    )
    return folder, card


@pytest.fixture(scope="module")
def replay_file(shipped):
    folder, _ = shipped
    return build_replica(
        DATASET,
        N_TRANSITIONS,
        seed=0,
        path=folder / "replay.hdf5",
        num_envs=4,
        progress=False,
        policy_dir=folder / "pol",
    )


def test_card_records_the_shares_the_weights_and_how_it_differs(shipped):
    folder, card = shipped
    assert [s["policy_step"] for s in card["segments"]] == [0, *SHIPPED_STEPS]
    assert [(s["first_step"], s["end_step"]) for s in card["segments"]] == [
        (0, 500),
        (500, 875),
        (875, 1250),
        (1250, 1500),
    ]
    assert card["weights_bytes"] == (folder / "pol" / "hopper_medium_replay.pt").stat().st_size
    assert "switches at the midpoints" in " ".join(card["differences_from_a_replay_buffer"])
    assert card["ship_command"].endswith("--up-to-step 1500 --snapshots 3")
    assert json.loads((folder / "pol" / "hopper_medium_replay.json").read_text()) == card


def test_buffer_has_d4rls_layout_and_each_policy_its_share_in_order(replay_file):
    loaded = load_dataset(replay_file)
    assert loaded.provenance.source == "replica"
    assert loaded.provenance.dataset_id == DATASET
    with h5py.File(replay_file) as f:
        for key in (*REQUIRED_KEYS, "next_observations", "infos/qpos", "infos/qvel"):
            assert f[key].shape[0] == N_TRANSITIONS, key
        assert f["observations"].dtype == np.float32 and f["terminals"].dtype == bool
        policy_steps = f["infos/policy_step"][:]
    # Shares of 500, 375, 375 and 250 training steps, scaled to 3,000 rows, in training order.
    expected = np.repeat([0, *SHIPPED_STEPS], [1_000, 750, 750, 500])
    np.testing.assert_array_equal(policy_steps, expected)


def test_random_share_holds_uniform_actions(replay_file):
    with h5py.File(replay_file) as f:
        random_rows = f["infos/policy_step"][:] == RANDOM_POLICY_STEP
        actions = f["actions"][:][random_rows]
        log_probs = f["infos/action_log_probs"][:][random_rows]
    assert np.abs(actions).max() <= 1.0
    assert abs(actions.mean()) < 0.05
    assert abs(actions.var() - 1 / 3) < 0.03  # the variance of U(-1, 1)
    np.testing.assert_allclose(log_probs, -3 * math.log(2.0), rtol=1e-6)


def _log_prob(actor: TanhGaussianActor, obs: np.ndarray, actions: np.ndarray) -> np.ndarray:
    """log π(a|s) of stored actions under a tanh-squashed Gaussian actor, in float64."""
    with torch.no_grad():
        mean, log_std = actor.mean_and_log_std(torch.as_tensor(obs))
    a = torch.as_tensor(actions, dtype=torch.float64)
    pre_tanh = torch.atanh(a)
    normal = torch.distributions.Normal(mean.double(), log_std.double().exp())
    return (normal.log_prob(pre_tanh) - torch.log1p(-a * a)).sum(-1).numpy()


def test_each_share_is_sampled_from_its_own_snapshot(shipped, replay_file):
    folder, _ = shipped
    actors = {}
    for step in SHIPPED_STEPS:
        payload = torch.load(folder / "run" / "actors" / f"actor_step{step}.pt", weights_only=True)
        actors[step] = TanhGaussianActor(11, 3)
        actors[step].load_state_dict(payload["actor"])
    with h5py.File(replay_file) as f:
        policy_steps = f["infos/policy_step"][:]
        obs, actions = f["observations"][:], f["actions"][:]
        stored = f["infos/action_log_probs"][:]
    for step in SHIPPED_STEPS:
        # atanh of a float32 action near ±1 loses precision: compare away from the bounds.
        rows = (policy_steps == step) & (np.abs(actions) < 0.95).all(axis=1)
        assert rows.sum() > 100
        own = _log_prob(actors[step], obs[rows], actions[rows])
        np.testing.assert_allclose(own, stored[rows], atol=1e-4)
        for other in SHIPPED_STEPS:
            if other != step:
                assert _log_prob(actors[other], obs[rows], actions[rows]).mean() < own.mean()


def test_terminals_and_timeouts_replay_in_the_real_env(replay_file):
    with h5py.File(replay_file) as f:
        qpos, qvel = f["infos/qpos"][:], f["infos/qvel"][:]
        actions, next_obs = f["actions"][:], f["next_observations"][:]
        terminals, timeouts = f["terminals"][:], f["timeouts"][:]
        policy_steps = f["infos/policy_step"][:]
    env = make_env("Hopper-v4", seed=0)
    env.reset(seed=0)
    terminal_rows = np.flatnonzero(terminals)
    assert terminal_rows.size > 10
    for row in [*terminal_rows, *np.flatnonzero(~terminals)[::25]]:
        env.unwrapped.set_state(qpos[row], qvel[row])
        observed, _, terminated, _, _ = env.step(actions[row])
        assert terminated == terminals[row], f"row {row}"
        np.testing.assert_allclose(observed, next_obs[row], rtol=1e-5, atol=1e-5)
    # A timeout is an episode's 1,000th step or the end of a share (the episode was cut there);
    # every share but the last ends in a flag, so no trajectory spans two snapshots.
    share_ends = np.flatnonzero(np.diff(policy_steps))
    assert (terminals | timeouts)[share_ends].all()
    transitions = load_dataset(replay_file).transitions
    trajectories = split_trajectories(transitions)
    for start, end in zip(trajectories.starts, trajectories.ends, strict=True):
        assert len(np.unique(policy_steps[start:end])) == 1
        assert end - start <= 1_000
        if timeouts[end - 1]:
            assert end - 1 in share_ends or end - start == 1_000
        np.testing.assert_array_equal(
            transitions.next_observations[start : end - 1],
            transitions.observations[start + 1 : end],
        )


def test_same_seed_gives_the_same_file_and_another_seed_does_not(shipped, replay_file):
    folder, _ = shipped
    common = {"num_envs": 4, "progress": False, "policy_dir": folder / "pol"}
    again = build_replica(DATASET, N_TRANSITIONS, 0, path=folder / "again.hdf5", **common)
    other = build_replica(DATASET, N_TRANSITIONS, 1, path=folder / "other.hdf5", **common)
    assert file_sha256(again) == file_sha256(replay_file)
    with h5py.File(replay_file) as a, h5py.File(other) as b:
        assert not np.array_equal(a["observations"][:], b["observations"][:])


def test_card_records_the_build_and_verify_matches_it(shipped, replay_file):
    folder, _ = shipped
    card_path = folder / "pol" / "hopper_medium_replay.json"
    write_replica_record(card_path, replica_record(replay_file, DATASET))
    record = json.loads(card_path.read_text())["replica"]
    assert record["n_transitions"] == N_TRANSITIONS and record["summary"]["transitions"] == 3_000
    assert verify_replica(replay_file, record, 1e-6).matches
    # The set still loads: the record does not disturb the weights' checksum.
    assert sorted(load_replay_set("hopper", folder / "pol").actors) == SHIPPED_STEPS


def test_a_build_from_another_shipped_set_is_stale(shipped, replay_file):
    # `dataset card` rebuilds such a file before recording its summary in the new card.
    folder, _ = shipped
    assert built_from_shipped_policy(replay_file, DATASET, folder / "pol")
    ship_replay_set(
        ReplayShipConfig(
            str(folder / "run"), up_to_step=1_500, snapshots=2, policy_dir=str(folder / "pol2")
        )
    )
    assert not built_from_shipped_policy(replay_file, DATASET, folder / "pol2")


def test_a_random_replica_of_the_current_recipe_is_current(tmp_path):
    path = build_replica("hopper-random-v2", 200, path=tmp_path / "r.hdf5", progress=False)
    assert built_from_shipped_policy(path, "hopper-random-v2")


def test_damaged_weights_are_refused(shipped, tmp_path):
    folder, _ = shipped
    for suffix in (".pt", ".json"):
        name = f"hopper_medium_replay{suffix}"
        (tmp_path / name).write_bytes((folder / "pol" / name).read_bytes())
    damaged = tmp_path / "hopper_medium_replay.pt"
    data = bytearray(damaged.read_bytes())
    data[len(data) // 2] ^= 0xFF
    damaged.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="sha256"):
        load_replay_set("hopper", tmp_path)


def test_a_set_under_another_envs_name_is_refused(shipped, tmp_path):
    folder, _ = shipped
    for suffix in (".pt", ".json"):
        source = folder / "pol" / f"hopper_medium_replay{suffix}"
        (tmp_path / f"halfcheetah_medium_replay{suffix}").write_bytes(source.read_bytes())
    with pytest.raises(ValueError, match="snapshots of Hopper-v4, not of halfcheetah"):
        load_replay_set("halfcheetah", tmp_path)


def test_a_missing_set_says_how_to_ship_one(tmp_path):
    with pytest.raises(FileNotFoundError, match="hybrid-rl behavior ship-replay --run"):
        build_replica(DATASET, 100, path=tmp_path / "x.hdf5", policy_dir=tmp_path)


def ship_replay(*args: str) -> subprocess.CompletedProcess:
    return run_hybrid_rl("behavior", "ship-replay", *args)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--up-to-step", "1400"], "not a saved snapshot of the run; saved steps: 250, 500"),
        (["--up-to-step", "1500", "--snapshots", "5"], "between 1 and 4"),
        (["--up-to-step", "500"], "random-action steps"),
    ],
)
def test_ship_replay_refuses_bad_input_before_writing(shipped, args, message):
    folder, _ = shipped
    before = sorted(POLICY_DIR.iterdir())
    result = ship_replay("--run", str(folder / "run"), *args)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and message in result.stderr
    assert sorted(POLICY_DIR.iterdir()) == before


def test_ship_replay_from_a_folder_without_a_run_says_so(tmp_path):
    result = ship_replay("--run", str(tmp_path), "--up-to-step", "1000")
    assert result.returncode == 2 and "holds no behaviour-training run" in result.stderr
