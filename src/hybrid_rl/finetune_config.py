"""The settings of one Phase II run (`FinetuneConfig`): the Phase I run it starts from, the
bonus and its options (`phase2_options.Phase2Options`), the hybrid batch, the cadence, and the
run's name and folder. The online run itself is `finetune.finetune`."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hybrid_rl.algos.agent import OnlineOptions
from hybrid_rl.algos.bonus import BonusSettings
from hybrid_rl.algos.ensemble import DEFAULT_MEMBERS, MAX_MEMBERS, MIN_MEMBERS, PHASE1_MEMBERS
from hybrid_rl.algos.exploration import UCBExploration
from hybrid_rl.algos.registry import PHASE2_ALGORITHMS
from hybrid_rl.data.corruption import CorruptionConfig, RemovalMode
from hybrid_rl.phase2_options import (
    BONUS_TYPES,
    BonusType,
    Phase2Options,
    variant,
    variant_label,
)
from hybrid_rl.runs.folder import RunFolder
from hybrid_rl.runs.identity import identity_conflict
from hybrid_rl.runs.loop import Cadence
from hybrid_rl.runs.spec import RunCost
from hybrid_rl.settings import EXECUTION, with_former_settings
from hybrid_rl.train import TrainConfig


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
    # Options beyond the spec (phase2_options); every default is the spec.
    options: Phase2Options = field(default_factory=Phase2Options)
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
        self.options.check(self.n_ensemble, self.bonus_type)
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

    @classmethod
    def from_saved(cls, fields: Mapping[str, Any]) -> FinetuneConfig:
        """The config a run's config.json saved ("config"). Configs saved before the options
        were one object hold them as fields of their own: they are read into `options`."""
        fields = with_former_settings(cls, dict(fields))
        option_names = {f.name for f in dataclasses.fields(Phase2Options)}
        options = dict(fields.pop("options", {}))
        options |= {name: fields.pop(name) for name in option_names & fields.keys()}
        return cls(**fields, options=Phase2Options(**options))

    @property
    def applied_options(self) -> Phase2Options:
        """The options as they apply to this run's algorithm."""
        return self.options.for_algo(self.algo)

    def online_options(self) -> OnlineOptions:
        """What the algorithm's Phase I loader needs of the options."""
        options = self.applied_options
        return OnlineOptions(
            target_reduce=options.target_reduce,
            actor_reduce=options.actor_reduce,
            keep_critic_optimizer=options.keep_critic_optimizer,
            actor_lr=options.iql_actor_lr,
        )

    def bonus_settings(self) -> BonusSettings | None:
        """The reward bonus; None without one (bonus_type none, or UCB exploration)."""
        options = self.options
        if self.bonus_type == "none" or options.ucb_samples is not None:
            return None
        return BonusSettings(
            coeff=self.bonus_coeff,
            time=options.bonus_time,  # type: ignore[arg-type]  # checked by options.check
            units=options.bonus_units,  # type: ignore[arg-type]
            norm=options.bonus_norm,  # type: ignore[arg-type]
            schedule=options.bonus_schedule,
            shuffled=self.bonus_type == "shuffled",
        )

    def ucb(self) -> UCBExploration | None:
        """UCB action selection (λ = bonus_coeff with bonus_type ensemble, 0 with none)."""
        samples = self.options.ucb_samples
        if samples is None:
            return None
        coeff = self.bonus_coeff if self.bonus_type == "ensemble" else 0.0
        return UCBExploration(samples, coeff, self.options.schedule_steps)

    @property
    def variant(self) -> str:
        """The run-name part naming the options (`phase2_options.variant`): empty for the
        spec."""
        return variant(self.applied_options, self.n_ensemble, DEFAULT_MEMBERS)

    @property
    def variant_label(self) -> str:
        """The variant in words: "as specified", "enoto preset", or its option tokens."""
        return variant_label(self.variant)

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
            n_critics=self.n_ensemble if self.options.fresh_init == "phase1" else PHASE1_MEMBERS,
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
        return RunCost(
            "Phase II",
            self.algo,
            "online steps",
            True,
            evaluations,
            self.eval_episodes,
            warmup_updates=self.options.fresh_members[1],
        )

    def identity_conflict(self) -> str | None:
        saved = self.folder.read_config()
        return None if saved is None else identity_conflict(self, self.saved_identity(saved))

    @classmethod
    def saved_identity(cls, saved: Mapping[str, Any]) -> dict[str, Any]:
        """A config.json's "config" as this class saves it now (options nested), so that a
        run saved before the options were one object is still recognised as itself."""
        fields = dict(saved["config"])
        option_names = [f.name for f in dataclasses.fields(Phase2Options)]
        if any(name in fields for name in option_names):
            fields["options"] = {n: fields.pop(n) for n in option_names if n in fields}
        return fields

    def execute(self, progress: bool) -> dict[str, Any]:
        from hybrid_rl.finetune import finetune  # the run imports its config, not the reverse

        return finetune(self, progress)
