"""Run a grid on a Ray cluster: one Ray task per run (`run_grid(..., launcher=RayLauncher())`),
or per seed group (`train.SeedGroup`: several runs in one process).

Each task asks Ray for the run's torch threads as CPUs (1 by default, as a local pool worker
of one core has) and for one GPU when the run's device is "cuda". A Phase II task takes its
Phase I task's result as an argument, so Ray starts it only once that run has ended. A task
whose worker or node dies is run again by Ray (up to `MAX_RETRIES` times), and a run executed
again resumes from its last checkpoint, losing only the steps since then.

Tasks write to the run folders themselves and this process reads them (skips, progress, the
failure records), so the results folders, like the datasets, must be on a filesystem every
node sees at the same path; every node needs hybrid-rl installed. Tasks work in this process's
working directory, so relative folders mean the same on every node.

Ray is an optional extra: this module imports it only when a grid runs.
"""

from __future__ import annotations

import importlib.util
import os
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from hybrid_rl.behavior.replica import REPLICA_DIR_ENV_VAR
from hybrid_rl.data.download import CACHE_DIR_ENV_VAR, OFFLINE_ENV_VAR
from hybrid_rl.launch.executor import RunOutcome, record_failure, run_one
from hybrid_rl.runs.spec import RunSpec

RAY_INSTALL_COMMAND = 'pip install -e ".[ray]"'
# Ray's own default for tasks, written out: a run loses at most the steps since its last
# checkpoint per retry, and a run that fails in Python is recorded, not retried.
MAX_RETRIES = 3
# Where the runs find their data and whether they may download it, as this process has them
# (datasets_loaded_once sets HYBRID_RL_OFFLINE for a grid when D4RL's server is unreachable).
_FORWARDED_ENV_VARS = (OFFLINE_ENV_VAR, CACHE_DIR_ENV_VAR, REPLICA_DIR_ENV_VAR)
_CONNECT_TIMEOUT_S = 5.0


def ray_installed() -> bool:
    return importlib.util.find_spec("ray") is not None


def address_form_problem(address: str) -> str | None:
    """Why `address` is not of the form "host:port" (as `ray start --head` prints the head's
    address), or None."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        return f"{address!r} is not host:port (the head's address, e.g. 10.0.0.5:6379)"
    return None


def unreachable_address_problem(address: str) -> str | None:
    """Why no Ray cluster can be reached at the well-formed `address`, or None. Checked before
    a grid starts: Ray itself waits minutes on an address where nothing listens."""
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=_CONNECT_TIMEOUT_S):
            return None
    except OSError as err:
        return (
            f"no Ray cluster answers at {address} ({err}); start its head there with "
            f"`ray start --head --port={port}`, or leave --ray_address out to start Ray on "
            "this machine"
        )


@dataclass(frozen=True)
class RayLauncher:
    """Runs a grid's runs as Ray tasks on the cluster at `address` ("host:port"), or on a
    Ray instance started on this machine for the grid (None)."""

    address: str | None = None

    def run(
        self,
        pending: Sequence[RunSpec],
        threads: int,
        record: Callable[[RunSpec, RunOutcome], None],
    ) -> None:
        import ray

        connected_here = not ray.is_initialized()
        if connected_here:
            env_vars = {
                name: os.environ[name] for name in _FORWARDED_ENV_VARS if name in os.environ
            }
            # "local": a new instance even when RAY_ADDRESS names a cluster
            options: dict[str, Any] = (
                {"address": self.address}
                if self.address
                else {"address": "local", "include_dashboard": False}
            )
            ray.init(runtime_env={"env_vars": env_vars}, **options)
        try:
            _check_fits(ray.nodes(), pending, threads)
            task = ray.remote(_execute_run)
            # A seed group is one task writing several folders: each of them names it.
            by_folder = {folder.key: config for config in pending for folder in config.folders}
            refs: dict[str, Any] = {}

            def submit(config: RunSpec) -> Any:
                key = config.run_name
                if key not in refs:
                    prerequisite = config.prerequisite
                    waits_for = None
                    if prerequisite is not None and prerequisite.key in by_folder:
                        # a task argument: Ray starts this task once that one has ended
                        waits_for = submit(by_folder[prerequisite.key])
                    refs[key] = task.options(
                        name=config.run_name,  # also the worker's process title while it runs
                        num_cpus=threads,
                        num_gpus=_gpus(config),
                        max_retries=MAX_RETRIES,
                    ).remote(config, threads, os.getcwd(), waits_for)
                return refs[key]

            for config in pending:
                submit(config)
            running = {refs[config.run_name]: config for config in pending}
            while running:
                [done], _ = ray.wait(list(running), num_returns=1)
                config = running.pop(done)
                try:
                    outcome = ray.get(done)
                except Exception as err:  # its worker died more than MAX_RETRIES times
                    outcome = record_failure(config, err)
                record(config, outcome)
        finally:
            if connected_here:
                ray.shutdown()


def _gpus(config: RunSpec) -> int:
    return 1 if config.device.startswith("cuda") else 0


def _check_fits(nodes: Sequence[dict[str, Any]], pending: Sequence[RunSpec], threads: int) -> None:
    """A run no node can hold would wait forever in Ray's queue: refuse it first."""
    alive = [node["Resources"] for node in nodes if node["Alive"]]
    cpus = max((resources.get("CPU", 0) for resources in alive), default=0)
    if threads > cpus:
        raise ValueError(
            f"--threads {threads}: each run asks Ray for {threads} CPUs, and no node of the "
            f"cluster has more than {cpus:g}; give --threads {max(1, int(cpus))} or less"
        )
    needs_gpu = any(_gpus(config) for config in pending)
    if needs_gpu and not any(resources.get("GPU", 0) >= 1 for resources in alive):
        raise ValueError(
            "--device cuda: each run asks Ray for a GPU, and the cluster has none; use --device "
            "cpu, or start the nodes with GPUs"
        )


def _execute_run(
    config: RunSpec, threads: int, working_dir: str, _prerequisite: RunOutcome | None
) -> RunOutcome:
    """One run in a Ray worker, in the launching process's working directory."""
    if not os.path.isdir(working_dir):
        raise FileNotFoundError(
            f"this node does not see {working_dir}, the directory the grid was launched from; "
            "the results folders must be on a filesystem every node sees at the same path"
        )
    os.chdir(working_dir)
    torch.set_num_threads(threads)
    return run_one(config)
