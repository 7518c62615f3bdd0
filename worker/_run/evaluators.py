"""Evaluators: what evaluates a span of a ``GridJob``'s items into its result
arrays. ``worker._run.drive`` drives a flow with one; the library, the daemon
and the batch CLI differ only in which one they give it.

- ``InProcessEvaluator``: in the calling thread, synchronously (the library;
  a checkpointed run under ``anyio.run``). One candle scan per job, kept
  until the job is released.
- ``ThreadEvaluator``: the same on worker threads, behind a limiter. It
  evaluates a span in pieces of about ``SPAN_EVALUATIONS`` call x grid-point
  evaluations, one thread hop each, with a cancellation point between them;
  or, ``one_hop=True`` (small work), each span in one hop, and a whole flow
  given to ``drive`` in one hop: its steps and every job together.
- ``worker._pool.evaluator.PoolEvaluator``: on the daemon's process pool.
- ``worker._run.checkpoint.CheckpointingEvaluator``: around any of these,
  journaling every chunk so an interrupted run resumes.

Cancellation: by anyio cancel scopes. ``evaluate`` is cancellable at its
awaits only. A kernel running on a worker thread is never abandoned: the
thread, and the limiter it holds, are released when the kernel returns (at
most one piece later; the daemon's dispatcher answers -32800 at once all the
same). ``InProcessEvaluator`` has no await inside a span: a cancel waits for
the span.

Concurrency: ``concurrency`` is how many spans of one job an evaluator may
be asked for at once (a checkpointed run's chunks in flight). Callbacks
(``on_rows``, ``on_items``) are called in the task that awaits ``evaluate``,
except inside a one-hop flow, where everything runs on its worker thread
(``on_rows`` receivers accept that: ``worker._daemon.progress``).
Lifecycle: ``async with evaluator`` around one flow's run (``drive`` does
it); ``release(job)`` once a job's arrays are complete, to free what was
kept for it.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

import anyio

from .._core.dataset import Dataset
from .._core.engine import SweepInput
from .._core.jobs import Arrays, GridJob, OnRows, evaluate
from .._core.layouts import concat_results

__all__ = ["Evaluator", "InProcessEvaluator", "OnItems", "SPAN_EVALUATIONS", "Span",
           "ThreadEvaluator"]

Span = tuple[int, int]
# ``on_items(done, total)``: ``done`` of the ``total`` items of the span being
# evaluated are finished (called as parts land, last with ``done == total``).
OnItems = Callable[[int, int], None]

SPAN_EVALUATIONS = 2_000_000  # a ThreadEvaluator's pieces: a cancel waits for one at most


class Evaluator(ABC):
    """Evaluates spans of ``GridJob`` items into their result arrays (module doc)."""

    concurrency: int = 1

    async def __aenter__(self) -> Evaluator:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        pass

    @abstractmethod
    async def evaluate(self, job: GridJob, span: Span, *, on_rows: OnRows | None = None,
                       on_items: OnItems | None = None) -> Arrays:
        """Result arrays of items ``[a, b)`` of ``job`` (``b - a`` rows each),
        exactly as ``worker._core.jobs.evaluate(ds, job, span)`` gives them.
        ``on_rows(job, start, arrays)``: parts of the span as they land
        (``start``: a job item); ``on_items(done, total)``: item counts of
        the span."""

    def release(self, job: GridJob) -> None:
        """``job``'s arrays are complete: drop what was kept for it."""

    def one_hop(self) -> tuple[InProcessEvaluator, Any] | None:
        """An in-process evaluator and a limiter when a whole flow should run
        in one worker-thread hop, steps and evaluations together (small work,
        where hops cost more than the kernels); None: job by job."""
        return None


class InProcessEvaluator(Evaluator):
    """Evaluates in the calling thread (module doc). Thread-safe: the scan of
    the current job is made once, under a lock."""

    def __init__(self, ds: Dataset) -> None:
        self.ds = ds
        self._lock = threading.Lock()
        self._current: tuple[GridJob, SweepInput] | None = None

    def _sweep(self, job: GridJob) -> SweepInput:
        with self._lock:
            current = self._current
            if current is None or current[0] is not job:
                self._current = None  # the last job's scan goes before the next is made
                current = self._current = (job, job.levels.prepare(self.ds, job.positions))
            return current[1]

    def evaluate_now(self, job: GridJob, span: Span, *, on_rows: OnRows | None = None,
                     on_items: OnItems | None = None) -> Arrays:
        """``evaluate``, synchronously."""
        a, b = span
        arrays = evaluate(self.ds, job, (a, b), self._sweep(job))
        if on_rows is not None:
            on_rows(job, a, arrays)
        if on_items is not None:
            on_items(b - a, b - a)
        return arrays

    async def evaluate(self, job: GridJob, span: Span, *, on_rows: OnRows | None = None,
                       on_items: OnItems | None = None) -> Arrays:
        return self.evaluate_now(job, span, on_rows=on_rows, on_items=on_items)

    def release(self, job: GridJob) -> None:
        with self._lock:
            if self._current is not None and self._current[0] is job:
                self._current = None


class ThreadEvaluator(Evaluator):
    """Evaluates on worker threads behind ``limiter`` (None: anyio's default
    thread limiter): spans cut in pieces of ~``span_evaluations``, or each in
    one hop with ``one_hop`` (module doc)."""

    def __init__(self, ds: Dataset, *, limiter: Any = None, one_hop: bool = False,
                 span_evaluations: int = SPAN_EVALUATIONS) -> None:
        self.local = InProcessEvaluator(ds)
        self.limiter = limiter
        self._one_hop = one_hop
        self.span_evaluations = max(1, int(span_evaluations))

    def one_hop(self) -> tuple[InProcessEvaluator, Any] | None:
        return (self.local, self.limiter) if self._one_hop else None

    def _width(self, job: GridJob, n: int) -> int:
        if self._one_hop:
            return max(1, n)
        per_item = -(-int(job.positions.size) // max(1, job.n_groups)) + 1
        return max(1, self.span_evaluations // per_item)

    async def evaluate(self, job: GridJob, span: Span, *, on_rows: OnRows | None = None,
                       on_items: OnItems | None = None) -> Arrays:
        a, b = span
        width = self._width(job, b - a)
        parts = []
        for lo in range(a, b, width):
            piece = (lo, min(b, lo + width))
            # Not abandoned on cancel: the piece (short) ends first, so the
            # limiter is held until the kernel really stops.
            arrays = await anyio.to_thread.run_sync(self.local.evaluate_now, job, piece,
                                                    limiter=self.limiter)
            parts.append(arrays)
            if on_rows is not None:
                on_rows(job, lo, arrays)
            if on_items is not None:
                on_items(piece[1] - a, b - a)
        return parts[0] if len(parts) == 1 else concat_results(parts)

    def release(self, job: GridJob) -> None:
        self.local.release(job)
