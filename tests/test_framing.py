"""Newline framing of worker._daemon.framing: any line length up to the limit, over-long
lines skipped without losing the stream, CRLF, empty lines, a last line with
no newline."""

from __future__ import annotations

from collections import deque

import anyio
import pytest
from anyio.abc import ByteReceiveStream

from worker._daemon.framing import LineReader, LineTooLong

pytestmark = pytest.mark.anyio



class ChunkStream(ByteReceiveStream):
    """Hands out the given chunks one receive at a time (split further when a
    receive asks for less), then the end of the stream."""

    def __init__(self, chunks) -> None:
        self._chunks = deque(bytes(c) for c in chunks)
        self.receives = 0

    async def receive(self, max_bytes: int = 65536) -> bytes:
        await anyio.lowlevel.checkpoint()
        if not self._chunks:
            raise anyio.EndOfStream
        self.receives += 1
        chunk = self._chunks.popleft()
        if len(chunk) > max_bytes:
            self._chunks.appendleft(chunk[max_bytes:])
            chunk = chunk[:max_bytes]
        return chunk

    async def aclose(self) -> None:
        self._chunks.clear()


async def read_all(reader: LineReader) -> list:
    out = []
    while True:
        try:
            line = await reader.receive_line()
        except anyio.EndOfStream:
            return out
        out.append(line if isinstance(line, LineTooLong) else bytes(line))


def tiny_chunks(data: bytes, size: int) -> list[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)]


async def test_lines_split_across_one_byte_chunks():
    data = b'{"a":1}\n{"b":[2,3]}\nthird\n'
    reader = LineReader(ChunkStream(tiny_chunks(data, 1)), 100)
    assert await read_all(reader) == [b'{"a":1}', b'{"b":[2,3]}', b"third"]


async def test_many_lines_in_one_chunk():
    lines = [b"line %d" % i for i in range(1000)]
    reader = LineReader(ChunkStream([b"\n".join(lines) + b"\n"]), 100)
    assert await read_all(reader) == lines


async def test_five_megabyte_line_under_a_ten_megabyte_limit():
    big = bytes(range(256)).replace(b"\n", b"") * (5 * 1024 * 1024 // 255)
    stream = ChunkStream(tiny_chunks(big + b"\nnext\n", 64 * 1024))
    reader = LineReader(stream, 10 * 1024 * 1024)
    lines = await read_all(reader)
    assert len(lines) == 2
    assert len(lines[0]) == len(big) and lines[0] == big
    assert lines[1] == b"next"


async def test_line_exactly_at_the_limit_is_delivered():
    reader = LineReader(ChunkStream([b"x" * 10 + b"\n", b"y" * 11 + b"\n"]), 10)
    assert await read_all(reader) == [b"x" * 10, LineTooLong(11, 10)]


async def test_over_long_line_is_skipped_and_the_next_line_still_read():
    long_line = b"z" * 5000
    data = b"before\n" + long_line + b"\nafter\n"
    reader = LineReader(ChunkStream(tiny_chunks(data, 100)), 1000, receive_size=100)
    assert await read_all(reader) == [b"before", LineTooLong(5000, 1000), b"after"]


async def test_over_long_line_is_not_buffered_past_the_limit():
    # 200 chunks of 1 KiB with a 4 KiB limit: the reader may hold the limit
    # plus one chunk, never the whole line.
    stream = ChunkStream([b"q" * 1024] * 200 + [b"\nok\n"])
    reader = LineReader(stream, 4096, receive_size=1024)
    first = await reader.receive_line()
    assert first == LineTooLong(200 * 1024, 4096)
    assert len(reader._buf) <= 4096 + 1024
    assert bytes(await reader.receive_line()) == b"ok"


async def test_over_long_line_ending_the_stream_without_newline():
    reader = LineReader(ChunkStream([b"ok\n", b"w" * 300]), 100, receive_size=64)
    assert await read_all(reader) == [b"ok", LineTooLong(300, 100)]


async def test_newline_in_the_chunk_that_crosses_the_limit():
    reader = LineReader(ChunkStream([b"a" * 50 + b"\nshort\n"]), 10)
    assert await read_all(reader) == [LineTooLong(50, 10), b"short"]


async def test_crlf_is_stripped_even_when_split_between_chunks():
    reader = LineReader(ChunkStream([b"one\r", b"\ntwo\r\n", b"three\r\n"]), 100)
    assert await read_all(reader) == [b"one", b"two", b"three"]


async def test_final_line_without_newline_is_delivered():
    reader = LineReader(ChunkStream([b"first\nlast"]), 100)
    assert await read_all(reader) == [b"first", b"last"]


async def test_empty_lines_are_skipped():
    reader = LineReader(ChunkStream([b"\n\n\r\na\n\n", b"\nb\n\n"]), 100)
    assert await read_all(reader) == [b"a", b"b"]


async def test_end_of_stream_is_raised_again_after_the_last_line():
    reader = LineReader(ChunkStream([b"only\n"]), 100)
    assert bytes(await reader.receive_line()) == b"only"
    for _ in range(2):
        with pytest.raises(anyio.EndOfStream):
            await reader.receive_line()


async def test_returned_line_is_not_changed_by_later_reads():
    reader = LineReader(ChunkStream([b"a" * 100 + b"\nbb\n", b"cc\n"]), 1000)
    first = await reader.receive_line()
    rest = await read_all(reader)
    assert bytes(first) == b"a" * 100
    assert rest == [b"bb", b"cc"]


def test_limit_must_be_positive():
    with pytest.raises(ValueError, match="max_message_bytes must be at least 1, got 0"):
        LineReader(ChunkStream([]), 0)
