"""The two studies as grids of run configs.

Phase I: algo × dataset × removal × k × σ × seed → `TrainConfig`s.
Phase II: algo × dataset × k × bonus type × seed → `FinetuneConfig`s, each starting from the
Phase I run of the same algo, dataset, k and seed.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass, field
from typing import Any

from hybrid_rl.algos.registry import ALGORITHMS, PHASE2_ALGORITHMS
from hybrid_rl.data.corruption import RemovalMode
from hybrid_rl.finetune import BONUS_TYPES, BonusType, FinetuneConfig
from hybrid_rl.train import TrainConfig

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


def _train_default(name: str) -> Any:
    return field(default=_TRAIN_DEFAULTS[name])


def _finetune_default(name: str) -> Any:
    return field(default=_FINETUNE_DEFAULTS[name])


@dataclass
class Phase1Grid:
    """Which Phase I runs to make, how long, and where their outputs go.

    Defaults are the study: CQL and IQL on halfcheetah-medium-v2 and hopper-medium-v2, top-k
    removal with k ∈ {0, 30, 60} %, clean rewards, seeds 0–2: 36 runs of 500k gradient steps.
    Per-run settings not listed here take `TrainConfig`'s defaults.
    """

    algos: tuple[str, ...] = GRID_ALGOS
    datasets: tuple[str, ...] = STUDY_DATASETS
    k_percents: tuple[float, ...] = STUDY_K_PERCENTS
    seeds: tuple[int, ...] = STUDY_SEEDS
    reward_noise_stds: tuple[float, ...] = (0.0,)
    removals: tuple[RemovalMode, ...] = ("top",)
    total_steps: int = _train_default("total_steps")
    log_every: int = _train_default("log_every")
    eval_every: int = _train_default("eval_every")
    eval_episodes: int = _train_default("eval_episodes")
    device: str = _train_default("device")
    source: str = _train_default("source")
    results_dir: str = _train_default("results_dir")
    plots_dir: str = "plots"
    tensorboard: bool = _train_default("tensorboard")

    def __post_init__(self) -> None:
        unknown = [a for a in self.algos if a not in ALGORITHMS]
        if unknown:
            raise ValueError(
                f"unknown algorithm(s) {unknown}; valid names are: {', '.join(ALGORITHMS)}"
            )
        bad_removals = [r for r in self.removals if r not in ("top", "random")]
        if bad_removals:
            raise ValueError(f"unknown removal mode(s) {bad_removals}; choose 'top' or 'random'")
        for name in ("algos", "datasets", "k_percents", "seeds", "reward_noise_stds", "removals"):
            if not getattr(self, name):
                raise ValueError(f"the grid needs at least one value in {name}")

    @classmethod
    def quick(cls, **overrides: Any) -> Phase1Grid:
        """The quick variant: 20k steps, seed 0, outputs under `<results_dir>/quick` and
        `<plots_dir>/quick`; `overrides` replace any field (given dirs are used as they are)."""
        results_dir = overrides.pop("results_dir", f"{cls.results_dir}/{QUICK_SUBDIR}")
        plots_dir = overrides.pop("plots_dir", f"{cls.plots_dir}/{QUICK_SUBDIR}")
        settings: dict[str, Any] = {"total_steps": QUICK_TOTAL_STEPS, "seeds": QUICK_SEEDS}
        settings.update(overrides)
        return cls(results_dir=results_dir, plots_dir=plots_dir, **settings)

    def cells(self) -> list[tuple[str, str, RemovalMode, float, float]]:
        """The distinct (dataset, algo, removal, k, σ) conditions, in run order.

        k = 0 removes nothing whatever the removal mode, so it is one condition (the clean
        data, kept under removal "top") instead of one identical copy per mode.
        """
        seen: list[tuple[str, str, RemovalMode, float, float]] = []
        for dataset, algo, removal, k, sigma in itertools.product(
            self.datasets, self.algos, self.removals, self.k_percents, self.reward_noise_stds
        ):
            cell = (dataset, algo, removal if k != 0 else "top", float(k), float(sigma))
            if cell not in seen:
                seen.append(cell)
        return seen

    def expand(self) -> list[TrainConfig]:
        """One `TrainConfig` per run, seed-major: every cell's first seed comes before any
        cell's second seed, so a grid stopped part-way already covers every condition."""
        return [
            TrainConfig(
                algo=algo,
                dataset=dataset,
                source=self.source,
                removal=removal,
                k_percent=k,
                reward_noise_std=sigma,
                seed=seed,
                total_steps=self.total_steps,
                log_every=self.log_every,
                eval_every=self.eval_every,
                eval_episodes=self.eval_episodes,
                device=self.device,
                results_dir=self.results_dir,
                tensorboard=self.tensorboard,
            )
            for seed in self.seeds
            for dataset, algo, removal, k, sigma in self.cells()
        ]


@dataclass
class Phase2Grid:
    """Which Phase II runs to make, how long, and where their outputs go.

    Defaults are the study: CQL and IQL on halfcheetah-medium-v2 and hopper-medium-v2, each
    fine-tuned from its Phase I run with k ∈ {0, 30, 60} % (top-k removal, clean rewards),
    with the ensemble bonus and without it, seeds 0–2: 72 runs of 250k online steps, reading
    the Phase I runs in `phase1_results_dir`. Per-run settings not listed here take
    `FinetuneConfig`'s defaults.
    """

    algos: tuple[str, ...] = GRID_ALGOS
    datasets: tuple[str, ...] = STUDY_DATASETS
    k_percents: tuple[float, ...] = STUDY_K_PERCENTS
    bonus_types: tuple[BonusType, ...] = BONUS_TYPES
    seeds: tuple[int, ...] = STUDY_SEEDS
    online_steps: int = _finetune_default("online_steps")
    n_ensemble: int = _finetune_default("n_ensemble")
    bonus_coeff: float = _finetune_default("bonus_coeff")
    online_ratio: float = _finetune_default("online_ratio")
    log_every: int = _finetune_default("log_every")
    eval_every: int = _finetune_default("eval_every")
    eval_episodes: int = _finetune_default("eval_episodes")
    device: str = _finetune_default("device")
    results_dir: str = _finetune_default("results_dir")
    phase1_results_dir: str = _finetune_default("phase1_results_dir")
    plots_dir: str = "plots_phase2"

    def __post_init__(self) -> None:
        unknown = [a for a in self.algos if a not in PHASE2_ALGORITHMS]
        if unknown:
            raise ValueError(
                f"Phase II fine-tunes {' and '.join(PHASE2_ALGORITHMS)}, not {unknown}; "
                f"choose among: {', '.join(PHASE2_ALGORITHMS)}"
            )
        bad_bonus = [b for b in self.bonus_types if b not in BONUS_TYPES]
        if bad_bonus:
            raise ValueError(
                f"unknown bonus type(s) {bad_bonus}; choose among: {', '.join(BONUS_TYPES)}"
            )
        for name in ("algos", "datasets", "k_percents", "bonus_types", "seeds"):
            if not getattr(self, name):
                raise ValueError(f"the grid needs at least one value in {name}")

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

    def cells(self) -> list[tuple[str, str, float]]:
        """The distinct (dataset, algo, k) Phase I conditions fine-tuned, in run order."""
        return list(
            dict.fromkeys(
                (dataset, algo, float(k))
                for dataset, algo, k in itertools.product(
                    self.datasets, self.algos, self.k_percents
                )
            )
        )

    def expand(self) -> list[FinetuneConfig]:
        """One `FinetuneConfig` per run, seed-major, and within a (cell, seed) every bonus type
        back to back: a grid stopped part-way compares the bonus types on the same Phase I
        checkpoints, and every cell's first seed comes before any cell's second."""
        return [
            FinetuneConfig(
                algo=algo,
                dataset=dataset,
                k_percent=k,
                seed=seed,
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
            )
            for seed in self.seeds
            for dataset, algo, k in self.cells()
            for bonus_type in self.bonus_types
        ]
