"""SPEC 13's demo bars (``worker._data.synthetic_bars``): sizes, OHLC
rules, determinism, regimes both ways, and the Parquet files."""

from __future__ import annotations

import time

import numpy as np
import pyarrow.parquet as pq
import pytest

from worker._data.synthetic_bars import COLUMNS, demo_bars, symbol_names, write_demo_bars


@pytest.fixture(scope="module")
def full():
    t0 = time.perf_counter()
    bars = demo_bars()
    return bars, time.perf_counter() - t0


def test_default_set_is_four_symbols_of_ninety_days_fast(full):
    bars, seconds = full
    assert list(bars) == symbol_names(4) and len(bars) == 4
    assert all(cols["ts_ms"].size == 129_600 for cols in bars.values())
    assert seconds < 2.0


def test_bars_keep_the_ohlc_rules(full):
    for name, c in full[0].items():
        o, h, lo, cl, v, ts = (c[k] for k in ("open", "high", "low", "close", "volume", "ts_ms"))
        assert ts.dtype == np.int64 and (np.diff(ts) == 60_000).all(), name
        assert np.isfinite([o, h, lo, cl, v]).all(), name
        assert (lo > 0).all() and (v > 0).all(), name
        assert (lo <= np.minimum(o, cl)).all() and (np.maximum(o, cl) <= h).all(), name


def test_trends_both_ways_and_ranges(full):
    """Every symbol has days that rise and days that fall by more than
    noise, and the set has up and down trends lasting a day or more."""
    up = down = 0
    for c in full[0].values():
        daily = np.diff(np.log(c["close"][::1_440]))
        assert (daily > 0.02).any() and (daily < -0.02).any()
        two_day = np.log(c["close"][2_880::2_880] / c["close"][:-2_880:2_880])
        up += int((two_day > 0.05).sum())
        down += int((two_day < -0.05).sum())
    assert up > 0 and down > 0


def test_seeded_and_symbols_independent_of_count():
    a, b = demo_bars(symbols=2, days=1, seed=3), demo_bars(symbols=5, days=1, seed=3)
    for name in a:
        for k in COLUMNS:
            assert np.array_equal(a[name][k], b[name][k])
    c = demo_bars(symbols=2, days=1, seed=4)
    assert not np.array_equal(a["ALPHA"]["close"], c["ALPHA"]["close"])


def test_more_symbols_than_names_and_byte_order():
    names = symbol_names(10)
    assert len(set(names)) == 10 and names == sorted(names, key=str.encode)
    assert list(demo_bars(symbols=10, days=0.01)) == names


def test_write_demo_bars_one_parquet_per_symbol(tmp_path):
    written = write_demo_bars(tmp_path / "bars", symbols=3, days=0.5, seed=1)
    assert [p.name for p, _ in written] == [f"{n}.parquet" for n in symbol_names(3)]
    for path, n in written:
        table = pq.read_table(path)
        assert table.column_names == list(COLUMNS) and table.num_rows == n == 720
        assert str(table.schema.field("ts_ms").type) == "int64"


def test_bad_sizes_are_refused():
    with pytest.raises(ValueError):
        demo_bars(symbols=0)
    with pytest.raises(ValueError):
        demo_bars(days=0)
