"""`hybrid-rl dataset ...` as a user runs it: the installed console script in a subprocess."""

from __future__ import annotations

import json

import numpy as np
import pytest
from cli_runner import run_hybrid_rl

from hybrid_rl.behavior.replica import collect_transitions
from hybrid_rl.data.hdf5_format import write_d4rl_hdf5
from hybrid_rl.data.registry import normalized_score


@pytest.fixture(scope="module")
def cheetah_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "cheetah.hdf5"
    arrays = collect_transitions("HalfCheetah-v4", None, 2_500, seed=0, num_envs=2, progress=False)
    write_d4rl_hdf5(
        path,
        arrays,
        {"source": "replica", "env_id": "HalfCheetah-v4", "dataset_id": "halfcheetah-random-v2"},
    )
    return path, arrays


def test_info_reports_sizes_returns_and_provenance(cheetah_file):
    path, arrays = cheetah_file
    result = run_hybrid_rl("dataset", "info", str(path), "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["transitions"] == 2_500 and info["trajectories"] == 3
    assert (info["obs_dim"], info["act_dim"]) == (17, 6)
    first_return = float(arrays["rewards"][:1000].astype(np.float64).sum())
    assert info["return"]["max"] >= first_return - 1e-3
    assert info["normalized_return"]["mean"] == pytest.approx(
        float(
            np.mean(
                normalized_score(
                    "halfcheetah",
                    [
                        arrays["rewards"][a:b].astype(np.float64).sum()
                        for a, b in ((0, 1000), (1000, 2000), (2000, 2500))
                    ],
                )
            )
        ),
        rel=1e-6,
    )
    assert info["provenance"]["source"] == "replica"
    assert len(info["provenance"]["sha256"]) == 64


def test_info_table_is_readable(cheetah_file):
    result = run_hybrid_rl("dataset", "info", str(cheetah_file[0]))
    assert result.returncode == 0, result.stderr
    for word in ("transitions", "trajectories", "normalized", "sha256", "replica"):
        assert word in result.stdout


def test_unknown_dataset_is_a_one_line_error_listing_valid_ids():
    result = run_hybrid_rl("dataset", "info", "walker2d-medium-v2")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "hopper-medium-v2" in result.stderr


def test_offline_auto_without_cache_says_what_it_tried(tmp_path):
    # No D4RL cache, network disabled, and a replica cache that cannot be written (a file
    # where the directory should be): every source fails, the replica before any rollout.
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("")
    result = run_hybrid_rl(
        "dataset",
        "info",
        "hopper-expert-v2",
        env={
            "HYBRID_RL_OFFLINE": "1",
            "D4RL_DATASET_DIR": str(tmp_path),
            "HYBRID_RL_DATA_DIR": str(blocked),
        },
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "download skipped" in result.stderr and "replica failed" in result.stderr
    assert f"cannot write to {blocked}" in result.stderr


def test_build_to_an_unwritable_place_fails_before_rolling_out(tmp_path):
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    result = run_hybrid_rl("dataset", "build", "hopper-expert-v2", "--out", f"{blocked}/x.hdf5")
    assert result.returncode == 2
    assert f"cannot write to {blocked}" in result.stderr
    assert "Traceback" not in result.stderr and "it/s" not in result.stderr
