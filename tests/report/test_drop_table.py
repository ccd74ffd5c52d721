"""The drop table: each condition's kept data (from real corruption stats) beside its cost."""

from __future__ import annotations

import pytest

from hybrid_rl.data.corruption import CorruptionConfig, corrupt
from hybrid_rl.data.hdf5_format import read_d4rl_hdf5
from hybrid_rl.data.registry import normalized_score
from hybrid_rl.report.drop_table import drop_table
from hybrid_rl.report.report import phase1_section
from hybrid_rl.report.results import aggregate, load_runs

DATASET = "hopper-medium-v2"
# condition → the final score its synthetic run ends at
FINALS = {
    ("top", 0.0): 45.0,
    ("top", 30.0): 31.5,
    ("random", 30.0): 44.0,
    ("random_transitions", 30.0): 43.0,
}


@pytest.fixture
def drop_runs(tmp_path, hopper_file, write_run):
    """Synthetic IQL runs whose config.json holds the stats of real corruptions of a real
    Hopper file; returns the results folder and each condition's stats."""
    transitions = read_d4rl_hdf5(hopper_file)
    stats = {}
    for (removal, k), final in FINALS.items():
        _, condition_stats = corrupt(transitions, CorruptionConfig(removal, k), seed=0)
        stats[removal, k] = condition_stats.to_dict()
        write_run(
            tmp_path,
            dataset=DATASET,
            removal=removal,
            k=k,
            evals=(10.0, final),
            corruption=stats[removal, k],
        )
    # a second seed of the clean and top-30% conditions, the clean one far luckier: an
    # unpaired Δ would charge seed 1's clean luck to the one-seed random control
    for (removal, k), final in {("top", 0.0): 65.0, ("top", 30.0): 40.5}.items():
        write_run(
            tmp_path,
            dataset=DATASET,
            removal=removal,
            k=k,
            seed=1,
            evals=(10.0, final),
            corruption=stats[removal, k],
        )
    return tmp_path, stats


def rows_by_condition(results_dir):
    runs, _ = load_runs(results_dir)
    table = drop_table(aggregate(runs), runs)
    assert table is not None
    column = {name: i for i, name in enumerate(table.header)}
    return {row.cells[column["Condition"]]: row.cells for row in table.rows}, column


def test_each_condition_shows_what_it_kept_and_its_cost_in_points(drop_runs):
    results_dir, stats = drop_runs
    rows, column = rows_by_condition(results_dir)
    assert set(rows) == {
        "clean",
        "top 30% removed",
        "random 30% removed",
        "random 30% removed (matched on transitions)",
    }
    clean, top = stats["top", 0.0], stats["top", 30.0]
    for label, key in (("clean", ("top", 0.0)), ("top 30% removed", ("top", 30.0))):
        kept = stats[key]
        assert rows[label][column["Trajectories kept"]] == (
            f"{kept['trajectories_after']:,} / {clean['trajectories_before']:,}"
        )
        share = 100 * kept["transitions_after"] / kept["transitions_before"]
        assert rows[label][column["Transitions kept"]] == (
            f"{kept['transitions_after']:,} ({share:.0f}%)"
        )
        best = normalized_score(DATASET, kept["returns_after"]["max"])
        assert rows[label][column["Kept return (normalized max)"]] == f"{best:.1f}"
    change, paired = (
        column["Δ final vs clean, paired on seed (points) [interval]"],
        column["Paired seeds"],
    )
    assert rows["clean"][change] == "clean"
    # seeds 0 and 1: 31.5 − 45 = −13.5 and 40.5 − 65 = −24.5, mean −19.0
    assert rows["top 30% removed"][change] == "−19.0 [−24.5, −13.5] range (2 seeds)"
    assert rows["top 30% removed"][paired] == "2"
    # seed 0 only, against seed 0's clean 45 (not the two-seed clean mean 55)
    assert rows["random 30% removed"][change] == "−1.0 (1 seed)"
    assert rows["random 30% removed"][paired] == "1"
    # Top-k removal takes the best trajectories: what is left tops out lower than the clean
    # data, which a random removal of the same count need not do.
    maximum = column["Kept return (normalized max)"]
    assert float(rows["top 30% removed"][maximum]) < float(rows["clean"][maximum])
    assert stats["random", 30.0]["trajectories_after"] == top["trajectories_after"], (
        "the trajectory-matched control keeps as many trajectories as top-k"
    )


def test_runs_without_corruption_stats_leave_the_table_out(tmp_path, write_run):
    write_run(tmp_path, dataset=DATASET, evals=(10.0, 45.0))
    runs, _ = load_runs(tmp_path)
    assert drop_table(aggregate(runs), runs) is None
    _, text = phase1_section(tmp_path, tmp_path / "plots", tmp_path)
    assert "What each condition kept" not in text


def test_the_phase1_report_carries_the_drop_table(drop_runs, tmp_path):
    results_dir, _ = drop_runs
    _, text = phase1_section(results_dir, tmp_path / "plots", tmp_path)
    assert "**What each condition kept, and what it cost**" in text
    assert "| hopper-medium-v2 | IQL | top 30% removed | 2 |" in text
