"""A grid asks D4RL's server once: a failed download in the launching process makes the grid's
runs use what is on disk without asking again (real local server, real replica-layout file)."""

from __future__ import annotations

import os

from hybrid_rl.behavior.replica import replica_path
from hybrid_rl.cli import main
from hybrid_rl.data.hdf5_format import write_d4rl_hdf5

DATASET_ID = "hopper-medium-v2"
FILE_NAME = "hopper_medium-v2.hdf5"


def test_an_unreachable_server_is_asked_once_per_grid(
    tmp_path, monkeypatch, file_server, hopper_rollout, capfd
):
    monkeypatch.setenv("D4RL_DATASET_DIR", str(tmp_path / "d4rl"))
    monkeypatch.setenv("HYBRID_RL_D4RL_BASE_URL", f"{file_server.base_url}/d4rl")
    monkeypatch.setenv("HYBRID_RL_DATA_DIR", str(tmp_path / "replicas"))
    monkeypatch.delenv("HYBRID_RL_OFFLINE", raising=False)
    metadata = {"source": "replica", "env_id": "Hopper-v4", "dataset_id": DATASET_ID}
    write_d4rl_hdf5(replica_path(DATASET_ID), hopper_rollout, metadata)
    file_server.routes[f"/d4rl/{FILE_NAME}"] = ("drop", b"x" * 100_000)  # breaks every time

    flags = ["phase1", "--env", DATASET_ID, "--algo", "bc", "--remove_top_k", "0,30"]
    flags += ["--seed", "0,1", "--total_steps", "50", "--log_every", "50", "--eval_every", "50"]
    flags += ["--eval_episodes", "1", "--device", "cpu", "--workers", "1", "--threads", "1"]
    flags += ["--results_dir", str(tmp_path / "r"), "--plots_dir", str(tmp_path / "p")]
    assert main(flags) == 0

    err = capfd.readouterr().err
    assert file_server.request_count == 1  # 4 runs, one request
    assert err.count("download failed") == 1
    assert "D4RL's server could not be reached" in err
    assert "HYBRID_RL_OFFLINE" not in os.environ  # restored after the grid
