"""The study: its grids (shared with the quick Phase I and II grids) and its intervals."""

from __future__ import annotations

from hybrid_rl.launch.phase1_grid import Phase1Grid
from hybrid_rl.launch.phase2_grid import Phase2Grid
from hybrid_rl.launch.study import STUDY_ARMS, Study


def test_the_quick_study_is_iql_on_hopper_medium_replay_k_0_30_60_in_three_arms():
    study = Study.create(quick=True)
    one = {"algos": ("iql",), "datasets": ("hopper-medium-replay-v2",)}
    # the very runs `run_phase1.py --quick --total_steps 30000` and `run_phase2.py --quick`
    # make for this cell, plus the preset's arm
    assert study.phase1 == Phase1Grid.quick(**one, total_steps=30_000)
    assert study.phase2 == Phase2Grid.quick(**one, arms=STUDY_ARMS)
    configs = study.configs()
    assert [type(c).__name__ for c in configs] == ["TrainConfig"] * 3 + ["FinetuneConfig"] * 9
    assert {c.k_percent for c in configs} == {0, 30, 60}
    assert {c.arm_label for c in configs[3:]} == {
        "ensemble (as specified)",
        "none (as specified)",
        "ensemble (enoto preset)",
    }
    spec_runs = {c.run_name for c in configs[3:] if not c.variant}
    assert spec_runs == {c.run_name for c in Phase2Grid.quick(**one).expand()}
    # every arm starts from the same Phase I checkpoints
    assert {c.phase1_train_config().run_name for c in configs[3:]} == {
        c.run_name for c in configs[:3]
    }
    assert "ensemble (as specified)" in study.describe()[1]
    assert {c.total_steps for c in configs[:3]} == {30_000}
    assert {c.online_steps for c in configs[3:]} == {5_000}
    assert study.phase2.phase1_results_dir == study.phase1.results_dir == "results/quick"
    assert study.plots_dir == "plots_study/quick"


def test_the_full_study_uses_the_full_budgets_and_shared_settings_reach_both_grids():
    study = Study.create(
        seeds=(1, 2),
        k_percents=(0.0, 60.0),
        device="cpu",
        phase1={"results_dir": "r1"},
        phase2={"bonus_coeff": 0.5},
    )
    assert (study.phase1.total_steps, study.phase2.online_steps) == (500_000, 250_000)
    for grid in (study.phase1, study.phase2):
        assert (grid.seeds, grid.k_percents, grid.device) == ((1, 2), (0.0, 60.0), "cpu")
    assert study.phase2.phase1_results_dir == "r1" and study.phase2.bonus_coeff == 0.5
    assert study.plots_dir == "plots_study"


def test_intervals_longer_than_a_budget_are_cut_to_it():
    study = Study.create(quick=True, phase1={"total_steps": 200}, phase2={"online_steps": 300})
    assert (study.phase1.eval_every, study.phase1.logging_interval) == (200, 200)
    assert (study.phase2.eval_every, study.phase2.logging_interval) == (300, 300)
    cut = Study.create(quick=True, phase2={"online_steps": 300, "log_every": 1_000})
    assert cut.phase2.log_every == 300  # a log_every given is cut to the evaluations too
    assert Study.create(quick=True).phase1.eval_every == Phase1Grid().eval_every
