"""Datasets built in their shared file (``worker._pool.shm``'s layout), so
``loadDataset`` writes the candles once: the loader decodes into views of
the file and the builder regroups, sorts and drops rows there.

Layout: the six candle columns first, each ``n`` rows at a 64-byte aligned
offset (``n`` from the file's metadata), then the small arrays (calls,
series offsets, entry rows), appended by ``finish``. A descriptor names
every array's offset, so pool processes attach it like any shared dataset.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import mmap
import os
import tempfile

import numpy as np

from .._core.dataset import Dataset
from .._errors import InternalError, ResourceLimit
from .shm import (_ALIGN, _ARRAYS, FILE_PREFIX, ArraySpec, SharedDataset, SharedDescriptor,
                  _pwrite_all, _views, default_directory)

__all__ = ["SharedBuilder", "planned_bytes", "CANDLE_ARRAYS"]

CANDLE_ARRAYS = ("ts_ms", "open", "high", "low", "close", "volume")
_PER_CALL_BYTES = {"call_caller": 4, "call_ts_ms": 8, "call_series": 4, "call_order": 8,
                   "entry_idx": 8, "series_end": 8}


def _aligned(nbytes: int) -> int:
    return -(-nbytes // _ALIGN) * _ALIGN


def planned_bytes(n_candles: int, n_calls: int) -> int:
    """The size of the file ``SharedBuilder`` makes for ``n_candles`` candle
    rows and ``n_calls`` calls, before anything is read: exact when every
    call has a series and nothing is dropped, an upper bound otherwise
    (there are at most ``n_calls`` series)."""
    return max(_ALIGN, len(CANDLE_ARRAYS) * _aligned(n_candles * 8)
               + sum(_aligned(n_calls * b) for b in _PER_CALL_BYTES.values())
               + _aligned((n_calls + 1) * 8))


class SharedBuilder:
    """A shared file the dataset is built in, so the data is written once.

    ``columns(n)`` (called once, by the loader, when it knows the row
    count) sizes the file for ``n`` candle rows and returns the six candle
    columns as writable views of it (sparse: the loader writes every row
    of all six before anything reads them, so a full directory is an error
    from a write, never SIGBUS); the loader decodes a
    batch at a time and ``write``s each column into its place, and ``build_dataset`` regroups, sorts and drops rows in them
    (``CandleColumns.in_place``). ``finish(ds)`` appends the small arrays
    (calls, offsets: whatever of ``ds`` is not in the file yet), maps the
    file read-only and returns the ``SharedDataset``. ``close()`` (or leaving
    the ``with`` block without ``finish``) removes the file.
    """

    def __init__(self, directory: str | None = None) -> None:
        self._directory = directory
        self._fd: int | None = None
        self.path = ""
        self._buf: mmap.mmap | None = None
        self._offsets: dict[str, tuple[int, np.dtype]] = {}
        self._size = 0
        self._finished = False

    def columns(self, n: int) -> dict[str, np.ndarray]:
        """The file, sized for ``n`` candle rows; its six candle columns as
        writable views (``worker._data.files.CandleSink``). Called once."""
        if self._fd is not None:
            raise InternalError("columns() is called once per SharedBuilder")
        col = _aligned(n * 8)
        size = max(len(CANDLE_ARRAYS) * col, _ALIGN)
        directory = self._directory or default_directory(size)
        self._fd, self.path = tempfile.mkstemp(prefix=f"{FILE_PREFIX}{os.getpid()}-",
                                               suffix=".bin", dir=directory)
        fcntl.flock(self._fd, fcntl.LOCK_SH)  # "in use": see remove_stale_files
        self._grow(size, directory)
        # Not populated: the loader fills the file with pwrite (no page
        # faults), and only the builder's passes map pages, as they read.
        self._buf = mmap.mmap(self._fd, size, mmap.MAP_SHARED,
                              mmap.PROT_READ | mmap.PROT_WRITE)
        out = {}
        for i, name in enumerate(CANDLE_ARRAYS):
            dtype = np.dtype(np.int64 if name == "ts_ms" else np.float64)
            self._offsets[name] = (i * col, dtype)
            out[name] = np.frombuffer(self._buf, dtype=dtype, count=n, offset=i * col)
        return out

    def write(self, name: str, pos: int, values: np.ndarray) -> None:
        """Rows ``pos:`` of candle column ``name``, through the file, not the
        mapping (pwrite: no page fault per 4 KiB)."""
        offset, dtype = self._offsets[name]
        a = np.ascontiguousarray(values, dtype=dtype)
        if a.nbytes:
            self._pwrite(a, offset + pos * dtype.itemsize)

    def _grow(self, size: int, directory: str) -> None:
        """Size the file (sparse). Its pages are allocated as the loader and
        ``finish`` pwrite them: a full directory is then ENOSPC from pwrite
        (``_room_error``), never SIGBUS, because every page the mapping
        touches has been written first. (``posix_fallocate`` would be the
        simpler guarantee, but it allocates and zeroes 1.4 GB of tmpfs
        pages that the writes allocate again: ~0.1-0.3 s of a ~1 s load.)"""
        assert self._fd is not None
        vfs = os.fstatvfs(self._fd)
        if (size - self._size) > vfs.f_bavail * vfs.f_frsize:
            raise self._room_error(size, directory, "not enough free space")
        os.ftruncate(self._fd, size)
        self._size = size

    def _pwrite(self, a: np.ndarray, offset: int) -> None:
        try:
            _pwrite_all(self._fd, a, offset)
        except OSError as e:
            if e.errno not in (errno.ENOSPC, errno.EFBIG, errno.ENOMEM):
                raise
            raise self._room_error(self._size, os.path.dirname(self.path), e.strerror) from None

    @staticmethod
    def _room_error(size: int, directory: str, why: str | None) -> ResourceLimit:
        return ResourceLimit(f"no room for a {size:,}-byte shared dataset in {directory}: {why}",
                             data={"bytes": size, "directory": directory})

    def finish(self, ds: Dataset) -> SharedDataset:
        if self._fd is None:
            raise InternalError("the loader never asked for candle columns")
        base = np.frombuffer(self._buf, np.uint8).ctypes.data if self._buf is not None else 0
        specs: dict[str, ArraySpec] = {}
        append = []
        for name in _ARRAYS:
            a = np.ascontiguousarray(getattr(ds, name))
            at = a.ctypes.data - base
            if a.nbytes and self._buf is not None and 0 <= at < len(self._buf):
                specs[name] = ArraySpec(a.dtype.str, at, tuple(int(x) for x in a.shape))
            else:
                append.append((name, a))
        pos = self._size
        for name, a in append:
            specs[name] = ArraySpec(a.dtype.str, pos, tuple(int(x) for x in a.shape))
            pos += _aligned(a.nbytes)
        directory = os.path.dirname(self.path)
        self._grow(max(pos, _ALIGN), directory)
        for name, a in append:
            if a.nbytes:
                self._pwrite(a, specs[name].offset)
        buf = mmap.mmap(self._fd, self._size, mmap.MAP_SHARED, mmap.PROT_READ)
        descriptor = SharedDescriptor(path=self.path, size=self._size,
                                      series_key=ds.series_key, arrays=specs)
        shared = SharedDataset(dataset=dataclasses.replace(ds, **_views(buf, specs)),
                               descriptor=descriptor, _fd=self._fd)
        self._fd, self._buf, self._finished = None, None, True  # the views keep it mapped
        return shared

    def close(self) -> None:
        """Remove the file unless ``finish`` handed it on. Idempotent."""
        if self._finished or self._fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> SharedBuilder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

