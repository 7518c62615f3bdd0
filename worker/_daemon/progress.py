"""``$/progress`` notifications for a request that gave a ``progress_token``.

``begin`` at the first tick after the work is known (the first job's size,
or a checkpointed run's counts once its journal is read: so ``begin`` never
says ``0 of 0`` and a resumed run's ``begin`` already counts, in ``done``,
what an earlier attempt finished), ``report`` at
most every ``_INTERVAL`` seconds while ``done`` moves, ``end`` before the
response (the handler's ``async with`` ends before it returns). A request
without a token costs nothing here.

``best`` (SPEC 7): evaluators hand finished rows to ``offer_rows``; for a job
that carries a ``JobScore`` (the flow's answer is that job's best point),
the best feasible row so far is kept, ranked as the answer ranks it
(objective, then grid order), so the ``best`` of ``end`` is the answer's.
``offer_rows`` may run on another thread (one-hop local work): it replaces
one tuple, which the ticker reads whole.
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import numpy as np

from protocol._messages import ProgressBest, ProgressParams, ProgressValue

from .dispatch import RequestContext

_INTERVAL = 0.1  # at most about 10 reports a second (SPEC 7)


class Progress:
    """Counts work items across the jobs of one request and reports them."""

    def __init__(self, ctx: RequestContext, token: str | int | None, unit: str) -> None:
        self._ctx, self._token, self._unit = ctx, token, unit
        self.total = 0
        self._base = 0      # items of the jobs already finished
        self._current = 0   # items done of the running job
        self._sent: tuple = (-1, -1, None)
        self._t0 = time.monotonic()
        self._begun = False
        self._known = False  # total (and resumed work) known: begin may go out
        self._best: tuple[float, int, ProgressBest] | None = None  # (value, grid index, best)

    @property
    def done(self) -> int:
        return self._base + self._current

    def add_total(self, items: int) -> None:
        """A new job of ``items`` starts; earlier jobs count as done."""
        self._base = self.total
        self._current = 0
        self.total += items
        self._known = True

    def chunk_done(self, done_items: int, total_items: int) -> None:
        self._current = done_items

    def set_done(self, done: int, total: int) -> None:
        """Absolute counts (a checkpointed run reports its own totals,
        including what an earlier attempt finished)."""
        self._base, self._current, self.total = done, 0, total
        self._known = True

    def offer_rows(self, job: Any, start: int, arrays: tuple) -> None:
        """Rows ``start ..`` of ``job`` are evaluated (module doc: ``best``)."""
        score = getattr(job, "score", None)
        if self._token is None or score is None or job.n_groups != 1:
            return
        metrics = arrays[0]
        values = metrics[:, score.column]
        ok = score.feasible(metrics) & ~np.isnan(values)
        if not ok.any():
            return
        key = np.where(ok, values if score.minimize else -values, np.inf)
        i = int(np.argmin(key))  # the first of equals: grid order breaks ties
        value, index = float(values[i]), start + i
        current = self._best
        if current is not None:
            better = value < current[0] if score.minimize else value > current[0]
            if not (better or (value == current[0] and index < current[1])):
                return
        if not math.isfinite(value):
            return
        self._best = (value, index, ProgressBest(objective=score.objective, value=value,
                                                 params=job.levels.params[index]))

    async def _finish(self, ok: bool) -> None:
        if ok:
            self._base, self._current = self.total, 0
        if not self._begun:
            await self._send("begin")
        await self._send("end")

    async def _tick(self) -> None:
        while True:
            await anyio.sleep(_INTERVAL)
            # Shielded: the ticker is cancelled when the work ends, and a
            # notification half sent must finish, or ``begin`` could be lost.
            with anyio.CancelScope(shield=True):
                await self.tick_once()

    async def tick_once(self) -> None:
        """One tick: ``begin`` once the work is known, then a ``report``
        whenever what it would say changed."""
        if not self._begun:
            if self._known:
                await self._send("begin")
        elif self._state() != self._sent:
            await self._send("report")

    def _state(self) -> tuple:
        """What a report says: a new one goes out only when this changed."""
        return self.done, self.total, None if self._best is None else self._best[1]

    async def _send(self, kind: str) -> None:
        self._sent = self._state()
        best = self._best
        value = ProgressValue(kind=kind, done=self.done, total=self.total, unit=self._unit,
                              elapsed_ms=(time.monotonic() - self._t0) * 1e3,
                              best=None if best is None else best[2])
        await self._ctx.notify("$/progress", ProgressParams(token=self._token, value=value))
        self._begun = True


@asynccontextmanager
async def track(ctx: RequestContext, token: str | int | None, unit: str) -> AsyncIterator[Progress]:
    """``async with track(ctx, token, "runs") as progress``: a ticker sends
    begin/report while the block runs; ``end`` goes out when it ends, also
    when it was cancelled (shielded; the dispatcher drops it if the -32800
    already went out). Scopes nest properly: the ticker's task group is
    opened and closed inside this one frame."""
    progress = Progress(ctx, token, unit)
    if token is None:
        yield progress
        return
    ok = False
    error: Exception | None = None
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(progress._tick)
            try:
                yield progress
                ok = True
            except Exception as exc:  # carried out of the task group unwrapped
                error = exc
            finally:
                tg.cancel_scope.cancel()
        if error is not None:
            raise error
    finally:
        with anyio.CancelScope(shield=True):
            await progress._finish(ok)
