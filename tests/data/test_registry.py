import numpy as np
import pytest

from hybrid_rl.data.registry import DATASETS, get_dataset_spec, normalized_score


def test_normalized_score_matches_d4rl_reference_points():
    spec = get_dataset_spec("hopper-medium-v2")
    assert normalized_score("hopper-medium-v2", spec.ref_min_score) == pytest.approx(0.0)
    assert normalized_score("Hopper-v4", spec.ref_max_score) == pytest.approx(100.0)
    halfway = (spec.ref_min_score + spec.ref_max_score) / 2
    assert normalized_score("hopper", np.array([halfway]))[0] == pytest.approx(50.0)


def test_unknown_dataset_id_lists_valid_ids():
    with pytest.raises(KeyError) as err:
        get_dataset_spec("walker2d-medium-v2")
    for valid in DATASETS:
        assert valid in str(err.value)


def test_registry_urls_follow_d4rl_file_naming():
    spec = get_dataset_spec("halfcheetah-medium-replay-v2")
    assert spec.url.endswith("gym_mujoco_v2/halfcheetah_medium_replay-v2.hdf5")
    assert spec.gym_env_id == "HalfCheetah-v4"
    assert len(DATASETS) == 11


def test_the_projects_own_dataset_is_marked_as_not_d4rls():
    ours = [spec.dataset_id for spec in DATASETS.values() if not spec.in_d4rl]
    assert ours == ["hopper-medium-bimodal-v2"]
    spec = get_dataset_spec("hopper-medium-bimodal-v2")
    assert (spec.env_name, spec.quality, spec.gym_env_id) == (
        "hopper",
        "medium-bimodal",
        "Hopper-v4",
    )
    assert spec.d4rl_id == "hopper-medium-v2"  # the D4RL dataset it varies
    assert all(s.d4rl_id == s.dataset_id for s in DATASETS.values() if s.in_d4rl)
