"""Command-line flags generated from dataclass fields.

A field declared with `launch.options.option(default, "flag", "help")` becomes `--flag`; its help
shows the field's help text and default (and the `--quick` default where that differs), so
neither is ever written twice. Tuple fields become list flags that take comma-separated or
repeated values. Values are converted here; whether they are valid is the dataclass's to say
(`SettingError`), and `error_line` turns its complaint into one line naming the flag.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from hybrid_rl.launch.options import SettingError


class FlagError(ValueError):
    """A flag value of the wrong type; the message names the flag."""


@dataclass(frozen=True)
class Flag:
    """One `--name` flag and the dataclass field(s) it sets."""

    name: str  # as typed, without the dashes: "remove_top_k"
    targets: tuple[str, ...]  # the fields it sets, as paths: "k_percents", "phase2.online_steps"
    kind: type  # int | float | str | bool: of the value, or of each value of a list flag
    many: bool  # a list flag: values comma-separated or repeated, into a tuple
    help: str
    every: tuple[str, tuple[Any, ...]] | None = None  # (word, the values it stands for)
    shown: str | None = None  # the default in words, instead of its value

    @property
    def fields(self) -> tuple[str, ...]:
        """The field names it sets, without their paths."""
        return tuple(target.rsplit(".", 1)[-1] for target in self.targets)


def field_flags(cls: type) -> list[Flag]:
    """A flag for every field of the dataclass `cls` that declares one, in field order. A
    field whose metadata names `flags_of` (a dataclass) stands for the flags of that class's
    fields, in its place; they set `field.name.<their field>`."""
    flags = []
    for f in dataclasses.fields(cls):
        if (nested := f.metadata.get("flags_of")) is not None:
            flags += [
                dataclasses.replace(flag, targets=(f"{f.name}.{flag.targets[0]}",))
                for flag in field_flags(nested)
            ]
        elif f.metadata.get("flag") is not None:
            flags.append(flag_of(cls, f.name))
    return flags


def flag_of(
    cls: type, field_name: str, name: str | None = None, targets: tuple[str, ...] = ()
) -> Flag:
    """The flag of `cls.field_name` as declared (`name` and `targets` replace its own name and
    the field: a flag of a command that sets fields of several dataclasses)."""
    field = next(f for f in dataclasses.fields(cls) if f.name == field_name)
    kind, many = _value_type(typing.get_type_hints(cls)[field_name])
    if field.metadata.get("flag_values"):  # the flag takes words the field's values stand for
        kind, many = str, False
    every = field.metadata.get("every")
    return Flag(
        name=name or field.metadata["flag"],
        targets=targets or (field_name,),
        kind=kind,
        many=many,
        help=field.metadata.get("help", ""),
        every=(every[0], tuple(every[1])) if every else None,
        shown=field.metadata.get("shown"),
    )


def _value_type(hint: Any) -> tuple[type, bool]:
    """(type of the value or of each element, is a tuple) of a field's type hint."""
    many = typing.get_origin(hint) is tuple
    if many:
        hint = typing.get_args(hint)[0]
    if typing.get_origin(hint) in (typing.Union, types.UnionType):  # `int | None`
        hint = next(arg for arg in typing.get_args(hint) if arg is not type(None))
    if typing.get_origin(hint) is Literal:
        hint = type(typing.get_args(hint)[0])
    return hint, many


def value_text(value: Any) -> str:
    """A value as the help shows it: tuples comma-separated."""
    return ", ".join(map(str, value)) if isinstance(value, tuple) else str(value)


def default_text(flag: Flag, default: object, quick: object | None = None) -> str:
    """The flag's default read from `default` (the object the command builds without flags),
    and its `--quick` default from `quick` when that differs."""
    if flag.shown is not None:
        return flag.shown
    text = value_text(_get(default, flag.targets[0]))
    if quick is not None:
        quick_text = value_text(_get(quick, flag.targets[0]))
        if quick_text != text:
            text += f"; with --quick: {quick_text}"
    return text


def _get(obj: object, path: str) -> Any:
    for name in path.split("."):
        obj = getattr(obj, name)
    return obj


def add_flags(
    parser: argparse.ArgumentParser,
    flags: Iterable[Flag],
    default: object,
    quick: object | None = None,
) -> None:
    """Add `flags` to `parser`; their defaults are read from `default` and `quick` (see
    `default_text`). Every flag parses to None (or False) when not given, so that only the
    flags given override the dataclass."""
    for flag in flags:
        if flag.kind is bool:  # a switch: off unless given
            parser.add_argument(f"--{flag.name}", action="store_true", help=flag.help)
            continue
        # argparse %-formats help texts
        text = f"{flag.help} (default: {default_text(flag, default, quick)})".replace("%", "%%")
        if flag.many:
            parser.add_argument(
                f"--{flag.name}", action="extend", nargs="+", metavar="VALUE", help=text
            )
        else:
            parser.add_argument(f"--{flag.name}", help=text)


def add_quick_flag(
    parser: argparse.ArgumentParser, flags: Iterable[Flag], default: object, quick: object
) -> None:
    """`--quick`, whose help lists the defaults it changes."""
    changes = [
        f"--{flag.name} {value_text(_get(quick, flag.targets[0]))}"
        for flag in flags
        if flag.shown is None and _get(quick, flag.targets[0]) != _get(default, flag.targets[0])
    ]
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"the quick variant: short runs in their own folders ({', '.join(changes)}; "
        "flags given still win)",
    )


def given_values(args: argparse.Namespace, flags: Iterable[Flag]) -> dict[Flag, Any]:
    """The flags given on the command line and their values, converted to the fields' types:
    list flags split at commas, duplicates dropped, `every`'s word replaced by its values."""
    values: dict[Flag, Any] = {}
    for flag in flags:
        raw = getattr(args, flag.name, None)
        if raw is None or raw is False:
            continue
        values[flag] = _convert(flag, raw)
    return values


_ONE_VALUE = {int: "an integer", float: "a number", str: "a string"}


def _convert(flag: Flag, raw: Any) -> Any:
    if flag.kind is bool:
        return bool(raw)
    if not flag.many:
        try:
            return flag.kind(raw)
        except ValueError:
            raise FlagError(f"--{flag.name} takes {_ONE_VALUE[flag.kind]}, got {raw!r}") from None
    items = [item.strip() for value in raw for item in value.split(",") if item.strip()]
    if flag.every is not None and flag.every[0] in items:
        return flag.every[1]
    try:
        return tuple(dict.fromkeys(flag.kind(item) for item in items))
    except ValueError:
        raise FlagError(
            f"--{flag.name} takes {flag.kind.__name__} values, got {' '.join(raw)!r}"
        ) from None


def overrides(values: Mapping[Flag, Any]) -> dict[str, Any]:
    """`given_values` as keyword arguments of the dataclass: field → value, with the flags of
    a `flags_of` field gathered into a dict of that field ("options.fresh_init" →
    {"options": {"fresh_init": ...}})."""
    kwargs: dict[str, Any] = {}
    for flag, value in values.items():
        for target in flag.targets:
            outer, _, inner = target.partition(".")
            if inner:
                kwargs.setdefault(outer, {})[inner] = value
            else:
                kwargs[target] = value
    return kwargs


def error_line(err: SettingError, flags: Sequence[Flag], args: argparse.Namespace) -> str:
    """A dataclass's complaint as one line naming the flag(s) of the field(s) at fault, with
    the values typed: `--remove_top_k 100 is invalid: k_percent must be in [0, 100), ...`.
    When several flags are at fault together, the ones the user gave are named."""
    at_fault = [flag for field in err.fields for flag in flags if field in flag.fields]
    at_fault = list(dict.fromkeys(at_fault))
    typed = [flag for flag in at_fault if getattr(args, flag.name, None) not in (None, False)]
    named = typed or at_fault
    message = str(err)
    if not named or any(f"--{flag.name}" in message for flag in named):
        return message
    parts = [
        f"--{flag.name} {_typed_text(getattr(args, flag.name))}"
        if flag in typed
        else f"--{flag.name}"
        for flag in named
    ]
    return f"{', '.join(parts)} {'is' if len(parts) == 1 else 'are'} invalid: {message}"


def _typed_text(raw: Any) -> str:
    if isinstance(raw, list):
        return " ".join(raw)
    return "" if raw is True else str(raw)
