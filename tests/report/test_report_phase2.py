"""The Phase II report: table numbers and comparison sentences, computed here independently from
the synthetic runs' evaluations."""

from __future__ import annotations

import re
import statistics

import pytest

from hybrid_rl.report.report_phase2 import comparison_sentences, write_phase2_outputs
from hybrid_rl.report.results_phase2 import aggregate_finetune, compare_arms, load_finetune_runs

CLEAN = (50.0, 40.0, 60.0)  # Phase I k = 0 finals, seeds 0–2
EVAL_EVERY = 1_000
# per bonus type, per seed: evaluations at 0, 1,000, 2,000, 3,000 online steps (k = 60)
EVALS = {
    "ensemble": ((10.0, 30.0, 41.0, 44.0), (12.0, 33.0, 35.0, 36.0), (9.0, 20.0, 30.0, 47.0)),
    "none": ((10.0, 15.0, 20.0, 42.0), (12.0, 14.0, 16.0, 20.0), (9.0, 12.0, 14.0, 18.0)),
}
DISAGREEMENT = {"ensemble": (0.9, 0.7, 0.8), "none": (0.4, 0.5, 0.3)}  # last logged, per seed


def first_reach(evals, threshold):
    for i, score in enumerate(evals):
        if score >= threshold:
            return i * EVAL_EVERY
    return None


def expected_median(bonus):
    steps = [first_reach(e, 0.8 * c) for e, c in zip(EVALS[bonus], CLEAN, strict=True)]
    ordered = sorted(float("inf") if s is None else s for s in steps)
    return ordered[1], sum(s is None for s in steps)


def write_study(tmp_path, write_run, write_finetune_run):
    phase1, phase2 = tmp_path / "results", tmp_path / "results_phase2"
    for seed, clean in enumerate(CLEAN):
        write_run(phase1, k=0, seed=seed, evals=(0.0, clean))
        for bonus in ("ensemble", "none"):
            write_finetune_run(
                phase2,
                phase1,
                k=60,
                bonus=bonus,
                seed=seed,
                evals=EVALS[bonus][seed],
                eval_every=EVAL_EVERY,
                disagreement=(2.0, 1.5, DISAGREEMENT[bonus][seed]),
            )
    return phase2


def _row(report, *cells):
    [row] = [
        line
        for line in report.splitlines()
        if line.startswith("|") and all(f"| {c} |" in line for c in cells)
    ]
    return row


def test_table_rows_hold_step0_final_median_steps_censored_count_and_disagreement(
    tmp_path, write_run, write_finetune_run
):
    phase2 = write_study(tmp_path, write_run, write_finetune_run)
    outputs = write_phase2_outputs(phase2, tmp_path / "plots_phase2")
    report = outputs.report.read_text()
    assert outputs.report == tmp_path / "plots_phase2" / "report.md"
    for bonus in ("ensemble", "none"):
        row = _row(report, "IQL", "60", bonus)
        step0 = [e[0] for e in EVALS[bonus]]
        finals = [e[-1] for e in EVALS[bonus]]
        median, censored = expected_median(bonus)
        steps = "not reached (> 3,000)" if median == float("inf") else f"{median:,.0f}"
        disagreement = DISAGREEMENT[bonus]
        assert row.startswith("| hopper-medium-v2 | replica | IQL | 60 |")
        assert f"| {statistics.mean(step0):.1f} ± {statistics.stdev(step0):.1f} |" in row
        assert f"| {statistics.mean(finals):.1f} ± {statistics.stdev(finals):.1f} |" in row
        # the spec's raw steps, then the smoothed steps to 80% / 100% of clean beside them
        assert re.search(rf"\| {re.escape(steps)} \|[^|]+\|[^|]+\| {censored} of 3 \| 3 \|", row)
        assert (
            f"| {statistics.mean(disagreement):.3g} ± {statistics.stdev(disagreement):.3g} |"
        ) in row
    # the data is built so that the two bonus types differ in both respects
    assert expected_median("ensemble") == (2_000, 1)
    assert expected_median("none") == (float("inf"), 2)


def test_sentences_compare_the_bonus_with_none_from_the_numbers(
    tmp_path, write_run, write_finetune_run
):
    phase2 = write_study(tmp_path, write_run, write_finetune_run)
    runs = load_finetune_runs(phase2)[0]
    sentences = comparison_sentences(aggregate_finetune(runs), compare_arms(runs))
    bonus = [e[-1] for e in EVALS["ensemble"]]
    plain = [e[-1] for e in EVALS["none"]]
    gap = statistics.mean(bonus) - statistics.mean(plain)
    assert sentences[0] == (
        "On hopper-medium-v2 (replica data), IQL fine-tuned from its checkpoint trained "
        "without the top 60% of trajectories ends at a final normalized score of "
        f"{statistics.mean(bonus):.1f} ± {statistics.stdev(bonus):.1f} with the ensemble "
        f"bonus vs {statistics.mean(plain):.1f} ± {statistics.stdev(plain):.1f} without it "
        f"({gap:.1f} points higher with the bonus; 3 seeds each)."
    )
    assert sentences[3] == (
        "Online steps to 80% of the clean offline score (as specified; median over seeds): "
        "2,000 with the bonus (1 of 3 runs not reached) vs not reached (> 3,000) without (2 of "
        "3 not reached); only the median run with the bonus reaches it."
    )
    assert sentences[-1] == "No run diverged."


def test_a_small_gap_is_said_to_be_within_one_standard_deviation(
    tmp_path, write_run, write_finetune_run
):
    phase1, phase2 = tmp_path / "results", tmp_path / "results_phase2"
    for seed, (a, b) in enumerate([(40.0, 38.0), (30.0, 33.0)]):
        write_run(phase1, k=0, seed=seed, evals=(0.0, 50.0))
        write_finetune_run(phase2, phase1, bonus="ensemble", seed=seed, evals=(45.0, a))
        write_finetune_run(phase2, phase1, bonus="none", seed=seed, evals=(45.0, b))
    runs = load_finetune_runs(phase2)[0]
    [final, _, paired, steps, _] = comparison_sentences(
        aggregate_finetune(runs), compare_arms(runs)
    )
    # paired on seed: (40 − 38, 30 − 33) -> mean −0.5
    assert paired.startswith("Paired on seed (2 seeds), bonus − none: final −0.5 [")
    assert "its clean checkpoint (k = 0)" in final
    assert (
        "0.5 points lower with the bonus; 2 seeds each; the difference is within one "
        "standard deviation" in final
    )
    assert steps.endswith("both reach it at the same evaluation.")  # at step 0 (45 ≥ 40)


def test_one_seed_each_is_said_and_divergences_are_counted(tmp_path, write_run, write_finetune_run):
    phase1, phase2 = tmp_path / "results", tmp_path / "results_phase2"
    write_run(phase1, k=0, seed=0, evals=(0.0, 50.0))
    write_finetune_run(phase2, phase1, k=30, bonus="ensemble", evals=(10.0, 30.0))
    write_finetune_run(phase2, phase1, k=30, bonus="none", evals=(10.0, 30.0))
    write_finetune_run(phase2, phase1, k=30, bonus="none", seed=1, status="diverged")
    sentences = comparison_sentences(aggregate_finetune(load_finetune_runs(phase2)[0]))
    assert (
        "(the same to 0.1 points; one seed each, so no spread across seeds or CI can be given)"
        in sentences[0]
    )
    assert "not an estimate of the bonus's effect" in sentences[2]
    assert sentences[-1] == (
        "IQL with no bonus diverged (a non-finite metric) in 1 of 2 runs on hopper-medium-v2, "
        "fine-tuned from its checkpoint trained without the top 30% of trajectories."
    )


def test_report_links_every_figure_and_defines_the_clean_reference(
    tmp_path, write_run, write_finetune_run
):
    phase2 = write_study(tmp_path, write_run, write_finetune_run)
    outputs = write_phase2_outputs(phase2, tmp_path / "plots_phase2")
    report = outputs.report.read_text()
    links = re.findall(r"\]\(([^)]+)\)", report)
    assert len(links) == 2 * len(outputs.plots) == 8
    for link in links:
        assert (tmp_path / "plots_phase2" / link).stat().st_size > 0
    assert (
        "final normalized return of the Phase I run with k = 0 (read from that run's "
        "metrics.json)" in report.replace("\n", " ")
    )


def test_an_empty_results_folder_gives_a_report_saying_so(tmp_path):
    outputs = write_phase2_outputs(tmp_path / "none", tmp_path / "plots")
    assert "No run folder was found" in outputs.report.read_text()
    assert outputs.plots == ()


def test_the_table_names_the_phase1_data_of_each_condition(tmp_path, write_run, write_finetune_run):
    phase1, phase2 = tmp_path / "results", tmp_path / "results_phase2"
    write_run(phase1, k=0, seed=0, evals=(0.0, 50.0))
    write_finetune_run(phase2, phase1, k=30, bonus="none", evals=(0.0, 10.0))
    write_finetune_run(phase2, phase1, removal="random", k=30, bonus="none", evals=(0.0, 20.0))
    report = write_phase2_outputs(phase2, tmp_path / "plots").report.read_text()
    assert "| Bonus | Phase I data |" in report
    assert "| 10.0 |" in _row(report, "IQL", "30", "none", "top 30% removed")
    assert "| 20.0 |" in _row(report, "IQL", "30", "none", "random 30% removed")


def test_the_paired_table_gives_per_seed_differences_with_intervals(
    tmp_path, write_run, write_finetune_run
):
    phase2 = write_study(tmp_path, write_run, write_finetune_run)
    outputs = write_phase2_outputs(phase2, tmp_path / "plots_phase2")
    [comparison] = outputs.comparisons
    finals = {b: [e[-1] for e in EVALS[b]] for b in EVALS}
    expected = [x - y for x, y in zip(finals["ensemble"], finals["none"], strict=True)]
    assert comparison.final.seeds == (0, 1, 2)
    assert comparison.final.differences == pytest.approx(expected)
    assert comparison.final.mean.point == pytest.approx(statistics.mean(expected))
    assert comparison.final.mean.low < comparison.final.mean.point < comparison.final.mean.high
    report = outputs.report.read_text()
    assert "**Ensemble bonus vs none, paired on seed**" in report
    paired_part = report[report.index("**Ensemble bonus vs none") :]
    [row] = [line for line in paired_part.splitlines() if line.startswith("| hopper")]
    assert row.startswith("| hopper-medium-v2 | IQL | top 60% removed | as specified | 3 |")
    assert f"| +{statistics.mean(expected):.1f} [" in row


def test_each_preset_pairs_its_bonus_arm_with_its_own_no_bonus_arm(
    tmp_path, write_run, write_finetune_run
):
    phase2 = write_study(tmp_path, write_run, write_finetune_run)
    phase1 = tmp_path / "results"
    # the preset's arms swap the spec's curves, so a pairing across variants would show
    preset_evals = {"ensemble": EVALS["none"], "none": EVALS["ensemble"]}
    for seed in range(len(CLEAN)):
        for bonus, evals in preset_evals.items():
            write_finetune_run(
                phase2, phase1, k=60, bonus=bonus, seed=seed, evals=evals[seed], preset="enoto"
            )
    outputs = write_phase2_outputs(phase2, tmp_path / "plots_phase2")
    spec, enoto = outputs.comparisons
    spec_expected = [b[-1] - n[-1] for b, n in zip(EVALS["ensemble"], EVALS["none"], strict=True)]
    assert (spec.variant, enoto.variant) == ("", " (enoto preset)")
    assert spec.final.differences == pytest.approx(spec_expected)
    assert enoto.final.differences == pytest.approx([-d for d in spec_expected])
    report = outputs.report.read_text()
    assert "| top 60% removed | as specified | 3 |" in report
    assert "| top 60% removed | enoto preset | 3 |" in report
    assert "bonus − none (enoto preset): final " in report


def test_a_one_seed_collapse_is_not_reported_as_an_effect_of_the_bonus(
    tmp_path, write_run, write_finetune_run
):
    """The quick study's case: one seed per arm, a start already at the clean level, and the
    bonus run dipping far below it."""
    phase1, phase2 = tmp_path / "results", tmp_path / "results_phase2"
    write_run(phase1, k=0, evals=(0.0, 41.0, 42.0, 41.5, 41.8, 41.8), eval_std=1.0)
    write_finetune_run(
        phase2, phase1, bonus="ensemble", evals=(41.6, 30.0, 20.0, 36.3), eval_std=1.0
    )
    write_finetune_run(phase2, phase1, bonus="none", evals=(41.6, 40.0, 41.0, 41.0), eval_std=1.0)
    runs = load_finetune_runs(phase2)[0]
    sentences = comparison_sentences(aggregate_finetune(runs), compare_arms(runs))
    [final, trajectory, no_ci, steps, _] = sentences
    assert "one seed each, so no spread across seeds or CI can be given" in final
    assert trajectory.startswith("Both arms start from the same checkpoint at 41.6 (step 0;")
    assert "no gap to recover" in trajectory
    assert "dips 21.6 points below its start at its lowest, ends at 36.3" in trajectory
    assert "dips 1.6 points below its start at its lowest, ends at 41.0" in trajectory
    assert no_ci.startswith("With one seed per arm there is no confidence interval")
    assert "not an estimate of the bonus's effect" in no_ci
    assert "(as specified;" in steps
    row = _row(write_phase2_outputs(phase2, tmp_path / "p").report.read_text(), "ensemble")
    assert "| 1 of 1 | no gap | no gap | no gap |" in row  # No gap, recovery, 50%, 80%


def test_the_report_opens_with_a_short_table_and_the_curves_then_the_diagnostics(
    tmp_path, write_run, write_finetune_run
):
    phase2 = write_study(tmp_path, write_run, write_finetune_run)
    report = write_phase2_outputs(phase2, tmp_path / "plots_phase2").report.read_text()
    glance, summary, diagnostics = (
        report.index("## At a glance"),
        report.index("## Summary"),
        report.index("## Diagnostic tables"),
    )
    assert glance < summary < diagnostics
    opening = report[glance:summary]
    header = "| Condition | Arm | Step-0 | Final | Recovery | Final IQM [interval or range] | n |"
    assert header in opening
    # the fine-tuning curves come first, and only once
    assert "finetune_curves_iql_hopper-medium-v2.png" in opening
    assert report.count("](finetune_curves_iql_hopper-medium-v2.png)") == 1
    # three seeds per arm: a range, never a CI
    rows = [line for line in opening.splitlines() if line.startswith("| hopper")]
    assert rows and all("range (3 seeds)" in row and "CI" not in row for row in rows)
