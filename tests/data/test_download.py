"""Downloads from a real HTTP server on 127.0.0.1: whole files land, broken ones leave nothing."""

from __future__ import annotations

import pickle
import socket
import time
from pathlib import Path

import numpy as np
import pytest

from hybrid_rl.data.download import DownloadError, d4rl_cache_dir, download_file

BODY = np.random.default_rng(0).bytes(300_000)


@pytest.fixture(autouse=True)
def _network_allowed(monkeypatch):
    monkeypatch.delenv("HYBRID_RL_OFFLINE", raising=False)


def _files_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_complete_download_lands_with_identical_bytes(tmp_path, file_server):
    file_server.routes["/data.hdf5"] = ("full", BODY)
    dest = tmp_path / "cache" / "data.hdf5"

    assert download_file(f"{file_server.base_url}/data.hdf5", dest, progress=False) == dest
    assert dest.read_bytes() == BODY
    assert _files_in(dest.parent) == ["data.hdf5"]


def test_download_without_content_length_lands(tmp_path, file_server):
    file_server.routes["/data.hdf5"] = ("no-length", BODY)
    dest = tmp_path / "data.hdf5"
    download_file(f"{file_server.base_url}/data.hdf5", dest, progress=False)
    assert dest.read_bytes() == BODY


def test_connection_dropped_mid_file_raises_and_leaves_no_file(tmp_path, file_server):
    file_server.routes["/data.hdf5"] = ("drop", BODY)
    url = f"{file_server.base_url}/data.hdf5"
    dest = tmp_path / "cache" / "data.hdf5"

    with pytest.raises(DownloadError) as info:
        download_file(url, dest, progress=False)
    assert url in str(info.value)
    assert f"after {len(BODY) // 2} of {len(BODY)} bytes" in str(info.value)
    assert str(dest) in str(info.value)  # says where to put the file by hand
    assert _files_in(dest.parent) == []


def test_failed_download_keeps_an_existing_destination_untouched(tmp_path, file_server):
    file_server.routes["/data.hdf5"] = ("drop", BODY)
    dest = tmp_path / "data.hdf5"
    dest.write_bytes(b"previous copy")
    with pytest.raises(DownloadError):
        download_file(f"{file_server.base_url}/data.hdf5", dest, progress=False)
    assert dest.read_bytes() == b"previous copy"
    assert _files_in(tmp_path) == ["data.hdf5"]


def test_http_error_status_is_reported(tmp_path, file_server):
    with pytest.raises(DownloadError, match="HTTP 404"):
        download_file(f"{file_server.base_url}/missing.hdf5", tmp_path / "x.hdf5", progress=False)
    assert _files_in(tmp_path) == []


def test_stalled_server_hits_the_read_timeout(tmp_path, file_server):
    file_server.routes["/data.hdf5"] = ("stall", BODY)
    started = time.monotonic()
    with pytest.raises(DownloadError, match="timed out"):
        download_file(
            f"{file_server.base_url}/data.hdf5",
            tmp_path / "data.hdf5",
            read_timeout=0.3,
            progress=False,
        )
    assert time.monotonic() - started < 5
    assert _files_in(tmp_path) == []


def test_refused_connection_is_a_download_error(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    with pytest.raises(DownloadError, match="refused"):
        download_file(f"http://127.0.0.1:{closed_port}/x.hdf5", tmp_path / "x.hdf5", progress=False)
    assert _files_in(tmp_path) == []


def test_check_failure_propagates_and_removes_the_temporary_file(tmp_path, file_server):
    file_server.routes["/data.hdf5"] = ("full", BODY)
    seen: list[int] = []

    def check(tmp: Path) -> None:
        seen.append(tmp.stat().st_size)
        raise ValueError("not what I wanted")

    with pytest.raises(ValueError, match="not what I wanted"):
        download_file(
            f"{file_server.base_url}/data.hdf5", tmp_path / "d.hdf5", progress=False, check=check
        )
    assert seen == [len(BODY)]  # the check saw the complete file
    assert _files_in(tmp_path) == []


def test_offline_mode_never_connects(tmp_path, file_server, monkeypatch):
    file_server.routes["/data.hdf5"] = ("full", BODY)
    monkeypatch.setenv("HYBRID_RL_OFFLINE", "1")
    with pytest.raises(DownloadError, match="HYBRID_RL_OFFLINE=1"):
        download_file(f"{file_server.base_url}/data.hdf5", tmp_path / "data.hdf5", progress=False)
    assert file_server.request_count == 0
    assert _files_in(tmp_path) == []


def test_offline_zero_still_allows_downloads(tmp_path, file_server, monkeypatch):
    file_server.routes["/data.hdf5"] = ("full", BODY)
    monkeypatch.setenv("HYBRID_RL_OFFLINE", "0")
    download_file(f"{file_server.base_url}/data.hdf5", tmp_path / "data.hdf5", progress=False)
    assert file_server.request_count == 1


def test_cache_dir_follows_d4rl_dataset_dir_else_home(tmp_path, monkeypatch):
    monkeypatch.setenv("D4RL_DATASET_DIR", str(tmp_path / "mine"))
    assert d4rl_cache_dir() == tmp_path / "mine"
    monkeypatch.delenv("D4RL_DATASET_DIR")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert d4rl_cache_dir() == tmp_path / "home" / ".d4rl" / "datasets"


def test_download_error_survives_pickling():
    error = DownloadError("http://127.0.0.1:1/x", "the connection closed", "Retry later.")
    copy = pickle.loads(pickle.dumps(error))
    assert (str(copy), copy.url, copy.reason) == (str(error), error.url, error.reason)
