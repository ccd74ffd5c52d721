"""The behaviour policies shipped inside the package, and their cards."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch

from hybrid_rl.behavior.policies import POLICY_DIR, load_shipped_policy, policy_paths
from hybrid_rl.behavior.portable_actor import PortableActor
from hybrid_rl.behavior.replica import collect_transitions

SHIPPED = [("halfcheetah", "HalfCheetah-v4", 17, 6), ("hopper", "Hopper-v4", 11, 3)]


@pytest.mark.parametrize(("env_name", "env_id", "obs_dim", "act_dim"), SHIPPED)
def test_card_sha256_matches_the_shipped_weights(env_name, env_id, obs_dim, act_dim):
    weights, card_path = policy_paths(env_name)
    card = json.loads(card_path.read_text())
    assert hashlib.sha256(weights.read_bytes()).hexdigest() == card["sha256"]
    assert card["env_id"] == env_id
    assert card["train_command"].startswith(f"hybrid-rl behavior train --env {env_id}")
    assert card["stochastic_eval"]["episodes"] >= 30
    assert (
        abs(card["stochastic_eval"]["normalized_mean"] - card["target_normalized"])
        <= (card["target_band"])
    )
    actor, _ = load_shipped_policy(env_name)
    assert actor.deterministic(torch.zeros(4, obs_dim)).shape == (4, act_dim)


def test_damaged_weights_are_refused(tmp_path, monkeypatch):
    for suffix in (".pt", ".json"):
        source = POLICY_DIR / f"hopper_medium{suffix}"
        (tmp_path / source.name).write_bytes(source.read_bytes())
    damaged = tmp_path / "hopper_medium.pt"
    data = bytearray(damaged.read_bytes())
    data[len(data) // 2] ^= 0xFF
    damaged.write_bytes(bytes(data))
    monkeypatch.setattr("hybrid_rl.behavior.policies.POLICY_DIR", tmp_path)
    with pytest.raises(ValueError, match="sha256"):
        load_shipped_policy("hopper")


def test_medium_collection_samples_the_policy_with_finite_log_probs():
    actor, _ = load_shipped_policy("halfcheetah")
    portable = PortableActor.from_actor(actor)
    arrays = collect_transitions(
        "HalfCheetah-v4", portable, 400, seed=0, num_envs=2, progress=False
    )
    log_probs = arrays["infos/action_log_probs"]
    assert np.isfinite(log_probs).all()
    # Sampled (not deterministic) actions: the same state would not repeat the same action.
    with torch.no_grad():
        deterministic = actor.deterministic(torch.as_tensor(arrays["observations"][:50])).numpy()
    assert np.abs(arrays["actions"][:50] - deterministic).mean() > 1e-3
    assert np.abs(arrays["actions"]).max() < 1.0
