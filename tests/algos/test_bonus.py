"""The bonus's units, normalisation, schedule and the shuffled control, on fixed values."""

from __future__ import annotations

import pytest
import torch

from hybrid_rl.algos.bonus import (
    BonusScale,
    BonusSettings,
    RunningStd,
    ShuffledBonuses,
    parse_schedule,
    permute_rows,
)

GAMMA = 0.99
# Disagreements of the transitions collected so far, then of a fixed batch.
COLLECTED = torch.tensor([2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0])  # population std exactly 2
BATCH = torch.tensor([1.0, 3.0, 10.0])


def test_the_spec_bonus_is_lambda_times_the_disagreement():
    scale = BonusScale(BonusSettings(coeff=2.0), GAMMA)
    scale.observe(COLLECTED)
    torch.testing.assert_close(scale(BATCH, step=123), 2.0 * BATCH)


def test_per_step_units_multiply_by_one_minus_gamma():
    scale = BonusScale(BonusSettings(coeff=2.0, units="per_step"), GAMMA)
    torch.testing.assert_close(scale(BATCH, step=0), 2.0 * (1 - GAMMA) * BATCH)


def test_running_norm_divides_by_the_population_std_of_the_collected_disagreements():
    scale = BonusScale(BonusSettings(coeff=2.0, norm="running"), GAMMA)
    for value in COLLECTED:  # one at a time, as the collector observes them
        scale.observe(value.reshape(1))
    assert scale.running.std == pytest.approx(2.0)  # Bessel's would be 2.138
    assert COLLECTED.std(correction=1).item() != pytest.approx(2.0)
    torch.testing.assert_close(scale(BATCH, step=0), 2.0 * BATCH / 2.0)
    both = BonusScale(BonusSettings(coeff=2.0, norm="running", units="per_step"), GAMMA)
    both.observe(COLLECTED)
    torch.testing.assert_close(both(BATCH, step=0), 2.0 * (1 - GAMMA) * BATCH / 2.0)


def test_running_norm_gives_no_bonus_before_two_values():
    scale = BonusScale(BonusSettings(norm="running"), GAMMA)
    assert torch.equal(scale(BATCH, 0), torch.zeros(3))
    scale.observe(torch.tensor([3.0]))
    assert torch.equal(scale(BATCH, 0), torch.zeros(3))


def test_running_std_is_the_same_in_any_split_and_survives_a_checkpoint():
    whole, parts = RunningStd(), RunningStd()
    whole.update(COLLECTED)
    for chunk in COLLECTED.split(3):
        parts.update(chunk)
    assert (parts.count, parts.mean, parts.std) == pytest.approx((8, 5.0, 2.0))
    assert whole.std == pytest.approx(parts.std)
    restored = RunningStd()
    restored.load_state_dict(parts.state_dict())
    assert restored.std == parts.std


def test_linear_schedule_decays_lambda_to_zero_over_t_steps():
    scale = BonusScale(BonusSettings(coeff=4.0, schedule="linear:100"), GAMMA)
    values = [scale(torch.ones(1), step).item() for step in (0, 25, 100, 200)]
    assert values == pytest.approx([4.0, 3.0, 0.0, 0.0])
    assert parse_schedule("const") is None
    for bad in ("linear", "linear:0", "exp:10", "linear:-3"):
        with pytest.raises(ValueError, match="const or linear:T"):
            parse_schedule(bad)


def test_permuting_a_batch_keeps_its_multiset_and_loses_the_order():
    generator = torch.Generator().manual_seed(0)
    values = torch.arange(32.0)
    shuffled = permute_rows(values, generator)
    assert torch.equal(shuffled.sort().values, values)
    assert not torch.equal(shuffled, values)


def test_shuffled_bonuses_serve_exactly_the_multiset_collected_at_every_size():
    store = ShuffledBonuses(capacity=60, seed=3, device=torch.device("cpu"))
    collected = torch.rand(50, generator=torch.Generator().manual_seed(1))
    moved = 0
    for n, bonus in enumerate(collected, start=1):
        store.add(bonus.reshape(1))
        served = store.for_rows(torch.arange(n))
        torch.testing.assert_close(served.sort().values, collected[:n].sort().values)
        moved = int((served != collected[:n]).sum())
    assert moved > 40  # nearly every row is served another row's bonus
    restored = ShuffledBonuses(capacity=60, seed=99, device=torch.device("cpu"))
    restored.load_state_dict(store.state_dict())
    rows = torch.arange(50)
    assert torch.equal(restored.for_rows(rows), store.for_rows(rows))
    for value in (7.0, 8.0, 9.0):  # the same random stream continues after a checkpoint
        store.add(torch.tensor([value]))
        restored.add(torch.tensor([value]))
    assert torch.equal(restored.for_rows(torch.arange(53)), store.for_rows(torch.arange(53)))
