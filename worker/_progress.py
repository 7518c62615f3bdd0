"""``$/progress`` notifications for a request that gave a ``progress_token``.

``begin`` at the first tick (so a resumed checkpointed run's ``begin``
already counts, in ``done``, what an earlier attempt finished), ``report`` at
most every ``_INTERVAL`` seconds while ``done`` moves, ``end`` before the
response (the handler's ``async with`` ends before it returns). A request
without a token costs nothing here.
"""

from __future__ import annotations

import time
from typing import Any

import anyio

from protocol._messages import ProgressParams, ProgressValue

_INTERVAL = 0.1  # at most about 10 reports a second (SPEC 7)


class Progress:
    """Counts work items across the jobs of one request and reports them."""

    def __init__(self, ctx: Any, token: str | int | None, unit: str) -> None:
        self._ctx, self._token, self._unit = ctx, token, unit
        self.total = 0
        self._base = 0      # items of the jobs already finished
        self._current = 0   # items done of the running job
        self._sent = (-1, -1)
        self._t0 = time.monotonic()
        self._tg: anyio.abc.TaskGroup | None = None
        self._begun = False

    @property
    def done(self) -> int:
        return self._base + self._current

    def add_total(self, items: int) -> None:
        """A new job of ``items`` starts; earlier jobs count as done."""
        self._base = self.total
        self._current = 0
        self.total += items

    def chunk_done(self, done_items: int, total_items: int) -> None:
        self._current = done_items

    def set_done(self, done: int, total: int) -> None:
        """Absolute counts (a checkpointed run reports its own totals,
        including what an earlier attempt finished)."""
        self._base, self._current, self.total = done, 0, total

    async def __aenter__(self) -> Progress:
        if self._token is None:
            return self
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        self._tg.start_soon(self._tick)
        return self

    async def __aexit__(self, exc_type, exc, tb) -> None:
        if self._tg is None:
            return
        self._tg.cancel_scope.cancel()
        await self._tg.__aexit__(None, None, None)
        if exc_type is None:
            self._base, self._current = self.total, 0
        # The end goes out even when the request was cancelled, before its answer.
        with anyio.CancelScope(shield=True):
            if not self._begun:
                await self._send("begin")
            await self._send("end")

    async def _tick(self) -> None:
        while True:
            await anyio.sleep(_INTERVAL)
            if not self._begun:
                await self._send("begin")
            elif (self.done, self.total) != self._sent:
                await self._send("report")

    async def _send(self, kind: str) -> None:
        self._begun = True
        self._sent = (self.done, self.total)
        value = ProgressValue(kind=kind, done=self.done, total=self.total, unit=self._unit,
                              elapsed_ms=(time.monotonic() - self._t0) * 1e3)
        await self._ctx.notify("$/progress", ProgressParams(token=self._token, value=value))
