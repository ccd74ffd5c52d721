"""The checks both grids share: field values refused with the field named, the datasets and
device on this machine, and the run configs' own checks."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from hybrid_rl.data.corruption import CorruptionConfig
from hybrid_rl.data.registry import DATASETS
from hybrid_rl.launch.options import SettingError
from hybrid_rl.seeding import resolve_device

if TYPE_CHECKING:
    from hybrid_rl.launch.phase1_grid import Phase1Grid
    from hybrid_rl.launch.phase2_grid import Phase2Grid


def require(ok: bool, fields: str | tuple[str, ...], message: str) -> None:
    """A `SettingError` of `fields` saying `message`, unless `ok`."""
    if not ok:
        raise SettingError(fields, message)


def check_each(name: str, values: Iterable[Any], check: Callable[[Any], object]) -> None:
    """`check(value)` for each value; its ValueError becomes a SettingError of field `name`."""
    for value in values:
        try:
            check(value)
        except ValueError as err:
            raise SettingError(name, str(err)) from None


def check_common(grid: Phase1Grid | Phase2Grid, lists: Sequence[str], steps: str) -> None:
    """The checks both grids share: no empty list, k through the condition object, seeds,
    positive step counts and evaluation sizes."""
    for name in lists:
        require(bool(getattr(grid, name)), name, f"the grid needs at least one value in {name}")
    check_each("k_percents", grid.k_percents, lambda k: CorruptionConfig("top", k))
    bad_seeds = [s for s in grid.seeds if s < 0]
    require(not bad_seeds, "seeds", f"seeds must be ≥ 0, got {bad_seeds}")
    for name in (steps, "log_every", "eval_every", "eval_episodes"):
        value = getattr(grid, name)
        require(value is None or value > 0, name, f"{name} must be positive, got {value}")


def check_environment(
    datasets: Sequence[str], device: str, other_ids: Literal["any", "namespaced"] | None
) -> None:
    """What depends on this machine: each dataset is a known id, an existing .hdf5/.h5 file or
    an id `other_ids` allows ("any": with source 'minari'; "namespaced": Minari-style
    "a/b-v0" ids); the device exists."""
    for dataset in datasets:
        if dataset.lower().endswith((".hdf5", ".h5")):
            require(Path(dataset).is_file(), "datasets", f"{dataset}: no such dataset file")
            continue
        allowed = other_ids == "any" or (other_ids == "namespaced" and "/" in dataset)
        require(
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


def build_runs(make: Callable[[], list[Any]], fields: tuple[str, ...]) -> list[Any]:
    """The run configs, whose own checks cover how the step settings fit together."""
    try:
        return make()
    except SettingError:
        raise
    except ValueError as err:
        raise SettingError(fields, str(err)) from None
