"""One report for a whole study: the Phase I section, then the Phase II section.

Figures go to `plots_dir/phase1/` and `plots_dir/phase2/`, the report to `plots_dir/report.md`
and, self-contained with the figures embedded, `plots_dir/report.html`.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

from hybrid_rl.report.document import write_html
from hybrid_rl.report.report import Phase1Outputs, phase1_section, write_markdown
from hybrid_rl.report.report_phase2 import Phase2Outputs, phase2_section


@dataclass(frozen=True)
class StudyOutputs:
    report: Path
    phase1: Phase1Outputs
    phase2: Phase2Outputs
    html: Path | None = None


def write_study_outputs(
    phase1_results_dir: str | os.PathLike[str],
    phase2_results_dir: str | os.PathLike[str],
    plots_dir: str | os.PathLike[str],
    phase1_runs: Collection[str],
    phase2_runs: Collection[str],
    title: str,
    intro: Sequence[str] = (),
    command: str | None = None,
) -> StudyOutputs:
    """Plots of the named Phase I and Phase II runs, and `plots_dir/report.md` and
    `plots_dir/report.html` holding both sections under `title` and the `intro` paragraphs;
    `command` (default: this process's command line) is named in the HTML."""
    plots_dir = Path(plots_dir)
    phase1, phase1_text = phase1_section(
        phase1_results_dir, plots_dir / "phase1", plots_dir, phase1_runs
    )
    phase2, phase2_text = phase2_section(
        phase2_results_dir, plots_dir / "phase2", plots_dir, phase1_results_dir, phase2_runs
    )
    lines = [f"# {title}", ""]
    for paragraph in intro:
        lines += [paragraph, ""]
    text = "\n".join([*lines, _demoted(phase1_text), _demoted(phase2_text)])
    report = plots_dir / "report.md"
    write_markdown(report, text)
    sections = [s for s in (phase1.section, phase2.section) if s is not None]
    html = write_html(plots_dir / "report.html", title, intro, sections, command)
    return StudyOutputs(report, phase1, phase2, html)


def _demoted(markdown: str) -> str:
    """Every heading one level deeper, so each phase's report becomes a section."""
    return (
        "\n".join(f"#{line}" if line.startswith("#") else line for line in markdown.splitlines())
        + "\n"
    )
