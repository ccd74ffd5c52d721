"""The drop table: for each condition, the data it left to train on and what it cost.

A removal's cost only means something beside what it removed: top-k removal on a narrow
dataset takes little of its quality away, and a random control matched on trajectories can
remove far fewer transitions than top-k did. So each row gives the kept trajectories and
transitions, the kept trajectories' normalized returns, and the final score's change in
normalized points against the clean runs of the same algorithm and dataset.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from hybrid_rl.report.document import Table, TableRow
from hybrid_rl.report.results import CellSummary, RunRecord, clean_cell

_HEADER: tuple[tuple[str, bool], ...] = (
    ("Dataset", False),
    ("Algo", False),
    ("Condition", False),
    ("n", True),
    ("Trajectories kept", True),
    ("Transitions kept", True),
    ("Kept return (normalized mean)", True),
    ("Kept return (normalized max)", True),
    ("Final IQM [interval]", True),
    ("Δ final IQM vs clean (points)", True),
)

NOTE = (
    "Trajectories and transitions kept after the condition's removal (mean over the seeds' "
    "runs when a random removal differs by seed), the kept trajectories' returns in D4RL's "
    "normalized units, and the final IQM minus the clean condition's final IQM (same "
    "algorithm and dataset), in normalized points."
)


def drop_table(cells: Sequence[CellSummary], runs: Sequence[RunRecord]) -> Table | None:
    """One row per algo × dataset × condition whose runs recorded what they kept; None when
    no run did (runs saved before the corruption stats)."""
    kept_by_dir = {run.run_dir: run.kept for run in runs if run.kept is not None}
    rows = []
    for cell in cells:
        kept = [kept_by_dir[d] for d in cell.run_dirs if d in kept_by_dir]
        if not kept:
            continue
        clean = clean_cell(cells, cell)
        change = (
            cell.final_iqm.point - clean.final_iqm.point
            if clean is not None and cell.n and clean.n and not cell.corruption.is_clean
            else None
        )
        trajectories = _mean([k.trajectories_after for k in kept])
        transitions = _mean([k.transitions_after for k in kept])
        before = kept[0]
        rows.append(
            TableRow(
                (
                    cell.dataset,
                    cell.algo.upper(),
                    cell.corruption.label,
                    str(cell.n),
                    f"{trajectories:,.0f} / {before.trajectories_before:,}",
                    f"{transitions:,.0f} ({100 * transitions / before.transitions_before:.0f}%)",
                    _points(_mean_optional([k.kept_normalized_mean for k in kept])),
                    _points(_mean_optional([k.kept_normalized_max for k in kept])),
                    cell.final_iqm.format(),
                    "clean" if cell.corruption.is_clean else _signed(change),
                ),
                cell.run_dirs,
            )
        )
    if not rows:
        return None
    header, numeric = zip(*_HEADER, strict=True)
    return Table(
        tuple(header),
        tuple(numeric),
        tuple(rows),
        title="What each condition kept, and what it cost",
        note=NOTE,
    )


def _mean(values: Sequence[float]) -> float:
    return float(np.mean(values))


def _mean_optional(values: Sequence[float | None]) -> float | None:
    return None if any(v is None for v in values) else _mean([v for v in values if v is not None])


def _points(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


def _signed(value: float | None) -> str:
    return "—" if value is None or not math.isfinite(value) else f"{value:+.1f}"
