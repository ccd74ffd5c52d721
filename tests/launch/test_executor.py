"""Running a grid of real tiny runs: skips, recorded failures, conflicts, the process pool, and
Phase II runs waiting for their Phase I runs."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hybrid_rl.algos.iql import IQLConfig
from hybrid_rl.behavior.replica import collect_transitions
from hybrid_rl.data.hdf5_format import write_d4rl_hdf5
from hybrid_rl.finetune_config import FinetuneConfig
from hybrid_rl.launch.executor import (
    _StepCounter,
    default_workers,
    run_grid,
    threads_per_worker,
)
from hybrid_rl.runs.metrics import MetricsLog
from hybrid_rl.train import TrainConfig


@pytest.fixture(scope="module")
def hopper_file(tmp_path_factory) -> Path:
    """1,000 random-action Hopper transitions (short episodes, varied returns)."""
    path = tmp_path_factory.mktemp("data") / "hopper-tiny.hdf5"
    arrays = collect_transitions("Hopper-v4", None, 1_000, seed=0, num_envs=4, progress=False)
    write_d4rl_hdf5(path, arrays, {"source": "test", "env_id": "Hopper-v4"})
    return path


def tiny(dataset: Path | str, results: Path, **overrides) -> TrainConfig:
    settings = dict(
        algo="bc",
        dataset=str(dataset),
        total_steps=100,
        log_every=50,
        eval_every=100,
        eval_episodes=1,
        device="cpu",
        results_dir=str(results),
    )
    return TrainConfig(**{**settings, **overrides})


def status_of(config: TrainConfig | FinetuneConfig) -> str:
    return json.loads((config.run_dir / "metrics.json").read_text())["status"]


def test_finished_runs_are_skipped_without_touching_them(hopper_file, tmp_path):
    config = tiny(hopper_file, tmp_path)
    first = run_grid([config], threads=1, progress=False)
    assert [o.status for o in first.outcomes] == ["completed"]
    stamps = {p.name: p.stat().st_mtime_ns for p in config.run_dir.iterdir()}
    second = run_grid([config], threads=1, progress=False)
    assert [o.status for o in second.outcomes] == ["skipped"]
    assert {p.name: p.stat().st_mtime_ns for p in config.run_dir.iterdir()} == stamps
    assert second.line().startswith("1 runs: 0 completed, 0 diverged, 0 failed, 1 skipped")


def test_a_failing_run_is_recorded_and_the_grid_goes_on(hopper_file, tmp_path):
    missing = tmp_path / "no-such-dataset.hdf5"
    broken, good = tiny(missing, tmp_path), tiny(hopper_file, tmp_path, seed=1)
    summary = run_grid([broken, good], threads=1, progress=False)
    assert [(o.run_name, o.status) for o in summary.outcomes] == [
        (broken.run_name, "failed"),
        (good.run_name, "completed"),
    ]
    assert str(missing) in summary.outcomes[0].error
    saved = json.loads((broken.run_dir / "metrics.json").read_text())
    assert saved["status"] == "failed"
    assert saved["summary"]["error"].startswith("FileNotFoundError:")
    assert "Traceback" in saved["summary"]["traceback"]
    assert set(saved) == {"status", "train", "eval", "summary"}  # metrics.json's own layout
    assert summary.count("failed") == 1 and summary.count("completed") == 1
    assert "1 completed, 0 diverged, 1 failed, 0 skipped" in summary.line()


def test_a_diverging_run_counts_as_diverged_and_is_skipped_later(hopper_file, tmp_path):
    # Rewards of ~1e30 square past float32's range in CQL's critic loss at once.
    config = tiny(
        hopper_file,
        tmp_path,
        algo="cql",
        reward_noise_std=1e30,
        total_steps=10,
        log_every=10,
        eval_every=10,
    )
    assert [o.status for o in run_grid([config], threads=1, progress=False).outcomes] == [
        "diverged"
    ]
    assert [o.status for o in run_grid([config], threads=1, progress=False).outcomes] == ["skipped"]


def test_a_folder_holding_another_config_is_left_alone(hopper_file, tmp_path):
    short = tiny(hopper_file, tmp_path)
    run_grid([short], threads=1, progress=False)
    before = (short.run_dir / "metrics.json").read_text()
    longer = tiny(hopper_file, tmp_path, total_steps=200)
    [outcome] = run_grid([longer], threads=1, progress=False).outcomes
    assert outcome.status == "failed"
    assert "total_steps 100 there, 200 asked" in outcome.error
    assert (short.run_dir / "metrics.json").read_text() == before


@pytest.mark.slow  # kill/resume, process pool or torch.compile: see README
def test_a_run_compiled_or_not_is_the_same_run(hopper_file, tmp_path):
    # `compile` changes how IQL's update runs, not what it computes: a run finished eagerly
    # is not redone (nor refused) when asked for with compiling on.
    eager = tiny(hopper_file, tmp_path, algo="iql", agent=IQLConfig(max_steps=100))
    run_grid([eager], threads=1, progress=False)
    compiled = dataclasses.replace(eager, agent=IQLConfig(max_steps=100, compile=True))
    [outcome] = run_grid([compiled], threads=1, progress=False).outcomes
    assert outcome.status == "skipped"


@pytest.mark.slow  # kill/resume, process pool or torch.compile: see README
def test_a_pool_of_two_workers_runs_the_grid_under_a_bar_of_steps(hopper_file, tmp_path, capsys):
    configs = [tiny(hopper_file, tmp_path, seed=seed) for seed in (0, 1)]
    configs.append(tiny(tmp_path / "missing.hdf5", tmp_path, seed=2))
    summary = run_grid(configs, workers=2)
    assert [o.status for o in summary.outcomes] == ["completed", "completed", "failed"]
    assert [status_of(c) for c in configs] == ["completed", "completed", "failed"]
    # Runs in workers show no bars, so the grid's bar moves with their steps, not only
    # when a whole run ends.
    err = capsys.readouterr().err
    assert "steps (all runs)" in err
    assert "300/300" in err  # three runs of 100 gradient steps, the failed one counted as done


def test_the_step_bar_says_what_a_run_yet_to_log_is_doing(hopper_file, tmp_path, capsys):
    # Before its first log a run in a worker moves no step; it writes what it is doing (a
    # compile, the first evaluation) into metrics.json, and the grid's bar shows it.
    config = tiny(hopper_file, tmp_path, seed=0)
    log = MetricsLog()
    log.set_stage("compiling the update")
    config.folder.write_metrics(log.data)
    with _StepCounter([config], {}, progress=True):
        pass
    assert f"{config.run_name}: compiling the update" in capsys.readouterr().err


def _pool_workers_of(pid: int) -> list[int]:
    workers = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            stat = (proc / "stat").read_text()
            command = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])  # the field after the state
        if parent == pid and b"spawn_main" in command:
            workers.append(int(proc.name))
    return workers


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has exited and waits to be reaped


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc (Linux)")
@pytest.mark.slow  # kill/resume, process pool or torch.compile: see README
def test_pool_workers_exit_when_the_grid_process_is_killed(hopper_file, tmp_path):
    # SIGKILL gives the grid no chance to shut its pool down; the workers must notice alone.
    long_run = tiny(hopper_file, tmp_path, total_steps=10**7, eval_every=10**6)
    settings = {
        name: getattr(long_run, name)
        for name in ("algo", "dataset", "total_steps", "log_every", "eval_every", "results_dir")
    }
    script = (
        "import json, sys\n"
        "from hybrid_rl.launch.executor import run_grid\n"
        "from hybrid_rl.train import TrainConfig\n"
        "settings = json.loads(sys.argv[1])\n"
        "runs = [TrainConfig(**settings, seed=seed) for seed in (0, 1)]\n"
        "run_grid(runs, workers=2, threads=1, progress=False)\n"
    )
    grid = subprocess.Popen([sys.executable, "-c", script, json.dumps(settings)])
    try:
        deadline = time.monotonic() + 120
        started = [
            dataclasses.replace(long_run, seed=seed).run_dir / "config.json" for seed in (0, 1)
        ]
        while not all(path.exists() for path in started):
            assert grid.poll() is None, "the grid process ended before its runs started"
            assert time.monotonic() < deadline, "the runs never started"
            time.sleep(0.5)
        workers = _pool_workers_of(grid.pid)
        assert len(workers) == 2
    finally:
        grid.send_signal(signal.SIGKILL)
        grid.wait()
    deadline = time.monotonic() + 30
    while any(_running(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.5)
    alive = [pid for pid in workers if _running(pid)]
    for pid in alive:
        os.kill(pid, signal.SIGKILL)
    assert not alive, f"workers {alive} kept training after the grid process was killed"


def test_threads_split_the_cores_between_workers():
    # By default every core runs its own single-threaded run (the faster split measured).
    assert default_workers() == os.cpu_count()
    assert threads_per_worker(default_workers()) == 1
    assert threads_per_worker(1, cores=2) == 2
    assert threads_per_worker(2, cores=2) == 1
    assert threads_per_worker(4, cores=2) == 1
    assert threads_per_worker(2, cores=8) == 4


def test_a_grid_naming_a_run_twice_is_refused(tmp_path):
    config = tiny("x.hdf5", tmp_path)
    with pytest.raises(ValueError, match="more than once"):
        run_grid([config, config], progress=False)


def phase1_iql(dataset: Path, results: Path, seed: int = 0, **overrides) -> TrainConfig:
    return tiny(
        dataset,
        results,
        algo="iql",
        seed=seed,
        agent=IQLConfig(batch_size=32, max_steps=100),
        **overrides,
    )


def phase2(phase1: TrainConfig, results: Path, bonus: str = "ensemble", **overrides):
    settings = dict(
        algo="iql",
        dataset=phase1.dataset,
        seed=phase1.seed,
        bonus_type=bonus,
        online_steps=96,
        eval_every=48,
        log_every=48,
        batch_size=32,
        eval_episodes=1,
        device="cpu",
        phase1_results_dir=phase1.results_dir,
        results_dir=str(results),
    )
    return FinetuneConfig(**{**settings, **overrides})


def test_a_phase2_run_listed_before_its_phase1_run_waits_for_it(hopper_file, tmp_path):
    first = phase1_iql(hopper_file, tmp_path / "p1")
    runs = [phase2(first, tmp_path / "p2"), phase2(first, tmp_path / "p2", "none"), first]
    summary = run_grid(runs, threads=1, progress=False)
    assert [o.status for o in summary.outcomes] == ["completed"] * 3
    saved = json.loads((runs[0].run_dir / "config.json").read_text())
    assert saved["phase1"]["checkpoint"] == str(first.run_dir / "checkpoint.pt")


@pytest.mark.slow  # kill/resume, process pool or torch.compile: see README
def test_a_pool_runs_phase2_runs_once_their_phase1_runs_end(hopper_file, tmp_path):
    firsts = [phase1_iql(hopper_file, tmp_path / "p1", seed=s) for s in (0, 1)]
    seconds = [phase2(f, tmp_path / "p2") for f in firsts]
    summary = run_grid([seconds[1], *firsts, seconds[0]], workers=2, progress=False)
    assert [o.status for o in summary.outcomes] == ["completed"] * 4
    for first, second in zip(firsts, seconds, strict=True):
        ended = (first.run_dir / "checkpoint.pt").stat().st_mtime
        assert (second.run_dir / "config.json").stat().st_mtime >= ended


def test_a_phase2_run_whose_phase1_run_failed_fails_naming_the_phase1_command(
    hopper_file, tmp_path
):
    broken = phase1_iql(tmp_path / "missing.hdf5", tmp_path / "p1")
    second = phase2(broken, tmp_path / "p2")
    summary = run_grid([broken, second], threads=1, progress=False)
    assert [o.status for o in summary.outcomes] == ["failed", "failed"]
    assert "python run_phase1.py --algo iql" in summary.outcomes[1].error
    assert status_of(second) == "failed"


def test_a_step_bar_counts_the_steps_of_both_phases(hopper_file, tmp_path, capsys):
    first = phase1_iql(hopper_file, tmp_path / "p1")
    runs = [first, phase2(first, tmp_path / "p2")]
    run_grid(runs, threads=1, progress=True, unit="step")
    err = capsys.readouterr().err
    assert "steps (all runs)" in err
    assert "196/196" in err  # 100 gradient steps + 96 online steps


def test_a_phase2_folder_holding_another_budget_is_left_alone(hopper_file, tmp_path):
    first = phase1_iql(hopper_file, tmp_path / "p1")
    second = phase2(first, tmp_path / "p2")
    run_grid([first, second], threads=1, progress=False)
    longer = phase2(first, tmp_path / "p2", online_steps=192)
    [outcome] = run_grid([longer], threads=1, progress=False).outcomes
    assert outcome.status == "failed"
    assert "online_steps 96 there, 192 asked" in outcome.error
    # where the Phase I runs are read from does not make it another run
    moved = dataclasses.replace(second, phase1_results_dir=str(tmp_path / "elsewhere"))
    assert [o.status for o in run_grid([moved], progress=False).outcomes] == ["skipped"]
