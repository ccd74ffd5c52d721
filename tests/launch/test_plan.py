"""The study's plan: its arithmetic against hand computations at known speeds, and the
schedule it simulates (order, prerequisites, slots)."""

from __future__ import annotations

import pytest

from hybrid_rl.launch import estimate
from hybrid_rl.launch.plan import PlannedRun, PlanOptions, StudyPlan, simulate
from hybrid_rl.launch.study import Study
from hybrid_rl.runs.spec import RunCost

HOUR = 3600.0


@pytest.fixture
def empty_caches(tmp_path, monkeypatch):
    monkeypatch.setenv("D4RL_DATASET_DIR", str(tmp_path / "d4rl"))
    monkeypatch.setenv("HYBRID_RL_DATA_DIR", str(tmp_path / "replicas"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def known_speeds(monkeypatch):
    monkeypatch.setattr(estimate, "UPDATES_PER_SECOND", {"cql": 10.0, "iql": 100.0})
    monkeypatch.setattr(estimate, "EVAL_SECONDS_PER_EPISODE", 0.5)
    monkeypatch.setattr(estimate, "RUN_START_SECONDS", 2.0)
    monkeypatch.setattr(estimate, "REPLICA_BUILD_SECONDS_PER_MILLION", 60.0)


def run(name: str, seconds: float, prerequisite: str | None = None) -> PlannedRun:
    cost = RunCost("Phase I" if prerequisite is None else "Phase II", "cql", "updates", False, 1, 1)
    return PlannedRun(name, cost, 1, seconds, prerequisite)


def test_a_free_slot_takes_the_first_run_whose_prerequisite_has_ended():
    runs = [run("a", 10), run("b", 1), run("c", 5, "a"), run("d", 5, "b")]
    # d overtakes c, which waits for a; on one slot the order is kept.
    assert simulate(runs, 2) == {"a": (0, 10), "b": (0, 1), "d": (1, 6), "c": (10, 15)}
    assert simulate(runs, 1) == {"a": (0, 10), "b": (10, 11), "c": (11, 16), "d": (16, 21)}
    assert simulate(runs, 4) == simulate(runs, 2)  # the chain a → c bounds it


def test_a_tiny_study_is_planned_as_computed_by_hand(empty_caches, known_speeds):
    # Two CQL cells (k 0 and 60), each a Phase I run and one Phase II run.
    study = Study.create(
        algos=("cql",),
        datasets=("halfcheetah-medium-v2",),
        k_percents=(0.0, 60.0),
        seeds=(0,),
        eval_episodes=2,
        phase1={"total_steps": 36_000},
        phase2={"online_steps": 24_000, "bonus_types": ("ensemble",)},
    )
    plan = StudyPlan.of(study.configs())
    # start + steps × updates per step / 10 updates/s + evaluations × 2 episodes × 0.5 s
    phase1 = 2 + 36_000 / 10 + (36_000 // 5_000 + 1) * 2 * 0.5  # 3,610 s
    phase2 = 2 + 24_000 * 1.5 / 10 + (24_000 // 5_000 + 1) * 2 * 0.5  # 3,607 s
    assert [r.seconds for r in plan.runs] == pytest.approx([phase1, phase1, phase2, phase2])
    assert plan.cpu_seconds == pytest.approx(2 * (phase1 + phase2))
    assert plan.longest_chain_seconds == pytest.approx(phase1 + phase2)
    replica = 60  # halfcheetah-medium (1M transitions) is not on disk
    assert plan.wall_seconds(1) == pytest.approx(replica + 2 * (phase1 + phase2))
    assert plan.wall_seconds(2) == pytest.approx(replica + phase1 + phase2)
    assert plan.wall_seconds(3) == pytest.approx(replica + phase1 + phase2)
    # Three slots: the bound is the chain, and the schedule meets it.
    assert plan.bound_seconds(3) == pytest.approx(replica + phase1 + phase2)

    lines = plan.lines(2, PlanOptions(plan_nodes=(1, 3), plan_cores=2))
    assert lines[0] == "Plan: 2 Phase I, 2 Phase II runs; nothing is run or written."
    assert "run does CQL 10, IQL 100 updates/s" in lines[1]
    rows = table_rows(lines)
    # Each run: 3,610 and 3,607 s; both phases' CPU-hours; the data come first.
    assert ["Phase I", "CQL", "2", "36,000 updates", "1.00", "8 × 2 episodes", "1.00"] in rows
    assert ["Phase II", "CQL", "2", "24,000 online steps", "1.50", "5 × 2 episodes", "1.00"] in rows
    assert ["Phase I", "CQL", "2", "72,000 updates", "2.0"] in rows
    assert ["Phase II", "CQL", "2", "48,000 online steps", "2.0"] in rows
    assert ["all", "", "4", "", "4.0"] in rows
    two_chains = f"{(replica + phase1 + phase2) / HOUR:.1f} h"
    assert ["this machine (2 workers)", "2", two_chains, two_chains] in rows
    assert ["1 node × 2 cores", "2", two_chains, two_chains] in rows
    assert ["3 nodes × 2 cores", "6", two_chains, two_chains] in rows
    assert any(line.startswith("data: halfcheetah-medium-v2 is not on disk") for line in lines)


def table_rows(lines: list[str]) -> list[list[str]]:
    """The cells of every Markdown table row in `lines`."""
    return [
        [cell.strip() for cell in line.strip("|").split("|")]
        for line in lines
        if line.startswith("| ")
    ]


@pytest.mark.parametrize("slots", [2, 8, 32, 72])
def test_the_full_study_never_starts_a_phase2_run_before_its_phase1_run_ends(empty_caches, slots):
    study = Study.create(
        algos=("cql", "iql"),
        datasets=("halfcheetah-medium-v2", "hopper-medium-v2"),
        phase2={"arms": ("spec:ensemble", "spec:none")},
    )
    plan = StudyPlan.of(study.configs())
    assert len(plan.runs) == 36 + 72
    times = simulate(plan.runs, slots)
    assert times.keys() == {r.name for r in plan.runs}
    for r in plan.runs:
        start, end = times[r.name]
        assert end - start == pytest.approx(r.seconds)
        if r.cost.phase == "Phase II":
            assert r.prerequisite is not None
            assert start >= times[r.prerequisite][1]
    # Never more runs at once than slots.
    for start, _ in times.values():
        assert sum(s <= start < e for s, e in times.values()) <= slots
    assert plan.wall_seconds(slots) >= plan.bound_seconds(slots) - 1e-6


def test_a_seed_group_is_planned_as_one_slot_and_counted_as_its_seeds(empty_caches, known_speeds):
    # Three IQL seeds of one cell in one process, then a Phase II run of each seed.
    study = Study.create(
        algos=("iql",),
        datasets=("halfcheetah-medium-v2",),
        k_percents=(0.0,),
        seeds=(0, 1, 2),
        eval_episodes=2,
        phase1={"total_steps": 10_000, "seeds_per_process": 3},
        phase2={"online_steps": 5_000, "bonus_types": ("ensemble",)},
    )
    plan = StudyPlan.of(study.configs())
    # The group: one start, its seeds' updates and evaluations one after the other.
    group = 2 + 3 * 10_000 / 100 + 3 * (10_000 // 5_000 + 1) * 2 * 0.5
    assert plan.runs[0].seconds == pytest.approx(group)
    # Every Phase II run waits for the group, through its own seed's folder.
    assert [r.prerequisite for r in plan.runs[1:]] == [plan.runs[0].name] * 3
    lines = plan.lines(2, PlanOptions(plan_nodes=(1,), plan_cores=2))
    assert lines[0] == "Plan: 3 Phase I, 3 Phase II runs; nothing is run or written."
    rows = table_rows(lines)
    assert ["Phase I", "IQL", "3", "10,000 updates", "1.00", "3 × 2 episodes"] in [
        row[:6] for row in rows
    ]
    assert ["Phase I", "IQL", "3", "30,000 updates"] in [row[:4] for row in rows]
