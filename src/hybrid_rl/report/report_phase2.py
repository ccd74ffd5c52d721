"""The generated Phase II report: a table per algo × dataset × condition × bonus type, the
figures, and
sentences comparing the ensemble bonus with plain fine-tuning, every number from the runs.

`write_phase2_outputs(results_dir, plots_dir)` is the whole step: load the run folders,
aggregate over seeds, write the plots, `plots_dir/report.md` and `plots_dir/report.html`.

The two arms (ensemble bonus and none) share seeds, evaluation seeds and the Phase I
checkpoint, so they are compared paired on seed, with the interval the number of seeds allows
(`statistics.interval_over_seeds`: below 5 seeds their range). One seed per arm has none:
the sentences then give the step-0 score, the dip and the recovery of each arm, and say that
the difference is one seed's outcome, not an estimate of the bonus's effect.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

from hybrid_rl.data.corruption import CorruptionConfig
from hybrid_rl.report.document import (
    Section,
    Table,
    TableRow,
    section_markdown,
    write_section_html,
)
from hybrid_rl.report.plotting import PlotFile
from hybrid_rl.report.plotting_phase2 import (
    BONUS_LABELS,
    NOT_REACHED,
    condition_label,
    write_phase2_plots,
)
from hybrid_rl.report.recovery import (
    CLEAN_REFERENCE_EVALS,
    MIN_GAP_POINTS,
    NO_GAP_STANDARD_ERRORS,
    RUNNING_MEAN_EVALS,
    SUSTAINED_EVALS,
)
from hybrid_rl.report.report import (
    divergence_sentences,
    format_mean_std,
    format_probability,
    interval_definition,
    select_runs,
    write_markdown,
)
from hybrid_rl.report.results import corruption_order
from hybrid_rl.report.results_phase2 import (
    THRESHOLD_FRACTION,
    ArmComparison,
    FinetuneCell,
    FinetuneRecord,
    Phase2CellKey,
    aggregate_finetune,
    arm_text,
    compare_arms,
    load_finetune_runs,
)
from hybrid_rl.report.statistics import Interval, seed_count

_PCT = f"{THRESHOLD_FRACTION:.0%}"
_COLUMNS: tuple[tuple[str, bool], ...] = (
    ("Dataset", False),
    ("Source", False),
    ("Algo", False),
    ("k (%)", True),
    ("Bonus", False),
    ("Phase I data", False),
    ("Step-0 score", True),
    ("Final score", True),
    (f"Steps to {_PCT} of clean (median, as specified)", True),
    (f"Steps to {_PCT} of clean (median, smoothed)", True),
    ("Steps to 100% of clean (median, smoothed)", True),
    ("Not reached", True),
    ("n", True),
    ("Final disagreement", True),
    ("Diverged", True),
    ("Failed", True),
    ("Running", True),
    ("Final IQM [interval]", True),
    ("Gap: clean (pooled) − start", True),
    ("No gap", True),
    ("Final recovery toward clean offline (IQM)", True),
    ("Steps to 50% recovery (median, smoothed)", True),
    ("Steps to 80% recovery (median, smoothed)", True),
    ("Recovery target", False),
    ("Final recovery toward clean fine-tuned (IQM)", True),
    ("Steps to clean fine-tuned (median, smoothed)", True),
    ("AUC (IQM) [interval]", True),
    ("Dip depth (IQM) [interval]", True),
)
_PAIRED_COLUMNS: tuple[tuple[str, bool], ...] = (
    ("Dataset", False),
    ("Algo", False),
    ("Phase I data", False),
    ("Arms", False),
    ("Paired seeds", True),
    ("Final: bonus − none [interval]", True),
    ("AUC: bonus − none [interval]", True),
    ("Dip depth: bonus − none [interval]", True),
    ("P(bonus > none) [interval]", True),
)


@dataclass(frozen=True)
class Phase2Outputs:
    report: Path
    plots: tuple[PlotFile, ...]
    cells: tuple[FinetuneCell, ...]
    runs: tuple[FinetuneRecord, ...]
    section: Section | None = None
    comparisons: tuple[ArmComparison, ...] = ()
    html: Path | None = None


def write_phase2_outputs(
    results_dir: str | os.PathLike[str],
    plots_dir: str | os.PathLike[str],
    phase1_results_dir: str | os.PathLike[str] | None = None,
    command: str | None = None,
) -> Phase2Outputs:
    """Plots, `report.md` and `report.html` in `plots_dir` from every run folder in
    `results_dir`; the clean offline scores come from `phase1_results_dir` (default: each
    run's own Phase I folder); `command` (default: this process's) is named in the HTML."""
    outputs, text = phase2_section(results_dir, plots_dir, plots_dir, phase1_results_dir)
    write_markdown(outputs.report, text)
    assert outputs.section is not None
    html = write_section_html(outputs.report, outputs.section, command)
    return dataclasses.replace(outputs, html=html)


def phase2_section(
    results_dir: str | os.PathLike[str],
    plots_dir: str | os.PathLike[str],
    report_dir: str | os.PathLike[str],
    phase1_results_dir: str | os.PathLike[str] | None = None,
    run_names: Collection[str] | None = None,
) -> tuple[Phase2Outputs, str]:
    """Write the Phase II plots into `plots_dir`; return the outputs and the report text for
    `report_dir/report.md` (links relative to `report_dir`), from the run folders in
    `results_dir` (only those named in `run_names`, if given)."""
    results_dir, plots_dir, report_dir = Path(results_dir), Path(plots_dir), Path(report_dir)
    runs, unreadable = select_runs(*load_finetune_runs(results_dir, phase1_results_dir), run_names)
    cells = aggregate_finetune(runs)
    comparisons = compare_arms(runs)
    plots = write_phase2_plots(runs, cells, plots_dir) if runs else []
    section = build_phase2_section(cells, comparisons, plots, runs, unreadable, results_dir)
    text = section_markdown(section, report_dir)
    outputs = Phase2Outputs(
        report_dir / "report.md",
        tuple(plots),
        tuple(cells),
        tuple(runs),
        section,
        tuple(comparisons),
    )
    return outputs, text


def format_steps(cell: FinetuneCell) -> str:
    """The median steps to the threshold: "3,000", "not reached (> 5,000)", or "—"."""
    if cell.steps_median is None:
        return "—"
    if math.isinf(cell.steps_median):
        return f"{NOT_REACHED} (> {cell.budget:,})"
    return f"{cell.steps_median:,.0f}"


def format_clean_steps(cell: FinetuneCell, fraction: float) -> str:
    """Median smoothed steps to `fraction` of the pooled clean reference: "2,000", "not
    reached (> 5,000)" or "—" (no clean reference)."""
    median = cell.clean_steps_median.get(fraction)
    if median is None:
        return "—"
    if math.isinf(median):
        return f"{NOT_REACHED} (> {cell.budget:,})"
    return f"{median:,.0f}"


def recovery_target(cell: FinetuneCell) -> str:
    """Which target the cell's recovery used: the clean agent's own fine-tuned curve (same
    arm, same seed) when its runs have one, else the pooled clean offline reference."""
    if cell.corruption.is_clean:
        return "— (the clean start itself)"
    if cell.curve_targets == 0:
        return "clean offline (pooled): no clean fine-tuned run of this arm"
    if cell.curve_targets < cell.n:
        return f"clean fine-tuned for {cell.curve_targets} of {cell.n} seeds"
    return "clean fine-tuned (same arm, same seed)"


def _curve_steps(cell: FinetuneCell) -> str:
    if cell.curve_targets == 0 or cell.curve_steps_median is None:
        return "—"
    if math.isinf(cell.curve_steps_median):
        return f"{NOT_REACHED} (> {cell.budget:,})"
    return f"{cell.curve_steps_median:,.0f}"


def format_disagreement(mean: float, std: float, n: int) -> str:
    """Three significant digits ("0.412 ± 0.05"); the mean alone for one seed; "—" for none."""
    if n == 0 or math.isnan(mean):
        return "—"
    return f"{mean:.3g}" if n == 1 or math.isnan(std) else f"{mean:.3g} ± {std:.3g}"


def format_recovery_steps(cell: FinetuneCell, level: float) -> str:
    """Median steps to `level` recovery over the runs with a gap: "2,000", "not reached
    (> 5,000)", "no gap" (no run had a gap to close) or "—" (no clean reference)."""
    if cell.with_clean_reference == 0:
        return "—"
    if cell.no_gap == cell.with_clean_reference:
        return "no gap"
    median = cell.recovery_steps_median.get(level)
    if median is None:
        return "—"
    if math.isinf(median):
        return f"{NOT_REACHED} (> {cell.budget:,})"
    return f"{median:,.0f}"


def results_table(cells: Sequence[FinetuneCell]) -> Table:
    """One row per condition × bonus type, each row naming its run folders."""
    rows = []
    # Beside other arms (presets, controls) the spec's arms are labelled "as specified".
    mixed = any(arm_text(c.bonus_type) == c.bonus_type for c in cells)
    for c in cells:
        not_reached = f"{c.censored} of {c.with_reference}" if c.with_reference else "—"
        if c.no_reference:
            not_reached += f" ({c.no_reference} without a clean reference)"
        no_gap = f"{c.no_gap} of {c.with_clean_reference}" if c.with_clean_reference else "—"
        recovery = (
            "no gap"
            if c.with_clean_reference and c.no_gap == c.with_clean_reference
            else _percent_interval(c.recovery_iqm)
        )
        text = (
            c.dataset,
            c.source,
            c.algo.upper(),
            f"{c.corruption.k_percent:g}",
            arm_text(c.bonus_type) if mixed else c.bonus_type,
            condition_label(c.corruption),
            format_mean_std(c.step0_mean, c.step0_std, c.n),
            format_mean_std(c.final_mean, c.final_std, c.n),
            format_steps(c),
            format_clean_steps(c, THRESHOLD_FRACTION),
            format_clean_steps(c, 1.0),
            not_reached,
            str(c.n),
            format_disagreement(c.disagreement_mean, c.disagreement_std, c.n),
            str(c.diverged),
            str(c.failed),
            str(c.running),
            c.final_iqm.format(),
            "—"
            if math.isnan(c.gap_mean)
            else f"{c.gap_mean:.1f} (clean: {seed_count(c.clean_seeds)})",
            no_gap,
            recovery,
            format_recovery_steps(c, 0.5),
            format_recovery_steps(c, 0.8),
            recovery_target(c),
            _percent_interval(c.curve_recovery_iqm) if c.curve_targets else "—",
            _curve_steps(c),
            c.auc_iqm.format(),
            c.dip_iqm.format(),
        )
        rows.append(TableRow(text, c.run_dirs))
    header, numeric = zip(*_COLUMNS, strict=True)
    return Table(tuple(header), tuple(numeric), tuple(rows))


def _gap_text(cell: FinetuneCell) -> str:
    """The mean gap and how many seeds the clean reference pools: "12.3 (clean: 2 seeds)"."""
    if math.isnan(cell.gap_mean):
        return "—"
    return f"{cell.gap_mean:.1f} (clean: {seed_count(cell.clean_seeds)})"


def _percent_interval(interval: Interval) -> str:
    """A fraction as percent: "62% [40%, 85%] 95% CI", "62% [40%, 85%] range (3 seeds)",
    "62% (1 seed)" or "—"."""
    if interval.n == 0 or not math.isfinite(interval.point):
        return "—"
    point = f"{100 * interval.point:.0f}%"
    if interval.kind == "none":
        return f"{point} ({interval.sample})"
    label = "95% CI" if interval.has_ci else f"range ({interval.sample})"
    return f"{point} [{100 * interval.low:.0f}%, {100 * interval.high:.0f}%] {label}"


def glance_table(cells: Sequence[FinetuneCell]) -> Table:
    """The short table a report opens with: per condition and arm, the step-0 and final
    scores, the recovery (toward the clean fine-tuned curve where there is one, else toward
    the pooled clean offline reference), the final IQM with its interval or range, and n."""
    rows = [
        TableRow(
            (
                f"{c.dataset}, {c.algo.upper()}, {condition_label(c.corruption)}",
                arm_text(c.bonus_type),
                format_mean_std(c.step0_mean, c.step0_std, c.n),
                format_mean_std(c.final_mean, c.final_std, c.n),
                _glance_recovery(c),
                c.final_iqm.format(),
                str(c.n),
            ),
            c.run_dirs,
        )
        for c in cells
    ]
    return Table(
        ("Condition", "Arm", "Step-0", "Final", "Recovery", "Final IQM [interval or range]", "n"),
        (False, False, True, True, True, True, True),
        tuple(rows),
        note="Recovery: toward the clean agent's own fine-tuned score at the same step when the "
        'same arm ran from the clean checkpoint of the same seed ("to clean fine-tuned"), '
        'else toward the pooled clean offline reference ("to clean offline"); definitions '
        "and every other column under Diagnostic tables.",
    )


def _glance_recovery(cell: FinetuneCell) -> str:
    if cell.corruption.is_clean:
        return "— (clean start)"
    if cell.curve_targets:
        return f"{_percent_interval(cell.curve_recovery_iqm)} to clean fine-tuned"
    if cell.with_clean_reference == 0:
        return "—"
    if cell.no_gap == cell.with_clean_reference:
        return "no gap"
    return f"{_percent_interval(cell.recovery_iqm)} to clean offline"


def paired_table(comparisons: Sequence[ArmComparison]) -> Table:
    """Bonus − none per algo × dataset × condition, paired on seed."""
    rows = [
        TableRow(
            (
                c.dataset,
                c.algo.upper(),
                condition_label(c.corruption),
                _variant_text(c.variant),
                str(len(c.final.seeds)),
                c.final.format(),
                c.auc.format(),
                c.dip.format(),
                format_probability(c.improvement),
            ),
            c.run_dirs,
        )
        for c in comparisons
    ]
    header, numeric = zip(*_PAIRED_COLUMNS, strict=True)
    return Table(
        tuple(header),
        tuple(numeric),
        tuple(rows),
        title="Ensemble bonus vs none, paired on seed",
    )


def _variant_text(variant: str) -> str:
    """ "as specified" for the spec's pair, else the variant's words ("enoto preset")."""
    return variant.strip(" ()") or "as specified"


def table_rows(cells: Sequence[FinetuneCell]) -> list[str]:
    """The results table in Markdown, header included, one row per condition."""
    return results_table(cells).markdown()


def starting_point(corruption: CorruptionConfig) -> str:
    """Which Phase I checkpoint a run starts from, in words, e.g. "its clean checkpoint
    (k = 0)", "its checkpoint trained without the top 30% of trajectories"."""
    if corruption.is_clean:
        return "its clean checkpoint (k = 0)"
    parts = []
    if corruption.removes:
        which = "the top" if corruption.removal == "top" else "a random"
        parts.append(f"without {which} {corruption.k_percent:g}% of trajectories")
    if corruption.reward_noise_std:
        parts.append(f"with reward noise σ = {corruption.reward_noise_std:g}")
    return f"its checkpoint trained {' and '.join(parts)}"


def comparison_sentences(
    cells: Sequence[FinetuneCell], comparisons: Sequence[ArmComparison] = ()
) -> list[str]:
    """Per algo × dataset × condition, the ensemble bonus against none (final score; start,
    dip and recovery; the paired difference, or with one seed that there is no CI; steps to
    the threshold as specified), then the divergences; every number comes from `cells` and
    `comparisons`."""
    sentences = []
    by_key = {c.key: c for c in cells}
    paired = {(c.algo, c.dataset, c.corruption): c for c in comparisons if not c.variant}
    variant_pairs = [c for c in comparisons if c.variant and c.final.mean.n > 1]
    pairs = sorted(
        {(c.dataset, c.algo, c.corruption) for c in cells},
        key=lambda pair: (pair[0], pair[1], corruption_order(pair[2])),
    )
    for dataset, algo, corruption in pairs:
        bonus = by_key.get(Phase2CellKey(algo, dataset, corruption, "ensemble"))
        plain = by_key.get(Phase2CellKey(algo, dataset, corruption, "none"))
        if bonus is None or plain is None:
            continue
        where = (
            f"On {dataset} ({bonus.source} data), {algo.upper()} fine-tuned from "
            f"{starting_point(corruption)}"
        )
        if bonus.n == 0 or plain.n == 0:
            missing = "the ensemble-bonus runs have" if bonus.n == 0 else "the runs without it have"
            sentences.append(f"{where} cannot be compared yet: {missing} no completed run.")
            continue
        sentences.append(_final_sentence(where, bonus, plain))
        sentences.append(_trajectory_sentence(bonus, plain))
        comparison = paired.get((algo, dataset, corruption))
        if bonus.n == 1 and plain.n == 1:
            sentences.append(
                "With one seed per arm there is no confidence interval: the difference is "
                "one seed's outcome (one collapse or one lucky run moves it), not an estimate "
                "of the bonus's effect."
            )
        elif comparison is not None and comparison.final.mean.n:
            sentences.append(_paired_sentence(comparison))
        steps = _steps_sentence(bonus, plain)
        if steps:
            sentences.append(steps)
        group = [
            c for c in cells if (c.dataset, c.algo, c.corruption) == (dataset, algo, corruption)
        ]
        if len(group) > 2:  # arms beyond the spec's two: each arm's own course
            sentences.append(_arms_sentence(group))
        sentences += [
            _paired_sentence(c)
            for c in variant_pairs
            if (c.algo, c.dataset, c.corruption) == (algo, dataset, corruption)
        ]
    return sentences + divergence_sentences(
        cells,
        lambda cell: (
            f"{cell.algo.upper()} with {BONUS_LABELS.get(cell.bonus_type, cell.bonus_type)} "
            "diverged (a non-finite metric)"
        ),
        lambda cell: f", fine-tuned from {starting_point(cell.corruption)}",
    )


def build_phase2_section(
    cells: Sequence[FinetuneCell],
    comparisons: Sequence[ArmComparison],
    plots: Sequence[PlotFile],
    runs: Sequence[FinetuneRecord],
    unreadable: Sequence[str],
    results_dir: Path,
) -> Section:
    """The Phase II report as data (rendered to report.md and report.html)."""
    tables = [results_table(cells)]
    if comparisons:
        tables.append(paired_table(comparisons))
    return Section(
        glance=glance_table(cells),
        glance_figures=("finetune_curves",),
        title="Phase II results",
        results_dir=results_dir,
        statuses=tuple(r.status for r in runs),
        summary=tuple(comparison_sentences(cells, comparisons)),
        tables=tuple(tables),
        definitions=tuple(_definitions(cells)),
        unreadable=tuple(unreadable),
        plots=tuple(plots),
        run_commits=tuple(sorted({r.git_commit for r in runs if r.git_commit})),
    )


def _trajectory_sentence(bonus: FinetuneCell, plain: FinetuneCell) -> str:
    """Where both arms start, how far each dips and how much of the gap each recovers."""
    start = format_mean_std(bonus.step0_mean, bonus.step0_std, bonus.n)

    def arm(cell: FinetuneCell) -> str:
        dip = cell.dip_iqm.point
        dip_text = "does not dip" if not dip > 0 else f"dips {dip:.1f} points below its start"
        if cell.curve_targets:
            recovered = (
                f"recovers {_percent_interval(cell.curve_recovery_iqm)} of the way to the clean "
                "agent's own fine-tuned score at the same step"
            )
        elif cell.with_clean_reference == 0:
            recovered = "no clean reference for recovery"
        elif cell.no_gap == cell.with_clean_reference:
            recovered = "no gap to recover"
        else:
            recovered = (
                f"recovers {_percent_interval(cell.recovery_iqm)} of the gap to the clean offline "
                "reference: no clean fine-tuned run of this arm to aim at"
            )
        return f"{dip_text} at its lowest, ends at {cell.final_mean:.1f} ({recovered})"

    gap = bonus.gap_mean
    reference = f"the clean reference pooled over {seed_count(bonus.clean_seeds)}"
    if bonus.with_clean_reference and bonus.no_gap == bonus.with_clean_reference:
        gap_text = (
            f"within {NO_GAP_STANDARD_ERRORS:g} standard errors (at least {MIN_GAP_POINTS:g} "
            f"points) of (or above) {reference} ({gap:+.1f} points to it), so there is no gap "
            "to recover"
        )
    elif math.isnan(gap):
        gap_text = "no clean reference to measure a gap against"
    else:
        gap_text = f"{gap:.1f} points below {reference}"
    return (
        f"Both arms start from the same checkpoint at {start} (step 0; {gap_text}); with the "
        f"bonus the score {arm(bonus)}; without it the score {arm(plain)}."
    )


def _paired_sentence(comparison: ArmComparison) -> str:
    n = len(comparison.final.seeds)
    arms = f" ({_variant_text(comparison.variant)})" if comparison.variant else ""
    return (
        f"Paired on seed ({n} seed{'s' if n != 1 else ''}), bonus − none{arms}: final "
        f"{comparison.final.format()}, time-averaged score "
        f"{comparison.auc.format()}, dip depth {comparison.dip.format()}; "
        f"P(a bonus run ends above a no-bonus run) = {format_probability(comparison.improvement)}."
    )


def _final_sentence(where: str, bonus: FinetuneCell, plain: FinetuneCell) -> str:
    with_bonus = format_mean_std(bonus.final_mean, bonus.final_std, bonus.n)
    without = format_mean_std(plain.final_mean, plain.final_std, plain.n)
    gap = round(bonus.final_mean - plain.final_mean, 1)  # as precise as the scores shown
    if gap > 0:
        difference = f"{gap:.1f} points higher with the bonus"
    elif gap < 0:
        difference = f"{-gap:.1f} points lower with the bonus"
    else:
        difference = "the same to 0.1 points"
    return (
        f"{where} ends at a final normalized score of {with_bonus} with the ensemble bonus "
        f"vs {without} without it ({difference}; {_seed_clause(bonus, plain)})."
    )


def _arms_sentence(group: Sequence[FinetuneCell]) -> str:
    """Each arm's step-0 score, dip and final score, so that a collapse reads as a collapse of
    that arm and not as an effect of the bonus."""
    parts = [
        f"{arm_text(c.bonus_type)} {format_mean_std(c.step0_mean, c.step0_std, c.n)} → "
        f"dip {c.dip_mean:+.1f} → {format_mean_std(c.final_mean, c.final_std, c.n)}"
        for c in group
        if c.n
    ]
    if all(c.n == 1 for c in group):
        caveat = (
            "one seed per arm, so no spread across seeds can be given, and a fall of one arm "
            "is one run's course, not an effect of its bonus"
        )
    else:
        caveat = "means over seeds; a difference smaller than the seed spread is no effect"
    return (
        "Every arm from that checkpoint, as step-0 score → dip (lowest evaluation minus "
        f"step-0) → final: {'; '.join(parts)} ({caveat})."
    )


def _seed_clause(bonus: FinetuneCell, plain: FinetuneCell) -> str:
    if bonus.n == 1 and plain.n == 1:
        return "one seed each, so no spread across seeds or CI can be given"
    if bonus.n != plain.n:
        return f"{bonus.n} seeds with the bonus vs {plain.n} without"
    spread = max(bonus.final_std, plain.final_std)
    if abs(bonus.final_mean - plain.final_mean) <= spread:
        return f"{bonus.n} seeds each; the difference is within one standard deviation"
    return f"{bonus.n} seeds each"


def _steps_sentence(bonus: FinetuneCell, plain: FinetuneCell) -> str | None:
    if bonus.steps_median is None or plain.steps_median is None:
        return None
    a, b = bonus.steps_median, plain.steps_median
    if math.isinf(a) and math.isinf(b):
        verdict = "the median run reaches it in neither case"
    elif math.isinf(b):
        verdict = "only the median run with the bonus reaches it"
    elif math.isinf(a):
        verdict = "only the median run without the bonus reaches it"
    elif a < b:
        verdict = f"the bonus reaches it {b - a:,.0f} online steps sooner"
    elif a > b:
        verdict = f"the bonus reaches it {a - b:,.0f} online steps later"
    else:
        verdict = "both reach it at the same evaluation"
    return (
        f"Online steps to {_PCT} of the clean offline score (as specified; median over seeds): "
        f"{format_steps(bonus)} with the bonus ({bonus.censored} of {bonus.with_reference} "
        f"runs {NOT_REACHED}) vs {format_steps(plain)} without ({plain.censored} of "
        f"{plain.with_reference} {NOT_REACHED}); {verdict}."
    )


def _definitions(cells: Sequence[FinetuneCell]) -> list[str]:
    lines = [
        "Step-0 score: the normalized return (D4RL score) of the Phase I policy evaluated "
        "before any online step; final: at the last evaluation. Mean ± sample standard "
        "deviation (ddof = 1) over the completed seeds (n); diverged, failed and running runs "
        f"are counted but not averaged. Steps to {_PCT} of clean: online env steps until the "
        f"first evaluation whose score reaches {_PCT} of the clean offline score of the same "
        "algorithm, dataset and seed, where the clean offline score is the final normalized "
        "return of the Phase I run with k = 0 (read from that run's metrics.json). Steps are "
        "counted at evaluations, so they are multiples of the evaluation interval. The median "
        "is over the completed seeds, a run that never reaches the threshold counting as "
        f'beyond the budget: "{NOT_REACHED}" means the median run did not reach it within '
        "the budget. Not reached: how many runs never did (censored runs are kept, not "
        "dropped). Final disagreement: the standard deviation of Q over the critic members at "
        "the collected (s, a), averaged over the last logging interval, in the critic's "
        "reward units (IQL: rewards scaled by 1000 / return range).",
        "",
        "Recovery, relative to the corrupted start: the clean reference of an algorithm and "
        "dataset pools its seeds: each seed's clean (k = 0) Phase I run gives the mean of its "
        f"last {CLEAN_REFERENCE_EVALS} evaluations, the reference is their mean over the seeds "
        "(n in the gap column), and its standard error comes from the between-seed spread of "
        "those means and the within-run spread of the evaluations, whichever is larger "
        "(sqrt(max(b², mean w²/m) / n)); gap = reference − step-0 score. No gap: the gap is "
        f"under {NO_GAP_STANDARD_ERRORS:g} such standard errors (the step-0 evaluation's "
        f"episode spread added), with {MIN_GAP_POINTS:g} points as the least gap, so the run had "
        "nothing to recover (counted apart, never as 0 steps). Recovery fraction = (score − "
        "start) / (reference − start); final recovery: at "
        "the last evaluation (IQM over the runs with a gap). Smoothed thresholds: crossed by the "
        f"running mean of {RUNNING_MEAN_EVALS} evaluations (fewer at the start) and sustained "
        f"for {SUSTAINED_EVALS} evaluations, so one lucky evaluation crosses nothing. Steps to "
        "50% / 80% recovery: the first evaluation where the smoothed fraction reaches the level "
        "and stays there, median over the runs with a gap; steps to 80% / 100% of clean "
        "(smoothed): the same crossing of that share of the pooled clean reference, median "
        "over the runs with one; not reached counting as beyond the budget. AUC: the time "
        "average of the score over fine-tuning "
        "(trapezoid rule over the evaluations ÷ their span, in score points). Recovery toward "
        "clean fine-tuned: when the same arm was also run from the clean (k = 0) checkpoint of "
        "the same seed, (score(t) − start) / (clean fine-tuned score(t) − start) at the last "
        "shared step t (none when that target is within 5 points of the start), and the steps "
        "until the running mean of the run reaches the running mean of the clean fine-tuned "
        "run at the same step, within 2 standard errors of their difference (from the clean "
        "run's evaluation-to-evaluation noise), sustained for 2 evaluations; the recovery "
        "target column names the target each row used. Dip depth: start "
        "− the lowest later score (0 if it never falls). IQMs and means with the interval their "
        f"seeds allow. {interval_definition()} Bonus − none: per-seed "
        "differences of the two arms (same seed, same checkpoint, same evaluation seeds), their"
        " mean with that interval and, from 5 seeds, a paired Student-t 95% interval beside "
        "it, for the spec's two arms and for each "
        "preset's bonus arm against the same preset without it; P(bonus > none): the "
        "probability that a bonus run ends above a no-bonus run (ties count half).",
    ]
    if any("replica" in c.source for c in cells):
        lines += [
            "",
            "Source \"replica\": the project's own replica of the D4RL dataset, not D4RL's "
            "data; the online environment is the same Gymnasium v4 task.",
        ]
    return lines
