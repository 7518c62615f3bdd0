"""``run_flow``: ``worker._core.jobs.run_sync`` on the process pool
(``worker._pool.pool``), every grid job of a flow evaluated by the pool.

Cancellation: cancelling ``run_flow`` cancels the job's ``evaluate()`` (its
queued spans are dropped at once) or the flow step running on a worker
thread (which finishes in the background, its result dropped); the flow is
closed either way. A failed ``evaluate()`` (a span lost twice) fails the
flow: no result is ever built from part of a job.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

import anyio

from .._core.jobs import Flow, GridJob, OnRows, step
from .shm import SharedDataset

if TYPE_CHECKING:
    from .pool import WorkerPool

__all__ = ["run_flow"]

R = TypeVar("R")


async def run_flow(pool: WorkerPool, shared: SharedDataset, dataset_key: str, flow: Flow[R],
                   *, on_job: Callable[[GridJob], None] | None = None,
                   on_progress: Callable[[int, int], None] | None = None,
                   on_rows: OnRows | None = None) -> R:
    """``worker._core.jobs.run_sync`` on the pool: drive ``flow`` (built on
    ``shared.dataset``) to its result, every job evaluated by ``pool``.

    The flow's own steps (validation, ranking, building results) run on a
    worker thread so the event loop stays free to answer other requests.
    ``on_job(job)`` is told of each job as it starts (a flow may yield
    several, one after the other); ``on_progress(done, total)`` follows the
    running job's spans, ``on_rows(job, a, arrays)`` their rows.
    """
    try:
        done, value = await anyio.to_thread.run_sync(step, flow, None)
        while not done:
            if on_job is not None:
                on_job(value)
            arrays = await pool.evaluate(shared, dataset_key, value, on_progress=on_progress,
                                         on_rows=on_rows)
            done, value = await anyio.to_thread.run_sync(step, flow, arrays)
        return value
    finally:
        flow.close()

