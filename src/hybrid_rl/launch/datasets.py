"""Load a grid's datasets once, in the launching process, before any run starts.

So a replica is built (or D4RL's file fetched) once rather than by several workers at the same
time, and D4RL's server is asked once per grid: when `auto` could not download from it, the
grid's runs skip it (HYBRID_RL_OFFLINE=1 while the grid runs, inherited by pool workers)
instead of each trying again and printing the same failure.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from hybrid_rl.behavior.replica import ensure_replica
from hybrid_rl.data.download import OFFLINE_ENV_VAR
from hybrid_rl.data.loader import load_dataset


@contextmanager
def datasets_loaded_once(datasets: Iterable[tuple[str, str]]) -> Iterator[None]:
    """Load every distinct (dataset, source) once; inside the block, D4RL's server is not
    asked again if it could not be reached (see the module docstring)."""
    unreachable = False
    for dataset, source in dict.fromkeys(datasets):
        loaded = load_dataset(dataset, source, replica_provider=ensure_replica)
        unreachable |= loaded.download_failed
    previous = os.environ.get(OFFLINE_ENV_VAR)
    if unreachable:
        os.environ[OFFLINE_ENV_VAR] = "1"
        print(
            "hybrid-rl: D4RL's server could not be reached; this grid's runs use what is on "
            f"disk without asking it again ({OFFLINE_ENV_VAR}=1 for them)",
            file=sys.stderr,
        )
    try:
        yield
    finally:
        if unreachable:
            if previous is None:
                del os.environ[OFFLINE_ENV_VAR]
            else:
                os.environ[OFFLINE_ENV_VAR] = previous
