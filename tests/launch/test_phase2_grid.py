"""The Phase II grid: size, order, defaults, arms, the quick variant, refused values."""

from __future__ import annotations

import dataclasses

import pytest

from hybrid_rl.finetune_config import FinetuneConfig
from hybrid_rl.launch.options import SettingError
from hybrid_rl.launch.phase1_grid import Phase1Grid
from hybrid_rl.launch.phase2_grid import Phase2Grid


def test_default_phase2_grid_is_the_72_run_study():
    configs = Phase2Grid().expand()
    assert len(configs) == 72 == len({c.run_name for c in configs})
    assert {c.algo for c in configs} == {"cql", "iql"}
    assert {c.dataset for c in configs} == {"halfcheetah-medium-v2", "hopper-medium-v2"}
    assert {c.k_percent for c in configs} == {0, 30, 60}
    assert {c.bonus_type for c in configs} == {"ensemble", "none"}
    assert {c.seed for c in configs} == {0, 1, 2}
    assert {c.online_steps for c in configs} == {250_000}
    defaults = FinetuneConfig()
    for name in (
        "n_ensemble",
        "bonus_coeff",
        "online_ratio",
        "eval_every",
        "eval_episodes",
        "log_every",
        "results_dir",
        "phase1_results_dir",
        "device",
    ):
        assert {getattr(c, name) for c in configs} == {getattr(defaults, name)}


def test_phase2_runs_both_bonus_types_of_a_cell_and_seed_back_to_back_seed_0_first():
    configs = Phase2Grid().expand()
    seeds = [c.seed for c in configs]
    assert seeds == sorted(seeds)
    for first, second in zip(configs[::2], configs[1::2], strict=True):
        assert (first.bonus_type, second.bonus_type) == ("ensemble", "none")
        assert first.phase1_train_config().run_dir == second.phase1_train_config().run_dir
    cells = {(c.algo, c.dataset, c.k_percent) for c in configs}
    assert {(c.algo, c.dataset, c.k_percent) for c in configs[:24]} == cells
    assert {c.seed for c in configs[:24]} == {0}


def test_phase2_quick_is_5k_online_steps_seed_0_reading_the_quick_phase1_runs():
    grid = Phase2Grid.quick()
    configs = grid.expand()
    assert len(configs) == 24
    assert {c.online_steps for c in configs} == {5_000} and {c.seed for c in configs} == {0}
    assert {c.eval_every for c in configs} == {1_000}
    assert grid.results_dir == "results_phase2/quick" and grid.plots_dir == "plots_phase2/quick"
    assert grid.phase1_results_dir == Phase1Grid.quick().results_dir == "results/quick"
    assert {str(c.phase1_train_config().run_dir.parent) for c in configs} == {"results/quick"}
    custom = Phase2Grid.quick(
        phase1_results_dir="elsewhere", bonus_coeff=0.5, n_ensemble=5, online_ratio=0.25
    )
    [config, *_] = custom.expand()
    assert (
        config.phase1_results_dir,
        config.bonus_coeff,
        config.n_ensemble,
        config.online_ratio,
    ) == ("elsewhere", 0.5, 5, 0.25)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"algos": ("bc",)}, "Phase II fine-tunes cql and iql"),
        ({"bonus_types": ("count",)}, "unknown bonus type"),
        ({"k_percents": ()}, "at least one value in k_percents"),
    ],
)
def test_bad_phase2_grids_are_refused_with_the_reason(overrides, message):
    with pytest.raises(ValueError, match=message):
        Phase2Grid(**overrides)


def test_phase2_arms_are_presets_with_bonus_types_and_default_to_the_spec():
    default = Phase2Grid().expand()
    assert {c.variant for c in default} == {""}  # the spec, named as before
    grid = Phase2Grid(
        algos=("iql",),
        datasets=("hopper-medium-v2",),
        k_percents=(30.0,),
        seeds=(0,),
        phase2_presets=("spec", "enoto"),
        bonus_types=("ensemble", "none", "shuffled"),
    )
    configs = grid.expand()
    assert [(c.variant, c.bonus_type) for c in configs] == [
        ("", "ensemble"),
        ("", "none"),
        ("", "shuffled"),
        ("enoto", "ensemble"),
        ("enoto", "none"),
        ("enoto", "shuffled"),
    ]
    assert len({c.run_name for c in configs}) == 6
    assert len({c.phase1_train_config().run_name for c in configs}) == 1
    with pytest.raises(SettingError) as error:  # enoto's update-time bonus cannot go with UCB
        dataclasses.replace(
            grid, arms=("enoto:ensemble", "spec:none"), options={"exploration": "ucb:8"}
        )
    assert "exploration" in error.value.fields
    arms = dataclasses.replace(grid, arms=("enoto:ensemble", "spec:none")).expand()
    assert [c.arm_label for c in arms] == ["ensemble (enoto preset)", "none (as specified)"]
