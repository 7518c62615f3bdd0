"""How many CPUs this process may use: its CPU affinity, capped by the CPU
quota of its cgroup (``docker run --cpus 2`` on a 64-core host: 2), which
sizes the daemon's process pool by default.

The quota is the smallest one found over:

- cgroup v2: ``cpu.max`` (``"<quota> <period>"`` or ``"max <period>"``) of
  the process's own cgroup (``0::/path`` in ``/proc/self/cgroup`` ->
  ``/sys/fs/cgroup/path/cpu.max``) and of every parent up to
  ``/sys/fs/cgroup/cpu.max`` itself (inside a container with a cgroup
  namespace the path is ``/`` and that file is the container's quota);
- cgroup v1: ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us`` (quota ``-1``: none)
  at the ``cpu`` controller's path and its parents, under each of the usual
  mount points (``cpu``, ``cpu,cpuacct``, ``cpuacct,cpu``).

A quota of ``q`` microseconds per period ``p`` allows ``ceil(q / p)`` CPUs
(at least 1): 1.5 CPUs gives 2 processes, each getting its share of the
quota. Whatever cannot be read or parsed counts as "no quota". Every path is
under ``root`` (default ``/``), so a test can point it at a fake tree.

Standard library only: imported by the command line before anything heavy.
"""

from __future__ import annotations

import math
import os
from pathlib import Path, PurePosixPath

__all__ = ["available_cpus", "cgroup_cpu_limit"]

_V1_MOUNTS = ("cpu", "cpu,cpuacct", "cpuacct,cpu")


def available_cpus(root: str | os.PathLike[str] = "/") -> int:
    """CPUs this process may use: affinity, capped by its cgroup's CPU quota."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        n = os.cpu_count() or 1
    limit = cgroup_cpu_limit(root)
    if limit is not None:
        n = min(n, limit)
    return max(1, n)


def cgroup_cpu_limit(root: str | os.PathLike[str] = "/") -> int | None:
    """The smallest CPU quota (in whole CPUs, rounded up) of this process's
    cgroup and its parents, v2 and v1; None when none is set (module doc)."""
    root = Path(root)
    v2_path, v1_path = _own_cgroups(root / "proc" / "self" / "cgroup")
    base = root / "sys" / "fs" / "cgroup"
    limits: list[int] = []
    for d in _self_and_parents(base, v2_path):
        limit = _v2_limit(d / "cpu.max")
        if limit is not None:
            limits.append(limit)
    for mount in _V1_MOUNTS:
        if (base / mount).is_dir():
            for d in _self_and_parents(base / mount, v1_path):
                limit = _v1_limit(d)
                if limit is not None:
                    limits.append(limit)
    return min(limits) if limits else None


def _own_cgroups(path: Path) -> tuple[str, str]:
    """(v2 path, v1 ``cpu`` controller path) from /proc/self/cgroup; ``/``
    where there is none."""
    v2 = v1 = "/"
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError):
        return v2, v1
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        hierarchy, controllers, where = parts
        if hierarchy == "0" and controllers == "":
            v2 = where
        elif "cpu" in controllers.split(","):
            v1 = where
    return v2, v1


def _self_and_parents(base: Path, cgroup: str):
    """``base/cgroup``, its parents, ..., ``base`` itself (a path naming a
    cgroup outside this namespace, with ``..``, counts as ``/``)."""
    parts = [p for p in PurePosixPath(cgroup).parts if p != "/"]
    if any(p in ("..", ".") for p in parts):
        parts = []
    for n in range(len(parts), -1, -1):
        yield base.joinpath(*parts[:n])


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None


def _cpus(quota: int, period: int) -> int | None:
    if quota <= 0 or period <= 0:
        return None  # -1: no quota; anything else is nonsense
    return max(1, math.ceil(quota / period))


def _v2_limit(path: Path) -> int | None:
    text = _read(path)
    if not text:
        return None
    fields = text.split()
    if len(fields) != 2 or fields[0] == "max":
        return None
    try:
        return _cpus(int(fields[0]), int(fields[1]))
    except ValueError:
        return None


def _v1_limit(directory: Path) -> int | None:
    quota, period = _read(directory / "cpu.cfs_quota_us"), _read(directory / "cpu.cfs_period_us")
    if quota is None or period is None:
        return None
    try:
        return _cpus(int(quota), int(period))
    except ValueError:
        return None
