"""Replica cards: the summary of a reference build, and `hybrid-rl dataset verify` against it
(run as a user runs it: the installed console script, on a tiny real build)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from cli_runner import run_hybrid_rl

from hybrid_rl.behavior.replica import (
    REPLICA_RECIPE,
    build_replica,
    collect_transitions,
    default_transitions,
)
from hybrid_rl.behavior.replica_card import (
    read_replica_record,
    refresh_summary,
    replica_card_path,
    replica_record,
    write_replica_record,
)
from hybrid_rl.data.hdf5_format import write_d4rl_hdf5
from hybrid_rl.data.loader import load_dataset
from hybrid_rl.data.transitions import split_trajectories

DATASET = "hopper-random-v2"
TINY = {"n_transitions": 2_000, "seed": 0, "num_envs": 4}


def verify(*args: str, data_dir) -> subprocess.CompletedProcess:
    env = {"HYBRID_RL_OFFLINE": "1", "HYBRID_RL_DATA_DIR": str(data_dir)}
    return run_hybrid_rl("dataset", "verify", *args, env=env, timeout=900)


@pytest.fixture(scope="module")
def card(tmp_path_factory):
    """A card recording a tiny reference build of hopper-random-v2."""
    folder = tmp_path_factory.mktemp("card")
    reference = build_replica(DATASET, **TINY, path=folder / "reference.hdf5", progress=False)
    path = folder / "hopper_random.json"
    write_replica_record(path, replica_record(reference, DATASET))
    return path


def altered_card(card, tmp_path, change) -> str:
    content = json.loads(card.read_text())
    change(content["replica"]["summary"])
    altered = tmp_path / "altered.json"
    altered.write_text(json.dumps(content))
    return str(altered)


def test_card_records_the_build_and_its_summary(card):
    record = read_replica_record(card, DATASET)
    assert {k: record[k] for k in TINY} == TINY
    assert record["recipe"] == REPLICA_RECIPE and len(record["sha256"]) == 64
    summary = record["summary"]
    transitions = load_dataset(card.parent / "reference.hdf5").transitions
    returns = split_trajectories(transitions).returns
    assert summary["transitions"] == 2_000 and summary["trajectories"] == len(returns)
    assert summary["terminals"] == int(transitions.terminals.sum()) > 0
    assert summary["return"]["q50"] == pytest.approx(float(np.median(returns)), rel=1e-12)
    assert summary["return"]["q05"] < summary["return"]["q95"]


def test_verify_builds_the_missing_replica_and_finds_it_matches(card, tmp_path):
    result = verify(DATASET, "--card", str(card), data_dir=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "building" in result.stdout
    assert "DIFFERS" not in result.stdout
    assert "the same bytes" in result.stdout
    assert "result: the local build matches the card" in result.stdout
    assert list(tmp_path.glob("hopper-random-v2-replica-n2000-s0-e4.hdf5"))


def test_verify_names_every_statistic_that_differs(card, tmp_path):
    def change(summary):
        summary["trajectories"] += 1
        summary["return"]["min"] *= 1.01
        summary["return"]["mean"] *= 1 + 1e-9  # inside the default tolerance

    result = verify(
        DATASET,
        "--card",
        altered_card(card, tmp_path, change),
        "--file",
        str(card.parent / "reference.hdf5"),
        data_dir=tmp_path,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    differing = [line.split()[0] for line in result.stdout.splitlines() if "DIFFERS" in line]
    assert differing == ["trajectories", "return.min"]
    assert "result: 2 line(s) differ from the card" in result.stdout


def test_verify_compares_the_histogram_count_by_count(card, tmp_path):
    def move_one_trajectory(summary):
        counts = summary["normalized_return_histogram"]["counts"]
        filled = next(i for i, count in enumerate(counts) if count)
        counts[filled] -= 1
        counts[filled + 1] += 1

    reference = str(card.parent / "reference.hdf5")
    altered = altered_card(card, tmp_path, move_one_trajectory)
    result = verify(DATASET, "--card", altered, "--file", reference, data_dir=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    differing = [line.split()[0] for line in result.stdout.splitlines() if "DIFFERS" in line]
    assert len(differing) == 2 and all(name.startswith("histogram[") for name in differing)


def test_refresh_adds_a_missing_histogram_and_changes_nothing_else(card, tmp_path):
    def drop_histogram(summary):
        del summary["normalized_return_histogram"]

    old = Path(altered_card(card, tmp_path, drop_histogram))
    reference = card.parent / "reference.hdf5"
    record = refresh_summary(old, DATASET, reference)
    assert record == read_replica_record(card, DATASET)
    assert list(record["summary"])[-1] == "normalized_return_histogram"

    other = build_replica(DATASET, 2_000, seed=1, path=tmp_path / "s1.hdf5", num_envs=4)
    with pytest.raises(ValueError, match="sha256"):
        refresh_summary(old, DATASET, other)


def test_refresh_refuses_to_change_a_recorded_figure(card, tmp_path):
    def change(summary):
        summary["return"]["mean"] *= 1 + 1e-12

    with pytest.raises(ValueError, match="changes return"):
        refresh_summary(
            Path(altered_card(card, tmp_path, change)), DATASET, card.parent / "reference.hdf5"
        )


def test_verify_tolerance_is_a_flag(card, tmp_path):
    def change(summary):
        summary["return"]["mean"] *= 1.001

    altered = altered_card(card, tmp_path, change)
    reference = str(card.parent / "reference.hdf5")
    strict = verify(DATASET, "--card", altered, "--file", reference, data_dir=tmp_path)
    loose = verify(
        DATASET, "--card", altered, "--file", reference, "--rtol", "0.01", data_dir=tmp_path
    )
    assert (strict.returncode, loose.returncode) == (1, 0)


def test_verify_flags_data_of_another_seed(card, tmp_path):
    other = build_replica(DATASET, 2_000, seed=1, path=tmp_path / "s1.hdf5", num_envs=4)
    result = verify(DATASET, "--card", str(card), "--file", str(other), data_dir=tmp_path)
    assert result.returncode == 1
    assert "return.mean" in "\n".join(x for x in result.stdout.splitlines() if "DIFFERS" in x)


def test_verify_flags_a_file_an_older_recipe_built(card, tmp_path):
    arrays = collect_transitions("Hopper-v4", None, 2_000, seed=0, num_envs=4, progress=False)
    old = write_d4rl_hdf5(
        tmp_path / "old.hdf5",
        arrays,
        {"source": "replica", "dataset_id": DATASET, "env_id": "Hopper-v4"},
    )
    result = verify(DATASET, "--card", str(card), "--file", str(old), data_dir=tmp_path)
    assert result.returncode == 1
    recipe_line = next(x for x in result.stdout.splitlines() if x.startswith("recipe"))
    assert "none" in recipe_line and "DIFFERS" in recipe_line
    assert f"hybrid-rl dataset build {DATASET}" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["walker2d-medium-v2"], "valid ids"),
        (["hopper-medium-v2", "--card", "/nonexistent.json"], "no card /nonexistent.json"),
        (["hopper-medium-v2", "--rtol", "-1"], "--rtol"),
        (["hopper-medium-v2", "--file", "/nonexistent.hdf5"], "does not exist"),
    ],
)
def test_bad_input_is_a_one_line_error_with_exit_2(args, message, tmp_path):
    result = verify(*args, data_dir=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and message in result.stderr


def test_card_without_a_summary_says_how_to_write_one(tmp_path):
    bare = tmp_path / "bare.json"
    bare.write_text(json.dumps({"dataset": "hopper-random-v2 (replica)"}))
    result = verify(DATASET, "--card", str(bare), data_dir=tmp_path)
    assert result.returncode == 2
    assert f"hybrid-rl dataset card {DATASET}" in result.stderr


@pytest.mark.parametrize(
    "dataset",
    [
        "halfcheetah-medium-v2",
        "hopper-medium-v2",
        "halfcheetah-random-v2",
        "hopper-random-v2",
        "halfcheetah-medium-replay-v2",
        "hopper-medium-replay-v2",
        "hopper-medium-bimodal-v2",
        "hopper-expert-v2",
        "hopper-medium-expert-v2",
        "halfcheetah-expert-v2",
        "halfcheetah-medium-expert-v2",
    ],
)
def test_every_shipped_replica_card_records_a_current_build(dataset):
    record = read_replica_record(replica_card_path(dataset), dataset)
    assert record["recipe"] == REPLICA_RECIPE, (
        f"the replica recipe changed: `hybrid-rl dataset card {dataset}` rewrites the card"
    )
    assert (record["n_transitions"], record["seed"]) == (default_transitions(dataset), 0)
    summary = record["summary"]
    assert summary["transitions"] == default_transitions(dataset)
    histogram = summary["normalized_return_histogram"]
    counted = sum(histogram["counts"]) + histogram["underflow"] + histogram["overflow"]
    assert counted == summary["trajectories"]
