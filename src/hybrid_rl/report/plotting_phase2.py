"""Phase II figures, one set per dataset: fine-tuning curves (one figure per algo), online
steps to 80 % of the clean offline score, a performance profile of the final scores, and the
ensemble disagreement over training.

Colour encodes the corruption of the Phase I data the run starts from, line style the bonus
(solid: ensemble bonus, dashed: none). Curves average over the seeds that reached each step
(completed, diverged and running runs; failed runs are left out; intervals where a metric was
not produced are skipped); the sample-efficiency bars use the completed runs of
`report.results_phase2.aggregate_finetune`, censored runs included.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from hybrid_rl.data.corruption import CorruptionConfig
from hybrid_rl.report.plotting import (
    PlotFile,
    ProfileCurve,
    figure_title,
    mean_std_over_runs,
    new_figure,
    performance_profile_figure,
    save_figure,
    train_series,
)
from hybrid_rl.report.results import corruption_order
from hybrid_rl.report.results_phase2 import (
    BONUS_ORDER,
    DISAGREEMENT_METRIC,
    THRESHOLD_FRACTION,
    FinetuneCell,
    FinetuneRecord,
)
from hybrid_rl.report.statistics import seed_count

BONUS_LINESTYLES = {"ensemble": "-", "none": "--"}
# Arms off the spec ("ensemble (enoto preset)") keep their bonus type's line style; a marker
# of their own tells a variant's arms from the spec's (dots), one marker per variant.
_VARIANT_MARKERS = ("s", "^", "D", "v", "P", "X")
BONUS_LABELS = {"ensemble": "ensemble bonus", "none": "no bonus"}
NOT_REACHED = "not reached"
_ALGO_ORDER = {"cql": 0, "iql": 1}
_BAR_WIDTH = 0.38


def condition_label(corruption: CorruptionConfig) -> str:
    """The Phase I data a run starts from: "clean (k=0)", else the condition's label ("top 30%
    removed", "random 30% removed, reward noise σ=0.1")."""
    return "clean (k=0)" if corruption.is_clean else corruption.label


def finetune_curves_figure(runs: Sequence[FinetuneRecord], algo: str, dataset: str) -> Figure:
    """Normalized return vs online steps for one algo: a line (mean ± std over seeds) per
    condition × bonus type, a star at step 0 per condition (the offline policy's score, the
    same checkpoint for both bonus types) and the 80 % clean-score threshold as a dotted line."""
    runs = [r for r in _plotted(runs, dataset) if r.algo == algo]
    fig, (ax,) = new_figure(1)
    colors = _condition_colors(runs)
    groups = _by_condition_and_bonus(runs)
    styles = arm_styles([bonus for _, bonus in groups])
    for (corruption, bonus), group in groups.items():
        curve = mean_std_over_runs([(r.eval_steps, r.eval_normalized_returns) for r in group])
        _plot_condition(ax, curve, corruption, bonus, colors[corruption], styles[bonus])
    labelled = False
    for corruption, color in colors.items():
        step0 = [
            v
            for r in runs
            if r.corruption == corruption and (v := r.step0_normalized_return) is not None
        ]
        if step0:
            ax.plot(
                [0],
                [float(np.mean(step0))],
                marker="*",
                markersize=14,
                color=color,
                markeredgecolor="black",
                linestyle="none",
                label=None if labelled else "step-0 (offline) score",
            )
            labelled = True
    pooled = next((ref for r in runs if (ref := r.pooled_reference) is not None), None)
    if pooled is not None:
        ax.axhline(
            pooled.level,
            color="grey",
            linestyle="-.",
            linewidth=0.8,
            label=f"clean reference ({seed_count(pooled.seeds)}' last evaluations, pooled)",
        )
    thresholds = [t for r in runs if (t := r.threshold) is not None]
    if thresholds:
        ax.axhline(
            float(np.mean(thresholds)),
            color="grey",
            linestyle=":",
            label=f"{THRESHOLD_FRACTION:.0%} of the clean offline score (Phase I k=0 final)",
        )
    ax.set_xlabel("online env steps")
    ax.set_ylabel("normalized return (D4RL score)")
    title = f"Fine-tuning {algo.upper()} (solid: ensemble bonus, dashed: none)"
    fig.suptitle(figure_title(title, dataset, _source(runs), _seeds(runs)), fontsize=10)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, handlelength=3)
    ax.grid(alpha=0.3)
    return fig


def steps_to_threshold_figure(
    runs: Sequence[FinetuneRecord], cells: Sequence[FinetuneCell], dataset: str
) -> Figure:
    """Online steps to 80 % of the clean offline score, one panel per algo: a bar per
    condition × bonus type at the median over seeds, each run as a dot. A censored median is a
    hatched bar at the budget labelled "not reached"; censored runs are crosses at the budget;
    each bar says how many runs reached the threshold."""
    cells = [c for c in cells if c.dataset == dataset]
    completed = [r for r in runs if r.dataset == dataset and r.status == "completed"]
    algos = sorted({c.algo for c in cells}, key=lambda a: (_ALGO_ORDER.get(a, 9), a))
    fig, axes = new_figure(max(1, len(algos)))
    colors = _condition_colors(cells)
    for ax, algo in zip(axes, algos, strict=False):
        own = [c for c in cells if c.algo == algo]
        conditions = sorted({c.corruption for c in own}, key=corruption_order)
        budget = max(c.budget for c in own)
        # The spec's two arms side by side as before; further arms (presets, controls) after.
        arms = sorted({c.bonus_type for c in own}, key=lambda a: (BONUS_ORDER.get(a, 9), a))
        width = _BAR_WIDTH * 2 / max(2, len(arms))
        for i, corruption in enumerate(conditions):
            for cell in (c for c in own if c.corruption == corruption):
                x = i + (arms.index(cell.bonus_type) - (max(2, len(arms)) - 1) / 2) * width
                _threshold_bar(ax, x, cell, colors[corruption])
                _run_dots(ax, x, [r for r in completed if r.cell == cell.key])
        ax.axhline(budget, color="black", linewidth=0.8, linestyle=":")
        ax.set_xticks(range(len(conditions)), [condition_label(c) for c in conditions])
        ax.set_ylim(0, budget * 1.3)
        ax.set_xlabel(f"{algo.upper()} fine-tuned from")
        ax.set_ylabel(f"online steps to {THRESHOLD_FRACTION:.0%} of the clean offline score")
        ax.grid(alpha=0.3, axis="y")
        ax.legend(
            handles=_bar_legend(budget),
            fontsize=7,
            loc="upper center",
            bbox_to_anchor=(0.5, -0.14),
            ncol=3,
        )
    seeds = [s for c in cells for s in c.seeds]
    source = "/".join(sorted({c.source for c in cells})) or "unknown"
    title = f"Online steps to {THRESHOLD_FRACTION:.0%} of the clean offline score"
    fig.suptitle(figure_title(title, dataset, source, seeds), fontsize=10)
    return fig


def disagreement_figure(runs: Sequence[FinetuneRecord], dataset: str) -> Figure | None:
    """Ensemble disagreement at the collected (s, a) over online steps, one panel per algo, a
    line (mean ± std over seeds) per condition × bonus type; None when no run logged it."""
    runs = [r for r in _plotted(runs, dataset) if DISAGREEMENT_METRIC in r.train_metrics]
    if not runs:
        return None
    algos = sorted({r.algo for r in runs}, key=lambda a: (_ALGO_ORDER.get(a, 9), a))
    fig, axes = new_figure(len(algos))
    colors = _condition_colors(runs)
    for ax, algo in zip(axes, algos, strict=True):
        own = [r for r in runs if r.algo == algo]
        groups = _by_condition_and_bonus(own)
        styles = arm_styles([bonus for _, bonus in groups])
        for (corruption, bonus), group in groups.items():
            curve = mean_std_over_runs([train_series(r, DISAGREEMENT_METRIC) for r in group])
            _plot_condition(ax, curve, corruption, bonus, colors[corruption], styles[bonus])
        ax.set_xlabel("online env steps")
        ax.set_ylabel(f"{algo.upper()} std of Q over critic members at collected (s, a)")
        ax.legend(fontsize=7, handlelength=3)
        ax.grid(alpha=0.3)
    title = "Ensemble disagreement (solid: ensemble bonus, dashed: none)"
    fig.suptitle(figure_title(title, dataset, _source(runs), _seeds(runs)), fontsize=10)
    return fig


def phase2_profile_figure(runs: Sequence[FinetuneRecord], dataset: str) -> Figure:
    """Performance profile of the final scores of the completed runs on `dataset`, one curve
    per algo × condition × bonus type (colour: condition, line style: bonus)."""
    completed = [r for r in runs if r.dataset == dataset and r.status == "completed"]
    colors = _condition_colors(completed)
    curves: list[ProfileCurve] = []
    for (corruption, bonus), group in _by_condition_and_bonus(completed).items():
        for algo in sorted({r.algo for r in group}, key=lambda a: (_ALGO_ORDER.get(a, 9), a)):
            scores = [
                v for r in group if r.algo == algo and (v := r.final_normalized_return) is not None
            ]
            label = (
                f"{algo.upper()} {condition_label(corruption)}, {BONUS_LABELS.get(bonus, bonus)}"
            )
            curves.append((label, colors[corruption], arm_styles([bonus])[bonus][0], scores))
    title = figure_title(
        "Performance profile after fine-tuning", dataset, _source(completed), _seeds(completed)
    )
    return performance_profile_figure(curves, title)


def build_phase2_figures(
    runs: Sequence[FinetuneRecord], cells: Sequence[FinetuneCell]
) -> list[tuple[str, str, str, Figure]]:
    """Every Phase II figure, as (kind, dataset, file name prefix, figure)."""
    figures: list[tuple[str, str, str, Figure]] = []
    for dataset in sorted({r.dataset for r in runs}):
        algos = sorted(
            {r.algo for r in runs if r.dataset == dataset},
            key=lambda a: (_ALGO_ORDER.get(a, 9), a),
        )
        for algo in algos:
            figure = finetune_curves_figure(runs, algo, dataset)
            figures.append(("finetune_curves", dataset, f"finetune_curves_{algo}", figure))
        figure = steps_to_threshold_figure(runs, cells, dataset)
        figures.append(("steps_to_threshold", dataset, "steps_to_80pct", figure))
        profile = phase2_profile_figure(runs, dataset)
        figures.append(("performance_profile", dataset, "performance_profile", profile))
        disagreement = disagreement_figure(runs, dataset)
        if disagreement is not None:
            figures.append(("disagreement", dataset, "disagreement", disagreement))
    return figures


def write_phase2_plots(
    runs: Sequence[FinetuneRecord], cells: Sequence[FinetuneCell], plots_dir: str | Path
) -> list[PlotFile]:
    """Save `build_phase2_figures` to `plots_dir/<prefix>_<dataset>.{png,pdf}`."""
    return [
        save_figure(fig, plots_dir, kind, dataset, name)
        for kind, dataset, name, fig in build_phase2_figures(runs, cells)
    ]


def _threshold_bar(ax: Axes, x: float, cell: FinetuneCell, color: tuple[float, ...]) -> None:
    alpha = 1.0 if cell.bonus_type == "ensemble" else 0.45
    if cell.steps_median is None:
        label = "no clean reference" if cell.n else "no completed run"
        ax.annotate(
            label,
            (x, 0),
            xytext=(0, 3),
            textcoords="offset points",
            ha="center",
            fontsize=6,
            rotation=90,
        )
        return
    censored = math.isinf(cell.steps_median)
    height = float(cell.budget) if censored else cell.steps_median
    ax.bar(
        x,
        height,
        width=_BAR_WIDTH,
        color=color,
        alpha=alpha,
        edgecolor="black",
        linewidth=0.6,
        hatch="//" if censored else None,
    )
    text = f"{cell.reached}/{cell.with_reference} reached"
    if censored:
        text = f"{NOT_REACHED}\n{text}"
    ax.annotate(
        text, (x, height), xytext=(0, 3), textcoords="offset points", ha="center", fontsize=6
    )


def _run_dots(ax: Axes, x: float, runs: Sequence[FinetuneRecord]) -> None:
    with_reference = [r for r in runs if r.threshold is not None]
    for j, run in enumerate(with_reference):
        offset = (j - (len(with_reference) - 1) / 2) * 0.05
        steps = run.steps_to_threshold
        if steps is None:
            ax.plot(x + offset, run.online_steps, marker="x", color="black", markersize=6)
        else:
            ax.plot(x + offset, steps, marker="o", color="black", markersize=3)


def _bar_legend(budget: int) -> list[Patch | Line2D]:
    return [
        Patch(facecolor="grey", edgecolor="black", label="ensemble bonus (median over seeds)"),
        Patch(facecolor="grey", alpha=0.45, edgecolor="black", label="no bonus (median)"),
        Patch(facecolor="white", edgecolor="black", hatch="//", label=f"median {NOT_REACHED}"),
        Line2D([], [], marker="o", color="black", markersize=3, linestyle="none", label="one run"),
        Line2D([], [], marker="x", color="black", linestyle="none", label=f"run {NOT_REACHED}"),
        Line2D(
            [],
            [],
            color="black",
            linewidth=0.8,
            linestyle=":",
            label=f"budget ({budget:,} online steps)",
        ),
    ]


def _plotted(runs: Sequence[FinetuneRecord], dataset: str) -> list[FinetuneRecord]:
    return [r for r in runs if r.dataset == dataset and r.status != "failed"]


def _by_condition_and_bonus(
    runs: Sequence[FinetuneRecord],
) -> dict[tuple[CorruptionConfig, str], list[FinetuneRecord]]:
    groups: dict[tuple[CorruptionConfig, str], list[FinetuneRecord]] = {}
    ordered = sorted(
        runs,
        key=lambda r: (corruption_order(r.corruption), BONUS_ORDER.get(r.bonus_type, 9)),
    )
    for run in ordered:
        groups.setdefault((run.corruption, run.bonus_type), []).append(run)
    return groups


def _condition_colors(
    items: Sequence[FinetuneRecord] | Sequence[FinetuneCell],
) -> dict[CorruptionConfig, tuple[float, ...]]:
    """One colour per condition, in `corruption_order`: the clean data darkest, stronger
    corruption lighter."""
    conditions = sorted({item.corruption for item in items}, key=corruption_order)
    cmap = colormaps["plasma"]
    return {
        c: tuple(cmap(0.75 * i / max(1, len(conditions) - 1))) for i, c in enumerate(conditions)
    }


def _source(runs: Sequence[FinetuneRecord]) -> str:
    return "/".join(sorted({r.source for r in runs})) or "unknown"


def arm_styles(arms: Sequence[str]) -> dict[str, tuple[str, str]]:
    """(line style, marker) per arm: the style from its bonus type (solid ensemble, dashed
    none, dotted others), the marker from its variant (dots for the spec's arms)."""
    variants = sorted({arm.partition(" (")[2] for arm in arms} - {""})
    styles = {}
    for arm in arms:
        bonus_type, _, variant = arm.partition(" (")
        marker = (
            _VARIANT_MARKERS[variants.index(variant) % len(_VARIANT_MARKERS)] if variant else "."
        )
        styles[arm] = (BONUS_LINESTYLES.get(bonus_type, ":"), marker)
    return styles


def _seeds(runs: Sequence[FinetuneRecord]) -> list[int]:
    return [r.seed for r in runs]


def _plot_condition(
    ax: Axes,
    curve: tuple[np.ndarray, np.ndarray, np.ndarray],
    corruption: CorruptionConfig,
    bonus: str,
    color: str | tuple[float, ...],
    style: tuple[str, str],
) -> None:
    """One condition × arm: its mean line (style and marker by arm) and a ± std band."""
    steps, mean, std = curve
    linestyle, marker = style
    ax.plot(
        steps,
        mean,
        color=color,
        linestyle=linestyle,
        marker=marker,
        markersize=4,
        label=f"{condition_label(corruption)}, {BONUS_LABELS.get(bonus, bonus)}",
    )
    ax.fill_between(steps, mean - std, mean + std, color=color, alpha=0.15, linewidth=0)
