"""How a grid command runs its runs: `--launcher` and `--ray_address` are checked, with the
other values, before anything is written (the Ray cluster itself: tests/launch/
test_ray_launcher.py)."""

from __future__ import annotations

import socket
import sys

import pytest

from hybrid_rl.cli import main


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens once it is closed


@pytest.mark.parametrize("command", ["phase1", "phase2", "study"])
@pytest.mark.parametrize(
    ("flags", "line"),
    [
        (["--launcher", "slurm"], "--launcher must be local or ray, got 'slurm'"),
        (["--ray_address", "127.0.0.1:6379"], "--ray_address applies to --launcher ray only"),
        (["--launcher", "ray", "--workers", "2"], "--workers sizes the local pool"),
        (["--launcher", "ray", "--ray_address", "head"], "'head' is not host:port"),
    ],
)
def test_a_bad_launcher_setting_is_one_line_naming_its_flag(
    command, flags, line, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    assert main([command, "--env", "hopper-medium-v2", *flags]) == 2
    out, err = capsys.readouterr()
    assert len(err.splitlines()) == 1 and line in err, err
    assert out == "" and not any(tmp_path.iterdir())


def test_an_address_where_no_cluster_answers_is_refused_before_any_run(
    tmp_path, monkeypatch, capsys
):
    # Ray itself would wait minutes for a cluster there.
    monkeypatch.chdir(tmp_path)
    address = f"127.0.0.1:{_closed_port()}"
    assert main(["phase1", "--launcher", "ray", "--ray_address", address]) == 2
    err = capsys.readouterr().err
    assert f"hybrid-rl phase1: no Ray cluster answers at {address}" in err
    assert "ray start --head" in err
    assert not any(tmp_path.iterdir())


def test_without_ray_installed_the_ray_launcher_says_how_to_install_it(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "ray", None)  # how an uninstalled package looks to import
    assert main(["study", "--quick", "--launcher", "ray"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == (
        "hybrid-rl study: --launcher ray needs Ray, which is not installed here: "
        'pip install -e ".[ray]"'
    )
    assert not any(tmp_path.iterdir())
