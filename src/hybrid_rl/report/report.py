"""The generated Phase I report: a results table, the figures, and sentences from the numbers.

`write_phase1_outputs(results_dir, plots_dir)` is the whole step: load the run folders,
aggregate over seeds, write the plots, `plots_dir/report.md` and `plots_dir/report.html`.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from hybrid_rl.data.corruption import CorruptionConfig
from hybrid_rl.report.document import (
    Section,
    Table,
    TableRow,
    section_markdown,
    write_section_html,
    write_text,
)
from hybrid_rl.report.drop_table import drop_table
from hybrid_rl.report.plotting import PlotFile, write_plots
from hybrid_rl.report.results import (
    CellSummary,
    RunRecord,
    aggregate,
    clean_cell,
    corruption_order,
    load_runs,
)
from hybrid_rl.report.statistics import (
    MIN_SEEDS_FOR_CI,
    Interval,
    interval_over_seeds,
    probability_of_improvement_interval,
)


class _NamedRun(Protocol):
    @property
    def run_name(self) -> str: ...


RunT = TypeVar("RunT", bound=_NamedRun)

_COLUMNS: tuple[tuple[str, bool], ...] = (
    ("Dataset", False),
    ("Source", False),
    ("Algo", False),
    ("Removal", False),
    ("k (%)", True),
    ("σ", True),
    ("Attack", False),
    ("Final IQM [interval]", True),
    ("Final (mean ± std)", True),
    ("Best (mean ± std)", True),
    ("n", True),
    ("Δ final vs clean", True),
    ("P(final > clean) [interval]", True),
    ("Diverged", True),
    ("Failed", True),
    ("Running", True),
    ("Late TD-loss var. (raw reward⁴)", True),
    ("Late TD-loss CV", True),
    ("Late Q (raw return)", True),
    ("Q fluctuation", True),
)


@dataclass(frozen=True)
class Phase1Outputs:
    report: Path
    plots: tuple[PlotFile, ...]
    cells: tuple[CellSummary, ...]
    runs: tuple[RunRecord, ...]
    section: Section | None = None
    html: Path | None = None


def write_phase1_outputs(
    results_dir: str | os.PathLike[str],
    plots_dir: str | os.PathLike[str] = "plots",
    command: str | None = None,
) -> Phase1Outputs:
    """Plots, `report.md` and `report.html` in `plots_dir` from every run folder in
    `results_dir`; `command` (default: this process's command line) is named in the HTML."""
    outputs, text = phase1_section(results_dir, plots_dir, plots_dir)
    write_markdown(outputs.report, text)
    assert outputs.section is not None
    html = write_section_html(outputs.report, outputs.section, command)
    return dataclasses.replace(outputs, html=html)


def phase1_section(
    results_dir: str | os.PathLike[str],
    plots_dir: str | os.PathLike[str],
    report_dir: str | os.PathLike[str],
    run_names: Collection[str] | None = None,
) -> tuple[Phase1Outputs, str]:
    """Write the Phase I plots into `plots_dir` and return the outputs and the report text
    (for `report_dir/report.md`: figure links are relative to `report_dir`), using the run
    folders in `results_dir` (only those named in `run_names`, if given)."""
    results_dir, plots_dir, report_dir = Path(results_dir), Path(plots_dir), Path(report_dir)
    runs, unreadable = select_runs(*load_runs(results_dir), run_names)
    cells = aggregate(runs)
    plots = write_plots(runs, cells, plots_dir) if runs else []
    section = build_section(cells, plots, runs, unreadable, results_dir)
    text = section_markdown(section, report_dir)
    outputs = Phase1Outputs(
        report_dir / "report.md", tuple(plots), tuple(cells), tuple(runs), section
    )
    return outputs, text


def select_runs(
    runs: Sequence[RunT], unreadable: Sequence[str], run_names: Collection[str] | None
) -> tuple[list[RunT], list[str]]:
    """The runs (and unreadable-folder lines "<name>: why") named in `run_names`; all of them
    when it is None."""
    if run_names is None:
        return list(runs), list(unreadable)
    names = set(run_names)
    return (
        [r for r in runs if r.run_name in names],
        [line for line in unreadable if line.split(":", 1)[0] in names],
    )


def write_markdown(path: Path, text: str) -> None:
    """Write a report atomically, readable by everyone."""
    write_text(path, text)


def format_mean_std(mean: float, std: float, n: int) -> str:
    """Mean ± std as "47.1 ± 0.8"; the mean alone for one seed; "—" without any run."""
    if n == 0 or math.isnan(mean):
        return "—"
    return f"{mean:.1f}" if n == 1 or math.isnan(std) else f"{mean:.1f} ± {std:.1f}"


def format_change(change: float | None) -> str:
    """A change in percent as "−12.3%" / "+4.0%" (a true minus sign); "n/a" without one."""
    if change is None:
        return "n/a"
    return f"{'−' if change < 0 else '+'}{abs(change):.1f}%"


def format_optional(value: float | None, digits: int = 3) -> str:
    """`digits` significant digits, "—" for None."""
    return "—" if value is None or not math.isfinite(value) else f"{value:.{digits}g}"


def format_probability(interval: Interval | None) -> str:
    """ "0.83 [0.50, 1.00] 95% CI" (5 seeds a side or more), "1.00 (3 vs 3 seeds)", "—"."""
    return "—" if interval is None else interval.format(2)


def interval_definition() -> str:
    """How the reports' intervals are chosen, in words (for every report's definitions)."""
    return (
        f"Intervals: with {MIN_SEEDS_FOR_CI} seeds or more, a 95% stratified-bootstrap "
        "confidence interval (percentile, 10,000 resamples of the seeds, Agarwal et al. 2021 "
        f'/ rliable), labelled "95% CI"; with 2 to {MIN_SEEDS_FOR_CI - 1} seeds, the lowest '
        'and highest seed, labelled "range (n seeds)" (a bootstrap of so few seeds returns '
        "that range and is no confidence interval); one seed has no interval."
    )


def results_table(cells: Sequence[CellSummary]) -> Table:
    """The results table, one row per condition, each row naming its run folders."""
    rows = []
    for c in cells:
        corruption = c.corruption
        cells_text = (
            c.dataset,
            c.source,
            c.algo.upper(),
            corruption.removal,
            f"{corruption.k_percent:g}",
            f"{corruption.reward_noise_std:g}",
            attack_text(corruption),
            c.final_iqm.format(),
            format_mean_std(c.final_mean, c.final_std, c.n),
            format_mean_std(c.best_mean, c.best_std, c.n),
            str(c.n),
            "clean" if corruption.is_clean else format_change(c.final_change_pct),
            "clean" if corruption.is_clean else format_probability(c.improvement_vs_clean),
            str(c.diverged),
            str(c.failed),
            str(c.running),
            format_optional(c.late_td_loss_variance),
            format_optional(c.late_td_loss_cv),
            format_optional(c.late_q_mean),
            format_optional(c.q_fluctuation),
        )
        rows.append(TableRow(cells_text, c.run_dirs))
    header, numeric = zip(*_COLUMNS, strict=True)
    return Table(tuple(header), tuple(numeric), tuple(rows))


def table_rows(cells: Sequence[CellSummary]) -> list[str]:
    """The results table in Markdown, header included, one row per condition."""
    return results_table(cells).markdown()


def aggregate_table(cells: Sequence[CellSummary]) -> Table | None:
    """Per algo × condition, the IQM of the final scores over every dataset (task) and seed
    with the interval its seeds allow (a stratified-bootstrap CI, seeds resampled within each
    dataset, when each dataset has 5 seeds or more; else the runs' range), and the probability
    that a run of the condition ends above a clean run of the same dataset, averaged over
    datasets. None unless some algo × condition covers two datasets or more."""
    groups: dict[tuple[str, CorruptionConfig], list[CellSummary]] = {}
    for cell in cells:
        groups.setdefault((cell.algo, cell.corruption), []).append(cell)
    if not any(len({c.dataset for c in group}) > 1 for group in groups.values()):
        return None
    rows = []
    for (algo, corruption), group in sorted(
        groups.items(), key=lambda kv: (kv[0][0], corruption_order(kv[0][1]))
    ):
        with_runs = [c for c in group if c.finals]
        iqm = interval_over_seeds([c.finals for c in with_runs])
        improvement = None
        if not corruption.is_clean:
            pairs = [
                (c, clean) for c in with_runs if (clean := clean_cell(cells, c)) and clean.finals
            ]
            if pairs:
                improvement = probability_of_improvement_interval(
                    [c.finals for c, _ in pairs], [clean.finals for _, clean in pairs]
                )
        runs = tuple(d for c in group for d in c.run_dirs)
        rows.append(
            TableRow(
                (
                    algo.upper(),
                    corruption.label if not corruption.is_clean else "clean",
                    str(len(with_runs)),
                    str(iqm.n),
                    iqm.format(),
                    "clean" if corruption.is_clean else format_probability(improvement),
                ),
                runs,
            )
        )
    return Table(
        (
            "Algo",
            "Condition",
            "Datasets",
            "Runs",
            "Final IQM over datasets [interval]",
            "P(final > clean) [interval]",
        ),
        (False, False, True, True, True, True),
        tuple(rows),
        title="Aggregate over datasets (a bootstrap CI resamples the seeds within each dataset)",
    )


def attack_text(corruption: CorruptionConfig) -> str:
    """The RIQL-style attack in a table cell, e.g. "act 30% ×1" ("adversarial rew ..."), or —."""
    if corruption.attack == "none":
        return "—"
    mode = "adversarial " if corruption.attack_mode == "adversarial" else ""
    return f"{mode}{corruption.attack} {corruption.attack_rate:.0%} ×{corruption.attack_scale:g}"


def corruption_phrase(corruption: CorruptionConfig) -> str:
    """What was done to the data, e.g. "removing the top 60% of trajectories (by return)"."""
    if corruption.is_clean:
        return "training on the clean data"
    parts = []
    if corruption.removes:
        top = corruption.removal == "top"
        parts.append(
            f"removing {'the top' if top else 'a random'} {corruption.k_percent:g}% of "
            f"trajectories{' (by return)' if top else ''}"
        )
    if corruption.attack != "none":
        parts.append(f"applying {corruption.attack_label}")
    if corruption.reward_noise_std:
        parts.append(
            f"adding Gaussian noise with σ = {corruption.reward_noise_std:g} to the rewards"
        )
    return " and ".join(parts)


def degradation_sentences(cells: Sequence[CellSummary]) -> list[str]:
    """One sentence per corrupted condition comparing its final score with the clean one, plus
    the divergences; every number comes from `cells`."""
    sentences = []
    for cell in cells:
        if cell.corruption.is_clean:
            continue
        clean = clean_cell(cells, cell)
        where = f"On {cell.dataset} ({cell.source} data)"
        if clean is None or clean.n == 0 or cell.n == 0:
            missing = "the clean condition" if clean is None or clean.n == 0 else "this condition"
            sentences.append(
                f"{where}, {corruption_phrase(cell.corruption)} cannot be compared for "
                f"{cell.algo.upper()}: {missing} has no completed run yet."
            )
            continue
        before = format_mean_std(clean.final_mean, clean.final_std, clean.n)
        after = format_mean_std(cell.final_mean, cell.final_std, cell.n)
        if cell.final_mean < clean.final_mean:
            verb = "lowers"
        elif cell.final_mean > clean.final_mean:
            verb = "raises"
        else:
            verb = "does not change"
        change = (
            "" if cell.final_change_pct is None else f" ({format_change(cell.final_change_pct)})"
        )
        sentence = (
            f"{where}, {corruption_phrase(cell.corruption)} {verb} {cell.algo.upper()}'s "
            f"final normalized score from {before} to {after}{change}; {_seed_clause(clean, cell)}."
        )
        sentences.append(sentence)
    return sentences + divergence_sentences(
        cells,
        lambda cell: f"{cell.algo.upper()} diverged (a non-finite loss)",
        lambda cell: f" when {corruption_phrase(cell.corruption)}",
    )


def divergence_sentences(
    cells: Sequence[Any],
    who: Callable[[Any], str],
    where: Callable[[Any], str],
) -> list[str]:
    """One sentence per cell (with `n`, `diverged`, `failed`, `running`, `dataset`) whose runs
    diverged, "<who> in d of n runs on <dataset><where>.", or "No run diverged."."""
    sentences = []
    for cell in cells:
        total = cell.n + cell.diverged + cell.failed + cell.running
        if cell.diverged:
            sentences.append(
                f"{who(cell)} in {cell.diverged} of {total} run{'s' if total != 1 else ''} "
                f"on {cell.dataset}{where(cell)}."
            )
    if cells and not sentences:
        sentences.append("No run diverged.")
    return sentences


def build_section(
    cells: Sequence[CellSummary],
    plots: Sequence[PlotFile],
    runs: Sequence[RunRecord],
    unreadable: Sequence[str],
    results_dir: Path,
) -> Section:
    """The Phase I report as data (rendered to report.md and report.html)."""
    tables = [results_table(cells)]
    overall = aggregate_table(cells)
    if overall is not None:
        tables.append(overall)
    drops = drop_table(cells, runs)
    if drops is not None:
        tables.append(drops)
    return Section(
        title="Phase I results",
        results_dir=results_dir,
        statuses=tuple(r.status for r in runs),
        summary=tuple(degradation_sentences(cells)),
        tables=tuple(tables),
        definitions=tuple(_definitions(cells)),
        unreadable=tuple(unreadable),
        plots=tuple(plots),
        run_commits=tuple(sorted({r.git_commit for r in runs if r.git_commit})),
    )


def _seed_clause(clean: CellSummary, cell: CellSummary) -> str:
    if clean.n == 1 and cell.n == 1:
        return "one seed each, so no spread across seeds can be given"
    if clean.n == 1 or cell.n == 1:
        return (
            f"{clean.n} seed{'s' if clean.n != 1 else ''} clean vs {cell.n} "
            f"seed{'s' if cell.n != 1 else ''} corrupted"
        )
    counts = f"{cell.n} seeds each" if clean.n == cell.n else f"{clean.n} vs {cell.n} seeds"
    gap = abs(cell.final_mean - clean.final_mean)
    if gap <= max(clean.final_std, cell.final_std):
        return f"{counts}; the difference is within one standard deviation across seeds"
    return counts


def _definitions(cells: Sequence[CellSummary]) -> list[str]:
    lines = [
        "Final: normalized return (D4RL score) at the last evaluation; best: the highest "
        "evaluation of the run. Final IQM: the interquartile mean (25% trimmed mean) of the "
        f"completed seeds' final scores. {interval_definition()} With fewer than 4 seeds the "
        "IQM is the mean. Mean ± sample "
        "standard deviation (ddof = 1) over the completed seeds (n); diverged, failed and "
        "running runs are counted but not averaged. Δ final vs clean: 100 · (mean final − "
        "clean mean final) / |clean mean final|, against the same algorithm and dataset with "
        "k = 0, σ = 0. P(final > clean): the probability that a run of the condition ends "
        "above a clean run (ties count half; rliable's probability of improvement), with a "
        f"bootstrap CI when both sides have {MIN_SEEDS_FOR_CI} seeds or more, else with the "
        "number of seeds it compares.",
        "",
        "Diagnostics, in units that compare across algorithms and reward scales (each the "
        "mean over the completed seeds): Late TD-loss var.: the variance across the logged "
        "interval means of the critic's TD loss alone (CQL's conservative term left out) over "
        "the last 20% of training, the loss first divided by reward_scale² (IQL trains on "
        "scaled rewards), so it is in raw-reward⁴ units; CV: its standard deviation over its "
        "mean (unitless). Late Q: the batch-mean Q on dataset actions over the last 20% of "
        "training, divided by reward_scale (raw-reward return units). Q fluctuation: the "
        "standard deviation of that mean Q at the last 5 evaluation steps, i.e. how much the "
        "value level moves over time (the spread of Q across states is not instability). BC "
        "has no critic: —.",
    ]
    if any("replica" in c.source for c in cells):
        lines += [
            "",
            'Source "replica": the project\'s own replica of the D4RL dataset (a SAC behaviour '
            "policy of D4RL's level), not D4RL's data; scores on it are close to, not the same "
            "as, published D4RL numbers.",
        ]
    return lines
