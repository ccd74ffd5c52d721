"""Marks on config fields, shared by every layer that declares or reads configs."""

from __future__ import annotations

from types import MappingProxyType

# A setting that says how a run is executed (device, where results go, whether an update is
# compiled), not what it computes: it may change when a run is resumed.
EXECUTION = MappingProxyType({"execution": True})
