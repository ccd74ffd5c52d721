"""Seeds stacked in one process (`SeedGroup`) end as their separate runs do."""

from __future__ import annotations

import dataclasses
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from hybrid_rl.cli import main
from hybrid_rl.launch.phase1_grid import Phase1Grid
from hybrid_rl.train import SeedGroup, TrainConfig, train_offline

SEEDS = (0, 1, 2)


def seed_runs(dataset: Path, results: Path, **overrides) -> tuple[TrainConfig, ...]:
    # Random removal and reward noise: each seed trains on its own corrupted copy.
    settings = dict(
        dataset=str(dataset),
        removal="random",
        k_percent=30,
        reward_noise_std=0.1,
        total_steps=300,
        log_every=50,
        eval_every=150,
        eval_episodes=2,
        device="cpu",
        results_dir=str(results),
    )
    return tuple(TrainConfig(**{**settings, **overrides}, seed=seed) for seed in SEEDS)


def assert_same_curves(got: dict, expected: dict) -> None:
    assert got["status"] == expected["status"]
    assert got["train"].keys() == expected["train"].keys()
    for key, values in expected["train"].items():
        np.testing.assert_allclose(got["train"][key], values, rtol=1e-3, atol=1e-5, err_msg=key)
    assert got["eval"]["steps"] == expected["eval"]["steps"]
    # MuJoCo's contacts amplify the last bits of the actions: BC's parameters 1e-9 apart
    # (see LATE_MEAN_ABS) gave returns 1.75% apart after 300 updates; the parameters are
    # what the checkpoint comparisons pin down.
    for key in ("normalized_return_mean", "return_mean"):
        np.testing.assert_allclose(got["eval"][key], expected["eval"][key], rtol=5e-2)


def checkpoint_tensors(run: TrainConfig) -> dict[str, torch.Tensor]:
    """The agent's network tensors in the run's checkpoint, by "part.name"."""
    agent = torch.load(run.run_dir / "checkpoint.pt", weights_only=False)["agent"]
    return {
        f"{part}.{key}": value
        for part, state in agent.items()
        if isinstance(state, dict) and "state" not in state  # a module's, not an optimizer's
        for key, value in state.items()
        if isinstance(value, torch.Tensor)
    }


def assert_checkpoints_within(got: TrainConfig, expected: TrainConfig, mean_abs: float) -> None:
    """The same format, and every tensor within `mean_abs` of the other on average."""
    got_tensors, expected_tensors = checkpoint_tensors(got), checkpoint_tensors(expected)
    assert got_tensors.keys() == expected_tensors.keys()
    for name, value in expected_tensors.items():
        assert got_tensors[name].shape == value.shape
        assert (got_tensors[name] - value).abs().mean() < mean_abs, name


# How far a group's seeds may end from their separate runs, per network tensor on average.
# The stacked products (bmm over the seed axis, vmapped losses) sum in another order than a
# separate run's, and nothing else differs: the first update's gradients agree to a relative
# 5e-8 (3 seeds, Hopper batches), as those of a "group" of one seed do. Training amplifies
# that rounding, IQL most (likely, not measured: its expectile weight jumps between 0.7 and
# 0.3 when rounding flips the sign of a near-zero residual, and Adam scales rounding-sized
# gradients up to lr-sized steps). Measured
# on this test's data, IQL, 1 thread, the worst tensor of each seed: after 50 updates a
# 3-seed group is 1.1e-9 to 2.5e-9 from the separate runs, a group of one seed (the same
# reordering, nothing shared) 1.0e-9 to 2.0e-9, the separate run on 2 threads instead of 1
# 4.4e-10 to 8.7e-10; after 300 updates 3.6e-5 to 5.6e-4, 1.1e-4 to 1.5e-4 and 1.2e-5 to
# 1.5e-4 (on synthetic batches it grew a thousandfold from update 100 to 300): the drift of any
# reordering. BC and TD3+BC drift far less (2e-9 and 3e-8 over all parameters after 300
# updates on synthetic batches). Seeds differ by about 5e-2.
# Early, the bound catches what rounding cannot do (another seed's data or RNG stream, a
# wrong Adam step of lr = 3e-4 per update); late, it is set from the measured drift.
EARLY_UPDATES, EARLY_MEAN_ABS = 50, 1e-7  # 40x the measured
LATE_MEAN_ABS = 5e-3  # ~10x the largest measured after 300 updates


@pytest.mark.parametrize("algo", ["iql", "bc", "td3bc"])
def test_a_seed_group_starts_as_its_separate_runs_up_to_rounding(algo, hopper_file, tmp_path):
    settings = dict(algo=algo, total_steps=EARLY_UPDATES, log_every=50, eval_every=50)
    grouped = seed_runs(hopper_file, tmp_path / "grouped", **settings)
    separate = seed_runs(hopper_file, tmp_path / "separate", **settings)
    assert SeedGroup(grouped).execute(progress=False)["status"] == "completed"
    for group_run, own_run in zip(grouped, separate, strict=True):
        train_offline(own_run, progress=False)
        assert_checkpoints_within(group_run, own_run, EARLY_MEAN_ABS)


@pytest.mark.parametrize("algo", ["iql", "bc", "td3bc"])
def test_a_seed_group_ends_as_its_separate_runs(algo, hopper_file, tmp_path):
    grouped = seed_runs(hopper_file, tmp_path / "grouped", algo=algo)
    separate = seed_runs(hopper_file, tmp_path / "separate", algo=algo)
    assert SeedGroup(grouped).execute(progress=False)["status"] == "completed"
    for group_run, own_run in zip(grouped, separate, strict=True):
        expected = train_offline(own_run, progress=False)
        got = json.loads((group_run.run_dir / "metrics.json").read_text())
        assert_same_curves(got, expected)
        saved = json.loads((group_run.run_dir / "config.json").read_text())
        own = json.loads((own_run.run_dir / "config.json").read_text())
        assert saved["config"]["seed"] == own_run.seed
        assert saved["corruption"] == own["corruption"]
        assert saved["config"] == {**own["config"], "results_dir": str(tmp_path / "grouped")}
        assert_checkpoints_within(group_run, own_run, LATE_MEAN_ABS)


def test_a_finished_seed_is_skipped_and_the_others_train(hopper_file, tmp_path):
    runs = seed_runs(hopper_file, tmp_path, algo="bc", total_steps=100, eval_every=100)
    first = train_offline(runs[0], progress=False)
    stamp = (runs[0].run_dir / "checkpoint.pt").stat().st_mtime_ns
    SeedGroup(runs).execute(progress=False)
    assert (runs[0].run_dir / "checkpoint.pt").stat().st_mtime_ns == stamp
    assert json.loads((runs[0].run_dir / "metrics.json").read_text()) == first
    for run in runs[1:]:
        assert json.loads((run.run_dir / "metrics.json").read_text())["status"] == "completed"


def test_cql_runs_cannot_form_a_seed_group(hopper_file, tmp_path):
    with pytest.raises(ValueError, match="cql runs cannot share a process"):
        SeedGroup(seed_runs(hopper_file, tmp_path, algo="cql"))


def test_runs_differing_in_more_than_the_seed_cannot_form_a_group(hopper_file, tmp_path):
    runs = seed_runs(hopper_file, tmp_path, algo="iql")
    other = dataclasses.replace(runs[1], k_percent=60)
    with pytest.raises(ValueError, match="differ in their seed only"):
        SeedGroup((runs[0], other))


@pytest.mark.slow  # kill/resume: see README
def test_a_killed_seed_group_resumes_to_the_uninterrupted_result(hopper_file, tmp_path):
    # first checkpoint at step 300, 900 steps before the end: the kill lands mid-run
    settings = dict(algo="td3bc", total_steps=1_200, log_every=100, eval_every=300)
    killed = seed_runs(hopper_file, tmp_path / "killed", **settings)
    fields = [dataclasses.asdict(run) | {"agent": None} for run in killed]
    script = (
        "import torch\n"
        "torch.set_num_threads(1)\n"
        "from hybrid_rl.train import SeedGroup, TrainConfig\n"
        f"runs = tuple(TrainConfig(**s) for s in {fields!r})\n"
        "SeedGroup(runs).execute(progress=False)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script])
    # metrics.json follows each checkpoint.pt: wait for both, or a loaded machine can kill in
    # between (the partial metrics below would be missing, not wrong).
    written = [run.run_dir / name for run in killed for name in ("checkpoint.pt", "metrics.json")]
    deadline = time.monotonic() + 180
    while not all(path.exists() for path in written) and proc.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = [json.loads((run.run_dir / "metrics.json").read_text()) for run in killed]
    assert all(m["status"] == "running" for m in partial), "finished before the kill"

    SeedGroup(killed).execute(progress=False)
    clean = seed_runs(hopper_file, tmp_path / "clean", **settings)
    SeedGroup(clean).execute(progress=False)
    for resumed_run, clean_run in zip(killed, clean, strict=True):
        # The same operations in the same order: equal, not merely close.
        resumed = json.loads((resumed_run.run_dir / "metrics.json").read_text())
        expected = json.loads((clean_run.run_dir / "metrics.json").read_text())
        assert resumed == expected
        got, clean_tensors = checkpoint_tensors(resumed_run), checkpoint_tensors(clean_run)
        assert got.keys() == clean_tensors.keys()
        assert all(torch.equal(got[name], value) for name, value in clean_tensors.items())


def phase1(dataset: Path, results: Path, *flags: str) -> int:
    tiny = ["--env", str(dataset), "--algo", "bc", "--remove_top_k", "30", "--removal", "random"]
    tiny += ["--total_steps", "100", "--log_every", "50", "--eval_every", "100"]
    tiny += ["--eval_episodes", "1", "--device", "cpu", "--threads", "1", "--workers", "1"]
    plots = results.parent / "plots"
    return main(["phase1", *tiny, *flags, "--results_dir", str(results), "--plots_dir", str(plots)])


def test_a_grid_of_seed_groups_skips_the_seeds_already_finished(hopper_file, tmp_path, capsys):
    results = tmp_path / "results"
    assert phase1(hopper_file, results, "--seed", "0") == 0
    [first] = results.iterdir()
    stamp = (first / "checkpoint.pt").stat().st_mtime_ns

    assert phase1(hopper_file, results, "--seed", "0,1,2", "--seeds_per_process", "3") == 0
    assert (first / "checkpoint.pt").stat().st_mtime_ns == stamp
    folders = sorted(p.name for p in results.iterdir())
    assert folders == [first.name[:-1] + str(seed) for seed in SEEDS]
    for name in folders:
        saved = json.loads((results / name / "config.json").read_text())
        assert saved["config"]["seed"] == int(name[-1])
        assert json.loads((results / name / "metrics.json").read_text())["status"] == "completed"
    stamps = [(results / name / "checkpoint.pt").stat().st_mtime_ns for name in folders]
    # the grid's summary counts seeds, not groups
    assert "3 runs: 3 completed, 0 diverged, 0 failed, 0 skipped" in capsys.readouterr().out

    assert phase1(hopper_file, results, "--seed", "0,1,2", "--seeds_per_process", "3") == 0
    assert [(results / n / "checkpoint.pt").stat().st_mtime_ns for n in folders] == stamps
    assert "3 runs: 0 completed, 0 diverged, 0 failed, 3 skipped" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("flags", "line"),
    [
        (
            ["--seeds_per_process", "0"],
            "hybrid-rl phase1: --seeds_per_process 0 is invalid: seeds_per_process must be at "
            "least 1, got 0",
        ),
        (
            ["--algo", "cql,iql", "--seeds_per_process", "3"],
            "hybrid-rl phase1: --seeds_per_process 3, --algo cql,iql are invalid: "
            "seeds_per_process 3 stacks iql, bc and td3bc runs, not cql; run cql in a command "
            "of its own with seeds_per_process 1",
        ),
    ],
)
def test_bad_seed_groups_are_refused_before_any_run(flags, line, tmp_path, capsys):
    results = tmp_path / "r"
    argv = ["phase1", *flags, "--results_dir", str(results), "--plots_dir", str(tmp_path / "p")]
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert err.splitlines() == [line] and out == ""
    assert not results.exists()


def test_more_seeds_per_process_than_seeds_makes_one_smaller_group():
    grid = Phase1Grid(algos=("iql",), datasets=("hopper-medium-v2",), k_percents=(0,))
    grouped = dataclasses.replace(grid, seeds=(0, 1), seeds_per_process=3)
    [group] = grouped.run_specs(grouped.expand())
    assert isinstance(group, SeedGroup) and [run.seed for run in group.runs] == [0, 1]


def test_phase1_help_documents_seeds_per_process(capsys):
    with pytest.raises(SystemExit):
        main(["phase1", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "--seeds_per_process" in help_text
    assert "up to this many seeds of one condition trained in one process" in help_text
