"""Which settings make a run what it is, and the check that a folder holds the run asked for.

A config field marked `EXECUTION` (device, thread-free settings such as where results go,
whether an update is compiled) says how a run is executed, not what it computes: it may
differ between the start and the resumption of one run. Every other field is identity: a
folder whose saved config differs in one of them holds another run. A setting added to a
config after a run started is absent from that run's config.json: the run computed with the
setting's default, so the missing value is read as that default.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from hybrid_rl.settings import EXECUTION

__all__ = ["EXECUTION", "identity_conflict"]


def execution_fields(config: Any) -> dict[str, Any]:
    """{field: True} for execution settings, {field: nested dict} for nested dataclasses."""
    marks: dict[str, Any] = {}
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if field.metadata.get("execution"):
            marks[field.name] = True
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):
            marks[field.name] = execution_fields(value)
    return marks


def identity(fields: dict[str, Any], marks: dict[str, Any]) -> dict[str, Any]:
    """`fields` (a config as JSON) without the execution settings `marks` names."""
    kept: dict[str, Any] = {}
    for name, value in fields.items():
        mark = marks.get(name)
        if mark is True:
            continue
        kept[name] = (
            identity(value, mark) if isinstance(mark, dict) and isinstance(value, dict) else value
        )
    return kept


def as_json(config: Any) -> dict[str, Any]:
    """A config dataclass as the JSON config.json stores (tuples become lists)."""
    return dict(json.loads(json.dumps(dataclasses.asdict(config))))


def identity_conflict(config: Any, saved_fields: dict[str, Any]) -> str | None:
    """What differs between `config` and a saved config's identity, or None if nothing.

    E.g. "total_steps 20000 there, 500000 asked; agent.expectile 0.7 there, 0.9 asked".
    """
    marks = execution_fields(config)
    saved_fields = with_defaults(saved_fields, config)
    differences = _differences(identity(saved_fields, marks), identity(as_json(config), marks))
    if not differences:
        return None
    return "; ".join(
        f"{name} {there!r} there, {asked!r} asked" for name, there, asked in differences
    )


def with_defaults(saved_fields: dict[str, Any], config: Any) -> dict[str, Any]:
    """`saved_fields` with every field of `config`'s class that it lacks set to that field's
    default (as JSON), in nested dataclasses too."""
    filled = dict(saved_fields)
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if field.name not in filled:
            if field.default is not dataclasses.MISSING:
                filled[field.name] = json.loads(json.dumps(field.default))
        elif dataclasses.is_dataclass(value) and isinstance(filled[field.name], dict):
            filled[field.name] = with_defaults(filled[field.name], value)
    return filled


def _differences(
    saved: dict[str, Any], wanted: dict[str, Any], prefix: str = ""
) -> list[tuple[str, Any, Any]]:
    found = []
    for name in sorted(set(saved) | set(wanted)):
        there, asked = saved.get(name), wanted.get(name)
        if isinstance(there, dict) and isinstance(asked, dict):
            found += _differences(there, asked, f"{prefix}{name}.")
        elif there != asked:
            found.append((f"{prefix}{name}", there, asked))
    return found


def check_same_run(config: Any, saved: dict[str, Any] | None, folder: Any) -> None:
    """Raise ValueError when `folder`'s saved config (`saved`, config.json) belongs to another
    run than `config`; execution settings may differ."""
    if saved is None:
        return
    conflict = identity_conflict(config, saved["config"])
    if conflict is not None:
        raise ValueError(
            f"{folder} holds a run with other settings ({conflict}); use another results "
            f"folder, or start that run over with `hybrid-rl runs reset {folder}`"
        )
