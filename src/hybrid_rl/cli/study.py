"""`hybrid-rl study`: Phase I then Phase II from one set of flags, then one report."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from hybrid_rl.cli.execution import (
    EXECUTION_FLAGS,
    Execution,
    checked,
    execution_from_args,
    print_estimate,
)
from hybrid_rl.cli.flags import (
    Flag,
    add_flags,
    add_quick_flag,
    field_flags,
    flag_of,
    given_values,
    overrides,
)
from hybrid_rl.launch.options import SettingError
from hybrid_rl.launch.phase1_grid import Phase1Grid
from hybrid_rl.launch.phase2_grid import Phase2Grid
from hybrid_rl.launch.plan import PlanOptions
from hybrid_rl.launch.study import Study
from hybrid_rl.runs.spec import RunSpec

# The grid fields the study exposes: (flag, Phase I field, Phase II field), None where the
# flag leaves that grid alone. A flag setting both grids shows the Phase II field's help, as
# the study's values must suit the fine-tuning too; defaults are read from `Study.create()`.
STUDY_FIELDS: tuple[tuple[str, str | None, str | None], ...] = (
    ("algo", "algos", "algos"),
    ("env", "datasets", "datasets"),
    ("remove_top_k", "k_percents", "k_percents"),
    ("seed", "seeds", "seeds"),
    ("bonus_type", None, "bonus_types"),
    ("phase2_preset", None, "phase2_presets"),
    ("arms", None, "arms"),
    ("phase1_steps", "total_steps", None),
    ("seeds_per_process", "seeds_per_process", None),
    ("online_steps", None, "online_steps"),
    ("n_ensemble", None, "n_ensemble"),
    ("bonus_coeff", None, "bonus_coeff"),
    ("online_ratio", None, "online_ratio"),
    ("eval_episodes", "eval_episodes", "eval_episodes"),
    ("device", "device", "device"),
    ("source", "source", None),
    ("results_dir", "results_dir", None),
    ("phase2_results_dir", None, "results_dir"),
)


def _study_flags() -> list[Flag]:
    flags = []
    for name, first, second in STUDY_FIELDS:
        grids = (("phase1", Phase1Grid, first), ("phase2", Phase2Grid, second))
        sets = [(phase, grid, field) for phase, grid, field in grids if field is not None]
        _, owner, field = sets[-1]  # the Phase II field's help when the flag sets both
        targets = tuple(f"{phase}.{field}" for phase, _, field in sets)
        flag = flag_of(owner, field, name, targets)
        if name == "arms":  # the study has its own default arms: show them, not the grid's
            flag = dataclasses.replace(flag, shown=None)
        flags.append(flag)
    return flags + field_flags(Study)  # --plots_dir


STUDY_FLAGS = _study_flags()
PLAN_FLAGS = field_flags(PlanOptions)


def add_study_command(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "study",
        help="Phase I then Phase II for one algo and env, then figures and one report "
        "(start here: `hybrid-rl study --quick`)",
        description="The whole study in one command: build or load the dataset, train the "
        "Phase I runs, fine-tune each online in every arm (by default the ensemble bonus and no "
        "bonus as specified, and the enoto preset; a Phase II "
        "run starts as soon as its Phase I run ends), then write the figures and one "
        "report.md with both phases. Every value is checked first, then a wall-time estimate "
        "is printed; finished runs are skipped, so an interrupted study resumes. With --plan, "
        "only the study's plan is printed: runs, steps, CPU-hours and wall time here and on "
        "clusters of --plan_nodes nodes.",
    )
    default, quick = Study.create(), Study.create(quick=True)
    add_quick_flag(parser, STUDY_FLAGS, default, quick)
    add_flags(parser, STUDY_FLAGS, default, quick)
    add_flags(parser, EXECUTION_FLAGS, Execution())
    add_flags(parser, PLAN_FLAGS, PlanOptions())
    parser.set_defaults(func=run_study_command)


def study_from_args(args: argparse.Namespace) -> Study:
    """The study the `study` flags ask for: `Study.create` with only the flags given."""
    shared: dict[str, Any] = {}
    phases: dict[str, dict[str, Any]] = {"phase1": {}, "phase2": {}}
    plots_dir = None
    for flag, value in given_values(args, STUDY_FLAGS).items():
        if flag.targets == ("plots_dir",):
            plots_dir = value
        elif len(flag.targets) == 2 and len(set(flag.fields)) == 1:
            shared[flag.fields[0]] = value
        else:
            for target in flag.targets:
                phase, field = target.split(".")
                phases[phase][field] = value
    return Study.create(args.quick, plots_dir, phases["phase1"], phases["phase2"], **shared)


def _checked_study(
    args: argparse.Namespace,
) -> tuple[Study, list[RunSpec], Execution, PlanOptions]:
    study = study_from_args(args)
    plan_values = overrides(given_values(args, PLAN_FLAGS))
    plan = PlanOptions(**plan_values)
    if not plan.plan and plan_values.keys() - {"plan"}:
        # They only shape the plan: without --plan they would be silently ignored.
        raise SettingError("plan_nodes", "--plan_nodes and --plan_cores only apply with --plan")
    return study, study.validate(), execution_from_args(args), plan


def run_study_command(args: argparse.Namespace) -> int:
    from hybrid_rl.launch.executor import default_workers
    from hybrid_rl.launch.plan import StudyPlan
    from hybrid_rl.launch.study import run_study, summary_lines

    ready = checked("study", args, [*STUDY_FLAGS, *PLAN_FLAGS], lambda: _checked_study(args))
    if ready is None:
        return 2
    study, configs, execution, plan = ready
    if plan.plan:
        for line in StudyPlan.of(configs).lines(execution.workers or default_workers(), plan):
            print(line)
        return 0
    if not execution.plot_only:
        phase1_runs, phase2_runs = len(study.phase1.expand()), len(study.phase2.expand())
        headline = f"study: {phase1_runs} Phase I + {phase2_runs} Phase II runs"
        print_estimate(headline, configs, execution)
    result = run_study(
        study,
        execution.workers,
        execution.threads,
        plot_only=execution.plot_only,
        launcher=execution.remote_launcher(),
    )
    for line in summary_lines(result):
        print(line)
    return 1 if result.summary is not None and result.summary.count("failed") else 0
