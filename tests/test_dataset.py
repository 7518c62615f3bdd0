"""The data layer: sources agree, derived indices are right, every rule bites.

All data is generated here from fixed seeds; files go to pytest's tmp_path.
"""

from __future__ import annotations

import math

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import _messages as m
from worker._core.dataset import Dataset
from worker._core.validate import DECODED
from worker._data.files import dataset_from_files, write_dataset_files
from worker._data.loaders import dataset_from_columnar, dataset_from_rows
from worker._errors import InvalidDataset, InvalidParams

ARRAYS = ("call_caller", "call_ts_ms", "call_series", "series_offsets", "ts_ms", "open",
          "high", "low", "close", "volume", "call_order", "entry_idx", "series_end")
TUPLES = ("series_key", "call_ids", "call_mints", "caller_names", "series_keys",
          "dropped_keys")
SOURCES = ("rows", "columnar", "parquet", "csv")
T0 = 1_700_000_000_000


# ------------------------------------------------------------------ helpers

def candle(ts, o=1.0, h=2.0, lo=0.5, c=1.5, v=10.0):
    return [ts, o, h, lo, c, v]


def raw_data(seed=1, n_calls=30, max_len=40, series_key="call_id"):
    """Calls plus ``{key: [[ts_ms, o, h, l, c, v], ...]}``, valid and sorted."""
    rng = np.random.default_rng(seed)
    mints = [f"mint{int(m)}" for m in rng.integers(0, max(1, n_calls // 3), n_calls)]
    calls = [{"id": f"call-{i}", "caller": f"caller-{int(rng.integers(0, 4))}",
              "mint": mints[i], "ts_ms": T0 + int(rng.integers(0, 50)) * 60_000
              + int(rng.integers(0, 3)) * 7} for i in range(n_calls)]
    keys = [c["id"] for c in calls] if series_key == "call_id" else sorted(set(mints))
    series = {}
    for k in keys:
        n = int(rng.integers(0, max_len))
        if n == 0 and rng.random() < 0.5:
            continue  # missing series (the other half: an empty one)
        ts = T0 + np.cumsum(rng.integers(1, 120_000, n)) - 600_000
        close = np.exp(rng.normal(0, 0.1, n))
        o = close * np.exp(rng.normal(0, 0.01, n))
        series[k] = [candle(int(t), float(a), float(max(a, b) * 1.01),
                            float(min(a, b) * 0.99), float(b), float(v))
                     for t, a, b, v in zip(ts, o, close, rng.random(n) * 100)]
    return calls, series


def to_rows(series):
    """Timestamps in seconds: an int when whole, else a float (as the CLI)."""
    return {k: [{"timestamp": (t // 1000 if t % 1000 == 0 else t / 1000),
                 "open": o, "high": h, "low": lo, "close": c, "volume": v}
                for t, o, h, lo, c, v in rows] for k, rows in series.items()}


def to_columnar(series):
    flat = [(k, *r) for k, rows in series.items() for r in rows]
    cols = list(zip(*flat)) if flat else [()] * 7
    names = ("key", "ts_ms", "open", "high", "low", "close", "volume")
    return {n: list(v) for n, v in zip(names, cols)}


def write_files(calls, series, tmp_path, ext, order=None):
    """Calls and candles tables written by plain pyarrow (not our writer)."""
    cc = to_columnar(series)
    if order is not None:
        cc = {k: [v[i] for i in order] for k, v in cc.items()}
    calls_t = pa.table({"id": [c["id"] for c in calls],
                        "caller": [c["caller"] for c in calls],
                        "mint": [c.get("mint", "") for c in calls],
                        "ts_ms": pa.array([c["ts_ms"] for c in calls], pa.int64())})
    cand_t = pa.table({"key": pa.array(cc["key"], pa.string()),
                       "ts_ms": pa.array(cc["ts_ms"], pa.int64()),
                       **{n: pa.array(cc[n], pa.float64())
                          for n in ("open", "high", "low", "close", "volume")}})
    paths = tmp_path / f"calls{ext}", tmp_path / f"candles{ext}"
    for t, p in zip((calls_t, cand_t), paths):
        pq.write_table(t, p) if ext == ".parquet" else pacsv.write_csv(t, p)
    return str(paths[0]), str(paths[1])


def load(source, calls, series, tmp_path, **kw):
    if source == "rows":
        return dataset_from_rows(calls, to_rows(series), **kw)
    if source == "columnar":
        return dataset_from_columnar(calls, to_columnar(series), **kw)
    ext = ".parquet" if source == "parquet" else ".csv"
    return dataset_from_files(*write_files(calls, series, tmp_path, ext), **kw)


def assert_same(a: Dataset, b: Dataset):
    for name in TUPLES:
        assert getattr(a, name) == getattr(b, name), name
    for name in ARRAYS:
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and np.array_equal(x, y), name


def naive_links(calls, series, series_key, ds):
    """Per call: (series key or None, entry offset in series or None)."""
    out = []
    for c in calls:
        k = c["id"] if series_key == "call_id" else c.get("mint", "")
        rows = series.get(k) or []
        if not rows or k == "":
            out.append((None, None))
            continue
        later = [i for i, r in enumerate(rows) if r[0] >= c["ts_ms"]]
        out.append((k, later[0] if later else None))
    return out


def links(ds):
    out = []
    for i in range(ds.n_calls):
        s = int(ds.call_series[i])
        if s < 0:
            assert ds.entry_idx[i] == -1 and ds.series_end[i] == -1
            out.append((None, None))
            continue
        start, stop = ds.series_offsets[s], ds.series_offsets[s + 1]
        assert ds.series_end[i] == stop - 1
        e = int(ds.entry_idx[i])
        out.append((ds.series_keys[s], None if e < 0 else e - int(start)))
    return out


# ------------------------------------------------------------------ round trips

@pytest.mark.parametrize("series_key", ["call_id", "mint"])
def test_all_sources_give_identical_arrays(tmp_path, series_key):
    calls, series = raw_data(seed=3, series_key=series_key)
    base = load("rows", calls, series, tmp_path, series_key=series_key)
    assert base.n_candles == sum(len(r) for r in series.values())
    for source in SOURCES[1:]:
        assert_same(base, load(source, calls, series, tmp_path, series_key=series_key))
    assert links(base) == naive_links(calls, series, series_key, base)


@pytest.mark.parametrize("ext", [".parquet", ".csv"])
def test_write_dataset_files_round_trip(tmp_path, ext):
    calls, series = raw_data(seed=5)
    ds = dataset_from_rows(calls, to_rows(series))
    paths = str(tmp_path / f"c{ext}"), str(tmp_path / f"k{ext}")
    write_dataset_files(ds, *paths)
    assert_same(ds, dataset_from_files(*paths))


@pytest.mark.parametrize("ext", [".parquet", ".csv"])
def test_files_need_not_be_sorted(tmp_path, ext):
    calls, series = raw_data(seed=7)
    n = sum(len(r) for r in series.values())
    order = np.random.default_rng(0).permutation(n).tolist()
    ds = dataset_from_files(*write_files(calls, series, tmp_path, ext, order))
    ref = dataset_from_rows(calls, to_rows(series))
    # Series order follows first appearance in the file; contents per key match.
    assert sorted(ds.series_keys) == sorted(ref.series_keys)
    for k in ref.series_keys:
        a, b = ds.series_keys.index(k), ref.series_keys.index(k)
        for col in ("ts_ms", "open", "high", "low", "close", "volume"):
            x, y = getattr(ds, col), getattr(ref, col)
            assert np.array_equal(x[ds.series_offsets[a]:ds.series_offsets[a + 1]],
                                  y[ref.series_offsets[b]:ref.series_offsets[b + 1]])
    assert links(ds) == links(ref)
    assert np.array_equal(ds.call_order, ref.call_order)


def test_columnar_keys_may_interleave():
    calls = [{"id": "a", "caller": "x", "ts_ms": 0}, {"id": "b", "caller": "x", "ts_ms": 0}]
    inter = {"key": ["a", "b", "a", "b"], "ts_ms": [1, 1, 2, 2], "open": [1, 2, 3, 4],
             "high": [9] * 4, "low": [1] * 4, "close": [1, 2, 3, 4]}
    ds = dataset_from_columnar(calls, inter)
    assert ds.series_keys == ("a", "b")
    assert ds.ts_ms.tolist() == [1, 2, 1, 2] and ds.open.tolist() == [1, 3, 2, 4]
    assert ds.volume.tolist() == [0.0] * 4 and ds.series_offsets.tolist() == [0, 2, 4]


# ------------------------------------------------------------------ derived indices

def test_call_order_entry_and_end_hand_cases():
    calls = [
        {"id": "same-ms-1", "caller": "x", "ts_ms": 5_000},   # 0
        {"id": "early", "caller": "y", "ts_ms": 1_000},       # 1: before first candle
        {"id": "same-ms-2", "caller": "x", "ts_ms": 5_000},   # 2
        {"id": "late", "caller": "y", "ts_ms": 99_000},       # 3: after last candle
        {"id": "none", "caller": "z", "ts_ms": 5_000},        # 4: no series at all
        {"id": "empty", "caller": "z", "ts_ms": 0},           # 5: empty series
        {"id": "between", "caller": "x", "ts_ms": 2_500},     # 6: between candles
    ]
    c = [candle(t) for t in (2_000, 3_000, 5_000, 9_000)]
    series = {"same-ms-1": c, "early": c, "same-ms-2": c, "late": c, "empty": [],
              "between": c, "unused": c}
    ds = dataset_from_rows(calls, to_rows(series))
    assert ds.series_keys == ("same-ms-1", "early", "same-ms-2", "late", "between")
    assert ds.call_order.tolist() == [5, 1, 6, 0, 2, 4, 3]
    assert ds.call_series.tolist() == [0, 1, 2, 3, -1, -1, 4]
    assert ds.entry_idx.tolist() == [2, 4, 10, -1, -1, -1, 17]
    assert ds.series_end.tolist() == [3, 7, 11, 15, -1, -1, 19]
    assert ds.caller_names == ("x", "y", "z")
    assert ds.call_caller.tolist() == [0, 1, 0, 1, 2, 2, 0]
    for name in ARRAYS:
        arr = getattr(ds, name)
        assert arr.flags.c_contiguous and not arr.flags.writeable


def test_mint_series_shared_by_calls():
    calls = [{"id": "a", "caller": "x", "mint": "M", "ts_ms": 2_000},
             {"id": "b", "caller": "x", "mint": "N", "ts_ms": 0},
             {"id": "c", "caller": "y", "mint": "M", "ts_ms": 4_000},
             {"id": "d", "caller": "y", "mint": "", "ts_ms": 0},
             {"id": "e", "caller": "y", "ts_ms": 0}]
    series = {"N": [candle(1_000)], "M": [candle(t) for t in (1_000, 3_000, 5_000)],
              "": [candle(1)]}
    ds = dataset_from_rows(calls, to_rows(series), series_key="mint")
    assert ds.series_keys == ("N", "M")  # the empty mint names no token
    assert ds.call_series.tolist() == [1, 0, 1, -1, -1]
    assert ds.entry_idx.tolist() == [2, 0, 3, -1, -1]
    assert ds.series_end.tolist() == [3, 0, 3, -1, -1]
    assert ds.call_mints == ("M", "N", "M", "", "")


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), n_calls=st.integers(0, 12),
       series_key=st.sampled_from(["call_id", "mint"]))
def test_links_match_naive_scan(seed, n_calls, series_key):
    calls, series = raw_data(seed=seed, n_calls=n_calls, max_len=6, series_key=series_key)
    ds = dataset_from_columnar(calls, to_columnar(series), series_key=series_key)
    assert links(ds) == naive_links(calls, series, series_key, ds)
    expect = sorted(range(n_calls), key=lambda i: (calls[i]["ts_ms"], i))
    assert ds.call_order.tolist() == expect
    assert_same(ds, dataset_from_rows(calls, to_rows(series), series_key=series_key))


def test_empty_dataset():
    ds = dataset_from_columnar([], to_columnar({}))
    assert (ds.n_calls, ds.n_series, ds.n_candles) == (0, 0, 0)
    assert ds.series_offsets.tolist() == [0]
    assert ds.summary()["dropped"] == {"count": 0, "keys": []}


SECONDS = (1, 2.0005, 3.0015, 4.0025, 5.0004999, 1_700_000_000.123, 1_700_000_060)


def test_seconds_become_rounded_ms():
    calls = [{"id": "a", "caller": "x", "ts_ms": 0}]
    rows = {"a": [{"timestamp": t, "open": 1, "high": 1, "low": 1, "close": 1}
                  for t in SECONDS]}
    ds = dataset_from_rows(calls, rows)
    assert ds.ts_ms.tolist() == [round(t * 1000) for t in SECONDS]


def decoded_rows(rows):
    """``rows`` as the daemon's decoder hands them over: ``CandleRow`` Structs."""
    return msgspec.json.decode(msgspec.json.encode(rows), type=dict[str, list[m.CandleRow]])


def from_decoded(calls, rows, **kw):
    """``dataset_from_rows`` inside a request whose params held ``rows``."""
    token = DECODED.set((rows,))
    try:
        return dataset_from_rows(calls, rows, **kw)
    finally:
        DECODED.reset(token)


@pytest.mark.parametrize("series_key", ["call_id", "mint"])
def test_decoded_rows_give_the_arrays_dicts_give(series_key):
    """The daemon's rows (Structs msgspec checked) are read straight into
    columns; Structs it did not check are read as dicts are."""
    calls, series = raw_data(seed=11, series_key=series_key)
    rows = to_rows(series)
    first = next(v for v in rows.values() if len(v) >= 3)
    first[0]["volume"] = None   # a null volume is 0.0,
    first[1]["volume"] = -0.0   # so is -0.0 ("or 0.0"),
    del first[2]["volume"]      # and a missing one
    want = dataset_from_rows(calls, rows, series_key=series_key)
    got = from_decoded(calls, decoded_rows(rows), series_key=series_key)
    assert_same(want, got)
    assert not np.signbit(got.volume).any()
    assert_same(want, dataset_from_rows(calls, decoded_rows(rows), series_key=series_key))


def test_decoded_rows_still_name_a_bad_timestamp():
    calls = [{"id": "a", "caller": "x", "ts_ms": 0}]
    ok = {"timestamp": 1, "open": 1, "high": 1, "low": 1, "close": 1}
    rows = decoded_rows({"b": [ok], "a": [ok, {**ok, "timestamp": 1e300}]})
    with pytest.raises(InvalidParams) as info:
        from_decoded(calls, rows)
    assert info.value.path == '$.candles_by_call_id["a"][1].timestamp'


def test_candle_row_structs_built_in_python_are_checked():
    calls = [{"id": "a", "caller": "x", "ts_ms": 0}]
    good = m.CandleRow(timestamp=1.0, open=1.0, high=1.0, low=1.0, close=1.0)
    bad = m.CandleRow(timestamp=2.0, open="1", high=1.0, low=1.0, close=1.0)
    with pytest.raises(InvalidParams) as info:
        dataset_from_rows(calls, {"a": [good, bad]})
    assert info.value.path == '$.candles_by_call_id["a"][1].open'
    assert dataset_from_rows(calls, {"a": [good]}).open.tolist() == [1.0]


# ------------------------------------------------------------------ series rules

def bad_case(kind):
    """Three series; series "k2" breaks ``kind`` at candle 3 (and later)."""
    calls = [{"id": f"k{i}", "caller": "x", "ts_ms": T0} for i in range(3)]
    series = {f"k{i}": [candle(T0 + j * 60_000) for j in range(6)] for i in range(3)}
    bad = series["k2"]
    if kind == "dup_ts":
        bad[3][0] = bad[2][0]
    elif kind == "back_ts":
        bad[3][0] = bad[2][0] - 1
    elif kind == "low_gt_high":
        bad[3][3], bad[3][2] = 3.0, 2.0
    else:
        col, value = kind
        bad[3][col] = value
    bad[5][3] = 99.0  # a later break in the same series does not change the report
    return calls, series


PRICE_BREAKS = [(col, v) for col in (1, 2, 3, 4) for v in (math.nan, math.inf, 0.0, -1.0)]


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("kind,rule", [("dup_ts", "strictly_increasing_ts"),
                                       ("low_gt_high", "low_le_high")]
                         + [(b, "finite_positive_price") for b in PRICE_BREAKS])
def test_bad_series_is_named(tmp_path, source, kind, rule):
    calls, series = bad_case(kind)
    with pytest.raises(InvalidDataset) as info:
        load(source, calls, series, tmp_path)
    err = info.value
    assert (err.key, err.index, err.rule) == ("k2", 3, rule)
    assert err.data == {"key": "k2", "index": 3, "rule": rule}
    assert '"k2"' in err.message and "candle 3" in err.message and rule in err.message


@pytest.mark.parametrize("source", ["rows", "columnar"])
def test_inline_candles_must_be_sorted(tmp_path, source):
    calls, series = bad_case("back_ts")
    with pytest.raises(InvalidDataset) as info:
        load(source, calls, series, tmp_path)
    assert (info.value.key, info.value.index, info.value.rule) == \
        ("k2", 3, "strictly_increasing_ts")


@pytest.mark.parametrize("source", ["parquet", "csv"])
def test_file_candles_are_sorted_then_checked(tmp_path, source):
    """Candles 2 and 3 of "k2" are swapped in time: sorting moves each whole
    row (its prices and volume with its timestamp), then the rules pass."""
    calls, series = bad_case("back_ts")
    for rows in series.values():  # prices and volumes that tell every candle apart
        for j, row in enumerate(rows):
            row[1:] = [10.0 + j, 20.0 + j, 5.0 + j, 15.0 + j, 100.0 + j]
    ds = load(source, calls, series, tmp_path)
    s = ds.series_keys.index("k2")
    a, b = int(ds.series_offsets[s]), int(ds.series_offsets[s + 1])
    got = list(zip(ds.ts_ms[a:b].tolist(), *(getattr(ds, c)[a:b].tolist() for c in
                                            ("open", "high", "low", "close", "volume"))))
    assert got == sorted(tuple(row) for row in series["k2"])
    assert [row[1] for row in sorted(series["k2"])] == [10.0, 11.0, 13.0, 12.0, 14.0, 15.0]


def test_first_bad_series_is_reported(tmp_path):
    calls, series = bad_case("dup_ts")
    series["k1"][4][1] = math.nan
    with pytest.raises(InvalidDataset) as info:
        load("columnar", calls, series, tmp_path)
    assert (info.value.key, info.value.index) == ("k1", 4)


def test_bad_series_without_a_call_is_ignored(tmp_path):
    calls, series = bad_case("dup_ts")
    ds = load("columnar", calls[:2], series, tmp_path)
    assert ds.series_keys == ("k0", "k1") and ds.dropped_keys == ()


@pytest.mark.parametrize("source", SOURCES)
def test_drop_mode_leaves_bad_series_out(tmp_path, source):
    calls, series = raw_data(seed=11)
    keys = list(series)
    for k, j in ((keys[5], 0), (keys[1], -1)):
        series[k][j][3] = math.nan
    ds = load(source, calls, series, tmp_path, on_bad_series="drop")
    assert ds.dropped_keys == (keys[1], keys[5]) and ds.dropped_count == 2
    assert ds.summary()["dropped"] == {"count": 2, "keys": [keys[1], keys[5]]}
    for k in (keys[1], keys[5]):
        i = [c["id"] for c in calls].index(k)
        assert ds.call_series[i] == -1 and ds.entry_idx[i] == -1
    good = {k: v for k, v in series.items() if k not in (keys[1], keys[5])}
    ref = dataset_from_rows(calls, to_rows(good))
    for name in ARRAYS:
        assert np.array_equal(getattr(ds, name), getattr(ref, name)), name
    with pytest.raises(InvalidDataset):
        load(source, calls, series, tmp_path)


def test_drop_mode_drops_every_rule():
    calls, series = raw_data(seed=2, n_calls=8, max_len=5)
    keys = [k for k in series if len(series[k]) >= 2]
    series[keys[0]][1][0] = series[keys[0]][0][0]
    series[keys[1]][0][2], series[keys[1]][0][3] = 1.0, 2.0
    series[keys[2]][1][4] = -3.0
    ds = dataset_from_columnar(calls, to_columnar(series), on_bad_series="drop")
    assert ds.dropped_keys == tuple(keys[:3])
    assert set(ds.series_keys).isdisjoint(keys[:3])


# ------------------------------------------------------------------ call rules

@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("mode", ["error", "drop"])
def test_duplicate_call_id_is_always_an_error(tmp_path, source, mode):
    calls, series = raw_data(seed=4, n_calls=6)
    calls[4]["id"] = calls[1]["id"]
    with pytest.raises(InvalidDataset) as info:
        load(source, calls, series, tmp_path, on_bad_series=mode)
    err = info.value
    assert (err.key, err.index, err.rule) == (calls[1]["id"], 4, "unique_call_id")
    assert "1" in err.message and "4" in err.message and calls[1]["id"] in err.message


@pytest.mark.parametrize("field,rule", [("id", "non_empty_call_id"),
                                        ("caller", "non_empty_caller")])
def test_empty_id_or_caller(field, rule):
    calls, series = raw_data(seed=4, n_calls=4)
    calls[2][field] = ""
    with pytest.raises(InvalidDataset) as info:
        dataset_from_rows(calls, to_rows(series))
    assert (info.value.index, info.value.rule) == (2, rule)


# ------------------------------------------------------------------ malformed input

@pytest.mark.parametrize("ts", [None, 1.5e12, "1700000000000", True, 2**64])
def test_call_ts_ms_must_be_an_integer(ts):
    calls = [{"id": "a", "caller": "x", "ts_ms": 0}, {"id": "b", "caller": "x", "ts_ms": ts}]
    if ts is None:
        del calls[1]["ts_ms"]
    for load_fn, cand in ((dataset_from_rows, {}), (dataset_from_columnar, to_columnar({}))):
        with pytest.raises(InvalidParams) as info:
            load_fn(calls, cand)
        assert info.value.path == "$.calls[1].ts_ms"


@pytest.mark.parametrize("call,path", [({"caller": "x", "ts_ms": 0}, "$.calls[0].id"),
                                       ({"id": "a", "caller": 3, "ts_ms": 0}, "$.calls[0].caller"),
                                       ({"id": "a", "caller": "x", "mint": 1, "ts_ms": 0},
                                        "$.calls[0].mint"),
                                       ("a", "$.calls[0]")])
def test_call_fields_are_typed(call, path):
    with pytest.raises(InvalidParams) as info:
        dataset_from_rows([call], {})
    assert info.value.path == path and path in info.value.message


@pytest.mark.parametrize("row,path", [
    ({"open": 1, "high": 1, "low": 1, "close": 1}, '$.candles_by_call_id["a"][1].timestamp'),
    ({"timestamp": 2, "high": 1, "low": 1, "close": 1}, '$.candles_by_call_id["a"][1].open'),
    ({"timestamp": "2", "open": 1, "high": 1, "low": 1, "close": 1},
     '$.candles_by_call_id["a"][1].timestamp'),
    ({"timestamp": 2, "open": 1, "high": [1], "low": 1, "close": 1},
     '$.candles_by_call_id["a"][1].high'),
    ({"timestamp": 2, "open": 1, "high": 1, "low": 1, "close": 1, "volume": "x"},
     '$.candles_by_call_id["a"][1].volume'),
    ({"timestamp": 1e300, "open": 1, "high": 1, "low": 1, "close": 1},
     '$.candles_by_call_id["a"][1].timestamp'),
    (7, '$.candles_by_call_id["a"][1]'),
])
def test_candle_rows_are_typed(row, path):
    calls = [{"id": "a", "caller": "x", "ts_ms": 0}]
    ok = {"timestamp": 1, "open": 1, "high": 1, "low": 1, "close": 1}
    with pytest.raises(InvalidParams) as info:
        dataset_from_rows(calls, {"b": [ok], "a": [ok, row]})
    assert info.value.path == path


def test_columnar_shapes_and_types():
    calls = [{"id": "a", "caller": "x", "ts_ms": 0}]
    good = {"key": ["a", "a"], "ts_ms": [1, 2], "open": [1, 1], "high": [1, 1],
            "low": [1, 1], "close": [1, 1]}
    dataset_from_columnar(calls, good)
    for field, value, path in [("high", [1], "$.candles_columnar.high"),
                               ("volume", [1, 2, 3], "$.candles_columnar.volume"),
                               ("ts_ms", [1.0, 2.5], "$.candles_columnar.ts_ms"),
                               ("open", ["1", "2"], "$.candles_columnar.open"),
                               ("key", ["a", None], "$.candles_columnar.key[1]"),
                               ("key", [1, 2], "$.candles_columnar.key"),
                               ("close", None, "$.candles_columnar.close")]:
        with pytest.raises(InvalidParams) as info:
            dataset_from_columnar(calls, {**good, field: value})
        assert info.value.path == path, field


def test_options_are_checked():
    with pytest.raises(InvalidParams) as info:
        dataset_from_rows([], {}, series_key="token")
    assert info.value.path == "$.series_key"
    with pytest.raises(InvalidParams) as info:
        dataset_from_columnar([], to_columnar({}), on_bad_series="skip")
    assert info.value.path == "$.on_bad_series"


@pytest.mark.parametrize("ext", [".parquet", ".csv"])
def test_file_errors_name_file_and_column(tmp_path, ext):
    calls, series = raw_data(seed=9, n_calls=3)
    calls_path, candles_path = write_files(calls, series, tmp_path, ext)
    with pytest.raises(InvalidParams) as info:
        dataset_from_files(calls_path, str(tmp_path / f"nope{ext}"))
    assert info.value.path == "$.candles_path" and "nope" in info.value.message

    table = pa.table({"key": ["a"], "ts_ms": [1], "open": [1.0], "high": [1.0],
                      "close": [1.0]})  # no low
    p = str(tmp_path / f"nolow{ext}")
    pq.write_table(table, p) if ext == ".parquet" else pacsv.write_csv(table, p)
    with pytest.raises(InvalidParams) as info:
        dataset_from_files(calls_path, p)
    assert "nolow" in info.value.message and "'low'" in info.value.message

    table = table.append_column("low", pa.array([1.0])).set_column(
        1, "ts_ms", pa.array([1.5]))
    p = str(tmp_path / f"floatts{ext}")
    pq.write_table(table, p) if ext == ".parquet" else pacsv.write_csv(table, p)
    with pytest.raises(InvalidParams) as info:
        dataset_from_files(calls_path, p)
    assert "floatts" in info.value.message and "ts_ms" in info.value.message
    assert info.value.path == "$.candles_path"

    with pytest.raises(InvalidParams) as info:
        dataset_from_files(calls_path, str(tmp_path / "x.json"))
    assert info.value.path == "$.candles_path"


def test_mint_column_needed_for_mint_series(tmp_path):
    p = str(tmp_path / "calls.csv")
    pacsv.write_csv(pa.table({"id": ["a"], "caller": ["x"], "ts_ms": [0]}), p)
    with pytest.raises(InvalidParams) as info:
        dataset_from_files(p, p, series_key="mint")
    assert info.value.path == "$.calls_path" and "'mint'" in info.value.message


def test_calls_file_rows_are_named(tmp_path):
    calls = [{"id": "a", "caller": "x", "ts_ms": 0}, {"id": "a", "caller": "y", "ts_ms": 1}]
    calls_path, candles_path = write_files(calls, {}, tmp_path, ".csv")
    with pytest.raises(InvalidDataset) as info:
        dataset_from_files(calls_path, candles_path)
    assert "calls.csv row 0" in info.value.message and "calls.csv row 1" in info.value.message


def test_unknown_extension(tmp_path):
    p = tmp_path / "calls.txt"
    p.write_text("id,caller,ts_ms\n")
    with pytest.raises(InvalidParams) as info:
        dataset_from_files(str(p), str(p))
    assert info.value.path == "$.calls_path" and ".txt" in info.value.message


def test_parquet_without_volume_and_with_nulls(tmp_path):
    calls_path = str(tmp_path / "calls.parquet")
    pq.write_table(pa.table({"id": ["a"], "caller": ["x"], "mint": [None],
                             "ts_ms": [0]}), calls_path)
    cand = str(tmp_path / "cand.parquet")
    pq.write_table(pa.table({"key": ["a", "a"], "ts_ms": [2, 1], "open": [1, 2],
                             "high": [3.0, 4.0], "low": [1.0, 1.0],
                             "close": pa.array([1.0, 2.0], pa.float32())}), cand)
    ds = dataset_from_files(calls_path, cand)
    assert ds.ts_ms.tolist() == [1, 2] and ds.open.tolist() == [2.0, 1.0]
    assert ds.volume.tolist() == [0.0, 0.0] and ds.call_mints == ("",)
    pq.write_table(pa.table({"key": ["a", "a"], "ts_ms": [1, 2], "open": [1.0, None],
                             "high": [3.0, 4.0], "low": [1.0, 1.0],
                             "close": [1.0, 2.0]}), cand)
    with pytest.raises(InvalidDataset) as info:
        dataset_from_files(calls_path, cand)
    assert (info.value.key, info.value.index, info.value.rule) == \
        ("a", 1, "finite_positive_price")


# ------------------------------------------------------------------ memory

@pytest.mark.parametrize("source", ["columnar", "parquet"])
def test_memory_held_is_close_to_raw(tmp_path, source):
    rng = np.random.default_rng(0)
    n_series, length = 300, 400
    calls = [{"id": f"c{i}", "caller": "x", "ts_ms": T0} for i in range(n_series)]
    ts = T0 + np.tile(np.arange(length, dtype=np.int64) * 60_000, n_series)
    px = rng.uniform(1.0, 2.0, n_series * length)
    cc = {"key": np.repeat([f"c{i}" for i in range(n_series)], length), "ts_ms": ts,
          "open": px, "high": px * 1.1, "low": px * 0.9, "close": px, "volume": px}
    ds = dataset_from_columnar(calls, cc)
    if source == "parquet":
        paths = str(tmp_path / "c.parquet"), str(tmp_path / "k.parquet")
        write_dataset_files(ds, *paths)
        ds = dataset_from_files(*paths)
    raw = ds.n_candles * 6 * 8
    assert raw <= ds.nbytes <= 1.3 * raw
    for name in ("ts_ms", "open", "high", "low", "close", "volume"):
        arr = getattr(ds, name)
        # not a view into something bigger that would be held unseen
        assert arr.base is None or getattr(arr.base, "nbytes", arr.nbytes) <= arr.nbytes * 1.01
