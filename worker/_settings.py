"""The daemon's options (``optimizer-worker serve --help``), with defaults."""

from __future__ import annotations

import os
from dataclasses import dataclass


def default_pool_size() -> int:
    """One pool process per usable core."""
    return max(1, len(os.sched_getaffinity(0)))


@dataclass(frozen=True, kw_only=True)
class Settings:
    pool_size: int = 2
    cache_bytes: int = 8 * 2**30           # dataset cache budget
    max_message_bytes: int = 2**30         # longest request line (SPEC 7: 1 GiB)
    max_grid_points: int = 1_000_000
    local_evaluations: int = 2_000_000     # work below this stays in-process
    shm_dir: str | None = None             # None: /dev/shm when it has room
