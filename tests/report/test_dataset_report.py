import numpy as np
import pytest

from hybrid_rl.behavior.replica import collect_transitions
from hybrid_rl.data.hdf5_format import write_d4rl_hdf5
from hybrid_rl.data.loader import load_dataset
from hybrid_rl.data.registry import reference_scores
from hybrid_rl.report.dataset_report import dataset_stats, write_dataset_report


@pytest.fixture(scope="module")
def hopper_replica(tmp_path_factory):
    path = tmp_path_factory.mktemp("report") / "hopper-medium-v2.hdf5"
    arrays = collect_transitions("Hopper-v4", None, 1_500, seed=2, num_envs=3, progress=False)
    write_d4rl_hdf5(
        path, arrays, {"source": "replica", "env_id": "Hopper-v4", "dataset_id": "hopper-medium-v2"}
    )
    return load_dataset(path), arrays


def test_stats_leave_out_the_cut_off_last_trajectory(hopper_replica):
    loaded, arrays = hopper_replica
    ends = np.flatnonzero(arrays["terminals"] | arrays["timeouts"]) + 1
    starts = np.concatenate([[0], ends[:-1]])
    returns = [
        arrays["rewards"][a:b].astype(np.float64).sum() for a, b in zip(starts, ends, strict=True)
    ]
    stats, kept = dataset_stats(loaded)
    assert stats.trajectories == len(ends)
    assert stats.transitions == ends[-1] < 1_500
    np.testing.assert_allclose(kept, returns)
    assert stats.return_mean == pytest.approx(np.mean(returns))
    assert stats.episode_length_mean == pytest.approx(ends[-1] / len(ends))


def test_report_puts_replica_beside_d4rl(hopper_replica, tmp_path):
    loaded, _ = hopper_replica
    report = write_dataset_report([loaded], tmp_path).read_text()
    assert "| trajectories |" in report and "2,186" in report  # D4RL's hopper-medium-v2
    stats, _ = dataset_stats(loaded)
    low, high = reference_scores("hopper")
    assert f"| normalized return std | {100 * stats.return_std / (high - low):.1f} |" in report
    assert (tmp_path / "hopper-medium-v2-returns.png").stat().st_size > 0
