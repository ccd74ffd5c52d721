"""Warm-up of the fresh critic members before the first online step (`--fresh_init warmup:N`).

Members 0–1 come trained from Phase I; the others start random and output ≈ 0 where the
loaded ones output Q̄, so any reduction that reads them (min over all, mean, a random pair)
reads noise. The warm-up fits only the fresh members, for N updates on offline batches,
to the algorithm's own TD target computed with the frozen parts (`OnlineAgent.warmup_target`:
IQL r + γ(1 − d)·V(s'); CQL and TD3+BC r + γ(1 − d)·min over the *loaded* target members at
the algorithm's next action). The actor, V, the loaded members and every optimizer are left
exactly as they were (the loaded members' weights are restored bit for bit afterwards); the
fresh members' targets are set equal to the warmed members, as for a fresh member.
The warm-up uses its own Adam (the critic's lr), dropped afterwards. CQL's conservative
penalty is not part of the warm-up: the fresh members are fitted on dataset actions only.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from hybrid_rl.algos.agent import OnlineAgent
from hybrid_rl.algos.networks import make_adam
from hybrid_rl.batch import TransitionBatch


def parse_fresh_init(text: str) -> tuple[str, int]:
    """`random` -> ("random", 0); `warmup:N` -> ("warmup", N ≥ 1); `phase1` -> ("phase1", 0)."""
    if text in ("random", "phase1"):
        return text, 0
    kind, _, value = text.partition(":")
    if kind == "warmup" and value.isdigit() and int(value) >= 1:
        return "warmup", int(value)
    raise ValueError(f"unknown fresh_init {text!r}; choose random | warmup:N (N ≥ 1) | phase1")


def warm_up_fresh_members(
    agent: OnlineAgent, sample: Callable[[], TransitionBatch], updates: int, lr: float
) -> dict[str, float]:
    """Fit members loaded_members .. N − 1 of `agent.critic` for `updates` steps on batches of
    `sample()`; returns the last loss and the mean |Q_fresh − mean Q_loaded| of the last
    batch (critic units)."""
    critic, target = agent.critic, agent.critic_target
    loaded = critic.loaded_members
    if loaded >= critic.members or updates <= 0:
        return {}
    params = list(critic.parameters())
    kept = [p.detach()[:loaded].clone() for p in params]
    optimizer = make_adam(params, lr)
    loss = torch.zeros(())
    gap = torch.zeros(())
    for _ in range(updates):
        batch = sample()
        with torch.no_grad():
            y = agent.warmup_target(batch)  # [B]
        q = critic(agent.normalizer(batch.observations), batch.actions)  # [N, B]
        loss = (q[loaded:] - y).pow(2).mean(dim=1).sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        gap = (q[loaded:].detach() - q[:loaded].detach().mean(0)).abs().mean()
    optimizer.zero_grad(set_to_none=True)
    with torch.no_grad():
        for param, original, target_param in zip(params, kept, target.parameters(), strict=True):
            param[:loaded].copy_(original)
            target_param[loaded:].copy_(param[loaded:])
    return {"warmup_loss": float(loss.detach()), "warmup_gap_to_loaded": float(gap)}
