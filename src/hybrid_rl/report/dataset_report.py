"""Replica datasets side by side with D4RL's published statistics: a markdown table and a
return histogram per dataset."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from hybrid_rl.data.loader import LoadedDataset
from hybrid_rl.data.registry import normalized_score, reference_scores
from hybrid_rl.data.transitions import split_trajectories

# Statistics of the real D4RL files (complete episodes only). Returns: the console output of
# Decision Transformer's download_d4rl_datasets.py on the v2 files (Chen et al. 2021), episode
# counts: the TFDS catalog (d4rl_mujoco_*/v2-medium); hopper's 2,186 complete episodes =
# TFDS's 2,187 minus the unfinished one at the end of the file.
D4RL_MEDIUM_REFERENCE: dict[str, dict[str, float]] = {
    "halfcheetah-medium-v2": {
        "transitions": 1_000_000,
        "trajectories": 1_000,
        "return_mean": 4770.335,
        "return_std": 355.750,
        "return_min": -310.234,
        "return_max": 5309.379,
    },
    "hopper-medium-v2": {
        "transitions": 999_906,
        "trajectories": 2_186,
        "return_mean": 1422.056,
        "return_std": 378.954,
        "return_min": 315.868,
        "return_max": 3222.361,
    },
}


@dataclasses.dataclass(frozen=True)
class DatasetStats:
    transitions: int
    trajectories: int
    return_mean: float
    return_std: float
    return_min: float
    return_max: float
    episode_length_mean: float


def dataset_stats(loaded: LoadedDataset) -> tuple[DatasetStats, np.ndarray]:
    """Statistics over complete trajectories (a trailing cut-off one is excluded, as for D4RL's
    reference numbers), and the returns they are computed from."""
    transitions = loaded.transitions
    trajectories = split_trajectories(transitions)
    last_closed = bool(transitions.terminals[-1] or transitions.timeouts[-1])
    keep = len(trajectories) if last_closed else len(trajectories) - 1
    returns = trajectories.returns[:keep]
    lengths = trajectories.lengths[:keep]
    stats = DatasetStats(
        transitions=int(lengths.sum()),
        trajectories=keep,
        return_mean=float(returns.mean()),
        return_std=float(returns.std()),
        return_min=float(returns.min()),
        return_max=float(returns.max()),
        episode_length_mean=float(lengths.mean()),
    )
    return stats, returns


def return_histogram(dataset_id: str, env_id: str, returns: np.ndarray, path: Path) -> None:
    reference = D4RL_MEDIUM_REFERENCE.get(dataset_id)
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.hist(
        normalized_score(env_id, returns),
        bins=50,
        color="tab:blue",
        alpha=0.8,
        label="replica trajectories",
    )
    if reference is not None:
        ax.axvline(
            float(normalized_score(env_id, reference["return_mean"])),
            color="tab:red",
            linestyle="--",
            label="D4RL medium-v2 mean",
        )
    ax.set_xlabel("trajectory return (D4RL normalized)")
    ax.set_ylabel("trajectories")
    ax.set_title(f"{dataset_id} (replica): {len(returns)} trajectories")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def comparison_rows(dataset_id: str, env_id: str, stats: DatasetStats) -> list[str]:
    """Markdown rows: replica vs D4RL for one dataset ('—' where D4RL's value is unknown)."""
    reference = D4RL_MEDIUM_REFERENCE.get(dataset_id, {})
    ours = dataclasses.asdict(stats)
    theirs: dict[str, float] = dict(reference)
    if reference:
        theirs["episode_length_mean"] = reference["transitions"] / reference["trajectories"]
    low, high = reference_scores(env_id)

    def normalized(values: dict[str, float], field: str) -> float | None:
        if field not in values:
            return None
        if field == "return_std":  # a spread: rescaled, not shifted
            return 100.0 * values[field] / (high - low)
        return float(normalized_score(env_id, values[field]))

    rows: list[tuple[str, float | None, float | None, str]] = [
        ("transitions", ours["transitions"], theirs.get("transitions"), ",.0f"),
        ("trajectories", ours["trajectories"], theirs.get("trajectories"), ",.0f"),
    ]
    for name in ("mean", "std", "min", "max"):
        field = f"return_{name}"
        rows.append((f"return {name}", ours[field], theirs.get(field), ".1f"))
    for name in ("mean", "std", "min", "max"):
        field = f"return_{name}"
        rows.append(
            (f"normalized return {name}", normalized(ours, field), normalized(theirs, field), ".1f")
        )
    rows.append(
        (
            "mean episode length",
            ours["episode_length_mean"],
            theirs.get("episode_length_mean"),
            ".1f",
        )
    )
    return [
        f"| {name} | {format(a, fmt) if a is not None else '—'} | "
        f"{format(b, fmt) if b is not None else '—'} |"
        for name, a, b, fmt in rows
    ]


def write_dataset_report(loaded_datasets: list[LoadedDataset], out_dir: Path) -> Path:
    """`out_dir/datasets.md` (one comparison table per dataset) and a histogram PNG each."""
    out_dir.mkdir(parents=True, exist_ok=True)
    sections = [
        "# Datasets: replicas beside D4RL",
        "",
        "Statistics over complete trajectories. D4RL's column: returns from the console output",
        "of Decision Transformer's `download_d4rl_datasets.py` on the v2 files, trajectory",
        "counts from the TFDS catalog (`d4rl_mujoco_*/v2-medium`). Normalized with D4RL's",
        "reference scores (DESIGN.md §4). How the behaviour policies were chosen, and how the",
        "replicas differ from D4RL's data: `behavior-policies.md`. Regenerate with",
        "`hybrid-rl dataset report halfcheetah-medium-v2 hopper-medium-v2 --out docs`.",
        "",
        "A replica rebuilt with the same seed on the same machine is byte-identical. Built on",
        "another CPU, its bytes and sha256 can differ: rounding differences in the policy's",
        "and the simulator's arithmetic grow along the trajectories. The figures below are",
        "those of the file named; every run records the sha256 of the file it read.",
    ]
    for loaded in loaded_datasets:
        prov = loaded.provenance
        dataset_id = prov.dataset_id or Path(prov.path).stem
        env_id = prov.env_id or dataset_id
        stats, returns = dataset_stats(loaded)
        figure = out_dir / f"{dataset_id}-returns.png"
        return_histogram(dataset_id, env_id, returns, figure)
        sections += [
            "",
            f"## {dataset_id}",
            "",
            f"Source: {prov.source}, `{Path(prov.path).name}`, sha256 `{prov.sha256}`.",
            "",
            f"| statistic | {prov.source} | D4RL {dataset_id} |",
            "|---|---|---|",
            *comparison_rows(dataset_id, env_id, stats),
            "",
            f"![returns of {dataset_id}]({figure.name})",
        ]
    report = out_dir / "datasets.md"
    report.write_text("\n".join(sections) + "\n")
    return report
