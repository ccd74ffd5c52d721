"""`hybrid_rl.cli.flags`: flags are generated from the dataclass fields, so their names stay
the project's, and the defaults `--help` shows are the dataclasses' own (they cannot drift)."""

from __future__ import annotations

import dataclasses
import re

import pytest

from hybrid_rl.cli import build_parser, main
from hybrid_rl.cli.execution import Execution
from hybrid_rl.cli.flags import FlagError, error_line, field_flags, given_values
from hybrid_rl.cli.study import STUDY_FIELDS
from hybrid_rl.launch.options import SettingError
from hybrid_rl.launch.phase1_grid import Phase1Grid
from hybrid_rl.launch.phase2_grid import Phase2Grid
from hybrid_rl.launch.study import Study

EXECUTION = ["--workers", "--threads", "--launcher", "--ray_address", "--plot_only"]
PHASE1 = [
    "--quick",
    "--algo",
    "--env",
    "--remove_top_k",
    "--seed",
    "--reward_noise",
    "--removal",
    "--attack",
    "--attack_mode",
    "--attack_rate",
    "--attack_scale",
    "--total_steps",
    "--n_critics",
    "--precision",
    "--log_every",
    "--eval_every",
    "--eval_episodes",
    "--device",
    "--source",
    "--results_dir",
    "--plots_dir",
    "--reward_scale_data",
    "--seeds_per_process",
    *EXECUTION,
]
PHASE2 = [
    "--quick",
    "--algo",
    "--env",
    "--remove_top_k",
    "--bonus_type",
    "--phase2_preset",
    "--arms",
    "--fresh_init",
    "--target_reduce",
    "--actor_reduce",
    "--bonus_time",
    "--bonus_units",
    "--bonus_norm",
    "--bonus_schedule",
    "--exploration",
    "--critic_optimizer",
    "--iql_actor_lr",
    "--online_share",
    "--seed",
    "--total_steps",
    "--n_ensemble",
    "--bonus_coeff",
    "--online_ratio",
    "--log_every",
    "--eval_every",
    "--eval_episodes",
    "--device",
    "--results_dir",
    "--phase1_results_dir",
    "--plots_dir",
    *EXECUTION,
]
STUDY = [
    "--quick",
    "--algo",
    "--env",
    "--remove_top_k",
    "--seed",
    "--bonus_type",
    "--phase2_preset",
    "--arms",
    "--phase1_steps",
    "--seeds_per_process",
    "--online_steps",
    "--n_ensemble",
    "--bonus_coeff",
    "--online_ratio",
    "--eval_episodes",
    "--device",
    "--source",
    "--results_dir",
    "--phase2_results_dir",
    "--plots_dir",
    *EXECUTION,
    "--plan",
    "--plan_nodes",
    "--plan_cores",
]


def flags_of(command: str) -> list[str]:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices[command]
    return [s for a in sub._actions for s in a.option_strings if s.startswith("--")][1:]


@pytest.mark.parametrize(
    ("command", "flags"), [("phase1", PHASE1), ("phase2", PHASE2), ("study", STUDY)]
)
def test_the_flag_names_are_the_projects(command, flags):
    assert flags_of(command) == flags


def text(value) -> str:
    return ", ".join(map(str, value)) if isinstance(value, tuple) else str(value)


def shown_defaults(command: str, capsys, monkeypatch) -> dict[str, str]:
    """flag → the text inside `(default: ...)` of its help."""
    monkeypatch.setenv("COLUMNS", "1000")  # no line breaks inside the help texts
    with pytest.raises(SystemExit):
        main([command, "--help"])
    blocks = capsys.readouterr().out.split("\n  --")[1:]
    shown = {}
    for block in blocks:
        flat = " ".join(block.split())
        match = re.search(r"\(default: (.*)\)$", flat)
        if match:
            shown[flat.split()[0]] = match.group(1)
    return shown


def expected(default: object, quick: object) -> str:
    return text(default) + (
        f"; with --quick: {text(quick)}" if text(quick) != text(default) else ""
    )


@pytest.mark.parametrize(("command", "grid"), [("phase1", Phase1Grid), ("phase2", Phase2Grid)])
def test_help_shows_each_grid_fields_default_and_its_quick_default(
    command, grid, capsys, monkeypatch
):
    shown = shown_defaults(command, capsys, monkeypatch)
    quick = grid.quick()
    on_the_command_line = [f for f in dataclasses.fields(grid) if f.metadata["flag"]]
    assert len(on_the_command_line) >= 13
    for field in on_the_command_line:
        if field.metadata["shown"]:  # a default in words (the Phase II options: "the preset's")
            assert shown[field.metadata["flag"]] == field.metadata["shown"]
            continue
        assert shown[field.metadata["flag"]] == expected(field.default, getattr(quick, field.name))
    for field in dataclasses.fields(Execution):
        if field.metadata["shown"]:
            assert shown[field.metadata["flag"]] == field.metadata["shown"]


def test_study_help_shows_the_defaults_of_the_study_it_creates(capsys, monkeypatch):
    shown = shown_defaults("study", capsys, monkeypatch)
    full, quick = Study.create(), Study.create(quick=True)
    for flag, first, second in STUDY_FIELDS:
        phase, field = ("phase2", second) if second else ("phase1", first)
        default = getattr(getattr(full, phase), field)
        assert shown[flag] == expected(default, getattr(getattr(quick, phase), field)), flag
    assert shown["plots_dir"] == expected(full.plots_dir, quick.plots_dir)


def test_every_grid_field_says_whether_it_is_a_flag():
    for grid in (Phase1Grid, Phase2Grid):
        for field in dataclasses.fields(grid):
            assert "flag" in field.metadata and "help" in field.metadata, field.name
    assert "tensorboard" not in {f.targets[0] for f in field_flags(Phase1Grid)}


def test_tuple_fields_become_list_flags_of_their_element_type():
    flags = {f.name: f for f in field_flags(Phase1Grid)}
    assert (flags["remove_top_k"].many, flags["remove_top_k"].kind) == (True, float)
    assert (flags["seed"].many, flags["seed"].kind) == (True, int)
    assert (flags["removal"].many, flags["removal"].kind) == (True, str)
    assert (flags["total_steps"].many, flags["total_steps"].kind) == (False, int)
    assert flags["algo"].every == ("all", ("cql", "iql", "bc", "td3bc"))


def test_only_the_flags_given_are_returned_converted():
    flags = field_flags(Phase2Grid)
    args = build_parser().parse_args(
        ["phase2", "--seed", "2,1", "2", "--bonus_type", "both", "--online_ratio", "0.25"]
    )
    values = {flag.name: value for flag, value in given_values(args, flags).items()}
    assert values == {"seed": (2, 1), "bonus_type": ("ensemble", "none"), "online_ratio": 0.25}
    with pytest.raises(FlagError, match="--n_ensemble takes an integer, got 'many'"):
        given_values(build_parser().parse_args(["phase2", "--n_ensemble", "many"]), flags)


def test_an_error_names_the_flags_the_user_gave_among_those_at_fault():
    flags = field_flags(Phase1Grid)
    fault = SettingError(("total_steps", "log_every", "eval_every"), "not a multiple")
    args = build_parser().parse_args(["phase1", "--log_every", "700"])
    assert error_line(fault, flags, args) == "--log_every 700 is invalid: not a multiple"
    none_given = build_parser().parse_args(["phase1"])
    assert error_line(fault, flags, none_given) == (
        "--total_steps, --log_every, --eval_every are invalid: not a multiple"
    )
