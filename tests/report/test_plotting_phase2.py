"""Phase II figures from synthetic run folders: curves, censored bars, disagreement, files."""

from __future__ import annotations

import statistics

import matplotlib.image
import pytest
from matplotlib.patches import Rectangle

from hybrid_rl.report.plotting_phase2 import (
    arm_styles,
    disagreement_figure,
    finetune_curves_figure,
    steps_to_threshold_figure,
    write_phase2_plots,
)
from hybrid_rl.report.results_phase2 import aggregate_finetune, load_finetune_runs

CLEAN = {0: 50.0, 1: 40.0}  # Phase I k = 0 finals: thresholds 40 and 32
# (k, bonus) -> per seed evaluations at online steps 0, 1,000, 2,000
EVALS = {
    (0.0, "ensemble"): {0: (38.0, 44.0, 50.0), 1: (30.0, 31.0, 38.0)},
    (0.0, "none"): {0: (38.0, 30.0, 41.0), 1: (30.0, 20.0, 33.0)},
    (60.0, "ensemble"): {0: (5.0, 41.0, 45.0), 1: (6.0, 10.0, 12.0)},  # seed 1 never reaches
    (60.0, "none"): {0: (5.0, 8.0, 9.0), 1: (6.0, 7.0, 8.0)},  # neither seed reaches
}
DISAGREEMENT = {"ensemble": (3.0, 2.0), "none": (1.0, 0.5)}


@pytest.fixture
def study(tmp_path, write_run, write_finetune_run):
    phase1, phase2 = tmp_path / "results", tmp_path / "results_phase2"
    for seed, final in CLEAN.items():
        write_run(phase1, k=0, seed=seed, evals=(0.0, final))
    for (k, bonus), per_seed in EVALS.items():
        for seed, evals in per_seed.items():
            write_finetune_run(
                phase2,
                phase1,
                k=k,
                bonus=bonus,
                seed=seed,
                evals=evals,
                disagreement=tuple(d * (1 + k / 60) for d in DISAGREEMENT[bonus]),
            )
    runs = load_finetune_runs(phase2)[0]
    return runs, aggregate_finetune(runs)


def test_curves_are_solid_with_the_bonus_dashed_without_and_coloured_by_k(study):
    runs, _ = study
    fig = finetune_curves_figure(runs, "iql", "hopper-medium-v2")
    title = fig.get_suptitle()
    assert "IQL" in title and "hopper-medium-v2" in title and "replica" in title
    assert "seeds 0, 1" in title
    [ax] = fig.axes
    lines = {line.get_label(): line for line in ax.get_lines()}
    clean_bonus = lines["clean (k=0), ensemble bonus"]
    clean_plain = lines["clean (k=0), no bonus"]
    top_bonus = lines["top 60% removed, ensemble bonus"]
    assert clean_bonus.get_linestyle() == "-" and clean_plain.get_linestyle() == "--"
    assert clean_bonus.get_color() == clean_plain.get_color() != top_bonus.get_color()
    assert list(clean_bonus.get_xdata()) == [0, 1_000, 2_000]
    expected = [statistics.mean(e[i] for e in EVALS[(0.0, "ensemble")].values()) for i in range(3)]
    assert list(clean_bonus.get_ydata()) == pytest.approx(expected)


def test_curves_mark_the_step0_score_and_the_threshold(study):
    runs, _ = study
    [ax] = finetune_curves_figure(runs, "iql", "hopper-medium-v2").axes
    stars = [line for line in ax.get_lines() if line.get_marker() == "*"]
    assert sorted(float(s.get_ydata()[0]) for s in stars) == pytest.approx(
        [statistics.mean([5.0, 6.0]), statistics.mean([38.0, 30.0])]
    )
    assert all(list(s.get_xdata()) == [0] for s in stars)
    [threshold] = [line for line in ax.get_lines() if "80% of the clean" in line.get_label()]
    assert threshold.get_ydata()[0] == pytest.approx(0.8 * statistics.mean(CLEAN.values()))


def test_bars_keep_censored_runs_as_hatched_not_reached_bars_at_the_budget(study):
    runs, cells = study
    fig = steps_to_threshold_figure(runs, cells, "hopper-medium-v2")
    [ax] = [a for a in fig.axes if a.get_ylabel()]
    bars = [p for p in ax.patches if isinstance(p, Rectangle)]
    assert len(bars) == 4  # k ∈ {0, 60} × {ensemble, none}, none dropped
    texts = [t.get_text() for t in ax.texts]
    # k = 0: ensemble reaches 40 at 1,000 (seed 0) and 32 at 2,000 (seed 1); none at 2,000
    # (41 ≥ 40) and 2,000 (33 ≥ 32). k = 60 ensemble: seed 0 at 1,000, seed 1 never: the
    # median of (1,000, censored) is censored. k = 60 none: both censored.
    heights = sorted((round(p.get_x() + p.get_width() / 2, 2), p.get_height()) for p in bars)
    assert [h for _, h in heights] == [1_500.0, 2_000.0, 2_000.0, 2_000.0]
    hatched = [p for p in bars if p.get_hatch()]
    assert len(hatched) == 2 and all(p.get_height() == 2_000 for p in hatched)
    assert texts.count("not reached\n1/2 reached") == 1
    assert texts.count("not reached\n0/2 reached") == 1
    assert texts.count("2/2 reached") == 2
    crosses = [line for line in ax.get_lines() if line.get_marker() == "x"]
    assert len(crosses) == 3  # every censored run drawn at the budget
    assert all(line.get_ydata()[0] == 2_000 for line in crosses)
    assert "80% of the clean offline score" in fig.get_suptitle()


def test_disagreement_is_the_mean_over_seeds_per_k_and_bonus(study):
    runs, _ = study
    fig = disagreement_figure(runs, "hopper-medium-v2")
    [ax] = fig.axes
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert len(lines) == 4
    top = lines["top 60% removed, ensemble bonus"]
    assert list(top.get_xdata()) == [1_000, 2_000]
    assert list(top.get_ydata()) == pytest.approx([6.0, 4.0])  # (3, 2) × 2 for k = 60


def test_written_figures_are_png_and_pdf_with_titles(study, tmp_path):
    runs, cells = study
    files = write_phase2_plots(runs, cells, tmp_path / "plots")
    assert [(f.kind, f.png.name) for f in files] == [
        ("finetune_curves", "finetune_curves_iql_hopper-medium-v2.png"),
        ("steps_to_threshold", "steps_to_80pct_hopper-medium-v2.png"),
        ("performance_profile", "performance_profile_hopper-medium-v2.png"),
        ("disagreement", "disagreement_hopper-medium-v2.png"),
    ]
    for f in files:
        assert matplotlib.image.imread(f.png).shape[0] > 100
        assert f.pdf.read_bytes().startswith(b"%PDF")
        assert "hopper-medium-v2 (replica data), seeds 0, 1" in f.title


def test_disagreement_before_updates_start_is_skipped(tmp_path, write_run, write_finetune_run):
    phase1, phase2 = tmp_path / "results", tmp_path / "results_phase2"
    write_run(phase1, k=0, seed=0, evals=(0.0, 50.0))
    evals = (0.0, 10.0, 20.0, 30.0)
    write_finetune_run(phase2, phase1, seed=0, evals=evals, disagreement=(None, 2.0, None))
    write_finetune_run(phase2, phase1, seed=1, evals=evals, disagreement=(None, 4.0, 3.0))
    fig = disagreement_figure(load_finetune_runs(phase2)[0], "hopper-medium-v2")
    [line] = fig.axes[0].get_lines()
    assert line.get_label() == "clean (k=0), ensemble bonus"
    assert list(line.get_xdata()) == [2_000, 3_000]
    assert list(line.get_ydata()) == pytest.approx([3.0, 3.0])


def test_a_variants_arms_keep_their_bonus_line_style_and_get_a_marker_of_their_own():
    arms = [
        "ensemble",
        "none",
        "ensemble (enoto preset)",
        "none (enoto preset)",
        "ensemble (warm2000-upd)",
    ]
    styles = arm_styles(arms)
    assert styles["ensemble"] == ("-", ".") and styles["none"] == ("--", ".")
    assert styles["ensemble (enoto preset)"][0] == "-" and styles["none (enoto preset)"][0] == "--"
    enoto = styles["ensemble (enoto preset)"][1]
    assert enoto == styles["none (enoto preset)"][1] != "."
    assert styles["ensemble (warm2000-upd)"][1] not in (".", enoto)
    assert len(set(styles.values())) == len(arms)
