"""The ``evaluate()`` calls in flight on the pool (``worker._pool.pool``) and the
queue their spans are handed out from: round robin over calls, so none waits
for another to drain; a failed, cancelled or finished call leaves the queue
at once.

Lost spans. A span whose process died before it got it goes back to the
front (``requeue``; not the span's fault, no attempt counted). A span whose
process was lost while serving it (died, or killed as stalled) is "lost"
(``lose``): the first time it goes back to the front, to be served by
another process (``MAX_SPAN_RETRIES``: the one budget for deaths and stalls
alike); the second time the call fails with ``InternalError`` naming the
span and both processes with how they ended. So a call answers either every
item exactly, or an error: never a partial answer.

Everything here runs on the event loop, with no await: each method is
atomic with respect to the pool's tasks.
"""

from __future__ import annotations

from collections import deque

import anyio
import numpy as np

from .._core.jobs import Arrays, GridJob
from .._errors import InternalError
from .child import encode_frame
from .proc import Child, ChildDied

__all__ = ["Call", "CallQueue", "MAX_SPAN_RETRIES"]

MAX_SPAN_RETRIES = 1   # a span lost while being served is tried this many times more


class Call:
    """One ``evaluate()`` in flight."""

    def __init__(self, call_id: int, job: GridJob, spec: dict,
                 spans: list[tuple[int, int]], total: int, base: int = 0,
                 estimates: list[float] | None = None) -> None:
        self.id = call_id
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
        self.out: Arrays = (np.empty((total, 11), np.float64), np.empty((total, 4), np.int64),
                            np.empty((total, 3), np.int64))
        self.error: BaseException | None = None
        self.finished = False
        self.holders: set[Child] = set()   # pool processes that were sent the spec
        self.changed = anyio.Event()

    def notify(self) -> None:
        self.changed.set()
        self.changed = anyio.Event()


class CallQueue:
    """Calls with spans to hand out, and ``wake``: set (and replaced) on every
    change, a call queued or failed, a process ready or dead."""

    def __init__(self) -> None:
        self.closing = False
        self.wake = anyio.Event()
        self._queue: deque[Call] = deque()     # calls with spans to hand out

    def queued_spans(self) -> int:
        return sum(len(c.spans) for c in self._queue)

    def notify(self) -> None:
        self.wake.set()
        self.wake = anyio.Event()

    def add(self, call: Call) -> None:
        self._queue.append(call)
        self.notify()

    def close(self) -> None:
        """Hand out no more spans; fail every queued call."""
        self.closing = True
        self.fail_all("the process pool is shutting down")
        self.notify()

    def fail_all(self, message: str) -> None:
        for call in list(self._queue):
            self.fail(call, InternalError(message))

    def fail(self, call: Call, error: BaseException) -> None:
        if call.finished or call.error is not None:
            return
        call.error = error
        call.spans.clear()
        self._unqueue(call)
        call.notify()

    def _unqueue(self, call: Call) -> None:
        try:
            self._queue.remove(call)
        except ValueError:
            pass

    def finish(self, call: Call) -> None:
        """Success, failure or cancellation: drop queued spans, free the job."""
        call.finished = True
        call.spans.clear()
        self._unqueue(call)
        if call.holders:
            frame = encode_frame({"op": "drop_job", "job": call.id})
            for child in call.holders:
                if not child.dead:
                    child.control.append(frame)
            call.holders.clear()
            self.notify()

    async def next_work(self, child: Child) -> tuple[Call, tuple[int, int]] | None:
        """The next span for ``child`` (round robin over calls), or None when
        control frames are waiting. Raises ``ChildDied`` when it died idle."""
        while True:
            if child.dead or self.closing:
                raise ChildDied
            if child.control:
                return None
            if self._queue:
                call = self._queue[0]
                span = call.spans.popleft()
                if call.spans:
                    self._queue.rotate(-1)
                else:
                    self._queue.popleft()
                return call, span
            await self.wake.wait()

    def lose(self, call: Call, span: tuple[int, int], what: str) -> str:
        """The process serving ``span`` of ``call`` is gone (``what``: which
        process and how it ended). Requeue the span for another process,
        once; after that, fail the call. Returns "retried", "failed", or
        "ignored" (the call had already ended)."""
        if call.finished or call.error is not None:
            return "ignored"
        history = call.lost.setdefault(span, [])
        history.append(what)
        a, b = span
        if len(history) <= MAX_SPAN_RETRIES:
            self.requeue(call, span)
            return "retried" if call.error is None else "failed"
        self.fail(call, InternalError(
            f"{what} while serving span [{a}, {b}) of this request, which had already been "
            f"retried after {'; then after '.join(history[:-1])}; the pool has replaced them"))
        return "failed"

    def requeue(self, call: Call, span: tuple[int, int]) -> None:
        if call.finished or call.error is not None:
            return
        if self.closing:
            self.fail(call, InternalError("the process pool is shutting down"))
            return
        call.spans.appendleft(span)
        if call not in self._queue:
            self._queue.appendleft(call)
        self.notify()
