"""The generated Phase I report: a results table, the figures, and sentences from the numbers.

`write_phase1_outputs(results_dir, plots_dir)` is the whole step: load the run folders,
aggregate over seeds, write the plots and `plots_dir/report.md`.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

from hybrid_rl.atomic_io import atomic_write
from hybrid_rl.data.corruption import CorruptionConfig
from hybrid_rl.report.plotting import PlotFile, write_plots
from hybrid_rl.report.results import CellSummary, RunRecord, aggregate, clean_cell, load_runs


class _NamedRun(Protocol):
    @property
    def run_name(self) -> str: ...


RunT = TypeVar("RunT", bound=_NamedRun)

_TABLE_HEADER = (
    "| Dataset | Source | Algo | Removal | k (%) | σ | Attack | Final (mean ± std) "
    "| Best (mean ± std) | n | Δ final vs clean | Diverged | Failed | Running "
    "| Mean rolling loss var. |",
    "|---|---|---|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
)


@dataclass(frozen=True)
class Phase1Outputs:
    report: Path
    plots: tuple[PlotFile, ...]
    cells: tuple[CellSummary, ...]
    runs: tuple[RunRecord, ...]


def write_phase1_outputs(
    results_dir: str | os.PathLike[str], plots_dir: str | os.PathLike[str] = "plots"
) -> Phase1Outputs:
    """Plots and `report.md` in `plots_dir` from every run folder in `results_dir`."""
    outputs, text = phase1_section(results_dir, plots_dir, plots_dir)
    write_markdown(outputs.report, text)
    return outputs


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
    text = render_report(cells, plots, runs, unreadable, results_dir, report_dir)
    return Phase1Outputs(report_dir / "report.md", tuple(plots), tuple(cells), tuple(runs)), text


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

    def write(tmp: Path) -> None:
        tmp.write_text(text)
        tmp.chmod(0o644)  # the temporary file is private (0600); a report is for reading

    atomic_write(path, write)


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


def table_rows(cells: Sequence[CellSummary]) -> list[str]:
    """The results table in Markdown, header included, one row per condition."""
    rows = list(_TABLE_HEADER)
    for c in cells:
        variance = "—" if c.mean_loss_variance is None else f"{c.mean_loss_variance:.3g}"
        corruption = c.corruption
        rows.append(
            f"| {c.dataset} | {c.source} | {c.algo.upper()} | {corruption.removal} "
            f"| {corruption.k_percent:g} | {corruption.reward_noise_std:g} "
            f"| {attack_text(corruption)} "
            f"| {format_mean_std(c.final_mean, c.final_std, c.n)} "
            f"| {format_mean_std(c.best_mean, c.best_std, c.n)} | {c.n} "
            f"| {'clean' if corruption.is_clean else format_change(c.final_change_pct)} "
            f"| {c.diverged} | {c.failed} | {c.running} | {variance} |"
        )
    return rows


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
    for cell in cells:
        total = cell.n + cell.diverged + cell.failed + cell.running
        if cell.diverged:
            sentences.append(
                f"{cell.algo.upper()} diverged (a non-finite loss) in {cell.diverged} of "
                f"{total} run{'s' if total != 1 else ''} on {cell.dataset} when "
                f"{corruption_phrase(cell.corruption)}."
            )
    if cells and not any(c.diverged for c in cells):
        sentences.append("No run diverged.")
    return sentences


def render_report(
    cells: Sequence[CellSummary],
    plots: Sequence[PlotFile],
    runs: Sequence[RunRecord],
    unreadable: Sequence[str],
    results_dir: Path,
    plots_dir: Path,
) -> str:
    """The text of report.md; figure links are relative to `plots_dir`, where it is written."""
    return render_results_document(
        "Phase I results",
        results_dir,
        [r.status for r in runs],
        degradation_sentences(cells),
        table_rows(cells),
        _definitions(cells),
        unreadable,
        plots,
        plots_dir,
    )


def render_results_document(
    title: str,
    results_dir: Path,
    statuses: Sequence[str],
    summary: Sequence[str],
    table: Sequence[str],
    definitions: Sequence[str],
    unreadable: Sequence[str],
    plots: Sequence[PlotFile],
    report_dir: Path,
) -> str:
    """A results report: run counts, summary sentences, table, definitions, left-out folders
    and figures grouped by dataset (links relative to `report_dir`)."""
    counts = Counter(statuses)
    status_text = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "none"
    lines = [
        f"# {title}",
        "",
        f"Generated from the run folders in `{results_dir}` ({len(statuses)} runs: {status_text}).",
        "",
    ]
    if not statuses:
        lines += ["No run folder was found, so there is nothing to report yet.", ""]
    else:
        lines += ["## Summary", ""]
        lines += [f"- {sentence}" for sentence in summary]
        lines += ["", "## Results", "", *table, "", *definitions]
    if unreadable:
        lines += ["", "## Run folders left out", ""]
        lines += [f"- {u}" for u in unreadable]
    for dataset in sorted({p.dataset for p in plots}):
        lines += ["", f"## Figures: {dataset}", ""]
        for plot in (p for p in plots if p.dataset == dataset):
            png = os.path.relpath(plot.png, report_dir)
            pdf = os.path.relpath(plot.pdf, report_dir)
            lines += [f"![{plot.title}]({png})", "", f"[{plot.title} (PDF)]({pdf})", ""]
    return "\n".join(lines).rstrip() + "\n"


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
        "evaluation of the run. Mean ± sample standard deviation (ddof = 1) over the completed "
        "seeds (n); diverged, failed and running runs are counted but not averaged. Δ final vs "
        "clean: 100 · (mean final − clean mean final) / |clean mean final|, against the same "
        "algorithm and dataset with k = 0, σ = 0. Mean rolling loss variance: the variance of "
        "the per-step critic loss over a rolling window (BC, which has no critic: its actor "
        "loss), averaged over the logged steps of a run, then over seeds.",
    ]
    if any("replica" in c.source for c in cells):
        lines += [
            "",
            'Source "replica": the project\'s own replica of the D4RL dataset (a SAC behaviour '
            "policy of D4RL's level), not D4RL's data; scores on it are close to, not the same "
            "as, published D4RL numbers.",
        ]
    return lines
