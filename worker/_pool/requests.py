"""The requests in flight on the pool (``PoolRequest``: one
``WorkerPool.evaluate()``) and the queue their spans are handed out from:
round robin over requests, so none waits for another to drain; a failed,
cancelled or finished request leaves the queue at once.

Lost spans. A span whose process died before it got it goes back to the
front (``requeue``; not the span's fault, no attempt counted). A span whose
process was lost while serving it (died, or killed as stalled) is "lost"
(``lose``): the first time it goes back to the front, to be served by
another process (``MAX_SPAN_RETRIES``: the one budget for deaths and stalls
alike); the second time the request fails with ``InternalError`` naming the
span and both processes with how they ended. So a request answers either
every item exactly, or an error: never a partial answer.

Everything here runs on the event loop, with no await: each method is
atomic with respect to the pool's tasks.
"""

from __future__ import annotations

import itertools
import weakref
from collections import deque
from typing import Any

import anyio

from .._core.jobs import Arrays, GridJob
from .._core.layouts import empty_results
from .._errors import InternalError
from .codec import encode_frame
from .proc import Child, ChildDied

__all__ = ["MAX_SPAN_RETRIES", "PoolRequest", "RequestQueue", "KeptJobs", "span_message",
           "span_sent"]

MAX_SPAN_RETRIES = 1   # a span lost while being served is tried this many times more


class PoolRequest:
    """One ``WorkerPool.evaluate()`` in flight: a job's span, cut in spans
    for the pool's processes, and its result arrays as they fill."""

    def __init__(self, request_id: int, job: GridJob, spec: dict,
                 spans: list[tuple[int, int]], total: int, base: int = 0,
                 estimates: list[float] | None = None) -> None:
        self.id = request_id
        self.base = base    # the job's item at row 0 of ``out`` (spans are job items)
        self.job = job
        self.spec = spec
        self.spans: deque[tuple[int, int]] = deque(spans)
        # span -> estimated seconds (the stall timeout is a multiple of it)
        self.estimates = dict(zip(spans, estimates or [0.0] * len(spans)))
        self.lost: dict[tuple[int, int], list[str]] = {}   # span -> how each attempt ended
        self.total = total
        self.done = 0
        self.landed: list[tuple[int, int]] = []   # spans stored, not yet told to on_rows
        self.out: Arrays = empty_results(total)
        self.error: BaseException | None = None
        self.finished = False
        self.holders: set[Child] = set()   # pool processes that were sent the spec
        self.changed = anyio.Event()
        # The key pool processes cache the job's scan under: this request's
        # own (dropped when it ends), or the job's, kept across requests.
        self.job_key: int = request_id
        self.kept: KeptJobs | None = None

    def notify(self) -> None:
        self.changed.set()
        self.changed = anyio.Event()


class KeptJobs:
    """Jobs whose scan the pool processes keep across requests, so a
    checkpointed run's chunks (one request each) scan once per job per
    process: a key per ``GridJob`` object (negative: request ids are
    positive), the processes holding it, and ``drop`` (the evaluator's
    ``release``). A job collected without ``drop`` (a run that failed) is
    dropped at the next ``collect``: its key is queued by a finalizer, which
    may run on any thread, so it only appends."""

    def __init__(self) -> None:
        self._keys: weakref.WeakKeyDictionary[GridJob, int] = weakref.WeakKeyDictionary()
        self._holders: dict[int, set[Child]] = {}
        self._next = itertools.count(1)
        self._gone: list[int] = []

    def key(self, job: GridJob) -> int:
        key = self._keys.get(job)
        if key is None:
            key = self._keys[job] = -next(self._next)
            weakref.finalize(job, self._gone.append, key)
        return key

    def held(self, key: int, child: Child) -> None:
        self._holders.setdefault(key, set()).add(child)

    def drop(self, job: GridJob) -> bool:
        """Tell the processes holding ``job`` to drop it; True if any did."""
        key = self._keys.pop(job, None)
        return key is not None and self._drop_key(key)

    def collect(self) -> bool:
        dropped = False
        while self._gone:
            dropped = self._drop_key(self._gone.pop()) or dropped
        return dropped

    def _drop_key(self, key: int) -> bool:
        holders = [c for c in self._holders.pop(key, ()) if not c.dead]
        frame = encode_frame({"op": "drop_job", "job": key})
        for child in holders:
            child.control.append(frame)
            child.jobs.discard(key)
        return bool(holders)


def span_message(request: PoolRequest, span: tuple[int, int], child: Child) -> dict[str, Any]:
    """The ``eval`` frame of ``span`` for ``child``: the job's spec only if
    the process does not hold the job; ``last`` (drop it after this span)
    for a request's own job on its last span."""
    msg: dict[str, Any] = {"op": "eval", "job": request.job_key, "span": list(span)}
    if request.job_key not in child.jobs:
        msg["spec"] = request.spec
    if request.kept is None and not request.spans:
        msg["last"] = True
    return msg


def span_sent(request: PoolRequest, child: Child, msg: dict[str, Any]) -> None:
    """Record what ``child`` holds once ``msg`` was sent to it."""
    key = request.job_key
    if msg.get("last"):
        child.jobs.discard(key)
        request.holders.discard(child)
        return
    child.jobs.add(key)
    if request.kept is not None:
        request.kept.held(key, child)
    else:
        request.holders.add(child)


class RequestQueue:
    """Requests with spans to hand out, and ``wake``: set (and replaced) on every
    change, a request queued or failed, a process ready or dead."""

    def __init__(self) -> None:
        self.closing = False
        self.wake = anyio.Event()
        self._queue: deque[PoolRequest] = deque()   # requests with spans to hand out

    def queued_spans(self) -> int:
        return sum(len(r.spans) for r in self._queue)

    def notify(self) -> None:
        self.wake.set()
        self.wake = anyio.Event()

    def add(self, request: PoolRequest) -> None:
        self._queue.append(request)
        self.notify()

    def close(self) -> None:
        """Hand out no more spans; fail every queued request."""
        self.closing = True
        self.fail_all("the process pool is shutting down")
        self.notify()

    def fail_all(self, message: str) -> None:
        for request in list(self._queue):
            self.fail(request, InternalError(message))

    def fail(self, request: PoolRequest, error: BaseException) -> None:
        if request.finished or request.error is not None:
            return
        request.error = error
        request.spans.clear()
        self._unqueue(request)
        request.notify()

    def _unqueue(self, request: PoolRequest) -> None:
        try:
            self._queue.remove(request)
        except ValueError:
            pass

    def finish(self, request: PoolRequest) -> None:
        """Success, failure or cancellation: drop queued spans, free the job."""
        request.finished = True
        request.spans.clear()
        self._unqueue(request)
        if request.holders:
            frame = encode_frame({"op": "drop_job", "job": request.id})
            for child in request.holders:
                if not child.dead:
                    child.control.append(frame)
            request.holders.clear()
            self.notify()

    async def next_work(self, child: Child) -> tuple[PoolRequest, tuple[int, int]] | None:
        """The next span for ``child`` (round robin over requests), or None when
        control frames are waiting. Raises ``ChildDied`` when it died idle."""
        while True:
            if child.dead or self.closing:
                raise ChildDied
            if child.control:
                return None
            if self._queue:
                request = self._queue[0]
                span = request.spans.popleft()
                if request.spans:
                    self._queue.rotate(-1)
                else:
                    self._queue.popleft()
                return request, span
            await self.wake.wait()

    def lose(self, request: PoolRequest, span: tuple[int, int], what: str) -> str:
        """The process serving ``span`` of ``request`` is gone (``what``: which
        process and how it ended). Requeue the span for another process,
        once; after that, fail the request. Returns "retried", "failed", or
        "ignored" (the request had already ended)."""
        if request.finished or request.error is not None:
            return "ignored"
        history = request.lost.setdefault(span, [])
        history.append(what)
        a, b = span
        if len(history) <= MAX_SPAN_RETRIES:
            self.requeue(request, span)
            return "retried" if request.error is None else "failed"
        self.fail(request, InternalError(
            f"{what} while serving span [{a}, {b}) of this request, which had already been "
            f"retried after {'; then after '.join(history[:-1])}; the pool has replaced them"))
        return "failed"

    def requeue(self, request: PoolRequest, span: tuple[int, int]) -> None:
        if request.finished or request.error is not None:
            return
        if self.closing:
            self.fail(request, InternalError("the process pool is shutting down"))
            return
        request.spans.appendleft(span)
        if request not in self._queue:
            self._queue.appendleft(request)
        self.notify()
