"""The Phase II options object: one declaration per option gives its flag, its check, its
run-name token and its label; presets and parsed values."""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass

import pytest

from hybrid_rl.cli.flags import add_flags, field_flags
from hybrid_rl.finetune_config import FinetuneConfig
from hybrid_rl.phase2_options import (
    PHASE2_PRESETS,
    Phase2Options,
    phase2_option,
    variant,
    variant_label,
)


def _positive(value: float | None) -> None:
    if value is not None and value <= 0:
        raise ValueError(f"toy_clip must be > 0, got {value}")


@dataclass(frozen=True)
class ToyOptions(Phase2Options):
    """The options with one toy option added: the one declaration below is all it takes."""

    toy_clip: float | None = phase2_option(
        None,
        "toy_clip",
        "clip the toy bonus at this value, > 0",
        "the preset's (spec: no clip)",
        lambda v: f"clip{v:g}",
        _positive,
    )


def test_a_new_option_gets_its_flag_check_token_and_label_from_its_declaration():
    flag = field_flags(ToyOptions)[-1]
    assert (flag.name, flag.kind, flag.fields) == ("toy_clip", float, ("toy_clip",))
    parser = argparse.ArgumentParser()
    add_flags(parser, [flag], ToyOptions())
    assert "clip the toy bonus at this value, > 0 (default: the preset's (spec: no clip))" in (
        " ".join(parser.format_help().split())
    )
    assert ToyOptions.from_flags({"toy_clip": 2.5}).toy_clip == 2.5
    with pytest.raises(ValueError, match="toy_clip must be > 0, got -1"):
        ToyOptions(toy_clip=-1).check(3, "ensemble")
    clipped = FinetuneConfig(options=ToyOptions(toy_clip=2.5, bonus_time="update"))
    assert clipped.variant == "upd-clip2.5" == variant(clipped.options, 3, 3)
    assert clipped.run_name == "ft_iql_halfcheetah-medium-v2_k0_noise0_ensemble_upd-clip2.5_s0"
    assert clipped.arm_label == "ensemble (upd-clip2.5)"
    assert FinetuneConfig(options=ToyOptions()).run_name == FinetuneConfig().run_name


def test_every_option_declares_a_flag_a_shown_default_and_a_token():
    flags = {flag.fields[0]: flag for flag in field_flags(Phase2Options)}
    assert list(flags) == [f.name for f in dataclasses.fields(Phase2Options)]
    assert flags["keep_critic_optimizer"].name == "critic_optimizer"
    assert flags["keep_critic_optimizer"].kind is str  # it takes fresh | phase1
    enoto = PHASE2_PRESETS["enoto"]
    assert enoto.tokens() == ["warm5000", "tredq2", "amean", "upd", "ps", "norm", "keepopt"]
    assert variant(enoto, 3, 3) == "enoto" and variant_label("enoto") == "enoto preset"
    assert variant(PHASE2_PRESETS["spec"], 2, 3) == "m2" and variant_label("") == "as specified"


def test_flag_words_become_typed_values_and_other_words_are_refused():
    assert Phase2Options.from_flags({"keep_critic_optimizer": "phase1"}).keep_critic_optimizer
    with pytest.raises(ValueError, match="critic_optimizer must be fresh or phase1, got 'adam'"):
        Phase2Options.from_flags({"keep_critic_optimizer": "adam"})
    options = Phase2Options(fresh_init="warmup:200", exploration="ucb:4", bonus_schedule="linear:9")
    assert (options.fresh_members, options.ucb_samples, options.schedule_steps) == (
        ("warmup", 200),
        4,
        9,
    )


def test_an_option_for_one_algorithm_reads_as_its_default_for_the_others():
    options = Phase2Options(iql_actor_lr=1e-4)
    assert options.for_algo("iql") == options
    assert options.for_algo("cql") == Phase2Options()
