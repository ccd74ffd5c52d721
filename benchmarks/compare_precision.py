"""Does `--precision bf16` learn like fp32? The same runs at both precisions, side by side.

Reads two results folders of the same grid (`run_phase1.py ... --precision fp32 --results_dir A`
and `... --precision bf16 --results_dir B`): runs with the same folder name are the same
condition and seed, so they share the network initialisation, the batches and the evaluation
seeds, and the per-seed difference of their final scores is paired. Prints each seed's final
normalized return at both precisions, whether every bf16 final lies within the fp32 seeds'
range, and the paired mean difference with the interval its seeds allow (their range below 5
seeds, a 95% bootstrap CI from 5: `report.statistics.interval_over_seeds`); draws both curves.

    python benchmarks/compare_precision.py --fp32 results_fp32 --bf16 results_bf16 \\
        --out docs/results-bf16-check
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from hybrid_rl.report.statistics import paired_difference

PRECISIONS = ("fp32", "bf16")
COLORS = {"fp32": "tab:blue", "bf16": "tab:orange"}


def read_curves(results_dir: Path, precision: str) -> dict[str, dict[str, list[float]]]:
    """Completed runs' evaluation curves by run folder name; each run must have been trained
    at `precision` (its config.json says)."""
    curves = {}
    for metrics_path in sorted(results_dir.glob("*/metrics.json")):
        metrics = json.loads(metrics_path.read_text())
        if metrics.get("status") != "completed":
            continue
        config = json.loads((metrics_path.parent / "config.json").read_text())
        recorded = config["config"]["precision"]
        if recorded != precision:
            raise SystemExit(f"{metrics_path.parent} was trained at {recorded}, not {precision}")
        curves[metrics_path.parent.name] = metrics["eval"]
    return curves


def seed_of(run_name: str) -> int:
    match = re.search(r"_s(\d+)$", run_name)
    if match is None:
        raise ValueError(f"run folder {run_name!r} does not end in _s<seed>")
    return int(match.group(1))


def compare(fp32_dir: Path, bf16_dir: Path) -> dict[str, Any]:
    curves = {"fp32": read_curves(fp32_dir, "fp32"), "bf16": read_curves(bf16_dir, "bf16")}
    names = sorted(set(curves["fp32"]) & set(curves["bf16"]))
    if not names:
        raise SystemExit(f"no completed run is in both {fp32_dir} and {bf16_dir}")
    finals = {
        p: {seed_of(n): curves[p][n]["normalized_return_mean"][-1] for n in names}
        for p in PRECISIONS
    }
    low, high = min(finals["fp32"].values()), max(finals["fp32"].values())
    difference = paired_difference(finals["bf16"], finals["fp32"])
    return {
        "runs": names,
        "curves": {p: {n: curves[p][n] for n in names} for p in PRECISIONS},
        "finals": finals,
        "fp32_range": [low, high],
        "bf16_within_fp32_range": all(low <= v <= high for v in finals["bf16"].values()),
        "bf16_minus_fp32": {
            "by_seed": dict(zip(difference.seeds, difference.differences, strict=True)),
            "mean": difference.mean.point,
            "interval": [difference.mean.low, difference.mean.high],
            # "range" below 5 seeds (the seeds' min and max), "ci" from 5 (95% bootstrap)
            "interval_kind": difference.mean.kind,
            "text": difference.format(2),
        },
    }


def plot(result: dict[str, Any], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 3.8))
    for precision in PRECISIONS:
        runs = list(result["curves"][precision].values())
        steps = np.asarray(runs[0]["steps"])
        scores = np.asarray([run["normalized_return_mean"] for run in runs])
        color = COLORS[precision]
        for curve in scores:
            ax.plot(steps, curve, color=color, alpha=0.35, linewidth=0.8)
        ax.plot(
            steps,
            scores.mean(axis=0),
            color=color,
            linewidth=2,
            label=f"{precision} (mean of {len(runs)} seeds; thin: each seed)",
        )
    ax.set_xlabel("gradient steps")
    ax.set_ylabel("normalized return")
    ax.set_title(", ".join(sorted({re.sub(r"_s\d+$", "", n) for n in result["runs"]})), fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fp32", type=Path, required=True, help="results folder of fp32 runs")
    parser.add_argument("--bf16", type=Path, required=True, help="results folder of bf16 runs")
    parser.add_argument("--out", type=Path, required=True, help="folder for the JSON and figure")
    args = parser.parse_args()
    result = compare(args.fp32, args.bf16)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "precision.json").write_text(json.dumps(result, indent=2) + "\n")
    plot(result, args.out / "precision.png")
    print("| seed | fp32 final | bf16 final | bf16 − fp32 |")
    print("|---:|---:|---:|---:|")
    for seed, diff in result["bf16_minus_fp32"]["by_seed"].items():
        fp32, bf16 = result["finals"]["fp32"][seed], result["finals"]["bf16"][seed]
        print(f"| {seed} | {fp32:.1f} | {bf16:.1f} | {diff:+.1f} |")
    low, high = result["fp32_range"]
    print(
        f"fp32 finals span {low:.1f}-{high:.1f}; every bf16 final within it: "
        f"{result['bf16_within_fp32_range']}; paired mean bf16 − fp32 "
        f"{result['bf16_minus_fp32']['text']}"
    )


if __name__ == "__main__":
    main()
