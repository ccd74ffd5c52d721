"""report.md: the table rows, percentages and generated sentences, from synthetic runs."""

from __future__ import annotations

import re
import statistics
from pathlib import Path

from hybrid_rl.report.report import (
    degradation_sentences,
    format_change,
    format_mean_std,
    write_phase1_outputs,
)
from hybrid_rl.report.results import aggregate, load_runs

CLEAN = (40.0, 44.0, 51.0)
TOP60 = (20.0, 26.0, 23.0)


def _write_study(results: Path, write_run) -> None:
    for seed, (clean, top60) in enumerate(zip(CLEAN, TOP60, strict=True)):
        write_run(results, k=0, seed=seed, evals=(0.0, clean + 5, clean), loss_variance=(2.0, 4.0))
        write_run(results, k=60, seed=seed, evals=(0.0, top60, top60), loss_variance=(8.0, 8.0))


def _row(report: str, *cells: str) -> str:
    [row] = [
        line
        for line in report.splitlines()
        if line.startswith("|") and all(f"| {c} |" in line for c in cells)
    ]
    return row


def test_report_table_has_mean_std_n_change_and_source(tmp_path, write_run):
    _write_study(tmp_path / "results", write_run)
    outputs = write_phase1_outputs(tmp_path / "results", tmp_path / "plots")
    report = outputs.report.read_text()
    assert outputs.report == tmp_path / "plots" / "report.md"
    clean_mean, top_mean = statistics.mean(CLEAN), statistics.mean(TOP60)
    change = 100 * (top_mean - clean_mean) / clean_mean
    row = _row(report, "IQL", "top", "60")
    assert f"| {top_mean:.1f} ± {statistics.stdev(TOP60):.1f} |" in row
    assert f"| −{abs(change):.1f}% |" in row
    assert "| hopper-medium-v2 | replica |" in row
    # IQM of 3 seeds (the mean: nothing to trim) with its bootstrap interval
    assert f"| {statistics.mean(TOP60):.1f} [" in row
    # P(a k = 60 run ends above a clean run): every k = 60 final is below every clean one
    assert "| 0.00 (" in row or "| 0.00 [0.00, 0.00] |" in row
    clean_row = _row(report, "IQL", "none", "0")
    assert f"| {clean_mean:.1f} ± {statistics.stdev(CLEAN):.1f} |" in clean_row
    best = [c + 5 for c in CLEAN]
    assert f"| {statistics.mean(best):.1f} ± {statistics.stdev(best):.1f} |" in clean_row
    assert "| clean |" in clean_row and "| 3 |" in clean_row


def test_report_states_the_measured_degradation(tmp_path, write_run):
    _write_study(tmp_path / "results", write_run)
    report = write_phase1_outputs(tmp_path / "results", tmp_path / "plots").report.read_text()
    clean_mean, top_mean = statistics.mean(CLEAN), statistics.mean(TOP60)
    expected = (
        f"On hopper-medium-v2 (replica data), removing the top 60% of trajectories (by return) "
        f"lowers IQL's final normalized score from {clean_mean:.1f} ± "
        f"{statistics.stdev(CLEAN):.1f} to {top_mean:.1f} ± {statistics.stdev(TOP60):.1f} "
        f"(−{100 * (clean_mean - top_mean) / clean_mean:.1f}%); 3 seeds each."
    )
    assert expected in report
    assert "No run diverged." in report


def test_report_links_every_figure_that_exists(tmp_path, write_run):
    _write_study(tmp_path / "results", write_run)
    outputs = write_phase1_outputs(tmp_path / "results", tmp_path / "plots")
    links = re.findall(r"\]\(([^)]+)\)", outputs.report.read_text())
    assert len(links) == 2 * len(outputs.plots) == 8  # no Q values logged: no Q figure
    for link in links:
        assert (tmp_path / "plots" / link).stat().st_size > 0


def test_one_seed_is_said_to_be_one_seed(tmp_path, write_run):
    write_run(tmp_path, algo="cql", k=0, evals=(0.0, 50.0))
    write_run(tmp_path, algo="cql", k=30, evals=(0.0, 60.0))
    [sentence, *_] = degradation_sentences(aggregate(load_runs(tmp_path)[0]))
    assert sentence == (
        "On hopper-medium-v2 (replica data), removing the top 30% of trajectories (by return) "
        "raises CQL's final normalized score from 50.0 to 60.0 (+20.0%); one seed each, so no "
        "spread across seeds can be given."
    )


def test_overlap_within_one_std_and_divergences_are_stated(tmp_path, write_run):
    for seed, (clean, noisy) in enumerate([(40.0, 38.0), (50.0, 49.0)]):
        write_run(tmp_path, k=0, seed=seed, evals=(0.0, clean))
        write_run(tmp_path, k=0, sigma=0.5, seed=seed, evals=(0.0, noisy))
    write_run(tmp_path, k=0, sigma=0.5, seed=2, evals=(0.0, 1.0), status="diverged")
    sentences = degradation_sentences(aggregate(load_runs(tmp_path)[0]))
    assert sentences == [
        "On hopper-medium-v2 (replica data), adding Gaussian noise with σ = 0.5 to the rewards "
        "lowers IQL's final normalized score from 45.0 ± 7.1 to 43.5 ± 7.8 (−3.3%); 2 seeds "
        "each; the difference is within one standard deviation across seeds.",
        "IQL diverged (a non-finite loss) in 1 of 3 runs on hopper-medium-v2 when adding "
        "Gaussian noise with σ = 0.5 to the rewards.",
    ]


def test_a_missing_clean_condition_is_said_not_compared(tmp_path, write_run):
    write_run(tmp_path, k=30, evals=(0.0, 10.0))
    [sentence, _] = degradation_sentences(aggregate(load_runs(tmp_path)[0]))
    assert "cannot be compared" in sentence and "clean condition has no completed run" in sentence


def test_an_empty_results_folder_gives_a_report_that_says_so(tmp_path):
    outputs = write_phase1_outputs(tmp_path / "nothing", tmp_path / "plots")
    assert "No run folder was found" in outputs.report.read_text()
    assert outputs.plots == ()


def test_number_formats():
    assert format_mean_std(47.14, 0.83, 3) == "47.1 ± 0.8"
    assert format_mean_std(47.14, float("nan"), 1) == "47.1"
    assert format_mean_std(float("nan"), float("nan"), 0) == "—"
    assert format_change(-12.34) == "−12.3%" and format_change(4.0) == "+4.0%"
    assert format_change(None) == "n/a"


def test_a_run_with_a_truncated_metrics_file_is_left_out_and_the_rest_reported(tmp_path, write_run):
    _write_study(tmp_path / "results", write_run)
    broken = write_run(tmp_path / "results", k=60, seed=3, evals=(0.0, 1.0, 1.0))
    metrics = broken / "metrics.json"
    metrics.write_bytes(metrics.read_bytes()[: metrics.stat().st_size // 2])
    outputs = write_phase1_outputs(tmp_path / "results", tmp_path / "plots")
    report = outputs.report.read_text()
    assert len(outputs.runs) == 6 and broken.name not in {r.run_name for r in outputs.runs}
    left_out = report[report.index("## Run folders left out") :].splitlines()[2]
    assert left_out.startswith(f"- {broken.name}: {metrics} is damaged (not valid JSON")
    top_mean = statistics.mean(TOP60)  # seed 3 is not averaged in
    assert f"| {top_mean:.1f} ± {statistics.stdev(TOP60):.1f} |" in _row(report, "IQL", "top", "60")
    assert len(outputs.plots) == 4
