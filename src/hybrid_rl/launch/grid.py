"""The Phase I study as a grid: algo × dataset × removal × k × σ × seed → run configs."""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass, field
from typing import Any

from hybrid_rl.algos.registry import ALGORITHMS
from hybrid_rl.data.corruption import RemovalMode
from hybrid_rl.train import TrainConfig

QUICK_TOTAL_STEPS = 20_000
QUICK_SEEDS = (0,)
# Quick runs share run names with full runs (names do not encode the step budget), so they
# live in their own folders: a 20k-step run must never pass for a finished 500k-step one.
QUICK_SUBDIR = "quick"

_TRAIN_DEFAULTS = {f.name: f.default for f in dataclasses.fields(TrainConfig)}


def _train_default(name: str) -> Any:
    return field(default=_TRAIN_DEFAULTS[name])


@dataclass
class Phase1Grid:
    """Which Phase I runs to make, how long, and where their outputs go.

    Defaults are the study: CQL and IQL on halfcheetah-medium-v2 and hopper-medium-v2, top-k
    removal with k ∈ {0, 30, 60} %, clean rewards, seeds 0–2: 36 runs of 500k gradient steps.
    Per-run settings not listed here take `TrainConfig`'s defaults.
    """

    algos: tuple[str, ...] = ("cql", "iql")
    datasets: tuple[str, ...] = ("halfcheetah-medium-v2", "hopper-medium-v2")
    k_percents: tuple[float, ...] = (0.0, 30.0, 60.0)
    seeds: tuple[int, ...] = (0, 1, 2)
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
