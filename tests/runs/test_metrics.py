"""The metrics log keeps every metric aligned with its steps; interval means count per metric."""

from __future__ import annotations

import math

import torch

from hybrid_rl.runs.metrics import IntervalMeans, MetricsLog, host_values


def test_metrics_that_appear_on_some_intervals_stay_aligned_with_steps():
    log = MetricsLog()
    log.log_train(100, {"critic_loss": 1.0})
    log.log_train(200, {"critic_loss": 2.0, "actor_loss": 5.0})
    log.log_train(300, {"critic_loss": 3.0})
    train = log.data["train"]
    assert train == {
        "steps": [100, 200, 300],
        "critic_loss": [1.0, 2.0, 3.0],
        "actor_loss": [None, 5.0, None],
    }


def test_interval_means_divide_by_the_steps_that_produced_each_metric():
    means = IntervalMeans()
    for step in range(4):
        values = {"critic_loss": torch.tensor(float(step))}
        if step % 2:
            values["actor_loss"] = torch.tensor(10.0 * step)
        means.add(values)
    assert host_values(means.means()) == {"critic_loss": 1.5, "actor_loss": 20.0}
    means.clear()
    assert host_values(means.means()) == {}


def test_non_finite_values_are_found_and_nulls_ignored():
    log = MetricsLog()
    assert log.non_finite({"a": math.nan, "b": None, "c": 1.0, "d": math.inf}) == ["a", "d"]
