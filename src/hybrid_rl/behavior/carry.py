"""A behaviour run carried to another machine: its checkpoint without the replay buffer.

An expert SAC run takes longer than one working session on a 2-core machine, and a session
may start on a new machine where only what git holds survives. The full checkpoint holds the
replay buffer (tens of MB, growing with every step); the carried state keeps everything else
(networks, optimizers, temperature, random state, metrics with the curve, the step): a few
MB. A run continued from it starts with an empty buffer, refilled by the current policy for
`learning_starts` steps before updates resume, so it is not the run it would have been on
one machine; the metrics record every such carry (`carried`), and the cards of policies
shipped from it say so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import torch

from hybrid_rl.atomic_io import save_torch_atomic
from hybrid_rl.data.replay_buffer import ReplayBuffer
from hybrid_rl.envs import make_env
from hybrid_rl.runs.folder import RunFolder
from hybrid_rl.runs.identity import as_json

CARRY_FORMAT = "hybrid-rl behaviour carry 1"
# Settings that may change between the legs of one carried run: where and on what it runs,
# and how long it goes on.
_LEG_SETTINGS = ("out_dir", "device", "total_steps")


def pack_carry(run_dir: str | Path, out: str | Path) -> dict[str, Any]:
    """Write `run_dir`'s latest checkpoint, without its replay buffer, to `out`; returns what
    was carried (step, buffer rows left behind, size in bytes)."""
    folder = RunFolder(Path(run_dir))
    state = folder.load_checkpoint("cpu")
    config = folder.read_config()
    if state is None or config is None:
        raise FileNotFoundError(
            f"{run_dir} holds no behaviour run checkpoint (config.json and checkpoint.pt) to "
            "carry; a run writes its first checkpoint after --resume-every steps"
        )
    buffer = state.pop("buffer")
    state.update(format=CARRY_FORMAT, config=config, buffer_rows_left=int(buffer["size"]))
    save_torch_atomic(Path(out), state)
    return {
        "step": int(state["step"]),
        "buffer_rows_left": int(buffer["size"]),
        "bytes": Path(out).stat().st_size,
    }


def start_from_carry(carry: str | Path, config: Any) -> int:
    """Give the run folder of `config` (a BehaviorTrainConfig) a checkpoint made from the
    carried state `carry`, with an empty replay buffer; returns the step it continues from.

    Refused, before anything is written, when the folder already has a checkpoint (it resumes
    from that) or when the carried run trained with other settings than `config`."""
    folder = RunFolder(Path(config.out_dir))
    if folder.checkpoint_path.exists():
        raise FileExistsError(
            f"{folder.path} already has a checkpoint; it resumes from that. A carried state "
            "only starts a run folder that has none."
        )
    state = torch.load(Path(carry), map_location="cpu", weights_only=False)
    if not isinstance(state, dict) or state.get("format") != CARRY_FORMAT:
        raise ValueError(f"{carry} is not a carried behaviour run (hybrid-rl behavior carry)")
    differences = _setting_differences(state["config"], as_json(config))
    if differences:
        raise ValueError(f"{carry} was trained with other settings: {'; '.join(differences)}")
    step = int(state["step"])
    if step >= config.total_steps:
        raise ValueError(
            f"{carry} is at step {step}; --steps {config.total_steps} leaves nothing to train"
        )
    probe = make_env(config.env_id)
    obs_dim = gym.spaces.flatdim(probe.observation_space)
    act_dim = gym.spaces.flatdim(probe.action_space)
    probe.close()
    metrics = state["metrics"]
    # A leg that reached its --steps ended as completed; the run goes on.
    metrics.update(status="running", summary={})
    metrics.setdefault("carried", []).append(
        {"step": step, "buffer_rows_left": state["buffer_rows_left"]}
    )
    kept = {k: v for k, v in state.items() if k not in ("format", "config", "buffer_rows_left")}
    empty = ReplayBuffer(config.total_steps, obs_dim, act_dim).state_dict()
    folder.path.mkdir(parents=True, exist_ok=True)
    folder.save_checkpoint({**kept, "metrics": metrics, "buffer": empty})
    return step


def _setting_differences(saved: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    return [
        f"{key}: carried {saved.get(key)!r}, asked {wanted.get(key)!r}"
        for key in sorted(set(saved) | set(wanted))
        if key not in _LEG_SETTINGS and saved.get(key) != wanted.get(key)
    ]
