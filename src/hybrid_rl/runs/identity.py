"""Which settings make a run what it is, and the check that a folder holds the run asked for.

A config field marked `hybrid_rl.settings.EXECUTION` (the device, where results go, whether
an update is compiled) says how a run is executed, not what it computes: it may differ
between the start and the resumption of one run. Every other field is identity: a
folder whose saved config differs in one of them holds another run. A setting added to a
config after a run was saved is absent from its config.json; it counts as its default there
(new settings default to the behaviour runs had before them), or as the former value its
field names (`hybrid_rl.settings.added_setting`) when the default changed that behaviour.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any


def execution_fields(config: Any) -> dict[str, Any]:
    """{field: True} for execution settings, {field: nested dict} for nested dataclasses."""
    marks: dict[str, Any] = {}
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if field.metadata.get("execution"):  # hybrid_rl.settings.EXECUTION
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


def defaults_of(config: Any) -> dict[str, Any]:
    """The default of every field of a config dataclass, as JSON (nested configs: theirs)."""
    defaults: dict[str, Any] = {}
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            defaults[field.name] = defaults_of(value)
        elif "formerly" in field.metadata:  # hybrid_rl.settings.added_setting
            defaults[field.name] = field.metadata["formerly"]
        elif field.default is not dataclasses.MISSING:
            defaults[field.name] = json.loads(json.dumps(field.default))
        elif field.default_factory is not dataclasses.MISSING:
            defaults[field.name] = json.loads(json.dumps(field.default_factory()))
    return defaults


def with_defaults(saved: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """`saved` with the fields it lacks taken from `defaults` (recursively)."""
    filled = {**{k: v for k, v in defaults.items() if not isinstance(v, dict)}, **saved}
    for name, value in defaults.items():
        if isinstance(value, dict) and isinstance(filled.get(name), dict):
            filled[name] = with_defaults(filled[name], value)
    return filled


def identity_conflict(config: Any, saved_fields: dict[str, Any]) -> str | None:
    """What differs between `config` and a saved config's identity, or None if nothing.

    E.g. "total_steps 20000 there, 500000 asked; agent.expectile 0.7 there, 0.9 asked".
    """
    marks = execution_fields(config)
    saved = with_defaults(saved_fields, defaults_of(config))
    differences = _differences(identity(saved, marks), identity(as_json(config), marks))
    if not differences:
        return None
    return "; ".join(
        f"{name} {there!r} there, {asked!r} asked" for name, there, asked in differences
    )


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
