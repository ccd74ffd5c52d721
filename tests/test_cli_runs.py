"""A run whose checkpoint was truncated (a full disk, a killed copy) is reported naming the
file and what to do; `hybrid-rl runs reset` starts that one run over."""

from __future__ import annotations

from pathlib import Path

import pytest

from hybrid_rl.behavior.replica import collect_transitions
from hybrid_rl.cli import main
from hybrid_rl.data.hdf5_format import write_d4rl_hdf5

TINY = ["--total_steps", "100", "--log_every", "50", "--eval_every", "50", "--eval_episodes", "1"]
COMMON = ["--algo", "bc", "--device", "cpu", "--workers", "1", "--threads", "1"]


@pytest.fixture(scope="module")
def hopper_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "hopper-runs.hdf5"
    arrays = collect_transitions("Hopper-v4", None, 1_000, seed=0, num_envs=4, progress=False)
    write_d4rl_hdf5(path, arrays, {"source": "test", "env_id": "Hopper-v4"})
    return path


def test_a_truncated_checkpoint_names_the_file_and_reset_starts_the_run_over(
    hopper_file, tmp_path, capsys
):
    flags = ["phase1", "--env", str(hopper_file), "--remove_top_k", "0", "--seed", "0"]
    flags += ["--results_dir", str(tmp_path / "r"), "--plots_dir", str(tmp_path / "p")]
    run = tmp_path / "r" / "bc_hopper-runs_k0_noise0_s0"
    # A run interrupted after its first checkpoint, whose checkpoint was then cut short.
    assert main([*flags, *TINY, *COMMON]) == 0
    metrics = (run / "metrics.json").read_text()
    (run / "metrics.json").write_text(metrics.replace('"completed"', '"running"', 1))
    data = (run / "checkpoint.pt").read_bytes()
    (run / "checkpoint.pt").write_bytes(data[: len(data) // 3])
    capsys.readouterr()

    assert main([*flags, *TINY, *COMMON]) == 1
    err = capsys.readouterr().err
    assert f"{run / 'checkpoint.pt'} is damaged" in err
    assert f"hybrid-rl runs reset {run}" in err

    assert main(["runs", "reset", str(run)]) == 0
    assert "removed config.json, metrics.json, checkpoint.pt" in capsys.readouterr().out
    assert main([*flags, *TINY, *COMMON]) == 0
    assert '"status": "completed"' in (run / "metrics.json").read_text()


def test_reset_of_a_missing_folder_is_a_usage_error(tmp_path, capsys):
    assert main(["runs", "reset", str(tmp_path / "nope")]) == 2
    assert "no such folder" in capsys.readouterr().err


def test_archive_copies_finished_runs_with_their_checkpoints_and_grids_skip_them_there(
    hopper_file, tmp_path, capsys
):
    flags = ["phase1", "--env", str(hopper_file), "--remove_top_k", "0", "30", "--seed", "0"]
    flags += ["--results_dir", str(tmp_path / "r"), "--plots_dir", str(tmp_path / "p")]
    assert main([*flags, *TINY, *COMMON]) == 0
    finished, unfinished = sorted((tmp_path / "r").iterdir())
    metrics = (unfinished / "metrics.json").read_text()
    (unfinished / "metrics.json").write_text(metrics.replace('"completed"', '"running"', 1))
    capsys.readouterr()

    kept = tmp_path / "kept"
    assert main(["runs", "archive", str(tmp_path / "r"), str(kept), "--checkpoints"]) == 0
    assert "1 runs archived, 0 already there" in capsys.readouterr().out
    assert sorted(p.name for p in kept.iterdir()) == [finished.name]  # not the running one
    for name in ("config.json", "metrics.json", "checkpoint.pt"):
        assert (kept / finished.name / name).read_bytes() == (finished / name).read_bytes()
    assert main(["runs", "archive", str(tmp_path / "r"), str(kept), "--checkpoints"]) == 0
    assert "0 runs archived, 1 already there" in capsys.readouterr().out

    # The archived run is finished where it now is: a grid pointed there skips it.
    moved = ["phase1", "--env", str(hopper_file), "--remove_top_k", "0", "--seed", "0"]
    moved += ["--results_dir", str(kept), "--plots_dir", str(tmp_path / "p2")]
    assert main([*moved, *TINY, *COMMON]) == 0
    assert "1 runs: 0 completed, 0 diverged, 0 failed, 1 skipped" in capsys.readouterr().out


def test_archive_of_a_missing_folder_is_a_usage_error(tmp_path, capsys):
    assert main(["runs", "archive", str(tmp_path / "nope"), str(tmp_path / "to")]) == 2
    assert "no such folder" in capsys.readouterr().err
