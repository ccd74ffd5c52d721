"""The generated Phase II report: a table per algo × dataset × condition × bonus type, the
figures, and
sentences comparing the ensemble bonus with plain fine-tuning, every number from the runs.

`write_phase2_outputs(results_dir, plots_dir)` is the whole step: load the run folders,
aggregate over seeds, write the plots and `plots_dir/report.md`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

from hybrid_rl.data.corruption import CorruptionConfig
from hybrid_rl.report.plotting import PlotFile
from hybrid_rl.report.plotting_phase2 import (
    BONUS_LABELS,
    NOT_REACHED,
    condition_label,
    write_phase2_plots,
)
from hybrid_rl.report.report import (
    format_mean_std,
    render_results_document,
    select_runs,
    write_markdown,
)
from hybrid_rl.report.results import corruption_order
from hybrid_rl.report.results_phase2 import (
    THRESHOLD_FRACTION,
    FinetuneCell,
    FinetuneRecord,
    Phase2CellKey,
    aggregate_finetune,
    arm_text,
    load_finetune_runs,
)

_PCT = f"{THRESHOLD_FRACTION:.0%}"
_TABLE_HEADER = (
    "| Dataset | Source | Algo | k (%) | Bonus | Phase I data | Step-0 score | Final score "
    f"| Steps to {_PCT} of clean (median) | Not reached | n | Final disagreement "
    "| Diverged | Failed | Running |",
    "|---|---|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
)


@dataclass(frozen=True)
class Phase2Outputs:
    report: Path
    plots: tuple[PlotFile, ...]
    cells: tuple[FinetuneCell, ...]
    runs: tuple[FinetuneRecord, ...]


def write_phase2_outputs(
    results_dir: str | os.PathLike[str],
    plots_dir: str | os.PathLike[str],
    phase1_results_dir: str | os.PathLike[str] | None = None,
) -> Phase2Outputs:
    """Plots and `report.md` in `plots_dir` from every run folder in `results_dir`; the clean
    offline scores come from `phase1_results_dir` (default: each run's own Phase I folder)."""
    outputs, text = phase2_section(results_dir, plots_dir, plots_dir, phase1_results_dir)
    write_markdown(outputs.report, text)
    return outputs


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
    plots = write_phase2_plots(runs, cells, plots_dir) if runs else []
    text = render_phase2_report(cells, plots, runs, unreadable, results_dir, report_dir)
    outputs = Phase2Outputs(report_dir / "report.md", tuple(plots), tuple(cells), tuple(runs))
    return outputs, text


def format_steps(cell: FinetuneCell) -> str:
    """The median steps to the threshold: "3,000", "not reached (> 5,000)", or "—"."""
    if cell.steps_median is None:
        return "—"
    if math.isinf(cell.steps_median):
        return f"{NOT_REACHED} (> {cell.budget:,})"
    return f"{cell.steps_median:,.0f}"


def format_disagreement(mean: float, std: float, n: int) -> str:
    """Three significant digits ("0.412 ± 0.05"); the mean alone for one seed; "—" for none."""
    if n == 0 or math.isnan(mean):
        return "—"
    return f"{mean:.3g}" if n == 1 or math.isnan(std) else f"{mean:.3g} ± {std:.3g}"


def table_rows(cells: Sequence[FinetuneCell]) -> list[str]:
    """The results table in Markdown, header included, one row per condition."""
    rows = list(_TABLE_HEADER)
    # Beside other arms (presets, controls) the spec's arms are labelled "as specified".
    mixed = any(arm_text(c.bonus_type) == c.bonus_type for c in cells)
    for c in cells:
        not_reached = f"{c.censored} of {c.with_reference}" if c.with_reference else "—"
        if c.no_reference:
            not_reached += f" ({c.no_reference} without a clean reference)"
        rows.append(
            f"| {c.dataset} | {c.source} | {c.algo.upper()} | {c.corruption.k_percent:g} "
            f"| {arm_text(c.bonus_type) if mixed else c.bonus_type} "
            f"| {condition_label(c.corruption)} "
            f"| {format_mean_std(c.step0_mean, c.step0_std, c.n)} "
            f"| {format_mean_std(c.final_mean, c.final_std, c.n)} | {format_steps(c)} "
            f"| {not_reached} | {c.n} "
            f"| {format_disagreement(c.disagreement_mean, c.disagreement_std, c.n)} "
            f"| {c.diverged} | {c.failed} | {c.running} |"
        )
    return rows


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


def comparison_sentences(cells: Sequence[FinetuneCell]) -> list[str]:
    """Per algo × dataset × condition, the ensemble bonus against none (final score, then
    steps to the threshold), then the divergences; every number comes from `cells`."""
    sentences = []
    by_key = {c.key: c for c in cells}
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
        steps = _steps_sentence(bonus, plain)
        if steps:
            sentences.append(steps)
        group = [
            c for c in cells if (c.dataset, c.algo, c.corruption) == (dataset, algo, corruption)
        ]
        if len(group) > 2:  # arms beyond the spec's two: each arm's own course
            sentences.append(_arms_sentence(group))
    for cell in cells:
        total = cell.n + cell.diverged + cell.failed + cell.running
        if cell.diverged:
            sentences.append(
                f"{cell.algo.upper()} with {BONUS_LABELS.get(cell.bonus_type, cell.bonus_type)} "
                f"diverged (a non-finite metric) in {cell.diverged} of {total} "
                f"run{'s' if total != 1 else ''} on {cell.dataset}, fine-tuned from "
                f"{starting_point(cell.corruption)}."
            )
    if cells and not any(c.diverged for c in cells):
        sentences.append("No run diverged.")
    return sentences


def render_phase2_report(
    cells: Sequence[FinetuneCell],
    plots: Sequence[PlotFile],
    runs: Sequence[FinetuneRecord],
    unreadable: Sequence[str],
    results_dir: Path,
    report_dir: Path,
) -> str:
    """The text of the Phase II report; figure links are relative to `report_dir`."""
    return render_results_document(
        "Phase II results",
        results_dir,
        [r.status for r in runs],
        comparison_sentences(cells),
        table_rows(cells),
        _definitions(cells),
        unreadable,
        plots,
        report_dir,
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
        return "one seed each, so no spread across seeds can be given"
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
        f"Online steps to {_PCT} of the clean offline score (median over seeds): "
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
    ]
    if any("replica" in c.source for c in cells):
        lines += [
            "",
            "Source \"replica\": the project's own replica of the D4RL dataset, not D4RL's "
            "data; the online environment is the same Gymnasium v4 task.",
        ]
    return lines
