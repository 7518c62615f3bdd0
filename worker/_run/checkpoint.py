"""Checkpointed runs: ``CheckpointingEvaluator`` wraps any evaluator
(``worker._run.evaluators``) so that every finished chunk is journaled, and
an interrupted run resumes where it stopped (docs/run-directory.md). Drive
the flow with it as with any evaluator (``worker._run.drive``); one wrapper
per run: it numbers the jobs it is given, in order.

For the k-th job, its items are cut into ``chunk_spans(job)``; chunks already
in the journal are reused, the others are evaluated by the inner evaluator,
``concurrency`` at a time. Finished chunks are appended in batches (one write
+ one fsync each): when ``flush_seconds`` have passed since the last flush,
and when the job ends.

A chunk whose evaluation raises an ``Exception`` is journaled as ``failed``
(retried on resume). What happens next is the caller's explicit choice,
``isolate_failures``:

- ``False`` (the daemon; the default): the run fails. No new chunk starts,
  chunks in flight are cancelled, what finished is flushed (shielded), and
  the error is raised: ``InternalError`` (-32603) naming the chunk (id, job,
  items) and the cause; a ``WorkerError`` with another code keeps its code.
  A resume of the same run computes the failed chunk and whatever did not
  finish. So an answer is never built from a subset of the grid.
- ``True`` (the batch CLI): exception isolation. The failed chunk's rows are
  NaN metrics and zero counts (so ``feasible_mask`` rejects them), the run
  goes on, and ``CheckpointStats.failed`` lists it: the caller must report
  the run as incomplete (``worker._batch.runner``: exit code 3, ``run.json``
  ``incomplete``, a warning first in ``summary.md``).

Cancellation (or any ``BaseException``) during a job flushes what finished,
shielded, and propagates; between jobs nothing is pending. Concurrency: the
chunks of one job run as tasks of one task group, on the event loop; journal
writes go to a worker thread, one batch at a time (a lock).
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
import numpy as np

from .._core.jobs import Arrays, GridJob, OnRows
from .._core.layouts import RESULT_WIDTHS, empty_results
from .._errors import InternalError, WorkerError
from .evaluators import Evaluator, OnItems, Span
from .journal import ChunkEntry, FailedEntry, Journal, chunk_id, chunk_spans

__all__ = ["CheckpointStats", "CheckpointingEvaluator"]

log = logging.getLogger("worker.checkpoint")


@dataclass
class CheckpointStats:
    """What a checkpointed run did. ``failed``: ``{id, job, span, error}`` of
    the chunks that failed in this attempt (their rows are NaN metrics)."""

    fingerprint: str = ""
    jobs: int = 0
    chunks_total: int = 0
    chunks_reused: int = 0
    chunks_computed: int = 0
    failed: list[dict] = field(default_factory=list)
    items_total: int = 0
    items_reused: int = 0
    items_done_at_start: int = 0   # every chunk an earlier attempt finished (all jobs)
    flushes: int = 0               # batches appended (one fsync each)

    @property
    def chunks_failed(self) -> int:
        return len(self.failed)


class CheckpointingEvaluator(Evaluator):
    """``inner``, with every chunk journaled in ``journal`` (module doc).

    ``on_progress(done, total)``: items of the jobs seen so far, ``done``
    counting reused, computed and failed chunks; called when a job starts
    (with what it reuses) and after every chunk. ``on_durable(done, total)``
    (awaited if it returns an awaitable) after every flush: ``done`` counts
    the items whose results are in the journal (failed chunks are not).
    ``concurrency``: chunks evaluated at once (default: the inner
    evaluator's). ``isolate_failures``: a failed chunk fails the run (False)
    or leaves NaN rows and the run goes on (True; module doc). ``stats``:
    what the run did so far (``CheckpointStats``).
    """

    def __init__(self, inner: Evaluator, journal: Journal, *,
                 on_durable: Callable[[int, int], Awaitable[None] | None] | None = None,
                 on_progress: Callable[[int, int], None] | None = None,
                 flush_seconds: float = 1.0, concurrency: int | None = None,
                 isolate_failures: bool = False) -> None:
        self.inner = inner
        self.journal = journal
        self.isolate_failures = isolate_failures
        self.on_durable = on_durable
        self.on_progress = on_progress
        self.flush_seconds = flush_seconds
        self.concurrency = max(1, int(inner.concurrency if concurrency is None else concurrency))
        self.stats = CheckpointStats(fingerprint=journal.fingerprint,
                                     items_done_at_start=journal.items_done)
        self._error: BaseException | None = None   # not isolating: the first chunk failure
        self._cancel_chunks: Callable[[], None] | None = None
        self._pending: list[ChunkEntry | FailedEntry] = []
        self._lock = anyio.Lock()
        self._last_flush = time.monotonic()
        self._k = -1            # the running job's number (jobs in the order given)
        self._running: GridJob | None = None
        self._job_done = 0      # items done of the running job
        self._done = 0          # items done in the jobs seen so far (reused, computed, failed)
        self._total = 0         # items of the jobs seen so far
        self._durable = 0       # items of finished chunks that are in the journal
        # A later job is built from earlier jobs' results (grouped runs:
        # which callers are selected). Once a chunk of job k has failed, later
        # jobs rest on incomplete results: they neither reuse journal entries
        # nor journal their own, so a resume recomputes them after retrying k.
        self._failed_job: int | None = None

    async def __aenter__(self) -> CheckpointingEvaluator:
        await self.inner.__aenter__()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.inner.__aexit__(*exc)

    def release(self, job: GridJob) -> None:
        self.inner.release(job)

    def _tainted(self, k: int) -> bool:
        return self._failed_job is not None and self._failed_job < k

    def _progress(self) -> None:
        if self.on_progress is not None:
            self.on_progress(self._done, self._total)

    async def _flush(self, *, notify: bool = True) -> None:
        """Append the pending entries (one write + fsync, on a worker thread)."""
        async with self._lock:
            batch, self._pending = self._pending, []
            self._last_flush = time.monotonic()
            if not batch:
                return
            await anyio.to_thread.run_sync(self.journal.append, batch)
            self.stats.flushes += 1
            self._durable += sum(e.span[1] - e.span[0] for e in batch
                                if isinstance(e, ChunkEntry))
            if notify and self.on_durable is not None:
                out = self.on_durable(self._durable, self._total)
                if inspect.isawaitable(out):
                    await out

    async def evaluate(self, job: GridJob, span: Span, *, on_rows: OnRows | None = None,
                       on_items: OnItems | None = None) -> Arrays:
        """Every item of ``job`` (a whole job: ``span`` must be all of it),
        chunk by chunk; ``on_rows`` per chunk, reused or computed;
        ``on_items`` counts within the job, from what it reuses."""
        if tuple(span) != (0, job.n_items):
            raise ValueError(f"a checkpointed run evaluates whole jobs, not span {span}")
        if job is not self._running:
            self._k, self._running, self._job_done = self._k + 1, job, 0
        try:
            return await self._job(self._k, job, on_rows, on_items)
        except BaseException:
            # Keep what finished. No on_durable here: its receiver may be gone.
            with anyio.CancelScope(shield=True):
                try:
                    await self._flush(notify=False)
                except Exception:
                    log.exception("could not journal the finished chunks of an interrupted run")
            raise

    async def _job(self, k: int, job: GridJob, on_rows: OnRows | None,
                   on_items: OnItems | None) -> Arrays:
        spans = chunk_spans(job)
        n = job.n_items
        out = empty_results(n)
        have = {} if self._tainted(k) else self.journal.done(k)
        todo: list[Span] = []
        self._total += n
        st = self.stats
        st.jobs += 1
        st.items_total += n
        st.chunks_total += len(spans)
        for span in spans:
            arrays = have.get(span)
            if arrays is None:
                todo.append(span)
                continue
            a, b = span
            for o, arr in zip(out, arrays):
                o[a:b] = arr
            if on_rows is not None:
                on_rows(job, a, arrays)
            st.chunks_reused += 1
            st.items_reused += b - a
            self._job_done += b - a
            self._done += b - a
            self._durable += b - a
        self._progress()
        if on_items is not None:
            on_items(self._job_done, n)
        if todo:
            chunks = iter(todo)

            async def worker() -> None:
                for span in chunks:
                    if self._error is not None:
                        return  # not isolating: a chunk failed, start no other
                    await self._chunk(k, job, span, out, on_rows, on_items)

            if self.concurrency == 1 or len(todo) == 1:
                await worker()  # no task group: exceptions come out unwrapped
            else:
                async with anyio.create_task_group() as tg:
                    self._cancel_chunks = tg.cancel_scope.cancel
                    for _ in range(min(self.concurrency, len(todo))):
                        tg.start_soon(worker)
                self._cancel_chunks = None
            if self._error is not None:
                raise self._error  # evaluate flushes what finished
            await self._flush()
        return out

    async def _chunk(self, k: int, job: GridJob, span: Span, out: Arrays,
                     on_rows: OnRows | None, on_items: OnItems | None) -> None:
        a, b = span
        try:
            arrays = await self.inner.evaluate(job, span)
            _check(arrays, b - a)
        except Exception as e:
            error = f"{type(e).__name__}: {e}"
            log.error("chunk %s failed: %s", chunk_id(k, span), error)
            self._pending.append(FailedEntry(k, span, error))
            if not self.isolate_failures:  # the run fails (module doc)
                self._fail(k, span, e)
                return
            # Isolation: this chunk fails, the run goes on.
            out[0][a:b] = np.nan
            out[1][a:b] = 0
            out[2][a:b] = 0
            self._failed_job = k if self._failed_job is None else min(self._failed_job, k)
            self.stats.failed.append({"id": chunk_id(k, span), "job": k, "span": [a, b],
                                      "error": error})
        else:
            for o, arr in zip(out, arrays):
                o[a:b] = arr
            if on_rows is not None:
                on_rows(job, a, arrays)
            if not self._tainted(k):
                # Views of the job's arrays: the journal keeps no second copy.
                self._pending.append(ChunkEntry(k, span, (out[0][a:b], out[1][a:b], out[2][a:b])))
            self.stats.chunks_computed += 1
        self._done += b - a
        self._job_done += b - a
        self._progress()
        if on_items is not None:
            on_items(self._job_done, job.n_items)
        if time.monotonic() - self._last_flush >= self.flush_seconds:
            await self._flush()

    def _fail(self, k: int, span: Span, e: Exception) -> None:
        """Not isolating: note the run's error and cancel the chunks in flight."""
        if self._error is not None:
            return
        a, b = span
        if isinstance(e, WorkerError) and e.code != InternalError.code:
            self._error = e
        else:
            message = e.message if isinstance(e, WorkerError) else f"{type(e).__name__}: {e}"
            self._error = InternalError(
                f"chunk {chunk_id(k, span)} (items [{a}, {b}) of grid job {k}) failed: {message}; "
                "the chunks that finished are journaled: the same request resumes from them")
            self._error.__cause__ = e
        if self._cancel_chunks is not None:
            self._cancel_chunks()


def _check(arrays: Any, rows: int) -> None:
    if not isinstance(arrays, (tuple, list)) or len(arrays) != 3:
        raise TypeError(f"the evaluator returned {type(arrays).__name__}, not 3 arrays")
    for arr, w in zip(arrays, RESULT_WIDTHS):
        if np.shape(arr) != (rows, w):
            raise ValueError(f"the evaluator returned an array of shape {np.shape(arr)}, "
                             f"expected {(rows, w)}")
