"""``$/progress`` notifications for a request that gave a ``progress_token``.

``begin`` at the first tick (so a resumed checkpointed run's ``begin``
already counts, in ``done``, what an earlier attempt finished), ``report`` at
most every ``_INTERVAL`` seconds while ``done`` moves, ``end`` before the
response (the handler's ``async with`` ends before it returns). A request
without a token costs nothing here.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
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
                if not self._begun:
                    await self._send("begin")
                elif (self.done, self.total) != self._sent:
                    await self._send("report")

    async def _send(self, kind: str) -> None:
        self._sent = (self.done, self.total)
        value = ProgressValue(kind=kind, done=self.done, total=self.total, unit=self._unit,
                              elapsed_ms=(time.monotonic() - self._t0) * 1e3)
        await self._ctx.notify("$/progress", ProgressParams(token=self._token, value=value))
        self._begun = True


@asynccontextmanager
async def track(ctx: Any, token: str | int | None, unit: str) -> AsyncIterator[Progress]:
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
