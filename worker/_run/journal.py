"""The checkpoint journal of a run directory (docs/run-directory.md).

``journal.jsonl``: a header line, then one line per finished (or failed)
chunk. A chunk is a fixed span of a job's items (``chunk_spans``, in
``worker._run.chunks`` with the fingerprint): chunk
``j<k>:<a>-<b>`` is items ``[a, b)`` of the k-th job the run's flow yields.
Spans depend only on the job (its size and how many calls it covers), never
on the pool size or on timing, so a resumed run cuts its jobs the same way
and computes exactly the chunks that are missing.

Durability: the file is append-only; a batch of chunks is one ``write`` and
one ``fsync``. A crash can leave a torn last line; ``Journal.open`` cuts it
off (truncate + fsync) and keeps everything before it. The header carries
the run's ``fingerprint`` (dataset content + request + versions): a
different run against the same journal is refused (``CheckpointMismatch``,
-32004) unless the caller asks to start over.
"""

from __future__ import annotations

import base64
import binascii
import datetime as _dt
import fcntl
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import msgspec
import numpy as np

from .._core.jobs import Arrays
from .._core.layouts import RESULT_DTYPES, RESULT_WIDTHS
from .._errors import CheckpointMismatch
from .chunks import (  # noqa: F401  (the journal's public names, as before the split)
    CHUNK_EVALUATIONS,
    CHUNK_ITEMS,
    JOURNAL_VERSION,
    chunk_id,
    chunk_items,
    chunk_spans,
    fingerprint,
)

__all__ = [
    "JOURNAL_VERSION", "CHUNK_EVALUATIONS", "CHUNK_ITEMS", "chunk_items", "chunk_spans",
    "chunk_id", "fingerprint", "ChunkEntry", "FailedEntry", "Journal",
]

# A chunk line's fields of the result arrays (``layouts.RESULT_NAMES``), in
# order: field -> (columns, dtype in the file: little-endian, dtype in memory).
_KEYS = ("m", "e", "s")
_SHAPES = {k: (w, np.dtype(d).newbyteorder("<"), d)
           for k, w, d in zip(_KEYS, RESULT_WIDTHS, RESULT_DTYPES, strict=True)}


# ------------------------------------------------------------------ entries

@dataclass(frozen=True, eq=False)
class _Entry:
    job: int
    span: tuple[int, int]

    @property
    def id(self) -> str:
        return chunk_id(self.job, self.span)


@dataclass(frozen=True, eq=False)
class ChunkEntry(_Entry):
    """A finished chunk: items ``span`` of job ``job`` and their arrays."""

    arrays: Arrays


@dataclass(frozen=True, eq=False)
class FailedEntry(_Entry):
    """A chunk whose evaluation raised: retried when the run resumes."""

    error: str


class _Header(msgspec.Struct, tag_field="type", tag="header"):
    version: int
    fingerprint: str
    created: str


class _EntryLine(msgspec.Struct, tag_field="type"):
    id: str
    job: int
    span: tuple[int, int]


class _Chunk(_EntryLine, tag="chunk"):
    m: str  # the fields of _KEYS: base64 of the result arrays' bytes
    e: str
    s: str


class _Failed(_EntryLine, tag="failed"):
    error: str


_Line = Union[_Header, _Chunk, _Failed]
_DECODER = msgspec.json.Decoder(_Line)
_ENCODER = msgspec.json.Encoder()


class _Corrupt(ValueError):
    pass


def _b64(a: np.ndarray, dtype: np.dtype) -> str:
    a = np.ascontiguousarray(a, dtype)
    return base64.b64encode(memoryview(a).cast("B") if a.size else b"").decode("ascii")


def _unb64(text: str, rows: int, key: str) -> np.ndarray:
    width, dtype, native = _SHAPES[key]
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as e:
        raise _Corrupt(f"field {key!r} is not base64") from e
    if len(raw) != rows * width * dtype.itemsize:
        raise _Corrupt(f"field {key!r} holds {len(raw)} bytes, not {rows} rows of {width}")
    # Native-endian view (no copy on little-endian machines); read-only.
    return np.frombuffer(raw, dtype).reshape(rows, width).astype(native, copy=False)


def _parse(raw: bytes) -> Any:
    if not raw.endswith(b"\n"):
        raise _Corrupt("no end of line")
    try:
        return _DECODER.decode(raw)
    except (msgspec.ValidationError, msgspec.DecodeError) as e:
        raise _Corrupt(str(e)) from e


def _encode(entry: ChunkEntry | FailedEntry) -> bytes:
    a, b = int(entry.span[0]), int(entry.span[1])
    if isinstance(entry, FailedEntry):
        line: Any = _Failed(id=entry.id, job=int(entry.job), span=(a, b), error=str(entry.error))
    else:
        fields_ = {}
        for arr, key in zip(entry.arrays, _KEYS, strict=True):
            if arr.shape != (b - a, _SHAPES[key][0]):
                raise ValueError(f"chunk {entry.id}: array {key!r} has shape {arr.shape}, "
                                 f"expected {(b - a, _SHAPES[key][0])}")
            fields_[key] = _b64(arr, _SHAPES[key][1])
        line = _Chunk(id=entry.id, job=int(entry.job), span=(a, b), **fields_)
    return _ENCODER.encode(line) + b"\n"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# ------------------------------------------------------------------ the journal

class Journal:
    """An open, locked ``journal.jsonl`` (see the module doc).

    ``done(job)``: finished chunks of job ``job`` (loaded at open and appended
    since), ``failed()``: chunks whose latest record is a failure,
    ``append(entries)``: one write + one fsync. Only one ``Journal`` may have
    a file open at a time (an exclusive ``flock``); ``close()`` releases it.
    """

    def __init__(self, path: Path, fd: int, fingerprint: str, created: str) -> None:
        self.path = path
        self.fingerprint = fingerprint
        self.created = created
        self.cut_bytes = 0           # torn tail cut off at open
        self._fd: int | None = fd
        self._size = os.fstat(fd).st_size
        self._done: dict[int, dict[tuple[int, int], Arrays]] = {}
        self._failed: dict[str, dict] = {}

    # -------------------------------------------------------------- opening

    @classmethod
    def open(cls, path: Path, fingerprint: str, *, restart: bool = False) -> Journal:
        """Create ``path`` with a header, or reopen it and load its chunks.

        Raises ``CheckpointMismatch`` (-32004) when it holds a different run
        (another fingerprint, version or not a journal) unless ``restart``,
        which empties it and starts over; also when another ``Journal`` has
        it open.
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        existed = path.exists()
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise CheckpointMismatch(
                    f"run directory {path.parent} is in use by another run (its journal "
                    f"{path.name} is locked)",
                    data={"path": str(path), "reason": "in_use"}) from None
            journal = None if restart else cls._load(path, fd, fingerprint)
            if journal is None:
                journal = cls._fresh(path, fd, fingerprint, new_file=not existed)
            return journal
        except BaseException:
            os.close(fd)
            raise

    @classmethod
    def _fresh(cls, path: Path, fd: int, fingerprint: str, *, new_file: bool) -> Journal:
        created = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        header = _ENCODER.encode(_Header(version=JOURNAL_VERSION, fingerprint=fingerprint,
                                         created=created)) + b"\n"
        os.ftruncate(fd, 0)
        _write_all(fd, header)
        os.fsync(fd)
        if new_file:
            _fsync_dir(path.parent)
        return cls(path, fd, fingerprint, created)

    @classmethod
    def _load(cls, path: Path, fd: int, fingerprint: str) -> Journal | None:
        """The journal in ``path`` (torn tail cut), or None when it is empty.
        Streams the file: one line in memory at a time, besides the arrays."""
        size = os.fstat(fd).st_size
        good_end = 0         # byte offset after the last line that parsed
        journal: Journal | None = None
        with open(path, "rb") as f:
            for number, raw in enumerate(f):
                end = good_end + len(raw)
                try:
                    line = _parse(raw)
                    if number == 0:
                        journal = cls._check_header(path, fd, fingerprint, line)
                    else:
                        assert journal is not None
                        journal._take(line)
                except _Corrupt as e:
                    if end < size:  # not the last line: the file is damaged, not torn
                        raise CheckpointMismatch(
                            f"{path} is corrupt at line {number + 1} ({e}); to start over, "
                            "pass restart: true (CLI: --restart)",
                            data={"path": str(path), "line": number + 1, "reason": "corrupt"},
                        ) from None
                    break            # a torn last line: cut off below
                good_end = end
        if good_end < size:
            os.ftruncate(fd, good_end)
            os.fsync(fd)
        if journal is None:
            return None
        journal.cut_bytes = size - good_end
        journal._size = good_end
        return journal

    @classmethod
    def _check_header(cls, path: Path, fd: int, fingerprint: str, line: Any) -> Journal:
        if not isinstance(line, _Header):
            raise CheckpointMismatch(
                f"{path} is not a checkpoint journal (its first line is not a header); pass "
                "restart to start over",
                data={"path": str(path), "expected": fingerprint, "found": None,
                      "reason": "not_a_journal"})
        if line.version != JOURNAL_VERSION or line.fingerprint != fingerprint:
            found = (line.fingerprint[:16] if line.version == JOURNAL_VERSION
                     else f"of journal version {line.version}")
            raise CheckpointMismatch(
                f"run directory {path.parent} holds a different run (fingerprint {found}); "
                "to start over, pass restart: true (CLI: --restart)",
                data={"path": str(path), "expected": fingerprint, "found": line.fingerprint,
                      "version": line.version, "reason": "fingerprint"})
        return cls(path, fd, fingerprint, line.created)

    def _take(self, line: Any) -> None:
        if isinstance(line, _Header):
            raise _Corrupt("a second header")
        a, b = line.span
        if not 0 <= a < b or line.id != chunk_id(line.job, (a, b)):
            raise _Corrupt(f"chunk id {line.id!r} does not match job {line.job}, span {[a, b]}")
        if isinstance(line, _Failed):
            self._record(FailedEntry(line.job, (a, b), line.error))
        else:
            self._record(ChunkEntry(line.job, (a, b), tuple(  # type: ignore[arg-type]
                _unb64(getattr(line, key), b - a, key) for key in _KEYS)))

    def _record(self, e: ChunkEntry | FailedEntry) -> None:
        """Note an entry of the file: a chunk supersedes a failure of it."""
        span = (int(e.span[0]), int(e.span[1]))
        done = self._done.setdefault(int(e.job), {})
        if isinstance(e, FailedEntry):
            if span not in done:
                self._failed[e.id] = {"id": e.id, "job": int(e.job), "span": list(span),
                                      "error": str(e.error)}
        else:
            done.setdefault(span, e.arrays)
            self._failed.pop(e.id, None)

    # -------------------------------------------------------------- reading

    def done(self, job: int) -> dict[tuple[int, int], Arrays]:
        """Finished chunks of job ``job``: ``{(a, b): (metrics, exits, skipped)}``."""
        return dict(self._done.get(job, {}))

    def failed(self) -> list[dict]:
        """``{id, job, span, error}`` of chunks whose latest record is a failure."""
        return [dict(f) for f in self._failed.values()]

    @property
    def items_done(self) -> int:
        """Items of every finished chunk (all jobs)."""
        return sum(b - a for chunks in self._done.values() for a, b in chunks)

    @property
    def chunks_done(self) -> int:
        return sum(len(chunks) for chunks in self._done.values())

    # -------------------------------------------------------------- writing

    def append(self, entries: list[ChunkEntry | FailedEntry]) -> None:
        """Append ``entries`` durably: one write of every line, one fsync.
        On an error nothing of the batch stays in the file (it is cut back)."""
        if self._fd is None:
            raise ValueError(f"journal {self.path} is closed")
        if not entries:
            return
        data = b"".join(_encode(e) for e in entries)
        try:
            _write_all(self._fd, data)
            os.fsync(self._fd)
        except BaseException:
            try:  # never leave half a batch for the next append to follow
                os.ftruncate(self._fd, self._size)
            except OSError:
                pass
            raise
        self._size += len(data)
        for e in entries:
            self._record(e)

    def close(self) -> None:
        """Release the file (and its lock). Idempotent."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)

    @property
    def closed(self) -> bool:
        return self._fd is None

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]
