"""Gymnasium environments for rollouts and data collection."""

from __future__ import annotations

import warnings

import gymnasium as gym
import mujoco

from hybrid_rl.data.registry import gym_env_id_of


def _warn_from_mujoco(message: str) -> None:
    warnings.warn(f"MuJoCo: {message}", RuntimeWarning, stacklevel=2)


# MuJoCo prints each warning straight to the terminal, once per model compiled: an evaluator
# compiles ten, so a grid scrolled its progress bars away under copies of one line. As Python
# warnings they are shown once per process and can be filtered like any other.
mujoco.set_mju_user_warning(_warn_from_mujoco)


def _resolve_env_id(env_id: str) -> str:
    # Accept both Gymnasium ids ('Hopper-v4') and dataset ids ('hopper-medium-v2').
    return env_id if env_id[0].isupper() else gym_env_id_of(env_id)


def make_env(env_id: str, seed: int | None = None) -> gym.Env:
    """One Gymnasium env (1000-step cap); `env_id` may be a dataset id like 'hopper-medium-v2'."""
    with warnings.catch_warnings():
        # v4 is deliberately used: its dims and dynamics match D4RL's v2 datasets. Its
        # HalfCheetah model file uses an attribute MuJoCo 4.0 deprecates; nothing to act on.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message="MuJoCo: compiler attribute 'settotalmass'")
        env = gym.make(_resolve_env_id(env_id))
    if seed is not None:
        env.reset(seed=seed)
        env.action_space.seed(seed)
    return env


def make_vector_env(
    env_id: str, num_envs: int, seed: int | None = None
) -> gym.vector.SyncVectorEnv:
    """`num_envs` copies in a SyncVectorEnv (faster than Async on 2 cores), env i seeded seed+i.

    Gymnasium 1.x autoresets on the step AFTER an episode ends (NEXT_STEP mode): that step's
    output is a reset observation, not a transition, and callers must not store it.
    """
    env_fns = [lambda: make_env(env_id) for _ in range(num_envs)]
    vec = gym.vector.SyncVectorEnv(env_fns, autoreset_mode=gym.vector.AutoresetMode.NEXT_STEP)
    if seed is not None:
        vec.reset(seed=[seed + i for i in range(num_envs)])
        vec.action_space.seed(seed)
    return vec
