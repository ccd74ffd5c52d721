"""Phase II run folders: the clean offline reference, steps to 80 % of it, censored runs and the
aggregation over seeds, from synthetic run folders."""

from __future__ import annotations

import json
import math
import statistics

import pytest

from hybrid_rl.report.results_phase2 import (
    aggregate_finetune,
    load_finetune_runs,
    median_steps,
)

# Phase I clean (k = 0) final scores per seed: the references of the thresholds.
CLEAN = {0: 50.0, 1: 40.0, 2: 60.0}


@pytest.fixture
def folders(tmp_path, write_run):
    phase1, phase2 = tmp_path / "results", tmp_path / "results_phase2"
    for seed, final in CLEAN.items():
        write_run(phase1, k=0, seed=seed, evals=(0.0, final))
        write_run(phase1, k=60, seed=seed, evals=(0.0, 5.0))
    return phase1, phase2


def test_the_threshold_is_80_percent_of_the_same_seeds_clean_phase1_final_score(
    folders, write_finetune_run
):
    phase1, phase2 = folders
    for seed in CLEAN:
        write_finetune_run(phase2, phase1, k=60, seed=seed, evals=(5.0, 20.0, 45.0, 48.0))
    runs, unreadable = load_finetune_runs(phase2)
    assert unreadable == []
    by_seed = {r.seed: r for r in runs}
    for seed, clean in CLEAN.items():
        assert by_seed[seed].clean_offline_score == clean
        assert by_seed[seed].threshold == pytest.approx(0.8 * clean)
    # seed 0: 40 needed, first reached at the 2nd eval; seed 1: 32 needed, 2nd eval as well;
    # seed 2: 48 needed, only the last eval (48.0, equal counts as reached).
    assert [by_seed[s].steps_to_threshold for s in (0, 1, 2)] == [2_000, 2_000, 3_000]
    assert by_seed[0].step0_normalized_return == 5.0
    assert by_seed[0].final_normalized_return == 48.0


def test_a_run_that_never_reaches_the_threshold_is_censored_not_dropped(
    folders, write_finetune_run
):
    phase1, phase2 = folders
    write_finetune_run(phase2, phase1, k=60, seed=0, evals=(5.0, 39.9, 30.0))  # needs 40
    write_finetune_run(phase2, phase1, k=60, seed=1, evals=(5.0, 33.0, 30.0))  # needs 32
    write_finetune_run(phase2, phase1, k=60, seed=2, evals=(5.0, 10.0, 20.0))  # needs 48
    runs, _ = load_finetune_runs(phase2)
    assert [r.reached for r in sorted(runs, key=lambda r: r.seed)] == [False, True, False]
    [cell] = aggregate_finetune(runs)
    assert (cell.n, cell.reached, cell.censored, cell.no_reference) == (3, 1, 2, 0)
    assert cell.steps_median == math.inf  # two of three never reached it
    assert cell.budget == 2_000


def test_the_median_counts_censored_runs_as_beyond_the_budget(folders, write_finetune_run):
    phase1, phase2 = folders
    write_finetune_run(phase2, phase1, seed=0, evals=(0.0, 10.0, 45.0))  # 2,000
    write_finetune_run(phase2, phase1, seed=1, evals=(0.0, 35.0, 35.0))  # 1,000
    write_finetune_run(phase2, phase1, seed=2, evals=(0.0, 10.0, 20.0))  # censored
    runs, _ = load_finetune_runs(phase2)
    expected = statistics.median([2_000.0, 1_000.0, math.inf])
    assert median_steps(runs) == expected == 2_000.0
    assert median_steps(runs[:1] + runs[2:]) == math.inf  # (2,000, censored): no median step


def test_without_a_completed_clean_phase1_run_there_is_no_reference(
    tmp_path, write_run, write_finetune_run
):
    phase1, phase2 = tmp_path / "results", tmp_path / "results_phase2"
    write_run(phase1, k=0, seed=0, evals=(0.0, 50.0), status="running")
    write_finetune_run(phase2, phase1, seed=0, evals=(0.0, 60.0))
    write_finetune_run(phase2, phase1, seed=1, evals=(0.0, 60.0))  # no Phase I run at all
    runs, _ = load_finetune_runs(phase2)
    assert all(r.clean_offline_score is None and r.reached is None for r in runs)
    [cell] = aggregate_finetune(runs)
    assert (cell.no_reference, cell.reached, cell.censored, cell.steps_median) == (2, 0, 0, None)


def test_an_explicit_phase1_folder_overrides_the_one_saved_in_the_run(
    folders, tmp_path, write_finetune_run
):
    phase1, phase2 = folders
    write_finetune_run(phase2, tmp_path / "moved-away", seed=1, evals=(0.0, 40.0))
    [run], _ = load_finetune_runs(phase2)
    assert run.clean_offline_score is None
    [run], _ = load_finetune_runs(phase2, phase1_results_dir=phase1)
    assert run.clean_offline_score == CLEAN[1]


def test_cells_average_completed_seeds_and_count_the_other_statuses(folders, write_finetune_run):
    phase1, phase2 = folders
    finals = {0: 30.0, 1: 36.0}
    disagreement = {0: (2.0, 1.0), 1: (4.0, 3.0)}
    for seed, final in finals.items():
        write_finetune_run(
            phase2,
            phase1,
            k=60,
            seed=seed,
            bonus="none",
            evals=(4.0 + seed, 10.0, final),
            disagreement=disagreement[seed],
        )
    write_finetune_run(phase2, phase1, k=60, seed=2, bonus="none", status="diverged")
    write_finetune_run(phase2, phase1, k=60, seed=3, bonus="none", status="running")
    write_finetune_run(phase2, phase1, k=60, seed=0, bonus="ensemble")
    cells = aggregate_finetune(load_finetune_runs(phase2)[0])
    assert [c.bonus_type for c in cells] == ["ensemble", "none"]
    none = cells[1]
    assert (none.n, none.seeds, none.diverged, none.running, none.failed) == ((2, (0, 1), 1, 1, 0))
    assert none.final_mean == pytest.approx(statistics.mean(finals.values()))
    assert none.final_std == pytest.approx(statistics.stdev(finals.values()))
    assert none.step0_mean == pytest.approx(4.5)
    assert none.disagreement_mean == pytest.approx(statistics.mean([1.0, 3.0]))  # last logged
    assert none.threshold_mean == pytest.approx(0.8 * statistics.mean([CLEAN[0], CLEAN[1]]))


def test_an_unreadable_run_folder_is_listed_with_the_reason(folders, write_finetune_run):
    phase1, phase2 = folders
    write_finetune_run(phase2, phase1, seed=0)
    broken = phase2 / "ft_broken"
    broken.mkdir()
    (broken / "metrics.json").write_text(
        json.dumps({"status": "failed", "summary": {"error": "boom"}})
    )
    runs, unreadable = load_finetune_runs(phase2)
    assert len(runs) == 1
    assert unreadable == ["ft_broken: failed before it started (boom)"]


def test_the_final_disagreement_is_the_last_one_logged(folders, write_finetune_run):
    phase1, phase2 = folders
    evals = (0.0, 10.0, 20.0, 30.0)
    # null before updates start, and in an interval without a logged disagreement
    write_finetune_run(phase2, phase1, seed=0, evals=evals, disagreement=(None, 2.0, None))
    write_finetune_run(phase2, phase1, seed=1, evals=evals, disagreement=(None, 4.0, 3.0))
    runs, _ = load_finetune_runs(phase2)
    by_seed = {r.seed: r for r in runs}
    assert by_seed[0].train_metrics["disagreement_collected"] == (None, 2.0, None)
    assert (by_seed[0].final_disagreement, by_seed[1].final_disagreement) == (2.0, 3.0)
    [cell] = aggregate_finetune(runs)
    assert cell.disagreement_mean == pytest.approx(2.5)


def test_a_truncated_metrics_file_makes_that_run_unreadable_naming_the_file(
    folders, write_finetune_run
):
    phase1, phase2 = folders
    write_finetune_run(phase2, phase1, seed=0)
    broken = write_finetune_run(phase2, phase1, seed=1)
    metrics = broken / "metrics.json"
    metrics.write_bytes(metrics.read_bytes()[: metrics.stat().st_size // 2])
    runs, unreadable = load_finetune_runs(phase2)
    assert [r.seed for r in runs] == [0]
    [line] = unreadable
    assert line.startswith(f"{broken.name}: {metrics} is damaged (not valid JSON")


def test_a_damaged_clean_phase1_run_gives_no_reference(folders, write_finetune_run):
    phase1, phase2 = folders
    write_finetune_run(phase2, phase1, seed=0, evals=(0.0, 60.0))
    write_finetune_run(phase2, phase1, seed=1, evals=(0.0, 60.0))
    [clean_seed0] = [p for p in phase1.iterdir() if p.name.endswith("_k0_noise0_s0")]
    (clean_seed0 / "metrics.json").write_text('{"status": "compl')
    runs, unreadable = load_finetune_runs(phase2)
    assert unreadable == []
    by_seed = {r.seed: r for r in runs}
    assert by_seed[0].clean_offline_score is None and by_seed[0].reached is None
    assert by_seed[1].clean_offline_score == CLEAN[1]


def test_each_phase1_condition_is_its_own_cell(tmp_path, write_run, write_finetune_run):
    phase1, phase2 = tmp_path / "results", tmp_path / "results_phase2"
    write_run(phase1, k=0, seed=0, evals=(0.0, 50.0))
    write_finetune_run(phase2, phase1, k=30, evals=(0.0, 10.0))
    write_finetune_run(phase2, phase1, removal="random", k=30, sigma=0.1, evals=(0.0, 40.0))
    cells = aggregate_finetune(load_finetune_runs(phase2)[0])
    assert [(c.corruption.label, c.final_mean) for c in cells] == [
        ("random 30% removed, reward noise σ=0.1", 40.0),
        ("top 30% removed", 10.0),
    ]
    assert all(c.threshold_mean == pytest.approx(40.0) for c in cells)  # the same clean run
