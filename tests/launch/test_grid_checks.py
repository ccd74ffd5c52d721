"""What both grids check: a bad value names its field; the datasets, device and step settings
are checked before any run starts."""

from __future__ import annotations

import pytest

from hybrid_rl.launch.options import SettingError
from hybrid_rl.launch.phase1_grid import Phase1Grid
from hybrid_rl.launch.phase2_grid import Phase2Grid


@pytest.mark.parametrize(
    ("grid", "overrides", "field", "message"),
    [
        (Phase1Grid, {"k_percents": (0, 100)}, "k_percents", r"must be in \[0, 100\)"),
        (Phase1Grid, {"reward_noise_stds": (float("nan"),)}, "reward_noise_stds", "finite"),
        (Phase1Grid, {"seeds": (0, -1)}, "seeds", "≥ 0"),
        (Phase1Grid, {"eval_every": 0}, "eval_every", "must be positive"),
        (Phase1Grid, {"source": "ftp"}, "source", "unknown dataset source"),
        (Phase2Grid, {"n_ensemble": 1}, "n_ensemble", r"must be in \[2, 10\]"),
        (Phase2Grid, {"online_ratio": -0.5}, "online_ratio", r"must be in \[0, 1\]"),
        (Phase2Grid, {"bonus_coeff": float("inf")}, "bonus_coeff", "finite"),
        (Phase2Grid, {"online_steps": 0}, "online_steps", "must be positive"),
    ],
)
def test_a_bad_value_is_refused_naming_its_field(grid, overrides, field, message):
    with pytest.raises(SettingError, match=message) as refused:
        grid(**overrides)
    assert refused.value.fields == (field,)


def test_validate_checks_the_datasets_and_device_here_and_how_the_steps_fit(tmp_path):
    with pytest.raises(SettingError, match="unknown dataset 'nope-v2'") as refused:
        Phase1Grid(datasets=("nope-v2",)).validate()
    assert refused.value.fields == ("datasets",)
    with pytest.raises(SettingError, match="no such dataset file"):
        Phase2Grid(datasets=(str(tmp_path / "gone.hdf5"),)).validate()
    with pytest.raises(SettingError, match="unknown device 'gpu'") as refused:
        Phase1Grid(device="gpu").validate()
    assert refused.value.fields == ("device",)
    with pytest.raises(SettingError, match="multiple of log_every") as refused:
        Phase1Grid(total_steps=1_500).validate()
    assert refused.value.fields == ("total_steps", "log_every", "eval_every")
    assert len(Phase1Grid(datasets=("any/minari-v0",), source="minari").validate()) == 18
    with pytest.raises(SettingError, match="unknown dataset 'any/minari-v0'"):
        Phase1Grid(datasets=("any/minari-v0",)).validate()  # Minari ids need source 'minari'
    assert len(Phase2Grid(datasets=("any/minari-v0",)).validate()) == 36  # its Phase I run says
