"""Behaviour-policy training: outputs, and the same seed gives the same policy."""

from __future__ import annotations

import json

import torch

from hybrid_rl.behavior.train_sac import BehaviorTrainConfig, train_behavior_policy


def tiny_config(out_dir, seed=0) -> BehaviorTrainConfig:
    return BehaviorTrainConfig(
        env_id="Hopper-v4",
        total_steps=400,
        seed=seed,
        learning_starts=200,
        eval_every=200,
        eval_episodes=2,
        log_every=200,
        resume_every=200,
        out_dir=str(out_dir),
    )


def test_training_writes_curve_snapshots_and_figure(tmp_path):
    curve = train_behavior_policy(tiny_config(tmp_path))
    assert curve["steps"] == [200, 400]
    assert json.loads((tmp_path / "curve.json").read_text()) == curve
    assert (tmp_path / "curve.png").stat().st_size > 0
    snapshot = torch.load(tmp_path / "actors" / "actor_step400.pt", weights_only=True)
    assert (snapshot["obs_dim"], snapshot["act_dim"], snapshot["train_step"]) == (11, 3, 400)


def test_same_seed_reproduces_the_policy_and_another_seed_does_not(tmp_path):
    weights = []
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        train_behavior_policy(tiny_config(tmp_path / name, seed))
        weights.append(
            torch.load(tmp_path / name / "actors" / "actor_step400.pt", weights_only=True)["actor"]
        )
    for key in weights[0]:
        torch.testing.assert_close(weights[0][key], weights[1][key], rtol=0, atol=0)
    assert any(not torch.equal(weights[0][k], weights[2][k]) for k in weights[0])
