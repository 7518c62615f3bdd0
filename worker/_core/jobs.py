"""Grid work as data: a ``GridJob`` says what to evaluate; the flows in
``optimize`` and ``callers`` are generators that *yield* jobs and receive
their result arrays back, so the same flow runs wherever its jobs are
evaluated: in this thread, on a worker thread or on the daemon's process pool
(``worker._run.drive`` drives a flow with an ``worker._run.evaluators.Evaluator``).

A job's work is a flat range of items ``g * n_points + p`` (caller group
``g``, grid point ``p``): any contiguous span of it can be evaluated on its
own, in any process that can see the dataset (``evaluate``).

Pure: nothing here blocks on anything but the kernels, and nothing knows of
threads or event loops.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from protocol import SimulatorConfig

from .dataset import Dataset
from .engine import GridLevels, SweepInput

R = TypeVar("R")
# The result arrays of a span of ``W`` items: metrics, exits, skipped
# (``worker._core.layouts``: widths ``RESULT_WIDTHS``, dtypes ``RESULT_DTYPES``).
Arrays = tuple[np.ndarray, np.ndarray, np.ndarray]
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
    as one group, or one group per caller code in ``group_codes`` (in order),
    or one group per array of request positions in ``groups`` (subsets of
    ``positions``: walk-forward folds and blocks, scanned once together).
    ``score``: set by flows whose answer is this job's best point."""

    levels: GridLevels  # or rengine.StrategyLevels: both ``prepare`` a sweep that can ``run``
    positions: np.ndarray
    group_codes: np.ndarray | None
    config: SimulatorConfig
    mode: str
    score: JobScore | None = None
    groups: tuple[np.ndarray, ...] | None = None

    @property
    def n_groups(self) -> int:
        if self.groups is not None:
            return len(self.groups)
        return 1 if self.group_codes is None else int(self.group_codes.size)

    @property
    def n_items(self) -> int:
        return self.n_groups * self.levels.n_points


def job_groups(ds: Dataset, job: GridJob, sweep: SweepInput) -> list[np.ndarray] | None:
    """Sweep rows of each group (None: one group of every call)."""
    if job.groups is not None:
        row_of = np.empty(ds.n_calls, np.int64)
        row_of[sweep.positions] = np.arange(sweep.positions.size)
        return [np.sort(row_of[g]) for g in job.groups]
    if job.group_codes is None:
        return None
    codes = ds.call_caller[sweep.positions]
    return [np.flatnonzero(codes == c) for c in job.group_codes.tolist()]


def evaluate(ds: Dataset, job: GridJob, span: tuple[int, int] | None = None,
             sweep: SweepInput | None = None) -> Arrays:
    """Metric arrays of the job's items ``span`` (default: all), in this process.
    ``sweep`` reuses a scan already made for this job."""
    if sweep is None:
        sweep = job.levels.prepare(ds, job.positions)
    return sweep.run(job_groups(ds, job, sweep), job.config, job.mode, span)


def step(flow: Flow[R], arrays: Arrays | None) -> tuple[bool, Any]:
    """Advance ``flow`` by one job: ``(False, next job)`` or ``(True, result)``.

    Returned rather than raised as StopIteration, which cannot cross a
    thread boundary (``worker._run.drive`` runs steps on a worker thread).
    """
    try:
        return False, (next(flow) if arrays is None else flow.send(arrays))
    except StopIteration as stop:
        return True, stop.value


# ``on_rows(job, start, arrays)``: rows ``start ..`` of ``job`` are done (progress's best).
OnRows = Callable[["GridJob", int, Arrays], None]


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
