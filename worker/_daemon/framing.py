"""Newline-delimited framing (SPEC section 7): one JSON message per line.

A line may be as long as ``max_message_bytes`` (default 1 GiB), so the reader
never rescans bytes it has already searched for a newline, and a long line is
handed over without a second full copy. A line over the limit is skipped up to
its newline without being buffered, and reported as ``LineTooLong`` so the
caller can answer it; the stream stays usable for the next line.
"""

from __future__ import annotations

from dataclasses import dataclass

import anyio
from anyio.abc import ByteReceiveStream

__all__ = ["LineReader", "LineTooLong"]

# Chunk size asked of the stream. Sockets return what has arrived (up to this);
# a bigger ask means fewer wake-ups while a multi-hundred-MB line streams in.
DEFAULT_RECEIVE_SIZE = 1 << 20


@dataclass(frozen=True, slots=True)
class LineTooLong:
    """A line longer than ``limit`` was skipped.

    ``length`` counts every byte of the line before its newline (or before the
    end of the stream); none of those bytes is kept.
    """

    length: int
    limit: int


class LineReader:
    """Reads newline-terminated lines from a byte stream.

    ``receive_line`` returns the next non-empty line without its ``\\n`` (and
    without a ``\\r`` just before it), or a ``LineTooLong``. A last line with
    no newline before the end of the stream is still returned. At the end of
    the stream it raises ``anyio.EndOfStream``, as anyio's own streams do.

    Lines are ``bytearray`` objects: for a line that fills most of the buffer
    the buffer itself is handed over rather than copied. The reader never
    touches a line it has returned.
    """

    def __init__(
        self,
        stream: ByteReceiveStream,
        max_message_bytes: int,
        *,
        receive_size: int = DEFAULT_RECEIVE_SIZE,
    ) -> None:
        if max_message_bytes < 1:
            raise ValueError(f"max_message_bytes must be at least 1, got {max_message_bytes}")
        if receive_size < 1:
            raise ValueError(f"receive_size must be at least 1, got {receive_size}")
        self._stream = stream
        self._limit = max_message_bytes
        self._receive_size = receive_size
        self._buf = bytearray()
        self._searched = 0  # bytes at the start of _buf known to hold no newline
        self._eof = False

    async def receive_line(self) -> bytearray | LineTooLong:
        while True:
            line = await self._next_line()
            if isinstance(line, LineTooLong) or line:
                return line  # empty lines carry no message: skip them

    async def _next_line(self) -> bytearray | LineTooLong:
        while True:
            newline = self._buf.find(b"\n", self._searched)
            if newline >= 0:
                return self._take(newline, separator=1)
            self._searched = len(self._buf)
            if self._searched > self._limit:
                return await self._skip_rest_of_line()
            if self._eof:
                if self._buf:
                    return self._take(len(self._buf), separator=0)
                raise anyio.EndOfStream
            await self._fill()

    async def _fill(self) -> None:
        try:
            self._buf += await self._stream.receive(self._receive_size)
        except anyio.EndOfStream:
            self._eof = True

    def _take(self, end: int, *, separator: int) -> bytearray | LineTooLong:
        """Remove ``_buf[:end + separator]`` and return its first ``end`` bytes."""
        buf = self._buf
        rest = end + separator
        self._searched = 0
        if end > self._limit:
            # The newline came in the same chunk that crossed the limit.
            del buf[:rest]
            return LineTooLong(end, self._limit)
        if 2 * end > len(buf):
            # The line is most of the buffer: keep the buffer as the line and
            # copy out the shorter remainder instead.
            self._buf = buf[rest:]
            del buf[end:]
            line = buf
        else:
            line = buf[:end]
            del buf[:rest]  # CPython drops a bytearray's head without moving the rest
        if line.endswith(b"\r"):
            del line[-1:]
        return line

    async def _skip_rest_of_line(self) -> LineTooLong:
        """Drop the buffered head of an over-long line, then every chunk up to
        its newline, keeping only what follows the newline."""
        seen = len(self._buf)
        self._buf = bytearray()
        self._searched = 0
        while not self._eof:
            try:
                chunk = await self._stream.receive(self._receive_size)
            except anyio.EndOfStream:
                self._eof = True
                break
            newline = chunk.find(b"\n")
            if newline >= 0:
                self._buf += memoryview(chunk)[newline + 1:]
                return LineTooLong(seen + newline, self._limit)
            seen += len(chunk)
        return LineTooLong(seen, self._limit)
