"""The summary a card records: the normalized-return histogram."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from hybrid_rl.data.summary import (
    histogram_edges,
    normalized_return_histogram,
    summarize_transitions,
)
from hybrid_rl.data.transitions import TransitionArrays


def test_bins_are_two_points_wide_from_minus_5_to_125():
    edges = histogram_edges()
    assert (edges[0], edges[-1], len(edges)) == (-5.0, 125.0, 66)
    np.testing.assert_array_equal(np.diff(edges), 2.0)


def test_a_value_on_an_edge_goes_to_the_bin_it_opens_and_outliers_are_counted_apart():
    histogram = normalized_return_histogram(np.array([-5.1, -5.0, -3.0, 124.0, 125.0, 125.5]))
    counts = histogram["counts"]
    assert (histogram["underflow"], histogram["overflow"]) == (1, 1)
    assert counts[0] == 1 and counts[1] == 1  # -5 in [-5, -3), -3 in [-3, -1)
    assert counts[-1] == 2  # the last bin [123, 125] is closed
    assert sum(counts) == 4


@given(st.lists(st.floats(-50, 200, allow_nan=False), min_size=1, max_size=300))
def test_counts_sum_to_the_number_of_returns(values):
    histogram = normalized_return_histogram(np.array(values))
    assert sum(histogram["counts"]) + histogram["underflow"] + histogram["overflow"] == len(values)


def test_summary_histogram_counts_every_trajectory():
    rng = np.random.default_rng(0)
    n = 5_000
    ends = rng.random(n) < 0.01
    transitions = TransitionArrays(
        observations=np.zeros((n, 11), np.float32),
        actions=np.zeros((n, 3), np.float32),
        rewards=rng.uniform(-1, 40, n).astype(np.float32),
        next_observations=np.zeros((n, 11), np.float32),
        terminals=ends,
        timeouts=np.zeros(n, bool),
    )
    summary = summarize_transitions(transitions, "Hopper-v4")
    histogram = summary["normalized_return_histogram"]
    total = sum(histogram["counts"]) + histogram["underflow"] + histogram["overflow"]
    assert total == summary["trajectories"] > 40
    assert histogram["overflow"] > 0  # long trajectories exceed the expert's return
    assert "normalized_return_histogram" not in summarize_transitions(transitions, None)
