"""`hybrid-rl phase1`: flags map onto the grid without repeating its defaults; a tiny real run
goes all the way to the report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hybrid_rl.behavior.replica import collect_transitions
from hybrid_rl.cli import build_parser, main
from hybrid_rl.cli.phase1 import phase1_grid_from_args
from hybrid_rl.data.hdf5_format import write_d4rl_hdf5
from hybrid_rl.launch.phase1_grid import Phase1Grid


def grid_for(*flags: str) -> Phase1Grid:
    return phase1_grid_from_args(build_parser().parse_args(["phase1", *flags]))


def test_no_flags_is_the_default_study():
    assert grid_for() == Phase1Grid()


def test_quick_is_20k_steps_and_seed_0():
    grid = grid_for("--quick")
    assert grid == Phase1Grid.quick()
    assert grid.total_steps == 20_000 and grid.seeds == (0,)
    assert grid.algos == Phase1Grid().algos and grid.datasets == Phase1Grid().datasets


def test_explicit_flags_override_quick():
    grid = grid_for("--quick", "--seed", "3", "--total_steps", "5000", "--results_dir", "r")
    assert (grid.seeds, grid.total_steps, grid.results_dir) == ((3,), 5_000, "r")


def test_list_flags_take_commas_repeats_and_spaces():
    grid = grid_for(
        "--algo",
        "cql,iql",
        "--algo",
        "bc",
        "--env",
        "hopper-medium-v2",
        "--remove_top_k",
        "0",
        "30,60",
        "--seed",
        "1,2",
        "--reward_noise",
        "0,0.1",
        "--removal",
        "top,random",
    )
    assert grid.algos == ("cql", "iql", "bc")
    assert grid.datasets == ("hopper-medium-v2",)
    assert grid.k_percents == (0.0, 30.0, 60.0)
    assert grid.seeds == (1, 2)
    assert grid.reward_noise_stds == (0.0, 0.1)
    assert grid.removals == ("top", "random")


def test_algo_all_means_every_algorithm():
    assert grid_for("--algo", "all").algos == ("cql", "iql", "bc", "td3bc")


def test_scalar_flags_reach_the_grid():
    grid = grid_for(
        "--total_steps",
        "1000",
        "--device",
        "cpu",
        "--source",
        "replica",
        "--plots_dir",
        "p",
        "--eval_every",
        "500",
        "--eval_episodes",
        "3",
        "--log_every",
        "250",
    )
    assert (grid.total_steps, grid.device, grid.source, grid.plots_dir) == (
        1000,
        "cpu",
        "replica",
        "p",
    )
    assert (grid.eval_every, grid.eval_episodes, grid.log_every) == (500, 3, 250)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--seed", "one"], "--seed takes int values"),
        (["--algo", "td3"], "unknown algorithm"),
        (["--total_steps", "1500"], "must be a multiple of log_every"),
        (["--workers", "0"], "--workers must be at least 1"),
    ],
)
def test_bad_values_exit_with_a_message_and_run_nothing(flags, message, tmp_path, capsys):
    code = main(
        ["phase1", *flags, "--results_dir", str(tmp_path / "r"), "--plots_dir", str(tmp_path / "p")]
    )
    assert code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "r").exists() and not (tmp_path / "p").exists()


@pytest.mark.parametrize(
    ("flags", "line"),
    [
        (
            ["--remove_top_k", "0,100"],
            "hybrid-rl phase1: --remove_top_k 0,100 is invalid: k_percent must be in [0, 100)",
        ),
        (
            ["--env", "no-such-env-v2"],
            "hybrid-rl phase1: --env no-such-env-v2 is invalid: unknown dataset 'no-such-env-v2'",
        ),
        (
            ["--reward_noise", "-1"],
            "hybrid-rl phase1: --reward_noise -1 is invalid: reward noise std must be finite "
            "and >= 0",
        ),
        (["--seed", "-1"], "hybrid-rl phase1: --seed -1 is invalid: seeds must be ≥ 0"),
        (["--removal", "worst"], "hybrid-rl phase1: --removal worst is invalid: unknown removal"),
        (["--eval_episodes", "0"], "hybrid-rl phase1: --eval_episodes 0 is invalid: eval_episodes"),
        (["--source", "ftp"], "hybrid-rl phase1: --source ftp is invalid: unknown dataset source"),
        (
            ["--env", "missing.hdf5"],
            "hybrid-rl phase1: --env missing.hdf5 is invalid: missing.hdf5",
        ),
        (["--threads", "0"], "hybrid-rl phase1: --threads must be at least 1"),
        (
            ["--attack", "obs,walls"],
            "hybrid-rl phase1: --attack obs,walls is invalid: unknown attack",
        ),
        (["--attack_rate", "0"], "hybrid-rl phase1: --attack_rate 0 is invalid: attack rate must"),
        (["--attack_scale", "-2"], "hybrid-rl phase1: --attack_scale -2 is invalid: attack scale"),
        (
            ["--attack", "obs", "--attack_mode", "adversarial"],
            "hybrid-rl phase1: --attack obs is invalid: the adversarial obs attack is not",
        ),
    ],
)
def test_a_bad_value_is_one_stderr_line_naming_its_flag_and_nothing_is_written(
    flags, line, tmp_path, capsys
):
    results, plots = tmp_path / "r", tmp_path / "p"
    code = main(["phase1", *flags, "--results_dir", str(results), "--plots_dir", str(plots)])
    out, err = capsys.readouterr()
    assert code == 2
    assert len(err.splitlines()) == 1 and err.startswith(line)
    assert out == ""
    assert not results.exists() and not plots.exists()


def test_any_dataset_id_passes_with_source_minari():
    grid = grid_for("--env", "mujoco/hopper/medium-v0", "--source", "minari")
    assert len(grid.validate()) == 18


def test_plot_only_writes_the_report_without_training(tmp_path):
    code = main(
        [
            "phase1",
            "--plot_only",
            "--results_dir",
            str(tmp_path / "r"),
            "--plots_dir",
            str(tmp_path / "p"),
        ]
    )
    assert code == 0
    assert "No run folder was found" in (tmp_path / "p" / "report.md").read_text()
    assert not (tmp_path / "r").exists()


def test_a_tiny_grid_runs_then_plots_and_reports(tmp_path):
    dataset = tmp_path / "hopper-cli.hdf5"
    arrays = collect_transitions("Hopper-v4", None, 1_000, seed=0, num_envs=4, progress=False)
    write_d4rl_hdf5(dataset, arrays, {"source": "test", "env_id": "Hopper-v4"})
    results, plots = tmp_path / "results", tmp_path / "plots"
    code = main(
        [
            "phase1",
            "--env",
            str(dataset),
            "--algo",
            "bc",
            "--remove_top_k",
            "0,30",
            "--seed",
            "0",
            "--total_steps",
            "100",
            "--log_every",
            "50",
            "--eval_every",
            "100",
            "--eval_episodes",
            "1",
            "--device",
            "cpu",
            "--threads",
            "1",
            "--results_dir",
            str(results),
            "--plots_dir",
            str(plots),
        ]
    )
    assert code == 0
    names = sorted(p.name for p in results.iterdir())
    assert names == ["bc_hopper-cli_k0_noise0_s0", "bc_hopper-cli_k30_noise0_s0"]
    assert all(
        json.loads((results / n / "metrics.json").read_text())["status"] == "completed"
        for n in names
    )
    report = (plots / "report.md").read_text()
    assert "| hopper-cli | hdf5-file | BC | top | 30 |" in report
    assert Path(plots / "learning_curves_hopper-cli.png").stat().st_size > 0


def test_a_riql_attack_is_its_own_run_and_condition(tmp_path):
    dataset = tmp_path / "hopper-cli.hdf5"
    arrays = collect_transitions("Hopper-v4", None, 1_000, seed=0, num_envs=4, progress=False)
    write_d4rl_hdf5(dataset, arrays, {"source": "test", "env_id": "Hopper-v4"})
    results, plots = tmp_path / "results", tmp_path / "plots"
    flags = ["--env", str(dataset), "--algo", "bc", "--remove_top_k", "0", "--seed", "0"]
    flags += ["--attack", "none,act", "--attack_rate", "0.5", "--total_steps", "100"]
    flags += ["--log_every", "50", "--eval_every", "100", "--eval_episodes", "1"]
    flags += ["--device", "cpu", "--threads", "1", "--workers", "1"]
    assert main(["phase1", *flags, "--results_dir", str(results), "--plots_dir", str(plots)]) == 0
    names = sorted(p.name for p in results.iterdir())
    assert names == ["bc_hopper-cli_k0_noise0_act0.5x1_s0", "bc_hopper-cli_k0_noise0_s0"]
    saved = json.loads((results / names[0] / "config.json").read_text())
    attack = saved["corruption"]["attack"]
    assert (attack["target"], attack["rate"]) == ("act", 0.5)
    assert 0.4 * 1_000 < attack["attacked"] < 0.6 * 1_000
    report = (plots / "report.md").read_text()
    assert "random act corruption (50% of transitions, scale 1)" in report
