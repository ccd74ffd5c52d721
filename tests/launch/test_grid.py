"""The Phase I and Phase II grids: size, order, defaults, the quick variants."""

from __future__ import annotations

import dataclasses

import pytest

from hybrid_rl.finetune import FinetuneConfig
from hybrid_rl.launch.grid import Phase1Grid, Phase2Grid, SettingError
from hybrid_rl.train import TrainConfig


def test_default_grid_is_the_36_run_study():
    configs = Phase1Grid().expand()
    assert len(configs) == 36
    assert len({c.run_name for c in configs}) == 36
    assert {c.algo for c in configs} == {"cql", "iql"}
    assert {c.dataset for c in configs} == {"halfcheetah-medium-v2", "hopper-medium-v2"}
    assert {c.k_percent for c in configs} == {0, 30, 60}
    assert {c.seed for c in configs} == {0, 1, 2}
    assert {(c.removal, c.reward_noise_std) for c in configs} == {("top", 0.0)}
    assert {c.total_steps for c in configs} == {500_000}


def test_every_cell_gets_its_first_seed_before_any_cell_gets_a_second():
    configs = Phase1Grid().expand()
    seeds = [c.seed for c in configs]
    assert seeds == sorted(seeds)
    first = configs[:12]
    assert {(c.algo, c.dataset, c.k_percent) for c in first} == {
        (c.algo, c.dataset, c.k_percent) for c in configs
    }


def test_run_settings_default_to_train_configs():
    grid, train = Phase1Grid(), TrainConfig()
    for name in (
        "total_steps",
        "log_every",
        "eval_every",
        "eval_episodes",
        "device",
        "source",
        "results_dir",
        "tensorboard",
    ):
        assert getattr(grid, name) == getattr(train, name)
    config = Phase1Grid(eval_every=2_000, device="cpu", results_dir="out").expand()[0]
    assert (config.eval_every, config.device, config.results_dir) == (2_000, "cpu", "out")


def test_quick_is_20k_steps_seed_0_in_its_own_folders():
    grid = Phase1Grid.quick()
    configs = grid.expand()
    assert len(configs) == 12
    assert {c.total_steps for c in configs} == {20_000} and {c.seed for c in configs} == {0}
    assert grid.results_dir == "results/quick" and grid.plots_dir == "plots/quick"
    custom = Phase1Grid.quick(seeds=(3,), results_dir="elsewhere", algos=("bc",))
    assert (custom.seeds, custom.results_dir, custom.algos) == ((3,), "elsewhere", ("bc",))
    assert custom.total_steps == 20_000


def test_k0_is_one_clean_run_across_removal_modes_and_noise_levels_multiply():
    grid = Phase1Grid(
        algos=("iql",),
        datasets=("hopper-medium-v2",),
        k_percents=(0, 30),
        removals=("top", "random"),
        reward_noise_stds=(0.0, 0.1),
        seeds=(0,),
    )
    names = [c.run_name for c in grid.expand()]
    assert names == [
        "iql_hopper-medium-v2_k0_noise0_s0",
        "iql_hopper-medium-v2_k0_noise0.1_s0",
        "iql_hopper-medium-v2_k30_noise0_s0",
        "iql_hopper-medium-v2_k30_noise0.1_s0",
        "iql_hopper-medium-v2_randk30_noise0_s0",
        "iql_hopper-medium-v2_randk30_noise0.1_s0",
    ]


def test_the_iql_actor_schedule_follows_the_run_length():
    [config] = Phase1Grid(
        algos=("iql",),
        datasets=("hopper-medium-v2",),
        k_percents=(0,),
        seeds=(0,),
        total_steps=20_000,
    ).expand()
    assert dataclasses.asdict(config)["agent"]["max_steps"] == 20_000


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"algos": ("cql", "td3")}, "unknown algorithm"),
        ({"removals": ("worst",)}, "unknown removal mode"),
        ({"seeds": ()}, "at least one value in seeds"),
    ],
)
def test_bad_grids_are_refused_with_the_reason(overrides, message):
    with pytest.raises(ValueError, match=message):
        Phase1Grid(**overrides)


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


@pytest.mark.parametrize(
    ("grid", "overrides", "field", "message"),
    [
        (Phase1Grid, {"k_percents": (0, 100)}, "k_percents", r"must be in \[0, 100\)"),
        (Phase1Grid, {"reward_noise_stds": (float("nan"),)}, "reward_noise_stds", "finite"),
        (Phase1Grid, {"seeds": (0, -1)}, "seeds", "≥ 0"),
        (Phase1Grid, {"eval_every": 0}, "eval_every", "must be positive"),
        (Phase1Grid, {"source": "ftp"}, "source", "unknown dataset source"),
        (Phase2Grid, {"n_ensemble": 1}, "n_ensemble", r"must be in \[2, 10\]"),
        (Phase2Grid, {"online_ratio": -0.5}, "online_ratio", r"must be in \[0, 1\]"),
        (Phase2Grid, {"bonus_coeff": float("inf")}, "bonus_coeff", "finite"),
        (Phase2Grid, {"online_steps": 0}, "online_steps", "must be positive"),
    ],
)
def test_a_bad_value_is_refused_naming_its_field(grid, overrides, field, message):
    with pytest.raises(SettingError, match=message) as refused:
        grid(**overrides)
    assert refused.value.fields == (field,)


def test_validate_checks_the_datasets_and_device_here_and_how_the_steps_fit(tmp_path):
    with pytest.raises(SettingError, match="unknown dataset 'nope-v2'") as refused:
        Phase1Grid(datasets=("nope-v2",)).validate()
    assert refused.value.fields == ("datasets",)
    with pytest.raises(SettingError, match="no such dataset file"):
        Phase2Grid(datasets=(str(tmp_path / "gone.hdf5"),)).validate()
    with pytest.raises(SettingError, match="unknown device 'gpu'") as refused:
        Phase1Grid(device="gpu").validate()
    assert refused.value.fields == ("device",)
    with pytest.raises(SettingError, match="multiple of log_every") as refused:
        Phase1Grid(total_steps=1_500).validate()
    assert refused.value.fields == ("total_steps", "log_every", "eval_every")
    assert len(Phase1Grid(datasets=("any/minari-v0",), source="minari").validate()) == 18
    with pytest.raises(SettingError, match="unknown dataset 'any/minari-v0'"):
        Phase1Grid(datasets=("any/minari-v0",)).validate()  # Minari ids need source 'minari'
    assert len(Phase2Grid(datasets=("any/minari-v0",)).validate()) == 36  # its Phase I run says


def test_phase1_n_critics_names_its_runs_and_is_refused_for_bc():
    grid = Phase1Grid(algos=("cql", "iql"), datasets=("hopper-medium-v2",), n_critics=3)
    configs = grid.expand()
    assert all(c.run_name.endswith(f"_c3_s{c.seed}") for c in configs)
    assert all(c.agent.critic_members == 3 for c in configs)
    assert all("_c" not in c.run_name for c in Phase1Grid().expand())
    with pytest.raises(SettingError) as error:
        Phase1Grid(algos=("bc",), n_critics=3)
    assert error.value.fields == ("n_critics", "algos")
    with pytest.raises(SettingError) as error:
        Phase1Grid(n_critics=11)
    assert error.value.fields == ("n_critics",)


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
        dataclasses.replace(grid, arms=("enoto:ensemble", "spec:none"), exploration="ucb:8")
    assert "exploration" in error.value.fields
    arms = dataclasses.replace(grid, arms=("enoto:ensemble", "spec:none")).expand()
    assert [c.arm_label for c in arms] == ["ensemble (enoto preset)", "none (as specified)"]


def test_phase1_precision_reaches_the_agent_and_is_refused_where_it_does_nothing():
    configs = Phase1Grid(algos=("cql",), precision="bf16").expand()
    assert {(c.precision, c.agent.precision) for c in configs} == {("bf16", "bf16")}
    assert all(c.agent.precision == "fp32" for c in Phase1Grid(algos=("cql",)).expand())
    with pytest.raises(SettingError, match="applies to cql only, not to iql") as error:
        Phase1Grid(precision="bf16")  # the default algos: cql and iql
    assert error.value.fields == ("precision", "algos")
    with pytest.raises(SettingError, match="got 'fp16'") as error:
        Phase1Grid(algos=("cql",), precision="fp16")  # type: ignore[arg-type]
    assert error.value.fields == ("precision",)
    with pytest.raises(ValueError, match="applies to cql only, not to bc"):
        TrainConfig(algo="bc", precision="bf16")
