"""Grids on a real two-node Ray cluster on 127.0.0.1: the same results as the local launcher
on one thread when a task's worker is killed mid-run, Phase II runs waiting for their Phase I
runs, failures recorded as locally."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import hybrid_rl
from hybrid_rl.cli import build_parser
from hybrid_rl.cli.phase1 import phase1_grid_from_args
from hybrid_rl.cli.phase2 import phase2_grid_from_args
from hybrid_rl.finetune_config import FinetuneConfig
from hybrid_rl.launch.executor import run_grid
from hybrid_rl.launch.ray_launcher import RayLauncher
from hybrid_rl.train import TrainConfig

pytest.importorskip("ray", reason='Ray is not installed: pip install -e ".[ray]"')
pytestmark = [
    pytest.mark.slow,  # a Ray cluster takes ~20 s to start on 2 cores
    pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc (Linux)"),
]

SRC = str(Path(hybrid_rl.__file__).resolve().parents[1])
RAY = str(Path(sys.executable).with_name("ray"))
# Phase I checkpoints at steps 100, 200 and 300, so a run killed after the first has a
# checkpoint to resume from and steps left to redo.
TINY_PHASE1 = ["--total_steps", "400", "--log_every", "100", "--eval_every", "100"]
TINY_PHASE2 = ["--total_steps", "300", "--log_every", "300", "--eval_every", "300"]


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _processes_in_group(pgid: int) -> list[int]:
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":  # pgrp, after state and ppid
            found.append(int(proc.name))
    return found


def _process_titled(title: str) -> int | None:
    """The pid of the process whose command line is `title` (Ray names a worker
    `ray::<task name>` while it runs that task)."""
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").strip()
        except OSError:
            continue
        if command.decode(errors="replace") == title:
            return int(proc.name)
    return None


class Cluster:
    """A Ray head and one worker node on 127.0.0.1, one CPU each, in their own temp dir and
    process groups (so that stopping them touches no other Ray on the machine)."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="hrl-ray-"))  # short: Ray's socket paths
        self.env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [SRC, os.environ.get("PYTHONPATH")])),
            "HYBRID_RL_OFFLINE": "1",
            "RAY_AUTH_MODE": "disabled",  # no token set-up in ~/.ray
            "RAY_USAGE_STATS_ENABLED": "0",
        }
        self.groups: list[int] = []
        self.address = ""

    def start(self) -> None:
        port, dashboard = _free_ports(2)
        self.address = f"127.0.0.1:{port}"
        self._start(
            "--head",
            f"--port={port}",
            f"--dashboard-port={dashboard}",
            "--include-dashboard=false",
            f"--temp-dir={self.root}",
        )
        self._start(f"--address={self.address}")

    def _start(self, *flags: str) -> None:
        agent, grpc, runtime_env, metrics = _free_ports(4)
        command = [
            RAY,
            "start",
            *flags,
            "--node-ip-address=127.0.0.1",
            "--num-cpus=1",
            "--num-gpus=0",
            f"--object-store-memory={100 * 2**20}",
            f"--dashboard-agent-listen-port={agent}",
            f"--dashboard-agent-grpc-port={grpc}",
            f"--runtime-env-agent-port={runtime_env}",
            f"--metrics-export-port={metrics}",
            "--disable-usage-stats",
        ]
        # `ray start` returns once its daemons run; they stay in its process group
        proc = subprocess.Popen(
            command,
            cwd=self.root,
            env=self.env,
            start_new_session=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        self.groups.append(proc.pid)
        output, _ = proc.communicate(timeout=300)  # ~10 s on an idle 2-core machine
        assert proc.returncode == 0, output.decode(errors="replace")

    def stop(self) -> list[int]:
        """Kill every process of both nodes; the pids still alive after 30 s (none)."""
        for group in self.groups:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            left = [pid for group in self.groups for pid in _processes_in_group(group)]
            if not left:
                break
            time.sleep(0.2)
        shutil.rmtree(self.root, ignore_errors=True)
        return left


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    started = Cluster()
    try:
        started.start()
        yield started
    finally:
        left = started.stop()
        assert not left, f"Ray processes {left} still running after the test"


def metrics_by_run(results: Path) -> dict[str, dict]:
    return {
        run.name: json.loads((run / "metrics.json").read_text())
        for run in sorted(results.iterdir())
    }


def test_a_grid_on_a_cluster_survives_a_killed_worker_with_the_local_results(
    cluster, hopper_file, tmp_path
):
    common = ["--algo", "iql", "--env", str(hopper_file), "--remove_top_k", "0,30"]
    common += ["--seed", "0", "--eval_episodes", "1", "--device", "cpu"]
    phase1 = [*common, *TINY_PHASE1, "--results_dir", "r1", "--plots_dir", "p1"]
    phase2 = [*common, *TINY_PHASE2, "--results_dir", "r2", "--plots_dir", "p2"]
    phase2 += ["--phase1_results_dir", "r1", "--bonus_type", "ensemble"]
    on_ray = ["--launcher", "ray", "--ray_address", cluster.address]

    # Relative results folders: the tasks work in this command's directory, not Ray's.
    log = (tmp_path / "phase1.log").open("w")
    grid = subprocess.Popen(
        [sys.executable, "-m", "hybrid_rl.cli", "phase1", *phase1, *on_ray],
        cwd=tmp_path,
        env=cluster.env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    victim = "iql_hopper-tiny_k0_noise0_s0"
    run_dir = tmp_path / "r1" / victim
    deadline = time.monotonic() + 180
    while not (run_dir / "checkpoint.pt").exists():
        assert grid.poll() is None, (tmp_path / "phase1.log").read_text()
        assert time.monotonic() < deadline, "the run never wrote a checkpoint"
        time.sleep(0.05)
    worker = _process_titled(f"ray::{victim}")
    assert worker is not None, "no Ray worker is running the run"
    os.kill(worker, signal.SIGKILL)
    partial = json.loads((run_dir / "metrics.json").read_text())
    assert partial["status"] == "running", "the run finished before its worker was killed"
    assert grid.wait(timeout=300) == 0, (tmp_path / "phase1.log").read_text()
    output = (tmp_path / "phase1.log").read_text()
    assert "2 runs: 2 completed, 0 diverged, 0 failed" in output
    assert f"resuming {victim} from step" in output  # Ray ran it again, from its checkpoint

    second = subprocess.run(
        [sys.executable, "-m", "hybrid_rl.cli", "phase2", *phase2, *on_ray],
        cwd=tmp_path,
        env=cluster.env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert second.returncode == 0, second.stderr
    assert "2 runs: 2 completed" in second.stdout

    # The same grids with the local launcher in this process, one thread, other folders.
    local = tmp_path / "local"
    parse = build_parser().parse_args
    first_grid = phase1_grid_from_args(
        parse(["phase1", *phase1, "--results_dir", str(local / "r1")])
    )
    second_grid = phase2_grid_from_args(
        parse(
            [
                "phase2",
                *phase2,
                "--results_dir",
                str(local / "r2"),
                "--phase1_results_dir",
                str(local / "r1"),
            ]
        )
    )
    for configs in (first_grid.expand(), second_grid.expand()):
        summary = run_grid(configs, workers=1, threads=1, progress=False)
        assert summary.count("completed") == 2
    for folder in ("r1", "r2"):
        on_cluster, here = metrics_by_run(tmp_path / folder), metrics_by_run(local / folder)
        assert len(here) == 2 and on_cluster.keys() == here.keys()
        for name in here:
            assert on_cluster[name] == here[name], name


def test_phase2_runs_wait_for_their_phase1_runs_and_failures_are_recorded(
    cluster, hopper_file, tmp_path
):
    def phase1(dataset: Path) -> TrainConfig:
        return TrainConfig(
            algo="iql",
            dataset=str(dataset),
            total_steps=100,
            log_every=50,
            eval_every=100,
            eval_episodes=1,
            device="cpu",
            results_dir=str(tmp_path / "p1"),
        )

    def phase2(first: TrainConfig) -> FinetuneConfig:
        return FinetuneConfig(
            algo="iql",
            dataset=first.dataset,
            online_steps=96,
            eval_every=48,
            log_every=48,
            batch_size=32,
            eval_episodes=1,
            device="cpu",
            phase1_results_dir=first.results_dir,
            results_dir=str(tmp_path / "p2"),
        )

    good, broken = phase1(hopper_file), phase1(tmp_path / "missing.hdf5")
    runs = [phase2(good), phase2(broken), good, broken]  # Phase II listed first
    summary = run_grid(runs, progress=False, launcher=RayLauncher(cluster.address))
    assert [o.status for o in summary.outcomes] == ["completed", "failed", "completed", "failed"]
    assert "python run_phase1.py --algo iql" in summary.outcomes[1].error
    ended = (good.run_dir / "checkpoint.pt").stat().st_mtime
    assert (runs[0].run_dir / "config.json").stat().st_mtime >= ended
    assert summary.line().startswith("4 runs: 2 completed, 0 diverged, 2 failed")


def test_runs_asking_for_more_cpus_than_any_node_has_are_refused(cluster, hopper_file, tmp_path):
    # Ray would keep such a task waiting for a node that never comes.
    run = TrainConfig(algo="bc", dataset=str(hopper_file), results_dir=str(tmp_path))
    with pytest.raises(
        ValueError, match="no node of the cluster has more than 1; give --threads 1"
    ):
        run_grid([run], threads=2, progress=False, launcher=RayLauncher(cluster.address))
    assert not any(tmp_path.iterdir())
