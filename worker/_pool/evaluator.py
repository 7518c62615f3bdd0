"""``PoolEvaluator``: the process pool as an evaluator (``worker._run.evaluators``),
so ``worker._run.drive`` runs whole flows on it, and a checkpointed run its
chunks.

The dataset: a ``SharedDataset`` already shared with the pool (the daemon's
cache) is used as it is. A plain ``Dataset`` (an inline one, built for one
request; a batch run's) is shared for this evaluator's run alone: written to
a shared file when it is entered, and, when it exits (also on error or
cancellation, shielded), forgotten by the pool processes and the file
removed. The one place that owns such a file.

Cancellation: cancelling ``evaluate`` drops the request's queued spans at
once; spans already running finish in their process (<= one span) and are
discarded (``WorkerPool.evaluate``). Concurrency: ``concurrency`` is the pool
size: that many spans of one job in flight keep every process busy; more
concurrent calls are fine, they take turns.
"""

from __future__ import annotations

from typing import Any

import anyio

from .._core.dataset import Dataset
from .._core.jobs import Arrays, GridJob, OnRows
from .._run.evaluators import Evaluator, OnItems, Span
from .pool import WorkerPool
from .shm import SharedDataset, share_dataset

__all__ = ["PoolEvaluator"]


class PoolEvaluator(Evaluator):
    """Spans evaluated by ``pool`` on ``data`` (module doc). ``shm_dir``:
    where a plain ``Dataset`` is shared (None: ``worker._pool.shm``'s default)."""

    def __init__(self, pool: WorkerPool, data: SharedDataset | Dataset, *,
                 shm_dir: str | None = None) -> None:
        self.pool = pool
        self.concurrency = pool.size
        self._data = data
        self._shm_dir = shm_dir
        self.shared: SharedDataset | None = data if isinstance(data, SharedDataset) else None
        self._owned = False

    async def __aenter__(self) -> PoolEvaluator:
        if self.shared is None:
            shared = await anyio.to_thread.run_sync(share_dataset, self._data, self._shm_dir)
            self.shared, self._owned = shared, True
        return self

    async def __aexit__(self, *exc: Any) -> None:
        if not self._owned:
            return
        shared, self.shared, self._owned = self.shared, None, False
        assert shared is not None
        with anyio.CancelScope(shield=True):
            try:
                await self.pool.forget(shared.path)
            finally:
                shared.close()

    async def evaluate(self, job: GridJob, span: Span, *, on_rows: OnRows | None = None,
                       on_items: OnItems | None = None) -> Arrays:
        if self.shared is None:
            raise RuntimeError("a PoolEvaluator of a plain Dataset is used inside `async with`")
        whole = tuple(span) == (0, job.n_items)
        # A part of a job (a checkpointed run's chunk): the pool processes
        # keep the job's scan for its other parts, until ``release``.
        return await self.pool.evaluate(self.shared, self.shared.path, job,
                                        span=None if whole else span, keep_job=not whole,
                                        on_progress=on_items, on_rows=on_rows)

    def release(self, job: GridJob) -> None:
        self.pool.drop_job(job)
