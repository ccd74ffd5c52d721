"""`python smoke_test.py`, the end-to-end check DESIGN.md names, run as a user runs it: a
renamed or missing figure, report or run file fails here, not for the user."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_smoke_test_passes_end_to_end(tmp_path):
    result = subprocess.run(
        [sys.executable, str(ROOT / "smoke_test.py"), "--keep", str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "smoke test passed" in result.stdout
    # It checked the figures its reports link to: both reports exist where it looked.
    assert (tmp_path / "plots" / "report.md").is_file()
    assert (tmp_path / "plots_phase2" / "report.md").is_file()
