"""load_dataset: local files, the D4RL cache and downloads (real local server), replicas, auto."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np
import pytest

from hybrid_rl.data.download import DownloadError
from hybrid_rl.data.hdf5_format import DatasetFormatError, write_d4rl_hdf5
from hybrid_rl.data.loader import DatasetUnavailableError, load_dataset

DATASET_ID = "hopper-medium-v2"
FILE_NAME = "hopper_medium-v2.hdf5"
ROUTE = f"/d4rl/{FILE_NAME}"


@pytest.fixture
def cache(tmp_path, monkeypatch, file_server) -> Path:
    """An empty D4RL cache dir; downloads go to the local server; network allowed."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("D4RL_DATASET_DIR", str(folder))
    monkeypatch.setenv("HYBRID_RL_D4RL_BASE_URL", f"{file_server.base_url}/d4rl")
    monkeypatch.delenv("HYBRID_RL_OFFLINE", raising=False)
    return folder


@pytest.fixture
def hopper_file_bytes(tmp_path, hopper_rollout, raw_d4rl_file) -> bytes:
    return raw_d4rl_file(tmp_path / "source.hdf5", hopper_rollout).read_bytes()


@pytest.fixture
def replica_provider(tmp_path, hopper_rollout):
    """A provider that writes a replica file and records which ids it was asked for."""
    asked: list[str] = []

    def provide(dataset_id: str) -> Path:
        asked.append(dataset_id)
        metadata = {"source": "replica", "env_id": "Hopper-v4", "dataset_id": dataset_id}
        return write_d4rl_hdf5(
            tmp_path / "replicas" / f"{dataset_id}.hdf5", hopper_rollout, metadata
        )

    provide.asked = asked  # type: ignore[attr-defined]
    return provide


def _files_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def _stderr_lines(capsys) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.strip()]


# --- local files ------------------------------------------------------------------------


def test_local_hdf5_path_is_read_with_its_provenance(tmp_path, hopper_rollout, raw_d4rl_file):
    path = raw_d4rl_file(tmp_path / "mine.h5", hopper_rollout)
    loaded = load_dataset(path)

    np.testing.assert_array_equal(loaded.transitions.observations, hopper_rollout["observations"])
    p = loaded.provenance
    assert (p.source, p.dataset_id, p.env_id, p.path) == ("hdf5-file", None, None, str(path))
    assert p.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_local_file_metadata_gives_replica_source_and_env_id(tmp_path, hopper_rollout):
    metadata = {"source": "replica", "env_id": "Hopper-v4", "dataset_id": DATASET_ID}
    path = write_d4rl_hdf5(tmp_path / "replica.hdf5", hopper_rollout, metadata)
    p = load_dataset(str(path)).provenance
    assert (p.source, p.env_id, p.dataset_id) == ("replica", "Hopper-v4", DATASET_ID)


def test_local_file_is_checked_against_the_env_its_metadata_names(tmp_path, hopper_rollout):
    path = write_d4rl_hdf5(
        tmp_path / "mislabelled.hdf5", hopper_rollout, {"env_id": "HalfCheetah-v4"}
    )
    with pytest.raises(DatasetFormatError, match="observation dim is 11, the environment's is 17"):
        load_dataset(path)


def test_missing_hdf5_path_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"absent\.hdf5"):
        load_dataset(tmp_path / "absent.hdf5")


# --- source d4rl ------------------------------------------------------------------------


def test_d4rl_reads_the_cache_without_touching_the_network(cache, file_server, hopper_file_bytes):
    cache.mkdir()
    (cache / FILE_NAME).write_bytes(hopper_file_bytes)
    loaded = load_dataset(DATASET_ID, source="d4rl", progress=False)

    assert file_server.request_count == 0
    p = loaded.provenance
    assert (p.source, p.dataset_id, p.env_id, p.path) == (
        "d4rl",
        DATASET_ID,
        "Hopper-v4",
        str(cache / FILE_NAME),
    )
    assert p.sha256 == hashlib.sha256(hopper_file_bytes).hexdigest()


def test_d4rl_downloads_into_the_cache_once(cache, file_server, hopper_file_bytes, hopper_rollout):
    file_server.routes[ROUTE] = ("full", hopper_file_bytes)
    loaded = load_dataset(DATASET_ID, source="d4rl", progress=False)

    assert file_server.request_paths == [ROUTE]
    assert _files_in(cache) == [FILE_NAME]
    assert (cache / FILE_NAME).read_bytes() == hopper_file_bytes
    assert loaded.provenance.sha256 == hashlib.sha256(hopper_file_bytes).hexdigest()
    np.testing.assert_array_equal(loaded.transitions.rewards, hopper_rollout["rewards"])

    load_dataset(DATASET_ID, source="d4rl", progress=False)
    assert file_server.request_count == 1  # the second load used the cache


def test_d4rl_garbage_download_is_a_format_error_and_leaves_the_cache_empty(cache, file_server):
    file_server.routes[ROUTE] = ("full", np.random.default_rng(0).bytes(50_000))
    with pytest.raises(DatasetFormatError) as info:
        load_dataset(DATASET_ID, source="d4rl", progress=False)
    assert FILE_NAME in str(info.value)
    assert "not a valid D4RL dataset" in str(info.value)
    assert _files_in(cache) == []


def test_d4rl_download_for_another_env_is_refused(cache, file_server, tmp_path, raw_d4rl_file):
    wide = {
        "observations": np.zeros((10, 17), np.float32),
        "actions": np.zeros((10, 6), np.float32),
        "rewards": np.zeros(10, np.float32),
        "terminals": np.zeros(10, bool),
        "timeouts": np.zeros(10, bool),
    }
    file_server.routes[ROUTE] = (
        "full",
        raw_d4rl_file(tmp_path / "cheetah.hdf5", wide).read_bytes(),
    )
    with pytest.raises(DatasetFormatError, match="observation dim is 17, the environment's is 11"):
        load_dataset(DATASET_ID, source="d4rl", progress=False)
    assert _files_in(cache) == []


def test_d4rl_dropped_download_leaves_the_cache_empty(cache, file_server, hopper_file_bytes):
    file_server.routes[ROUTE] = ("drop", hopper_file_bytes)
    with pytest.raises(DownloadError, match="connection closed after"):
        load_dataset(DATASET_ID, source="d4rl", progress=False)
    assert _files_in(cache) == []


def test_d4rl_offline_never_connects(cache, file_server, hopper_file_bytes, monkeypatch):
    file_server.routes[ROUTE] = ("full", hopper_file_bytes)
    monkeypatch.setenv("HYBRID_RL_OFFLINE", "1")
    with pytest.raises(DownloadError, match="HYBRID_RL_OFFLINE"):
        load_dataset(DATASET_ID, source="d4rl", progress=False)
    assert file_server.request_count == 0
    assert _files_in(cache) == []


def test_d4rl_corrupt_cache_file_is_an_error_naming_it(cache, file_server, hopper_file_bytes):
    cache.mkdir()
    cached = cache / FILE_NAME
    cached.write_bytes(hopper_file_bytes[: len(hopper_file_bytes) // 3])
    with pytest.raises(DatasetFormatError) as info:
        load_dataset(DATASET_ID, source="d4rl", progress=False)
    assert str(cached) in str(info.value)
    assert "delete it" in str(info.value)
    assert file_server.request_count == 0


# --- source auto ------------------------------------------------------------------------


def test_auto_prefers_the_cache_and_says_so(
    cache, file_server, hopper_file_bytes, replica_provider, capsys
):
    cache.mkdir()
    (cache / FILE_NAME).write_bytes(hopper_file_bytes)
    loaded = load_dataset(DATASET_ID, replica_provider=replica_provider, progress=False)

    assert loaded.provenance.source == "d4rl"
    assert file_server.request_count == 0 and replica_provider.asked == []
    lines = _stderr_lines(capsys)
    assert len(lines) == 1
    assert lines[0].startswith(f"hybrid-rl: {DATASET_ID}: using D4RL cache {cache / FILE_NAME}")


def test_auto_downloads_when_nothing_is_cached(cache, file_server, hopper_file_bytes, capsys):
    file_server.routes[ROUTE] = ("full", hopper_file_bytes)
    loaded = load_dataset(DATASET_ID, progress=False)

    assert loaded.provenance.source == "d4rl"
    assert _files_in(cache) == [FILE_NAME]
    (line,) = _stderr_lines(capsys)
    assert f"no D4RL cache at {cache / FILE_NAME}" in line
    assert f"downloaded {file_server.base_url}{ROUTE}" in line


def test_auto_offline_falls_back_to_the_replica_without_connecting(
    cache, file_server, hopper_file_bytes, replica_provider, monkeypatch, capsys
):
    file_server.routes[ROUTE] = ("full", hopper_file_bytes)
    monkeypatch.setenv("HYBRID_RL_OFFLINE", "1")
    loaded = load_dataset(DATASET_ID, replica_provider=replica_provider, progress=False)

    assert file_server.request_count == 0
    assert replica_provider.asked == [DATASET_ID]
    p = loaded.provenance
    assert (p.source, p.dataset_id, p.env_id) == ("replica", DATASET_ID, "Hopper-v4")
    (line,) = _stderr_lines(capsys)
    assert "no D4RL cache at" in line
    assert "download skipped (HYBRID_RL_OFFLINE=1)" in line
    assert f"using replica {p.path}" in line


def test_auto_reports_a_failed_download_before_using_the_replica(
    cache, file_server, hopper_file_bytes, replica_provider, capsys
):
    file_server.routes[ROUTE] = ("drop", hopper_file_bytes)
    loaded = load_dataset(DATASET_ID, replica_provider=replica_provider, progress=False)

    assert loaded.provenance.source == "replica"
    assert _files_in(cache) == []
    (line,) = _stderr_lines(capsys)
    assert "download failed (the connection closed after" in line
    assert "using replica" in line


def test_auto_replaces_a_corrupt_cache_file_only_with_a_valid_download(
    cache, file_server, hopper_file_bytes, capsys
):
    cache.mkdir()
    (cache / FILE_NAME).write_bytes(b"not hdf5 at all")
    file_server.routes[ROUTE] = ("full", hopper_file_bytes)
    load_dataset(DATASET_ID, progress=False)

    assert (cache / FILE_NAME).read_bytes() == hopper_file_bytes
    (line,) = _stderr_lines(capsys)
    assert "is unusable" in line and "downloaded" in line


def test_auto_with_no_source_left_lists_every_attempt(cache, file_server, hopper_file_bytes):
    file_server.routes[ROUTE] = ("full", b"garbage" * 1000)
    with pytest.raises(DatasetUnavailableError) as info:
        load_dataset(DATASET_ID, progress=False)
    message = str(info.value)
    assert f"no D4RL cache at {cache / FILE_NAME}" in message
    assert "was not a valid dataset" in message
    assert "no replica provider" in message
    assert f"hybrid-rl dataset build {DATASET_ID}" in message
    assert _files_in(cache) == []


# --- other sources and bad arguments ----------------------------------------------------


def test_replica_source_uses_the_provider(cache, replica_provider):
    loaded = load_dataset(DATASET_ID, source="replica", replica_provider=replica_provider)
    assert loaded.provenance.source == "replica"
    assert replica_provider.asked == [DATASET_ID]


def test_the_projects_own_dataset_is_its_replica_and_d4rl_is_never_asked(
    cache, file_server, hopper_file_bytes, replica_provider, capsys
):
    # Even a file of that name on the server and in the cache is not D4RL's: never used.
    own = "hopper-medium-bimodal-v2"
    file_server.routes["/d4rl/hopper_medium_bimodal-v2.hdf5"] = ("full", hopper_file_bytes)
    cache.mkdir()
    (cache / "hopper_medium_bimodal-v2.hdf5").write_bytes(hopper_file_bytes)
    loaded = load_dataset(own, replica_provider=replica_provider, progress=False)

    assert file_server.request_count == 0
    assert replica_provider.asked == [own]
    assert (loaded.provenance.source, loaded.provenance.dataset_id) == ("replica", own)
    (line,) = _stderr_lines(capsys)
    assert f"{own}: this project's own dataset; using replica {loaded.provenance.path}" in line
    with pytest.raises(DatasetUnavailableError, match="not one of D4RL's"):
        load_dataset(own, source="d4rl", progress=False)
    assert file_server.request_count == 0


def test_replica_source_without_provider_says_how_to_build_one():
    with pytest.raises(DatasetUnavailableError, match=f"hybrid-rl dataset build {DATASET_ID}"):
        load_dataset(DATASET_ID, source="replica")


def test_unknown_source_lists_the_valid_ones():
    with pytest.raises(ValueError, match="'auto', 'd4rl', 'minari', 'replica'"):
        load_dataset(DATASET_ID, source="torrent")


def test_unknown_dataset_id_lists_the_valid_ones():
    with pytest.raises(KeyError, match="halfcheetah-medium-v2"):
        load_dataset("walker2d-medium-v2", source="d4rl")


def test_minari_source_without_the_extra_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "minari", None)  # what `import minari` sees when absent
    with pytest.raises(ImportError, match=r"pip install 'hybrid-rl\[minari\]'"):
        load_dataset("mujoco/hopper/medium-v0", source="minari")
