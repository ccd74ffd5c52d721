"""Expert and medium-expert replicas from a temporary policy folder: the shipped medium policy
and an "expert" shipped by `hybrid-rl behavior select --quality expert` from a tiny real SAC
run, rolled out into a few thousand transitions and checked against separately built medium
and expert replicas and the real env."""

from __future__ import annotations

import json
import shutil
import subprocess

import h5py
import numpy as np
import pytest
import torch
from cli_runner import run_hybrid_rl

from hybrid_rl.behavior.policies import POLICY_DIR, load_shipped_policy
from hybrid_rl.behavior.replica import (
    build_replica,
    built_from_shipped_policy,
    default_transitions,
    medium_expert_rows,
    replica_path,
)
from hybrid_rl.behavior.replica_card import (
    replica_card_path,
    replica_record,
    verify_replica,
    write_replica_record,
)
from hybrid_rl.behavior.train_sac import BehaviorTrainConfig, train_behavior_policy
from hybrid_rl.data.hdf5_format import REQUIRED_KEYS, file_sha256, read_d4rl_metadata
from hybrid_rl.data.loader import load_dataset
from hybrid_rl.data.transitions import split_trajectories
from hybrid_rl.envs import make_env

EXPERT, MEDIUM_EXPERT = "hopper-expert-v2", "hopper-medium-expert-v2"
N_PART = 1_500  # rows of each part of the medium-expert replica
BUILD = {"seed": 0, "num_envs": 4, "progress": False}


def behavior_select(*args: str) -> subprocess.CompletedProcess:
    return run_hybrid_rl("behavior", "select", *args)


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    """A policy folder holding the shipped hopper medium policy and an expert selected from a
    tiny SAC run; returns (folder, the select command's result, the package's files before)."""
    folder = tmp_path_factory.mktemp("expert")
    policies = folder / "pol"
    policies.mkdir()
    for suffix in (".pt", ".json"):
        shutil.copy(POLICY_DIR / f"hopper_medium{suffix}", policies)
    torch.set_num_threads(1)
    config = BehaviorTrainConfig(
        env_id="Hopper-v4",
        total_steps=400,
        learning_starts=200,
        eval_every=200,
        eval_episodes=2,
        log_every=200,
        out_dir=str(folder / "run"),
    )
    curve = train_behavior_policy(config, progress=False)
    package_before = sorted(POLICY_DIR.iterdir())
    result = behavior_select(
        "--run",
        str(folder / "run"),
        "--target",
        str(curve["stochastic"][-1]),
        "--band",
        "50",
        "--episodes",
        "2",
        "--quality",
        "expert",
        "--policy-dir",
        str(policies),
    )
    return policies, result, package_before


@pytest.fixture(scope="module")
def built(shipped):
    """The medium-expert replica and, with the same seed, the medium and expert replicas of
    its parts' sizes."""
    policies, _, _ = shipped
    folder = policies.parent
    return {
        quality: build_replica(
            f"hopper-{quality}-v2", n, path=folder / f"{quality}.hdf5", policy_dir=policies, **BUILD
        )
        for quality, n in (("medium-expert", 2 * N_PART), ("medium", N_PART), ("expert", N_PART))
    }


def test_sizes_and_cards_are_d4rls():
    assert default_transitions(EXPERT) == 1_000_000
    assert default_transitions(MEDIUM_EXPERT) == 2_000_000
    assert medium_expert_rows(2_000_000) == [1_000_000, 1_000_000]
    assert medium_expert_rows(5) == [3, 2]
    assert replica_path(MEDIUM_EXPERT).name == "hopper-medium-expert-v2-replica.hdf5"
    assert replica_card_path(EXPERT) == POLICY_DIR / "hopper_expert.json"
    assert replica_card_path(MEDIUM_EXPERT) == POLICY_DIR / "hopper_medium_expert.json"


def test_select_quality_expert_ships_the_expert_files(shipped):
    policies, result, package_before = shipped
    assert result.returncode == 0, result.stdout + result.stderr
    card = json.loads((policies / "hopper_expert.json").read_text())
    assert card["dataset"] == "hopper-expert-v2 (replica)"
    assert card["select_command"].endswith("--quality expert")
    assert sorted(p.name for p in policies.iterdir()) == [
        "hopper_expert.json",
        "hopper_expert.pt",
        "hopper_medium.json",
        "hopper_medium.pt",
    ]
    # The medium policy beside it and the package's own folder are left alone.
    medium_card = json.loads((POLICY_DIR / "hopper_medium.json").read_text())
    assert load_shipped_policy("hopper", "medium", policies)[1]["sha256"] == medium_card["sha256"]
    assert sorted(POLICY_DIR.iterdir()) == package_before
    assert load_shipped_policy("hopper", "expert", policies)[1] == card


def test_select_refuses_a_quality_it_cannot_ship(shipped):
    policies, _, _ = shipped
    args = ["--run", str(policies.parent / "run"), "--target", "10", "--band", "50"]
    result = behavior_select(*args, "--quality", "medium-expert", "--policy-dir", str(policies))
    assert result.returncode == 2 and "invalid choice: 'medium-expert'" in result.stderr


def test_expert_replica_samples_the_expert_policy(shipped, built):
    policies, _, _ = shipped
    loaded = load_dataset(built["expert"])
    assert (loaded.provenance.source, loaded.provenance.dataset_id) == ("replica", EXPERT)
    assert len(loaded.transitions) == N_PART
    actor, card = load_shipped_policy("hopper", "expert", policies)
    metadata = read_d4rl_metadata(built["expert"])
    assert metadata["policy_sha256"] == card["sha256"]
    assert metadata["policy_train_step"] == card["train_step"]
    with h5py.File(built["expert"]) as f:
        obs, actions = f["observations"][:], f["actions"][:]
        stored = f["infos/action_log_probs"][:]
    # atanh of a float32 action near ±1 loses precision: compare away from the bounds.
    rows = (np.abs(actions) < 0.95).all(axis=1)
    assert rows.sum() > 100
    with torch.no_grad():
        mean, log_std = actor.mean_and_log_std(torch.as_tensor(obs[rows]))
    a = torch.as_tensor(actions[rows], dtype=torch.float64)
    normal = torch.distributions.Normal(mean.double(), log_std.double().exp())
    log_probs = (normal.log_prob(torch.atanh(a)) - torch.log1p(-a * a)).sum(-1).numpy()
    np.testing.assert_allclose(log_probs, stored[rows], atol=1e-4)


def test_medium_expert_is_the_medium_replica_then_the_expert_replica(shipped, built):
    policies, _, _ = shipped
    with (
        h5py.File(built["medium-expert"]) as both,
        h5py.File(built["medium"]) as medium,
        h5py.File(built["expert"]) as expert,
    ):
        assert set(both) - {"metadata", "infos"} == set(medium) - {"metadata", "infos"}
        keys = [*REQUIRED_KEYS, "next_observations", "infos/qpos", "infos/qvel"]
        for key in [*keys, "infos/action_log_probs"]:
            assert both[key].shape[0] == 2 * N_PART, key
            assert both[key].dtype == medium[key].dtype, key
            expected = medium[key][:]
            if key == "timeouts":  # the medium part's cut last episode ends as a truncation
                expected[-1] |= ~medium["terminals"][-1]
                assert expected[-1]
            np.testing.assert_array_equal(both[key][:N_PART], expected, err_msg=key)
            np.testing.assert_array_equal(both[key][N_PART:], expert[key][:], err_msg=key)
        policy_steps = both["infos/policy_step"][:]
    steps = [
        load_shipped_policy("hopper", q, policies)[1]["train_step"] for q in ("medium", "expert")
    ]
    np.testing.assert_array_equal(policy_steps, np.repeat(steps, N_PART))
    metadata = read_d4rl_metadata(built["medium-expert"])
    shas = [load_shipped_policy("hopper", q, policies)[1]["sha256"] for q in ("medium", "expert")]
    assert metadata["policy_sha256"] == ",".join(shas)
    assert metadata["policy_steps"] == ",".join(map(str, steps))
    assert metadata["segment_rows"] == f"{N_PART},{N_PART}"
    assert metadata["n_transitions"] == 2 * N_PART
    assert load_dataset(built["medium-expert"]).provenance.dataset_id == MEDIUM_EXPERT


def test_terminals_and_timeouts_replay_in_the_real_env(built):
    path = built["medium-expert"]
    with h5py.File(path) as f:
        qpos, qvel = f["infos/qpos"][:], f["infos/qvel"][:]
        actions, next_obs = f["actions"][:], f["next_observations"][:]
        terminals, timeouts = f["terminals"][:], f["timeouts"][:]
    env = make_env("Hopper-v4", seed=0)
    env.reset(seed=0)
    terminal_rows = np.flatnonzero(terminals)
    assert (terminal_rows < N_PART).any() and (terminal_rows >= N_PART).any()
    for row in [*terminal_rows, *np.flatnonzero(~terminals)[::25]]:
        env.unwrapped.set_state(qpos[row], qvel[row])
        observed, _, terminated, _, _ = env.step(actions[row])
        assert terminated == terminals[row], f"row {row}"
        np.testing.assert_allclose(observed, next_obs[row], rtol=1e-5, atol=1e-5)
    # Inside a trajectory each next observation is the following row's observation: the
    # medium part's cut last episode ends at the junction, flagged as a timeout.
    transitions = load_dataset(path).transitions
    trajectories = split_trajectories(transitions)
    for start, end in zip(trajectories.starts, trajectories.ends, strict=True):
        rows = np.arange(start, end - 1)
        np.testing.assert_array_equal(
            transitions.next_observations[rows], transitions.observations[rows + 1]
        )
    junction = N_PART - 1
    assert timeouts[junction] and not terminals[junction]  # this build's part ends mid-episode
    assert junction + 1 in trajectories.starts


def test_same_seed_gives_the_same_file_and_another_seed_does_not(shipped, built):
    policies, _, _ = shipped
    folder = policies.parent
    for quality, n in (("expert", N_PART), ("medium-expert", 2 * N_PART)):
        dataset = f"hopper-{quality}-v2"
        common = {"num_envs": 4, "progress": False, "policy_dir": policies}
        again = build_replica(dataset, n, 0, path=folder / f"again-{quality}.hdf5", **common)
        other = build_replica(dataset, n, 1, path=folder / f"other-{quality}.hdf5", **common)
        assert file_sha256(again) == file_sha256(built[quality])
        with h5py.File(built[quality]) as a, h5py.File(other) as b:
            assert not np.array_equal(a["observations"][:], b["observations"][:])


def test_a_build_from_another_shipped_policy_is_stale(shipped, built):
    # `dataset card` rebuilds such a file before recording its summary in the card.
    policies, _, _ = shipped
    for quality in ("expert", "medium-expert"):
        assert built_from_shipped_policy(built[quality], f"hopper-{quality}-v2", policies)
    # Another expert (here the medium weights under the expert's name), or none at all.
    other = policies.parent / "other"
    other.mkdir()
    for suffix in (".pt", ".json"):
        shutil.copy(policies / f"hopper_medium{suffix}", other)
        shutil.copy(policies / f"hopper_medium{suffix}", other / f"hopper_expert{suffix}")
    none = policies.parent / "none"
    none.mkdir()
    for suffix in (".pt", ".json"):
        shutil.copy(policies / f"hopper_medium{suffix}", none)
    for folder in (other, none):
        for quality in ("expert", "medium-expert"):
            assert not built_from_shipped_policy(built[quality], f"hopper-{quality}-v2", folder)
    assert built_from_shipped_policy(built["medium"], "hopper-medium-v2", other)


@pytest.mark.parametrize("dataset", [EXPERT, MEDIUM_EXPERT])
def test_a_missing_expert_policy_is_one_line_naming_the_command_that_ships_it(
    shipped, dataset, tmp_path
):
    # The medium policy alone: a medium-expert build stops before its first rollout.
    policies, _, _ = shipped
    for suffix in (".pt", ".json"):
        shutil.copy(policies / f"hopper_medium{suffix}", tmp_path)
    target = tmp_path / "x.hdf5"
    with pytest.raises(FileNotFoundError) as error:
        build_replica(dataset, 100, path=target, policy_dir=tmp_path, progress=False)
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith("no shipped expert behaviour policy for 'hopper'")
    assert "`hybrid-rl behavior select --run" in message and "--quality expert`" in message
    assert not target.exists()


def test_cards_record_the_builds_and_verify_matches_them(shipped, built):
    policies, _, _ = shipped
    for quality in ("expert", "medium-expert"):
        dataset = f"hopper-{quality}-v2"
        card_path = policies / f"hopper_{quality.replace('-', '_')}.json"
        write_replica_record(card_path, replica_record(built[quality], dataset))
        record = json.loads(card_path.read_text())["replica"]
        assert record["dataset_id"] == dataset
        assert verify_replica(built[quality], record, 1e-6).matches
    medium_expert = json.loads((policies / "hopper_medium_expert.json").read_text())
    assert "hopper_medium.json and hopper_expert.json" in medium_expert["policy"]
    assert not (policies / "hopper_medium_expert.pt").exists()
    # The expert still loads and its builds stay current: the record leaves the sha256 alone.
    load_shipped_policy("hopper", "expert", policies)
    assert built_from_shipped_policy(built["medium-expert"], MEDIUM_EXPERT, policies)
