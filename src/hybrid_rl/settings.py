"""Marks on config fields, shared by every layer that declares or reads configs."""

from __future__ import annotations

import dataclasses
from types import MappingProxyType
from typing import Any

# A setting that says how a run is executed (device, where results go, whether an update is
# compiled), not what it computes: it may change when a run is resumed.
EXECUTION = MappingProxyType({"execution": True})


def added_setting(formerly: object) -> MappingProxyType:
    """Metadata of a setting added after runs were saved without it: `formerly` is the value
    that reproduces what those runs did (their config.json lacks the field)."""
    return MappingProxyType({"formerly": formerly})


def with_former_settings(config_class: type, fields: dict[str, Any]) -> dict[str, Any]:
    """A saved config's `fields`, plus the former value of every setting added since."""
    filled = dict(fields)
    for field in dataclasses.fields(config_class):
        if field.name not in filled and "formerly" in field.metadata:
            filled[field.name] = field.metadata["formerly"]
    return filled
