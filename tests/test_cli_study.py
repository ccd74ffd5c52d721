"""`hybrid-rl study`: the flags map onto `Study.create`, and a tiny real study runs Phase I and
Phase II end to end into one report with both sections."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from hybrid_rl.behavior.replica import collect_transitions
from hybrid_rl.cli import build_parser, main
from hybrid_rl.cli.study import study_from_args
from hybrid_rl.data.hdf5_format import write_d4rl_hdf5
from hybrid_rl.launch.study import Study


def study_for(*flags: str) -> Study:
    return study_from_args(build_parser().parse_args(["study", *flags]))


def test_no_flags_and_quick_are_the_dataclass_studies():
    assert study_for() == Study.create()
    assert study_for("--quick") == Study.create(quick=True)


def test_flags_reach_both_grids():
    study = study_for(
        "--quick",
        "--algo",
        "cql",
        "--env",
        "hopper-medium-v2",
        "--remove_top_k",
        "0,60",
        "--seed",
        "1",
        "--bonus_type",
        "ensemble",
        "--phase1_steps",
        "4000",
        "--online_steps",
        "2000",
        "--n_ensemble",
        "4",
        "--bonus_coeff",
        "2",
        "--online_ratio",
        "0.75",
        "--eval_episodes",
        "2",
        "--device",
        "cpu",
        "--source",
        "replica",
        "--results_dir",
        "r1",
        "--phase2_results_dir",
        "r2",
        "--plots_dir",
        "p",
    )
    p1, p2 = study.phase1, study.phase2
    for grid in (p1, p2):
        assert (grid.algos, grid.datasets, grid.k_percents, grid.seeds) == (
            ("cql",),
            ("hopper-medium-v2",),
            (0.0, 60.0),
            (1,),
        )
        assert (grid.eval_episodes, grid.device) == (2, "cpu")
    assert (p1.total_steps, p1.source, p1.results_dir) == (4_000, "replica", "r1")
    assert (p2.online_steps, p2.bonus_types, p2.n_ensemble, p2.bonus_coeff) == (
        2_000,
        ("ensemble",),
        4,
        2.0,
    )
    assert (p2.online_ratio, p2.results_dir, p2.phase1_results_dir) == (0.75, "r2", "r1")
    assert study.plots_dir == "p"


@pytest.mark.parametrize("flag", ["--seeds", "--seeds_per", "--phase2_res"])
def test_a_flag_is_never_matched_by_an_abbreviation(flag, tmp_path, capsys):
    # argparse's prefix matching once made `--seeds 3` mean `--seeds_per_process 3`.
    code = _exit_code(["study", flag, "3", "--plan", "--results_dir", str(tmp_path / "r")])
    assert code == 2
    assert f"unrecognized arguments: {flag} 3" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def _exit_code(argv: list[str]) -> int:
    """main's return code, or the code argparse exits with."""
    try:
        return main(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)


def test_an_algo_phase2_cannot_fine_tune_is_refused_before_anything_runs(tmp_path, capsys):
    code = main(
        [
            "study",
            "--algo",
            "bc",
            "--plots_dir",
            str(tmp_path / "p"),
            "--results_dir",
            str(tmp_path / "r"),
        ]
    )
    assert code == 2
    assert "Phase II fine-tunes cql and iql" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("flags", "line"),
    [
        (["--remove_top_k", "100"], "hybrid-rl study: --remove_top_k 100 is invalid: k_percent"),
        (["--online_ratio", "2"], "hybrid-rl study: --online_ratio 2 is invalid: online_ratio"),
        (["--phase1_steps", "0"], "hybrid-rl study: --phase1_steps 0 is invalid: total_steps"),
        (["--online_steps", "1234"], "hybrid-rl study: --online_steps 1234 is invalid"),
        (["--env", "no-such-env-v2"], "hybrid-rl study: --env no-such-env-v2 is invalid"),
        (["--workers", "0"], "hybrid-rl study: --workers must be at least 1"),
        (
            ["--plan", "--plan_nodes", "4,0"],
            "hybrid-rl study: --plan_nodes must each be at least 1",
        ),
        (["--plan", "--plan_cores", "0"], "hybrid-rl study: --plan_cores must be at least 1"),
        (["--plan", "--env", "no-such-env-v2"], "hybrid-rl study: --env no-such-env-v2 is invalid"),
        (["--plan_nodes", "4"], "hybrid-rl study: --plan_nodes and --plan_cores only apply with"),
    ],
)
def test_a_bad_value_is_one_stderr_line_naming_its_flag_and_nothing_is_written(
    flags, line, tmp_path, capsys
):
    dirs = {"--results_dir": "r1", "--phase2_results_dir": "r2", "--plots_dir": "p"}
    code = main(["study", *flags, *[a for f, d in dirs.items() for a in (f, str(tmp_path / d))]])
    out, err = capsys.readouterr()
    assert code == 2
    assert len(err.splitlines()) == 1 and err.startswith(line)
    assert out == "" and not any(tmp_path.iterdir())


def test_plan_prints_the_full_study_and_writes_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    flags = ["--algo", "cql,iql", "--env", "halfcheetah-medium-v2,hopper-medium-v2"]
    arms = ["--arms", "spec:ensemble,spec:none"]
    cluster = ["--plan_nodes", "1,36", "--plan_cores", "2", "--workers", "2"]
    assert main(["study", "--plan", *flags, *arms, *cluster]) == 0
    out, err = capsys.readouterr()
    assert err == "" and not any(tmp_path.iterdir())
    lines = out.splitlines()
    assert lines[0] == "Plan: 36 Phase I, 72 Phase II runs; nothing is run or written."
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in lines if line[:2] == "| "]
    counts = {(row[0], row[1]): row[2] for row in rows if row[0].startswith("Phase")}
    assert counts == {
        ("Phase I", "CQL"): "18",
        ("Phase I", "IQL"): "18",
        ("Phase II", "CQL"): "36",
        ("Phase II", "IQL"): "36",
    }
    assert ["Phase I", "CQL", "18", "9,000,000 updates"] in [row[:4] for row in rows]
    assert ["Phase II", "IQL", "36", "9,000,000 online steps"] in [row[:4] for row in rows]
    where = {row[0]: row[1] for row in rows if "×" in row[0] or row[0].startswith("this")}
    assert where == {
        "this machine (2 workers)": "2",
        "1 node × 2 cores": "2",
        "36 nodes × 2 cores": "72",
    }


@pytest.fixture
def tiny_file(tmp_path) -> Path:
    path = tmp_path / "hopper-study.hdf5"
    arrays = collect_transitions("Hopper-v4", None, 2_000, seed=0, num_envs=4, progress=False)
    write_d4rl_hdf5(path, arrays, {"source": "test", "env_id": "Hopper-v4"})
    return path


def test_a_tiny_study_runs_both_phases_into_one_report(tiny_file, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    flags = [
        "study",
        "--quick",
        "--env",
        str(tiny_file),
        "--remove_top_k",
        "0,30",
        "--phase1_steps",
        "200",
        "--online_steps",
        "300",
        "--eval_episodes",
        "2",
        "--device",
        "cpu",
        "--workers",
        "1",
        "--threads",
        "1",
    ]
    assert main(flags) == 0
    out, err = capsys.readouterr()
    # Three arms from each checkpoint: the spec with and without its bonus, and the preset.
    assert "study: 2 Phase I + 6 Phase II runs on 1 worker; estimated wall time" in err
    assert "Phase I: 2 IQL runs × 200 updates" in err
    assert "8 runs: 8 completed, 0 diverged, 0 failed, 0 skipped" in out

    phase1 = sorted(p.name for p in (tmp_path / "results/quick").iterdir())
    assert phase1 == ["iql_hopper-study_k0_noise0_s0", "iql_hopper-study_k30_noise0_s0"]
    phase2 = sorted(p.name for p in (tmp_path / "results_phase2/quick").iterdir())
    assert len(phase2) == 6
    assert "iql_hopper-study_k30_noise0_ensemble_enoto_s0" in " ".join(phase2)
    for name in phase2:
        metrics = json.loads(
            (tmp_path / "results_phase2/quick" / name / "metrics.json").read_text()
        )
        assert metrics["status"] == "completed" and metrics["eval"]["steps"] == [0, 300]

    report_path = tmp_path / "plots_study/quick/report.md"
    report = report_path.read_text()
    assert report.startswith("# Study: IQL on hopper-study")
    assert "\n## Phase I results\n" in report and "\n## Phase II results\n" in report
    assert report.index("## Phase I results") < report.index("## Phase II results")
    assert "| hopper-study | hdf5-file | IQL | top | 30 |" in report  # Phase I table
    assert "| hopper-study | hdf5-file | IQL | 30 | none (as specified) |" in report
    assert "| hopper-study | hdf5-file | IQL | 30 | ensemble (enoto preset) |" in report
    assert "ensemble (as specified), none (as specified), ensemble (enoto preset)" in report
    # Each arm's step-0 score and dip, and that one seed gives no spread.
    assert "as step-0 score → dip (lowest evaluation minus step-0) → final" in report
    assert "one seed per arm, so no spread across seeds can be given" in report
    assert "of 300 gradient steps" not in report and "of 200 gradient steps" in report
    links = re.findall(r"\]\(([^)]+)\)", report)
    assert {link.split("/")[0] for link in links} == {"phase1", "phase2"}
    for link in links:
        assert (report_path.parent / link).stat().st_size > 0
    # report.html beside it: every figure embedded, the command that wrote it named
    html = (report_path.parent / "report.html").read_text()
    assert html.count('<img src="data:image/png;base64,') == len(links) // 2
    assert "<code>hybrid-rl study --quick" in html

    # Run again: everything is finished, so the estimate says so and nothing is retrained.
    assert main(flags) == 0
    out, err = capsys.readouterr()
    assert "runs: all finished already" in err
    assert "8 runs: 0 completed, 0 diverged, 0 failed, 8 skipped" in out
