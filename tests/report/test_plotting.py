"""Phase I figures from synthetic run folders: content, titles, files."""

from __future__ import annotations

import dataclasses
import statistics

import matplotlib.image
import pytest
from matplotlib.container import BarContainer

from hybrid_rl.report.plotting import (
    build_figures,
    final_returns_figure,
    learning_curves_figure,
    new_figure,
    phase1_profile_figure,
    q_values_figure,
    save_figure,
    td_loss_figure,
    write_plots,
)
from hybrid_rl.report.results import aggregate, load_runs

EVALS = {0: (0.0, 20.0, 30.0), 1: (0.0, 24.0, 36.0), 2: (0.0, 22.0, 33.0)}


@pytest.fixture
def runs(tmp_path, write_run):
    for seed, evals in EVALS.items():
        for algo in ("cql", "iql", "bc"):
            for k in (0, 30):
                q = (None, None) if algo == "bc" else ((1.0 + seed, 2.0), (0.5, 0.5))
                scaled = tuple(v * (1 - k / 60) for v in evals)  # k = 30 halves every score
                write_run(
                    tmp_path / "results",
                    algo=algo,
                    k=k,
                    seed=seed,
                    evals=scaled,
                    loss_variance=(0.1 * (seed + 1), 0.2),
                    q_mean=q[0],
                    q_std=q[1],
                )
    write_run(
        tmp_path / "results",
        algo="iql",
        dataset="halfcheetah-medium-v2",
        source="d4rl",
        k=0,
        seed=0,
        evals=(0.0, 40.0),
    )
    return load_runs(tmp_path / "results")[0]


def test_learning_curves_plot_the_mean_over_seeds_per_algo_and_k(runs):
    fig = learning_curves_figure(runs, "hopper-medium-v2")
    title = fig.get_suptitle()
    assert "hopper-medium-v2" in title and "replica" in title and "seeds 0, 1, 2" in title
    [ax] = fig.axes
    assert ax.get_xlabel() == "gradient steps" and "normalized return" in ax.get_ylabel()
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert set(lines) == {
        "CQL clean",
        "CQL top 30%",
        "IQL clean",
        "IQL top 30%",
        "BC clean",
        "BC top 30%",
    }
    assert list(lines["IQL clean"].get_xdata()) == [0, 1000, 2000]
    expected = [statistics.mean(e[i] for e in EVALS.values()) for i in range(3)]
    assert list(lines["IQL clean"].get_ydata()) == pytest.approx(expected)


def test_final_returns_bars_have_std_error_bars_and_n(runs):
    cells = aggregate(runs)
    fig = final_returns_figure(cells, "hopper-medium-v2")
    [ax] = fig.axes
    clean_mean = statistics.mean(e[-1] for e in EVALS.values())
    heights = [p.get_height() for p in ax.patches]  # per algo: clean, then top 30%
    assert heights == pytest.approx([clean_mean, clean_mean / 2] * 3)
    assert [t.get_text() for t in ax.texts] == ["n=3"] * 6
    assert [t.get_text() for t in ax.get_xticklabels()] == ["CQL", "IQL", "BC"]
    bars = [c for c in ax.containers if isinstance(c, BarContainer)]
    assert len(bars) == 6
    segment = bars[0].errorbar.lines[2][0].get_segments()[0]
    spread = statistics.stdev(e[-1] for e in EVALS.values())
    assert segment[1][1] - segment[0][1] == pytest.approx(2 * spread)


def test_q_values_have_a_panel_per_algo_with_a_critic(runs):
    fig = q_values_figure(runs, "hopper-medium-v2")
    assert fig is not None
    assert "Q values: hopper-medium-v2 (replica data)" in fig.get_suptitle()
    assert [ax.get_ylabel().split()[0] for ax in fig.axes] == ["CQL", "IQL"]
    line = next(ln for ln in fig.axes[0].get_lines() if ln.get_label() == "CQL clean")
    assert list(line.get_ydata()) == pytest.approx([2.0, 2.0])  # mean of 1, 2, 3; then 2
    # the band is the spread across seeds (1, 2, 3 at step 1,000; 2, 2, 2 at 2,000), not the
    # spread of Q across states (q_data_std), which is not instability
    band = fig.axes[0].collections[0].get_paths()[0].vertices[:, 1]
    assert band.min() == pytest.approx(1.0) and band.max() == pytest.approx(3.0)
    assert "÷ reward_scale" in fig.axes[0].get_ylabel()
    bc_only = [r for r in runs if r.algo == "bc"]
    assert q_values_figure(bc_only, "hopper-medium-v2") is None


def test_q_values_are_in_raw_reward_return_units(tmp_path, write_run):
    write_run(tmp_path, reward_scale=0.25, evals=(0.0, 1.0, 2.0), q_mean=(10.0, 20.0), q_std=(1, 1))
    fig = q_values_figure(load_runs(tmp_path)[0], "hopper-medium-v2")
    [line] = fig.axes[0].get_lines()
    assert list(line.get_ydata()) == pytest.approx([40.0, 80.0])


def test_td_loss_uses_a_log_axis_and_raw_reward_units(runs, tmp_path, write_run):
    fig = td_loss_figure(runs, "hopper-medium-v2")
    assert all(ax.get_yscale() == "log" for ax in fig.axes)
    assert "TD loss ÷ reward_scale²" in fig.axes[0].get_ylabel()
    line = next(ln for ln in fig.axes[0].get_lines() if ln.get_label() == "CQL top 30%")
    assert list(line.get_ydata()) == pytest.approx([1.0, 1.0])
    # CQL's conservative term is left out; IQL's scaled loss is divided by reward_scale²
    write_run(
        tmp_path / "cql",
        algo="cql",
        evals=(0.0, 1.0),
        train_values=[{"critic_loss": 12.0, "cql_penalty": 1.0}],
    )
    write_run(tmp_path / "iql", evals=(0.0, 1.0), reward_scale=0.5)
    [cql_line] = (
        td_loss_figure(load_runs(tmp_path / "cql")[0], "hopper-medium-v2").axes[0].get_lines()
    )
    assert list(cql_line.get_ydata()) == pytest.approx([12.0 - 5.0 * 2 * 1.0])
    [iql_line] = (
        td_loss_figure(load_runs(tmp_path / "iql")[0], "hopper-medium-v2").axes[0].get_lines()
    )
    assert list(iql_line.get_ydata()) == pytest.approx([1.0 / 0.25])


def test_performance_profile_is_the_fraction_of_seeds_above_each_score(runs):
    fig = phase1_profile_figure(aggregate(runs), "hopper-medium-v2")
    [ax] = fig.axes
    line = next(ln for ln in ax.get_lines() if ln.get_label().startswith("IQL clean"))
    finals = [e[-1] for e in EVALS.values()]
    for tau, fraction in zip(line.get_xdata(), line.get_ydata(), strict=True):
        assert fraction == pytest.approx(sum(f > tau for f in finals) / len(finals))
    assert "Performance profile: hopper-medium-v2" in fig.get_suptitle()


def test_figures_are_made_per_dataset_and_name_its_source(runs):
    kinds = {
        (kind, dataset): fig.get_suptitle()
        for kind, dataset, fig in build_figures(runs, aggregate(runs))
    }
    # hopper: all five kinds; halfcheetah: its one IQL run logged no Q values, so no Q figure
    assert len(kinds) == 9 and ("q_values", "halfcheetah-medium-v2") not in kinds
    assert "(d4rl data), seed 0" in kinds[("learning_curves", "halfcheetah-medium-v2")]


def test_write_plots_saves_readable_png_and_pdf(runs, tmp_path):
    files = write_plots(runs, aggregate(runs), tmp_path / "plots")
    assert {(f.kind, f.dataset) for f in files} >= {
        ("learning_curves", "hopper-medium-v2"),
        ("final_returns", "hopper-medium-v2"),
        ("q_values", "hopper-medium-v2"),
        ("td_loss", "hopper-medium-v2"),
        ("performance_profile", "hopper-medium-v2"),
    }
    for plot in files:
        image = matplotlib.image.imread(plot.png)
        assert image.shape[0] > 100 and image.shape[1] > 100
        assert plot.pdf.read_bytes().startswith(b"%PDF")
        assert plot.dataset in plot.title


def test_a_long_title_is_wrapped_on_the_figure_and_kept_whole_for_the_report(tmp_path):
    fig, _ = new_figure(1)
    title = "Ensemble disagreement (solid: ensemble bonus, dashed: none): " + "x" * 60
    fig.suptitle(title, fontsize=10)
    saved = save_figure(fig, tmp_path, "kind", "hopper-medium-v2")
    assert saved.title == title
    lines = fig.get_suptitle().split("\n")
    assert len(lines) > 1 and " ".join(lines) == title
    assert saved.png.exists() and saved.pdf.exists()


def test_learning_curves_mark_the_dataset_mean_when_the_runs_record_it(runs):
    marked = [dataclasses.replace(r, dataset_normalized_mean=31.5) for r in runs]
    [ax] = learning_curves_figure(marked, "hopper-medium-v2").axes
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert list(lines["dataset mean (before corruption)"].get_ydata()) == [31.5, 31.5]
    [unmarked] = learning_curves_figure(runs, "hopper-medium-v2").axes
    labels = {line.get_label() for line in unmarked.get_lines()}
    assert "dataset mean (before corruption)" not in labels


def test_q_and_td_loss_curves_skip_metrics_not_produced_in_an_interval(tmp_path, write_run):
    results = tmp_path / "results"
    rows = {
        0: (
            {"q_data_mean": 1.0, "q_data_std": None, "critic_loss": None},
            {"q_data_mean": None, "q_data_std": None, "critic_loss": 0.5},
            {"q_data_mean": 3.0, "q_data_std": 1.0, "critic_loss": 1.0},
        ),
        1: (
            {"q_data_mean": 3.0, "q_data_std": None, "critic_loss": None},
            {"q_data_mean": 2.0, "q_data_std": 0.5, "critic_loss": 1.5},
            {"q_data_mean": 5.0, "q_data_std": 1.0, "critic_loss": 3.0},
        ),
    }
    for seed, train_values in rows.items():
        write_run(
            results, algo="td3bc", seed=seed, evals=(0.0, 1.0, 2.0, 3.0), train_values=train_values
        )
    runs = load_runs(results)[0]
    [q_ax] = q_values_figure(runs, "hopper-medium-v2").axes
    [q_line] = q_ax.get_lines()
    assert q_line.get_label() == "TD3BC clean"
    assert list(q_line.get_xdata()) == [1000, 2000, 3000]
    assert list(q_line.get_ydata()) == pytest.approx([2.0, 2.0, 4.0])  # None left out
    band = q_ax.collections[0].get_paths()[0].vertices[:, 1]  # ± std across the seeds
    assert band.min() == pytest.approx(2.0 - 2**0.5) and band.max() == pytest.approx(4.0 + 2**0.5)
    [variance_ax] = td_loss_figure(runs, "hopper-medium-v2").axes
    [variance_line] = variance_ax.get_lines()
    assert list(variance_line.get_xdata()) == [2000, 3000]  # no run logged one at 1,000
    assert list(variance_line.get_ydata()) == pytest.approx([1.0, 2.0])
