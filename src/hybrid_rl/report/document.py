"""A results report as data (sections of sentences, tables and figures), rendered both as
report.md and as a self-contained report.html.

report.html is one file: figures are embedded as base64 PNGs, tables sort by a click on their
header (a few lines of vanilla JavaScript, no library), every number in a table links to the
list of run folders it was computed from, and the page names the command and the commit that
produced it (and the commits recorded in the runs' config.json).
"""

from __future__ import annotations

import base64
import html
import os
import re
import shlex
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from hybrid_rl.atomic_io import atomic_write
from hybrid_rl.provenance import git_commit

if TYPE_CHECKING:  # plotting imports matplotlib, which the CLI should not load to start
    from hybrid_rl.report.plotting import PlotFile


@dataclass(frozen=True)
class TableRow:
    cells: tuple[str, ...]
    runs: tuple[Path, ...] = ()  # the run folders every number of the row comes from


@dataclass(frozen=True)
class Table:
    header: tuple[str, ...]
    numeric: tuple[bool, ...]  # right-aligned, sorted as numbers
    rows: tuple[TableRow, ...]
    title: str = ""
    note: str = ""  # definitions, printed under the table

    def markdown(self) -> list[str]:
        """The table as Markdown lines, header and alignment row included."""
        align = "|" + "|".join("---:" if n else "---" for n in self.numeric) + "|"
        lines = ["| " + " | ".join(self.header) + " |", align]
        lines += ["| " + " | ".join(row.cells) + " |" for row in self.rows]
        return lines


@dataclass(frozen=True)
class Section:
    """One phase's report: run counts, summary sentences, tables, definitions, left-out
    folders and figures."""

    title: str
    results_dir: Path
    statuses: tuple[str, ...]
    summary: tuple[str, ...]
    tables: tuple[Table, ...]
    definitions: tuple[str, ...]
    unreadable: tuple[str, ...]
    plots: tuple[PlotFile, ...]
    run_commits: tuple[str, ...] = field(default=())  # git commits recorded by the runs
    # What a reader came for, shown first: a short table and the figures of these kinds; the
    # wide tables then follow under "Diagnostic tables".
    glance: Table | None = None
    glance_figures: tuple[str, ...] = ()

    @property
    def glance_plots(self) -> tuple[PlotFile, ...]:
        return tuple(p for p in self.plots if p.kind in self.glance_figures)

    @property
    def later_plots(self) -> tuple[PlotFile, ...]:
        """The figures not already shown at a glance, for the figures sections."""
        return tuple(p for p in self.plots if p.kind not in self.glance_figures)

    @property
    def results_heading(self) -> str:
        return "Diagnostic tables" if self.glance is not None else "Results"

    def status_text(self) -> str:
        counts = Counter(self.statuses)
        return ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "none"


def section_markdown(section: Section, report_dir: Path) -> str:
    """The section as a Markdown document (figure links relative to `report_dir`)."""
    lines = [
        f"# {section.title}",
        "",
        f"Generated from the run folders in `{section.results_dir}` ({len(section.statuses)} "
        f"runs: {section.status_text()}).",
        "",
    ]
    if not section.statuses:
        lines += ["No run folder was found, so there is nothing to report yet.", ""]
    else:
        if section.glance is not None:
            lines += ["## At a glance", "", *section.glance.markdown(), ""]
            if section.glance.note:
                lines += [section.glance.note, ""]
            for plot in section.glance_plots:
                lines += _figure_markdown(plot, report_dir)
        lines += ["## Summary", ""]
        lines += [f"- {sentence}" for sentence in section.summary]
        lines += ["", f"## {section.results_heading}", ""]
        for table in section.tables:
            if table.title:
                lines += [f"**{table.title}**", ""]
            lines += [*table.markdown(), ""]
            if table.note:
                lines += [table.note, ""]
        lines += list(section.definitions)
    if section.unreadable:
        lines += ["", "## Run folders left out", ""]
        lines += [f"- {u}" for u in section.unreadable]
    for dataset in sorted({p.dataset for p in section.later_plots}):
        lines += ["", f"## Figures: {dataset}", ""]
        for plot in (p for p in section.later_plots if p.dataset == dataset):
            lines += _figure_markdown(plot, report_dir)
    return "\n".join(lines).rstrip() + "\n"


def _figure_markdown(plot: PlotFile, report_dir: Path) -> list[str]:
    png = os.path.relpath(plot.png, report_dir)
    pdf = os.path.relpath(plot.pdf, report_dir)
    return [f"![{plot.title}]({png})", "", f"[{plot.title} (PDF)]({pdf})", ""]


def write_text(path: Path, text: str) -> None:
    """Write a report atomically, readable by everyone."""

    def write(tmp: Path) -> None:
        tmp.write_text(text, encoding="utf-8")
        tmp.chmod(0o644)  # the temporary file is private (0600); a report is for reading

    atomic_write(path, write)


# The command being run, as the CLI received it (set by `reporting_command`); None: read
# this process's own command line.
_command: list[str] | None = None


@contextmanager
def reporting_command(argv: Sequence[str]) -> Iterator[None]:
    """Within this block, reports name `argv` as the command that produced them (the CLI
    wraps each command in it, so a report written by `main([...])` in-process names the
    command, not the process that called it)."""
    global _command
    previous, _command = _command, list(argv)
    try:
        yield
    finally:
        _command = previous


def invoking_command() -> str:
    """The command that is writing the report, as a shell would take it back: the one
    `reporting_command` set, else this process's command line."""
    if _command is not None:
        return shlex.join(_command)
    program = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python"
    if program in ("__main__.py", "-c", ""):
        program = "python -m hybrid_rl.cli"
    return shlex.join([program, *sys.argv[1:]])


_STYLE = """
body{font:15px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1200px;padding:0 1em;color:#222}
h1,h2,h3{line-height:1.2} table{border-collapse:collapse;margin:.5em 0 1em;font-size:13px}
th,td{border:1px solid #ccc;padding:3px 6px;vertical-align:top} th{background:#f2f2f2;
cursor:pointer;user-select:none} th.num,td.num{text-align:right} td a{color:inherit;
text-decoration:none;border-bottom:1px dotted #888} th[aria-sort=ascending]::after{content:" ▲"}
th[aria-sort=descending]::after{content:" ▼"} figure{margin:1em 0} figure img{max-width:100%;
border:1px solid #ddd} .prov{background:#f8f8f8;border:1px solid #ddd;padding:.5em 1em}
code{background:#f2f2f2;padding:0 3px} .runs li{font-family:monospace;font-size:12px}
.scroll{overflow-x:auto}
"""

# Click a header to sort its table by that column (numbers as numbers, "—" last); again to
# reverse. data-sort holds the sort value of each cell.
_SCRIPT = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  table.querySelectorAll("th").forEach(function (th, column) {
    th.addEventListener("click", function () {
      var ascending = th.getAttribute("aria-sort") !== "ascending";
      table.querySelectorAll("th").forEach(function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      var numeric = th.classList.contains("num");
      function key(row) {
        var value = row.cells[column].getAttribute("data-sort");
        if (!numeric) { return value; }
        var number = parseFloat(value);
        return isNaN(number) ? (ascending ? Infinity : -Infinity) : number;
      }
      rows.sort(function (a, b) {
        var x = key(a), y = key(b);
        var order = x < y ? -1 : x > y ? 1 : 0;
        return ascending ? order : -order;
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
});
"""


_LEADING_NUMBER = re.compile(r"[+-]?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?")


def _sort_value(text: str) -> str:
    """The number a cell starts with (a true minus read as "-", thousands separators
    dropped), else the text itself; "not reached" sorts above every number."""
    cleaned = text.replace("−", "-").replace(",", "")
    if cleaned.startswith("not reached"):
        return "1e300"
    match = _LEADING_NUMBER.match(cleaned)
    return match.group(0) if match else text


class _HtmlWriter:
    def __init__(self, report_dir: Path) -> None:
        self.report_dir = report_dir
        self.parts: list[str] = []
        self.sources: list[tuple[str, str, tuple[Path, ...]]] = []  # anchor, label, runs

    def add(self, text: str) -> None:
        self.parts.append(text)

    def source_id(self, label: str, runs: tuple[Path, ...]) -> str:
        anchor = f"src-{len(self.sources) + 1}"
        self.sources.append((anchor, label, runs))
        return anchor

    def table(self, table: Table, table_id: str, section: str) -> None:
        if table.title:
            self.add(f"<h4>{html.escape(table.title)}</h4>")
        self.add(f'<div class="scroll"><table class="sortable" id="{table_id}"><thead><tr>')
        for name, numeric in zip(table.header, table.numeric, strict=True):
            cls = ' class="num"' if numeric else ""
            self.add(f"<th{cls}>{html.escape(name)}</th>")
        self.add("</tr></thead><tbody>")
        for row in table.rows:
            label = f"{section}, {table.title or 'results'}: " + " · ".join(
                text for text, numeric in zip(row.cells, table.numeric, strict=True) if not numeric
            )
            anchor = self.source_id(label, row.runs) if row.runs else None
            self.add("<tr>")
            for text, numeric in zip(row.cells, table.numeric, strict=True):
                sort = html.escape(_sort_value(text) if numeric else text, quote=True)
                shown = html.escape(text)
                if numeric and anchor and any(ch.isdigit() for ch in text):
                    runs = ", ".join(p.name for p in row.runs)
                    shown = (
                        f'<a href="#{anchor}" title="from {html.escape(runs, quote=True)}">'
                        f"{shown}</a>"
                    )
                cls = ' class="num"' if numeric else ""
                self.add(f'<td{cls} data-sort="{sort}">{shown}</td>')
            self.add("</tr>")
        self.add("</tbody></table></div>")
        if table.note:
            self.add(f"<p>{html.escape(table.note)}</p>")

    def figure(self, plot: PlotFile) -> None:
        data = base64.b64encode(plot.png.read_bytes()).decode("ascii")
        pdf = os.path.relpath(plot.pdf, self.report_dir)
        self.add(
            f'<figure data-kind="{html.escape(plot.kind, quote=True)}">'
            f'<img src="data:image/png;base64,{data}" alt="{html.escape(plot.title, quote=True)}">'
            f"<figcaption>{html.escape(plot.title)} "
            f'(<a href="{html.escape(pdf, quote=True)}">PDF</a>)</figcaption></figure>'
        )

    def run_link(self, run_dir: Path) -> str:
        rel = os.path.relpath(run_dir, self.report_dir)
        files = " · ".join(
            f'<a href="{html.escape(os.path.join(rel, name), quote=True)}">{name}</a>'
            for name in ("config.json", "metrics.json")
        )
        return f"{html.escape(str(run_dir))} ({files})"


def render_html(
    title: str,
    intro: Sequence[str],
    sections: Sequence[Section],
    report_dir: Path,
    command: str | None = None,
    commit: str | None = None,
) -> str:
    """The whole page: provenance (command, commits), then each section's summary, tables,
    definitions and figures, then the run folders behind each table row."""
    writer = _HtmlWriter(report_dir)
    heading = 2 if len(sections) > 1 or title != sections[0].title else 1
    commits = sorted({c for s in sections for c in s.run_commits})
    writer.add(
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<link rel="icon" href="data:,"><title>{html.escape(title)}</title>'
        f"<style>{_STYLE}</style></head><body>"
    )
    writer.add(f"<h1>{html.escape(title)}</h1>")
    for paragraph in intro:
        writer.add(f"<p>{html.escape(paragraph)}</p>")
    writer.add('<div class="prov" id="provenance"><p>Produced by <code>')
    writer.add(html.escape(command or invoking_command()))
    writer.add(f"</code> at commit <code>{html.escape(commit or git_commit())}</code>.")
    if commits:
        writer.add(
            " The runs record the commit"
            f"{'s' if len(commits) > 1 else ''} "
            + ", ".join(f"<code>{html.escape(c)}</code>" for c in commits)
            + " in their config.json."
        )
    writer.add(
        " Every number in a table links to the run folders it was computed from; click a "
        "column header to sort.</p></div>"
    )
    table_count = 0
    for section in sections:
        if heading > 1:  # a page of one section has its title already
            writer.add(f"<h{heading}>{html.escape(section.title)}</h{heading}>")
        writer.add(
            f"<p>Generated from the run folders in <code>{html.escape(str(section.results_dir))}"
            f"</code> ({len(section.statuses)} runs: {html.escape(section.status_text())}).</p>"
        )
        if not section.statuses:
            writer.add("<p>No run folder was found, so there is nothing to report yet.</p>")
        else:
            if section.glance is not None:
                writer.add(f"<h{heading + 1}>At a glance</h{heading + 1}>")
                table_count += 1
                writer.table(section.glance, f"table-{table_count}", section.title)
                for plot in section.glance_plots:
                    writer.figure(plot)
            writer.add(f"<h{heading + 1}>Summary</h{heading + 1}><ul>")
            writer.add("".join(f"<li>{html.escape(s)}</li>" for s in section.summary))
            results = html.escape(section.results_heading)
            writer.add(f"</ul><h{heading + 1}>{results}</h{heading + 1}>")
            for table in section.tables:
                table_count += 1
                writer.table(table, f"table-{table_count}", section.title)
            writer.add("".join(f"<p>{html.escape(d)}</p>" for d in section.definitions if d))
        if section.unreadable:
            writer.add(f"<h{heading + 1}>Run folders left out</h{heading + 1}><ul>")
            writer.add("".join(f"<li>{html.escape(u)}</li>" for u in section.unreadable))
            writer.add("</ul>")
        for dataset in sorted({p.dataset for p in section.later_plots}):
            writer.add(f"<h{heading + 1}>Figures: {html.escape(dataset)}</h{heading + 1}>")
            for plot in (p for p in section.later_plots if p.dataset == dataset):
                writer.figure(plot)
    if writer.sources:
        writer.add("<h2>Runs behind the numbers</h2>")
        for anchor, label, runs in writer.sources:
            writer.add(f'<div id="{anchor}"><p>{html.escape(label)}</p><ul class="runs">')
            writer.add("".join(f"<li>{writer.run_link(r)}</li>" for r in runs))
            writer.add("</ul></div>")
    writer.add(f"<script>{_SCRIPT}</script></body></html>\n")
    return "".join(writer.parts)


def write_html(
    path: Path,
    title: str,
    intro: Sequence[str],
    sections: Sequence[Section],
    command: str | None = None,
    commit: str | None = None,
) -> Path:
    """Write `render_html` to `path` (links relative to its folder); returns `path`."""
    write_text(path, render_html(title, intro, sections, path.parent, command, commit))
    return path


def write_section_html(markdown: Path, section: Section, command: str | None) -> Path:
    """The report.html of a one-section report, beside its report.md `markdown`."""
    return write_html(markdown.with_name("report.html"), section.title, (), [section], command)
