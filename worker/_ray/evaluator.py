"""``RayEvaluator``: spans of a job as tasks on a Ray cluster
(``worker._run.evaluators``; SPEC 14; docs/cluster.md).

- Data: entering it (``async with``, ``drive`` does it) connects
  (``connect``) and puts the request's dataset into the object store once;
  each job goes in once (its spec: levels, positions, groups, config), on
  first use, until ``release``. Tasks take both by reference (numpy arrays
  are zero-copy views of each node's store, never pickled per task) and
  keep them per worker process (``tasks``).
- Work: ``evaluate(job, span)`` cuts the span as the pool does
  (``worker._pool.spans.cut_spans``, for the cluster's CPUs, spans of about
  ``span_seconds``), submits one task per span and assembles the rows in
  item order, each span's rows copied out of the store as it lands.
  ``on_rows`` and ``on_items`` are called as spans finish (in the awaiting
  task), so progress counts finished spans.
- Never blocking the event loop: every Ray call (connect, put, submit,
  wait, get, cancel) runs on a worker thread; the wait returns at least
  every ``poll_seconds``, so a cancel is seen at once (the thread is
  abandoned, not waited for).
- Failure: a task whose worker process or node dies is retried by Ray
  (``max_retries``, default 3); the request still answers every item
  exactly. An exception in a task, a task lost more often than that, or a
  cluster that cannot be reached (also mid-request: its address is checked
  when no span has landed for ``check_seconds``) fails the request with
  ``InternalError`` (-32603) naming the address and the span; the rest of
  its tasks are cancelled. Other requests, and the daemon, carry on.
- Cancellation: cancelling ``evaluate`` cancels its tasks (``ray.cancel``:
  queued ones never run; a running one stops when its kernel returns, <= one
  span) and discards them. With a ``CheckpointingEvaluator`` around it a
  chunk is journaled when ``evaluate`` returns its arrays, once: a retried
  task's rows replace nothing, since the rows are taken from exactly one
  finished attempt per span.
- Concurrency: ``concurrency`` is the cluster's CPU count (when entered).
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import anyio
import numpy as np

from .._core.dataset import Dataset
from .._core.jobs import Arrays, GridJob, OnRows
from .._core.layouts import empty_results
from .._core.tunables import EVALS_PER_SECOND
from .._errors import InternalError, WorkerError
from .._pool.spans import cut_spans, group_sizes
from .._run.evaluators import Evaluator, OnItems, Span
from .connect import CONNECT_TIMEOUT, connect, reachable
from .tasks import job_spec, run_span

__all__ = ["RAY_SPAN_SECONDS", "RayEvaluator"]

# Target time of one task: a task costs ~1 ms or more of scheduling (more
# across machines), so spans are longer than the pool's 25 ms.
RAY_SPAN_SECONDS = 0.1

_remote_cache: dict[int, Any] = {}


def _remote(ray: Any, max_retries: int) -> Any:
    fn = _remote_cache.get(max_retries)
    if fn is None:
        fn = _remote_cache[max_retries] = ray.remote(num_cpus=1, max_retries=max_retries,
                                                     retry_exceptions=False)(run_span)
    return fn


class RayEvaluator(Evaluator):
    """Spans of ``ds``'s jobs evaluated on the Ray cluster at ``address``
    (module doc)."""

    def __init__(self, ds: Dataset, address: str, *, span_seconds: float = RAY_SPAN_SECONDS,
                 max_retries: int = 3, poll_seconds: float = 0.25,
                 check_seconds: float = 10.0, connect_timeout: float = CONNECT_TIMEOUT) -> None:
        self.ds = ds
        self.address = address
        self.span_seconds = float(span_seconds)
        self.max_retries = int(max_retries)
        self.poll_seconds = float(poll_seconds)
        self.check_seconds = float(check_seconds)
        self.connect_timeout = float(connect_timeout)
        self.concurrency = 1
        self._ray: Any = None
        self._ds_ref: Any = None
        self._jobs: dict[int, tuple[GridJob, Any, np.ndarray]] = {}
        self.tasks = 0           # tasks submitted (stats, bench)
        self.task_bytes = 0      # bytes put into the object store (dataset, jobs)

    # ------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> RayEvaluator:
        self._ray = ray = await anyio.to_thread.run_sync(connect, self.address,
                                                         self.connect_timeout)

        def setup() -> tuple[int, Any]:
            cpus = int(ray.cluster_resources().get("CPU", 1))
            return cpus, ray.put(self.ds)

        try:
            cpus, self._ds_ref = await anyio.to_thread.run_sync(setup)
        except WorkerError:
            raise
        except Exception as e:
            raise InternalError(f"the Ray cluster at {self.address} failed: "
                                f"{type(e).__name__}: {e}") from None
        self.concurrency = max(1, cpus)
        self.task_bytes += int(self.ds.nbytes)
        return self

    async def __aexit__(self, *exc: Any) -> None:
        # Dropping the references frees the objects (this process owns them).
        self._jobs.clear()
        self._ds_ref = None

    def release(self, job: GridJob) -> None:
        self._jobs.pop(id(job), None)

    def _job(self, job: GridJob) -> tuple[Any, np.ndarray]:
        """(job reference, group sizes), put into the store on first use."""
        hit = self._jobs.get(id(job))
        if hit is not None and hit[0] is job:
            return hit[1], hit[2]
        spec = job_spec(job)
        ref = self._ray.put(spec)
        sizes = group_sizes(SimpleNamespace(dataset=self.ds), job)
        self._jobs[id(job)] = (job, ref, sizes)
        self.task_bytes += sum(a.nbytes for a in spec["levels"].values()) + spec["positions"].nbytes
        return ref, sizes

    # ------------------------------------------------------------ evaluate

    def _fail(self, what: str, e: BaseException) -> InternalError:
        return InternalError(f"the Ray cluster at {self.address} failed {what}: "
                             f"{type(e).__name__}: {e}")

    async def evaluate(self, job: GridJob, span: Span, *, on_rows: OnRows | None = None,
                       on_items: OnItems | None = None) -> Arrays:
        if self._ds_ref is None:
            raise RuntimeError("a RayEvaluator is used inside `async with`")
        ray = self._ray
        lo, hi = int(span[0]), int(span[1])
        total = hi - lo
        out = empty_results(total)
        if total == 0:
            return out
        remote = _remote(ray, self.max_retries)

        def submit() -> dict[Any, tuple[int, int]]:
            job_ref, sizes = self._job(job)
            whole = (lo, hi) == (0, job.n_items)
            spans = cut_spans(sizes, job.levels.n_points, self.concurrency,
                              EVALS_PER_SECOND * self.span_seconds, None if whole else (lo, hi))
            refs = [self._ds_ref, job_ref]
            return {remote.remote(refs, a, b): (a, b) for a, b in spans}

        try:
            pending = await anyio.to_thread.run_sync(submit)
        except Exception as e:
            raise self._fail(f"to take job items [{lo}, {hi})", e) from None
        self.tasks += len(pending)
        done = 0
        quiet = 0.0
        try:
            while pending:
                landed = await anyio.to_thread.run_sync(self._wait, list(pending),
                                                        abandon_on_cancel=True)
                if not landed:
                    quiet += self.poll_seconds
                    if quiet >= self.check_seconds:
                        quiet = 0.0
                        why = await anyio.to_thread.run_sync(reachable, self.address,
                                                             self.connect_timeout,
                                                             abandon_on_cancel=True)
                        if why is not None:
                            raise InternalError(f"the Ray cluster at {self.address} became "
                                                f"unreachable mid-request: {why}")
                    continue
                quiet = 0.0
                for ref, result in landed:
                    a, b = pending.pop(ref)
                    if isinstance(result, BaseException):
                        cause = getattr(result, "cause", None)
                        if isinstance(cause, WorkerError):
                            raise cause
                        raise self._fail(f"on job items [{a}, {b})", result)
                    for o, r in zip(out, result):
                        o[a - lo:b - lo] = r
                    if on_rows is not None:
                        on_rows(job, a, tuple(o[a - lo:b - lo] for o in out))
                    done += b - a
                    if on_items is not None:
                        on_items(done, total)
            return out
        finally:
            if pending:
                refs = list(pending)
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(self._cancel, refs)

    def _wait(self, refs: list) -> list[tuple[Any, Any]]:
        """Finished tasks among ``refs`` (waits up to ``poll_seconds`` for the
        first), each with its result arrays or the error it ended with."""
        ray = self._ray
        ready, _ = ray.wait(refs, num_returns=1, timeout=self.poll_seconds)
        if not ready:
            return []
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
        landed = []
        for ref in ready:
            try:
                landed.append((ref, ray.get(ref)))
            except Exception as e:
                landed.append((ref, e))
        return landed

    def _cancel(self, refs: list) -> None:
        for ref in refs:
            try:
                self._ray.cancel(ref)
            except Exception:  # already finished or gone with its node: nothing to stop
                pass
