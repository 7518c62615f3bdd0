"""Grid work as data: a ``GridJob`` says what to evaluate; the flows in
``_optimize`` and ``_callers`` are generators that *yield* jobs and receive
their metric arrays back, so the same flow runs in-process (``run_sync``) or
on the daemon's process pool, cut into chunks (``worker._pool.pool``).

A job's work is a flat range of items ``g * n_points + p`` (caller group
``g``, grid point ``p``): any contiguous span of it can be evaluated on its
own, in any process that can see the dataset.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from protocol import SimulatorConfig

from .dataset import Dataset
from .engine import GridLevels, SweepInput, prepare, run_grid

R = TypeVar("R")
Arrays = tuple[np.ndarray, np.ndarray, np.ndarray]  # metrics [W, 11], exits [W, 4], skipped [W, 3]
Flow = Generator["GridJob", Arrays, R]


@dataclass(frozen=True, eq=False)
class JobScore:
    """How the flow will rank a one-group job's rows (SPEC 5), so progress
    can tell the best point so far: ``column`` of the metrics, maximized
    unless ``minimize``, among the rows ``feasible(metrics)`` accepts."""

    objective: str
    column: int
    minimize: bool
    feasible: Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True, eq=False)
class GridJob:
    """Evaluate ``levels`` over the calls at ``positions`` (request positions),
    as one group, or one group per caller code in ``group_codes`` (in order).
    ``score``: set by flows whose answer is this job's best point."""

    levels: GridLevels
    positions: np.ndarray
    group_codes: np.ndarray | None
    config: SimulatorConfig
    mode: str
    score: JobScore | None = None

    @property
    def n_groups(self) -> int:
        return 1 if self.group_codes is None else int(self.group_codes.size)

    @property
    def n_items(self) -> int:
        return self.n_groups * self.levels.n_points

    @property
    def n_evaluations(self) -> int:
        """Call x grid-point evaluations: the size of the work."""
        return int(self.positions.size) * self.levels.n_points


def job_groups(ds: Dataset, job: GridJob, sweep: SweepInput) -> list[np.ndarray] | None:
    """Sweep rows of each caller group (None: one group of every call)."""
    if job.group_codes is None:
        return None
    codes = ds.call_caller[sweep.positions]
    return [np.flatnonzero(codes == c) for c in job.group_codes.tolist()]


def evaluate(ds: Dataset, job: GridJob, span: tuple[int, int] | None = None,
             sweep: SweepInput | None = None) -> Arrays:
    """Metric arrays of the job's items ``span`` (default: all), in this process.
    ``sweep`` reuses a scan already made for this job."""
    if sweep is None:
        sweep = prepare(ds, job.levels, job.positions)
    return run_grid(sweep, job_groups(ds, job, sweep), job.config, job.mode, span)


def step(flow: Flow[R], arrays: Arrays | None) -> tuple[bool, Any]:
    """Advance ``flow`` by one job: ``(False, next job)`` or ``(True, result)``.

    Returned rather than raised as StopIteration, which cannot cross a
    thread boundary (the daemon runs steps on a worker thread).
    """
    try:
        return False, (next(flow) if arrays is None else flow.send(arrays))
    except StopIteration as stop:
        return True, stop.value


# ``on_rows(job, start, arrays)``: rows ``start ..`` of ``job`` are done (progress's best).
OnRows = Callable[["GridJob", int, Arrays], None]


def run_sync(ds: Dataset, flow: Flow[R], on_job: Any = None, on_rows: OnRows | None = None) -> R:
    """Drive a flow to its result, evaluating every job in this process
    (``on_job(job)`` before each, so progress knows its total)."""
    done, value = step(flow, None)
    while not done:
        if on_job is not None:
            on_job(value)
        arrays = evaluate(ds, value)
        if on_rows is not None:
            on_rows(value, 0, arrays)
        done, value = step(flow, arrays)
    return value


def recorded(flow: Flow[R], jobs: list) -> Flow[R]:
    """``flow``, also keeping each (job, arrays) it is answered with (a run's
    report tabulates every grid point)."""
    job = next(flow)
    while True:
        arrays = yield job
        jobs.append((job, arrays))
        try:
            job = flow.send(arrays)
        except StopIteration as stop:
            return stop.value


def local_span_evaluator(ds: Dataset, limiter: Any = None):
    """``async (job, span) -> arrays`` in this process, on a worker thread,
    scanning the candles once per job (the last job's scan is kept)."""
    import anyio

    sweeps: dict[int, SweepInput] = {}

    def run(job: GridJob, span: tuple[int, int]) -> Arrays:
        sweep = sweeps.get(id(job))
        if sweep is None:
            sweeps.clear()
            sweep = sweeps[id(job)] = prepare(ds, job.levels, job.positions)
        return evaluate(ds, job, span, sweep)

    async def evaluate_span(job: GridJob, span: tuple[int, int]) -> Arrays:
        # Not abandoned on cancel: the span (short) ends first, so ``limiter``
        # is held until the kernel really stops. The client already has its
        # -32800: the dispatcher answers a cancel at once.
        return await anyio.to_thread.run_sync(run, job, span, limiter=limiter)

    return evaluate_span


SPAN_EVALUATIONS = 2_000_000  # in-process spans: a cancel waits for one at most


async def run_local(ds: Dataset, flow: Flow[R], *, limiter: Any = None,
                    on_job: Any = None, on_progress: Any = None,
                    on_rows: OnRows | None = None,
                    span_evaluations: int = SPAN_EVALUATIONS) -> R:
    """``run_sync`` for large work without a pool: each job evaluated in
    spans on a worker thread, with a cancellation point between spans."""
    import anyio

    evaluate_span = local_span_evaluator(ds, limiter)
    try:
        done, value = await anyio.to_thread.run_sync(step, flow, None)
        while not done:
            job = value
            if on_job is not None:
                on_job(job)
            per_item = -(-int(job.positions.size) // max(1, job.n_groups)) + 1
            width = max(1, span_evaluations // per_item)
            parts = [np.empty((0, 11)), np.zeros((0, 4), np.int64), np.zeros((0, 3), np.int64)]
            chunks = []
            for a in range(0, job.n_items, width):
                span = (a, min(job.n_items, a + width))
                chunks.append(await evaluate_span(job, span))
                if on_rows is not None:
                    on_rows(job, span[0], chunks[-1])
                if on_progress is not None:
                    on_progress(span[1], job.n_items)
            arrays = tuple(np.concatenate([c[i] for c in chunks]) if chunks else parts[i]
                           for i in range(3))
            done, value = await anyio.to_thread.run_sync(step, flow, arrays)
        return value
    finally:
        flow.close()
