"""A tiny Minari dataset built in the test from a real Hopper rollout, read back as transitions."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

minari = pytest.importorskip("minari")
from minari.data_collector import EpisodeBuffer  # noqa: E402

from hybrid_rl.data.hdf5_format import DatasetFormatError  # noqa: E402
from hybrid_rl.data.loader import load_dataset  # noqa: E402
from hybrid_rl.data.minari_source import load_minari  # noqa: E402
from hybrid_rl.data.transitions import split_trajectories  # noqa: E402
from hybrid_rl.envs import make_env  # noqa: E402

DATASET_ID = "test/hopper/tiny-v0"


def _create_dataset(dataset_id: str, buffers: list[EpisodeBuffer]) -> None:
    with warnings.catch_warnings():
        # Minari warns about every unset descriptive field (author, permalink, ...).
        warnings.simplefilter("ignore", UserWarning)
        minari.create_dataset_from_buffers(dataset_id, buffers, env="Hopper-v4")


def _episode(env, episode_id: int, seed: int, max_steps: int, cut_label: str) -> EpisodeBuffer:
    """One real episode with T+1 observations; a cap hit is labelled per `cut_label`."""
    obs, _ = env.reset(seed=seed)
    observations, actions, rewards, terminations, truncations = [obs], [], [], [], []
    for step in range(max_steps):
        action = env.action_space.sample()
        obs, reward, terminated, _, _ = env.step(action)
        observations.append(obs)
        actions.append(action)
        rewards.append(float(reward))
        terminations.append(bool(terminated))
        at_cap = step == max_steps - 1 and not terminated
        truncations.append(at_cap and cut_label == "truncated")
        if terminated:
            break
    return EpisodeBuffer(
        id=episode_id,
        observations=np.asarray(observations),
        actions=np.asarray(actions, dtype=np.float32),
        rewards=rewards,
        terminations=terminations,
        truncations=truncations,
    )


@pytest.fixture
def episodes(tmp_path, monkeypatch) -> list[EpisodeBuffer]:
    """Episodes ending by termination, by truncation, and cut with neither flag; on disk."""
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    env = make_env("Hopper-v4", seed=0)
    buffers = [
        _episode(env, 0, seed=1, max_steps=500, cut_label="truncated"),  # Hopper falls: terminated
        _episode(env, 1, seed=2, max_steps=5, cut_label="truncated"),
        _episode(env, 2, seed=3, max_steps=4, cut_label="neither"),
    ]
    assert buffers[0].terminations[-1] and buffers[1].truncations[-1]
    assert not (buffers[2].terminations[-1] or buffers[2].truncations[-1])
    _create_dataset(DATASET_ID, buffers)
    env.close()
    return buffers


def test_minari_episodes_become_d4rl_transitions(episodes):
    t = load_minari(DATASET_ID)

    np.testing.assert_allclose(
        t.observations, np.concatenate([e.observations[:-1] for e in episodes]), rtol=1e-6
    )
    np.testing.assert_allclose(
        t.next_observations, np.concatenate([e.observations[1:] for e in episodes]), rtol=1e-6
    )
    np.testing.assert_allclose(t.actions, np.concatenate([e.actions for e in episodes]))
    np.testing.assert_allclose(t.rewards, np.concatenate([e.rewards for e in episodes]), rtol=1e-6)
    np.testing.assert_array_equal(t.terminals, np.concatenate([e.terminations for e in episodes]))
    assert t.observations.dtype == t.next_observations.dtype == np.float32
    # Truncations become timeouts; the episode cut with neither flag is closed as a timeout.
    lengths = [len(e.rewards) for e in episodes]
    ends = np.cumsum(lengths) - 1
    np.testing.assert_array_equal(np.flatnonzero(t.terminals | t.timeouts), ends)
    assert t.timeouts[ends[1]] and t.timeouts[ends[2]] and not t.timeouts[ends[0]]


def test_minari_trajectories_match_episodes(episodes):
    trajectories = split_trajectories(load_minari(DATASET_ID))
    np.testing.assert_array_equal(trajectories.lengths, [len(e.rewards) for e in episodes])
    np.testing.assert_allclose(trajectories.returns, [sum(e.rewards) for e in episodes], rtol=1e-5)


def test_load_dataset_with_minari_source_records_provenance(episodes):
    loaded = load_dataset(DATASET_ID, source="minari")
    p = loaded.provenance
    assert (p.source, p.dataset_id, p.env_id) == ("minari", DATASET_ID, "Hopper-v4")
    assert p.path.endswith("tiny-v0/data")
    assert len(p.sha256) == 64
    assert len(loaded.transitions) == sum(len(e.rewards) for e in episodes)


def test_missing_minari_dataset_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "empty"))
    with pytest.raises(FileNotFoundError, match="minari download test/hopper/absent-v0"):
        load_minari("test/hopper/absent-v0")


def test_minari_nan_reward_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    env = make_env("Hopper-v4", seed=0)
    episode = _episode(env, 0, seed=4, max_steps=6, cut_label="truncated")
    episode.rewards[2] = float("nan")
    _create_dataset("test/hopper/nan-v0", [episode])
    env.close()
    with pytest.raises(DatasetFormatError, match="rewards has non-finite"):
        load_minari("test/hopper/nan-v0")
