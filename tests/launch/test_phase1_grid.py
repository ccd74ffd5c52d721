"""The Phase I grid: size, order, defaults, the quick variant, refused values."""

from __future__ import annotations

import dataclasses

import pytest

from hybrid_rl.launch.options import SettingError
from hybrid_rl.launch.phase1_grid import Phase1Grid
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
        "eval_every",
        "eval_episodes",
        "device",
        "source",
        "results_dir",
        "tensorboard",
    ):
        assert getattr(grid, name) == getattr(train, name)
    # log_every is derived from eval_every unless given: the runs' default either way.
    assert grid.log_every is None and grid.logging_interval == train.log_every
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
