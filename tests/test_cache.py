"""The dataset cache: budget, least-recently-used eviction, leases."""

from __future__ import annotations

import pytest

from worker._daemon.cache import DatasetCache
from worker._errors import ResourceLimit, UnknownDataset


class FakeShared:
    def __init__(self, nbytes: int) -> None:
        self.nbytes = nbytes
        self.closed = False

    def close(self) -> None:
        self.closed = True


def make(budget: int):
    closed: list[str] = []
    cache = DatasetCache(budget, lambda entry: closed.append(entry.dataset_id))
    return cache, closed


def test_evicts_least_recently_used_to_make_room():
    cache, closed = make(300)
    for name in ("a", "b", "c"):
        cache.put(name, FakeShared(100), {})
    with cache.lease("a"):  # "a" becomes the most recently used
        pass
    assert cache.put("d", FakeShared(100), {}) == ["b"]
    assert [e.dataset_id for e in cache.entries()] == ["c", "a", "d"]
    assert closed == ["b"] and cache.nbytes == 300


def test_too_big_is_a_resource_limit_and_is_released():
    cache, _ = make(100)
    big = FakeShared(101)
    with pytest.raises(ResourceLimit) as info:
        cache.put("x", big, {})
    assert info.value.code == -32003 and "101" in info.value.message
    assert big.closed and len(cache) == 0


def test_a_leased_dataset_is_closed_only_when_its_lease_ends():
    cache, closed = make(100)
    cache.put("a", FakeShared(100), {})
    with cache.lease("a"):
        cache.put("b", FakeShared(100), {})  # evicts "a" from the table...
        assert closed == []                  # ...but its running request keeps it
        with pytest.raises(UnknownDataset):
            with cache.lease("a"):
                pass
    assert closed == ["a"]


def test_replacing_an_id_and_dropping():
    cache, closed = make(1_000)
    cache.put("a", FakeShared(10), {})
    cache.put("a", FakeShared(20), {})
    assert closed == ["a"] and cache.nbytes == 20
    assert cache.drop("a") == 20 and cache.drop("a") == 0
    with pytest.raises(UnknownDataset) as info:
        with cache.lease("a"):
            pass
    assert info.value.code == -32001 and "'a'" in info.value.message
