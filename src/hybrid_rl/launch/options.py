"""Settings declared once as dataclass fields, from which the command line makes its flags,
and the error that names the setting at fault."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import field
from typing import Any


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
