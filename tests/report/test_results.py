"""Loading run folders and aggregating them over seeds, checked against hand-computed numbers."""

from __future__ import annotations

import json
import math
import statistics

import pytest

from hybrid_rl.data.registry import normalized_score
from hybrid_rl.report.results import aggregate, clean_cell, load_run, load_runs, percent_change
from hybrid_rl.runs.folder import RunFolder

CLEAN_FINALS = {0: 40.0, 1: 44.0, 2: 51.0}
K30_FINALS = {0: 30.0, 1: 35.0, 2: 28.0}


def _grid(tmp_path, write_run):
    for seed, final in CLEAN_FINALS.items():
        write_run(
            tmp_path,
            seed=seed,
            k=0,
            evals=(5.0, final + 10, final),
            loss_variance=(1.0 + seed, 3.0 + seed),
        )
    for seed, final in K30_FINALS.items():
        write_run(
            tmp_path,
            seed=seed,
            k=30,
            evals=(5.0, final, final),
            loss_variance=(10.0 * (seed + 1), 20.0 * (seed + 1)),
        )
    return load_runs(tmp_path)


def _cell(cells, k, algo="iql", removal=None):
    removal = removal or ("none" if k == 0 else "top")
    [cell] = [
        c
        for c in cells
        if c.algo == algo and c.corruption.k_percent == k and c.corruption.removal == removal
    ]
    return cell


def test_runs_load_with_condition_status_and_curves(tmp_path, write_run):
    runs, unreadable = _grid(tmp_path, write_run)
    assert unreadable == [] and len(runs) == 6
    run = next(r for r in runs if r.corruption.k_percent == 30 and r.seed == 1)
    assert (run.algo, run.dataset, run.source, run.corruption.removal) == (
        "iql",
        "hopper-medium-v2",
        "replica",
        "top",
    )
    assert run.status == "completed"
    assert run.eval_steps == (0, 1000, 2000)
    assert run.final_normalized_return == 35.0 and run.best_normalized_return == 35.0
    assert run.train_metrics["critic_loss_rolling_var"] == (20.0, 40.0)


def test_final_and_best_are_mean_and_sample_std_over_seeds(tmp_path, write_run):
    cells = aggregate(_grid(tmp_path, write_run)[0])
    clean, k30 = _cell(cells, 0), _cell(cells, 30)
    assert clean.n == 3 and clean.seeds == (0, 1, 2)
    assert clean.final_mean == pytest.approx(statistics.mean(CLEAN_FINALS.values()))
    assert clean.final_std == pytest.approx(statistics.stdev(CLEAN_FINALS.values()))
    bests = [f + 10 for f in CLEAN_FINALS.values()]
    assert clean.best_mean == pytest.approx(statistics.mean(bests))
    assert clean.best_std == pytest.approx(statistics.stdev(bests))
    assert k30.final_std == pytest.approx(statistics.stdev(K30_FINALS.values()))


def test_change_vs_clean_is_relative_to_the_clean_mean(tmp_path, write_run):
    cells = aggregate(_grid(tmp_path, write_run)[0])
    clean_mean = statistics.mean(CLEAN_FINALS.values())
    k30_mean = statistics.mean(K30_FINALS.values())
    k30 = _cell(cells, 30)
    assert k30.final_change_pct == pytest.approx(100 * (k30_mean - clean_mean) / clean_mean)
    assert k30.final_change_pct < 0
    clean_best = statistics.mean(f + 10 for f in CLEAN_FINALS.values())
    assert k30.best_change_pct == pytest.approx(100 * (k30_mean - clean_best) / clean_best)
    assert _cell(cells, 0).final_change_pct is None
    assert clean_cell(cells, k30) is _cell(cells, 0)


def test_mean_loss_variance_averages_runs_then_seeds(tmp_path, write_run):
    cells = aggregate(_grid(tmp_path, write_run)[0])
    per_run = [statistics.mean((10.0 * (s + 1), 20.0 * (s + 1))) for s in range(3)]
    assert _cell(cells, 30).mean_loss_variance == pytest.approx(statistics.mean(per_run))


def test_diverged_and_failed_runs_are_counted_not_averaged(tmp_path, write_run):
    write_run(tmp_path, algo="cql", k=60, seed=0, evals=(1.0, 50.0, 60.0))
    write_run(
        tmp_path,
        algo="cql",
        k=60,
        seed=1,
        evals=(1.0, 90.0),
        status="diverged",
        loss_variance=(math.nan,),
    )
    write_run(tmp_path, algo="cql", k=60, seed=2, evals=(1.0,), status="failed")
    write_run(tmp_path, algo="cql", k=60, seed=3, evals=(1.0, 2.0), status="running")
    cell = _cell(aggregate(load_runs(tmp_path)[0]), 60, algo="cql")
    assert (cell.n, cell.diverged, cell.failed, cell.running) == (1, 1, 1, 1)
    assert cell.final_mean == 60.0 and math.isnan(cell.final_std)  # one seed: no spread
    assert cell.final_change_pct is None  # no clean CQL cell to compare with


def test_k0_is_one_clean_cell_whatever_the_removal_mode(tmp_path, write_run):
    write_run(tmp_path, removal="top", k=0, seed=0, evals=(0.0, 10.0))
    write_run(tmp_path, removal="random", k=0, seed=1, evals=(0.0, 20.0))
    write_run(tmp_path, removal="random", k=30, seed=0, evals=(0.0, 5.0))
    cells = aggregate(load_runs(tmp_path)[0])
    assert [(c.corruption.removal, c.corruption.k_percent, c.n) for c in cells] == [
        ("none", 0, 2),
        ("random", 30, 1),
    ]
    assert cells[1].final_change_pct == pytest.approx(100 * (5.0 - 15.0) / 15.0)


def test_dataset_source_comes_from_the_config_provenance(tmp_path, write_run):
    write_run(tmp_path, dataset="halfcheetah-medium-v2", source="d4rl")
    write_run(tmp_path, dataset="hopper-medium-v2", source="replica")
    sources = {c.dataset: c.source for c in aggregate(load_runs(tmp_path)[0])}
    assert sources == {"halfcheetah-medium-v2": "d4rl", "hopper-medium-v2": "replica"}


def test_a_run_that_failed_before_starting_is_listed_as_left_out(tmp_path, write_run):
    write_run(tmp_path, seed=0)
    early = tmp_path / "iql_missing_k0_noise0_s0"
    early.mkdir()
    (early / "metrics.json").write_text(
        json.dumps(
            {"status": "failed", "summary": {"error": "FileNotFoundError: no such file x.hdf5"}}
        )
    )
    runs, unreadable = load_runs(tmp_path)
    assert len(runs) == 1
    assert unreadable == [
        "iql_missing_k0_noise0_s0: failed before it started "
        "(FileNotFoundError: no such file x.hdf5)"
    ]


def test_percent_change_has_no_value_against_a_zero_reference():
    assert percent_change(5.0, 0.0) is None
    assert percent_change(-15.0, -10.0) == pytest.approx(-50.0)  # lower is worse, sign kept


def test_the_dataset_mean_before_corruption_is_read_as_a_normalized_score(tmp_path, write_run):
    run_dir = write_run(tmp_path)
    assert load_run(run_dir).dataset_normalized_mean is None  # config.json without the stats
    folder = RunFolder(run_dir)
    saved = folder.read_config()
    saved["corruption"] = {"returns_before": {"mean": 1500.0}, "returns_after": {"mean": 900.0}}
    folder.write_config(saved)
    expected = float(normalized_score("hopper-medium-v2", 1500.0))
    assert load_run(run_dir).dataset_normalized_mean == pytest.approx(expected)


def test_metrics_not_produced_in_an_interval_are_null_and_skipped_in_the_means(tmp_path, write_run):
    # TD3+BC updates its actor every other step: some intervals log no actor loss; the first
    # interval has no rolling variance yet.
    run_dir = write_run(
        tmp_path,
        algo="td3bc",
        evals=(0.0, 10.0, 20.0, 30.0),
        train_values=(
            {"actor_loss": None, "critic_loss_rolling_var": None},
            {"critic_loss_rolling_var": 2.0},
            {"actor_loss": None, "critic_loss_rolling_var": 4.0},
        ),
    )
    run = load_run(run_dir)
    assert run.train_steps == (1000, 2000, 3000)
    assert run.train_metrics["actor_loss"] == (None, 0.5, None)
    assert run.train_metrics["critic_loss_rolling_var"] == (None, 2.0, 4.0)
    assert run.mean_loss_variance == pytest.approx(3.0)
    [cell] = aggregate([run])
    assert cell.mean_loss_variance == pytest.approx(3.0)


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize("damaged", ["metrics.json", "config.json"])
def test_a_truncated_run_file_makes_that_run_unreadable_naming_the_file(
    tmp_path, write_run, damaged
):
    write_run(tmp_path, seed=0, evals=(0.0, 40.0))
    write_run(tmp_path, seed=2, evals=(0.0, 50.0))
    broken = write_run(tmp_path, seed=1, evals=(0.0, 45.0))
    _truncate(broken / damaged)
    runs, unreadable = load_runs(tmp_path)
    assert [r.seed for r in runs] == [0, 2]
    [line] = unreadable
    assert line.startswith(f"{broken.name}: {broken / damaged} is damaged (not valid JSON")
    [cell] = aggregate(runs)
    assert (cell.n, cell.final_mean) == (2, 45.0)


def test_a_run_without_metrics_yet_is_listed_as_left_out(tmp_path, write_run):
    write_run(tmp_path, seed=0)
    started = write_run(tmp_path, seed=1)
    (started / "metrics.json").unlink()
    runs, unreadable = load_runs(tmp_path)
    assert len(runs) == 1
    assert unreadable == [f"{started.name}: metrics.json is missing (the run has not logged yet)"]
