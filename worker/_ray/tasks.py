"""What runs on a Ray worker process: one span of one job.

``run_span([dataset_ref, job_ref], a, b)``: the result arrays of items
``[a, b)`` of the job, ``worker._core.jobs.evaluate``'s body with the scan
kept. The references come wrapped in a list so Ray does not resolve them
per task: the dataset (zero-copy numpy views of the node's object store)
and the job (rebuilt from its arrays by ``worker._pool.child.job_from_spec``,
with its candle scan and groups) are kept per worker process, keyed by the
object's id (a few of each, least recently used dropped), so each worker
process deserializes a request's dataset once and scans a job once, as a
pool process does.

Kernels: loaded from the node's Numba on-disk cache (``optimizer-worker
warm`` on each node, docs/cluster.md); on a cold node the first task of
each kernel compiles it into that cache. ``NUMBA_NUM_THREADS=1`` comes from
the connection's runtime environment (``connect``).
"""

from __future__ import annotations

import os
from collections import OrderedDict
from typing import Any

import numpy as np

_DATASETS_KEPT = 2
_JOBS_KEPT = 4
_datasets: OrderedDict[str, Any] = OrderedDict()
_jobs: OrderedDict[str, tuple[Any, Any, Any]] = OrderedDict()
_NICENESS = 5
_niced = False


def _kept(cache: OrderedDict, key: str, make: Any, limit: int) -> Any:
    hit = cache.get(key)
    if hit is not None:
        cache.move_to_end(key)
        return hit
    value = cache[key] = make()
    while len(cache) > limit:
        cache.popitem(last=False)
    return value


def job_spec(job: Any) -> dict:
    """``job`` as its tasks get it (``worker._pool.spans.job_spec``'s fields,
    plain arrays: they travel through the object store, zero-copy)."""
    import msgspec

    lv = job.levels
    return {
        "levels": dict(lv.arrays()),
        "gap_open": lv.gap_open,
        "levels_kind": lv.kind,
        "positions": np.asarray(job.positions, np.int64),
        "group_codes": job.group_codes,
        "groups": None if job.groups is None else list(job.groups),
        "config": msgspec.to_builtins(job.config),
        "mode": job.mode,
    }


def _writable(a: Any) -> np.ndarray:
    # A pool process gets its job's arrays writable (``unpack_array``): the
    # same array types, so the kernels loaded from the cache are the ones
    # that run (a read-only store view would compile another specialization).
    return np.array(a)


def run_span(refs: list, a: int, b: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Items ``[a, b)`` of the job ``refs[1]`` on the dataset ``refs[0]`` (module doc)."""
    global _niced
    import ray

    from .._core.jobs import job_groups
    from .._pool.child import job_from_spec

    if not _niced:
        # As a pool process: grid work yields the CPU to a daemon on this node.
        _niced = True
        try:
            os.nice(_NICENESS)
        except OSError:  # pragma: no cover
            pass
    ds_ref, job_ref = refs
    ds = _kept(_datasets, ds_ref.hex(), lambda: ray.get(ds_ref), _DATASETS_KEPT)

    def make_job():
        job = job_from_spec(ray.get(job_ref), _writable)
        sweep = job.levels.prepare(ds, job.positions)
        return job, sweep, job_groups(ds, job, sweep)

    job, sweep, groups = _kept(_jobs, f"{ds_ref.hex()}/{job_ref.hex()}", make_job, _JOBS_KEPT)
    return sweep.run(groups, job.config, job.mode, (int(a), int(b)))
