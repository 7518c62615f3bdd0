"""Checkpointed flows: ``worker._core.jobs.run_sync`` / ``worker._pool.flow.run_flow``
with every finished chunk journaled, so an interrupted run resumes where it
stopped (docs/run-directory.md).

For the k-th job a flow yields, its items are cut into ``chunk_spans(job)``;
chunks already in the journal are reused, the others are evaluated with
``evaluate_span(job, span)`` (in this process, on the pool, anywhere). Finished
chunks are appended in batches (one write + one fsync each): when
``flush_seconds`` have passed since the last flush, and when the job ends.

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

Cancellation (or any ``BaseException``) flushes what finished, shielded, and
propagates.
"""

from __future__ import annotations

import functools
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import anyio
import numpy as np

from .._core.dataset import Dataset
from .._core.engine import SweepInput, prepare
from .._core.jobs import Arrays, Flow, GridJob, OnRows, evaluate, step
from .._errors import InternalError, WorkerError
from .journal import ChunkEntry, FailedEntry, Journal, chunk_id, chunk_spans

__all__ = ["CheckpointStats", "run_checkpointed", "run_checkpointed_sync"]

log = logging.getLogger("worker.checkpoint")

R = TypeVar("R")
_WIDTHS = (11, 4, 3)
_DTYPES = (np.float64, np.int64, np.int64)


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


class _Run:
    """State of one ``run_checkpointed`` call."""

    def __init__(self, journal: Journal, evaluate_span, on_durable, on_progress,
                 flush_seconds: float, concurrency: int, isolate_failures: bool,
                 on_rows: OnRows | None = None) -> None:
        self.on_rows = on_rows
        self.journal = journal
        self.isolate_failures = isolate_failures
        self.error: BaseException | None = None   # not isolating: the first chunk failure
        self.cancel_chunks: Callable[[], None] | None = None
        self.evaluate_span = evaluate_span
        self.on_durable = on_durable
        self.on_progress = on_progress
        self.flush_seconds = flush_seconds
        self.concurrency = max(1, int(concurrency))
        self.stats = CheckpointStats(fingerprint=journal.fingerprint,
                                     items_done_at_start=journal.items_done)
        self.pending: list[ChunkEntry | FailedEntry] = []
        self.lock = anyio.Lock()
        self.last_flush = time.monotonic()
        self.done = 0          # items done in the jobs seen so far (reused, computed, failed)
        self.total = 0         # items of the jobs seen so far
        self.durable = 0       # items of finished chunks that are in the journal
        # A later job is built from earlier jobs' results (grouped runs:
        # which callers are selected). Once a chunk of job k has failed, later
        # jobs rest on incomplete results: they neither reuse journal entries
        # nor journal their own, so a resume recomputes them after retrying k.
        self.failed_job: int | None = None

    def tainted(self, k: int) -> bool:
        return self.failed_job is not None and self.failed_job < k

    def progress(self) -> None:
        if self.on_progress is not None:
            self.on_progress(self.done, self.total)

    async def flush(self, *, notify: bool = True) -> None:
        """Append the pending entries (one write + fsync, on a worker thread)."""
        async with self.lock:
            batch, self.pending = self.pending, []
            self.last_flush = time.monotonic()
            if not batch:
                return
            await anyio.to_thread.run_sync(self.journal.append, batch)
            self.stats.flushes += 1
            self.durable += sum(e.span[1] - e.span[0] for e in batch
                                if isinstance(e, ChunkEntry))
            if notify and self.on_durable is not None:
                out = self.on_durable(self.durable, self.total)
                if inspect.isawaitable(out):
                    await out

    async def job(self, k: int, job: GridJob) -> Arrays:
        spans = chunk_spans(job)
        n = job.n_items
        out = tuple(np.empty((n, w), d) for w, d in zip(_WIDTHS, _DTYPES))
        have = {} if self.tainted(k) else self.journal.done(k)
        todo: list[tuple[int, int]] = []
        self.total += n
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
            if self.on_rows is not None:
                self.on_rows(job, a, arrays)
            st.chunks_reused += 1
            st.items_reused += b - a
            self.done += b - a
            self.durable += b - a
        self.progress()
        if todo:
            chunks = iter(todo)

            async def worker() -> None:
                for span in chunks:
                    if self.error is not None:
                        return  # not isolating: a chunk failed, start no other
                    await self.chunk(k, job, span, out)

            if self.concurrency == 1 or len(todo) == 1:
                await worker()  # no task group: exceptions come out unwrapped
            else:
                async with anyio.create_task_group() as tg:
                    self.cancel_chunks = tg.cancel_scope.cancel
                    for _ in range(min(self.concurrency, len(todo))):
                        tg.start_soon(worker)
                self.cancel_chunks = None
            if self.error is not None:
                raise self.error  # run_checkpointed flushes what finished
            await self.flush()
        return out  # type: ignore[return-value]

    async def chunk(self, k: int, job: GridJob, span: tuple[int, int], out: tuple) -> None:
        a, b = span
        try:
            arrays = await self.evaluate_span(job, span)
            _check(arrays, b - a)
        except Exception as e:
            error = f"{type(e).__name__}: {e}"
            log.error("chunk %s failed: %s", chunk_id(k, span), error)
            self.pending.append(FailedEntry(k, span, error))
            if not self.isolate_failures:  # the run fails (module doc)
                self.fail(k, span, e)
                return
            # Isolation: this chunk fails, the run goes on.
            out[0][a:b] = np.nan
            out[1][a:b] = 0
            out[2][a:b] = 0
            self.failed_job = k if self.failed_job is None else min(self.failed_job, k)
            self.stats.failed.append({"id": chunk_id(k, span), "job": k, "span": [a, b],
                                      "error": error})
        else:
            for o, arr in zip(out, arrays):
                o[a:b] = arr
            if self.on_rows is not None:
                self.on_rows(job, a, arrays)
            if not self.tainted(k):
                # Views of the job's arrays: the journal keeps no second copy.
                self.pending.append(ChunkEntry(k, span, (out[0][a:b], out[1][a:b], out[2][a:b])))
            self.stats.chunks_computed += 1
        self.done += b - a
        self.progress()
        if time.monotonic() - self.last_flush >= self.flush_seconds:
            await self.flush()

    def fail(self, k: int, span: tuple[int, int], e: Exception) -> None:
        """Not isolating: note the run's error and cancel the chunks in flight."""
        if self.error is not None:
            return
        a, b = span
        if isinstance(e, WorkerError) and e.code != InternalError.code:
            self.error = e
        else:
            message = e.message if isinstance(e, WorkerError) else f"{type(e).__name__}: {e}"
            self.error = InternalError(
                f"chunk {chunk_id(k, span)} (items [{a}, {b}) of grid job {k}) failed: {message}; "
                "the chunks that finished are journaled: the same request resumes from them")
            self.error.__cause__ = e
        if self.cancel_chunks is not None:
            self.cancel_chunks()


def _check(arrays: Any, rows: int) -> None:
    if not isinstance(arrays, (tuple, list)) or len(arrays) != 3:
        raise TypeError(f"evaluate_span returned {type(arrays).__name__}, not 3 arrays")
    for arr, w in zip(arrays, _WIDTHS):
        if np.shape(arr) != (rows, w):
            raise ValueError(f"evaluate_span returned an array of shape {np.shape(arr)}, "
                             f"expected {(rows, w)}")


async def run_checkpointed(
    flow: Flow[R], journal: Journal,
    evaluate_span: Callable[[GridJob, tuple[int, int]], Awaitable[Arrays]], *,
    on_durable: Callable[[int, int], Awaitable[None] | None] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    flush_seconds: float = 1.0, concurrency: int = 1, isolate_failures: bool = False,
    on_rows: OnRows | None = None,
) -> tuple[R, CheckpointStats]:
    """Drive ``flow`` to its result, journaling every chunk (module doc).

    ``on_progress(done, total)``: items of the jobs seen so far, ``done``
    counting reused, computed and failed chunks; called when a job starts
    (with what it reuses) and after every chunk. ``on_durable(done, total)``
    (awaited if it returns an awaitable) after every flush: ``done`` counts
    the items whose results are in the journal (failed chunks are not).
    ``concurrency``: chunks evaluated at once. ``isolate_failures``: a failed
    chunk fails the run (False) or leaves NaN rows and the run goes on (True;
    module doc). Flow steps run on a worker thread, as in ``run_flow``.
    ``on_rows(job, a, arrays)``: each chunk's rows, reused or computed.
    Returns the result and ``CheckpointStats``.
    """
    run = _Run(journal, evaluate_span, on_durable, on_progress, flush_seconds, concurrency,
               isolate_failures, on_rows)
    try:
        try:
            done, value = await anyio.to_thread.run_sync(step, flow, None)
            k = 0
            while not done:
                arrays = await run.job(k, value)
                done, value = await anyio.to_thread.run_sync(step, flow, arrays)
                k += 1
        except BaseException:
            # Keep what finished. No on_durable here: its receiver may be gone.
            with anyio.CancelScope(shield=True):
                try:
                    await run.flush(notify=False)
                except Exception:
                    log.exception("could not journal the finished chunks of an interrupted run")
            raise
        return value, run.stats
    finally:
        flow.close()


def run_checkpointed_sync(ds: Dataset, flow: Flow[R], journal: Journal,
                          **kwargs: Any) -> tuple[R, CheckpointStats]:
    """``run_checkpointed`` evaluating chunks in this process (one candle scan
    per job, made when its first chunk needs it), under ``anyio.run``."""
    current: list[tuple[GridJob, SweepInput]] = []

    async def evaluate_span(job: GridJob, span: tuple[int, int]) -> Arrays:
        if not current or current[0][0] is not job:
            current[:] = [(job, prepare(ds, job.levels, job.positions))]
        return evaluate(ds, job, span, sweep=current[0][1])

    return anyio.run(functools.partial(run_checkpointed, flow, journal, evaluate_span, **kwargs),
                     backend="asyncio")
