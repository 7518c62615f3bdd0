"""The daemon's one dataset cache, shared by every request and connection.

Datasets live in shared-memory files (``_shm``) so pool processes map them
instead of receiving copies; the cache counts their bytes against a budget
and evicts the least recently used ones to make room.

Concurrency rule: a request *leases* the dataset it works on. Eviction or
``dropDataset`` removes an entry from the table at once (new requests get
-32001), but its file is only closed when the last lease ends, so a running
request never loses its data. All methods run on the event loop thread; none
awaits between reading and updating the table, so no lock is needed (the
one exception, ``check_fits``, reads only the budget, which never changes,
and may run on any thread).

The budget bounds what the daemon holds, not only the table: a request's
inline dataset (built for that request alone) is ``reserve``d for as long
as the request runs, and counts against the budget like a cached one; to
make room for it or for a new entry, unleased entries are evicted, least
recently used first, and what still cannot fit is refused (-32003).
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from .._errors import ResourceLimit, UnknownDataset
from .._pool.shm import SharedDataset


@dataclass(eq=False)
class Entry:
    dataset_id: str
    shared: SharedDataset
    leases: int = 0
    removed: bool = False
    info: dict = field(default_factory=dict)

    @property
    def nbytes(self) -> int:
        return self.shared.nbytes

    def release_if_unused(self, on_close: Callable[[Entry], None]) -> None:
        if self.removed and self.leases == 0:
            on_close(self)


class DatasetCache:
    """LRU cache of shared datasets under ``budget_bytes``.

    ``on_close(entry)`` is called once an entry is both removed and unleased
    (the daemon tells the pool to forget it, then closes its file).
    """

    def __init__(self, budget_bytes: int, on_close: Callable[[Entry], None]) -> None:
        self.budget_bytes = budget_bytes
        self._on_close = on_close
        self._entries: OrderedDict[str, Entry] = OrderedDict()
        self._ids = itertools.count(1)
        self.reserved_bytes = 0   # inline datasets of running requests

    @property
    def nbytes(self) -> int:
        return sum(e.nbytes for e in self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)

    def entries(self) -> list[Entry]:
        return list(self._entries.values())

    def new_id(self) -> str:
        while True:
            candidate = f"ds-{next(self._ids)}"
            if candidate not in self._entries:
                return candidate

    def check_fits(self, nbytes: int, what: str = "dataset") -> None:
        """-32003 for anything that could never fit, before it is built."""
        if nbytes > self.budget_bytes:
            raise ResourceLimit(
                f"{what} needs {nbytes:,} bytes, over the cache budget of "
                f"{self.budget_bytes:,} bytes (start the worker with a larger --cache-bytes)",
                data={"bytes": nbytes, "budget_bytes": self.budget_bytes})

    def put(self, dataset_id: str, shared: SharedDataset, info: dict) -> list[str]:
        """Hold ``shared`` as ``dataset_id`` (replacing an entry of that id);
        returns the ids evicted to make room."""
        try:
            self.check_fits(shared.nbytes)
        except ResourceLimit:
            shared.close()
            raise
        if dataset_id in self._entries:
            self._remove(dataset_id)
        try:
            evicted = self._make_room(shared.nbytes, "dataset")
        except ResourceLimit:
            shared.close()
            raise
        self._entries[dataset_id] = Entry(dataset_id, shared, info=info)
        return evicted

    @contextmanager
    def reserve(self, nbytes: int, what: str = "inline dataset") -> Iterator[list[str]]:
        """Count ``nbytes`` (a request's own dataset) against the budget
        until the block ends; yields the ids evicted to make room."""
        self.check_fits(nbytes, what)
        evicted = self._make_room(nbytes, what)
        self.reserved_bytes += nbytes
        try:
            yield evicted
        finally:
            self.reserved_bytes -= nbytes

    def _make_room(self, nbytes: int, what: str) -> list[str]:
        """Evict least recently used entries until ``nbytes`` more fit."""
        evicted = []
        for old in list(self._entries):
            if self.nbytes + self.reserved_bytes + nbytes <= self.budget_bytes:
                break
            self._remove(old)
            evicted.append(old)
        if self.nbytes + self.reserved_bytes + nbytes > self.budget_bytes:
            raise ResourceLimit(
                f"{what} needs {nbytes:,} bytes; {self.reserved_bytes:,} of the cache budget of "
                f"{self.budget_bytes:,} bytes are held by running requests' own datasets "
                f"(try again when they finish, or start the worker with a larger --cache-bytes)",
                data={"bytes": nbytes, "budget_bytes": self.budget_bytes,
                      "reserved_bytes": self.reserved_bytes})
        return evicted

    def drop(self, dataset_id: str) -> int:
        """Remove ``dataset_id``; returns its bytes (0 when it was not held)."""
        entry = self._entries.get(dataset_id)
        if entry is None:
            return 0
        self._remove(dataset_id)
        return entry.nbytes

    @contextmanager
    def lease(self, dataset_id: str) -> Iterator[Entry]:
        """The entry of ``dataset_id``, kept open until the block ends."""
        entry = self._entries.get(dataset_id)
        if entry is None:
            raise UnknownDataset(f"unknown dataset_id {dataset_id!r}: load it with loadDataset "
                                 f"(it may have been dropped or evicted)",
                                 data={"dataset_id": dataset_id})
        self._entries.move_to_end(dataset_id)
        entry.leases += 1
        try:
            yield entry
        finally:
            entry.leases -= 1
            entry.release_if_unused(self._on_close)

    def _remove(self, dataset_id: str) -> None:
        entry = self._entries.pop(dataset_id)
        entry.removed = True
        entry.release_if_unused(self._on_close)
