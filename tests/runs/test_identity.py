"""Which settings may differ when a run resumes: the fields marked EXECUTION, nothing else."""

from __future__ import annotations

import dataclasses

import pytest

from hybrid_rl.finetune_config import FinetuneConfig
from hybrid_rl.phase2_options import Phase2Options
from hybrid_rl.runs.identity import as_json, check_same_run, identity_conflict
from hybrid_rl.train import TrainConfig


def test_execution_settings_may_differ_including_nested_agent_ones():
    config = TrainConfig(algo="iql", total_steps=60_000)
    saved = as_json(config)
    saved |= {"device": "cuda", "results_dir": "elsewhere", "tensorboard": True}
    saved["agent"] = {**saved["agent"], "compile": not config.agent.compile}
    assert identity_conflict(config, saved) is None


def test_an_identity_setting_that_differs_is_named_with_both_values():
    config = TrainConfig(algo="iql", total_steps=60_000)
    saved = as_json(dataclasses.replace(config, seed=1))
    saved["agent"]["expectile"] = 0.9
    conflict = identity_conflict(config, saved)
    assert conflict == "agent.expectile 0.9 there, 0.7 asked; seed 1 there, 0 asked"
    with pytest.raises(ValueError, match="holds a run with other settings"):
        check_same_run(config, {"config": saved}, "results/x")


def test_phase2_may_move_its_phase1_folder_but_not_change_its_bonus():
    config = FinetuneConfig(online_steps=5_000)
    saved = as_json(config) | {"phase1_results_dir": "moved"}
    assert identity_conflict(config, saved) is None
    saved["bonus_coeff"] = 2.0
    assert identity_conflict(config, saved) == "bonus_coeff 2.0 there, 1.0 asked"


def test_a_setting_added_after_a_run_was_saved_counts_as_its_default():
    config = TrainConfig(algo="cql", total_steps=20_000)
    saved = as_json(config)
    del saved["attack"], saved["agent"]["cql_alpha"]  # as a config.json from before them
    assert identity_conflict(config, saved) is None
    attacked = dataclasses.replace(config, attack="obs")
    assert identity_conflict(attacked, saved) == "attack 'none' there, 'obs' asked"


def test_a_setting_added_after_a_run_started_reads_as_its_default():
    # A config.json written before the Phase II options and --n_critics existed.
    config = FinetuneConfig(online_steps=5_000)
    saved = as_json(config)
    for name in ("fresh_init", "target_reduce", "bonus_time", "keep_critic_optimizer"):
        del saved["options"][name]
    assert identity_conflict(config, saved) is None
    warmed = dataclasses.replace(config, options=Phase2Options(fresh_init="warmup:100"))
    assert identity_conflict(warmed, saved) == (
        "options.fresh_init 'random' there, 'warmup:100' asked"
    )
    phase1 = TrainConfig(algo="cql", total_steps=60_000)
    old = as_json(phase1)
    del old["n_critics"], old["agent"]["target_reduce"], old["agent"]["actor_reduce"]
    assert identity_conflict(phase1, old) is None
    assert identity_conflict(dataclasses.replace(phase1, n_critics=3), old) == (
        "agent.critic_members 2 there, 3 asked; n_critics 2 there, 3 asked"
    )


def test_a_phase2_config_saved_with_its_options_as_fields_is_still_the_same_run():
    # config.json files written before the options were one object hold them flat.
    config = FinetuneConfig(online_steps=5_000, options=Phase2Options(bonus_time="update"))
    flat = {k: v for k, v in as_json(config).items() if k != "options"}
    flat |= as_json(config)["options"]
    saved = FinetuneConfig.saved_identity({"config": flat})
    assert identity_conflict(config, saved) is None
    assert FinetuneConfig.from_saved(flat) == config
    spec = dataclasses.replace(config, options=Phase2Options())
    assert identity_conflict(spec, saved) == "options.bonus_time 'update' there, 'collect' asked"
