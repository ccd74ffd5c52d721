"""What a Phase II run does with data: hybrid batches of online and offline rows, and the
collection of online transitions. How actions are chosen and what is added to the rewards is
the run's explorer's (`algos.explorers`)."""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor

from hybrid_rl.algos.agent import OnlineAgent
from hybrid_rl.algos.explorers import Explorer
from hybrid_rl.batch import TransitionBatch, concat_batches
from hybrid_rl.data.dataset import OfflineDataset
from hybrid_rl.data.replay_buffer import ReplayBuffer
from hybrid_rl.envs import make_env


@torch.no_grad()
def ensemble_disagreement(agent: OnlineAgent, observations: Tensor, actions: Tensor) -> Tensor:
    """Unbiased std over critic members of Q(s, a) at raw observations [B, obs_dim]: [B]."""
    return agent.critic.disagreement(agent.normalizer(observations), actions)


def with_rewards(batch: TransitionBatch, rewards: Tensor) -> TransitionBatch:
    """`batch` with other rewards (NamedTuple._replace trips on TransitionBatch's __len__)."""
    return TransitionBatch(
        batch.observations, batch.actions, rewards, batch.next_observations, batch.terminals
    )


ONLINE_SHARES = ("const", "linear", "uniform")


def parse_online_share(text: str) -> int | None:
    """T of `linear:T` (online steps, ≥ 1); None for `const` and `uniform`. ValueError
    naming the forms otherwise."""
    kind, _, steps = text.partition(":")
    if kind in ("const", "uniform") and not steps:
        return None
    if kind == "linear" and steps.isdigit() and int(steps) >= 1:
        return int(steps)
    raise ValueError(f"expected const, uniform or linear:T with T ≥ 1 online steps, got {text!r}")


class OnlineShare:
    """How many rows of each batch come from the online buffer (the rest from the dataset).

    - `const` (the spec): `online_rows` of every batch, from the first update on.
    - `linear:T`: `online_rows` · min(1, n/T) rounded half up, n the online transitions
      collected so far: the share rises from 0, so the first online rows are not replayed
      ~B/2 times per step each while the buffer is tiny (RLPD's 50/50 is from scratch, with
      nothing of value to overwrite; a near-expert start has).
    - `uniform`: each row drawn uniformly over the dataset's and the buffer's rows together,
      as d3rlpy's `fit_online` does with the offline episodes in its buffer: the count is
      Binomial(B, n/(n + N)), N the dataset's rows, drawn with the sampler's generator.
    """

    def __init__(self, text: str, online_rows: int) -> None:
        self.kind = text.partition(":")[0]
        self.steps = parse_online_share(text)
        self.online_rows = online_rows

    def rows(
        self, batch_size: int, collected: int, offline: int, generator: torch.Generator
    ) -> int:
        """Online rows of the next batch, with `collected` online and `offline` dataset rows."""
        if self.kind == "const":
            return self.online_rows
        if self.kind == "linear":
            assert self.steps is not None
            return math.floor(self.online_rows * min(1.0, collected / self.steps) + 0.5)
        draws = torch.randint(
            offline + collected, (batch_size,), device=generator.device, generator=generator
        )
        return int((draws >= offline).sum())


class HybridSampler:
    """Batches of `online_rows` buffer rows followed by `batch_size − online_rows` dataset rows.

    Both parts are drawn uniformly with replacement, each from its own seeded generator. The
    online rows' rewards are as `explorer.at_sampling` serves them (the shuffled control adds
    bonuses kept apart from the stored rewards). With a `share` other than const the number
    of online rows varies from batch to batch (`OnlineShare`); `online_rows` and
    `offline_rows` are then those of the last batch.
    """

    def __init__(
        self,
        offline: OfflineDataset,
        online: ReplayBuffer,
        batch_size: int,
        online_rows: int,
        seed: int,
        explorer: Explorer | None = None,
        share: OnlineShare | None = None,
    ) -> None:
        if not 0 <= online_rows <= batch_size:
            raise ValueError(f"online_rows must be in [0, {batch_size}], got {online_rows}")
        self.explorer = explorer or Explorer()
        self.offline, self.online = offline, online
        self.batch_size = batch_size
        self.online_rows, self.offline_rows = online_rows, batch_size - online_rows
        self.share = share
        self._generator = torch.Generator(device=online.device)
        self._generator.manual_seed(seed)

    def sample(self) -> TransitionBatch:
        if self.share is not None:
            self.online_rows = self.share.rows(
                self.batch_size, len(self.online), len(self.offline), self._generator
            )
            self.offline_rows = self.batch_size - self.online_rows
        if self.online_rows == 0:
            return self.offline.sample(self.offline_rows)
        rows = self.online.sample_rows(self.online_rows, generator=self._generator)
        online = self.online.rows(rows)
        online = with_rewards(online, self.explorer.at_sampling(rows, online.rewards))
        if self.offline_rows == 0:
            return online
        return concat_batches(online, self.offline.sample(self.offline_rows))

    def state_dict(self) -> dict[str, Any]:
        return {"offline": self.offline.state_dict(), "online": self._generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.offline.load_state_dict(state["offline"])
        self._generator.set_state(state["online"])


class CollectedStep(NamedTuple):
    raw_reward: float  # env units
    disagreement: Tensor  # [1] at (s, a), critic units
    bonus: Tensor  # [1] added to the stored reward, critic units
    episode_return: float | None  # raw return of the episode that ended here, else None
    episode_length: int | None


class OnlineCollector:
    """Steps one env with the action `explorer.act` chooses and stores each transition.

    The stored reward is `reward_scale · r_env` plus what `explorer.at_collection` stores
    (the spec's bonus λ·disagreement(s, a), or nothing). The real next observation is stored
    (Gymnasium 1.x single env: `step` returns it even at episode ends), with `terminated` and
    `truncated` kept apart.
    """

    def __init__(
        self,
        env_id: str,
        agent: OnlineAgent,
        buffer: ReplayBuffer,
        reward_scale: float,
        explorer: Explorer,
        device: torch.device,
    ) -> None:
        self.env = make_env(env_id)
        self.agent, self.buffer, self.device = agent, buffer, device
        self.reward_scale, self.explorer = reward_scale, explorer
        self._obs: np.ndarray | None = None
        self._episode_return, self._episode_length = 0.0, 0

    def restart(self, seed: int | None) -> None:
        """Begin a new episode (seeded, or continuing the env's RNG with None)."""
        self._obs, _ = self.env.reset(seed=seed)
        self._episode_return, self._episode_length = 0.0, 0

    def step(self, step: int = 0) -> CollectedStep:
        """One env step at online step `step` (the bonus schedule's clock)."""
        if self._obs is None:
            raise RuntimeError("call restart(seed) before the first step")
        obs = torch.as_tensor(self._obs, dtype=torch.float32, device=self.device).unsqueeze(0)
        action = self.explorer.act(self.agent, obs, step)
        disagreement = ensemble_disagreement(self.agent, obs, action)
        next_obs, reward, terminated, truncated, _ = self.env.step(action[0].cpu().numpy())
        stored, bonus = self.explorer.at_collection(disagreement, step)
        self.buffer.add(
            obs,
            action,
            stored + self.reward_scale * float(reward),
            next_obs[None],
            np.array([terminated]),
            np.array([truncated]),
        )
        self._episode_return += float(reward)
        self._episode_length += 1
        if not (terminated or truncated):
            self._obs = next_obs
            return CollectedStep(float(reward), disagreement, bonus, None, None)
        finished = (self._episode_return, self._episode_length)
        self.restart(None)
        return CollectedStep(float(reward), disagreement, bonus, *finished)

    def close(self) -> None:
        self.env.close()
