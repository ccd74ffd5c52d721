"""The study: its grids (shared with the quick Phase I and II grids), its intervals and the
wall-time estimate's arithmetic."""

from __future__ import annotations

import json

import pytest

from hybrid_rl.behavior.replica import replica_path
from hybrid_rl.launch.grid import Phase1Grid, Phase2Grid
from hybrid_rl.launch.study import (
    EVAL_SECONDS_PER_EPISODE,
    ONLINE_STEP_COST,
    REPLICA_BUILD_SECONDS,
    RUN_START_SECONDS,
    UPDATES_PER_SECOND,
    Study,
    dataset_on_disk,
    estimate_wall_time,
)
from hybrid_rl.train import TrainConfig


@pytest.fixture
def empty_caches(tmp_path, monkeypatch):
    monkeypatch.setenv("D4RL_DATASET_DIR", str(tmp_path / "d4rl"))
    monkeypatch.setenv("HYBRID_RL_DATA_DIR", str(tmp_path / "replicas"))
    monkeypatch.chdir(tmp_path)  # the study's relative results folders start empty
    return tmp_path


def test_the_quick_study_is_iql_on_halfcheetah_k_0_30_60_both_bonus_types():
    study = Study.create(quick=True)
    one = {"algos": ("iql",), "datasets": ("halfcheetah-medium-v2",)}
    # the very runs `run_phase1.py --quick` and `run_phase2.py --quick` make for this cell
    assert study.phase1 == Phase1Grid.quick(**one)
    assert study.phase2 == Phase2Grid.quick(**one)
    configs = study.configs()
    assert [type(c).__name__ for c in configs] == ["TrainConfig"] * 3 + ["FinetuneConfig"] * 6
    assert {c.k_percent for c in configs} == {0, 30, 60}
    assert {c.bonus_type for c in configs[3:]} == {"ensemble", "none"}
    assert {c.total_steps for c in configs[:3]} == {20_000}
    assert {c.online_steps for c in configs[3:]} == {5_000}
    assert study.phase2.phase1_results_dir == study.phase1.results_dir == "results/quick"
    assert study.plots_dir == "plots_study/quick"


def test_the_full_study_uses_the_full_budgets_and_shared_settings_reach_both_grids():
    study = Study.create(
        seeds=(1, 2),
        k_percents=(0.0, 60.0),
        device="cpu",
        phase1={"results_dir": "r1"},
        phase2={"bonus_coeff": 0.5},
    )
    assert (study.phase1.total_steps, study.phase2.online_steps) == (500_000, 250_000)
    for grid in (study.phase1, study.phase2):
        assert (grid.seeds, grid.k_percents, grid.device) == ((1, 2), (0.0, 60.0), "cpu")
    assert study.phase2.phase1_results_dir == "r1" and study.phase2.bonus_coeff == 0.5
    assert study.plots_dir == "plots_study"


def test_intervals_longer_than_a_budget_are_cut_to_it():
    study = Study.create(quick=True, phase1={"total_steps": 200}, phase2={"online_steps": 300})
    assert (study.phase1.eval_every, study.phase1.log_every) == (200, 200)
    assert (study.phase2.eval_every, study.phase2.log_every) == (300, 300)
    assert Study.create(quick=True).phase1.eval_every == Phase1Grid().eval_every


def test_the_quick_study_is_estimated_under_20_minutes_on_2_workers(empty_caches):
    study = Study.create(quick=True)
    estimate = estimate_wall_time(study, workers=2)
    iql = UPDATES_PER_SECOND["iql"]
    phase1 = RUN_START_SECONDS + 20_000 / iql + 5 * 10 * EVAL_SECONDS_PER_EPISODE
    phase2 = RUN_START_SECONDS + 5_000 * ONLINE_STEP_COST / iql + 6 * 10 * EVAL_SECONDS_PER_EPISODE
    runs = max((3 * phase1 + 6 * phase2) / 2, phase1 + phase2)
    assert estimate.seconds == pytest.approx(REPLICA_BUILD_SECONDS + runs)
    assert estimate.seconds < 20 * 60
    text = "\n".join(estimate.lines)
    assert "halfcheetah-medium-v2 is not on disk" in text
    assert "Phase I: 3 IQL runs × 20,000 updates" in text
    assert "Phase II: 6 IQL runs × 5,000 online steps" in text


def test_finished_runs_and_a_built_replica_are_left_out_of_the_estimate(empty_caches):
    study = Study.create(quick=True)
    path = replica_path("halfcheetah-medium-v2")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"")
    for config in study.configs():
        config.run_dir.mkdir(parents=True)
        (config.run_dir / "metrics.json").write_text(json.dumps({"status": "completed"}))
    estimate = estimate_wall_time(study, workers=2)
    assert estimate.seconds == 0
    assert estimate.lines == ("runs: all finished already; only the report is written",)


def test_a_long_phase1_run_bounds_the_estimate_from_below(empty_caches):
    # One Phase I run and its two Phase II runs cannot share out over 8 workers.
    study = Study.create(quick=True, k_percents=(0.0,))
    estimate = estimate_wall_time(study, workers=8)
    first, second, _ = study.configs()
    assert isinstance(first, TrainConfig)
    evaluation = 10 * EVAL_SECONDS_PER_EPISODE
    rate = UPDATES_PER_SECOND["iql"]
    phase1 = RUN_START_SECONDS + first.total_steps / rate + 5 * evaluation
    phase2 = RUN_START_SECONDS + second.online_steps * ONLINE_STEP_COST / rate + 6 * evaluation
    assert estimate.seconds == pytest.approx(REPLICA_BUILD_SECONDS + phase1 + phase2)


def test_datasets_on_disk(empty_caches):
    assert dataset_on_disk("some/file.hdf5", "auto")
    assert not dataset_on_disk("hopper-medium-v2", "auto")
    d4rl = empty_caches / "d4rl" / "hopper_medium-v2.hdf5"
    d4rl.parent.mkdir()
    d4rl.write_bytes(b"")
    assert dataset_on_disk("hopper-medium-v2", "auto")
    assert dataset_on_disk("hopper-medium-v2", "d4rl")
    assert not dataset_on_disk("hopper-medium-v2", "replica")
