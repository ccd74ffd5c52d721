"""The Phase II study as a grid of run configs: algo × dataset × k × arm × seed →
`FinetuneConfig`s, each starting from the Phase I run of the same algo, dataset, k and seed. An
arm is a preset of the Phase II options (`finetune.PHASE2_PRESETS`; "spec" is DESIGN.md §6 as
specified) with a bonus type; the options' flags, when given, override the preset's values in
every arm."""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass
from typing import Any

from hybrid_rl.algos.ensemble import MAX_MEMBERS, MIN_MEMBERS
from hybrid_rl.algos.registry import PHASE2_ALGORITHMS
from hybrid_rl.data.corruption import CorruptionConfig
from hybrid_rl.finetune import (
    BONUS_TYPES,
    PHASE2_OPTIONS,
    PHASE2_PRESETS,
    SPEC_BONUS_TYPES,
    BonusType,
    FinetuneConfig,
    preset_options,
)
from hybrid_rl.launch.grid_checks import (
    build_runs,
    check_common,
    check_each,
    check_environment,
    require,
)
from hybrid_rl.launch.options import SettingError, option
from hybrid_rl.launch.phase1_grid import (
    GRID_ALGOS,
    QUICK_SEEDS,
    QUICK_SUBDIR,
    STUDY_DATASETS,
    STUDY_K_PERCENTS,
    STUDY_SEEDS,
    Phase1Grid,
    run_fields,
)

QUICK_ONLINE_STEPS = 5_000
# A 5k-step run evaluated only every 5k steps would have no curve and a steps-to-threshold
# resolution of the whole budget; quick Phase II runs evaluate every 1k steps instead.
QUICK_ONLINE_EVAL_EVERY = 1_000

_FINETUNE_DEFAULTS = {f.name: f.default for f in dataclasses.fields(FinetuneConfig)}


@dataclass
class Phase2Grid:
    """Which Phase II runs to make, how long, and where their outputs go.

    Defaults are the study: CQL and IQL on halfcheetah-medium-v2 and hopper-medium-v2, each
    fine-tuned from its Phase I run with k ∈ {0, 30, 60} % (top-k removal, clean rewards),
    with the ensemble bonus and without it, seeds 0–2: 72 runs of 250k online steps, reading
    the Phase I runs in `phase1_results_dir`. Per-run settings not listed here take
    `FinetuneConfig`'s defaults.
    """

    algos: tuple[str, ...] = option(
        GRID_ALGOS,
        "algo",
        f"{' | '.join(PHASE2_ALGORITHMS)} | all",
        every=("all", PHASE2_ALGORITHMS),
    )
    datasets: tuple[str, ...] = option(STUDY_DATASETS, "env", "dataset ids or .hdf5 paths")
    k_percents: tuple[float, ...] = option(
        STUDY_K_PERCENTS, "remove_top_k", "k: percent of trajectories removed, in [0, 100)"
    )
    bonus_types: tuple[BonusType, ...] = option(
        SPEC_BONUS_TYPES,
        "bonus_type",
        f"{' | '.join(BONUS_TYPES)} | both (= {', '.join(SPEC_BONUS_TYPES)}); shuffled: the "
        "ensemble bonus permuted across online transitions (a control)",
        every=("both", SPEC_BONUS_TYPES),
    )
    phase2_presets: tuple[str, ...] = option(
        ("spec",),
        "phase2_preset",
        f"{' | '.join(PHASE2_PRESETS)}: a named set of the Phase II options below (spec: "
        "DESIGN.md §6 as specified; enoto: warmed members, redq:2 targets, mean actor, "
        "per-step bonus normalised by its running std and recomputed at update, Phase I "
        "critic Adam kept); an option flag given overrides the preset's value",
    )
    arms: tuple[str, ...] = option(
        (),
        "arms",
        "preset:bonus_type pairs to run instead of every --phase2_preset × --bonus_type, "
        "e.g. spec:ensemble,spec:none,enoto:ensemble",
        shown="every --phase2_preset × --bonus_type",
    )
    fresh_init: str | None = option(
        None,
        "fresh_init",
        "random | warmup:N | phase1: the fresh critic members start random, are fitted on "
        "the offline data for N updates first, or are trained in Phase I (run it with "
        "--n_critics equal to --n_ensemble)",
        shown="the preset's (spec: random)",
    )
    target_reduce: str | None = option(
        None,
        "target_reduce",
        "min_all | min_loaded | redq:M | mean | mean_minus_std:β: how the members' Q make "
        "the TD (IQL: V's) target",
        shown="the preset's (spec: min_all)",
    )
    actor_reduce: str | None = option(
        None,
        "actor_reduce",
        "min_all | min_loaded | redq:M | mean | mean_minus_std:β: how the members' Q make "
        "the actor's objective (IQL: its advantage)",
        shown="the preset's (spec: min_all; TD3+BC: member 0)",
    )
    bonus_time: str | None = option(
        None,
        "bonus_time",
        "collect | update: the bonus stored at collection, or recomputed on every batch's "
        "online rows with the current critic",
        shown="the preset's (spec: collect)",
    )
    bonus_units: str | None = option(
        None,
        "bonus_units",
        "q | per_step: the std of Q as is, or times 1 − γ",
        shown="the preset's (spec: q)",
    )
    bonus_norm: str | None = option(
        None,
        "bonus_norm",
        "none | running: divide the disagreement by its running population std (RND-style)",
        shown="the preset's (spec: none)",
    )
    bonus_schedule: str | None = option(
        None,
        "bonus_schedule",
        "const | linear:T: λ kept, or decayed linearly to 0 over T online steps",
        shown="the preset's (spec: const)",
    )
    exploration: str | None = option(
        None,
        "exploration",
        "reward_bonus | ucb:K: the bonus on the reward, or no bonus and the action chosen "
        "among K policy samples by mean Q + λ·std Q",
        shown="the preset's (spec: reward_bonus)",
    )
    critic_optimizer: str | None = option(
        None,
        "critic_optimizer",
        "fresh | phase1: a fresh Adam for the critic, or the Phase I Adam moments kept for "
        "the loaded members",
        shown="the preset's (spec: fresh)",
    )
    iql_actor_lr: float | None = option(
        None,
        "iql_actor_lr",
        "IQL's online actor learning rate, constant (the IQL authors' fine-tuning)",
        shown="the preset's (spec: Phase I's actor_lr, 3e-4)",
    )
    online_share: str | None = option(
        None,
        "online_share",
        "const | linear:T | uniform: the --online_ratio share of each batch from the online "
        "buffer from the first update, reached linearly over the first T online steps, or "
        "each row drawn uniformly over the dataset's and the buffer's rows (d3rlpy's "
        "fit_online)",
        shown="the preset's (spec: const)",
    )
    seeds: tuple[int, ...] = option(STUDY_SEEDS, "seed", "seeds, ≥ 0")
    online_steps: int = option(
        _FINETUNE_DEFAULTS["online_steps"], "total_steps", "online env steps per Phase II run"
    )
    n_ensemble: int = option(
        _FINETUNE_DEFAULTS["n_ensemble"],
        "n_ensemble",
        f"critic members, {MIN_MEMBERS}–{MAX_MEMBERS}",
    )
    bonus_coeff: float = option(
        _FINETUNE_DEFAULTS["bonus_coeff"], "bonus_coeff", "λ of the bonus, ≥ 0"
    )
    online_ratio: float = option(
        _FINETUNE_DEFAULTS["online_ratio"],
        "online_ratio",
        "share of each batch from the online buffer, in [0, 1]",
    )
    log_every: int = option(
        _FINETUNE_DEFAULTS["log_every"], "log_every", "online steps between metric logs"
    )
    eval_every: int = option(
        _FINETUNE_DEFAULTS["eval_every"], "eval_every", "online steps between evaluations"
    )
    eval_episodes: int = option(
        _FINETUNE_DEFAULTS["eval_episodes"], "eval_episodes", "episodes per evaluation"
    )
    device: str = option(_FINETUNE_DEFAULTS["device"], "device", "cpu | cuda | auto")
    results_dir: str = option(_FINETUNE_DEFAULTS["results_dir"], "results_dir", "Phase II runs")
    phase1_results_dir: str = option(
        _FINETUNE_DEFAULTS["phase1_results_dir"],
        "phase1_results_dir",
        "where the Phase I runs to fine-tune are",
    )
    plots_dir: str = option("plots_phase2", "plots_dir", "figures and report.md")

    def __post_init__(self) -> None:
        unknown = [a for a in self.algos if a not in PHASE2_ALGORITHMS]
        require(
            not unknown,
            "algos",
            f"Phase II fine-tunes {' and '.join(PHASE2_ALGORITHMS)}, not {unknown}; "
            f"choose among: {', '.join(PHASE2_ALGORITHMS)}",
        )
        bad_bonus = [b for b in self.bonus_types if b not in BONUS_TYPES]
        require(
            not bad_bonus,
            "bonus_types",
            f"unknown bonus type(s) {bad_bonus}; choose among: {', '.join(BONUS_TYPES)}",
        )
        lists = ("algos", "datasets", "k_percents", "bonus_types", "seeds", "phase2_presets")
        check_common(self, lists, "online_steps")
        # FinetuneConfig's own range checks, one field at a time so that the error names it
        for name in ("n_ensemble", "bonus_coeff", "online_ratio"):
            try:
                FinetuneConfig(**{name: getattr(self, name)})
            except ValueError as err:
                raise SettingError(name, str(err)) from None
        check_each("phase2_presets", self.phase2_presets, preset_options)
        check_each("arms", self.arms, _parse_arm)
        for name, value in self.option_overrides().items():
            try:
                FinetuneConfig(**{name: value, "n_ensemble": self.n_ensemble})
            except ValueError as err:
                raise SettingError(_OPTION_FIELDS.get(name, name), str(err)) from None
        # Then every arm as a whole: a preset's values with the options given may clash. (The
        # step settings are checked with the runs, by `validate`.)
        overrides = self.option_overrides()
        given = tuple(_OPTION_FIELDS.get(name, name) for name in overrides)
        for preset, bonus_type in self.arm_pairs():
            try:
                FinetuneConfig(
                    n_ensemble=self.n_ensemble,
                    bonus_type=bonus_type,
                    **{**preset_options(preset), **overrides},
                )
            except ValueError as err:
                raise SettingError(
                    (*given, "arms", "phase2_presets", "bonus_types"),
                    f"arm {preset}:{bonus_type}: {err}",
                ) from None

    def option_overrides(self) -> dict[str, Any]:
        """The Phase II options given (FinetuneConfig field -> value), over every preset."""
        values: dict[str, Any] = {
            name: getattr(self, name)
            for name in PHASE2_OPTIONS
            if name != "keep_critic_optimizer" and getattr(self, name) is not None
        }
        if self.critic_optimizer is not None:
            if self.critic_optimizer not in ("fresh", "phase1"):
                raise SettingError(
                    "critic_optimizer",
                    f"critic_optimizer must be fresh or phase1, got {self.critic_optimizer!r}",
                )
            values["keep_critic_optimizer"] = self.critic_optimizer == "phase1"
        return values

    def arm_pairs(self) -> list[tuple[str, BonusType]]:
        """(preset, bonus type) of every arm, in run order."""
        if self.arms:
            return [_parse_arm(arm) for arm in self.arms]
        return list(itertools.product(self.phase2_presets, self.bonus_types))

    def arm_config(self, preset: str, bonus_type: BonusType, **run: Any) -> FinetuneConfig:
        """The FinetuneConfig of one arm: the grid's settings, the preset's options, the
        options given, and `run`'s per-run fields (algo, dataset, k, seed)."""
        return FinetuneConfig(
            n_ensemble=self.n_ensemble,
            bonus_type=bonus_type,
            bonus_coeff=self.bonus_coeff,
            online_ratio=self.online_ratio,
            online_steps=self.online_steps,
            eval_every=self.eval_every,
            eval_episodes=self.eval_episodes,
            log_every=self.log_every,
            phase1_results_dir=self.phase1_results_dir,
            results_dir=self.results_dir,
            device=self.device,
            **{**preset_options(preset), **self.option_overrides()},
            **run,
        )

    def validate(self) -> list[FinetuneConfig]:
        """Everything a run of this grid would refuse, checked before any run starts (see
        `Phase1Grid.validate`; Phase I runs read Minari ids with source 'minari', so a
        namespaced id passes here). Returns the run configs (`expand()`)."""
        check_environment(self.datasets, self.device, "namespaced")
        return build_runs(self.expand, ("online_steps", "log_every", "eval_every"))

    @classmethod
    def quick(cls, **overrides: Any) -> Phase2Grid:
        """The quick variant: 5k online steps evaluated every 1k, seed 0, reading the quick
        Phase I runs (`Phase1Grid.quick().results_dir`) and writing under
        `<results_dir>/quick` and `<plots_dir>/quick`; `overrides` replace any field."""
        settings: dict[str, Any] = {
            "online_steps": QUICK_ONLINE_STEPS,
            "eval_every": QUICK_ONLINE_EVAL_EVERY,
            "seeds": QUICK_SEEDS,
            "results_dir": f"{cls.results_dir}/{QUICK_SUBDIR}",
            "plots_dir": f"{cls.plots_dir}/{QUICK_SUBDIR}",
            "phase1_results_dir": Phase1Grid.quick().results_dir,
        }
        settings.update(overrides)
        return cls(**settings)

    def cells(self) -> list[tuple[str, str, CorruptionConfig]]:
        """The distinct (dataset, algo, condition) Phase I cells fine-tuned (top-k removal),
        in run order."""
        return list(
            dict.fromkeys(
                (dataset, algo, CorruptionConfig("top", k))
                for dataset, algo, k in itertools.product(
                    self.datasets, self.algos, self.k_percents
                )
            )
        )

    def expand(self) -> list[FinetuneConfig]:
        """One `FinetuneConfig` per run, seed-major, and within a (cell, seed) every arm back
        to back: a grid stopped part-way compares the arms on the same Phase I checkpoints,
        and every cell's first seed comes before any cell's second."""
        return [
            self.arm_config(
                preset,
                bonus_type,
                algo=algo,
                dataset=dataset,
                **run_fields(condition),
                seed=seed,
            )
            for seed in self.seeds
            for dataset, algo, condition in self.cells()
            for preset, bonus_type in self.arm_pairs()
        ]


# The grid field behind each FinetuneConfig option, where their names differ.
_OPTION_FIELDS = {"keep_critic_optimizer": "critic_optimizer"}


def _parse_arm(text: str) -> tuple[str, BonusType]:
    """ "preset:bonus_type" -> (preset, bonus type); ValueError naming the forms."""
    preset, _, bonus_type = text.partition(":")
    if preset not in PHASE2_PRESETS or bonus_type not in BONUS_TYPES:
        raise ValueError(
            f"arm {text!r} is not preset:bonus_type with a preset among "
            f"{', '.join(PHASE2_PRESETS)} and a bonus type among {', '.join(BONUS_TYPES)}"
        )
    return preset, bonus_type
