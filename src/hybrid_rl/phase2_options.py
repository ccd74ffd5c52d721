"""The Phase II options beyond the spec (DESIGN.md §6), as one frozen typed object.

Each option is one field of `Phase2Options`, declared with `phase2_option`: its default (the
spec's behaviour), its flag and help, the check of its value alone, and the token naming it in
a run name. The command line, the checks, the run names and the report labels all read that
declaration; adding an option is one field here plus the code that consumes it. Values are
kept as the user types them (and as config.json saves them); the parsed values the run needs
are properties, parsed here and nowhere else.

The presets are named sets of options; why the `enoto` preset holds each of its values is in
docs/phase2-options.md.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from hybrid_rl.algos.bonus import BONUS_NORMS, BONUS_TIMES, BONUS_UNITS, parse_schedule
from hybrid_rl.algos.ensemble import PHASE1_MEMBERS
from hybrid_rl.algos.exploration import parse_exploration
from hybrid_rl.algos.reductions import Reduction
from hybrid_rl.algos.warmup import parse_fresh_init
from hybrid_rl.online_collection import parse_online_share

# "shuffled" is a control: the ensemble bonus's values, permuted across online transitions.
BonusType = Literal["ensemble", "none", "shuffled"]
BONUS_TYPES: tuple[BonusType, ...] = get_args(BonusType)
SPEC_BONUS_TYPES: tuple[BonusType, ...] = ("ensemble", "none")  # the spec's two arms


def phase2_option(
    default: Any,
    flag: str,
    help: str,
    shown: str,
    token: Callable[[Any], str],
    check: Callable[[Any], object] | None = None,
    *,
    flag_values: Mapping[str, Any] | None = None,
    algos: tuple[str, ...] | None = None,
) -> Any:
    """A field of `Phase2Options`: `--flag` with `help`, its default in words (`shown`: "the
    preset's (spec: ...)"), `token(value)` naming a value off the default in run names, and
    `check(value)` raising ValueError for a value no run can use. `flag_values` maps the
    words the flag takes to the field's values (when they differ); `algos`: the algorithms it
    applies to (None: all; elsewhere it reads as its default)."""
    metadata = {
        "flag": flag,
        "help": help,
        "shown": shown,
        "token": token,
        "check": check,
        "flag_values": flag_values,
        "algos": algos,
    }
    return field(default=default, metadata=metadata)


def _choice(name: str, allowed: tuple[str, ...]) -> Callable[[Any], None]:
    def check(value: Any) -> None:
        if value not in allowed:
            raise ValueError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")

    return check


def _named(name: str, parse: Callable[[Any], object]) -> Callable[[Any], None]:
    """`parse`'s complaint prefixed with the option's name."""

    def check(value: Any) -> None:
        try:
            parse(value)
        except ValueError as err:
            raise ValueError(f"{name}: {err}") from None

    return check


_REDUCTION_TOKENS = {"min_all": "min", "min_loaded": "minl", "mean": "mean"}


def _reduction_token(prefix: str) -> Callable[[Any], str]:
    def token(value: Any) -> str:
        reduction = Reduction.parse(value)
        if reduction.kind == "redq":
            text = f"redq{int(reduction.parameter)}"
        elif reduction.kind == "mean_minus_std":
            text = f"lcb{reduction.parameter:g}"
        else:
            text = _REDUCTION_TOKENS[reduction.kind]
        return prefix + text

    return token


def _check_actor_lr(value: float | None) -> None:
    if value is not None and not (math.isfinite(value) and value > 0):
        raise ValueError(f"iql_actor_lr must be finite and > 0, got {value}")


def _online_share_token(value: str) -> str:
    steps = parse_online_share(value)
    return "shuni" if steps is None else f"shlin{steps}"


_REDUCTION_FORMS = "min_all | min_loaded | redq:M | mean | mean_minus_std:β"


@dataclass(frozen=True)
class Phase2Options:
    """The Phase II options; every default is the spec."""

    fresh_init: str = phase2_option(
        "random",
        "fresh_init",
        "random | warmup:N | phase1: the fresh critic members start random, are fitted on "
        "the offline data for N updates first, or are trained in Phase I (run it with "
        "--n_critics equal to --n_ensemble)",
        "the preset's (spec: random)",
        lambda v: "p1init" if v == "phase1" else f"warm{parse_fresh_init(v)[1]}",
        parse_fresh_init,
    )
    target_reduce: str = phase2_option(
        "min_all",
        "target_reduce",
        f"{_REDUCTION_FORMS}: how the members' Q make the TD (IQL: V's) target",
        "the preset's (spec: min_all)",
        _reduction_token("t"),
        _named("target_reduce", Reduction.parse),
    )
    # None: the algorithm's own (min_all; TD3+BC: member 0)
    actor_reduce: str | None = phase2_option(
        None,
        "actor_reduce",
        f"{_REDUCTION_FORMS}: how the members' Q make the actor's objective (IQL: its advantage)",
        "the preset's (spec: min_all; TD3+BC: member 0)",
        _reduction_token("a"),
        _named("actor_reduce", lambda v: v is None or Reduction.parse(v)),
    )
    bonus_time: str = phase2_option(
        "collect",
        "bonus_time",
        "collect | update: the bonus stored at collection, or recomputed on every batch's "
        "online rows with the current critic",
        "the preset's (spec: collect)",
        lambda v: "upd",
        _choice("bonus_time", BONUS_TIMES),
    )
    bonus_units: str = phase2_option(
        "q",
        "bonus_units",
        "q | per_step: the std of Q as is, or times 1 − γ",
        "the preset's (spec: q)",
        lambda v: "ps",
        _choice("bonus_units", BONUS_UNITS),
    )
    bonus_norm: str = phase2_option(
        "none",
        "bonus_norm",
        "none | running: divide the disagreement by its running population std (RND-style)",
        "the preset's (spec: none)",
        lambda v: "norm",
        _choice("bonus_norm", BONUS_NORMS),
    )
    bonus_schedule: str = phase2_option(
        "const",
        "bonus_schedule",
        "const | linear:T: λ kept, or decayed linearly to 0 over T online steps",
        "the preset's (spec: const)",
        lambda v: f"lin{parse_schedule(v)}",
        _named("bonus_schedule", parse_schedule),
    )
    exploration: str = phase2_option(
        "reward_bonus",
        "exploration",
        "reward_bonus | ucb:K: the bonus on the reward, or no bonus and the action chosen "
        "among K policy samples by mean Q + λ·std Q",
        "the preset's (spec: reward_bonus)",
        lambda v: f"ucb{parse_exploration(v)}",
        _named("exploration", parse_exploration),
    )
    keep_critic_optimizer: bool = phase2_option(
        False,
        "critic_optimizer",
        "fresh | phase1: a fresh Adam for the critic, or the Phase I Adam moments kept for "
        "the loaded members",
        "the preset's (spec: fresh)",
        lambda v: "keepopt",
        flag_values={"fresh": False, "phase1": True},
    )
    # None: the Phase I actor_lr (3e-4), constant
    iql_actor_lr: float | None = phase2_option(
        None,
        "iql_actor_lr",
        "IQL's online actor learning rate, constant (the IQL authors' fine-tuning)",
        "the preset's (spec: Phase I's actor_lr, 3e-4)",
        lambda v: f"alr{v:g}",
        _check_actor_lr,
        algos=("iql",),
    )
    online_share: str = phase2_option(
        "const",
        "online_share",
        "const | linear:T | uniform: the --online_ratio share of each batch from the online "
        "buffer from the first update, reached linearly over the first T online steps, or "
        "each row drawn uniformly over the dataset's and the buffer's rows (d3rlpy's "
        "fit_online)",
        "the preset's (spec: const)",
        _online_share_token,
        _named("online_share", parse_online_share),
    )

    def check(self, n_ensemble: int, bonus_type: str) -> None:
        """ValueError for options no run with `n_ensemble` members and `bonus_type` can use:
        each option alone (its message starts with its name), then combinations."""
        kind, _ = self.fresh_members
        if kind == "warmup" and n_ensemble <= PHASE1_MEMBERS:
            raise ValueError(
                f"fresh_init {self.fresh_init} warms up fresh members, but n_ensemble "
                f"{n_ensemble} has none (members 0-1 come from Phase I); use "
                f"n_ensemble > {PHASE1_MEMBERS} or fresh_init random"
            )
        for name in ("target_reduce", "actor_reduce"):
            text = getattr(self, name)
            if text is None:
                continue
            try:
                Reduction.parse(text).check_members(n_ensemble)
            except ValueError as err:
                raise ValueError(f"{name}: {err}") from None
        for f in dataclasses.fields(self):
            if f.metadata["check"] is not None:
                f.metadata["check"](getattr(self, f.name))
        if self.ucb_samples is not None:
            if bonus_type == "shuffled":
                raise ValueError(
                    "exploration ucb:K selects actions by the members' disagreement and adds "
                    "no reward bonus, so bonus_type shuffled means nothing with it; use "
                    "bonus_type ensemble (UCB with λ) or none (λ = 0)"
                )
            off = [
                name
                for name in ("bonus_time", "bonus_units", "bonus_norm")
                if getattr(self, name) != getattr(SPEC, name)
            ]
            if off:
                raise ValueError(
                    f"exploration ucb:K adds no reward bonus, so {', '.join(off)} cannot "
                    "apply; leave them at their defaults (bonus_schedule does apply: to λ)"
                )

    # The parsed values the run uses.
    @property
    def fresh_members(self) -> tuple[str, int]:
        """(random | warmup | phase1, warm-up updates) of `fresh_init`."""
        return parse_fresh_init(self.fresh_init)

    @property
    def ucb_samples(self) -> int | None:
        """K of `exploration = ucb:K`; None with a reward bonus."""
        return parse_exploration(self.exploration)

    @property
    def schedule_steps(self) -> int | None:
        """T of `bonus_schedule = linear:T`; None for const."""
        return parse_schedule(self.bonus_schedule)

    def for_algo(self, algo: str) -> Phase2Options:
        """The options as they apply to `algo`: one that does not apply reads as its default."""
        unused: dict[str, Any] = {
            f.name: f.default
            for f in dataclasses.fields(self)
            if f.metadata["algos"] is not None and algo not in f.metadata["algos"]
        }
        return dataclasses.replace(self, **unused)

    def tokens(self) -> list[str]:
        """A short, file-name-safe token for each option off its default, in field order."""
        return [
            f.metadata["token"](getattr(self, f.name))
            for f in dataclasses.fields(self)
            if getattr(self, f.name) != f.default
        ]

    @classmethod
    def from_flags(
        cls, given: Mapping[str, Any], base: Phase2Options | None = None
    ) -> Phase2Options:
        """`base` (default: the spec) with the options given as flag values (field name ->
        value as typed); ValueError naming the flag's words when a value is not one of them."""
        values = {}
        for f in dataclasses.fields(cls):
            if f.name not in given:
                continue
            value, words = given[f.name], f.metadata["flag_values"]
            if words is not None:
                if value not in words:
                    raise ValueError(
                        f"{f.metadata['flag']} must be {' or '.join(words)}, got {value!r}"
                    )
                value = words[value]
            values[f.name] = value
        return dataclasses.replace(base or cls(), **values)


SPEC = Phase2Options()
# Named sets of options. "spec" is DESIGN.md §6 as specified (all defaults); "enoto" is the
# best-supported configuration we know of, each value for a published reason
# (docs/phase2-options.md, "The enoto preset, value by value").
PHASE2_PRESETS: dict[str, Phase2Options] = {
    "spec": SPEC,
    "enoto": Phase2Options(
        fresh_init="warmup:5000",
        target_reduce="redq:2",
        actor_reduce="mean",
        bonus_time="update",
        bonus_units="per_step",
        bonus_norm="running",
        keep_critic_optimizer=True,
    ),
}


def preset_options(preset: str) -> Phase2Options:
    """The options of a preset; ValueError naming the presets when unknown."""
    if preset not in PHASE2_PRESETS:
        raise ValueError(
            f"unknown Phase II preset {preset!r}; choose one of {', '.join(PHASE2_PRESETS)}"
        )
    return PHASE2_PRESETS[preset]


def variant(options: Phase2Options, n_ensemble: int, default_members: int) -> str:
    """Empty for the spec; a preset's name when the options are exactly that preset's; else
    the tokens of each option off its default (e.g. "warm2000-tredq2-upd"). A critic of other
    than `default_members` members adds "m{N}" first, so the 2-member no-bonus reference is
    not the spec's no-bonus run ("none_m2")."""
    members = [] if n_ensemble == default_members else [f"m{n_ensemble}"]
    for name, preset in PHASE2_PRESETS.items():
        if options == preset:
            return "-".join(members + ([] if name == "spec" else [name]))
    return "-".join(members + options.tokens())


def variant_label(variant_name: str) -> str:
    """A variant in words: "as specified", "enoto preset", or its option tokens."""
    if not variant_name:
        return "as specified"
    preset = variant_name.rsplit("-", 1)[-1]
    return f"{variant_name} preset" if preset in PHASE2_PRESETS else variant_name
