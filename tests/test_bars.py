"""SPEC 13 bars: timeframes, resampling against a plain loop, symbol
selection, and every file form and rule of ``load_bars``.

Data is generated here from fixed seeds (hypothesis derandomized); files go
to pytest's tmp_path.
"""

from __future__ import annotations

import json
import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from worker._core.bars import (
    build_bars,
    check_timeframe,
    format_timeframe,
    parse_timeframe,
    resample,
    select,
)
from worker._data.bars import load_bars
from worker._errors import InvalidDataset, InvalidParams

COLS = ("ts_ms", "open", "high", "low", "close", "volume")


# ------------------------------------------------------------------ helpers

def make_bars(ts_by_symbol: dict[str, list[int]], seed: int = 0) -> dict:
    """``{symbol: {column: list}}`` of valid bars at the given times."""
    rng = np.random.default_rng(seed)
    out = {}
    for sym, ts in ts_by_symbol.items():
        n = len(ts)
        o = rng.uniform(1, 100, n).round(4)
        c = rng.uniform(1, 100, n).round(4)
        h = np.maximum(o, c) + rng.uniform(0, 5, n).round(4)
        lo = np.minimum(o, c) - rng.uniform(0, 0.9, n).round(4)
        out[sym] = {"ts_ms": list(ts), "open": o.tolist(), "high": h.tolist(),
                    "low": lo.tolist(), "close": c.tolist(),
                    "volume": rng.uniform(0, 1e3, n).round(3).tolist()}
    return out


def to_barset(data: dict):
    names = sorted(data, key=str.encode)
    cols = {k: np.concatenate([np.asarray(data[s][k]) for s in names]) for k in COLS}
    lengths = [len(data[s]["ts_ms"]) for s in names]
    return build_bars(names, np.concatenate(([0], np.cumsum(lengths))),
                      *(cols[k] for k in COLS))


def as_table(data: dict, *, interleave: bool = True, volume: bool = True) -> pa.Table:
    """One table; rows of different symbols interleaved (per-symbol order kept)."""
    rows = [(s, i) for s in data for i in range(len(data[s]["ts_ms"]))]
    if interleave:
        rows.sort(key=lambda r: (r[1], r[0][::-1]))
    cols = {"symbol": pa.array([s for s, _ in rows])}
    for k in COLS if volume else COLS[:-1]:
        cols[k] = pa.array([data[s][k][i] for s, i in rows])
    return pa.table(cols)


def write(table: pa.Table, path) -> str:
    path = str(path)
    if path.endswith(".csv"):
        pacsv.write_csv(table, path)  # pyarrow's defaults (quoted strings)
    else:
        pq.write_table(table, path)   # pyarrow's defaults (dictionary, snappy)
    return path


def assert_same(a, b):
    assert a.symbols == b.symbols
    for k in ("offsets", *COLS, "base_interval_ms"):
        np.testing.assert_array_equal(getattr(a, k), getattr(b, k), err_msg=k)
        assert getattr(a, k).dtype == getattr(b, k).dtype, k


DATA = make_bars({"BTC": [0, 60_000, 120_000, 240_000],
                  "ETH": [-120_000, -60_000, 0],
                  "a": [30_000],
                  "b": [60_000, 120_000, 180_000, 300_000, 360_000]}, seed=3)


# ------------------------------------------------------------------ timeframes

@pytest.mark.parametrize("tf, ms", [
    ("1m", 60_000), ("5m", 300_000), ("15m", 900_000), ("1h", 3_600_000),
    ("4h", 14_400_000), ("1d", 86_400_000), ("90m", 5_400_000), ("60m", 3_600_000),
    ("7d", 7 * 86_400_000), ("100000d", 100_000 * 86_400_000),
])
def test_parse_timeframe_valid(tf, ms):
    assert parse_timeframe(tf, "$.timeframes[0]") == ms


@pytest.mark.parametrize("tf", [
    "0m", "-5m", "+5m", "1.5h", "5M", "5H", "", "5", "m", " 5m", "5m ", "05m",
    "00m", "5s", "5mm", "1e3m", "٥m", "5 m", "99999999999999999d", "200000000d",
    5, None, 5.0, ["5m"],
])
def test_parse_timeframe_invalid(tf):
    with pytest.raises(InvalidParams) as e:
        parse_timeframe(tf, "$.timeframes[3]")
    assert e.value.path == "$.timeframes[3]"
    assert "$.timeframes[3]" in str(e.value)
    shown = json.dumps(tf) if isinstance(tf, str) else type(tf).__name__
    assert shown[:12] in str(e.value)


def test_format_timeframe():
    assert [format_timeframe(parse_timeframe(t, "$")) for t in
            ("1m", "60m", "24h", "90m", "2d")] == ["1m", "1h", "1d", "90m", "2d"]
    assert format_timeframe(1500) == "1500 ms"


# ------------------------------------------------------------------ resampling

def reference_resample(ts, o, h, lo, c, v, tf):
    """SPEC 13 in plain Python: bar time floor(ts / tf) * tf, open of its
    first base bar, highest high, lowest low, close of its last, summed
    volume; no bar for an empty bucket."""
    out = []
    for i in range(len(ts)):
        start = (int(ts[i]) // tf) * tf
        if out and out[-1][0] == start:
            bar = out[-1]
            bar[2] = max(bar[2], float(h[i]))
            bar[3] = min(bar[3], float(lo[i]))
            bar[4] = float(c[i])
            bar[5] = bar[5] + float(v[i])
        else:
            out.append([start, float(o[i]), float(h[i]), float(lo[i]), float(c[i]),
                        0.0 + float(v[i])])
    return out


@st.composite
def bar_sets(draw):
    base = draw(st.sampled_from([1, 7, 1000, 60_000]))
    series = {}
    for s in range(draw(st.integers(1, 4))):
        start = draw(st.integers(-10**9, 10**9))  # negative times too, unaligned
        gaps = draw(st.lists(st.sampled_from([1, 1, 1, 1, 2, 3, 10]), max_size=40))
        series[f"S{s}"] = np.cumsum([start] + [g * base for g in gaps]).tolist()
    tf = base * draw(st.sampled_from([1, 2, 3, 5, 60]))
    return make_bars(series, seed=draw(st.integers(0, 9))), tf


@settings(max_examples=150, deadline=None, derandomize=True)
@given(bar_sets())
def test_resample_matches_plain_loop(case):
    data, tf = case
    bars = to_barset(data)
    out = resample(bars, tf)
    if all(tf % b == 0 for b in bars.base_interval_ms.tolist() if b):
        check_timeframe(bars, select(bars, None), tf, "$.timeframes[0]")
    else:
        with pytest.raises(InvalidParams, match="base interval"):
            check_timeframe(bars, select(bars, None), tf, "$.timeframes[0]")
    assert out.symbols == bars.symbols
    for s, name in enumerate(bars.symbols):
        ref = reference_resample(*(data[name][k] for k in COLS), tf)
        got = out.symbol_view(s)
        assert got.ts_ms.tolist() == [r[0] for r in ref]
        for k, col in enumerate(COLS[1:], start=1):
            assert getattr(got, col).tolist() == [r[k] for r in ref], col
        assert np.all(got.ts_ms % tf == 0) and np.all(np.diff(got.ts_ms) > 0)


def test_resample_negative_times_floor():
    data = make_bars({"X": [-7, -5, -4, -1, 0, 2, 5]})
    out = resample(to_barset(data), 5)
    assert out.ts_ms.tolist() == [-10, -5, 0, 5]
    assert out.open.tolist()[1] == data["X"]["open"][1]   # first bar of [-5, 0)
    assert out.close.tolist()[1] == data["X"]["close"][3]  # last bar of [-5, 0)


def test_resample_subset_and_base_interval_of_result():
    bars = to_barset(DATA)
    idx = select(bars, ["b", "BTC"])
    assert idx.tolist() == [0, 3]
    out = resample(bars, 120_000, idx)
    assert out.symbols == ("BTC", "b")
    assert out.ts_ms.tolist() == [0, 120_000, 240_000, 0, 120_000, 240_000, 360_000]
    assert out.base_interval_ms.tolist() == [120_000, 120_000]
    assert not out.ts_ms.flags.writeable


def test_resample_identity_returns_views():
    data = make_bars({"A": [0, 60_000, 180_000], "B": [60_000, 120_000],
                      "C": [-60_000, 0]})
    bars = to_barset(data)
    out = resample(bars, 60_000)
    assert_same(out, bars)
    assert all(np.shares_memory(getattr(out, k), getattr(bars, k)) for k in COLS)
    one = resample(bars, 60_000, np.array([1]))
    assert one.symbols == ("B",)
    assert np.shares_memory(one.close, bars.close)
    # Not contiguous: copied, still equal.
    two = resample(bars, 60_000, np.array([0, 2]))
    assert two.ts_ms.tolist() == [0, 60_000, 180_000, -60_000, 0]


def test_resample_unaligned_is_not_identity():
    bars = to_barset(make_bars({"A": [30_000, 90_000, 150_000]}))
    assert resample(bars, 60_000).ts_ms.tolist() == [0, 60_000, 120_000]


def test_resample_cache_shared_across_threads():
    bars = to_barset(DATA)
    barrier = threading.Barrier(4)

    def run(_):
        barrier.wait()
        return resample(bars, 300_000)

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(run, range(4)))
    assert all(r is results[0] for r in results)
    assert resample(bars, 300_000, select(bars, None)) is results[0]
    assert resample(bars, 300_000, np.array([0])) is not results[0]
    for k in range(40):
        resample(bars, 60_000 * (k + 1))
    assert len(bars._resampled) <= 16


# ------------------------------------------------------------------ base interval

@pytest.mark.parametrize("ts, base", [
    ([0, 1, 2, 4, 6], 1),             # gaps 1,1,2,2: a tie -> the smaller
    ([0, 3, 6, 8], 3),                # gaps 3,3,2
    ([0, 2, 5, 7, 10, 15], 2),        # gaps 2,3,2,3,5: tie 2/3 -> 2
    ([10, 15], 5),
    ([42], 0),                        # one bar: accepts every timeframe
    ([-10, -4, 2, 5], 6),
])
def test_base_interval(ts, base):
    bars = to_barset(make_bars({"X": ts}))
    assert bars.base_interval_ms.tolist() == [base]


def test_base_interval_per_symbol():
    bars = to_barset(DATA)
    assert bars.symbols == ("BTC", "ETH", "a", "b")
    assert bars.base_interval_ms.tolist() == [60_000, 60_000, 0, 60_000]


# ------------------------------------------------------------------ select / check

def test_select():
    bars = to_barset(DATA)
    assert select(bars, None).tolist() == [0, 1, 2, 3]
    assert select(bars, ["b", "ETH"], "$.symbols").tolist() == [1, 3]
    assert select(bars, None).dtype == np.int64


@pytest.mark.parametrize("symbols, path, text", [
    (["BTC", "DOGE"], "$.symbols[1]", '"DOGE"'),
    (["BTC", "a", "BTC"], "$.symbols[2]", "$.symbols[0]"),
    (["BTC", 3], "$.symbols[1]", "int"),
    ([], "$.symbols", "non-empty"),
    ("BTC", "$.symbols", "array"),
])
def test_select_errors(symbols, path, text):
    with pytest.raises(InvalidParams) as e:
        select(to_barset(DATA), symbols, "$.symbols")
    assert e.value.path == path
    assert text in str(e.value)


def test_check_timeframe():
    bars = to_barset(make_bars({"A": [0, 300_000, 600_000], "B": [0, 60_000],
                                "C": [7]}))
    check_timeframe(bars, select(bars, None), 900_000, "$.timeframes[0]")
    check_timeframe(bars, select(bars, ["B", "C"]), 60_000, "$.timeframes[0]")
    check_timeframe(bars, select(bars, ["C"]), 1, "$.timeframes[0]")  # one bar
    with pytest.raises(InvalidParams) as e:
        check_timeframe(bars, select(bars, None), 600_000 + 60_000, "$.timeframes[2]")
    assert e.value.path == "$.timeframes[2]"
    assert '"A"' in str(e.value) and "11m" in str(e.value) and "5m" in str(e.value)
    with pytest.raises(InvalidParams, match='"A".*5m'):
        check_timeframe(bars, select(bars, None), 60_000, "$.timeframes[0]")


# ------------------------------------------------------------------ file forms

@pytest.fixture()
def expected():
    return to_barset(DATA)


@pytest.mark.parametrize("name", ["bars.parquet", "bars.pq", "bars.csv"])
def test_table_forms(tmp_path, expected, name):
    path = write(as_table(DATA), tmp_path / name)
    assert_same(load_bars(path), expected)


def test_table_with_dictionary_symbols(tmp_path, expected):
    t = as_table(DATA)
    t = t.set_column(0, "symbol", t.column("symbol").dictionary_encode())
    path = write(t, tmp_path / "bars.parquet")
    assert pa.types.is_dictionary(pq.read_schema(path).field("symbol").type)
    assert_same(load_bars(path), expected)
    # A dictionary value no row uses is no symbol.
    z = as_table({"Z": DATA["BTC"]})
    dict_arr = pa.DictionaryArray.from_arrays(
        pa.array([1] * len(z), pa.int32()), pa.array(["unused", "Z"]))
    bars = load_bars(write(z.set_column(0, "symbol", dict_arr), tmp_path / "z.parquet"))
    assert bars.symbols == ("Z",)
    assert bars.close.tolist() == DATA["BTC"]["close"]


@pytest.mark.parametrize("ext", [".csv", ".parquet"])
def test_directory_forms(tmp_path, expected, ext):
    for sym, cols in DATA.items():
        write(pa.table(cols), tmp_path / f"{sym}{ext}")
    (tmp_path / "README.txt").write_text("not bars")
    (tmp_path / ".hidden.csv").write_text("garbage")
    assert_same(load_bars(str(tmp_path)), expected)


def test_directory_mixed_extensions_and_no_volume(tmp_path):
    write(pa.table({k: DATA["BTC"][k] for k in COLS[:-1]}), tmp_path / "BTC.csv")
    write(pa.table(DATA["ETH"]), tmp_path / "ETH.parquet")
    bars = load_bars(str(tmp_path))
    assert bars.symbols == ("BTC", "ETH")
    assert bars.symbol_view(0).volume.tolist() == [0.0] * 4
    assert bars.symbol_view(1).volume.tolist() == DATA["ETH"]["volume"]


def test_timestamp_in_seconds(tmp_path):
    secs = [-1.5, 0.0004, 0.0015, 1.0025, 2.5, 1_700_000_000.123]
    data = make_bars({"X": list(range(len(secs)))})["X"]
    t = pa.table({"timestamp": secs, **{k: data[k] for k in COLS[1:]}})
    want = [round(s * 1000) for s in secs]
    for name in ("X.csv", "X.parquet"):
        d = tmp_path / name.split(".")[1]
        d.mkdir()
        write(t, d / name)
        assert load_bars(str(d)).ts_ms.tolist() == want
    ints = pa.table({"symbol": ["X", "X"], "timestamp": pa.array([-3, 1_700_000_000]),
                     **{k: data[k][:2] for k in COLS[1:]}})
    bars = load_bars(write(ints, tmp_path / "ints.parquet"))
    assert bars.ts_ms.tolist() == [-3000, 1_700_000_000_000]


def test_ts_ms_wins_over_timestamp(tmp_path):
    t = as_table(DATA).append_column("timestamp", pa.array(["junk"] * 13))
    assert_same(load_bars(write(t, tmp_path / "b.csv")), to_barset(DATA))


def test_symbols_filter(tmp_path):
    path = write(as_table(DATA), tmp_path / "t.parquet")
    bars = load_bars(path, ["b", "BTC"])
    assert bars.symbols == ("BTC", "b")
    assert_same(bars, resample(to_barset(DATA), 1, np.array([0, 3])))
    with pytest.raises(InvalidParams) as e:
        load_bars(path, ["BTC", "NOPE"])
    assert e.value.path == "$.symbols[1]" and '"NOPE"' in str(e.value)
    # Directory: a bad file of a symbol not asked for is never read.
    d = tmp_path / "dir"
    d.mkdir()
    write(pa.table(DATA["a"]), d / "a.csv")
    (d / "bad.csv").write_text("ts_ms,open\nx,y\n")
    assert load_bars(str(d), ["a"]).symbols == ("a",)
    with pytest.raises(InvalidParams, match=r"\$\.symbols"):
        load_bars(str(d), "a")


def test_symbol_order_is_byte_order(tmp_path):
    data = make_bars({"é": [0], "b": [0], "B": [0], "a1": [0], "a": [0]})
    bars = load_bars(write(as_table(data), tmp_path / "t.csv"))
    assert bars.symbols == ("B", "a", "a1", "b", "é")


# ------------------------------------------------------------------ data rules

def bad_table(tmp_path, edit, name="t.parquet"):
    data = make_bars({"A": [0, 60_000, 120_000], "B": [0, 60_000, 120_000, 180_000]})
    edit(data)
    return write(as_table(data, interleave=True), tmp_path / name)


@pytest.mark.parametrize("edit, key, index, rule", [
    (lambda d: d["B"]["ts_ms"].__setitem__(2, 30_000), "B", 2, "strictly_increasing_ts"),
    (lambda d: d["A"]["ts_ms"].__setitem__(1, 0), "A", 1, "strictly_increasing_ts"),
    (lambda d: d["B"]["ts_ms"].__setitem__(3, 2**53 + 1), "B", 3, "ts_in_range"),
    (lambda d: d["B"]["close"].__setitem__(1, math.nan), "B", 1, "finite_positive_price"),
    (lambda d: d["A"]["open"].__setitem__(2, 0.0), "A", 2, "finite_positive_price"),
    (lambda d: d["A"]["high"].__setitem__(0, math.inf), "A", 0, "finite_positive_price"),
    (lambda d: d["B"]["low"].__setitem__(3, 1e9), "B", 3, "low_le_high"),
    (lambda d: d["B"]["volume"].__setitem__(0, -1.0), "B", 0, "finite_nonnegative_volume"),
    (lambda d: d["A"]["volume"].__setitem__(2, math.nan), "A", 2,
     "finite_nonnegative_volume"),
])
def test_rules(tmp_path, edit, key, index, rule):
    path = bad_table(tmp_path, edit)
    with pytest.raises(InvalidDataset) as e:
        load_bars(path)
    assert (e.value.key, e.value.index, e.value.rule) == (key, index, rule)
    msg = str(e.value)
    assert f'symbol "{key}", bar {index}' in msg and rule in msg and path in msg
    assert "file row" in msg
    assert e.value.data == {"key": key, "index": index, "rule": rule}


def test_rule_row_in_file_and_no_values(tmp_path):
    # Rows interleave A0 B0 A1 B1 A2 B2 B3: B's bar 2 is file row 5.
    path = bad_table(tmp_path, lambda d: d["B"]["low"].__setitem__(2, 987654.321),
                     name="t.csv")
    with pytest.raises(InvalidDataset, match="file row 5") as e:
        load_bars(path)
    assert "987654" not in str(e.value)


def test_rules_in_directory_form(tmp_path):
    data = make_bars({"A": [0, 60_000, 60_000]})
    write(pa.table(data["A"]), tmp_path / "A.csv")
    with pytest.raises(InvalidDataset) as e:
        load_bars(str(tmp_path))
    assert (e.value.key, e.value.index, e.value.rule) == ("A", 2, "strictly_increasing_ts")
    assert "file row" not in str(e.value)


def test_null_volume_is_zero_null_price_is_bad(tmp_path):
    data = make_bars({"A": [0, 60_000]})["A"]
    t = pa.table({**data, "volume": pa.array([None, 2.0], pa.float64())})
    write(t, tmp_path / "A.parquet")
    assert load_bars(str(tmp_path)).volume.tolist() == [0.0, 2.0]
    (tmp_path / "A.parquet").unlink()
    write(t.set_column(1, "open", pa.array([1.0, None])), tmp_path / "A.parquet")
    with pytest.raises(InvalidDataset, match="finite_positive_price"):
        load_bars(str(tmp_path))


# ------------------------------------------------------------------ shapes and types

def csv_file(tmp_path, text, name="t.csv"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


HEADER = "symbol,ts_ms,open,high,low,close\n"


@pytest.mark.parametrize("text, match", [
    ("", "cannot read"),                                    # empty file
    (HEADER, "no bars"),                                    # header only
    ("symbol,ts_ms,open,high,low\nA,0,1,2,0.5\n", r"missing column.*'close'"),
    ("symbol,open,high,low,close\nA,1,2,0.5,1\n", "missing column 'ts_ms'"),
    (HEADER + "A,0,1,2,0.5,1\nA,60000,SECRET,2,0.5,1\n",
     r"column 'open' has a value .*that is not a double"),
    (HEADER + "A,0,1,2,0.5,1\nA,1.5e3,1,2,0.5,1\n", r"column 'ts_ms' .*not an integer"),
    (HEADER + "A,0,1,2,0.5,1\n,60000,1,2,0.5,1\n", "invalid symbol at row 1"),
    (HEADER + "A,0,1,2,0.5,1,9\n", "not a valid CSV"),
    ("symbol,timestamp,open,high,low,close\nA,0,1,2,0.5,1\nA,,1,2,0.5,1\n",
     "'timestamp' has a null at row 1"),
])
def test_table_shape_errors(tmp_path, text, match):
    path = csv_file(tmp_path, text)
    with pytest.raises(InvalidParams, match=match) as e:
        load_bars(path)
    assert e.value.path == "$.bars_path" and path in str(e.value)
    assert "SECRET" not in str(e.value)


@pytest.mark.parametrize("column, values, match", [
    ("open", pa.array(["1", "2"]), "'open' must be numeric, got string"),
    ("ts_ms", pa.array([0.0, 1.0]), "'ts_ms' must be an integer"),
    ("ts_ms", pa.array([0, None], pa.int64()), "'ts_ms' has a null at row 1"),
    ("symbol", pa.array(["A", None]), "'symbol' has a null at row 1"),
    ("symbol", pa.array([1, 2]), "'symbol' must be string"),
    ("symbol", pa.array(["A", "A\n"]), "invalid symbol at row 1"),
    ("ts_ms", pa.array([0, 2**64 - 1], pa.uint64()), "out of int64 range"),
])
def test_parquet_type_errors(tmp_path, column, values, match):
    data = make_bars({"A": [0, 60_000]})["A"]
    t = pa.table({"symbol": ["A", "A"], **data})
    t = t.set_column(t.column_names.index(column), column, values)
    with pytest.raises(InvalidParams, match=match):
        load_bars(write(t, tmp_path / "t.parquet"))


@pytest.mark.parametrize("seconds", [
    pa.array([0, 2**64 - 1], pa.uint64()),
    pa.array([0, -(2**62)], pa.int64()),
    pa.array([0.0, math.nan]),
    pa.array([0.0, math.inf]),
    pa.array([0.0, 1e300]),
])
def test_bad_seconds(tmp_path, seconds):
    data = make_bars({"A": [0, 1]})["A"]
    t = pa.table({"timestamp": seconds, **{k: data[k] for k in COLS[1:]}})
    write(t, tmp_path / "A.parquet")
    with pytest.raises(InvalidParams, match="'timestamp' has a value at row 1") as e:
        load_bars(str(tmp_path))
    assert "e+300" not in str(e.value) and "inf" not in str(e.value)


def test_directory_errors(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(InvalidParams, match="no bar files"):
        load_bars(str(tmp_path))
    write(pa.table(DATA["BTC"]), tmp_path / "A.csv")
    write(pa.table(DATA["BTC"]), tmp_path / "A.parquet")
    with pytest.raises(InvalidParams, match=r'two files for symbol "A".*A\.csv.*A\.parquet'):
        load_bars(str(tmp_path))
    (tmp_path / "A.parquet").unlink()
    for bad in (" A.csv", "B\x07.csv", "C .parquet"):
        write(pa.table(DATA["BTC"]), tmp_path / bad)
        with pytest.raises(InvalidParams, match="not <SYMBOL>.csv") as e:
            load_bars(str(tmp_path))
        assert e.value.path == "$.bars_path"
        os.remove(tmp_path / bad)
    (tmp_path / "E.csv").write_text("ts_ms,open,high,low,close\n")
    with pytest.raises(InvalidParams, match=r"E\.csv: has no bars"):
        load_bars(str(tmp_path))
    os.mkfifo(tmp_path / "E.csv.fifo")  # other extensions are ignored
    (tmp_path / "E.csv").unlink()
    os.mkfifo(tmp_path / "F.csv")       # never opened: it would block
    with pytest.raises(InvalidParams, match="FIFO"):
        load_bars(str(tmp_path))


@pytest.mark.parametrize("path, match", [
    ("/nonexistent/bars.csv", "no such file"),
    ("", "path"),
    (None, "path"),
])
def test_bad_paths(path, match):
    with pytest.raises(InvalidParams, match=match) as e:
        load_bars(path)
    assert e.value.path == "$.bars_path"


def test_unknown_extension(tmp_path):
    path = csv_file(tmp_path, HEADER + "A,0,1,2,0.5,1\n", name="bars.txt")
    with pytest.raises(InvalidParams, match="unknown file type"):
        load_bars(path)


def test_loaded_arrays_are_read_only(tmp_path):
    bars = load_bars(write(as_table(DATA), tmp_path / "t.parquet"))
    for k in ("offsets", *COLS, "base_interval_ms"):
        assert not getattr(bars, k).flags.writeable, k
    view = bars.symbol_view(0)
    assert view.symbol == "BTC" and np.shares_memory(view.high, bars.high)
