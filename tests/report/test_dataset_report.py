"""docs/datasets.md's generated part, from the shipped replica cards (no data files)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from cli_runner import run_hybrid_rl

from hybrid_rl.behavior.policies import POLICY_DIR
from hybrid_rl.report.dataset_report import (
    BEGIN_MARK,
    END_MARK,
    shipped_cards,
    write_dataset_report,
)

DOCS = Path(__file__).parents[2] / "docs"


@pytest.fixture
def cards(tmp_path) -> Path:
    """Copies of the shipped cards (the replica cards only: the weights are not needed)."""
    folder = tmp_path / "cards"
    folder.mkdir()
    for card in shipped_cards(POLICY_DIR):
        shutil.copy(card, folder / card.name)
    return folder


def table_rows(report: str, dataset_id: str) -> dict[str, tuple[str, str]]:
    """{statistic: (replica, D4RL)} of the table in `dataset_id`'s section."""
    section = report.split(f"## {dataset_id}\n")[1].split("\n## ")[0]
    rows = [line.strip("|").split(" | ") for line in section.splitlines() if line.startswith("| ")]
    return {name.strip(): (ours.strip(), theirs.strip()) for name, ours, theirs in rows[1:]}


def test_tables_hold_each_cards_figures_beside_d4rls(cards, tmp_path):
    report = write_dataset_report(shipped_cards(cards), tmp_path / "out").read_text()
    assert len(shipped_cards(cards)) >= 4
    for card_path in shipped_cards(cards):
        record = json.loads(card_path.read_text())["replica"]
        summary, dataset_id = record["summary"], record["dataset_id"]
        rows = table_rows(report, dataset_id)
        assert rows["transitions"][0] == f"{summary['transitions']:,}"
        assert rows["trajectories"][0] == f"{summary['trajectories']:,}"
        assert rows["timeouts"][0] == f"{summary['timeouts']:,}"
        assert float(rows["return mean"][0]) == round(summary["return"]["mean"], 1)
        normalized = summary["normalized_return"]
        assert float(rows["normalized return max"][0]) == round(normalized["max"], 1)
        assert float(rows["normalized return median"][0]) == round(normalized["q50"], 1)
        assert rows["terminals"][1] == "—"  # no published figure
        assert record["sha256"] in report
        assert (tmp_path / "out" / f"{dataset_id}-returns.png").stat().st_size > 0
    hopper = table_rows(report, "hopper-medium-v2")
    assert hopper["trajectories"][1] == "2,187"  # TFDS d4rl_mujoco_hopper/v2-medium
    assert hopper["return mean"][1] == "1422.1"  # Decision Transformer's console output
    assert table_rows(report, "hopper-random-v2")["return mean"][1] == "—"
    # the project's own bimodal set stands beside D4RL's hopper-medium
    bimodal = report.split("## hopper-medium-bimodal-v2\n")[1].split("\n## ")[0]
    assert "D4RL has no such file), beside D4RL's hopper-medium-v2" in bimodal
    assert "| statistic | replica | D4RL hopper-medium-v2 |" in bimodal
    assert table_rows(report, "hopper-medium-bimodal-v2")["trajectories"][1] == "2,187"


def test_a_newly_shipped_card_appears_and_a_card_without_summary_says_so(cards, tmp_path):
    (cards / "hopper_medium_replay.json").write_text(
        json.dumps({"dataset": "hopper-medium-replay-v2 (replica)", "sha256": "0" * 64})
    )
    report = write_dataset_report(shipped_cards(cards), tmp_path).read_text()
    section = report.split("## hopper-medium-replay-v2\n")[1].split(END_MARK)[0]
    assert "records no replica build yet" in section
    assert "hybrid-rl dataset card hopper-medium-replay-v2" in section


def test_only_the_marked_part_is_rewritten(cards, tmp_path):
    (tmp_path / "datasets.md").write_text(
        f"# kept\n\n{BEGIN_MARK}\nstale\n{END_MARK}\n\nkept too\n"
    )
    report = write_dataset_report(shipped_cards(cards), tmp_path).read_text()
    assert report.startswith(f"# kept\n\n{BEGIN_MARK}\n") and report.endswith("\n\nkept too\n")
    assert "stale" not in report and "## hopper-medium-v2" in report
    (tmp_path / "datasets.md").write_text("# no markers\n")
    with pytest.raises(ValueError, match="must hold"):
        write_dataset_report(shipped_cards(cards), tmp_path)


def test_committed_datasets_md_is_what_the_report_command_writes(tmp_path):
    shutil.copy(DOCS / "datasets.md", tmp_path / "datasets.md")
    result = run_hybrid_rl(
        "dataset", "report", "--out", str(tmp_path), env={"HYBRID_RL_OFFLINE": "1"}
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "datasets.md").read_text() == (DOCS / "datasets.md").read_text(), (
        "docs/datasets.md is stale: run `hybrid-rl dataset report --out docs` and commit it"
    )
    for figure in tmp_path.glob("*-returns.png"):
        assert (DOCS / figure.name).exists(), f"docs/{figure.name} is not committed"
