import numpy as np
import pytest

from hybrid_rl.data.registry import get_dataset_spec
from hybrid_rl.envs import make_env, make_vector_env


@pytest.mark.parametrize(
    ("dataset_id", "obs_dim", "act_dim"),
    [("halfcheetah-medium-v2", 17, 6), ("hopper-medium-v2", 11, 3)],
)
def test_dataset_env_has_d4rl_v2_dimensions(dataset_id, obs_dim, act_dim):
    env = make_env(dataset_id, seed=0)
    assert env.observation_space.shape == (obs_dim,)
    assert env.action_space.shape == (act_dim,)
    assert env.spec.max_episode_steps == 1000
    spec = get_dataset_spec(dataset_id)
    assert (spec.obs_dim, spec.act_dim) == (obs_dim, act_dim)
    env.close()


def test_vector_env_autoresets_on_the_step_after_an_episode_ends():
    # Hopper with large random actions falls quickly; the step after the fall is a reset step.
    envs = make_vector_env("Hopper-v4", 1, seed=3)
    envs.reset(seed=3)
    for _ in range(1000):
        _, _, terminated, truncated, _ = envs.step(np.ones((1, 3), dtype=np.float32))
        if terminated[0] or truncated[0]:
            break
    assert terminated[0]
    _, reward, terminated, truncated, _ = envs.step(np.zeros((1, 3), dtype=np.float32))
    assert reward[0] == 0.0 and not terminated[0] and not truncated[0]
    envs.close()


def test_making_envs_prints_no_mujoco_model_deprecation(capfd):
    # Gymnasium's v4 HalfCheetah model makes MuJoCo warn on every compile; an evaluator
    # compiles ten per run, so these lines buried a grid's progress bars.
    for _ in range(3):
        make_env("halfcheetah-medium-v2").close()
    captured = capfd.readouterr()
    assert "settotalmass" not in captured.out + captured.err
