"""The two studies as grids of run configs.

Phase I: algo × dataset × removal × k × σ × seed → `TrainConfig`s.
Phase II: algo × dataset × k × arm × seed → `FinetuneConfig`s, each starting from the
Phase I run of the same algo, dataset, k and seed. An arm is a preset of the Phase II options
(`finetune.PHASE2_PRESETS`; "spec" is DESIGN.md §6 as specified) with a bonus type; the
options' flags, when given, override the preset's values in every arm.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from hybrid_rl.algos.ensemble import MAX_MEMBERS, MIN_MEMBERS, PHASE1_MEMBERS
from hybrid_rl.algos.precision import PRECISIONS, Precision, check_precision
from hybrid_rl.algos.registry import ALGORITHMS, PHASE2_ALGORITHMS, PRECISION_ALGOS
from hybrid_rl.algos.seed_stack import stackable
from hybrid_rl.data.corruption import (
    ATTACK_TARGETS,
    REMOVAL_MODES,
    AttackMode,
    AttackTarget,
    CorruptionConfig,
    RemovalMode,
)
from hybrid_rl.data.loader import SOURCES
from hybrid_rl.data.registry import DATASETS
from hybrid_rl.finetune import (
    BONUS_TYPES,
    PHASE2_OPTIONS,
    PHASE2_PRESETS,
    SPEC_BONUS_TYPES,
    BonusType,
    FinetuneConfig,
    preset_options,
)
from hybrid_rl.runs.spec import RunSpec
from hybrid_rl.seeding import resolve_device
from hybrid_rl.train import SeedGroup, TrainConfig

GRID_ALGOS = ("cql", "iql")  # `--algo all` adds BC (Phase I) and TD3+BC
STUDY_DATASETS = ("halfcheetah-medium-v2", "hopper-medium-v2")
STUDY_K_PERCENTS = (0.0, 30.0, 60.0)
STUDY_SEEDS = (0, 1, 2)
QUICK_TOTAL_STEPS = 20_000
QUICK_ONLINE_STEPS = 5_000
# A 5k-step run evaluated only every 5k steps would have no curve and a steps-to-threshold
# resolution of the whole budget; quick Phase II runs evaluate every 1k steps instead.
QUICK_ONLINE_EVAL_EVERY = 1_000
QUICK_SEEDS = (0,)
# Quick runs share run names with full runs (names do not encode the step budget), so they
# live in their own folders: a 20k-step run must never pass for a finished 500k-step one.
QUICK_SUBDIR = "quick"

_TRAIN_DEFAULTS = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
_FINETUNE_DEFAULTS = {f.name: f.default for f in dataclasses.fields(FinetuneConfig)}


def option(
    default: Any,
    flag: str | None,
    help: str = "",
    every: tuple[str, Sequence[Any]] | None = None,
    shown: str | None = None,
) -> Any:
    """A field with what the command line needs to show it as `--flag`: the CLI generates the
    flag from this, so the default and the help text are written here once. `flag=None` keeps
    the field off the command line. `every = (word, values)`: a list flag's `word` (e.g. "all")
    stands for all of `values`. `shown`: the default in words, when the value (None) says
    nothing."""
    metadata = {"flag": flag, "help": help, "every": every, "shown": shown}
    return field(default=default, metadata=metadata)


class SettingError(ValueError):
    """A grid value no run can use. `fields` names the grid field(s) at fault (several when
    only their combination is wrong), so that the command line can name its own flags."""

    def __init__(self, fields: str | tuple[str, ...], message: str) -> None:
        super().__init__(message)
        self.fields = (fields,) if isinstance(fields, str) else fields


def _require(ok: bool, fields: str | tuple[str, ...], message: str) -> None:
    if not ok:
        raise SettingError(fields, message)


def _check_each(name: str, values: Iterable[Any], check: Callable[[Any], object]) -> None:
    """`check(value)` for each value; its ValueError becomes a SettingError of field `name`."""
    for value in values:
        try:
            check(value)
        except ValueError as err:
            raise SettingError(name, str(err)) from None


def _check_common(grid: Phase1Grid | Phase2Grid, lists: Sequence[str], steps: str) -> None:
    """The checks both grids share: no empty list, k through the condition object, seeds,
    positive step counts and evaluation sizes."""
    for name in lists:
        _require(bool(getattr(grid, name)), name, f"the grid needs at least one value in {name}")
    _check_each("k_percents", grid.k_percents, lambda k: CorruptionConfig("top", k))
    bad_seeds = [s for s in grid.seeds if s < 0]
    _require(not bad_seeds, "seeds", f"seeds must be ≥ 0, got {bad_seeds}")
    for name in (steps, "log_every", "eval_every", "eval_episodes"):
        value = getattr(grid, name)
        _require(value > 0, name, f"{name} must be positive, got {value}")


def _check_environment(
    datasets: Sequence[str], device: str, other_ids: Literal["any", "namespaced"] | None
) -> None:
    """What depends on this machine: each dataset is a known id, an existing .hdf5/.h5 file or
    an id `other_ids` allows ("any": with source 'minari'; "namespaced": Minari-style
    "a/b-v0" ids); the device exists."""
    for dataset in datasets:
        if dataset.lower().endswith((".hdf5", ".h5")):
            _require(Path(dataset).is_file(), "datasets", f"{dataset}: no such dataset file")
            continue
        allowed = other_ids == "any" or (other_ids == "namespaced" and "/" in dataset)
        _require(
            dataset in DATASETS or allowed,
            "datasets",
            f"unknown dataset {dataset!r}; give a dataset id ({', '.join(sorted(DATASETS))}),"
            " an existing .hdf5/.h5 file, or a Minari id with source 'minari'",
        )
    try:
        resolve_device(device)
    except (RuntimeError, ValueError) as err:  # torch's own list of device types is long
        known = device.split(":")[0] in ("cpu", "cuda", "mps")
        message = (
            str(err) if known else f"unknown device {device!r}; choose cpu, cuda, cuda:N or auto"
        )
        raise SettingError("device", message) from None


def _build_runs(make: Callable[[], list[Any]], fields: tuple[str, ...]) -> list[Any]:
    """The run configs, whose own checks cover how the step settings fit together."""
    try:
        return make()
    except SettingError:
        raise
    except ValueError as err:
        raise SettingError(fields, str(err)) from None


@dataclass
class Phase1Grid:
    """Which Phase I runs to make, how long, and where their outputs go.

    Defaults are the study: CQL and IQL on halfcheetah-medium-v2 and hopper-medium-v2, top-k
    removal with k ∈ {0, 30, 60} %, clean rewards, seeds 0–2: 36 runs of 500k gradient steps.
    Per-run settings not listed here take `TrainConfig`'s defaults.
    """

    algos: tuple[str, ...] = option(
        GRID_ALGOS, "algo", f"{' | '.join(ALGORITHMS)} | all", every=("all", tuple(ALGORITHMS))
    )
    datasets: tuple[str, ...] = option(STUDY_DATASETS, "env", "dataset ids or .hdf5 paths")
    k_percents: tuple[float, ...] = option(
        STUDY_K_PERCENTS, "remove_top_k", "k: percent of trajectories removed, in [0, 100)"
    )
    seeds: tuple[int, ...] = option(STUDY_SEEDS, "seed", "seeds, ≥ 0")
    reward_noise_stds: tuple[float, ...] = option(
        (0.0,), "reward_noise", "σ of Gaussian reward noise, ≥ 0"
    )
    removals: tuple[RemovalMode, ...] = option(
        ("top",),
        "removal",
        "top | random | random_transitions: which trajectories k% removes (the random "
        "controls match top-k's trajectory count, or its transition count)",
    )
    attacks: tuple[AttackTarget, ...] = option(
        ("none",),
        "attack",
        "RIQL-style corruption of a share of the transitions (Yang et al. 2023): "
        f"{' | '.join(ATTACK_TARGETS)}",
    )
    attack_mode: AttackMode = option(  # noqa: RUF009 (a Literal of strings: immutable)
        _TRAIN_DEFAULTS["attack_mode"], "attack_mode", "random | adversarial (rew only)"
    )
    attack_rate: float = option(
        _TRAIN_DEFAULTS["attack_rate"], "attack_rate", "share of transitions attacked, in (0, 1]"
    )
    attack_scale: float = option(
        _TRAIN_DEFAULTS["attack_scale"], "attack_scale", "attack size in per-dimension stds, > 0"
    )
    total_steps: int = option(
        _TRAIN_DEFAULTS["total_steps"], "total_steps", "gradient steps per Phase I run"
    )
    n_critics: int = option(
        _TRAIN_DEFAULTS["n_critics"],
        "n_critics",
        f"critic members trained offline, {PHASE1_MEMBERS}–{MAX_MEMBERS} ({PHASE1_MEMBERS}: "
        "twin Q, the spec); Phase II's --fresh_init phase1 loads all N",
    )
    precision: Precision = option(  # noqa: RUF009 (a Literal of strings: immutable)
        _TRAIN_DEFAULTS["precision"],
        "precision",
        f"{' | '.join(PRECISIONS)}: dtype of the critic's matrix products "
        f"({', '.join(PRECISION_ALGOS)}); bf16 needs AVX512-BF16/AMX or a bf16 GPU, else fp32 "
        "is used (with a warning); Phase II runs keep their Phase I run's",
    )
    log_every: int = option(_TRAIN_DEFAULTS["log_every"], "log_every", "steps between metric logs")
    eval_every: int = option(
        _TRAIN_DEFAULTS["eval_every"], "eval_every", "steps between evaluations"
    )
    eval_episodes: int = option(
        _TRAIN_DEFAULTS["eval_episodes"], "eval_episodes", "episodes per evaluation"
    )
    device: str = option(_TRAIN_DEFAULTS["device"], "device", "cpu | cuda | auto")
    source: str = option(_TRAIN_DEFAULTS["source"], "source", " | ".join(SOURCES))
    results_dir: str = option(_TRAIN_DEFAULTS["results_dir"], "results_dir", "Phase I runs")
    plots_dir: str = option("plots", "plots_dir", "figures and report.md")
    reward_scale_data: Literal["clean", "corrupted"] = option(
        _TRAIN_DEFAULTS["reward_scale_data"],
        "reward_scale_data",
        "clean | corrupted: the data IQL's reward scale (1000 / return range) is computed on",
    )
    tensorboard: bool = option(_TRAIN_DEFAULTS["tensorboard"], None)
    seeds_per_process: int = option(
        1,
        "seeds_per_process",
        "up to this many seeds of one condition trained in one process, their networks "
        "stacked (iql, bc, td3bc; each seed keeps its own run folder, and its results "
        "match its separate run's up to float rounding)",
    )

    def __post_init__(self) -> None:
        unknown = [a for a in self.algos if a not in ALGORITHMS]
        _require(
            not unknown,
            "algos",
            f"unknown algorithm(s) {unknown}; valid names are: {', '.join(ALGORITHMS)}",
        )
        modes = [m for m in REMOVAL_MODES if m != "none"]
        bad_removals = [r for r in self.removals if r not in modes]
        _require(
            not bad_removals,
            "removals",
            f"unknown removal mode(s) {bad_removals}; choose among {', '.join(modes)}",
        )
        lists = (
            "algos",
            "datasets",
            "k_percents",
            "seeds",
            "reward_noise_stds",
            "removals",
            "attacks",
        )
        _check_common(self, lists, "total_steps")
        _require(
            self.reward_scale_data in ("clean", "corrupted"),
            "reward_scale_data",
            f"reward_scale_data must be clean or corrupted, got {self.reward_scale_data!r}",
        )
        _check_each(
            "reward_noise_stds", self.reward_noise_stds, lambda s: CorruptionConfig("none", 0, s)
        )
        # Each attack setting alone (so an error names its flag), then the targets with the mode.
        _check_each("attack_mode", [self.attack_mode], lambda m: CorruptionConfig(attack_mode=m))
        _check_each("attack_rate", [self.attack_rate], lambda r: CorruptionConfig(attack_rate=r))
        _check_each("attack_scale", [self.attack_scale], lambda x: CorruptionConfig(attack_scale=x))
        _check_each(
            "attacks",
            self.attacks,
            lambda a: CorruptionConfig(attack=a, attack_mode=self.attack_mode),
        )
        _require(
            self.source in SOURCES,
            "source",
            f"unknown dataset source {self.source!r}; choose one of {', '.join(SOURCES)}",
        )
        _require(
            PHASE1_MEMBERS <= self.n_critics <= MAX_MEMBERS,
            "n_critics",
            f"n_critics must be in [{PHASE1_MEMBERS}, {MAX_MEMBERS}], got {self.n_critics}",
        )
        _check_each("precision", [self.precision], check_precision)
        fp32_only = [a for a in self.algos if a not in PRECISION_ALGOS]
        _require(
            self.precision == "fp32" or not fp32_only,
            ("precision", "algos"),
            f"precision {self.precision} applies to {', '.join(PRECISION_ALGOS)} only, not to "
            f"{', '.join(fp32_only)}; choose e.g. --algo {PRECISION_ALGOS[0]}",
        )
        criticless = [
            a for a in self.algos if not hasattr(ALGORITHMS[a].default_config(), "critic_members")
        ]
        _require(
            self.n_critics == PHASE1_MEMBERS or not criticless,
            ("n_critics", "algos"),
            f"{', '.join(criticless)} train(s) no critic; n_critics {self.n_critics} applies "
            "to algorithms with a critic only (e.g. --algo cql,iql)",
        )
        _require(
            self.seeds_per_process >= 1,
            "seeds_per_process",
            f"seeds_per_process must be at least 1, got {self.seeds_per_process}",
        )
        unstackable = [a for a in self.algos if not stackable(ALGORITHMS[a].agent_class)]
        _require(
            self.seeds_per_process == 1 or not unstackable,
            ("seeds_per_process", "algos"),
            f"seeds_per_process {self.seeds_per_process} stacks iql, bc and td3bc runs, not "
            f"{', '.join(unstackable)}; run {', '.join(unstackable)} in a command of its own "
            "with seeds_per_process 1",
        )
        _require(
            self.seeds_per_process == 1 or not self.tensorboard,
            ("seeds_per_process", "tensorboard"),
            "runs sharing a process write no TensorBoard logs; use seeds_per_process 1",
        )

    def validate(self) -> list[TrainConfig]:
        """Everything a run of this grid would refuse, checked before any run starts: the
        field values (checked when the grid is made), the datasets and device on this machine,
        and how the step settings fit together. Returns the run configs (`expand()`); raises
        `SettingError` naming the field(s) at fault."""
        _check_environment(self.datasets, self.device, "any" if self.source == "minari" else None)
        return _build_runs(self.expand, ("total_steps", "log_every", "eval_every"))

    @classmethod
    def quick(cls, **overrides: Any) -> Phase1Grid:
        """The quick variant: 20k steps, seed 0, outputs under `<results_dir>/quick` and
        `<plots_dir>/quick`; `overrides` replace any field (given dirs are used as they are)."""
        results_dir = overrides.pop("results_dir", f"{cls.results_dir}/{QUICK_SUBDIR}")
        plots_dir = overrides.pop("plots_dir", f"{cls.plots_dir}/{QUICK_SUBDIR}")
        settings: dict[str, Any] = {"total_steps": QUICK_TOTAL_STEPS, "seeds": QUICK_SEEDS}
        settings.update(overrides)
        return cls(results_dir=results_dir, plots_dir=plots_dir, **settings)

    def cells(self) -> list[tuple[str, str, CorruptionConfig]]:
        """The distinct (dataset, algo, condition) cells, in run order: removing k = 0 % is
        one clean condition whatever the removal mode (`CorruptionConfig` is canonical)."""
        return list(
            dict.fromkeys(
                (
                    dataset,
                    algo,
                    CorruptionConfig(
                        removal,
                        k,
                        sigma,
                        attack,
                        self.attack_mode,
                        self.attack_rate,
                        self.attack_scale,
                    ),
                )
                for dataset, algo, removal, k, sigma, attack in itertools.product(
                    self.datasets,
                    self.algos,
                    self.removals,
                    self.k_percents,
                    self.reward_noise_stds,
                    self.attacks,
                )
            )
        )

    def expand(self) -> list[TrainConfig]:
        """One `TrainConfig` per run, seed-major: every cell's first seed comes before any
        cell's second seed, so a grid stopped part-way already covers every condition."""
        return [
            TrainConfig(
                algo=algo,
                dataset=dataset,
                source=self.source,
                **run_fields(condition),
                seed=seed,
                total_steps=self.total_steps,
                n_critics=self.n_critics,
                precision=self.precision,
                log_every=self.log_every,
                eval_every=self.eval_every,
                eval_episodes=self.eval_episodes,
                device=self.device,
                results_dir=self.results_dir,
                tensorboard=self.tensorboard,
                reward_scale_data=self.reward_scale_data,
            )
            for seed in self.seeds
            for dataset, algo, condition in self.cells()
        ]

    def run_specs(self, configs: Sequence[TrainConfig]) -> list[RunSpec]:
        """What the launcher executes: `configs` as they are, or (`seeds_per_process` > 1)
        each cell's runs in `SeedGroup`s of up to that many seeds, in the order of their
        first seed."""
        if self.seeds_per_process == 1:
            return list(configs)
        cells: dict[str, list[TrainConfig]] = {}
        for config in configs:
            cells.setdefault(repr(dataclasses.replace(config, seed=0)), []).append(config)
        size = self.seeds_per_process
        groups = [
            tuple(runs[i : i + size]) for runs in cells.values() for i in range(0, len(runs), size)
        ]
        return [group[0] if len(group) == 1 else SeedGroup(group) for group in groups]


def run_fields(condition: CorruptionConfig) -> dict[str, Any]:
    """A condition as the run configs' fields. A clean run keeps their default removal mode
    ("top"), as the config.json of every clean run folder has it."""
    fields = dataclasses.asdict(condition)
    if not condition.removes:
        del fields["removal"]
    if condition.attack == "none":  # Phase II configs have no attack settings
        for name in ("attack", "attack_mode", "attack_rate", "attack_scale"):
            del fields[name]
    return fields


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
        _require(
            not unknown,
            "algos",
            f"Phase II fine-tunes {' and '.join(PHASE2_ALGORITHMS)}, not {unknown}; "
            f"choose among: {', '.join(PHASE2_ALGORITHMS)}",
        )
        bad_bonus = [b for b in self.bonus_types if b not in BONUS_TYPES]
        _require(
            not bad_bonus,
            "bonus_types",
            f"unknown bonus type(s) {bad_bonus}; choose among: {', '.join(BONUS_TYPES)}",
        )
        lists = ("algos", "datasets", "k_percents", "bonus_types", "seeds", "phase2_presets")
        _check_common(self, lists, "online_steps")
        # FinetuneConfig's own range checks, one field at a time so that the error names it
        for name in ("n_ensemble", "bonus_coeff", "online_ratio"):
            try:
                FinetuneConfig(**{name: getattr(self, name)})
            except ValueError as err:
                raise SettingError(name, str(err)) from None
        _check_each("phase2_presets", self.phase2_presets, preset_options)
        _check_each("arms", self.arms, _parse_arm)
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
        _check_environment(self.datasets, self.device, "namespaced")
        return _build_runs(self.expand, ("online_steps", "log_every", "eval_every"))

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
