"""``drive``: run a flow (``worker._core.jobs.Flow``) to its result, every
job it yields evaluated by an ``Evaluator`` (``worker._run.evaluators``). The
one loop behind the library (``drive_sync``), the daemon and the batch CLI.

For each job: ``on_job(job)`` (progress learns its size), then
``evaluator.evaluate(job, (0, n_items))`` with ``on_rows`` and
``on_progress`` (as its ``on_items``: counts within the job), then
``evaluator.release(job)``, then the flow's next step with the arrays.

Concurrency: the flow's own steps (validation, ranking, building results)
run on a worker thread, so the event loop stays free for other requests;
one job at a time. An evaluator whose ``one_hop()`` says so gets the whole
flow on one worker thread instead (``drive_sync`` there, under its limiter).

Cancellation: cancelling ``drive`` cancels the evaluation in progress (see
the evaluator: queued pool spans are dropped at once, a kernel on a thread
ends first) or waits for the step on its worker thread (steps are short;
a generator cannot be closed while it runs). The flow is closed and the
evaluator exited either way, also on error: a failed evaluation fails the
flow, so no result is ever built from part of a job.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

import anyio

from .._core.jobs import Flow, GridJob, OnRows, step
from .evaluators import Evaluator, InProcessEvaluator, OnItems

__all__ = ["drive", "drive_sync"]

R = TypeVar("R")
OnJob = Callable[[GridJob], None]


async def drive(flow: Flow[R], evaluator: Evaluator, *, on_job: OnJob | None = None,
                on_progress: OnItems | None = None, on_rows: OnRows | None = None) -> R:
    """Drive ``flow`` to its result with ``evaluator``, entered (``async
    with``) for the run (module doc). ``on_job(job)`` before each job is
    evaluated; ``on_progress(done, total)``: items of the running job;
    ``on_rows(job, start, arrays)``: its rows as they land."""
    try:
        async with evaluator:
            hop = evaluator.one_hop()
            if hop is not None:
                local, limiter = hop
                # Not abandoned on cancel: the limiter is held until the kernels stop.
                return await anyio.to_thread.run_sync(
                    lambda: drive_sync(flow, local, on_job=on_job, on_progress=on_progress,
                                       on_rows=on_rows), limiter=limiter)
            done, value = await anyio.to_thread.run_sync(step, flow, None)
            while not done:
                job = value
                if on_job is not None:
                    on_job(job)
                arrays = await evaluator.evaluate(job, (0, job.n_items), on_rows=on_rows,
                                                  on_items=on_progress)
                evaluator.release(job)
                done, value = await anyio.to_thread.run_sync(step, flow, arrays)
            return value
    finally:
        flow.close()


def drive_sync(flow: Flow[R], evaluator: Evaluator, *, on_job: OnJob | None = None,
               on_progress: OnItems | None = None, on_rows: OnRows | None = None) -> R:
    """``drive`` from synchronous code. An ``InProcessEvaluator`` runs in
    this thread with no event loop (the library: as fast as a plain loop);
    any other evaluator under ``anyio.run``."""
    if not isinstance(evaluator, InProcessEvaluator):
        return anyio.run(functools.partial(drive, flow, evaluator, on_job=on_job,
                                           on_progress=on_progress, on_rows=on_rows),
                         backend="asyncio")
    try:
        done, value = step(flow, None)
        while not done:
            job = value
            if on_job is not None:
                on_job(job)
            arrays = evaluator.evaluate_now(job, (0, job.n_items), on_rows=on_rows,
                                            on_items=on_progress)
            evaluator.release(job)
            done, value = step(flow, arrays)
        return value
    finally:
        flow.close()
