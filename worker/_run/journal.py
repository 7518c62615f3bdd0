"""The checkpoint journal of a run directory (docs/run-directory.md).

``journal.jsonl``: a header line, then one line per finished (or failed)
chunk. A chunk is a fixed span of a job's items (``chunk_spans``): chunk
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
import hashlib
import math
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Union

import msgspec
import numpy as np

from .._core.dataset import Dataset
from .._core.jobs import Arrays, GridJob
from .._errors import CheckpointMismatch

__all__ = [
    "JOURNAL_VERSION", "CHUNK_EVALUATIONS", "CHUNK_ITEMS", "chunk_items", "chunk_spans",
    "chunk_id", "fingerprint", "ChunkEntry", "FailedEntry", "Journal",
]

JOURNAL_VERSION = 1        # the line format; also part of every fingerprint

# Chunk sizing (part of every fingerprint: changing it changes chunk ids, so
# a journal written with other values is refused, never mixed). A chunk is
# about CHUNK_EVALUATIONS call x grid-point evaluations, ~1.2 s of one core
# at ~27 M evaluations/s; at most CHUNK_ITEMS items (a journal line is ~192
# bytes per item, so at most ~3 MB). The environment variables are for tests
# that need many chunks from a small run in a subprocess.
CHUNK_EVALUATIONS = int(os.environ.get("OPTIMIZER_WORKER_CHUNK_EVALUATIONS", 32_000_000))
CHUNK_ITEMS = int(os.environ.get("OPTIMIZER_WORKER_CHUNK_ITEMS", 16_384))
_ITEM_OVERHEAD = 16        # evaluations' worth of fixed cost per item (as the pool's spans)

# field: (columns, dtype in the file, dtype in memory)
_SHAPES = {"m": (11, np.dtype("<f8"), np.float64), "e": (4, np.dtype("<i8"), np.int64),
           "s": (3, np.dtype("<i8"), np.int64)}


# ------------------------------------------------------------------ chunks

def chunk_items(job: GridJob) -> int:
    """Items per chunk of ``job``: ~CHUNK_EVALUATIONS evaluations, where an
    item costs the average number of calls of a group (+ a fixed overhead);
    between 1 and CHUNK_ITEMS. A function of the job alone."""
    groups = max(1, job.n_groups)
    per_item = math.ceil(int(job.positions.size) / groups) + _ITEM_OVERHEAD
    return max(1, min(CHUNK_ITEMS, CHUNK_EVALUATIONS // per_item))


def chunk_spans(job: GridJob) -> list[tuple[int, int]]:
    """``job``'s items cut into contiguous chunks ``[a, b)`` of nearly equal
    size (they differ by at most one item), covering every item once."""
    n = job.n_items
    if n == 0:
        return []
    count = math.ceil(n / chunk_items(job))
    bounds = [n * i // count for i in range(count + 1)]
    return [(bounds[i], bounds[i + 1]) for i in range(count)]


def chunk_id(job: int, span: tuple[int, int]) -> str:
    return f"j{job}:{span[0]}-{span[1]}"


# ------------------------------------------------------------------ fingerprint

_VOLATILE = frozenset({"progress_token", "run_id", "checkpoint_dir", "restart"})


def _stable(value: Any) -> Any:
    """``value`` without the volatile keys, at any depth."""
    if isinstance(value, dict):
        return {k: _stable(v) for k, v in value.items() if k not in _VOLATILE}
    if isinstance(value, list):
        return [_stable(v) for v in value]
    return value


def _frame(h: Any, data: bytes) -> None:
    h.update(len(data).to_bytes(8, "little"))
    h.update(data)


def fingerprint(ds: Dataset, request: Any) -> str:
    """sha256 (hex) of what a run computes: every array of ``ds`` (name,
    dtype, shape, bytes; hashed in place, no copies), its strings (caller
    names decide which calls ``caller_groups`` picks), the canonical JSON of
    ``request`` (sorted keys; no ``progress_token``, ``run_id``,
    ``checkpoint_dir``, ``restart``), the journal version and chunk rule,
    and the worker's version (a new kernel may give other numbers)."""
    from .. import __version__

    h = hashlib.sha256()
    _frame(h, (f"optimizer-worker journal v{JOURNAL_VERSION}; chunks {CHUNK_EVALUATIONS} "
               f"evaluations, <= {CHUNK_ITEMS} items, overhead {_ITEM_OVERHEAD}; "
               f"worker {__version__}").encode())
    for f in fields(ds):
        value = getattr(ds, f.name)
        if isinstance(value, np.ndarray):
            _frame(h, f"{f.name} {value.dtype.str} {list(value.shape)}".encode())
            data = value if value.flags.c_contiguous else np.ascontiguousarray(value)
            h.update(data.nbytes.to_bytes(8, "little"))
            h.update(memoryview(data).cast("B") if data.ndim else data.tobytes())
        else:
            _frame(h, f.name.encode())
            _frame(h, msgspec.json.encode(value))
    _frame(h, msgspec.json.encode(_stable(msgspec.to_builtins(request)), order="sorted"))
    return h.hexdigest()


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
    m: str
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
        m, e, s = entry.arrays
        for arr, key in ((m, "m"), (e, "e"), (s, "s")):
            if arr.shape != (b - a, _SHAPES[key][0]):
                raise ValueError(f"chunk {entry.id}: array {key!r} has shape {arr.shape}, "
                                 f"expected {(b - a, _SHAPES[key][0])}")
        line = _Chunk(id=entry.id, job=int(entry.job), span=(a, b), m=_b64(m, _SHAPES["m"][1]),
                      e=_b64(e, _SHAPES["e"][1]), s=_b64(s, _SHAPES["s"][1]))
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
            self._record(ChunkEntry(line.job, (a, b), (
                _unb64(line.m, b - a, "m"), _unb64(line.e, b - a, "e"),
                _unb64(line.s, b - a, "s"))))

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
