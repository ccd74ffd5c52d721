"""The Phase I study as a grid of run configs: algo × dataset × removal × k × σ × seed →
`TrainConfig`s. The study's algorithms, datasets, k and seeds, and the quick variant's seeds and
folder, are Phase II's too: a Phase II run starts from the Phase I run of its cell and seed."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from hybrid_rl.algos.ensemble import MAX_MEMBERS, PHASE1_MEMBERS
from hybrid_rl.algos.precision import PRECISIONS, Precision, check_precision
from hybrid_rl.algos.registry import ALGORITHMS, PRECISION_ALGOS
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
from hybrid_rl.launch.grid_checks import (
    build_runs,
    check_common,
    check_each,
    check_environment,
    require,
)
from hybrid_rl.launch.options import option
from hybrid_rl.runs.loop import LOG_EVERY_DEFAULT_TEXT, default_log_every
from hybrid_rl.runs.spec import RunSpec
from hybrid_rl.train import SeedGroup, TrainConfig

GRID_ALGOS = ("cql", "iql")  # `--algo all` adds BC (Phase I) and TD3+BC
STUDY_DATASETS = ("halfcheetah-medium-v2", "hopper-medium-v2")
STUDY_K_PERCENTS = (0.0, 30.0, 60.0)
STUDY_SEEDS = (0, 1, 2)
QUICK_TOTAL_STEPS = 20_000
QUICK_SEEDS = (0,)
# Quick runs share run names with full runs (names do not encode the step budget), so they
# live in their own folders: a 20k-step run must never pass for a finished 500k-step one.
QUICK_SUBDIR = "quick"

_TRAIN_DEFAULTS = {f.name: f.default for f in dataclasses.fields(TrainConfig)}


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
        "is used (with a warning); Phase II runs keep their Phase I run's. Not shown to learn "
        "like fp32: on halfcheetah CQL (3 seeds, 20k steps) bf16 ended 0.9 points lower on "
        "every seed (docs/results-phase1.md)",
    )
    log_every: int | None = option(
        None, "log_every", "steps between metric logs", shown=LOG_EVERY_DEFAULT_TEXT
    )
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
        require(
            not unknown,
            "algos",
            f"unknown algorithm(s) {unknown}; valid names are: {', '.join(ALGORITHMS)}",
        )
        modes = [m for m in REMOVAL_MODES if m != "none"]
        bad_removals = [r for r in self.removals if r not in modes]
        require(
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
        check_common(self, lists, "total_steps")
        require(
            self.reward_scale_data in ("clean", "corrupted"),
            "reward_scale_data",
            f"reward_scale_data must be clean or corrupted, got {self.reward_scale_data!r}",
        )
        check_each(
            "reward_noise_stds", self.reward_noise_stds, lambda s: CorruptionConfig("none", 0, s)
        )
        # Each attack setting alone (so an error names its flag), then the targets with the mode.
        check_each("attack_mode", [self.attack_mode], lambda m: CorruptionConfig(attack_mode=m))
        check_each("attack_rate", [self.attack_rate], lambda r: CorruptionConfig(attack_rate=r))
        check_each("attack_scale", [self.attack_scale], lambda x: CorruptionConfig(attack_scale=x))
        check_each(
            "attacks",
            self.attacks,
            lambda a: CorruptionConfig(attack=a, attack_mode=self.attack_mode),
        )
        require(
            self.source in SOURCES,
            "source",
            f"unknown dataset source {self.source!r}; choose one of {', '.join(SOURCES)}",
        )
        require(
            PHASE1_MEMBERS <= self.n_critics <= MAX_MEMBERS,
            "n_critics",
            f"n_critics must be in [{PHASE1_MEMBERS}, {MAX_MEMBERS}], got {self.n_critics}",
        )
        check_each("precision", [self.precision], check_precision)
        fp32_only = [a for a in self.algos if a not in PRECISION_ALGOS]
        require(
            self.precision == "fp32" or not fp32_only,
            ("precision", "algos"),
            f"precision {self.precision} applies to {', '.join(PRECISION_ALGOS)} only, not to "
            f"{', '.join(fp32_only)}; choose e.g. --algo {PRECISION_ALGOS[0]}",
        )
        criticless = [
            a for a in self.algos if not hasattr(ALGORITHMS[a].default_config(), "critic_members")
        ]
        require(
            self.n_critics == PHASE1_MEMBERS or not criticless,
            ("n_critics", "algos"),
            f"{', '.join(criticless)} train(s) no critic; n_critics {self.n_critics} applies "
            "to algorithms with a critic only (e.g. --algo cql,iql)",
        )
        require(
            self.seeds_per_process >= 1,
            "seeds_per_process",
            f"seeds_per_process must be at least 1, got {self.seeds_per_process}",
        )
        unstackable = [a for a in self.algos if not stackable(ALGORITHMS[a].agent_class)]
        require(
            self.seeds_per_process == 1 or not unstackable,
            ("seeds_per_process", "algos"),
            f"seeds_per_process {self.seeds_per_process} stacks iql, bc and td3bc runs, not "
            f"{', '.join(unstackable)}; run {', '.join(unstackable)} in a command of its own "
            "with seeds_per_process 1",
        )
        require(
            self.seeds_per_process == 1 or not self.tensorboard,
            ("seeds_per_process", "tensorboard"),
            "runs sharing a process write no TensorBoard logs; use seeds_per_process 1",
        )

    @property
    def logging_interval(self) -> int:
        """log_every as given, else derived from eval_every (`runs.loop.default_log_every`)."""
        return default_log_every(self.eval_every) if self.log_every is None else self.log_every

    def validate(self) -> list[TrainConfig]:
        """Everything a run of this grid would refuse, checked before any run starts: the
        field values (checked when the grid is made), the datasets and device on this machine,
        and how the step settings fit together. Returns the run configs (`expand()`); raises
        `SettingError` naming the field(s) at fault."""
        check_environment(self.datasets, self.device, "any" if self.source == "minari" else None)
        return build_runs(self.expand, ("total_steps", "log_every", "eval_every"))

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
                log_every=self.logging_interval,
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
