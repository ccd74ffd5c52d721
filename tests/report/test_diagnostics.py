"""Diagnostics in comparable units: TD loss without CQL's conservative term, reward-scale-free
loss variance, Q in return units and Q fluctuation over time."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hybrid_rl.report.diagnostics import run_diagnostics, td_loss_series
from hybrid_rl.report.results import aggregate, load_run

STEPS = tuple(range(1_000, 11_000, 1_000))  # 10 log intervals
EVAL_STEPS = (0, *STEPS)


def test_cql_td_loss_is_the_critic_loss_without_the_conservative_term():
    config = {"cql_alpha": 5.0, "critic_members": 2}
    metrics = {"critic_loss": [12.0, None, 8.0], "cql_penalty": [1.0, None, 0.5]}
    assert td_loss_series(metrics, config) == [2.0, None, 3.0]
    # logged separately (newer runs): taken as is
    assert td_loss_series({**metrics, "td_loss": [1.5, 1.0, 0.5]}, config) == [1.5, 1.0, 0.5]
    # no conservative term (IQL, TD3+BC): the critic loss is the TD loss
    assert td_loss_series({"critic_loss": [4.0]}, {}) == [4.0]
    # no critic (BC)
    assert td_loss_series({"actor_loss": [1.0]}, {}) is None


def test_late_variance_and_q_do_not_depend_on_the_reward_scale():
    rng = np.random.default_rng(0)
    raw_loss = rng.uniform(0.5, 1.5, len(STEPS))
    raw_q = np.linspace(10.0, 100.0, len(STEPS))
    results = []
    for scale in (1.0, 0.237, 3.0):
        metrics = {
            "critic_loss": list(raw_loss * scale**2),  # a squared TD error
            "q_data_mean": list(raw_q * scale),
        }
        results.append(run_diagnostics(STEPS, metrics, EVAL_STEPS, scale, {}))
    for other in results[1:]:
        assert other.late_td_loss_variance == pytest.approx(results[0].late_td_loss_variance)
        assert other.late_td_loss_cv == pytest.approx(results[0].late_td_loss_cv)
        assert other.late_q_mean == pytest.approx(results[0].late_q_mean)
        assert other.q_fluctuation == pytest.approx(results[0].q_fluctuation)
    # the last 20% of 10,000 steps: the intervals ending at 9,000 and 10,000
    late = raw_loss[-2:]
    assert results[0].late_td_loss_variance == pytest.approx(np.var(late, ddof=1))
    assert results[0].late_td_loss_cv == pytest.approx(np.std(late, ddof=1) / np.mean(late))
    assert results[0].late_q_mean == pytest.approx(np.mean(raw_q[-2:]))


def test_q_fluctuation_is_the_std_of_mean_q_over_the_last_five_evaluations():
    q = [1.0, 5.0, 1.0, 5.0, 1.0, 10.0, 1.0, 30.0, 1.0, 40.0]  # logged at 1,000 ... 10,000
    diagnostics = run_diagnostics(STEPS, {"q_data_mean": q}, EVAL_STEPS[::2], 2.0, {})
    # evaluations at 2,000, 4,000, ..., 10,000: Q there 5, 5, 10, 30, 40, halved
    expected = np.std([2.5, 2.5, 5.0, 15.0, 20.0], ddof=1)
    assert diagnostics.q_fluctuation == pytest.approx(expected)
    flat = run_diagnostics(STEPS, {"q_data_mean": [7.0] * 10}, EVAL_STEPS, 1.0, {})
    assert flat.q_fluctuation == 0.0


def test_runs_without_a_critic_have_no_diagnostics():
    diagnostics = run_diagnostics(STEPS, {"actor_loss": [1.0] * 10}, EVAL_STEPS, 1.0, {})
    assert diagnostics.late_td_loss_variance is None and diagnostics.late_q_mean is None


def test_cells_average_the_diagnostics_of_their_runs(tmp_path, write_run):
    for seed, scale in enumerate((0.5, 2.0)):
        write_run(
            tmp_path,
            seed=seed,
            evals=(0.0, 10.0, 20.0, 30.0, 40.0, 50.0),
            reward_scale=scale,
            train_values=[
                {"critic_loss": v * scale**2, "q_data_mean": q * scale}
                for v, q in [(1.0, 10.0), (1.0, 20.0), (1.0, 30.0), (2.0, 40.0), (4.0, 50.0)]
            ],
        )
    run = load_run(tmp_path / "iql_hopper-medium-v2_k0_noise0_s0")
    assert run.reward_scale == 0.5 and run.git_commit is not None
    [cell] = aggregate([load_run(p) for p in sorted(tmp_path.iterdir())])
    # both runs: late intervals (> 4,000 of 5,000 steps) are the last one only -> no variance
    assert cell.late_td_loss_variance is None
    assert cell.late_q_mean == pytest.approx(50.0)
    assert cell.q_fluctuation == pytest.approx(np.std([10, 20, 30, 40, 50], ddof=1))
    assert not math.isnan(cell.final_iqm.point)
