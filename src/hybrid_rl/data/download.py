"""Downloads that land whole or not at all, and where D4RL files are cached."""

from __future__ import annotations

import functools
import http.client
import os
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tqdm import tqdm

from hybrid_rl.atomic_io import atomic_write

OFFLINE_ENV_VAR = "HYBRID_RL_OFFLINE"
CACHE_DIR_ENV_VAR = "D4RL_DATASET_DIR"
DEFAULT_CONNECT_TIMEOUT_S = 15.0
DEFAULT_READ_TIMEOUT_S = 60.0
_CHUNK_BYTES = 1 << 20


class DownloadError(RuntimeError):
    """A download that did not complete; nothing was left at its destination.

    `reason` says what happened (short, for one-line summaries); the message adds the URL and
    what to do next.
    """

    def __init__(self, url: str, reason: str, advice: str) -> None:
        self.url = url
        self.reason = reason
        self.advice = advice
        super().__init__(f"could not download {url}: {reason}. {advice}")

    def __reduce__(self) -> tuple[type, tuple[str, str, str]]:
        # Rebuild from the fields, so the error survives a process pool's pickling.
        return type(self), (self.url, self.reason, self.advice)


def d4rl_cache_dir() -> Path:
    """$D4RL_DATASET_DIR if set, else ~/.d4rl/datasets (D4RL's own default)."""
    configured = os.environ.get(CACHE_DIR_ENV_VAR)
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".d4rl" / "datasets"


def network_disabled() -> bool:
    """True when HYBRID_RL_OFFLINE is set to anything but '', '0', 'false' or 'no'."""
    return os.environ.get(OFFLINE_ENV_VAR, "").strip().lower() not in ("", "0", "false", "no")


def download_file(
    url: str,
    dest: str | os.PathLike[str],
    *,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT_S,
    read_timeout: float = DEFAULT_READ_TIMEOUT_S,
    progress: bool = True,
    check: Callable[[Path], None] | None = None,
) -> Path:
    """Stream `url` into a temporary file beside `dest` and rename it onto `dest` when complete.

    Complete means the server closed the body normally and, when it sent a Content-Length,
    exactly that many bytes arrived. `check(tmp_path)`, if given, then inspects the finished
    file before the rename; whatever it raises propagates unchanged. Timeouts are in seconds:
    `connect_timeout` for opening the connection, `read_timeout` for each wait on data.
    The progress bar (tqdm, on stderr) shows bytes against Content-Length when known.

    On any failure the temporary file is removed, `dest` is untouched, and a DownloadError
    says what happened. With HYBRID_RL_OFFLINE=1 it raises at once, without any connection.
    """
    dest = Path(dest)
    retry_hint = (
        f"Retry later, or download it by hand and put it at {dest}. "
        f"Set {OFFLINE_ENV_VAR}=1 to skip downloads."
    )
    if network_disabled():
        raise DownloadError(
            url,
            f"{OFFLINE_ENV_VAR}=1 disables the network",
            f"Put the file at {dest} by hand, or unset {OFFLINE_ENV_VAR} to allow the download.",
        )
    opener = urllib.request.build_opener(
        _TimeoutHTTPHandler(read_timeout), _TimeoutHTTPSHandler(read_timeout)
    )

    def fetch_into(tmp: Path) -> None:
        try:
            with opener.open(url, timeout=connect_timeout) as response:
                header = response.headers.get("Content-Length")
                expected = int(header) if header is not None and header.isdigit() else None
                received = _stream(response, tmp, expected, progress, desc=dest.name)
        except urllib.error.HTTPError as exc:
            reason = f"the server answered HTTP {exc.code} {exc.reason}"
            raise DownloadError(url, reason, retry_hint) from exc
        except (OSError, http.client.HTTPException, ValueError) as exc:
            # URLError and socket timeouts are OSErrors; ValueError is a malformed URL.
            raise DownloadError(url, f"{type(exc).__name__}: {exc}", retry_hint) from exc
        if expected is not None and received != expected:
            reason = f"the connection closed after {received} of {expected} bytes"
            raise DownloadError(url, reason, retry_hint)
        if check is not None:
            check(tmp)

    return atomic_write(dest, fetch_into)


def _stream(
    response: http.client.HTTPResponse, tmp: Path, expected: int | None, progress: bool, desc: str
) -> int:
    received = 0
    with (
        open(tmp, "wb") as out,
        tqdm(
            total=expected,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=desc,
            disable=not progress,
        ) as bar,
    ):
        while chunk := response.read(_CHUNK_BYTES):
            out.write(chunk)
            received += len(chunk)
            bar.update(len(chunk))
    return received


# urllib has a single timeout for connecting and reading; these connections switch the socket
# to `read_timeout` once connected, so a slow-to-answer host fails fast while a slow but
# steady transfer is not cut off.
class _ReadTimeoutHTTPConnection(http.client.HTTPConnection):
    def __init__(self, *args: Any, read_timeout: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.read_timeout = read_timeout

    def connect(self) -> None:
        super().connect()
        self.sock.settimeout(self.read_timeout)


class _ReadTimeoutHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, *args: Any, read_timeout: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.read_timeout = read_timeout

    def connect(self) -> None:
        super().connect()
        self.sock.settimeout(self.read_timeout)


class _TimeoutHTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, read_timeout: float) -> None:
        super().__init__()
        self.read_timeout = read_timeout

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        connection = functools.partial(_ReadTimeoutHTTPConnection, read_timeout=self.read_timeout)
        return self.do_open(connection, req)


class _TimeoutHTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, read_timeout: float) -> None:
        super().__init__()
        self.read_timeout = read_timeout

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        connection = functools.partial(_ReadTimeoutHTTPSConnection, read_timeout=self.read_timeout)
        return self.do_open(connection, req)
