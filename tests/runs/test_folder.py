"""A run folder: atomic files, damaged files named with the way out, reset."""

from __future__ import annotations

import json

import pytest
import torch

from hybrid_rl.runs.folder import DamagedRunFile, RunFolder


def test_a_folder_is_created_only_when_something_is_written(tmp_path):
    folder = RunFolder(tmp_path / "run")
    assert (folder.read_config(), folder.read_metrics(), folder.load_checkpoint()) == (
        None,
        None,
        None,
    )
    assert folder.status() is None and not folder.path.exists()
    folder.write_metrics({"status": "completed"})
    assert folder.status() == "completed" and folder.is_finished()


@pytest.mark.parametrize("name", ["config.json", "metrics.json"])
def test_a_truncated_json_file_is_reported_naming_it_and_the_reset_command(tmp_path, name):
    folder = RunFolder(tmp_path / "run")
    folder.write_config({"config": {"seed": 0}})
    folder.write_metrics({"status": "running", "train": {"steps": [1, 2, 3]}})
    path = folder.path / name
    path.write_bytes(path.read_bytes()[:10])
    read = folder.read_config if name == "config.json" else folder.read_metrics
    with pytest.raises(DamagedRunFile) as caught:
        read()
    assert str(path) in str(caught.value)
    assert f"hybrid-rl runs reset {folder.path}" in str(caught.value)


def test_a_truncated_checkpoint_is_reported_naming_it(tmp_path):
    folder = RunFolder(tmp_path / "run")
    folder.save_checkpoint({"step": 5, "metrics": {"status": "running"}, "w": torch.ones(1000)})
    assert folder.load_checkpoint()["step"] == 5
    data = folder.checkpoint_path.read_bytes()
    folder.checkpoint_path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DamagedRunFile, match=r"checkpoint\.pt is damaged"):
        folder.load_checkpoint()


def test_status_of_a_damaged_metrics_file_is_damaged(tmp_path):
    folder = RunFolder(tmp_path / "run")
    folder.path.mkdir()
    folder.metrics_path.write_text('{"status": "runn')
    assert folder.status() == "damaged"


def test_reset_removes_only_the_run_files(tmp_path):
    folder = RunFolder(tmp_path / "run")
    folder.write_config({})
    folder.write_metrics({"status": "running"})
    folder.save_checkpoint({"step": 0, "metrics": {}})
    (folder.path / "notes.txt").write_text("mine")
    removed = folder.reset()
    assert sorted(p.name for p in removed) == ["checkpoint.pt", "config.json", "metrics.json"]
    assert [p.name for p in folder.path.iterdir()] == ["notes.txt"]
    assert folder.reset() == []
    assert json.loads(json.dumps(folder.status())) is None
