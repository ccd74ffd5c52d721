"""The drop table: for each condition, the data it left to train on and what it cost.

A removal's cost only means something beside what it removed: top-k removal on a narrow
dataset takes little of its quality away, and a random control matched on trajectories can
remove far fewer transitions than top-k did. So each row gives the kept trajectories and
transitions, the kept trajectories' normalized returns, and the final score's change in
normalized points against the clean run of the same algorithm, dataset and seed, over the
seeds that have both (subtracting a two-seed clean mean from a one-seed condition mixed seed
luck into the cost: paired with seed 0's own clean run, hopper's random-30% control is −8.5,
not +3.4).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from hybrid_rl.report.document import Table, TableRow
from hybrid_rl.report.results import CellSummary, RunRecord, clean_cell
from hybrid_rl.report.statistics import PairedDifference, paired_difference

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
    ("Δ final vs clean, paired on seed (points) [interval]", True),
    ("Paired seeds", True),
)

NOTE = (
    "Trajectories and transitions kept after the condition's removal (mean over the seeds' "
    "runs when a random removal differs by seed), the kept trajectories' returns in D4RL's "
    "normalized units, and the mean over seeds of each seed's final score minus the final "
    "score of the clean run of the same algorithm, dataset and seed, in normalized points, "
    "over the seeds that have both (their number beside it), with the seeds' range below 5 "
    "seeds."
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
            paired_difference(dict(cell.finals_by_seed), dict(clean.finals_by_seed))
            if clean is not None and not cell.corruption.is_clean
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
                    "clean" if change is None and cell.corruption.is_clean else _change(change),
                    "—" if change is None else str(len(change.seeds)),
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


def _change(change: PairedDifference | None) -> str:
    return "—" if change is None else change.format()
