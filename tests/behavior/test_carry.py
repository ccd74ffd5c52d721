"""A behaviour run carried to another folder (machine) without its replay buffer."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from hybrid_rl.behavior.carry import pack_carry, start_from_carry
from hybrid_rl.behavior.select import SelectionConfig, select_behavior_policy
from hybrid_rl.behavior.train_sac import BehaviorTrainConfig, train_behavior_policy


def leg(out_dir, total_steps, seed=0) -> BehaviorTrainConfig:
    # Random actions up to step 250: a carried leg refills 250 rows before it updates again.
    return BehaviorTrainConfig(
        env_id="Hopper-v4",
        total_steps=total_steps,
        seed=seed,
        learning_starts=250,
        eval_every=200,
        eval_episodes=2,
        log_every=200,
        resume_every=200,
        out_dir=str(out_dir),
    )


@pytest.fixture(scope="module")
def carried(tmp_path_factory):
    root = tmp_path_factory.mktemp("carry")
    train_behavior_policy(leg(root / "first", 400), progress=False)
    info = pack_carry(root / "first", root / "state.pt")
    return root, info


def test_the_carried_state_is_the_checkpoint_without_its_buffer(carried):
    root, info = carried
    assert info["step"] == 400 and info["buffer_rows_left"] == 400
    checkpoint = torch.load(root / "first" / "checkpoint.pt", weights_only=False)
    state = torch.load(root / "state.pt", weights_only=False)
    assert "buffer" not in state
    assert info["bytes"] < (root / "first" / "checkpoint.pt").stat().st_size
    for key, value in checkpoint["agent"]["actor"].items():
        assert torch.equal(state["agent"]["actor"][key], value)
    assert state["metrics"] == checkpoint["metrics"]


def test_a_carried_run_refills_its_buffer_then_trains_on_and_its_policy_card_says_so(carried):
    root, _ = carried
    second = root / "second"
    curve = train_behavior_policy(leg(second, 800), progress=False, carry=root / "state.pt")
    assert curve["steps"] == [200, 400, 600, 800]
    metrics = json.loads((second / "metrics.json").read_text())
    assert metrics["carried"] == [{"step": 400, "buffer_rows_left": 400}]
    assert metrics["status"] == "completed"

    def actor(folder, step):
        return torch.load(folder / "actors" / f"actor_step{step}.pt", weights_only=True)["actor"]

    first = torch.load(root / "first" / "checkpoint.pt", weights_only=False)["agent"]["actor"]
    # Steps 400-599 only refill the buffer (250 rows needed): no update changes the actor;
    # by step 800 the updates have resumed.
    assert all(torch.equal(actor(second, 600)[k], v) for k, v in first.items())
    assert any(not torch.equal(actor(second, 800)[k], v) for k, v in first.items())
    card = select_behavior_policy(
        SelectionConfig(
            run_dir=str(second),
            target=curve["stochastic"][-1],
            band=50.0,
            episodes=2,
            min_step=600,
            policy_dir=str(root / "policies"),
        )
    )
    assert card["carried"] == [{"step": 400, "buffer_rows_left": 400}]


def test_a_carry_is_refused_for_other_settings_or_a_folder_that_has_a_checkpoint(carried):
    root, _ = carried
    with pytest.raises(ValueError, match="other settings: seed 0 there, 1 asked"):
        start_from_carry(root / "state.pt", leg(root / "other_seed", 800, seed=1))
    with pytest.raises(ValueError, match="leaves nothing to train"):
        start_from_carry(root / "state.pt", leg(root / "too_short", 400))
    with pytest.raises(FileExistsError, match="already has a checkpoint"):
        start_from_carry(root / "state.pt", dataclasses.replace(leg(root / "first", 800)))
    assert not (root / "other_seed").exists() and not (root / "too_short").exists()


def test_a_folder_without_a_run_cannot_be_carried(tmp_path):
    with pytest.raises(FileNotFoundError, match="no behaviour run checkpoint"):
        pack_carry(tmp_path, tmp_path / "state.pt")
    assert not (tmp_path / "state.pt").exists()
