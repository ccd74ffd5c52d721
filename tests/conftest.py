"""Shared fixtures: D4RL-layout files from a real MuJoCo rollout, and a real local HTTP server."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from hybrid_rl.algos.cql import CQLConfig
from hybrid_rl.algos.iql import IQLConfig
from hybrid_rl.behavior.replica import collect_transitions
from hybrid_rl.data.hdf5_format import write_d4rl_hdf5
from hybrid_rl.envs import make_env
from hybrid_rl.train import TrainConfig, train_offline

ROLLOUT_STEPS = 400
ROLLOUT_EPISODE_CAP = 20  # short cap so the rollout holds both terminations and timeouts


def _rollout(env_id: str, steps: int, cap: int, seed: int) -> dict[str, np.ndarray]:
    """D4RL-layout rows from random actions; `next_observations` holds the true next obs."""
    env = make_env(env_id, seed=seed)
    rows: dict[str, list] = {
        k: []
        for k in (
            "observations",
            "actions",
            "rewards",
            "next_observations",
            "terminals",
            "timeouts",
        )
    }
    obs, _ = env.reset(seed=seed)
    episode_step = 0
    for _ in range(steps):
        action = env.action_space.sample()
        next_obs, reward, terminated, truncated, _ = env.step(action)
        episode_step += 1
        timed_out = (truncated or episode_step == cap) and not terminated
        rows["observations"].append(obs)
        rows["actions"].append(action)
        rows["rewards"].append(reward)
        rows["next_observations"].append(next_obs)
        rows["terminals"].append(terminated)
        rows["timeouts"].append(timed_out)
        if terminated or timed_out:
            obs, _ = env.reset()
            episode_step = 0
        else:
            obs = next_obs
    env.close()
    arrays = {k: np.asarray(v) for k, v in rows.items()}
    for key in ("observations", "actions", "rewards", "next_observations"):
        arrays[key] = arrays[key].astype(np.float32)
    arrays["terminals"] = arrays["terminals"].astype(bool)
    arrays["timeouts"] = arrays["timeouts"].astype(bool)
    return arrays


@pytest.fixture(scope="session")
def hopper_rollout() -> dict[str, np.ndarray]:
    """400 rows of Hopper-v4 under random actions, episodes capped at 20 steps (read-only)."""
    arrays = _rollout("Hopper-v4", ROLLOUT_STEPS, ROLLOUT_EPISODE_CAP, seed=0)
    assert arrays["terminals"].any() and arrays["timeouts"].any()
    for array in arrays.values():
        array.flags.writeable = False
    return arrays


def write_raw_d4rl_file(
    path: Path,
    arrays: Mapping[str, np.ndarray],
    metadata: Mapping[str, str | int | float] | None = None,
) -> Path:
    """Write a D4RL-layout file with plain h5py (independent of the package's writer)."""
    with h5py.File(path, "w") as f:
        for key, array in arrays.items():
            f.create_dataset(key, data=array)
        for name, value in (metadata or {}).items():
            f.create_dataset(f"metadata/{name}", data=value)
    return path


@pytest.fixture
def raw_d4rl_file() -> Callable[..., Path]:
    return write_raw_d4rl_file


@dataclass
class LocalFileServer:
    """Serves `routes[url_path] = (mode, body)` on 127.0.0.1 and counts requests.

    Modes: "full" (Content-Length, whole body), "drop" (Content-Length, then the connection
    closes halfway), "no-length" (no Content-Length, body, close), "stall" (headers, then
    waits until the server stops).
    """

    base_url: str
    routes: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    request_paths: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    @property
    def request_count(self) -> int:
        return len(self.request_paths)


@pytest.fixture
def file_server() -> Iterator[LocalFileServer]:
    state: dict[str, LocalFileServer] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            server_state = state["server"]
            server_state.request_paths.append(self.path)
            if self.path not in server_state.routes:
                self.send_error(404)
                return
            mode, body = server_state.routes[self.path]
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            if mode != "no-length":
                self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            if mode == "drop":
                self.wfile.write(body[: len(body) // 2])
            elif mode == "stall":
                self.wfile.flush()
                server_state.stop.wait(10)
            else:
                self.wfile.write(body)
            self.close_connection = True

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    host, port = httpd.server_address[:2]
    server = LocalFileServer(base_url=f"http://{host}:{port}")
    state["server"] = server
    thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.stop.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


@pytest.fixture(autouse=True)
def single_torch_thread() -> Iterator[None]:
    # Small batches run fastest on one thread, and two threads competing with other jobs on a
    # 2-core machine made an update ~50x slower.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


PHASE1_TEST_STEPS = 50


@pytest.fixture(scope="session")
def hopper_file(tmp_path_factory) -> Path:
    """2,000 random-action Hopper transitions (short episodes, varied returns), written once
    for the whole session; tests only read it."""
    path = tmp_path_factory.mktemp("data") / "hopper-tiny.hdf5"
    arrays = collect_transitions("Hopper-v4", None, 2_000, seed=0, num_envs=4, progress=False)
    write_d4rl_hdf5(path, arrays, {"source": "test", "env_id": "Hopper-v4"})
    return path


@pytest.fixture(scope="session")
def phase1_runs(tmp_path_factory, hopper_file) -> dict[str, TrainConfig]:
    """Completed Phase I CQL and IQL runs (50 steps) on 2,000 random-action Hopper transitions,
    shared by the Phase II tests."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # module fixtures run before the per-test thread fixture
    root = tmp_path_factory.mktemp("phase1")
    agents = {
        "cql": CQLConfig(batch_size=32),
        "iql": IQLConfig(batch_size=32, max_steps=PHASE1_TEST_STEPS),
    }
    runs = {}
    for algo, agent in agents.items():
        runs[algo] = TrainConfig(
            algo=algo,
            dataset=str(hopper_file),
            total_steps=PHASE1_TEST_STEPS,
            log_every=PHASE1_TEST_STEPS,
            eval_every=PHASE1_TEST_STEPS,
            eval_episodes=1,
            device="cpu",
            results_dir=str(root / "results"),
            agent=agent,
        )
        assert train_offline(runs[algo], progress=False)["status"] == "completed"
    torch.set_num_threads(threads)
    return runs
