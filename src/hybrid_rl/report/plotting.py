"""Phase I figures, one set per dataset: learning curves, final returns, a performance profile,
Q values (raw-reward return units) and the TD loss (÷ reward_scale²).

Figures are built as `matplotlib.figure.Figure` objects (no pyplot, no global state, Agg
canvas) and saved as PNG and PDF. Curves average over the seeds that reached each step
(completed, diverged and still-running runs; failed runs are left out); bars use the
completed runs of `report.results.aggregate`. Training metrics that were not produced in a
log interval (None) are skipped.
"""

from __future__ import annotations

import math
import re
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from hybrid_rl.report.diagnostics import scaled, td_loss_series
from hybrid_rl.report.results import (
    CellKey,
    CellSummary,
    MetricSeries,
    RunRecord,
    corruption_order,
)
from hybrid_rl.report.statistics import interval_kind, performance_profile_interval

_ALGO_COLORMAPS = {"cql": "Blues", "iql": "Oranges", "bc": "Greens"}
_ALGO_ORDER = {"cql": 0, "iql": 1, "bc": 2}


class TrainLog(Protocol):
    """A run's logged training metrics (Phase I or II record)."""

    @property
    def train_steps(self) -> tuple[int, ...]: ...

    @property
    def train_metrics(self) -> dict[str, MetricSeries]: ...


@dataclass(frozen=True)
class PlotFile:
    kind: str  # e.g. "learning_curves", "final_returns" (Phase I), "finetune_curves" (Phase II)
    dataset: str
    title: str
    png: Path
    pdf: Path


def condition_label(cell: CellKey) -> str:
    """A legend entry, short: "IQL clean", "CQL top 30%", "IQL random 60%", "CQL top 30% σ=0.1"
    (the table and sentences spell the condition out)."""
    corruption = cell.corruption
    if corruption.is_clean:
        return f"{cell.algo.upper()} clean"
    parts = [cell.algo.upper()]
    if corruption.removes:
        parts.append(f"{corruption.removal} {corruption.k_percent:g}%")
    if corruption.reward_noise_std:
        parts.append(f"σ={corruption.reward_noise_std:g}")
    return " ".join(parts)


def figure_title(what: str, dataset: str, source: str, seeds: Sequence[int]) -> str:
    """E.g. "Learning curves: hopper-medium-v2 (replica data), seeds 0, 1, 2"."""
    unique = sorted(set(seeds))
    seed_text = (
        "no seeds"
        if not unique
        else f"seed {unique[0]}"
        if len(unique) == 1
        else "seeds " + ", ".join(map(str, unique))
    )
    return f"{what}: {dataset} ({source} data), {seed_text}"


def learning_curves_figure(runs: Sequence[RunRecord], dataset: str) -> Figure:
    """Normalized return vs gradient steps, one line (mean ± std over seeds) per algo × k."""
    runs = _plotted(runs, dataset)
    fig, (ax,) = new_figure(1)
    for condition, group in _by_condition(runs).items():
        steps, mean, std = mean_std_over_runs(
            [(r.eval_steps, r.eval_normalized_returns) for r in group]
        )
        _line_with_band(ax, steps, mean, std, condition, _colors(runs)[condition])
    dataset_means = [
        r.dataset_normalized_mean for r in runs if r.dataset_normalized_mean is not None
    ]
    if dataset_means:
        ax.axhline(
            dataset_means[0], color="gray", linestyle=":", label="dataset mean (before corruption)"
        )
    ax.set_xlabel("gradient steps")
    ax.set_ylabel("normalized return (D4RL score)")
    _finish(fig, ax, figure_title("Learning curves", dataset, _source(runs), _seeds(runs)))
    return fig


def final_returns_figure(cells: Sequence[CellSummary], dataset: str) -> Figure:
    """Final normalized return per algo × k: bars at the mean, error bars one std, n shown."""
    cells = sorted(
        (c for c in cells if c.dataset == dataset),
        key=lambda c: _condition_order(c.key),
    )
    fig, (ax,) = new_figure(1)
    colors = _condition_colors([c.key for c in cells])
    positions, algo_centres = _bar_positions(cells)
    for x, cell in zip(positions, cells, strict=True):
        height = 0.0 if math.isnan(cell.final_mean) else cell.final_mean
        err = None if math.isnan(cell.final_std) else cell.final_std
        ax.bar(
            x,
            height,
            yerr=err,
            capsize=4 if err is not None else 0,
            color=colors[cell.key],
            edgecolor="black",
            linewidth=0.5,
            label=condition_label(cell.key),
        )
        ax.annotate(
            f"n={cell.n}",
            (x, height + (err or 0.0)),
            textcoords="offset points",
            xytext=(0, 3),
            ha="center",
            fontsize=8,
        )
    ax.set_xticks(list(algo_centres.values()), [a.upper() for a in algo_centres])
    ax.set_xlabel("algorithm (bars: training data condition)")
    ax.set_ylabel("final normalized return (mean ± std over seeds)")
    ax.axhline(0.0, color="black", linewidth=0.5)
    seeds = [s for c in cells for s in c.seeds]
    source = "/".join(sorted({c.source for c in cells})) or "unknown"
    _finish(fig, ax, figure_title("Final performance", dataset, source, seeds))
    return fig


def q_values_figure(runs: Sequence[RunRecord], dataset: str) -> Figure | None:
    """Q on dataset batches over training, one panel per algo with a critic: the batch mean
    of Q divided by the run's reward_scale (raw-reward return units), mean over seeds, with
    a band of ± the std across seeds where there are several. The spread of Q across the
    states of a batch (`q_data_std`) is not drawn: it is not instability. None when no run of
    `dataset` logged Q values (e.g. BC only)."""
    runs = [r for r in _plotted(runs, dataset) if "q_data_mean" in r.train_metrics]
    if not runs:
        return None
    algos = sorted({r.algo for r in runs}, key=lambda a: (_ALGO_ORDER.get(a, 9), a))
    fig, axes = new_figure(len(algos))
    colors = _colors(runs)
    for ax, algo in zip(axes, algos, strict=True):
        for condition, group in _by_condition([r for r in runs if r.algo == algo]).items():
            steps, mean, spread = mean_std_over_runs(
                [
                    (r.train_steps, scaled(train_series(r, "q_data_mean")[1], r.reward_scale))
                    for r in group
                ]
            )
            _line_with_band(ax, steps, mean, spread, condition, colors[condition])
        ax.set_xlabel("gradient steps")
        ax.set_ylabel(f"{algo.upper()} batch-mean Q(s, a) ÷ reward_scale (mean ± std over seeds)")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.suptitle(figure_title("Q values", dataset, _source(runs), _seeds(runs)), fontsize=10)
    return fig


def td_loss_figure(runs: Sequence[RunRecord], dataset: str) -> Figure | None:
    """The critic's TD loss alone (CQL's conservative term left out) per log interval,
    divided by reward_scale² (raw-reward units), one panel per algo with a critic, mean over
    seeds, log y axis. None when no run of `dataset` has a critic."""
    series = {
        r.run_name: td
        for r in _plotted(runs, dataset)
        if (td := td_loss_series(r.train_metrics, r.agent_config)) is not None
    }
    runs = [r for r in _plotted(runs, dataset) if r.run_name in series]
    if not runs:
        return None
    algos = sorted({r.algo for r in runs}, key=lambda a: (_ALGO_ORDER.get(a, 9), a))
    fig, axes = new_figure(len(algos))
    colors = _colors(runs)
    for ax, algo in zip(axes, algos, strict=True):
        for condition, group in _by_condition([r for r in runs if r.algo == algo]).items():
            steps, mean, _ = mean_std_over_runs(
                [(r.train_steps, scaled(series[r.run_name], r.reward_scale**2)) for r in group]
            )
            keep = mean > 0  # a log axis cannot show zero
            ax.plot(
                steps[keep],
                mean[keep],
                color=colors[condition],
                label=condition_label(condition),
            )
        ax.set_yscale("log")
        ax.set_xlabel("gradient steps")
        ax.set_ylabel(f"{algo.upper()} TD loss ÷ reward_scale²")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
        ax.grid(alpha=0.3, which="both")
    fig.suptitle(
        figure_title("TD loss (raw-reward units)", dataset, _source(runs), _seeds(runs)),
        fontsize=10,
    )
    return fig


ProfileCurve = tuple[str, tuple[float, ...], str, Sequence[float]]  # label, color, style, scores


def performance_profile_figure(curves: Sequence[ProfileCurve], title: str) -> Figure:
    """Performance profiles (Agarwal et al. 2021): for each curve, the fraction of its runs
    whose final normalized score exceeds τ, over τ, with a 95% stratified-bootstrap band when
    the curve has 5 seeds or more (`statistics.interval_kind`); the legend says when it has
    none."""
    fig, (ax,) = new_figure(1)
    everything = [v for _, _, _, scores in curves for v in scores if math.isfinite(v)]
    low = min(everything, default=0.0)
    high = max(everything, default=100.0)
    margin = max(1.0, 0.05 * (high - low))
    taus = np.linspace(low - margin, high + margin, 101)
    for label, color, style, scores in curves:
        finite = [v for v in scores if math.isfinite(v)]
        if not finite:
            continue
        profile, lower, upper = performance_profile_interval([finite], taus)
        band = "" if interval_kind(len(finite)) == "ci" else ", no band below 5 seeds"
        ax.plot(
            taus, profile, color=color, linestyle=style, label=f"{label} (n={len(finite)}{band})"
        )
        ax.fill_between(taus, lower, upper, color=color, alpha=0.15, linewidth=0)
    ax.set_xlabel("final normalized return τ")
    ax.set_ylabel("fraction of runs with final score > τ")
    ax.set_ylim(-0.02, 1.02)
    _finish(fig, ax, title)
    return fig


def phase1_profile_figure(cells: Sequence[CellSummary], dataset: str) -> Figure:
    """The performance profile of each algo × condition on `dataset` (completed runs)."""
    cells = sorted(
        (c for c in cells if c.dataset == dataset), key=lambda c: _condition_order(c.key)
    )
    colors = _condition_colors([c.key for c in cells])
    curves: list[ProfileCurve] = [
        (condition_label(c.key), colors[c.key], "-", c.finals) for c in cells
    ]
    seeds = [s for c in cells for s in c.seeds]
    source = "/".join(sorted({c.source for c in cells})) or "unknown"
    return performance_profile_figure(
        curves, figure_title("Performance profile", dataset, source, seeds)
    )


def build_figures(
    runs: Sequence[RunRecord], cells: Sequence[CellSummary]
) -> list[tuple[str, str, Figure]]:
    """Every figure for every dataset in `runs`, as (kind, dataset, figure)."""
    figures: list[tuple[str, str, Figure]] = []
    for dataset in sorted({r.dataset for r in runs}):
        figures.append(("learning_curves", dataset, learning_curves_figure(runs, dataset)))
        figures.append(("final_returns", dataset, final_returns_figure(cells, dataset)))
        figures.append(("performance_profile", dataset, phase1_profile_figure(cells, dataset)))
        q_figure = q_values_figure(runs, dataset)
        if q_figure is not None:
            figures.append(("q_values", dataset, q_figure))
        td_figure = td_loss_figure(runs, dataset)
        if td_figure is not None:
            figures.append(("td_loss", dataset, td_figure))
    return figures


def write_plots(
    runs: Sequence[RunRecord], cells: Sequence[CellSummary], plots_dir: str | Path
) -> list[PlotFile]:
    """Save `build_figures` to `plots_dir/<kind>_<dataset>.{png,pdf}`; returns what was saved."""
    return [
        save_figure(fig, plots_dir, kind, dataset)
        for kind, dataset, fig in build_figures(runs, cells)
    ]


# Characters of a 10-point title that fit in one inch of figure width.
_TITLE_CHARS_PER_INCH = 11


def save_figure(
    fig: Figure, plots_dir: str | Path, kind: str, dataset: str, name: str | None = None
) -> PlotFile:
    """Save `fig` as `plots_dir/<name or kind>_<dataset>.{png,pdf}` (the dataset made safe
    for a file name)."""
    plots_dir = Path(plots_dir)
    plots_dir.mkdir(parents=True, exist_ok=True)
    stem = plots_dir / f"{name or kind}_{re.sub(r'[^A-Za-z0-9_.-]+', '_', dataset)}"
    png, pdf = stem.with_suffix(".png"), stem.with_suffix(".pdf")
    title = fig.get_suptitle()
    # Long titles are wrapped on the figure so they are not clipped; the report keeps one line.
    width = int(_TITLE_CHARS_PER_INCH * fig.get_figwidth())
    fig.suptitle(textwrap.fill(title, width=width), fontsize=10)
    fig.savefig(png, dpi=120)
    fig.savefig(pdf)
    return PlotFile(kind, dataset, title, png, pdf)


def new_figure(panels: int) -> tuple[Figure, list[Axes]]:
    """A figure of `panels` axes side by side (Agg canvas, no pyplot state)."""
    fig = Figure(figsize=(7.5 if panels == 1 else 5.5 * panels, 4.8), layout="constrained")
    return fig, list(fig.subplots(1, panels, squeeze=False)[0])


def _finish(fig: Figure, ax: Axes, title: str) -> None:
    fig.suptitle(title, fontsize=10)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    ax.grid(alpha=0.3)


def _plotted(runs: Sequence[RunRecord], dataset: str) -> list[RunRecord]:
    return [r for r in runs if r.dataset == dataset and r.status != "failed"]


def _condition_order(cell: CellKey) -> tuple[int, str, tuple[bool, str, float, float]]:
    """Algos in their usual order, then the conditions of each (clean first)."""
    return (_ALGO_ORDER.get(cell.algo, 9), cell.algo, corruption_order(cell.corruption))


def _by_condition(runs: Sequence[RunRecord]) -> dict[CellKey, list[RunRecord]]:
    """The runs of each condition (the dataset is the figure's), in `_condition_order`."""
    groups: dict[CellKey, list[RunRecord]] = {}
    for run in sorted(runs, key=lambda r: _condition_order(r.cell)):
        groups.setdefault(run.cell, []).append(run)
    return groups


def _colors(runs: Sequence[RunRecord]) -> dict[CellKey, tuple[float, ...]]:
    return _condition_colors([r.cell for r in runs])


def _condition_colors(conditions: Sequence[CellKey]) -> dict[CellKey, tuple[float, ...]]:
    """One colour family per algo; the clean condition darkest, stronger corruption lighter."""
    from matplotlib import colormaps

    colors: dict[CellKey, tuple[float, ...]] = {}
    for algo in {c.algo for c in conditions}:
        own = sorted({c for c in conditions if c.algo == algo}, key=_condition_order)
        cmap = colormaps[_ALGO_COLORMAPS.get(algo, "Purples")]
        for i, condition in enumerate(own):
            colors[condition] = tuple(cmap(0.95 - 0.55 * i / max(1, len(own) - 1)))
    return colors


def train_series(run: TrainLog, metric: str) -> tuple[Sequence[int], Sequence[float | None]]:
    """(steps, values) of one logged training metric of `run`, all None when it has none."""
    values = run.train_metrics.get(metric)
    return run.train_steps, values if values is not None else (None,) * len(run.train_steps)


def mean_std_over_runs(
    series: Sequence[tuple[Sequence[int], Sequence[float | None]]],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(steps, mean, std): per step, the mean and sample std of the finite values of the runs
    that logged it (std 0 where only one run did); None (not produced in that interval) and
    non-finite values are skipped, and a step no run has a value for is left out."""
    values: dict[int, list[float]] = {}
    for steps, ys in series:
        for step, y in zip(steps, ys, strict=True):
            if y is not None and math.isfinite(y):
                values.setdefault(int(step), []).append(float(y))
    steps_sorted = np.array(sorted(values), dtype=np.int64)
    mean = np.array([np.mean(values[s]) for s in steps_sorted], dtype=np.float64)
    std = np.array(
        [np.std(values[s], ddof=1) if len(values[s]) > 1 else 0.0 for s in steps_sorted],
        dtype=np.float64,
    )
    return steps_sorted, mean, std


def values_at(steps: np.ndarray, known_steps: np.ndarray, values: np.ndarray) -> np.ndarray:
    """`values` (aligned with `known_steps`) at each of `steps`, NaN where it has none."""
    known = dict(zip(known_steps.tolist(), values.tolist(), strict=True))
    return np.array([known.get(step, math.nan) for step in steps.tolist()], dtype=np.float64)


def _line_with_band(
    ax: Axes,
    steps: np.ndarray,
    mean: np.ndarray,
    spread: np.ndarray,
    condition: CellKey,
    color: tuple[float, ...],
) -> None:
    """The mean line and a ± `spread` band (the std across seeds: 0 with one seed)."""
    ax.plot(steps, mean, color=color, label=condition_label(condition), marker=".")
    ax.fill_between(steps, mean - spread, mean + spread, color=color, alpha=0.2, linewidth=0)


def _bar_positions(cells: Sequence[CellSummary]) -> tuple[list[float], dict[str, float]]:
    """Bars of one algo side by side, a gap between algos; also each algo's centre."""
    positions: list[float] = []
    members: dict[str, list[float]] = {}
    x = 0.0
    previous: str | None = None
    for cell in cells:
        if previous is not None and cell.algo != previous:
            x += 1.0
        positions.append(x)
        members.setdefault(cell.algo, []).append(x)
        previous = cell.algo
        x += 1.0
    return positions, {algo: float(np.mean(xs)) for algo, xs in members.items()}


def _source(runs: Sequence[RunRecord]) -> str:
    return "/".join(sorted({r.source for r in runs})) or "unknown"


def _seeds(runs: Sequence[RunRecord]) -> list[int]:
    return [r.seed for r in runs]
