"""End-to-end sanity check on tiny budgets: dataset → Phase I grid → a Phase II run → plots
and reports.

Builds a 2,000-transition random-action Hopper dataset in a temporary folder, runs CQL, IQL
and BC with k ∈ {0, 30} % for 200 gradient steps each through the `phase1` CLI, then
fine-tunes the IQL k = 30 run online for 300 steps with the ensemble bonus through the
`phase2` CLI, checks that every run folder holds its files and that every figure each
report.md links to exists and is non-empty (so a renamed figure fails here, not for a user),
and prints the wall time.
Meant to finish in under 2 minutes on 2 CPU cores. `--keep DIR` keeps the outputs in DIR.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path

from hybrid_rl.behavior.replica import collect_transitions
from hybrid_rl.cli import main as cli_main
from hybrid_rl.data.hdf5_format import write_d4rl_hdf5
from hybrid_rl.runs.folder import RUN_FILES

ENV_ID = "Hopper-v4"
TRANSITIONS = 2_000
ALGOS = ("cql", "iql", "bc")
K_PERCENTS = ("0", "30")
STEPS = ["--total_steps", "200", "--log_every", "100", "--eval_every", "200"]
ONLINE_STEPS = ["--total_steps", "300", "--log_every", "300", "--eval_every", "300"]


def run_smoke_test(workdir: Path) -> None:
    dataset = workdir / "hopper-smoke.hdf5"
    arrays = collect_transitions(ENV_ID, None, TRANSITIONS, seed=0, num_envs=4, progress=False)
    write_d4rl_hdf5(dataset, arrays, {"source": "smoke-test", "env_id": ENV_ID})
    results, plots = workdir / "results", workdir / "plots"
    code = cli_main(
        [
            "phase1",
            "--env", str(dataset),
            "--algo", ",".join(ALGOS),
            "--remove_top_k", *K_PERCENTS,
            "--seed", "0",
            *STEPS,
            "--eval_episodes", "2",
            "--device", "cpu",
            # Two single-threaded runs side by side use both cores of a 2-core machine.
            "--workers", "2",
            "--results_dir", str(results),
            "--plots_dir", str(plots),
        ]
    )  # fmt: skip
    assert code == 0, f"hybrid-rl phase1 exited with {code}"
    runs = sorted(p.name for p in results.iterdir() if p.is_dir())
    assert len(runs) == len(ALGOS) * len(K_PERCENTS), f"expected 6 run folders, got {runs}"
    for run in results.iterdir():
        check_run_files(run)
    figures = check_report(plots, kinds=5)
    report = (plots / "report.md").read_text()
    for algo in ALGOS:
        assert f"| {algo.upper()} |" in report, f"report.md has no row for {algo}"
    phase2_results, phase2_plots = workdir / "results_phase2", workdir / "plots_phase2"
    code = cli_main(
        [
            "phase2",
            "--env", str(dataset),
            "--algo", "iql",
            "--remove_top_k", "30",
            "--seed", "0",
            "--bonus_type", "ensemble",
            *ONLINE_STEPS,
            "--eval_episodes", "2",
            "--device", "cpu",
            "--workers", "1",
            "--phase1_results_dir", str(results),
            "--results_dir", str(phase2_results),
            "--plots_dir", str(phase2_plots),
        ]
    )  # fmt: skip
    assert code == 0, f"hybrid-rl phase2 exited with {code}"
    online_run = phase2_results / "ft_iql_hopper-smoke_k30_noise0_ensemble_s0"
    check_run_files(online_run)
    figures += check_report(phase2_plots, kinds=1)
    assert "| IQL |" in (phase2_plots / "report.md").read_text(), "no Phase II row in report.md"
    print(f"outputs: {len(runs)} Phase I runs, 1 Phase II run, {figures} figure files")


def check_run_files(run: Path) -> None:
    for name in RUN_FILES:
        assert (run / name).stat().st_size > 0, f"{run / name} is missing or empty"


def check_report(plots: Path, kinds: int) -> int:
    """report.md and report.html in `plots` are non-empty and every file report.md links to
    (its figures, PNG and PDF) exists and is non-empty, at least `kinds` figures of each
    format; returns how many files it links to."""
    for name in ("report.md", "report.html"):
        assert (plots / name).stat().st_size > 0, f"{plots / name} is missing or empty"
    links = re.findall(r"\]\(([^)\s]+\.(?:png|pdf))\)", (plots / "report.md").read_text())
    for link in links:
        path = plots / link
        assert path.is_file() and path.stat().st_size > 0, f"{path} (linked) is missing or empty"
    for suffix in (".png", ".pdf"):
        count = sum(link.endswith(suffix) for link in links)
        assert count >= kinds, f"{plots / 'report.md'} links {count} {suffix} figures, not {kinds}"
    return len(links)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--keep", help="write the outputs here instead of a temporary folder")
    args = parser.parse_args()
    start = time.monotonic()
    if args.keep:
        Path(args.keep).mkdir(parents=True, exist_ok=True)
        run_smoke_test(Path(args.keep))
    else:
        with tempfile.TemporaryDirectory(prefix="hybrid-rl-smoke-") as tmp:
            run_smoke_test(Path(tmp))
    print(f"smoke test passed in {time.monotonic() - start:.1f} s wall time")
    return 0


if __name__ == "__main__":
    sys.exit(main())
