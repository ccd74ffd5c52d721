"""What a shipped replica should contain, and whether a local build does.

The card of a replica's behaviour policy (`policies/<env>_<quality>.json`; for the random and
medium-expert replicas a card without weights) records how the reference build was made (seed,
size, recipe, library versions) and the summary of its data. `verify_replica` compares a local
build against that summary, statistic by statistic.
"""

from __future__ import annotations

import importlib.metadata
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hybrid_rl import __version__
from hybrid_rl.atomic_io import write_json_atomic
from hybrid_rl.behavior.policies import policy_paths
from hybrid_rl.behavior.replica import REPLICA_QUALITIES
from hybrid_rl.data.hdf5_format import read_d4rl_metadata
from hybrid_rl.data.loader import load_dataset
from hybrid_rl.data.registry import get_dataset_spec
from hybrid_rl.data.summary import summarize_transitions

REPLICA_KEY = "replica"
# A deterministic build reproduces every count exactly; figures derived from the episode
# lengths then agree up to summation rounding.
LENGTH_RTOL = 1e-12
# Return statistics of a reproduced build agree up to summation rounding (~1e-15); any other
# trajectory moves them far more than this.
DEFAULT_RETURN_RTOL = 1e-6
_COUNTS = ("transitions", "trajectories", "terminals", "timeouts", "obs_dim", "act_dim")
HISTOGRAM_KEY = "normalized_return_histogram"
# The replicas that ship no weights of their own: their card is created with its first record.
_POLICY_WITHOUT_WEIGHTS = {
    "random": "uniform random actions in [-1, 1] (no weights)",
    "medium-expert": "the medium replica's rows, then the expert replica's: the policies of "
    "{env}_medium.json and {env}_expert.json (no weights of its own)",
}


def replica_card_path(dataset_id: str) -> Path:
    """The card that records the replica of `dataset_id` (e.g. policies/hopper_medium.json)."""
    spec = get_dataset_spec(dataset_id)
    if spec.quality not in REPLICA_QUALITIES:
        raise ValueError(
            f"{dataset_id!r} has no replica (replicas exist for the qualities "
            f"{', '.join(REPLICA_QUALITIES)}), so no card records one"
        )
    return policy_paths(spec.env_name, spec.quality)[1]


def read_replica_record(card_path: Path, dataset_id: str) -> dict[str, Any]:
    """The card's record of the reference build of `dataset_id`; errors say what to do."""
    if not card_path.exists():
        raise FileNotFoundError(
            f"no card {card_path}; `hybrid-rl dataset card {dataset_id}` writes one"
        )
    card = json.loads(card_path.read_text())
    record = card.get(REPLICA_KEY)
    if not isinstance(record, dict) or "summary" not in record:
        raise ValueError(
            f"the card {card_path} records no replica summary; "
            f"`hybrid-rl dataset card {dataset_id}` writes it from a build"
        )
    if record.get("dataset_id") != dataset_id:
        raise ValueError(
            f"the card {card_path} records the replica of {record.get('dataset_id')!r}, "
            f"not of {dataset_id!r}"
        )
    return record


def replica_record(path: Path, dataset_id: str) -> dict[str, Any]:
    """How the replica at `path` was built and the summary of its data, for a card."""
    metadata, sha256, summary = _summarize(path)
    versions = {name: importlib.metadata.version(name) for name in ("mujoco", "gymnasium", "numpy")}
    return {
        "dataset_id": dataset_id,
        "seed": metadata["seed"],
        "n_transitions": metadata["n_transitions"],
        "num_envs": metadata["num_envs"],
        "recipe": metadata["recipe"],
        "sha256": sha256,
        "built_with": {"hybrid_rl": __version__, **versions},
        "summary": summary,
    }


def refresh_summary(card_path: Path, dataset_id: str, path: Path) -> dict[str, Any]:
    """The card's record with its summary recomputed from the reference build at `path`, for
    when the summary gains a statistic: every figure the card records must come out the same,
    so only new ones are added. Refuses a file that is not the recorded build (its sha256)."""
    record = read_replica_record(card_path, dataset_id)
    _, sha256, summary = _summarize(path)
    if sha256 != record["sha256"]:
        raise ValueError(
            f"{path} has sha256 {sha256}, but {card_path} records the build {record['sha256']}: "
            f"a summary is refreshed only from the recorded file; `hybrid-rl dataset card "
            f"{dataset_id}` without --refresh rebuilds and rewrites the card"
        )
    changed = [key for key, value in record["summary"].items() if summary.get(key) != value]
    if changed:
        raise ValueError(
            f"recomputing the summary of {path} changes {', '.join(changed)} from what "
            f"{card_path} records (another numpy?); the card was left as it was"
        )
    return {**record, "summary": summary}


def write_replica_record(card_path: Path, record: dict[str, Any]) -> None:
    """Put `record` into the card (a random or medium-expert replica's card is created: it
    has no weights)."""
    if card_path.exists():
        card = json.loads(card_path.read_text())
    else:
        spec = get_dataset_spec(record["dataset_id"])
        if spec.quality not in _POLICY_WITHOUT_WEIGHTS:
            raise FileNotFoundError(f"no card {card_path} for the policy of {spec.dataset_id}")
        card = {
            "dataset": f"{spec.dataset_id} (replica)",
            "env_id": spec.gym_env_id,
            "policy": _POLICY_WITHOUT_WEIGHTS[spec.quality].format(env=spec.env_name),
        }
    card[REPLICA_KEY] = record
    write_json_atomic(card_path, card)


@dataclass(frozen=True)
class Comparison:
    """One statistic of the card beside the local build's."""

    name: str
    expected: float
    actual: float
    rtol: float  # 0: must be equal

    @property
    def matches(self) -> bool:
        if math.isnan(self.expected) or math.isnan(self.actual):
            return math.isnan(self.expected) and math.isnan(self.actual)
        return abs(self.actual - self.expected) <= self.rtol * abs(self.expected)

    def line(self) -> str:
        rule = "exact" if self.rtol == 0 else f"rtol {self.rtol:g}"
        verdict = "ok" if self.matches else "DIFFERS"
        return (
            f"{self.name:28}{_figure(self.expected):>18}{_figure(self.actual):>18}"
            f"  {rule:12}{verdict}"
        )


def _figure(value: float) -> str:
    return f"{int(value):,}" if float(value).is_integer() else f"{value:.6f}"


def compare_summaries(
    expected: dict[str, Any], actual: dict[str, Any], return_rtol: float
) -> list[Comparison]:
    """Every statistic of the card's summary beside the build's: counts exact, episode-length
    figures up to rounding, return statistics (raw and normalized) within `return_rtol`, the
    normalized-return histogram (when the card has one) count by count."""
    comparisons = [Comparison(name, expected[name], actual[name], 0.0) for name in _COUNTS]
    for group, rtol in (
        ("episode_length", LENGTH_RTOL),
        ("return", return_rtol),
        ("normalized_return", return_rtol),
    ):
        for stat, value in expected.get(group, {}).items():
            exact = group == "episode_length" and stat in ("min", "max")
            # A file that does not name its env has no normalized returns: nan, so it differs.
            local = actual.get(group, {}).get(stat, math.nan)
            comparisons.append(Comparison(f"{group}.{stat}", value, local, 0.0 if exact else rtol))
    if HISTOGRAM_KEY in expected:
        local_histogram = actual.get(HISTOGRAM_KEY, {})
        comparisons += _histogram_comparisons(expected[HISTOGRAM_KEY], local_histogram)
    return comparisons


def _histogram_comparisons(expected: dict[str, Any], actual: dict[str, Any]) -> list[Comparison]:
    """The histogram's bins, then its counts, all exact (a reproduced build has the same
    trajectories). Bins empty in both are left out to keep the listing short."""
    names = ("low", "high", "width", "underflow", "overflow")
    comparisons = [
        Comparison(f"histogram.{name}", expected[name], actual.get(name, math.nan), 0.0)
        for name in names
    ]
    local_counts = actual.get("counts", [])
    for i, count in enumerate(expected["counts"]):
        local = local_counts[i] if i < len(local_counts) else math.nan
        if count or local:
            low = expected["low"] + i * expected["width"]
            name = f"histogram[{low:g},{low + expected['width']:g})"
            comparisons.append(Comparison(name, count, local, 0.0))
    return comparisons


@dataclass(frozen=True)
class Verification:
    """A local replica checked against its card: the recipe, then every statistic."""

    path: Path
    recipe_expected: int
    recipe_actual: int | None
    comparisons: list[Comparison]
    sha256_expected: str
    sha256_actual: str

    @property
    def matches(self) -> bool:
        recipe_ok = self.recipe_actual == self.recipe_expected
        return recipe_ok and all(c.matches for c in self.comparisons)

    def lines(self) -> list[str]:
        recipe_ok = self.recipe_actual == self.recipe_expected
        lines = [
            f"{'statistic':28}{'card':>18}{'local build':>18}  {'tolerance':12}verdict",
            f"{'recipe':28}{self.recipe_expected:>18}{self.recipe_actual or 'none':>18}"
            f"  {'exact':12}{'ok' if recipe_ok else 'DIFFERS'}",
            *(c.line() for c in self.comparisons),
        ]
        same_bytes = self.sha256_actual == self.sha256_expected
        lines.append(
            f"sha256 {self.sha256_actual} "
            + (
                "(the card's: the same bytes)"
                if same_bytes
                else f"(the card says {self.sha256_expected}; bytes also change with "
                "library versions, so the statistics decide)"
            )
        )
        differing = [c for c in self.comparisons if not c.matches]
        if self.matches:
            lines.append("result: the local build matches the card")
        else:
            count = len(differing) + (0 if recipe_ok else 1)
            lines.append(f"result: {count} line(s) differ from the card")
        return lines


def check_return_rtol(return_rtol: float) -> None:
    if not return_rtol >= 0:
        raise ValueError(f"--rtol must be a non-negative number, got {return_rtol}")


def verify_replica(path: Path, record: dict[str, Any], return_rtol: float) -> Verification:
    """Compare the replica at `path` with a card's record (`read_replica_record`)."""
    check_return_rtol(return_rtol)
    metadata, sha256, summary = _summarize(path)
    recipe = metadata.get("recipe")
    return Verification(
        path=path,
        recipe_expected=int(record["recipe"]),
        recipe_actual=None if recipe is None else int(recipe),
        comparisons=compare_summaries(record["summary"], summary, return_rtol),
        sha256_expected=record["sha256"],
        sha256_actual=sha256,
    )


def _summarize(path: Path) -> tuple[dict[str, Any], str, dict[str, Any]]:
    """The file's metadata, sha256 and data summary."""
    loaded = load_dataset(path)
    summary = summarize_transitions(loaded.transitions, loaded.provenance.env_id)
    return read_d4rl_metadata(path), loaded.provenance.sha256, summary
