"""Datasets in shared memory: one file per dataset, mapped read-only by the
daemon and by every pool process, so the data is held once and never pickled.

Why plain files and not ``multiprocessing.shared_memory``: on Python < 3.13
every process that attaches a ``SharedMemory`` registers it with its
``resource_tracker``, which unlinks the segment when *that* process exits
(python/cpython#82300), so a pool process that dies would take the daemon's
dataset with it. A file in ``/dev/shm`` (tmpfs: RAM, no disk I/O) mapped with
``mmap`` has none of that: the daemon alone creates and unlinks it.

Layout: every numpy array of the ``Dataset`` at a 64-byte aligned offset of
one file (aligned, C-contiguous, read-only views type exactly as the arrays
the kernels were compiled and warmed for, so no recompilation happens).

Clean-up: the daemon unlinks the file in ``SharedDataset.close()`` (an unlinked
file stays valid for whoever still maps it). Files are named
``optimizer-worker-<pid>-*`` and the daemon holds a shared ``flock`` on each,
so ``remove_stale_files`` can find files whose daemon died (pid gone, lock
free) and remove them at the next start.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import mmap
import os
import re
import shutil
import tempfile
from dataclasses import fields

import msgspec
import numpy as np

from .._core.dataset import Dataset
from .._errors import InternalError, ResourceLimit

__all__ = [
    "ArraySpec", "SharedDescriptor", "SharedDataset", "share_dataset", "attach_dataset",
    "default_directory", "remove_stale_files", "FILE_PREFIX",
]

FILE_PREFIX = "optimizer-worker-"
_ALIGN = 64
_SHM_DIR = "/dev/shm"
_STALE_RE = re.compile(re.escape(FILE_PREFIX) + r"(\d+)-")


class ArraySpec(msgspec.Struct, frozen=True, array_like=True):
    """Where one array lives in the file."""

    dtype: str              # numpy dtype string, e.g. "<f8"
    offset: int             # bytes from the start of the file, 64-byte aligned
    shape: tuple[int, ...]


class SharedDescriptor(msgspec.Struct, frozen=True):
    """All a process needs to map a shared dataset (msgspec-encodable, small)."""

    path: str
    size: int                       # file size in bytes
    series_key: str
    arrays: dict[str, ArraySpec]


def _array_fields() -> list[str]:
    """Names of the Dataset fields that hold numpy arrays (the rest are strings)."""
    return [f.name for f in fields(Dataset)
            if f.type in ("np.ndarray", np.ndarray)]


_ARRAYS = _array_fields()


def _layout(ds: Dataset) -> tuple[dict[str, ArraySpec], int]:
    specs: dict[str, ArraySpec] = {}
    pos = 0
    for name in _ARRAYS:
        a = getattr(ds, name)
        specs[name] = ArraySpec(a.dtype.str, pos, tuple(int(n) for n in a.shape))
        pos += -(-a.nbytes // _ALIGN) * _ALIGN
    return specs, max(pos, _ALIGN)  # an empty file cannot be mapped


def default_directory(nbytes: int = 0) -> str:
    """``/dev/shm`` when it exists and has room for ``nbytes`` (plus a margin:
    Docker gives it only 64 MB by default), else the temp directory."""
    if os.path.isdir(_SHM_DIR) and os.access(_SHM_DIR, os.W_OK):
        try:
            free = shutil.disk_usage(_SHM_DIR).free
        except OSError:
            free = 0
        if free >= nbytes + max(nbytes // 10, 16 << 20):
            return _SHM_DIR
    return tempfile.gettempdir()


def _views(buf: mmap.mmap, specs: dict[str, ArraySpec]) -> dict[str, np.ndarray]:
    """Read-only, aligned, C-contiguous ndarray views of the mapping."""
    out = {}
    for name, s in specs.items():
        dtype = np.dtype(s.dtype)
        count = int(np.prod(s.shape, dtype=np.int64))
        a = np.frombuffer(buf, dtype=dtype, count=count, offset=s.offset).reshape(s.shape)
        out[name] = a  # read-only: the mapping is PROT_READ
    return out


@dataclasses.dataclass(eq=False)
class SharedDataset:
    """A dataset written to one shared file.

    ``dataset``: the same Dataset, its arrays now read-only views of the file;
    the daemon should keep only this one, so the data is held once.
    ``descriptor``: what a pool process passes to ``attach_dataset``.
    ``close()`` unlinks the file (idempotent). While a pool request uses the
    file (``hold()``), the unlink waits for it to finish, so pool processes
    that still have to map the file can.
    """

    dataset: Dataset
    descriptor: SharedDescriptor
    _fd: int | None = dataclasses.field(default=None, repr=False)
    _users: int = dataclasses.field(default=0, repr=False)
    _close_requested: bool = dataclasses.field(default=False, repr=False)
    _unlinked: bool = dataclasses.field(default=False, repr=False)

    @property
    def path(self) -> str:
        return self.descriptor.path

    @property
    def nbytes(self) -> int:
        """Bytes of the shared file (the arrays plus alignment padding)."""
        return self.descriptor.size

    def close(self) -> None:
        """Unlink the file now, or when the last ``hold()`` ends. Idempotent."""
        self._close_requested = True
        if self._users == 0:
            self._unlink()

    @contextlib.contextmanager
    def hold(self):
        """Keep the file on disk while a request may still need to map it."""
        if self._close_requested:
            raise InternalError("shared dataset is closed")
        self._users += 1
        try:
            yield self
        finally:
            self._users -= 1
            if self._users == 0 and self._close_requested:
                self._unlink()

    def _unlink(self) -> None:
        if self._unlinked:
            return
        self._unlinked = True
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.descriptor.path)
        if self._fd is not None:
            os.close(self._fd)  # releases the flock
            self._fd = None

    def __enter__(self) -> SharedDataset:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:  # last resort; close() is the contract
        with contextlib.suppress(Exception):
            if not self._unlinked:
                self._close_requested = True
                self._users = 0
                self._unlink()


def share_dataset(ds: Dataset, directory: str | None = None) -> SharedDataset:
    """Write every array of ``ds`` into one new file in ``directory`` (default:
    ``default_directory``) and map it back read-only."""
    specs, size = _layout(ds)
    directory = directory or default_directory(size)
    fd, path = tempfile.mkstemp(prefix=f"{FILE_PREFIX}{os.getpid()}-", suffix=".bin",
                                dir=directory)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)  # "in use": see remove_stale_files
        try:
            os.posix_fallocate(fd, 0, size)  # fail now, cleanly, not with SIGBUS later
        except OSError as e:
            raise ResourceLimit(
                f"no room for a {size:,}-byte shared dataset in {directory}: {e.strerror}",
                data={"bytes": size, "directory": directory}) from None
        for name, s in specs.items():
            a = np.ascontiguousarray(getattr(ds, name))
            if a.nbytes:
                _pwrite_all(fd, a, s.offset)
        buf = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        raise
    descriptor = SharedDescriptor(path=path, size=size, series_key=ds.series_key,
                                  arrays=specs)
    shared_ds = dataclasses.replace(ds, **_views(buf, specs))
    return SharedDataset(dataset=shared_ds, descriptor=descriptor, _fd=fd)


def _pwrite_all(fd: int, a: np.ndarray, offset: int) -> None:
    """pwrite in pieces: one call may write less than asked for large buffers."""
    view = memoryview(a.reshape(-1).view(np.uint8))
    done = 0
    while done < len(view):
        done += os.pwrite(fd, view[done:done + (256 << 20)], offset + done)


def attach_dataset(descriptor: SharedDescriptor) -> Dataset:
    """Map a shared dataset read-only (in a pool process).

    The arrays are those of the daemon's dataset; the string tuples are empty
    (``prepare``, ``job_groups`` and ``run_grid`` never read them), so
    ``n_calls`` and friends come from the arrays.
    """
    fd = os.open(descriptor.path, os.O_RDONLY)
    try:
        actual = os.fstat(fd).st_size
        if actual != descriptor.size:
            raise InternalError(f"shared dataset {descriptor.path} has {actual} bytes, "
                                f"expected {descriptor.size}")
        buf = mmap.mmap(fd, descriptor.size, mmap.MAP_SHARED, mmap.PROT_READ)
    finally:
        os.close(fd)
    return Dataset(series_key=descriptor.series_key, call_ids=(), call_mints=(),
                   caller_names=(), series_keys=(), dropped_keys=(),
                   **_views(buf, descriptor.arrays))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_files(directory: str | None = None) -> list[str]:
    """Remove shared dataset files left by daemons that died (their pid is not
    alive and nobody holds the file's lock). ``directory`` None: both
    ``/dev/shm`` and the temp directory. Returns the paths removed."""
    dirs = [directory] if directory else list(dict.fromkeys(
        [d for d in (_SHM_DIR, tempfile.gettempdir()) if os.path.isdir(d)]))
    removed = []
    for d in dirs:
        try:
            names = os.listdir(d)
        except OSError:
            continue
        for name in names:
            m = _STALE_RE.match(name)
            if not m:
                continue
            pid = int(m.group(1))
            if pid == os.getpid() or _pid_alive(pid):
                continue
            path = os.path.join(d, name)
            try:
                fd = os.open(path, os.O_RDONLY)
            except OSError:
                continue
            try:
                # A live daemon (maybe in another pid namespace) holds LOCK_SH.
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                continue
            try:
                os.unlink(path)
                removed.append(path)
            except OSError:
                pass
            finally:
                os.close(fd)
    return removed


def remove_own_files(directory: str | None = None) -> list[str]:
    """Remove this process's shared dataset files (the daemon's last act when
    it must exit without unwinding, ``worker._daemon.server``). Mapped views stay
    valid until unmapped; only the names go."""
    dirs = [directory] if directory else list(dict.fromkeys(
        [d for d in (_SHM_DIR, tempfile.gettempdir()) if os.path.isdir(d)]))
    prefix = f"{FILE_PREFIX}{os.getpid()}-"
    removed = []
    for d in dirs:
        try:
            names = [n for n in os.listdir(d) if n.startswith(prefix)]
        except OSError:
            continue
        for name in names:
            try:
                os.unlink(os.path.join(d, name))
                removed.append(os.path.join(d, name))
            except OSError:
                pass
    return removed
