"""The daemon's process pool: warm pool processes that evaluate ``GridJob``
spans on datasets in shared memory.

- Start: ``size`` fresh interpreters (``python -m worker._pool.child``; no
  fork, so nothing of Numba's threading layer is inherited), each loading the
  kernels from Numba's on-disk cache before it is "ready". ``NUMBA_NUM_THREADS``
  (default 1) is set in their environment so N processes on N cores do not
  oversubscribe them. Their stderr is the daemon's stderr; they run in their
  own session, so signals to the daemon's process group reach the daemon only.
- Data: a dataset goes to the pool once, as a shared file (``worker._pool.shm``);
  a pool process maps it on the first span of a job and keeps it mapped
  (small LRU) until ``forget``. A job (levels, positions, config) travels
  once per process, its candle scan runs once per process; spans are tiny.
- Work: a job's items are cut into contiguous spans of about equal cost
  (~25 ms each; one span when the whole job is smaller), queued, and pulled
  by idle processes; concurrent ``evaluate()`` requests take turns (round
  robin), so none waits for another to drain. Results are assembled in item
  order.
- Failure: a pool process that dies while serving a span (a crash, the OOM
  killer, SIGKILL) is replaced in the background (``restarts`` counts it)
  and the span is retried once on another process (``span_retries``); the
  request still answers every item exactly. Lost a second time, the span fails
  its request (``InternalError``, -32603) naming the span, both processes and
  how they ended (``exit_text``): never a partial answer. A process that
  dies idle fails nothing. A pool process that fails on a span (an exception
  in it, a dataset file gone) fails that request at once: no retry, as it would
  fail again.
- Stalls: a span with no reply for ``max(stall_timeout_min_s, stall_factor
  x its estimate)`` (the estimate: ``cut_spans``' cost model, ``span_seconds``)
  marks its process stalled (stopped by SIGSTOP, a debugger, swapping, a
  hang): it is SIGKILLed, reaped and replaced, ``stalled`` counts it, and
  the span is lost as above (the same retry-once budget). The timeout's
  minimum covers what the estimate leaves out (the candle scan with a job's
  first span, mapping a dataset). The watchdog is the serving task's own
  timeout on the reply (``_reply``): no extra task, and a stopped process
  holds up only its own slot.
- Cancelling ``evaluate()`` drops its queued spans at once; spans already
  running finish in their process (<= one span) and are discarded.
- Shutdown (``aclose``/``__aexit__``, also when cancelled): stdin closed (a
  pool process exits at EOF), a short grace, then SIGTERM, then SIGKILL, and
  every process is reaped. Pool processes also ask the kernel to kill them
  when the daemon dies (``PR_SET_PDEATHSIG``), so none is ever orphaned.

The subpackage's layers and how to use it: ``worker._pool`` (its docstring).
"""

from __future__ import annotations

import itertools
import logging
import signal
from collections.abc import Callable
from typing import Any

import anyio

from .._core.jobs import Arrays, GridJob, OnRows
from .._errors import InternalError
from .codec import encode_frame, unpack_array
from .proc import DEATH_ERRORS, Child, ChildDied, Processes, StartFailed, exit_text, send_signal
from .requests import KeptJobs, PoolRequest, RequestQueue, span_message, span_sent
from .shm import SharedDataset
from .spans import (
    EVALS_PER_SECOND,
    SPAN_SECONDS,
    cut_spans,
    group_sizes,
    job_spec,
    span_seconds,
    stall_timeout,
)

__all__ = ["WorkerPool"]

log = logging.getLogger("worker.pool")

_MAX_BACKOFF = 30.0               # between failed restarts


class WorkerPool:
    """``size`` warm pool processes evaluating ``GridJob`` spans (module doc).

    ``numba_threads``: Numba threads per pool process (``NUMBA_NUM_THREADS``).
    ``target_span_evaluations``: span size in call x grid-point evaluations.
    ``stall_timeout_min_s``, ``stall_factor``: a span with no reply for
    ``max(stall_timeout_min_s, stall_factor x its estimated time)`` has its
    process killed and replaced, and is retried (module doc).
    ``on_span_start(pid, job)``: test hook, called right after a span was sent.
    """

    def __init__(self, size: int, *, numba_threads: int = 1,
                 target_span_evaluations: int = int(EVALS_PER_SECOND * SPAN_SECONDS),
                 stall_timeout_min_s: float = 30.0, stall_factor: float = 10.0,
                 env: dict[str, str] | None = None) -> None:
        if size < 1:
            raise ValueError("pool size must be at least 1")
        if not stall_timeout_min_s > 0 or not stall_factor > 0:
            raise ValueError("the stall timeout and factor must be positive")
        self.size = size
        self.numba_threads = max(1, int(numba_threads))
        self.target_span_evaluations = max(1, int(target_span_evaluations))
        self.stall_timeout_min_s = float(stall_timeout_min_s)
        self.stall_factor = float(stall_factor)
        self.restarts = 0          # pool processes replaced (died or killed as stalled)
        self.stalled = 0           # of which killed as stalled
        self.span_retries = 0      # spans lost while served, given to another process
        self.job_scans = 0         # candle scans run by pool processes (one per job each)
        self._kept = KeptJobs()
        self.on_span_start: Callable[[int, GridJob], None] | None = None
        self._children: list[Child | None] = [None] * size
        self._processes = Processes(env)
        self._requests = RequestQueue()
        self._ids = itertools.count(1)
        self._tg: anyio.abc.TaskGroup | None = None
        self._started = False
        self._closed = False
        self._last_start_error = ""

    @property
    def _closing(self) -> bool:
        # One flag: ``aclose`` closes the request queue first thing.
        return self._requests.closing

    @property
    def _wake(self) -> anyio.Event:
        """Set (and replaced) on every change; tests wait on it."""
        return self._requests.wake

    # ------------------------------------------------------------ stats

    @property
    def alive(self) -> int:
        """Pool processes ready to take work."""
        return sum(1 for c in self._children if c is not None and c.ready and not c.dead)

    @property
    def pids(self) -> list[int]:
        return [c.pid for c in self._children if c is not None and not c.dead]

    @property
    def all_pids(self) -> list[int]:
        """Every pool process started and not yet reaped (also ones starting)."""
        return self._processes.pids

    def stats(self) -> dict[str, Any]:
        return {"size": self.size, "alive": self.alive, "restarts": self.restarts,
                "stalled": self.stalled, "span_retries": self.span_retries,
                "job_scans": self.job_scans,
                "queued_spans": self._requests.queued_spans(),
                "numba_threads": self.numba_threads,
                "last_start_error": self._last_start_error or None}

    # ------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> WorkerPool:
        if self._started:
            raise RuntimeError("a WorkerPool can be entered once")
        self._started = True
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        try:
            ready: list[anyio.Event] = [anyio.Event() for _ in range(self.size)]
            failed: list[BaseException] = []
            for i in range(self.size):
                self._tg.start_soon(self._slot, i, ready[i], failed)
            for ev in ready:
                await ev.wait()
                if failed:
                    raise InternalError(f"the process pool could not start: {failed[0]}")
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self.aclose()
                await self._tg.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(self, *exc: Any) -> bool | None:
        with anyio.CancelScope(shield=True):
            await self.aclose()
        assert self._tg is not None
        return await self._tg.__aexit__(*exc)

    async def aclose(self) -> None:
        """Stop every pool process (EOF, grace, SIGTERM, SIGKILL) and reap it.
        Any task may call it; idempotent; never leaves a process behind."""
        if self._closed:
            return
        self._requests.close()
        with anyio.CancelScope(shield=True):
            await self._processes.stop_all()
            self._closed = True
            if self._tg is not None:
                self._tg.cancel_scope.cancel()

    # ------------------------------------------------------------ requests

    async def evaluate(self, shared: SharedDataset, dataset_key: str, job: GridJob, *,
                       on_progress: Callable[[int, int], None] | None = None,
                       on_rows: OnRows | None = None,
                       span: tuple[int, int] | None = None, keep_job: bool = False) -> Arrays:
        """The result arrays (metrics, exits, skips: ``worker._core.layouts``) of
        every item of ``job``, as ``worker._core.jobs.evaluate`` would give them.
        ``span=(a, b)``: only items ``[a, b)`` (``b - a`` rows), cut into spans
        the same way (a checkpointed run's chunk, ``worker._run.checkpoint``).
        ``keep_job``: pool processes keep the job's scan after this call, for
        the next calls with the same ``GridJob`` object, until ``drop_job``.

        ``on_progress(done_items, total_items)`` is called (in this task) as
        spans complete, last with ``done == total``; ``on_rows(job, a, arrays)``
        (also in this task) with each span's rows as they land (``a``: the
        span's first job item). Raises ``InternalError``
        when a span of this request is lost twice (its process died or stalled
        on both attempts), or a pool process fails on it.
        """
        if self._closing or not self._started:
            raise InternalError("the process pool is not running")
        lo, hi = (0, job.n_items) if span is None else (int(span[0]), int(span[1]))
        if not 0 <= lo <= hi <= job.n_items:
            raise ValueError(f"span {span} is not within the job's {job.n_items} items")
        total = hi - lo
        with shared.hold():
            spec = job_spec(shared, dataset_key, job)
            sizes = group_sizes(shared, job)
            spans = cut_spans(sizes, job.levels.n_points, self.size,
                              self.target_span_evaluations, span)
            request = PoolRequest(next(self._ids), job, spec, spans, total, base=lo,
                                  estimates=span_seconds(sizes, job.levels.n_points, spans))
            if keep_job:
                request.job_key, request.kept = self._kept.key(job), self._kept
            self.drop_job(None)
            if total == 0:
                return request.out
            self._requests.add(request)
            reported = 0
            try:
                while True:
                    if request.error is not None:
                        raise request.error
                    while request.landed:
                        a, b = request.landed.pop()
                        if on_rows is not None:
                            on_rows(job, a, tuple(o[a - lo:b - lo] for o in request.out))
                    if request.done != reported and on_progress is not None:
                        reported = request.done
                        on_progress(reported, total)
                    if request.done == total:
                        return request.out
                    await request.changed.wait()
            finally:
                self._requests.finish(request)

    def drop_job(self, job: GridJob | None) -> None:
        """Drop ``job``'s kept scan (``keep_job``), and those of collected jobs."""
        if (job is not None and self._kept.drop(job)) | self._kept.collect():
            self._requests.notify()

    async def wait_ready(self) -> None:
        """Wait until every place in the pool has a ready process (after a
        restart, say). Returns at once when the pool is closing."""
        while self.alive < self.size and not self._closing:
            await self._requests.wake.wait()

    async def forget(self, dataset_key: str) -> None:
        """Tell every pool process to unmap the dataset ``dataset_key``
        (before the daemon closes its ``SharedDataset``)."""
        frame = encode_frame({"op": "forget", "key": dataset_key})
        for child in self._children:
            if child is not None and not child.dead:
                child.control.append(frame)
        self._requests.notify()

    # ------------------------------------------------------------ internals

    async def _serve(self, child: Child) -> None:
        """Hand spans to one ready pool process until it dies or the pool closes."""
        while True:
            work = await self._requests.next_work(child)
            while child.control:
                frame = child.control.pop(0)
                try:
                    await child.send(frame)
                except DEATH_ERRORS:
                    raise ChildDied from None
            if work is None:
                continue
            request, span = work
            msg = span_message(request, span, child)
            if child.has_exited():
                self._requests.requeue(request, span)
                raise ChildDied
            try:
                await child.send(encode_frame(msg))
            except DEATH_ERRORS:
                # It was gone before it got the span: not this request's fault.
                self._requests.requeue(request, span)
                raise ChildDied from None
            span_sent(request, child, msg)
            child.serving, child.serving_span = request, span
            if self.on_span_start is not None:
                try:
                    self.on_span_start(child.pid, request.job)
                except Exception:
                    log.exception("on_span_start hook failed")
            reply = await self._reply(child, request.estimates.get(span, 0.0))
            child.serving = child.serving_span = None
            if request.finished or request.error is not None:
                continue  # cancelled or failed meanwhile: discard
            if not reply.get("ok"):
                self._requests.fail(request, InternalError(
                    f"pool process {child.pid} failed on this request: {reply.get('error')}"))
                continue
            self.job_scans += int(reply.get("scan", 0))
            a, b = span
            for out, key in zip(request.out, ("m", "e", "s")):
                out[a - request.base:b - request.base] = unpack_array(reply[key], writable=False)
            request.done += b - a
            request.landed.append(span)
            request.notify()

    async def _reply(self, child: Child, estimate: float) -> Any:
        """The reply to the span ``child`` is serving; raises ``ChildDied``
        when it dies, or when it stalls (no reply within the stall timeout:
        then it is SIGKILLed here and its slot reaps and replaces it)."""
        timeout = stall_timeout(estimate, min_seconds=self.stall_timeout_min_s,
                                factor=self.stall_factor)
        with anyio.move_on_after(timeout):
            try:
                return await child.replies.receive()
            except (anyio.EndOfStream, anyio.ClosedResourceError):
                raise ChildDied from None
        self.stalled += 1
        child.stalled = f"no reply to a span for {timeout:.1f} s, estimated {estimate:.3f} s"
        log.error("pool process %d stalled (%s); killing it", child.pid, child.stalled)
        send_signal(child.proc, signal.SIGKILL)
        raise ChildDied

    async def _slot(self, index: int, first_ready: anyio.Event,
                    failed: list[BaseException]) -> None:
        """One place in the pool: start a process, serve, replace it when it dies."""
        backoff = 0.5
        while not self._closing:
            try:
                child = await self._processes.spawn(self.numba_threads)
            except StartFailed as e:
                if not first_ready.is_set():  # at pool start: give up
                    failed.append(e)
                    first_ready.set()
                    return
                if self._closing:
                    return
                self._last_start_error = str(e)
                log.error("%s; retrying in %.1f s", e, backoff)
                if self.alive == 0:  # nobody can serve the queue
                    self._requests.fail_all(f"no pool process is available: {e}")
                await anyio.sleep(backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF)
                continue
            backoff = 0.5
            self._children[index] = child
            first_ready.set()
            self._requests.notify()  # wake: work may have been waiting for a process
            try:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(child.read_replies, self._requests.notify)
                    try:
                        await self._serve(child)
                    except ChildDied:
                        pass
                    except Exception:  # a bug here must not take the pool down
                        log.exception("serving pool process %d failed; replacing it",
                                      child.pid)
                        send_signal(child.proc, signal.SIGKILL)
                    tg.cancel_scope.cancel()
            finally:
                child.dead = True
                child.close_streams()
                self._children[index] = None
                request, span = child.serving, child.serving_span
                if self._closing:
                    if request is not None:
                        self._requests.fail(request, InternalError("the process pool is shutting down"))
                    await self._processes.reap(child)
            if self._closing:
                return
            rc = await self._processes.reap(child)
            self.restarts += 1
            what = (f"pool process {child.pid} died ({exit_text(rc)})" if child.stalled is None
                    else f"pool process {child.pid} stalled ({child.stalled}) and was killed "
                         f"({exit_text(rc)})")
            if request is None or span is None:
                log.error("%s while idle; replacing it", what)
                continue
            outcome = self._requests.lose(request, span, what)
            if outcome == "retried":
                self.span_retries += 1
            log.error("%s while serving span [%d, %d); replacing it; %s", what, *span,
                      {"retried": "the span goes to another process",
                       "failed": "it was lost twice: its request fails",
                       "ignored": "its request had already ended"}[outcome])
