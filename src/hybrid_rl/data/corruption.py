"""Controlled corruption of an offline dataset: trajectory removal and reward noise.

Every function here is pure: it reads a `TransitionArrays`, returns a new one that shares no
memory with its input, and reports what it did as a JSON-serializable stats dataclass.

Returns are undiscounted sums of rewards per trajectory, with trajectories segmented on
`terminals | timeouts` (see `split_trajectories`). Removing whole trajectories keeps the
segmentation intact: every trajectory except possibly the last ends on a flagged row, so the
kept rows, left in their original order, split into exactly the kept trajectories.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Literal

import numpy as np

from hybrid_rl.data.transitions import Trajectories, TransitionArrays, split_trajectories

# "random" removes as many trajectories as "top" would, chosen at random (matched on
# trajectories); "random_transitions" removes random trajectories until as many transitions
# are gone as "top" removes (matched on transitions: on a dataset whose best trajectories are
# its longest, the two controls differ).
RemovalMode = Literal["top", "random", "random_transitions", "none"]
REMOVAL_MODES: tuple[str, ...] = ("top", "random", "random_transitions", "none")
# RIQL's corruption targets (Yang et al. 2023): which part of a transition is corrupted.
AttackTarget = Literal["none", "obs", "act", "rew", "next_obs"]
ATTACK_TARGETS: tuple[str, ...] = ("none", "obs", "act", "rew", "next_obs")
AttackMode = Literal["random", "adversarial"]
ATTACK_MODES: tuple[str, ...] = ("random", "adversarial")
# RIQL's random reward corruption draws rewards from U(−30·scale, 30·scale).
RANDOM_REWARD_RANGE = 30.0

# Random removal and reward noise draw from separate streams of the same seed, so one seed
# serves a whole corruption without the two draws being copies of one another.
_RANDOM_REMOVAL_STREAM = 0
_REWARD_NOISE_STREAM = 1
_ATTACK_STREAM = 2


@dataclass(frozen=True)
class ReturnSummary:
    """Distribution of undiscounted trajectory returns (population std, linear quartiles)."""

    trajectories: int
    mean: float
    std: float
    min: float
    q25: float
    median: float
    q75: float
    max: float

    @classmethod
    def of(cls, returns: np.ndarray) -> ReturnSummary:
        q25, median, q75 = np.percentile(returns, [25, 50, 75])
        return cls(
            trajectories=int(returns.size),
            mean=float(np.mean(returns)),
            std=float(np.std(returns)),
            min=float(np.min(returns)),
            q25=float(q25),
            median=float(median),
            q75=float(q75),
            max=float(np.max(returns)),
        )


@dataclass(frozen=True)
class RemovalStats:
    """What `remove_top_k` / `remove_random_k` removed.

    `removed_return_min` is the lowest return among the removed trajectories: for top-k removal
    it is the threshold above which nothing was kept. It and `removed_return_max` are None when
    nothing was removed. `seed` is None for the (deterministic) top-k removal.
    """

    mode: Literal["top", "random", "random_transitions"]
    k_percent: float
    seed: int | None
    trajectories_before: int
    trajectories_after: int
    trajectories_removed: int
    transitions_before: int
    transitions_after: int
    removed_return_min: float | None
    removed_return_max: float | None
    returns_before: ReturnSummary
    returns_after: ReturnSummary

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class NoiseStats:
    """What `add_reward_noise` did; returns are computed from the rewards before and after."""

    reward_noise_std: float
    seed: int
    transitions: int
    returns_before: ReturnSummary
    returns_after: ReturnSummary

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class AttackStats:
    """What `attack_transitions` did."""

    target: str
    mode: str
    rate: float
    scale: float
    seed: int
    transitions: int
    attacked: int  # rows changed
    returns_before: ReturnSummary
    returns_after: ReturnSummary


@dataclass(frozen=True)
class CorruptionConfig:
    """One corruption condition of a dataset: `removal` of `k_percent` of its trajectories,
    then RIQL-style corruption of a share `attack_rate` of the transitions (`attack`:
    observations, actions, rewards or next observations; `attack_mode` random, or adversarial
    for rewards; `attack_scale` in per-dimension stds), then Gaussian reward noise of std
    `reward_noise_std`.

    The one place that says what "clean" is. k = 0 removes nothing whatever the mode, so the
    condition is canonical: with k = 0 the removal is "none" (given "top" or "random", it is
    stored as "none"), and two conditions that corrupt alike compare equal. `removal="none"`
    with k > 0 is an error. The seed that drives random removal and the noise is the run's,
    passed to `corrupt` beside the condition.
    """

    removal: RemovalMode = "none"
    k_percent: float = 0.0
    reward_noise_std: float = 0.0
    # RIQL-style corruption of a share of the transitions (Yang et al. 2023); "none": off.
    attack: AttackTarget = "none"
    attack_mode: AttackMode = "random"
    attack_rate: float = 0.3
    attack_scale: float = 1.0

    def __post_init__(self) -> None:
        if self.removal not in REMOVAL_MODES:
            raise ValueError(
                f"unknown removal mode {self.removal!r}; choose one of {', '.join(REMOVAL_MODES)}"
            )
        _check_k_percent(self.k_percent)
        _check_sigma(self.reward_noise_std)
        if self.removal == "none" and self.k_percent != 0:
            raise ValueError(
                f"k_percent={self.k_percent} was given with removal='none'; "
                "choose removal='top' or 'random', or set k_percent=0"
            )
        _check_attack(self.attack, self.attack_mode, self.attack_rate, self.attack_scale)
        object.__setattr__(self, "k_percent", float(self.k_percent))
        object.__setattr__(self, "reward_noise_std", float(self.reward_noise_std))
        object.__setattr__(self, "attack_rate", float(self.attack_rate))
        object.__setattr__(self, "attack_scale", float(self.attack_scale))
        if self.k_percent == 0:
            object.__setattr__(self, "removal", "none")
        if self.attack == "none":  # the attack's settings mean nothing without one
            object.__setattr__(self, "attack_mode", "random")
            object.__setattr__(self, "attack_rate", 0.3)
            object.__setattr__(self, "attack_scale", 1.0)

    @property
    def is_clean(self) -> bool:
        """Nothing removed and no reward noise: the reference every condition is compared to."""
        return self.k_percent == 0 and self.reward_noise_std == 0 and self.attack == "none"

    @property
    def removes(self) -> bool:
        return self.k_percent > 0

    def without_noise(self) -> CorruptionConfig:
        return dataclasses.replace(self, reward_noise_std=0.0)

    @property
    def name_part(self) -> str:
        """The condition in a run name: `k30_noise0`, `randk30_noise0.1` (clean: `k0_noise0`)."""
        removal = {"random": "randk", "random_transitions": "randtk"}.get(self.removal, "k")
        name = f"{removal}{self.k_percent:g}_noise{self.reward_noise_std:g}"
        if self.attack != "none":
            mode = "adv" if self.attack_mode == "adversarial" else ""
            name += f"_{self.attack}{mode}{self.attack_rate:g}x{self.attack_scale:g}"
        return name

    @property
    def attack_label(self) -> str:
        """E.g. "random act corruption (30% of transitions, scale 1)"; "" without an attack."""
        if self.attack == "none":
            return ""
        return (
            f"{self.attack_mode} {self.attack} corruption ({self.attack_rate:.0%} of "
            f"transitions, scale {self.attack_scale:g})"
        )

    @property
    def label(self) -> str:
        """For tables and legends: "clean", "top 30% removed", "random 30% removed, σ=0.1"."""
        parts = []
        if self.removes:
            matched = " (matched on transitions)" if self.removal == "random_transitions" else ""
            mode = "random" if matched else self.removal
            parts.append(f"{mode} {self.k_percent:g}% removed{matched}")
        if self.attack != "none":
            parts.append(self.attack_label)
        if self.reward_noise_std:
            parts.append(f"reward noise σ={self.reward_noise_std:g}")
        return ", ".join(parts) or "clean"


@dataclass(frozen=True)
class CorruptionStats:
    """Everything `corrupt` did, for a run's config.json.

    `returns_after_removal` are the true returns of the kept data (before noise);
    `returns_after` are those of the rewards the agent will train on (after noise).
    """

    removal: RemovalMode
    k_percent: float
    reward_noise_std: float
    seed: int
    trajectories_before: int
    trajectories_after: int
    trajectories_removed: int
    transitions_before: int
    transitions_after: int
    removed_return_min: float | None
    removed_return_max: float | None
    returns_before: ReturnSummary
    returns_after_removal: ReturnSummary
    returns_after: ReturnSummary
    attack: AttackStats | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def removal_count(num_trajectories: int, k_percent: float) -> int:
    """Trajectories that removing k% of `num_trajectories` drops: floor(k/100 · T).

    Whole trajectories only, rounded down, so k > 0 on a small dataset may remove none
    (k=10 of 9 trajectories removes 0). k is read as the decimal it prints as (29.0, not the
    binary float slightly below it), so e.g. k=29 of 100 trajectories removes exactly 29.
    Since k < 100, at least one trajectory is always kept.
    """
    _check_k_percent(k_percent)
    return math.floor(Fraction(repr(float(k_percent))) * num_trajectories / 100)


def remove_top_k(
    transitions: TransitionArrays, k_percent: float
) -> tuple[TransitionArrays, RemovalStats]:
    """Drop the `removal_count(T, k_percent)` trajectories with the highest returns.

    Ranking: by return, descending; among equal returns the earlier trajectory (lower index in
    the arrays) is removed first, so the result is deterministic. Kept rows stay in their
    original order. Raises ValueError unless 0 <= k_percent < 100.
    """
    _check_k_percent(k_percent)
    _check_corruptible(transitions)
    trajectories = split_trajectories(transitions)
    count = removal_count(len(trajectories), k_percent)
    # lexsort's last key is the primary one: return descending, then index ascending.
    ranking = np.lexsort((np.arange(len(trajectories)), -trajectories.returns))
    return _remove(transitions, trajectories, ranking[:count], "top", k_percent, None)


def remove_random_k(
    transitions: TransitionArrays, k_percent: float, seed: int
) -> tuple[TransitionArrays, RemovalStats]:
    """Drop as many trajectories as `remove_top_k` would, chosen uniformly without replacement.

    The control for top-k removal: it loses the same amount of data, but not the best of it.
    Deterministic for a given seed. Raises ValueError unless 0 <= k_percent < 100.
    """
    _check_k_percent(k_percent)
    _check_corruptible(transitions)
    trajectories = split_trajectories(transitions)
    count = removal_count(len(trajectories), k_percent)
    rng = np.random.default_rng([seed, _RANDOM_REMOVAL_STREAM])
    chosen = rng.choice(len(trajectories), size=count, replace=False)
    return _remove(transitions, trajectories, chosen, "random", k_percent, seed)


def remove_random_k_transitions(
    transitions: TransitionArrays, k_percent: float, seed: int
) -> tuple[TransitionArrays, RemovalStats]:
    """Drop random trajectories until about as many transitions are gone as `remove_top_k`
    removes: trajectories in a random order (deterministic for a given seed), the shortest
    prefix of that order whose length reaches the top-k transition count, or the one just
    before it when that is closer."""
    _check_k_percent(k_percent)
    _check_corruptible(transitions)
    trajectories = split_trajectories(transitions)
    ranking = np.lexsort((np.arange(len(trajectories)), -trajectories.returns))
    target = int(trajectories.lengths[ranking[: removal_count(len(trajectories), k_percent)]].sum())
    rng = np.random.default_rng([seed, _RANDOM_REMOVAL_STREAM])
    order = rng.permutation(len(trajectories))
    cumulative = np.concatenate([[0], np.cumsum(trajectories.lengths[order])])
    reach = int(np.searchsorted(cumulative, target))  # first prefix with ≥ target rows
    count = min((reach - 1, reach), key=lambda n: (abs(cumulative[n] - target), n)) if reach else 0
    count = min(count, len(trajectories) - 1)  # keep at least one trajectory
    return _remove(transitions, trajectories, order[:count], "random_transitions", k_percent, seed)


def add_reward_noise(
    transitions: TransitionArrays, sigma: float, seed: int
) -> tuple[TransitionArrays, NoiseStats]:
    """Rewards + N(0, sigma²), one independent draw per transition; rewards stay float32.

    sigma = 0 returns an equal copy. Deterministic for a given seed. Raises ValueError unless
    sigma is finite and >= 0.
    """
    _check_sigma(sigma)
    _check_corruptible(transitions)
    returns_before = split_trajectories(transitions).returns
    copy = transitions.take(np.arange(len(transitions)))
    if sigma > 0:
        rng = np.random.default_rng([seed, _REWARD_NOISE_STREAM])
        noise = rng.normal(0.0, sigma, size=len(transitions))
        copy = copy.with_rewards((copy.rewards.astype(np.float64) + noise).astype(np.float32))
    stats = NoiseStats(
        reward_noise_std=float(sigma),
        seed=seed,
        transitions=len(transitions),
        returns_before=ReturnSummary.of(returns_before),
        returns_after=ReturnSummary.of(split_trajectories(copy).returns),
    )
    return copy, stats


def attack_transitions(
    transitions: TransitionArrays,
    target: AttackTarget,
    mode: AttackMode,
    rate: float,
    scale: float,
    seed: int,
) -> tuple[TransitionArrays, AttackStats]:
    """RIQL's corruption (Yang et al. 2023) of each transition with probability `rate`.

    Random mode: observations, actions or next observations get uniform noise
    U(−scale, scale) times the dataset's per-dimension std (population std, before the
    attack); rewards are replaced by U(−30·scale, 30·scale). Adversarial mode (rewards only
    here; RIQL's adversarial state and action attacks need a trained critic to attack):
    r ← −scale·r. Terminals and timeouts are untouched, so trajectories stay as they were.
    Actions are not clipped to the action box, as in RIQL. Deterministic for a given seed.
    """
    _check_attack(target, mode, rate, scale)
    _check_corruptible(transitions)
    rng = np.random.default_rng([seed, _ATTACK_STREAM])
    attacked = np.flatnonzero(rng.random(len(transitions)) < rate)
    copy = transitions.take(np.arange(len(transitions)))
    field = {"obs": "observations", "act": "actions", "rew": "rewards"}.get(
        target, "next_observations"
    )
    values = getattr(copy, field)
    if target == "rew" and mode == "adversarial":
        values[attacked] = -scale * values[attacked]
    elif target == "rew":
        values[attacked] = rng.uniform(
            -scale * RANDOM_REWARD_RANGE, scale * RANDOM_REWARD_RANGE, size=attacked.size
        )
    else:
        std = getattr(transitions, field).astype(np.float64).std(axis=0)
        noise = rng.uniform(-scale, scale, size=(attacked.size, values.shape[1])) * std
        values[attacked] = (values[attacked] + noise).astype(values.dtype)
    stats = AttackStats(
        target=target,
        mode=mode,
        rate=float(rate),
        scale=float(scale),
        seed=seed,
        transitions=len(transitions),
        attacked=int(attacked.size),
        returns_before=ReturnSummary.of(split_trajectories(transitions).returns),
        returns_after=ReturnSummary.of(split_trajectories(copy).returns),
    )
    return copy, stats


def corrupt(
    transitions: TransitionArrays, config: CorruptionConfig, seed: int = 0
) -> tuple[TransitionArrays, CorruptionStats]:
    """Apply `config`: trajectory removal first, then the RIQL-style attack, then reward
    noise; `seed` drives random removal, the attack and the noise (top-k removal is
    deterministic).

    Removal comes first because the study varies the loss of the truly best data: ranking
    trajectories by noisy returns would remove a different, partly random set and confound
    the two corruptions.
    """
    _check_corruptible(transitions)
    removal: RemovalStats | None = None
    if config.removal == "top":
        kept, removal = remove_top_k(transitions, config.k_percent)
    elif config.removal == "random":
        kept, removal = remove_random_k(transitions, config.k_percent, seed)
    elif config.removal == "random_transitions":
        kept, removal = remove_random_k_transitions(transitions, config.k_percent, seed)
    else:
        kept = transitions
    attack: AttackStats | None = None
    if config.attack != "none":
        kept, attack = attack_transitions(
            kept,
            config.attack,
            config.attack_mode,
            config.attack_rate,
            config.attack_scale,
            seed,
        )
    corrupted, noise = add_reward_noise(kept, config.reward_noise_std, seed)
    returns_before = ReturnSummary.of(split_trajectories(transitions).returns)
    stats = CorruptionStats(
        removal=config.removal,
        k_percent=float(config.k_percent),
        reward_noise_std=float(config.reward_noise_std),
        seed=seed,
        trajectories_before=returns_before.trajectories,
        trajectories_after=noise.returns_after.trajectories,
        trajectories_removed=returns_before.trajectories - noise.returns_after.trajectories,
        transitions_before=len(transitions),
        transitions_after=len(corrupted),
        removed_return_min=None if removal is None else removal.removed_return_min,
        removed_return_max=None if removal is None else removal.removed_return_max,
        returns_before=returns_before,
        returns_after_removal=noise.returns_before,
        returns_after=noise.returns_after,
        attack=attack,
    )
    return corrupted, stats


def _remove(
    transitions: TransitionArrays,
    trajectories: Trajectories,
    removed_ids: np.ndarray,
    mode: Literal["top", "random", "random_transitions"],
    k_percent: float,
    seed: int | None,
) -> tuple[TransitionArrays, RemovalStats]:
    keep_trajectory = np.ones(len(trajectories), dtype=bool)
    keep_trajectory[removed_ids] = False
    kept = transitions.take(np.repeat(keep_trajectory, trajectories.lengths))
    removed_returns = trajectories.returns[removed_ids]
    stats = RemovalStats(
        mode=mode,
        k_percent=float(k_percent),
        seed=seed,
        trajectories_before=len(trajectories),
        trajectories_after=int(keep_trajectory.sum()),
        trajectories_removed=int(removed_ids.size),
        transitions_before=len(transitions),
        transitions_after=len(kept),
        removed_return_min=float(removed_returns.min()) if removed_returns.size else None,
        removed_return_max=float(removed_returns.max()) if removed_returns.size else None,
        returns_before=ReturnSummary.of(trajectories.returns),
        returns_after=ReturnSummary.of(trajectories.returns[keep_trajectory]),
    )
    return kept, stats


def _check_k_percent(k_percent: float) -> None:
    if not 0 <= k_percent < 100:
        raise ValueError(
            f"k_percent must be in [0, 100), got {k_percent}; "
            "it is the percentage of trajectories to remove (0 removes none)"
        )


def _check_sigma(sigma: float) -> None:
    if not (math.isfinite(sigma) and sigma >= 0):
        raise ValueError(
            f"reward noise std must be finite and >= 0, got {sigma}; use 0 for no noise"
        )


def _check_attack(target: str, mode: str, rate: float, scale: float) -> None:
    if target not in ATTACK_TARGETS:
        raise ValueError(f"unknown attack {target!r}; choose one of {', '.join(ATTACK_TARGETS)}")
    if mode not in ATTACK_MODES:
        raise ValueError(f"unknown attack mode {mode!r}; choose random or adversarial")
    if mode == "adversarial" and target not in ("rew", "none"):
        raise ValueError(
            f"the adversarial {target} attack is not available: RIQL's gradient attacks on "
            "states and actions need a trained critic; use attack_mode random, or attack rew"
        )
    if not 0 < rate <= 1:
        raise ValueError(f"attack rate must be in (0, 1], got {rate}: the share of transitions")
    if not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"attack scale must be finite and > 0, got {scale}")


def _check_corruptible(transitions: TransitionArrays) -> None:
    if len(transitions) == 0:
        raise ValueError("cannot corrupt an empty dataset: it has no transitions")
    if not np.all(np.isfinite(transitions.rewards)):
        bad = int(np.flatnonzero(~np.isfinite(transitions.rewards))[0])
        raise ValueError(
            f"rewards must be finite to rank trajectories, but row {bad} holds "
            f"{transitions.rewards[bad]}; check or re-fetch the dataset"
        )


CLEAN = CorruptionConfig()  # the reference condition every other one is compared to
