"""The exploration seam: each strategy's bonus at its point, and its state as one checkpoint
entry (read from the keys checkpoints had before the seam, too)."""

from __future__ import annotations

import torch

from hybrid_rl.algos.bonus import BonusScale, BonusSettings, ShuffledBonuses
from hybrid_rl.algos.explorers import CollectBonus, Explorer, ShuffledCollectBonus, UpdateBonus
from hybrid_rl.finetune import exploration_state

CPU = torch.device("cpu")


def scale(**settings) -> BonusScale:
    return BonusScale(BonusSettings(coeff=2.0, **settings), gamma=0.99)


def test_without_a_bonus_nothing_is_stored_served_or_added():
    explorer = Explorer()
    d = torch.tensor([0.5])
    stored, bonus = explorer.at_collection(d, 0)
    assert stored.item() == bonus.item() == 0.0
    rewards = torch.tensor([1.0, 2.0])
    assert explorer.at_sampling(torch.tensor([0, 1]), rewards) is rewards
    assert explorer.at_update(d, 0) is None and explorer.state_dict(final=False) == {}


def test_the_spec_bonus_is_stored_at_collection_and_the_update_bonus_added_at_update():
    d = torch.tensor([0.5])
    stored, bonus = CollectBonus(scale()).at_collection(d, 0)
    assert stored.item() == bonus.item() == 1.0  # λ·d
    update = UpdateBonus(scale(time="update"))
    stored, bonus = update.at_collection(d, 0)
    assert stored.item() == bonus.item() == 0.0
    torch.testing.assert_close(
        update.at_update(torch.tensor([0.5, 1.0]), 0), torch.tensor([1.0, 2.0])
    )


def test_the_shuffled_control_serves_collected_bonuses_to_other_rows_not_to_the_stored_reward():
    explorer = ShuffledCollectBonus(scale(shuffled=True), ShuffledBonuses(8, seed=0, device=CPU))
    for value in range(8):
        stored, bonus = explorer.at_collection(torch.tensor([float(value)]), value)
        assert stored.item() == 0.0 and bonus.item() == 2.0 * value
    served = explorer.at_sampling(torch.arange(8), torch.zeros(8))
    assert sorted(served.tolist()) == [2.0 * v for v in range(8)]
    assert served.tolist() != [2.0 * v for v in range(8)]


def test_an_explorer_state_is_one_entry_and_old_checkpoints_keys_still_load():
    def collected(explorer):
        for value in range(5):
            explorer.at_collection(torch.tensor([float(value)]), value)
        return explorer

    settings = {"shuffled": True, "norm": "running"}
    before = collected(ShuffledCollectBonus(scale(**settings), ShuffledBonuses(8, 1, CPU)))
    entry = before.state_dict(final=False)
    old_checkpoint = {"bonus_scale": entry["scale"], "shuffled_bonuses": entry["shuffled"]}
    for checkpoint in ({"exploration": entry}, old_checkpoint):
        after = ShuffledCollectBonus(scale(**settings), ShuffledBonuses(8, 1, CPU))
        after.load_state_dict(exploration_state(checkpoint))
        assert after.scale.running.state_dict() == before.scale.running.state_dict()
        rows = torch.arange(5)
        torch.testing.assert_close(
            after.at_sampling(rows, rows * 0.0), before.at_sampling(rows, rows * 0.0)
        )
    assert "shuffled" not in before.state_dict(final=True)  # a finished run is not resumed
