"""Saved Phase II configs: the run folders committed under docs/ (written before the options
were one object) are read back as the same runs, with the same names and arms."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hybrid_rl.finetune_config import FinetuneConfig
from hybrid_rl.runs.identity import identity_conflict

DOCS = Path(__file__).resolve().parents[1] / "docs"
SAVED = sorted(DOCS.glob("**/ft_*/config.json"))


def test_docs_hold_saved_phase2_runs():
    assert len(SAVED) >= 20


@pytest.mark.parametrize("path", SAVED, ids=lambda p: p.parent.name)
def test_a_committed_phase2_run_reads_back_as_the_same_run(path):
    saved = json.loads(path.read_text())
    config = FinetuneConfig.from_saved(saved["config"])
    assert config.run_name == saved["run_name"] == path.parent.name
    assert config.arm_label == saved["arm"]
    assert identity_conflict(config, FinetuneConfig.saved_identity(saved)) is None
