"""The wall-time estimate's arithmetic, for a study and for a Phase I grid on its own."""

from __future__ import annotations

import json

import pytest

from hybrid_rl.behavior.replica import replica_path
from hybrid_rl.launch.estimate import (
    EVAL_SECONDS_PER_EPISODE,
    ONLINE_STEP_COST,
    REPLICA_BUILD_SECONDS_PER_MILLION,
    RUN_START_SECONDS,
    UPDATES_PER_SECOND,
    WARMUP_UPDATE_COST,
    dataset_on_disk,
    estimate_wall_time,
    replica_build_seconds,
)
from hybrid_rl.launch.phase1_grid import Phase1Grid
from hybrid_rl.launch.study import Study
from hybrid_rl.train import TrainConfig


@pytest.fixture
def empty_caches(tmp_path, monkeypatch):
    monkeypatch.setenv("D4RL_DATASET_DIR", str(tmp_path / "d4rl"))
    monkeypatch.setenv("HYBRID_RL_DATA_DIR", str(tmp_path / "replicas"))
    monkeypatch.chdir(tmp_path)  # the study's relative results folders start empty
    return tmp_path


def test_the_quick_study_is_estimated_from_its_runs_and_its_replica_build(empty_caches):
    study = Study.create(quick=True)
    estimate = estimate_wall_time(study.configs(), workers=2)
    iql = UPDATES_PER_SECOND["iql"]
    phase1 = RUN_START_SECONDS + 30_000 / iql + 7 * 10 * EVAL_SECONDS_PER_EPISODE
    phase2 = (
        RUN_START_SECONDS
        + 5_000 * ONLINE_STEP_COST["iql"] / iql
        + 6 * 10 * EVAL_SECONDS_PER_EPISODE
    )
    # The preset's arm adds its 5,000 warm-up updates at WARMUP_UPDATE_COST each.
    preset = phase2 + 5_000 * WARMUP_UPDATE_COST / iql
    runs = max((3 * phase1 + 6 * phase2 + 3 * preset) / 2, phase1 + preset)
    # hopper-medium-replay's replica holds 402,000 transitions
    build = 0.402 * REPLICA_BUILD_SECONDS_PER_MILLION
    assert replica_build_seconds("hopper-medium-replay-v2") == pytest.approx(build)
    assert estimate.seconds == pytest.approx(build + runs)
    text = "\n".join(estimate.lines)
    assert "hopper-medium-replay-v2 is not on disk: a replica build takes ~2 min" in text
    assert "Phase I: 3 IQL runs × 30,000 updates" in text
    assert "Phase II: 9 IQL runs × 5,000 online steps" in text


def test_finished_runs_and_a_built_replica_are_left_out_of_the_estimate(empty_caches):
    study = Study.create(quick=True)
    path = replica_path("hopper-medium-replay-v2")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"")
    for config in study.configs():
        config.run_dir.mkdir(parents=True)
        (config.run_dir / "metrics.json").write_text(json.dumps({"status": "completed"}))
    estimate = estimate_wall_time(study.configs(), workers=2)
    assert estimate.seconds == 0
    assert estimate.lines == ("runs: all finished already; only the report is written",)


def test_a_long_phase1_run_bounds_the_estimate_from_below(empty_caches):
    # One Phase I run and its Phase II runs (spec and no bonus, two of them) cannot share
    # out over 8 workers.
    study = Study.create(
        quick=True, k_percents=(0.0,), phase2={"bonus_types": ("ensemble", "none")}
    )
    estimate = estimate_wall_time(study.configs(), workers=8)
    first, second, _ = study.configs()
    assert isinstance(first, TrainConfig)
    evaluation = 10 * EVAL_SECONDS_PER_EPISODE
    rate = UPDATES_PER_SECOND["iql"]
    phase1 = RUN_START_SECONDS + first.total_steps / rate + 7 * evaluation
    phase2 = (
        RUN_START_SECONDS + second.online_steps * ONLINE_STEP_COST["iql"] / rate + 6 * evaluation
    )
    assert estimate.seconds == pytest.approx(
        replica_build_seconds("hopper-medium-replay-v2") + phase1 + phase2
    )


def test_datasets_on_disk(empty_caches):
    assert dataset_on_disk("some/file.hdf5", "auto")
    assert not dataset_on_disk("hopper-medium-v2", "auto")
    d4rl = empty_caches / "d4rl" / "hopper_medium-v2.hdf5"
    d4rl.parent.mkdir()
    d4rl.write_bytes(b"")
    assert dataset_on_disk("hopper-medium-v2", "auto")
    assert dataset_on_disk("hopper-medium-v2", "d4rl")
    assert not dataset_on_disk("hopper-medium-v2", "replica")
    # this project's own dataset is its replica only, whatever the D4RL cache holds
    (empty_caches / "d4rl" / "hopper_medium_bimodal-v2.hdf5").write_bytes(b"")
    assert not dataset_on_disk("hopper-medium-bimodal-v2", "auto")
    replica = replica_path("hopper-medium-bimodal-v2")
    replica.parent.mkdir(parents=True)
    replica.write_bytes(b"")
    assert dataset_on_disk("hopper-medium-bimodal-v2", "auto")


def test_a_phase1_grid_alone_is_estimated_from_its_cql_and_iql_runs_and_both_datasets(
    empty_caches,
):
    configs = Phase1Grid.quick().expand()  # `run_phase1.py --quick`: 6 CQL and 6 IQL runs
    estimate = estimate_wall_time(configs, workers=2)
    evaluations = 5 * 10 * EVAL_SECONDS_PER_EPISODE
    one_run = {
        a: RUN_START_SECONDS + 20_000 / rate + evaluations for a, rate in UPDATES_PER_SECOND.items()
    }
    runs = 6 * (one_run["cql"] + one_run["iql"]) / 2
    assert estimate.seconds == pytest.approx(2 * REPLICA_BUILD_SECONDS_PER_MILLION + runs)
    text = "\n".join(estimate.lines)
    assert "halfcheetah-medium-v2 is not on disk" in text
    assert "hopper-medium-v2 is not on disk" in text
    assert "Phase I: 6 CQL runs × 20,000 updates" in text
    assert "Phase I: 6 IQL runs × 20,000 updates" in text
    assert "Phase II" not in text
