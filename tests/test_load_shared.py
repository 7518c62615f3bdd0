"""loadDataset's files decoded straight into the shared file
(``worker._daemon.methods.load_shared``, ``worker._pool.shm_build``): the
same dataset as ``dataset_from_files``, whatever the file's row order, row
groups, encoding or bad series; the budget refused from metadata before
anything is read; no file left behind on any error."""

from __future__ import annotations

import dataclasses
import errno
import os

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from protocol import _messages as m
from worker._core.dataset import Dataset
from worker._data.files import dataset_from_files, write_dataset_files
from worker._data.synthetic import synthetic_dataset
from worker._daemon.methods import load_shared
from worker._errors import InvalidDataset, InvalidParams, ResourceLimit
from worker._pool.shm import FILE_PREFIX, attach_dataset
from worker._pool.shm_build import planned_bytes


@pytest.fixture(scope="module")
def small() -> Dataset:
    return synthetic_dataset(n_calls=40, n_candles=300, seed=3)


def _table(ds: Dataset) -> pa.Table:
    codes = np.repeat(np.arange(ds.n_series), np.diff(ds.series_offsets))
    keys = np.array(ds.series_keys, dtype=object)[codes]
    return pa.table({"key": pa.array(keys, pa.string()), "ts_ms": ds.ts_ms, "open": ds.open,
                     "high": ds.high, "low": ds.low, "close": ds.close, "volume": ds.volume})


def _files(ds: Dataset, tmp_path, table: pa.Table | None = None, ext: str = ".parquet",
           **write_kw) -> tuple[str, str]:
    calls, candles = str(tmp_path / f"calls{ext}"), str(tmp_path / f"candles{ext}")
    write_dataset_files(ds, calls, candles)
    if table is not None:
        if ext == ".csv":
            pacsv.write_csv(table, candles)
        else:
            pq.write_table(table, candles, **write_kw)
    return calls, candles


def _load(calls: str, candles: str, shm_dir, check_fits=lambda n, what="": None, **kw):
    p = m.LoadDatasetParams(calls_path=calls, candles_path=candles, **kw)
    return load_shared(p, check_fits, str(shm_dir))


def _assert_same(a: Dataset, b: Dataset) -> None:
    for f in dataclasses.fields(Dataset):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, np.ndarray):
            assert x.dtype == y.dtype and np.array_equal(x, y), f.name
        else:
            assert x == y, f.name


def _shm_files(d) -> list[str]:
    return [n for n in os.listdir(d) if n.startswith(FILE_PREFIX)]


@pytest.mark.parametrize("order", ["sorted", "shuffled", "reversed_blocks"])
def test_pyarrow_default_file_with_row_groups_any_order(small, tmp_path, order):
    table = _table(small)
    rows = np.arange(table.num_rows)
    if order == "shuffled":
        rows = np.random.default_rng(1).permutation(rows)
    elif order == "reversed_blocks":
        rows = rows.reshape(-1, 100)[::-1].reshape(-1)  # grouped per key piece, not by key
    # pyarrow's defaults (snappy, dictionary pages) with several row groups
    calls, candles = _files(small, tmp_path, table.take(rows), row_group_size=1_000)
    assert pq.ParquetFile(candles).num_row_groups > 5
    shm = tmp_path / "shm"
    shm.mkdir()
    shared = _load(calls, candles, shm)
    try:
        _assert_same(shared.dataset, dataset_from_files(calls, candles))
        if order == "sorted":
            _assert_same(shared.dataset, small)
        got = shared.dataset  # every call sees the candles it had
        for i in range(small.n_calls):
            s, t = got.call_series[i], small.call_series[i]
            a = got.close[got.series_offsets[s]:got.series_offsets[s + 1]]
            assert np.array_equal(a, small.close[small.series_offsets[t]:small.series_offsets[t + 1]])
        pooled = attach_dataset(shared.descriptor)
        for name in ("ts_ms", "close", "series_offsets", "entry_idx", "call_order"):
            assert np.array_equal(getattr(pooled, name), getattr(got, name))
        assert not shared.dataset.close.flags.writeable
        # exact when nothing is dropped and every call has its series
        assert shared.nbytes == planned_bytes(small.n_candles, small.n_calls)
    finally:
        shared.close()
    assert _shm_files(shm) == []


@pytest.mark.parametrize("ext", [".parquet", ".csv"])
def test_bad_series_dropped_in_place(small, tmp_path, ext):
    table = _table(small)
    low = table.column("low").to_numpy().copy()
    high = table.column("high").to_numpy()
    bad_rows = [5, small.series_offsets[7] + 3, small.series_offsets[20] + 10]
    low[bad_rows] = high[bad_rows] * 2  # low > high
    table = table.set_column(table.column_names.index("low"), "low", pa.array(low))
    rows = np.random.default_rng(2).permutation(table.num_rows)
    calls, candles = _files(small, tmp_path, table.take(rows), ext=ext, row_group_size=700)
    shm = tmp_path / "shm"
    shm.mkdir()
    shared = _load(calls, candles, shm, on_bad_series="drop")
    try:
        want = dataset_from_files(calls, candles, on_bad_series="drop")
        assert want.dropped_count == 3
        _assert_same(shared.dataset, want)
        pooled = attach_dataset(shared.descriptor)
        assert np.array_equal(pooled.low, want.low) and np.array_equal(pooled.ts_ms, want.ts_ms)
    finally:
        shared.close()
    with pytest.raises(InvalidDataset) as exc:
        _load(calls, candles, shm)
    assert exc.value.rule == "low_le_high"
    assert _shm_files(shm) == []  # the half-built file is gone


def test_no_volume_int_prices_and_null_volume(small, tmp_path):
    table = _table(small)
    no_volume = table.drop_columns(["volume"])
    calls, candles = _files(small, tmp_path, no_volume)
    shared = _load(calls, candles, tmp_path)
    try:
        assert not shared.dataset.volume.any()
        _assert_same(shared.dataset, dataset_from_files(calls, candles))
        # Every page was written before it was read: a full directory could
        # never have become a SIGBUS through the mapping.
        fd = os.open(shared.descriptor.path, os.O_RDONLY)
        try:
            assert os.lseek(fd, 0, os.SEEK_HOLE) == shared.descriptor.size
        finally:
            os.close(fd)
    finally:
        shared.close()
    vol = pa.array([None if i % 7 == 0 else 1.5 for i in range(table.num_rows)], pa.float64())
    ints = table.set_column(table.column_names.index("volume"), "volume", vol)
    ints = ints.set_column(ints.column_names.index("high"), "high",
                           pa.array(np.ceil(small.high).astype(np.int64) + 1))
    calls, candles = _files(small, tmp_path, ints)
    shared = _load(calls, candles, tmp_path)
    try:
        _assert_same(shared.dataset, dataset_from_files(calls, candles))
        assert shared.dataset.volume[0] == 0.0 and shared.dataset.volume[1] == 1.5
    finally:
        shared.close()


def test_a_null_time_is_named_at_its_file_row(small, tmp_path):
    table = _table(small)
    ts = table.column("ts_ms").to_pylist()
    ts[2_345] = None
    table = table.set_column(1, "ts_ms", pa.array(ts, pa.int64()))
    calls, candles = _files(small, tmp_path, table, row_group_size=1_000)
    with pytest.raises(InvalidParams, match="null at row 2345"):
        _load(calls, candles, tmp_path)
    assert _shm_files(tmp_path) == []


def test_budget_refused_from_metadata_before_reading(small, tmp_path, monkeypatch):
    calls, candles = _files(small, tmp_path, _table(small))
    asked = []

    def check_fits(nbytes: int, what: str = "dataset") -> None:
        asked.append(nbytes)
        raise ResourceLimit(f"{what} needs {nbytes:,} bytes", data={"bytes": nbytes})

    import worker._data.files as files

    def never(*a, **k):
        raise AssertionError("read before the budget was checked")

    monkeypatch.setattr(files, "_candle_batches", never)
    with pytest.raises(ResourceLimit):
        _load(calls, candles, tmp_path, check_fits=check_fits)
    assert asked == [planned_bytes(small.n_candles, small.n_calls)]
    assert _shm_files(tmp_path) == []


@pytest.mark.parametrize("where", ["free space", "a write"])
def test_a_full_directory_is_a_resource_limit_and_leaves_no_file(small, tmp_path, monkeypatch,
                                                                 where):
    import worker._pool.shm_build as shm_build
    calls, candles = _files(small, tmp_path, _table(small), row_group_size=1_000)
    if where == "free space":
        real = os.fstatvfs
        monkeypatch.setattr(shm_build.os, "fstatvfs",
                            lambda fd: os.statvfs_result((*real(fd)[:4], 0, *real(fd)[5:])))
    else:
        writes = []

        def enospc(fd, a, offset):
            writes.append(offset)
            if len(writes) > 3:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        monkeypatch.setattr(shm_build, "_pwrite_all", enospc)
    with pytest.raises(ResourceLimit, match="no room for a .*-byte shared dataset in") as info:
        _load(calls, candles, tmp_path)
    assert info.value.data["directory"] == str(tmp_path)
    assert _shm_files(tmp_path) == []


def test_series_keyed_by_mint_and_unreferenced_rows(tmp_path):
    ds = synthetic_dataset(n_calls=12, n_candles=50, seed=5)
    table = _table(ds)
    extra = pa.table({"key": pa.array(["nobody"] * 10), "ts_ms": np.arange(10, dtype=np.int64),
                      **{c: np.ones(10) for c in ("open", "high", "low", "close", "volume")}})
    table = pa.concat_tables([extra, table, extra])
    calls, candles = _files(ds, tmp_path, table, row_group_size=64)
    shared = _load(calls, candles, tmp_path)
    try:
        _assert_same(shared.dataset, ds)
        assert shared.nbytes <= planned_bytes(table.num_rows, ds.n_calls)
    finally:
        shared.close()


def test_through_the_daemon_shuffled_file_then_optimize(small, tmp_path):
    """loadDataset of an unsorted, multi-row-group file: the answer and the
    pool's results are those of the in-process dataset; the file goes with
    dropDataset."""
    from tests._daemon import Daemon
    from worker import optimize

    table = _table(small)
    rows = np.random.default_rng(4).permutation(table.num_rows)
    calls, candles = _files(small, tmp_path, table.take(rows), row_group_size=900)
    want = dataset_from_files(calls, candles)
    shm = tmp_path / "shm"
    shm.mkdir()
    d = Daemon("--pool-size", "1", "--shm-dir", str(shm))
    try:
        info = d.client.result("loadDataset", {"dataset_id": "x", "calls_path": calls,
                                               "candles_path": candles})
        assert info["candles"] == want.n_candles and info["bytes"] == want.nbytes
        assert len(_shm_files(shm)) == 1
        grid = {"tp_mults": [1.5 + 0.1 * i for i in range(40)], "sl_mults": [0.8, 0.9],
                "max_hold_hrs": [1.0, 4.0]}   # 160 points: large enough for the pool
        got = d.client.result("optimize", {"dataset_id": "x", "param_grid": grid})
        ref = optimize(want, grid)
        assert got["best_params"]["tp_mult"] == ref.best_params.tp_mult
        assert got["best_metrics"]["final_capital"] == ref.best_metrics.final_capital
        d.client.result("dropDataset", {"dataset_id": "x"})
    finally:
        d.kill()
    assert _shm_files(shm) == []
