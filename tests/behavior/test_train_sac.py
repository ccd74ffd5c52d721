"""Behaviour-policy training: outputs, and the same seed gives the same policy."""

from __future__ import annotations

import json

import pytest
import torch

from hybrid_rl.behavior.select import SelectionConfig, select_behavior_policy
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


def test_a_trained_run_ships_its_snapshot_nearest_the_target(tmp_path):
    curve = train_behavior_policy(tiny_config(tmp_path / "run"))
    target = curve["stochastic"][-1]
    card = select_behavior_policy(
        SelectionConfig(
            run_dir=str(tmp_path / "run"),
            target=target,
            band=50.0,
            episodes=2,
            policy_dir=str(tmp_path / "policies"),
        )
    )
    assert card["train_step"] in curve["steps"] and card["seed"] == 0
    shipped = torch.load(tmp_path / "policies" / "hopper_medium.pt", weights_only=True)
    assert (shipped["obs_dim"], shipped["act_dim"]) == (11, 3)
    assert json.loads((tmp_path / "policies" / "hopper_medium.json").read_text()) == card


def test_selection_from_a_folder_without_a_run_says_so(tmp_path):
    with pytest.raises(FileNotFoundError, match="holds no behaviour-training run"):
        select_behavior_policy(SelectionConfig(run_dir=str(tmp_path), target=40.0, band=5.0))


def test_shape_constraints_refuse_snapshots_whose_data_would_not_fit(tmp_path):
    curve = train_behavior_policy(tiny_config(tmp_path / "run"))
    wide = dict(run_dir=str(tmp_path / "run"), target=curve["stochastic"][-1], band=50.0)
    wide |= dict(episodes=3, policy_dir=str(tmp_path / "policies"))
    # A barely trained Hopper policy falls within tens of steps: no mean length of 400-520.
    with pytest.raises(RuntimeError, match=r"mean length in \[400, 520\]"):
        select_behavior_policy(SelectionConfig(**wide, length_range=(400, 520)))
    card = select_behavior_policy(
        SelectionConfig(**wide, length_range=(1, 1000), max_return_std=50)
    )
    assert card["constraints"] == (
        f"normalized mean {wide['target']} ± 50.0, std ≤ 50, mean length in [1, 1000]"
    )
    assert "--max-std 50 --length-range 1 1000" in card["select_command"]
