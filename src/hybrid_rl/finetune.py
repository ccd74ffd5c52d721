"""The online loop of Phase II: fine-tune a Phase I agent online, with an optional ensemble bonus.

A run starts from the Phase I checkpoint of the same algo, dataset, corruption and seed, and
keeps training on a hybrid replay: each batch holds `round(online_ratio · B)` rows from the
online buffer followed by the rest from the same corrupted offline dataset Phase I used.

- Collection: one env, the stochastic policy from the first step, one gradient update per env
  step once the online buffer holds `batch_size` rows (before that, steps only collect).
- Bonus (`bonus_type="ensemble"`): each online transition is stored with reward
  `reward_scale · r_env + λ · disagreement(s, a)`, where disagreement is the unbiased std over
  the critic members of Q(s, a). The bonus is computed once, at collection, by the critic of
  that moment. Offline rewards are never touched. With `bonus_type="none"` the stored reward
  is `reward_scale · r_env`.
- Reward units: the critic is trained in the offline data's reward units, so online env
  rewards get the same `reward_scale` (IQL: 1000 / return range of the corrupted data; CQL:
  1). The disagreement is a std of Q values, already in those units, so the bonus is added
  as is, not scaled again: λ means "λ critic stds" for every algorithm.
- Checkpoints (every `eval_every` steps, atomic) hold the agent with its optimizers, the
  samplers, the online buffer, the RNG states and the step. At every checkpoint the collecting
  episode is restarted from a seed derived from (seed, step); a resumed run restarts it in the
  same way, so it continues exactly as an uninterrupted run. The restart cuts at most one
  episode per checkpoint; the transition before the cut is stored as it happened (not
  terminal), so no data is falsified.

Options beyond the spec (issue 14; every default is the spec, reported "as specified"):
fresh members warmed up or trained in Phase I (`fresh_init`, `algos.warmup`), other reductions
over members (`target_reduce`, `actor_reduce`, `algos.reductions`), the bonus's time, units,
normalisation and schedule (`algos.bonus`), UCB action selection instead of a reward bonus
(`exploration`, `algos.exploration`), the Phase I critic's Adam state kept
(`keep_critic_optimizer`), IQL's online actor lr (`iql_actor_lr`), the online share of each
batch rising from 0 or drawn uniformly over all rows (`online_share`, issue 31), a
shuffled-bonus control (`bonus_type="shuffled"`), and named sets of them (`PHASE2_PRESETS`).
A run with any option off its default is named for it (`FinetuneConfig.variant`), so arms
never share a folder.

A run writes `results_dir/<run name>/config.json`, `metrics.json` and `checkpoint.pt`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
import torch
from torch import Tensor

from hybrid_rl.algos.agent import OnlineAgent, OnlineOptions
from hybrid_rl.algos.bonus import (
    BONUS_NORMS,
    BONUS_TIMES,
    BONUS_UNITS,
    BonusNorm,
    BonusScale,
    BonusSettings,
    BonusTime,
    BonusUnits,
    ShuffledBonuses,
    parse_schedule,
    permute_rows,
)
from hybrid_rl.algos.ensemble import DEFAULT_MEMBERS, MAX_MEMBERS, MIN_MEMBERS, PHASE1_MEMBERS
from hybrid_rl.algos.exploration import UCBExploration, parse_exploration
from hybrid_rl.algos.reductions import Reduction
from hybrid_rl.algos.registry import PHASE2_ALGORITHMS, get_algorithm
from hybrid_rl.algos.warmup import parse_fresh_init, warm_up_fresh_members
from hybrid_rl.data.corruption import CorruptionConfig, RemovalMode
from hybrid_rl.data.loader import DatasetProvenance
from hybrid_rl.data.replay_buffer import ReplayBuffer
from hybrid_rl.eval.rollout import PolicyEvaluator
from hybrid_rl.online_collection import (
    HybridSampler,
    OnlineCollector,
    OnlineShare,
    ensemble_disagreement,
    parse_online_share,
    with_rewards,
)
from hybrid_rl.phase1_run import Phase1Run, Phase1RunError, check_same_dataset, find_phase1_run
from hybrid_rl.provenance import git_commit, software_versions
from hybrid_rl.runs.folder import RunFolder
from hybrid_rl.runs.identity import check_same_run, identity_conflict
from hybrid_rl.runs.loop import Cadence, LoopTask, finished_metrics, run_loop
from hybrid_rl.runs.metrics import MetricsLog
from hybrid_rl.runs.spec import RunCost
from hybrid_rl.seeding import resolve_device, seed_everything
from hybrid_rl.settings import EXECUTION
from hybrid_rl.train import TrainConfig, prepare_dataset

# "shuffled" is a control: the ensemble bonus's values, permuted across online transitions.
BonusType = Literal["ensemble", "none", "shuffled"]
BONUS_TYPES: tuple[BonusType, ...] = get_args(BonusType)
SPEC_BONUS_TYPES: tuple[BonusType, ...] = ("ensemble", "none")  # the spec's two arms
# An online step (an env step, an action, a disagreement forward and an update), in offline
# updates of the same algorithm, for wall-time estimates. IQL's: about one (measured ~1.0 on
# 2-core machines), rounded up. CQL's is its N = 3 critic update, 1.5 of its twin-Q update:
# 9.5 vs 14.3 updates/s on 1 thread (docs/benchmarks.md, "Second machine: AMD EPYC"), as the
# FLOP counts say (10.474 vs 7.044 GFLOP); the env step adds little next to it.
ONLINE_STEP_COST = {"cql": 1.5, "iql": 1.2}
DEFAULT_ONLINE_STEP_COST = 1.2  # an algorithm not measured online (TD3+BC)
# A warm-up update (critic forward and backward, no actor or V step) costs about half an
# offline update (an estimate, rounded up), spread over the online steps in the estimate.
WARMUP_UPDATE_COST = 0.5
# Streams of derived seeds, so no two random streams of a run share their bits.
_ONLINE_SAMPLER_STREAM, _EPISODE_STREAM, _SHUFFLE_STREAM = 1, 2, 3

# The Phase II options beyond the spec, each a FinetuneConfig field whose default is the spec.
PHASE2_OPTIONS = (
    "fresh_init",
    "target_reduce",
    "actor_reduce",
    "bonus_time",
    "bonus_units",
    "bonus_norm",
    "bonus_schedule",
    "exploration",
    "keep_critic_optimizer",
    "iql_actor_lr",
    "online_share",
)
# Named sets of those options. "spec" is DESIGN.md §6 as specified (all defaults). "enoto" is
# the best-supported configuration we know of, each value for a published reason:
# - fresh_init warmup:5000: every member is trained before it is trusted (ENOTO, Zhao et al.
#   2023, pretrains all N members offline; `phase1` does exactly that but needs Phase I
#   rerun with --n_critics, so the preset warms the fresh members on the offline data from
#   the same twin-Q checkpoints instead: 5,000 updates toward their own TD target).
# - target_reduce redq:2: a softer target than the min over all members, the min over a random
#   pair (ENOTO's RandomMinPair; REDQ; RLPD, Ball et al. 2023, takes a random pair of 10).
# - actor_reduce mean: the actor follows the members' mean Q (REDQ and ENOTO's actor).
# - bonus_time update, bonus_units per_step, bonus_norm running: the bonus is recomputed with
#   the current critic on every batch (never a stale value frozen in the buffer), is in
#   per-step units ((1 − γ)·std of Q: it raises Q by about λ std of Q, the UCB optimism of
#   SUNRISE, Lee et al. 2021), and is divided by the running std of the disagreement, as RND
#   (Burda et al. 2018) divides its intrinsic reward, so λ = 1 means the same on every
#   dataset and ensemble size.
# - keep_critic_optimizer: the loaded members continue with their Phase I Adam moments.
# λ itself (bonus_coeff), exploration (reward bonus, not UCB), the schedule and IQL's online
# actor lr keep their defaults.
PHASE2_PRESETS: dict[str, dict[str, Any]] = {
    "spec": {},
    "enoto": {
        "fresh_init": "warmup:5000",
        "target_reduce": "redq:2",
        "actor_reduce": "mean",
        "bonus_time": "update",
        "bonus_units": "per_step",
        "bonus_norm": "running",
        "keep_critic_optimizer": True,
    },
}


@dataclass
class FinetuneConfig:
    algo: str = "iql"
    dataset: str = "halfcheetah-medium-v2"
    k_percent: float = 0.0
    reward_noise_std: float = 0.0
    removal: RemovalMode = "top"
    seed: int = 0
    n_ensemble: int = 3
    bonus_type: BonusType = "ensemble"
    bonus_coeff: float = 1.0  # λ
    # Options beyond the spec (PHASE2_OPTIONS; module doc); every default is the spec.
    fresh_init: str = "random"  # random | warmup:N | phase1
    target_reduce: str = "min_all"  # algos.reductions
    actor_reduce: str | None = None  # None: the algorithm's own (min_all; TD3+BC: member 0)
    bonus_time: BonusTime = "collect"
    bonus_units: BonusUnits = "q"
    bonus_norm: BonusNorm = "none"
    bonus_schedule: str = "const"  # const | linear:T
    exploration: str = "reward_bonus"  # reward_bonus | ucb:K
    keep_critic_optimizer: bool = False
    iql_actor_lr: float | None = None  # None: the Phase I actor_lr (3e-4), constant
    # const (the spec): online_ratio of every batch from the first update | linear:T: that
    # share reached over the first T online steps | uniform: rows drawn uniformly over the
    # dataset and the buffer together, as d3rlpy's fit_online (`online_collection.OnlineShare`)
    online_share: str = "const"
    online_ratio: float = 0.5  # share of each batch drawn from the online buffer
    online_steps: int = 250_000  # env steps (= gradient updates + batch_size − 1 warm-up steps)
    eval_every: int = 5_000
    eval_episodes: int = 10
    log_every: int = 1_000
    loss_variance_window: int = 1_000  # updates of critic loss behind each rolling variance
    batch_size: int = 256
    phase1_results_dir: str = field(default="results", metadata=EXECUTION)
    results_dir: str = field(default="results_phase2", metadata=EXECUTION)
    device: str = field(default="auto", metadata=EXECUTION)

    def __post_init__(self) -> None:
        if self.algo not in PHASE2_ALGORITHMS:
            raise ValueError(
                f"Phase II fine-tunes {' or '.join(PHASE2_ALGORITHMS)}, got algo={self.algo!r}"
            )
        if self.bonus_type not in BONUS_TYPES:
            raise ValueError(
                f"bonus_type must be one of {', '.join(BONUS_TYPES)}, got {self.bonus_type!r}"
            )
        if not MIN_MEMBERS <= self.n_ensemble <= MAX_MEMBERS:
            raise ValueError(
                f"n_ensemble must be in [{MIN_MEMBERS}, {MAX_MEMBERS}], got {self.n_ensemble}"
            )
        if not (math.isfinite(self.bonus_coeff) and self.bonus_coeff >= 0):
            raise ValueError(f"bonus_coeff must be finite and ≥ 0, got {self.bonus_coeff}")
        self._check_phase2_options()
        if not 0.0 <= self.online_ratio <= 1.0:
            raise ValueError(f"online_ratio must be in [0, 1], got {self.online_ratio}")
        for name in ("eval_episodes", "loss_variance_window", "batch_size"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        self.corruption  # noqa: B018 (validates k, σ and the removal mode)
        self.cadence  # noqa: B018 (validates the step settings)
        if self.log_every < self.batch_size:
            raise ValueError(
                f"log_every ({self.log_every}) must be ≥ batch_size ({self.batch_size}): "
                "updates start once the online buffer holds batch_size rows, and every log "
                "interval must contain updates"
            )

    def _check_phase2_options(self) -> None:
        """Each option alone (the message starts with its field name), then combinations."""
        kind, _ = parse_fresh_init(self.fresh_init)
        if kind == "warmup" and self.n_ensemble <= PHASE1_MEMBERS:
            raise ValueError(
                f"fresh_init {self.fresh_init} warms up fresh members, but n_ensemble "
                f"{self.n_ensemble} has none (members 0-1 come from Phase I); use "
                f"n_ensemble > {PHASE1_MEMBERS} or fresh_init random"
            )
        for name in ("target_reduce", "actor_reduce"):
            text = getattr(self, name)
            if text is None:
                continue
            try:
                Reduction.parse(text).check_members(self.n_ensemble)
            except ValueError as err:
                raise ValueError(f"{name}: {err}") from None
        choices = (
            ("bonus_time", BONUS_TIMES),
            ("bonus_units", BONUS_UNITS),
            ("bonus_norm", BONUS_NORMS),
        )
        for name, allowed in choices:
            if getattr(self, name) not in allowed:
                raise ValueError(
                    f"{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}"
                )
        parsers = (
            ("bonus_schedule", parse_schedule),
            ("exploration", parse_exploration),
            ("online_share", parse_online_share),
        )
        for name, parse in parsers:
            try:
                parse(getattr(self, name))
            except ValueError as err:
                raise ValueError(f"{name}: {err}") from None
        if self.iql_actor_lr is not None and not (
            math.isfinite(self.iql_actor_lr) and self.iql_actor_lr > 0
        ):
            raise ValueError(f"iql_actor_lr must be finite and > 0, got {self.iql_actor_lr}")
        if self.ucb_samples is not None:
            if self.bonus_type == "shuffled":
                raise ValueError(
                    "exploration ucb:K selects actions by the members' disagreement and adds "
                    "no reward bonus, so bonus_type shuffled means nothing with it; use "
                    "bonus_type ensemble (UCB with λ) or none (λ = 0)"
                )
            off = [
                name
                for name in ("bonus_time", "bonus_units", "bonus_norm")
                if getattr(self, name) != _DEFAULTS[name]
            ]
            if off:
                raise ValueError(
                    f"exploration ucb:K adds no reward bonus, so {', '.join(off)} cannot "
                    "apply; leave them at their defaults (bonus_schedule does apply: to λ)"
                )

    @property
    def ucb_samples(self) -> int | None:
        """K of `exploration = ucb:K`; None with a reward bonus."""
        return parse_exploration(self.exploration)

    @property
    def options(self) -> dict[str, Any]:
        """The Phase II options (PHASE2_OPTIONS) that apply to this run's algorithm."""
        values = {name: getattr(self, name) for name in PHASE2_OPTIONS}
        if self.algo != "iql":
            values["iql_actor_lr"] = None
        return values

    def online_options(self) -> OnlineOptions:
        """What the algorithm's Phase I loader needs of the options."""
        return OnlineOptions(
            target_reduce=self.target_reduce,
            actor_reduce=self.actor_reduce,
            keep_critic_optimizer=self.keep_critic_optimizer,
            actor_lr=self.options["iql_actor_lr"],
        )

    def bonus_settings(self) -> BonusSettings | None:
        """The reward bonus; None without one (bonus_type none, or UCB exploration)."""
        if self.bonus_type == "none" or self.ucb_samples is not None:
            return None
        return BonusSettings(
            coeff=self.bonus_coeff,
            time=self.bonus_time,
            units=self.bonus_units,
            norm=self.bonus_norm,
            schedule=self.bonus_schedule,
            shuffled=self.bonus_type == "shuffled",
        )

    def ucb(self) -> UCBExploration | None:
        """UCB action selection (λ = bonus_coeff with bonus_type ensemble, 0 with none)."""
        samples = self.ucb_samples
        if samples is None:
            return None
        coeff = self.bonus_coeff if self.bonus_type == "ensemble" else 0.0
        return UCBExploration(samples, coeff, parse_schedule(self.bonus_schedule))

    @property
    def variant(self) -> str:
        """Empty for the spec; a preset's name when the options are exactly that preset's;
        else short tokens naming each option off its default (e.g. "warm2000-tredq2-upd").
        A critic of other than DEFAULT_MEMBERS members adds "m{N}" first, so the 2-member
        no-bonus reference is not the spec's no-bonus run ("none_m2")."""
        options = self.options
        members = [] if self.n_ensemble == DEFAULT_MEMBERS else [f"m{self.n_ensemble}"]
        for name, preset in PHASE2_PRESETS.items():
            if options == {**_SPEC_OPTIONS, **preset}:
                return "-".join(members + ([] if name == "spec" else [name]))
        tokens = [
            _option_token(name, value)
            for name, value in options.items()
            if value != _SPEC_OPTIONS[name]
        ]
        return "-".join(members + tokens)

    @property
    def variant_label(self) -> str:
        """The variant in words: "as specified", "enoto preset", or its option tokens."""
        variant = self.variant
        if not variant:
            return "as specified"
        preset = variant.rsplit("-", 1)[-1]
        return f"{variant} preset" if preset in PHASE2_PRESETS else variant

    @property
    def arm_label(self) -> str:
        """The run's arm as reports name it, e.g. "ensemble (as specified)", "none (enoto
        preset)"."""
        return f"{self.bonus_type} ({self.variant_label})"

    @property
    def corruption(self) -> CorruptionConfig:
        return CorruptionConfig(self.removal, self.k_percent, self.reward_noise_std)

    @property
    def cadence(self) -> Cadence:
        return Cadence(self.online_steps, self.log_every, self.eval_every)

    @property
    def online_rows(self) -> int:
        """Rows of each batch from the online buffer: online_ratio · B rounded half up."""
        return math.floor(self.online_ratio * self.batch_size + 0.5)

    def phase1_train_config(self) -> TrainConfig:
        """The Phase I run this run starts from (its name and folder; not its full settings)."""
        return TrainConfig(
            algo=self.algo,
            dataset=self.dataset,
            removal=self.removal,
            k_percent=self.k_percent,
            reward_noise_std=self.reward_noise_std,
            seed=self.seed,
            n_critics=self.n_ensemble if self.fresh_init == "phase1" else PHASE1_MEMBERS,
            results_dir=self.phase1_results_dir,
        )

    @property
    def run_name(self) -> str:
        """`ft_{Phase I run name with _{bonus_type}[_{variant}] before _s{seed}}`; the spec's
        runs have no variant part."""
        phase1 = self.phase1_train_config().run_name
        seed_suffix = f"_s{self.seed}"
        variant = f"_{self.variant}" if self.variant else ""
        return f"ft_{phase1.removesuffix(seed_suffix)}_{self.bonus_type}{variant}{seed_suffix}"

    @property
    def run_dir(self) -> Path:
        return Path(self.results_dir) / self.run_name

    # The run-spec interface (runs.spec.RunSpec) the launchers use.
    @property
    def folder(self) -> RunFolder:
        return RunFolder(self.run_dir)

    @property
    def budget(self) -> int:
        return self.online_steps

    @property
    def folders(self) -> tuple[RunFolder, ...]:
        return (self.folder,)

    @property
    def prerequisite(self) -> RunFolder | None:
        return self.phase1_train_config().folder

    @property
    def cost(self) -> RunCost:
        evaluations = self.online_steps // self.eval_every + 1
        warmup = parse_fresh_init(self.fresh_init)[1] * WARMUP_UPDATE_COST / self.online_steps
        return RunCost(
            "Phase II",
            self.algo,
            "online steps",
            ONLINE_STEP_COST.get(self.algo, DEFAULT_ONLINE_STEP_COST) + warmup,
            evaluations,
            self.eval_episodes,
        )

    def identity_conflict(self) -> str | None:
        saved = self.folder.read_config()
        return None if saved is None else identity_conflict(self, saved["config"])

    def execute(self, progress: bool) -> dict[str, Any]:
        return finetune(self, progress)


_DEFAULTS = {f.name: f.default for f in dataclasses.fields(FinetuneConfig)}
_SPEC_OPTIONS = {name: _DEFAULTS[name] for name in PHASE2_OPTIONS}
_REDUCTION_TOKENS = {"min_all": "min", "min_loaded": "minl", "mean": "mean"}


def _option_token(name: str, value: Any) -> str:
    """A short, file-name-safe token for an option off its default."""
    if name in ("target_reduce", "actor_reduce"):
        reduction = Reduction.parse(value)
        if reduction.kind == "redq":
            text = f"redq{int(reduction.parameter)}"
        elif reduction.kind == "mean_minus_std":
            text = f"lcb{reduction.parameter:g}"
        else:
            text = _REDUCTION_TOKENS[reduction.kind]
        return name[0] + text  # "t..." or "a..."
    tokens = {
        "bonus_time": "upd",
        "bonus_units": "ps",
        "bonus_norm": "norm",
        "keep_critic_optimizer": "keepopt",
    }
    if name in tokens:
        return tokens[name]
    if name == "fresh_init":
        return "p1init" if value == "phase1" else f"warm{parse_fresh_init(value)[1]}"
    if name == "bonus_schedule":
        return f"lin{parse_schedule(value)}"
    if name == "exploration":
        return f"ucb{parse_exploration(value)}"
    if name == "iql_actor_lr":
        return f"alr{value:g}"
    if name == "online_share":
        steps = parse_online_share(value)
        return "shuni" if steps is None else f"shlin{steps}"
    raise ValueError(f"no name token for option {name}")


def preset_options(preset: str) -> dict[str, Any]:
    """All PHASE2_OPTIONS of a preset (its values over the spec's); ValueError naming the
    presets when unknown."""
    if preset not in PHASE2_PRESETS:
        raise ValueError(
            f"unknown Phase II preset {preset!r}; choose one of {', '.join(PHASE2_PRESETS)}"
        )
    return {**_SPEC_OPTIONS, **PHASE2_PRESETS[preset]}


def _derived_seed(*entropy: int) -> int:
    return int(np.random.SeedSequence(list(entropy)).generate_state(1)[0])


class OnlineTask(LoopTask):
    """One env step per step, then one update on a hybrid batch once the buffer holds a batch."""

    def __init__(
        self,
        config: FinetuneConfig,
        agent: OnlineAgent,
        buffer: ReplayBuffer,
        sampler: HybridSampler,
        collector: OnlineCollector,
        evaluator: PolicyEvaluator,
        phase1: Phase1Run,
        reward_scale: float,
        warmup: Mapping[str, float] | None = None,
    ) -> None:
        self.config, self.agent, self.buffer, self.sampler = config, agent, buffer, sampler
        self.collector, self.evaluator, self.phase1 = collector, evaluator, phase1
        self.reward_scale = reward_scale
        self.updates, self.raw_reward_sum = 0, 0.0
        self.episodes: dict[str, list[Any]] = {}
        self.warmup = dict(warmup or {})
        # The bonus recomputed at every update (bonus_time "update"): the collector's scale,
        # so both see one running std; shuffled within each batch's online rows.
        bonus = collector.bonus
        self.update_bonus = bonus if bonus is not None and bonus.settings.time == "update" else None
        self._shuffle: torch.Generator | None = None
        if self.update_bonus is not None and self.update_bonus.settings.shuffled:
            self._shuffle = torch.Generator(device=buffer.device)
            self._shuffle.manual_seed(_derived_seed(config.seed, _SHUFFLE_STREAM))

    def begin(self, start: int, log: MetricsLog) -> None:
        empty: dict[str, list[Any]] = {"steps": [], "return": [], "length": []}
        self.episodes = log.data.setdefault("online_episodes", empty)
        if self.warmup:
            log.data.setdefault("warmup", self.warmup)
        self.collector.restart(_derived_seed(self.config.seed, _EPISODE_STREAM, start))

    def step(self, step: int) -> dict[str, Tensor]:
        collected = self.collector.step(step)
        self.raw_reward_sum += collected.raw_reward
        if collected.episode_return is not None:
            self.episodes["steps"].append(step + 1)
            self.episodes["return"].append(collected.episode_return)
            self.episodes["length"].append(collected.episode_length)
        metrics = {
            "disagreement_collected": collected.disagreement[0],
            "bonus_mean": collected.bonus[0],
        }
        if len(self.buffer) < self.config.batch_size:
            return metrics  # collecting only, until the buffer holds one batch
        batch = self.sampler.sample()
        disagreement = ensemble_disagreement(self.agent, batch.observations, batch.actions)
        online = self.sampler.online_rows
        if self.update_bonus is not None and online:
            bonus = self.update_bonus(disagreement[:online], step)
            if self._shuffle is not None:
                bonus = permute_rows(bonus, self._shuffle)
            rewards = torch.cat([batch.rewards[:online] + bonus, batch.rewards[online:]])
            batch = with_rewards(batch, rewards)
            metrics["bonus_update_mean"] = bonus.mean()
        metrics |= self.agent.update(batch)
        if online:
            metrics["disagreement_batch_online"] = disagreement[:online].mean()
        if self.sampler.offline_rows:
            metrics["disagreement_batch_offline"] = disagreement[online:].mean()
        self.updates += 1
        return metrics

    def interval_values(
        self, step: int, values: dict[str, float | None]
    ) -> dict[str, float | None]:
        # Rewards per env step: raw in env units, augmented (scaled + bonus) in the critic's
        # units, as stored.
        raw = self.raw_reward_sum / self.config.log_every
        self.raw_reward_sum = 0.0
        bonus = values.get("bonus_mean") or 0.0
        return {
            **values,
            "reward_raw_mean": raw,
            "reward_augmented_mean": self.reward_scale * raw + bonus,
            "updates": self.updates,
        }

    def evaluate(self, step: int, log: MetricsLog) -> None:
        result = self.evaluator.evaluate(
            lambda obs: self.agent.act(obs, deterministic=True),
            seed=1_000_000 * self.config.seed + step,
        )
        log.log_eval(step, result.returns, result.normalized)

    def state_dict(self, final: bool) -> dict[str, Any]:
        # A finished run is never resumed: its checkpoint drops the buffer to save disk.
        state: dict[str, Any] = {
            "agent": self.agent.state_dict(),
            "sampler": self.sampler.state_dict(),
            "replay_buffer": None if final else self.buffer.state_dict(),
            "updates": self.updates,
        }
        # Options beyond the spec add their own state (absent from the spec's checkpoints).
        if self.collector.bonus is not None and self.collector.bonus.settings.norm != "none":
            state["bonus_scale"] = self.collector.bonus.state_dict()
        if self.collector.shuffled is not None and not final:
            state["shuffled_bonuses"] = self.collector.shuffled.state_dict()
        if self._shuffle is not None:
            state["bonus_shuffle_rng"] = self._shuffle.get_state()
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.agent.load_state_dict(state["agent"])
        self.sampler.load_state_dict(state["sampler"])
        self.buffer.load_state_dict(state["replay_buffer"])
        self.updates = int(state["updates"])
        if "bonus_scale" in state and self.collector.bonus is not None:
            self.collector.bonus.load_state_dict(state["bonus_scale"])
        if "shuffled_bonuses" in state and self.collector.shuffled is not None:
            self.collector.shuffled.load_state_dict(state["shuffled_bonuses"])
        if "bonus_shuffle_rng" in state and self._shuffle is not None:
            self._shuffle.set_state(state["bonus_shuffle_rng"])

    def after_checkpoint(self, step: int) -> None:
        self.collector.restart(_derived_seed(self.config.seed, _EPISODE_STREAM, step))

    def summary(self, log: MetricsLog) -> dict[str, Any]:
        return {
            "step0_normalized_return": log.data["eval"]["normalized_return_mean"][0],
            "phase1_final_normalized_return": self.phase1.final_normalized_return,
            "online_episodes": len(self.episodes["steps"]),
        }

    def close(self) -> None:
        self.collector.close()
        self.evaluator.close()


def finetune(config: FinetuneConfig, progress: bool = True) -> dict[str, Any]:
    """Run (or resume, or skip if complete) one Phase II run; returns its metrics.

    Raises Phase1RunError, naming the `run_phase1.py` command to run, when the Phase I run it
    starts from is missing or unfinished. A diverging run is recorded (status "diverged") and
    returned, not raised.
    """
    folder = config.folder
    device = resolve_device(config.device)
    resume = folder.load_checkpoint(device)
    if (finished := finished_metrics(resume)) is not None:
        return finished
    phase1 = find_phase1_run(config.phase1_train_config(), config.run_name)
    if resume is not None:
        saved = folder.read_config()
        check_same_run(config, saved, folder.path)
        if saved is not None and saved["phase1"]["checkpoint_sha256"] != phase1.checkpoint_sha256:
            raise Phase1RunError(
                f"the Phase I checkpoint {phase1.checkpoint} changed since {folder.path} "
                f"started from it; start the Phase II run over with `hybrid-rl runs reset "
                f"{folder.path}`"
            )

    seed_everything(config.seed)
    loaded, dataset, stats, reward_scale, _ = prepare_dataset(phase1.train_config, device)
    check_same_dataset(phase1, loaded.provenance.sha256, reward_scale)
    from_phase1 = get_algorithm(config.algo).from_phase1
    assert from_phase1 is not None  # FinetuneConfig accepts only algorithms that fine-tune
    agent = from_phase1(
        phase1.checkpoint,
        config.n_ensemble,
        phase1.train_config.agent,
        device,
        config.online_options(),
    )
    warmup: dict[str, float] = {}
    kind, warmup_updates = parse_fresh_init(config.fresh_init)
    if kind == "warmup" and resume is None:  # a resumed run's checkpoint holds warmed members
        warmup = warm_up_fresh_members(
            agent, lambda: dataset.sample(config.batch_size), warmup_updates, agent.config.critic_lr
        )
    buffer = ReplayBuffer(config.online_steps, dataset.obs_dim, dataset.act_dim, device)
    settings = config.bonus_settings()
    bonus = None if settings is None else BonusScale(settings, agent.config.gamma)
    shuffled = None
    if settings is not None and settings.shuffled and settings.time == "collect":
        shuffled = ShuffledBonuses(
            config.online_steps, _derived_seed(config.seed, _SHUFFLE_STREAM), device
        )
    sampler = HybridSampler(
        dataset,
        buffer,
        config.batch_size,
        config.online_rows,
        _derived_seed(config.seed, _ONLINE_SAMPLER_STREAM),
        row_bonus=None if shuffled is None else shuffled.for_rows,
        share=None
        if config.online_share == "const"
        else OnlineShare(config.online_share, config.online_rows),
    )
    env_id = loaded.provenance.env_id or config.dataset
    collector = OnlineCollector(
        env_id,
        agent,
        buffer,
        reward_scale,
        None,
        device,
        bonus=bonus,
        bonus_at_collection=settings is not None and settings.time == "collect",
        shuffled=shuffled,
        ucb=config.ucb(),
    )
    _write_config(config, phase1, loaded.provenance, stats.to_dict(), reward_scale, agent, device)
    evaluator = PolicyEvaluator(env_id, config.eval_episodes, device)
    task = OnlineTask(
        config, agent, buffer, sampler, collector, evaluator, phase1, reward_scale, warmup
    )
    return run_loop(
        folder, task, config.cadence, resume, device, config.loss_variance_window, progress
    )


def _write_config(
    config: FinetuneConfig,
    phase1: Phase1Run,
    provenance: DatasetProvenance,
    corruption: dict[str, Any],
    reward_scale: float,
    agent: OnlineAgent,
    device: torch.device,
) -> None:
    agent_config = agent.config
    config.folder.write_config(
        {
            "run_name": config.run_name,
            "config": dataclasses.asdict(config),
            "arm": config.arm_label,
            "online_agent_config": dataclasses.asdict(agent_config),
            "agent_config_class": type(agent_config).__name__,
            "online_batch": {
                "online_rows": config.online_rows,
                "offline_rows": config.batch_size - config.online_rows,
                "online_share": config.online_share,
                "updates_start_when_buffer_holds": config.batch_size,
            },
            "reward_scale": reward_scale,
            "device": str(device),
            "git_commit": git_commit(),
            "versions": software_versions(),
            "phase1": {
                "run_name": phase1.saved_config["run_name"],
                "checkpoint": str(phase1.checkpoint),
                "checkpoint_sha256": phase1.checkpoint_sha256,
                "config": phase1.saved_config["config"],
                "git_commit": phase1.saved_config.get("git_commit"),
                "final_normalized_return": phase1.final_normalized_return,
            },
            "dataset": dataclasses.asdict(provenance),
            "corruption": corruption,
        },
    )
