"""Progress of a batch run on stderr: a bar redrawn in place on a terminal,
a plain line every few seconds otherwise (logs, CI)."""

from __future__ import annotations

import time
from typing import TextIO

_REDRAW = 0.1       # seconds between redraws on a terminal
_PLAIN_EVERY = 5.0  # seconds between plain lines
_WIDTH = 30


class ProgressPrinter:
    def __init__(self, out: TextIO, label: str) -> None:
        self._out, self._label = out, label
        self._tty = out.isatty()
        self._t0 = time.monotonic()
        self._last = 0.0
        self._state = (0, 0)

    def update(self, done: int, total: int) -> None:
        self._state = (done, total)
        now = time.monotonic()
        if now - self._last >= (_REDRAW if self._tty else _PLAIN_EVERY) or done == total:
            self._last = now
            self._draw(done, total, now - self._t0)

    def _draw(self, done: int, total: int, elapsed: float) -> None:
        frac = done / total if total else 0.0
        eta = elapsed / frac - elapsed if frac > 0 else float("nan")
        text = (f"{self._label}: {done:,}/{total:,} runs ({frac:.0%}), "
                f"{elapsed:.1f} s elapsed" + (f", ~{eta:.0f} s left" if frac < 1 and frac > 0 else ""))
        if self._tty:
            filled = int(frac * _WIDTH)
            self._out.write(f"\r[{'#' * filled}{'.' * (_WIDTH - filled)}] {text}\x1b[K")
        else:
            self._out.write(text + "\n")
        self._out.flush()

    def durable(self, done: int, total: int) -> None:
        """A checkpoint: on a terminal the bar says enough; in logs, a line."""
        if not self._tty:
            self._out.write(f"checkpoint: {done:,}/{total:,} runs durable\n")
            self._out.flush()

    def close(self) -> None:
        if self._tty and self._state[1]:
            self._out.write("\n")
            self._out.flush()
