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

import dataclasses
from pathlib import Path
from typing import Any

import torch

from hybrid_rl.atomic_io import save_torch_atomic
from hybrid_rl.runs.folder import RunFolder
from hybrid_rl.runs.identity import identity_conflict

CARRY_FORMAT = "hybrid-rl behaviour carry 1"


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
    # A leg may run to more steps than the one before it; everything else but how and where
    # it runs (the EXECUTION settings) must be the carried run's.
    leg = dataclasses.replace(config, total_steps=state["config"]["total_steps"])
    conflict = identity_conflict(leg, state["config"])
    if conflict is not None:
        raise ValueError(f"{carry} was trained with other settings: {conflict}")
    step = int(state["step"])
    if step >= config.total_steps:
        raise ValueError(
            f"{carry} is at step {step}; --steps {config.total_steps} leaves nothing to train"
        )
    metrics = state["metrics"]
    # A leg that reached its --steps ended as completed; the run goes on.
    metrics.update(status="running", summary={})
    metrics.setdefault("carried", []).append(
        {"step": step, "buffer_rows_left": state["buffer_rows_left"]}
    )
    kept = {k: v for k, v in state.items() if k not in ("format", "config", "buffer_rows_left")}
    folder.path.mkdir(parents=True, exist_ok=True)
    # No buffer: the run's first checkpoint on this machine starts with an empty one.
    folder.save_checkpoint({**kept, "metrics": metrics, "buffer": None})
    return step
