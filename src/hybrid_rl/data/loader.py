"""One entry point for offline datasets: D4RL files (cached or downloaded), local HDF5 files,
Minari datasets and replicas, each returned with its provenance."""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hybrid_rl.data.download import (
    DEFAULT_CONNECT_TIMEOUT_S,
    DEFAULT_READ_TIMEOUT_S,
    OFFLINE_ENV_VAR,
    DownloadError,
    d4rl_cache_dir,
    download_file,
    network_disabled,
)
from hybrid_rl.data.hdf5_format import (
    METADATA_DATASET_ID,
    METADATA_ENV_ID,
    METADATA_SOURCE,
    DatasetFormatError,
    file_sha256,
    read_d4rl_hdf5,
    read_d4rl_metadata,
)
from hybrid_rl.data.registry import (
    D4RL_BASE_URL,
    DATASETS,
    DatasetSpec,
    env_dims,
    get_dataset_spec,
)
from hybrid_rl.data.transitions import TransitionArrays

SOURCES = ("auto", "d4rl", "minari", "replica")
D4RL_BASE_URL_ENV_VAR = "HYBRID_RL_D4RL_BASE_URL"
# `auto` has somewhere else to go, so an unreachable host should not stall it for long.
AUTO_CONNECT_TIMEOUT_S = 5.0
AUTO_READ_TIMEOUT_S = 30.0

ReplicaProvider = Callable[[str], str | os.PathLike[str]]


@dataclass(frozen=True)
class DatasetProvenance:
    """Where a dataset came from, as recorded with every run."""

    source: str  # "d4rl" | "minari" | "replica" | "hdf5-file"
    dataset_id: str | None  # registry or Minari id; None for a file that does not say
    path: str  # the file (or Minari data folder) that was read
    sha256: str  # of that file (Minari: of every file in the folder)
    env_id: str | None  # Gymnasium id of the env the data belongs to, when known
    note: str  # what was tried and used, in words


@dataclass(frozen=True)
class LoadedDataset:
    transitions: TransitionArrays
    provenance: DatasetProvenance
    # `auto` tried D4RL's server and could not download from it.
    download_failed: bool = False


class DatasetUnavailableError(RuntimeError):
    """No requested source could provide the dataset; the message lists what was tried."""


def load_dataset(
    id_or_path: str | os.PathLike[str],
    source: str = "auto",
    *,
    replica_provider: ReplicaProvider | None = None,
    progress: bool = True,
) -> LoadedDataset:
    """Load a dataset as D4RL-semantics transitions (see `read_d4rl_hdf5`) with provenance.

    - A path ending in .hdf5/.h5 is read as a D4RL-layout file, whatever `source` says
      (provenance source "hdf5-file", or "replica" if its metadata says so; env id from its
      metadata, else None).
    - `source="d4rl"`: a registry id; the cached file in `d4rl_cache_dir()`, else a download
      from the D4RL URL (base overridable with $HYBRID_RL_D4RL_BASE_URL) into the cache.
      Shapes are checked against the Gymnasium env of the id.
    - `source="minari"`: a local Minari dataset id (`read_minari`).
    - `source="replica"`: `replica_provider(dataset_id)` returns the replica's HDF5 path; the
      replica builder lives in a higher layer, so the caller passes it in.
    - `source="auto"`: D4RL cache, else download (short timeouts; skipped when
      HYBRID_RL_OFFLINE=1), else the replica provider if given; prints one line to stderr
      saying what was tried and used.
    - An id of this project's own (`DatasetSpec.in_d4rl` False) is always its replica;
      `source="d4rl"` is refused.

    Errors: ValueError for an unknown source, KeyError (listing valid ids) for an unknown id,
    FileNotFoundError for a missing .hdf5 path, DatasetFormatError for a bad file,
    DownloadError for a failed download, DatasetUnavailableError when `auto` runs out of
    sources or `replica` has no provider. A download never leaves a partial or invalid file
    in the cache.
    """
    if source not in SOURCES:
        raise ValueError(f"unknown dataset source {source!r}; valid sources are: {SOURCES}")
    if str(id_or_path).lower().endswith((".hdf5", ".h5")):
        return _load_local_file(Path(id_or_path))
    dataset_id = str(id_or_path)
    if source == "minari":
        return _load_minari(dataset_id)
    spec = get_dataset_spec(dataset_id)
    if not spec.in_d4rl:
        return _load_project_dataset(spec, source, replica_provider)
    if source == "d4rl":
        return _load_d4rl(spec, progress)
    if source == "replica":
        return _load_replica(spec, replica_provider, note_prefix="")
    return _load_auto(spec, replica_provider, progress)


def d4rl_url(spec: DatasetSpec) -> str:
    """The download URL of `spec`, under $HYBRID_RL_D4RL_BASE_URL when that is set."""
    base = os.environ.get(D4RL_BASE_URL_ENV_VAR) or D4RL_BASE_URL
    return f"{base.rstrip('/')}/{spec.file_name}"


def _load_local_file(path: Path) -> LoadedDataset:
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no such dataset file; pass an existing D4RL-layout .hdf5/.h5 file or a "
            f"dataset id ({', '.join(sorted(DATASETS))})"
        )
    metadata = read_d4rl_metadata(path)
    env_id = _metadata_str(metadata, METADATA_ENV_ID)
    obs_dim, act_dim = env_dims(env_id) if env_id in _known_env_ids() else (None, None)
    transitions = read_d4rl_hdf5(path, obs_dim, act_dim)
    is_replica = metadata.get(METADATA_SOURCE) == "replica"
    provenance = DatasetProvenance(
        source="replica" if is_replica else "hdf5-file",
        dataset_id=_metadata_str(metadata, METADATA_DATASET_ID),
        path=str(path),
        sha256=file_sha256(path),
        env_id=env_id,
        note=f"local file {path}",
    )
    return LoadedDataset(transitions, provenance)


def _load_minari(dataset_id: str) -> LoadedDataset:
    # Imported here so the loader works without the optional extra until Minari is asked for.
    from hybrid_rl.data.minari_source import read_minari

    read = read_minari(dataset_id)
    provenance = DatasetProvenance(
        source="minari",
        dataset_id=dataset_id,
        path=str(read.data_path),
        sha256=read.sha256,
        env_id=read.env_id,
        note=f"local Minari dataset {dataset_id}",
    )
    return LoadedDataset(read.transitions, provenance)


def _load_d4rl(spec: DatasetSpec, progress: bool) -> LoadedDataset:
    cached = d4rl_cache_dir() / spec.file_name
    if cached.is_file():
        transitions = read_d4rl_hdf5(cached, *env_dims(spec.gym_env_id))
        return _d4rl_loaded(spec, transitions, cached, f"using D4RL cache {cached}")
    transitions = _download_d4rl(spec, DEFAULT_CONNECT_TIMEOUT_S, DEFAULT_READ_TIMEOUT_S, progress)
    note = f"no D4RL cache at {cached}; downloaded {d4rl_url(spec)} there"
    return _d4rl_loaded(spec, transitions, cached, note)


def _download_d4rl(
    spec: DatasetSpec, connect_timeout: float, read_timeout: float, progress: bool
) -> TransitionArrays:
    """Download into the cache; the file lands only if it reads as a valid dataset."""
    url = d4rl_url(spec)
    dest = d4rl_cache_dir() / spec.file_name
    read: list[TransitionArrays] = []

    def check(tmp: Path) -> None:
        try:
            read.append(read_d4rl_hdf5(tmp, *env_dims(spec.gym_env_id)))
        except DatasetFormatError as exc:
            raise DatasetFormatError(
                url,
                f"the downloaded file {spec.file_name} is not a valid D4RL dataset for "
                f"{spec.dataset_id} ({exc.problem}); nothing was saved at {dest}. Check the "
                f"URL (${D4RL_BASE_URL_ENV_VAR} overrides its base) or put a good copy at "
                f"{dest} by hand",
            ) from exc

    download_file(
        url,
        dest,
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        progress=progress,
        check=check,
    )
    return read[0]


def _d4rl_loaded(
    spec: DatasetSpec, transitions: TransitionArrays, path: Path, note: str
) -> LoadedDataset:
    provenance = DatasetProvenance(
        source="d4rl",
        dataset_id=spec.dataset_id,
        path=str(path),
        sha256=file_sha256(path),
        env_id=spec.gym_env_id,
        note=note,
    )
    return LoadedDataset(transitions, provenance)


def _load_replica(
    spec: DatasetSpec, replica_provider: ReplicaProvider | None, note_prefix: str
) -> LoadedDataset:
    if replica_provider is None:
        raise DatasetUnavailableError(
            f"{spec.dataset_id}: source 'replica' needs a replica provider. Replicas are built "
            f"with `hybrid-rl dataset build {spec.dataset_id}`; load them through the CLI or "
            "pass load_dataset(..., replica_provider=...)"
        )
    path = Path(replica_provider(spec.dataset_id))
    transitions = read_d4rl_hdf5(path, *env_dims(spec.gym_env_id))
    env_id = _metadata_str(read_d4rl_metadata(path), METADATA_ENV_ID) or spec.gym_env_id
    provenance = DatasetProvenance(
        source="replica",
        dataset_id=spec.dataset_id,
        path=str(path),
        sha256=file_sha256(path),
        env_id=env_id,
        note=f"{note_prefix}using replica {path}",
    )
    return LoadedDataset(transitions, provenance)


def _load_project_dataset(
    spec: DatasetSpec, source: str, replica_provider: ReplicaProvider | None
) -> LoadedDataset:
    """This project's own dataset: its replica, whatever `auto` would try first (D4RL has no
    such file to look for)."""
    if source == "d4rl":
        raise DatasetUnavailableError(
            f"{spec.dataset_id} is this project's own dataset, not one of D4RL's: D4RL has no "
            "file to download. Use --source replica (or auto), which builds it"
        )
    loaded = _load_replica(spec, replica_provider, note_prefix="this project's own dataset; ")
    if source == "auto":
        print(f"hybrid-rl: {spec.dataset_id}: {loaded.provenance.note}", file=sys.stderr)
    return loaded


def _load_auto(
    spec: DatasetSpec, replica_provider: ReplicaProvider | None, progress: bool
) -> LoadedDataset:
    tried: list[str] = []
    cached = d4rl_cache_dir() / spec.file_name
    loaded: LoadedDataset | None = None
    download_failed = False
    last_error: Exception | None = None
    if cached.is_file():
        try:
            transitions = read_d4rl_hdf5(cached, *env_dims(spec.gym_env_id))
            loaded = _d4rl_loaded(spec, transitions, cached, f"using D4RL cache {cached}")
        except DatasetFormatError as exc:
            # A fresh download below replaces the bad copy, but only if it validates.
            tried.append(f"D4RL cache {cached} is unusable ({exc.problem})")
            last_error = exc
    else:
        tried.append(f"no D4RL cache at {cached}")

    if loaded is None:
        if network_disabled():
            tried.append(f"download skipped ({OFFLINE_ENV_VAR}=1)")
        else:
            try:
                transitions = _download_d4rl(
                    spec, AUTO_CONNECT_TIMEOUT_S, AUTO_READ_TIMEOUT_S, progress
                )
                note = "; ".join([*tried, f"downloaded {d4rl_url(spec)} there"])
                loaded = _d4rl_loaded(spec, transitions, cached, note)
            except DownloadError as exc:
                tried.append(f"download failed ({exc.reason})")
                last_error = exc
                download_failed = True
            except DatasetFormatError as exc:
                tried.append(f"download of {exc.where} was not a valid dataset")
                last_error = exc

    if loaded is None and replica_provider is not None:
        try:
            loaded = _load_replica(spec, replica_provider, note_prefix="; ".join(tried) + "; ")
        except Exception as exc:  # the provider is the caller's code: any failure is reported
            tried.append(f"replica failed ({type(exc).__name__}: {exc})")
            last_error = exc
    elif loaded is None:
        tried.append("no replica provider given")

    if loaded is None:
        raise DatasetUnavailableError(
            f"{spec.dataset_id}: no source could provide the dataset: {'; '.join(tried)}. "
            f"Put the D4RL file at {cached}, allow the download (unset {OFFLINE_ENV_VAR}), or "
            f"build a replica with `hybrid-rl dataset build {spec.dataset_id}`"
        ) from last_error
    print(f"hybrid-rl: {spec.dataset_id}: {loaded.provenance.note}", file=sys.stderr)
    return dataclasses.replace(loaded, download_failed=download_failed)


def _metadata_str(metadata: dict[str, str | int | float], name: str) -> str | None:
    value = metadata.get(name)
    return value if isinstance(value, str) and value else None


def _known_env_ids() -> set[str]:
    return {spec.gym_env_id for spec in DATASETS.values()}
