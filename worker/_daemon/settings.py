"""The daemon's options (``optimizer-worker serve --help``), with defaults."""

from __future__ import annotations

import os
from dataclasses import dataclass

from .._pool.cpus import available_cpus


def default_pool_size(root: str | os.PathLike[str] = "/") -> int:
    """One pool process per usable CPU: the CPU affinity, capped by the
    cgroup CPU quota (``docker run --cpus 2``: 2), ``worker._pool.cpus``. ``root``:
    where /proc and /sys are (tests)."""
    return available_cpus(root)


@dataclass(frozen=True, kw_only=True)
class Settings:
    pool_size: int = 2
    cache_bytes: int = 8 * 2**30           # dataset cache budget
    max_message_bytes: int = 2**30         # longest request line (SPEC 7: 1 GiB)
    max_grid_points: int = 1_000_000
    local_evaluations: int = 2_000_000     # work below this stays in-process
    shm_dir: str | None = None             # None: /dev/shm when it has room
    # A pool process that sends no reply to a span for max(stall_timeout_min_s,
    # stall_factor x the span's estimated time) is killed and replaced, and
    # its span retried once elsewhere (worker._pool.pool).
    stall_timeout_min_s: float = 30.0
    stall_factor: float = 10.0
