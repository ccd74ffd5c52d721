"""`hybrid-rl phase2` / run_phase2.py: flags map onto the grid without repeating its defaults;
quick Phase II reads the quick Phase I runs; runs without a Phase I run wait with the command
that creates it; a tiny real grid goes all the way to the report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from hybrid_rl.cli import build_parser, main
from hybrid_rl.cli.phase2 import phase1_command_for, phase2_grid_from_args
from hybrid_rl.launch.phase1_grid import Phase1Grid
from hybrid_rl.launch.phase2_grid import Phase2Grid

ROOT = Path(__file__).resolve().parents[1]
TINY_PHASE1 = ["--total_steps", "100", "--log_every", "50", "--eval_every", "100"]
TINY_PHASE2 = ["--total_steps", "300", "--log_every", "300", "--eval_every", "300"]
COMMON = ["--algo", "iql", "--eval_episodes", "1", "--device", "cpu", "--threads", "1"]


def grid_for(*flags: str) -> Phase2Grid:
    return phase2_grid_from_args(build_parser().parse_args(["phase2", *flags]))


def test_no_flags_is_the_72_run_study():
    grid = grid_for()
    assert grid == Phase2Grid()
    assert len(grid.expand()) == 72


def test_quick_reads_the_quick_phase1_runs_and_writes_its_own_folders():
    grid = grid_for("--quick")
    assert grid == Phase2Grid.quick()
    assert grid.phase1_results_dir == Phase1Grid.quick().results_dir == "results/quick"
    assert (grid.results_dir, grid.plots_dir) == ("results_phase2/quick", "plots_phase2/quick")
    assert grid.online_steps == 5_000 and grid.seeds == (0,)
    assert grid_for("--quick", "--phase1_results_dir", "mine").phase1_results_dir == "mine"


def test_flags_reach_the_grid():
    grid = grid_for(
        "--algo",
        "all",
        "--bonus_type",
        "both",
        "--env",
        "hopper-medium-v2",
        "--remove_top_k",
        "60",
        "--seed",
        "0,1",
        "--total_steps",
        "50000",
        "--n_ensemble",
        "5",
        "--bonus_coeff",
        "0.5",
        "--online_ratio",
        "0.25",
        "--device",
        "cpu",
        "--results_dir",
        "r2",
        "--phase1_results_dir",
        "r1",
        "--plots_dir",
        "p2",
        "--eval_every",
        "2000",
        "--eval_episodes",
        "3",
        "--log_every",
        "500",
    )
    assert (grid.algos, grid.bonus_types) == (("cql", "iql", "td3bc"), ("ensemble", "none"))
    assert (grid.datasets, grid.k_percents, grid.seeds) == (("hopper-medium-v2",), (60.0,), (0, 1))
    assert (grid.online_steps, grid.n_ensemble, grid.bonus_coeff, grid.online_ratio) == (
        50_000,
        5,
        0.5,
        0.25,
    )
    assert (grid.device, grid.results_dir, grid.phase1_results_dir, grid.plots_dir) == (
        "cpu",
        "r2",
        "r1",
        "p2",
    )
    assert (grid.eval_every, grid.eval_episodes, grid.log_every) == (2_000, 3, 500)
    assert grid_for("--bonus_type", "none").bonus_types == ("none",)


def test_log_every_defaults_to_a_divisor_of_the_eval_every_given():
    # log_every's own default (1000) once made `--eval_every 2500` exit 2.
    configs = grid_for("--eval_every", "2500", "--seed", "0").validate()
    assert {(c.eval_every, c.log_every) for c in configs} == {(2_500, 500)}
    assert {c.log_every for c in grid_for("--quick").validate()} == {1_000}
    given = grid_for("--eval_every", "2500", "--log_every", "1250").expand()
    assert {c.log_every for c in given} == {1_250}


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--algo", "bc"], "Phase II fine-tunes cql and iql"),
        (["--bonus_type", "count"], "unknown bonus type"),
        (["--n_ensemble", "11"], "n_ensemble must be in [2, 10]"),
        (["--online_ratio", "1.5"], "online_ratio must be in [0, 1]"),
        (["--workers", "0"], "--workers must be at least 1"),
    ],
)
def test_bad_values_exit_with_a_message_and_run_nothing(flags, message, tmp_path, capsys):
    code = main(
        ["phase2", *flags, "--results_dir", str(tmp_path / "r"), "--plots_dir", str(tmp_path / "p")]
    )
    assert code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "r").exists() and not (tmp_path / "p").exists()


@pytest.mark.parametrize(
    ("flags", "line"),
    [
        (
            ["--n_ensemble", "11"],
            "hybrid-rl phase2: --n_ensemble 11 is invalid: n_ensemble must be in [2, 10]",
        ),
        (
            ["--online_ratio", "2"],
            "hybrid-rl phase2: --online_ratio 2 is invalid: online_ratio must be in [0, 1]",
        ),
        (["--bonus_coeff", "-1"], "hybrid-rl phase2: --bonus_coeff -1 is invalid: bonus_coeff"),
        (["--bonus_type", "count"], "hybrid-rl phase2: --bonus_type count is invalid: unknown"),
        (["--remove_top_k", "100"], "hybrid-rl phase2: --remove_top_k 100 is invalid: k_percent"),
        (["--env", "no-such-env-v2"], "hybrid-rl phase2: --env no-such-env-v2 is invalid"),
        (
            ["--total_steps", "1500"],
            "hybrid-rl phase2: --total_steps 1500 is invalid: the step budget (1500) must be a "
            "multiple of log_every",
        ),
        (["--online_ratio", "half"], "hybrid-rl phase2: --online_ratio takes a number"),
    ],
)
def test_a_bad_value_is_one_stderr_line_naming_its_flag_and_nothing_is_written(
    flags, line, tmp_path, capsys
):
    results, plots = tmp_path / "r", tmp_path / "p"
    code = main(["phase2", *flags, "--results_dir", str(results), "--plots_dir", str(plots)])
    out, err = capsys.readouterr()
    assert code == 2
    assert len(err.splitlines()) == 1 and err.startswith(line)
    assert out == ""
    assert not results.exists() and not plots.exists()


def test_missing_phase1_runs_exit_1_with_the_command_that_creates_them(tmp_path, capsys):
    code = main(
        [
            "phase2",
            "--algo",
            "cql,iql",
            "--env",
            "hopper-medium-v2",
            "--remove_top_k",
            "0,60",
            "--seed",
            "1",
            "--phase1_results_dir",
            str(tmp_path / "none"),
            "--results_dir",
            str(tmp_path / "r2"),
            "--plots_dir",
            str(tmp_path / "p2"),
        ]
    )
    assert code == 1
    err = capsys.readouterr().err
    assert (
        f"python run_phase1.py --results_dir {tmp_path / 'none'} --algo cql,iql "
        "--env hopper-medium-v2 --remove_top_k 0,60 --seed 1"
    ) in err
    assert "all finished already" not in err and "estimated wall time" not in err
    assert not (tmp_path / "r2").exists()


def test_the_phase1_command_for_waiting_runs_matches_their_folder():
    quick = Phase2Grid.quick(algos=("iql",), datasets=("x.hdf5",), k_percents=(30, 0))
    assert phase1_command_for(quick.expand()) == (
        "python run_phase1.py --quick --algo iql --env x.hdf5 --remove_top_k 0,30 --seed 0"
    )
    full = Phase2Grid(
        algos=("cql",), datasets=("hopper-medium-v2",), k_percents=(60,), seeds=(2, 1)
    )
    assert phase1_command_for(full.expand()) == (
        "python run_phase1.py --algo cql --env hopper-medium-v2 --remove_top_k 60 --seed 1,2"
    )
    elsewhere = Phase2Grid(
        phase1_results_dir="mine", algos=("iql",), k_percents=(0,), seeds=(0,), datasets=("d",)
    )
    assert phase1_command_for(elsewhere.expand()).startswith(
        "python run_phase1.py --results_dir mine --algo iql"
    )


def test_runs_without_their_phase1_run_wait_and_the_command_is_printed(
    hopper_file, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    code = main(
        [
            "phase2",
            "--quick",
            "--env",
            str(hopper_file),
            "--remove_top_k",
            "0",
            *TINY_PHASE2,
            *COMMON,
        ]
    )
    assert code == 1
    err = capsys.readouterr().err
    assert (
        "2 of 2 runs wait for Phase I runs that are missing or unfinished in results/quick"
    ) in err
    assert (
        f"python run_phase1.py --quick --algo iql --env {hopper_file} --remove_top_k 0 --seed 0"
    ) in err
    assert not (tmp_path / "results_phase2").exists()
    assert "No run folder was found" in (tmp_path / "plots_phase2/quick/report.md").read_text()


def test_quick_phase2_fine_tunes_the_quick_phase1_runs_then_reports(
    hopper_file, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    for command, budget in (("phase1", TINY_PHASE1), ("phase2", TINY_PHASE2)):
        flags = ["--quick", "--env", str(hopper_file), "--remove_top_k", "0,30"]
        assert main([command, *flags, *budget, *COMMON]) == 0
    results = tmp_path / "results_phase2" / "quick"
    names = sorted(p.name for p in results.iterdir())
    assert names == [
        f"ft_iql_hopper-tiny_k{k}_noise0_{b}_s0" for k in (0, 30) for b in ("ensemble", "none")
    ]
    for name in names:
        saved = json.loads((results / name / "config.json").read_text())
        assert saved["phase1"]["checkpoint"].startswith("results/quick/iql_hopper-tiny_k")
        metrics = json.loads((results / name / "metrics.json").read_text())
        assert metrics["status"] == "completed" and metrics["eval"]["steps"] == [0, 300]
    report = (tmp_path / "plots_phase2/quick/report.md").read_text()
    assert "# Phase II results" in report
    assert "| hopper-tiny | hdf5-file | IQL | 30 | ensemble |" in report
    for kind in ("finetune_curves_iql", "steps_to_80pct", "disagreement"):
        for suffix in (".png", ".pdf"):
            assert (tmp_path / f"plots_phase2/quick/{kind}_hopper-tiny{suffix}").stat().st_size


def test_run_phase2_py_is_the_phase2_command():
    result = subprocess.run(
        [sys.executable, str(ROOT / "run_phase2.py"), "--help"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    for flag in (
        "--algo",
        "--env",
        "--remove_top_k",
        "--seed",
        "--total_steps",
        "--device",
        "--quick",
        "--plot_only",
        "--workers",
        "--n_ensemble",
        "--bonus_coeff",
        "--bonus_type",
        "--online_ratio",
        "--results_dir",
        "--phase1_results_dir",
        "--plots_dir",
    ):
        assert flag in result.stdout
    assert "hybrid-rl phase2" in result.stdout


def test_runs_whose_phase1_run_diverged_are_named_and_not_started(tmp_path, capsys):
    phase1, phase2 = tmp_path / "p1", tmp_path / "p2"
    grid = Phase2Grid(
        algos=("iql",),
        datasets=("hopper-medium-v2",),
        k_percents=(60,),
        seeds=(0,),
        phase1_results_dir=str(phase1),
        results_dir=str(phase2),
    )
    run_dir = grid.expand()[0].phase1_train_config().run_dir
    run_dir.mkdir(parents=True)
    (run_dir / "metrics.json").write_text(json.dumps({"status": "diverged"}))
    code = main(
        [
            "phase2",
            "--algo",
            "iql",
            "--env",
            "hopper-medium-v2",
            "--remove_top_k",
            "60",
            "--seed",
            "0",
            "--phase1_results_dir",
            str(phase1),
            "--results_dir",
            str(phase2),
            "--plots_dir",
            str(tmp_path / "plots"),
        ]
    )
    assert code == 1
    err = capsys.readouterr().err
    assert (
        "2 runs cannot start, their Phase I run diverged: "
        "ft_iql_hopper-medium-v2_k60_noise0_ensemble_s0, "
        "ft_iql_hopper-medium-v2_k60_noise0_none_s0"
    ) in err
    assert "wait for Phase I runs" not in err
    assert not phase2.exists()


def test_td3bc_added_as_one_file_and_one_registry_line_runs_both_phases(
    hopper_file, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    td3bc = [*COMMON[:1], "td3bc", *COMMON[2:]]
    for command, budget in (("phase1", TINY_PHASE1), ("phase2", TINY_PHASE2)):
        flags = ["--quick", "--env", str(hopper_file), "--remove_top_k", "0"]
        assert main([command, *flags, *budget, *td3bc]) == 0
    phase1 = json.loads(
        (tmp_path / "results/quick/td3bc_hopper-tiny_k0_noise0_s0/metrics.json").read_text()
    )
    assert phase1["status"] == "completed"
    # The delayed actor updates every other step, so each 50-step interval logs both losses.
    assert all(
        v is not None for v in phase1["train"]["actor_loss"] + phase1["train"]["critic_loss"]
    )
    for bonus in ("ensemble", "none"):
        run = tmp_path / f"results_phase2/quick/ft_td3bc_hopper-tiny_k0_noise0_{bonus}_s0"
        metrics = json.loads((run / "metrics.json").read_text())
        assert metrics["status"] == "completed" and metrics["eval"]["steps"] == [0, 300]
        saved = json.loads((run / "config.json").read_text())
        assert saved["agent_config_class"] == "TD3BCConfig"
        assert saved["online_agent_config"]["critic_members"] == 3


@pytest.mark.parametrize(
    ("flags", "line"),
    [
        (["--fresh_init", "zeros"], "hybrid-rl phase2: --fresh_init zeros is invalid: unknown"),
        (
            ["--fresh_init", "warmup:100", "--n_ensemble", "2"],
            "hybrid-rl phase2: --fresh_init warmup:100 is invalid: fresh_init warmup:100",
        ),
        (["--target_reduce", "max"], "hybrid-rl phase2: --target_reduce max is invalid"),
        (["--actor_reduce", "redq:9"], "hybrid-rl phase2: --actor_reduce redq:9 is invalid"),
        (["--bonus_time", "later"], "hybrid-rl phase2: --bonus_time later is invalid"),
        (["--bonus_units", "return"], "hybrid-rl phase2: --bonus_units return is invalid"),
        (["--bonus_norm", "batch"], "hybrid-rl phase2: --bonus_norm batch is invalid"),
        (["--bonus_schedule", "linear:0"], "hybrid-rl phase2: --bonus_schedule linear:0 is"),
        (["--exploration", "ucb:1"], "hybrid-rl phase2: --exploration ucb:1 is invalid"),
        (["--critic_optimizer", "adam"], "hybrid-rl phase2: --critic_optimizer adam is invalid"),
        (["--iql_actor_lr", "-1"], "hybrid-rl phase2: --iql_actor_lr -1 is invalid"),
        (["--phase2_preset", "best"], "hybrid-rl phase2: --phase2_preset best is invalid"),
        (["--arms", "spec:random"], "hybrid-rl phase2: --arms spec:random is invalid"),
        (
            ["--exploration", "ucb:4", "--bonus_type", "shuffled"],
            "hybrid-rl phase2: --exploration ucb:4, --bonus_type shuffled are invalid",
        ),
        (
            ["--exploration", "ucb:4", "--phase2_preset", "enoto"],
            "hybrid-rl phase2: --exploration ucb:4, --phase2_preset enoto are invalid",
        ),
    ],
)
def test_a_bad_phase2_option_is_one_line_naming_its_flag_before_any_run(
    flags, line, tmp_path, capsys
):
    results, plots = tmp_path / "r", tmp_path / "p"
    code = main(["phase2", *flags, "--results_dir", str(results), "--plots_dir", str(plots)])
    out, err = capsys.readouterr()
    assert code == 2
    assert len(err.splitlines()) == 1 and err.startswith(line), err
    assert out == ""
    assert not results.exists() and not plots.exists()


def test_presets_arms_and_option_flags_reach_the_runs():
    grid = grid_for(
        "--phase2_preset",
        "spec,enoto",
        "--bonus_type",
        "ensemble",
        "--algo",
        "iql",
        "--env",
        "hopper-medium-v2",
        "--remove_top_k",
        "0",
        "--seed",
        "0",
        "--target_reduce",
        "min_loaded",
    )
    spec, enoto = grid.expand()
    assert (spec.options.target_reduce, spec.options.fresh_init) == ("min_loaded", "random")
    assert (enoto.options.target_reduce, enoto.options.fresh_init) == ("min_loaded", "warmup:5000")
    assert enoto.options.bonus_time == "update" and enoto.options.keep_critic_optimizer
    arms = grid_for("--arms", "spec:ensemble,spec:none,enoto:none", "--critic_optimizer", "fresh")
    assert [(c.bonus_type, c.variant) for c in arms.expand()[:3]] == [
        ("ensemble", ""),
        ("none", ""),
        ("none", "warm5000-tredq2-amean-upd-ps-norm"),
    ]
