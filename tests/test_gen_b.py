"""Data set B (``bench/gen_b.py``, SPEC 9) has the properties its docstring
claims: seeded, valid per SPEC 1, alerts over 60 days, 1-6 % per-minute
volatility, and a default grid that keeps most calls trading while the
account saturates."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench"))

import gen_b  # noqa: E402

import worker  # noqa: E402
from worker._data.synthetic import from_synthetic_columns  # noqa: E402

DAY_MS = 86_400_000


@pytest.fixture(scope="module")
def cols():
    return gen_b.gen_b_columns(n_calls=2_000, n_candles=600, seed=5)


def test_deterministic_for_a_seed(cols):
    again = gen_b.gen_b_columns(n_calls=2_000, n_candles=600, seed=5)
    other = gen_b.gen_b_columns(n_calls=2_000, n_candles=600, seed=6)
    for k in ("ts_ms", "candle_ts", "open", "high", "low", "close", "volume", "keys"):
        np.testing.assert_array_equal(cols[k], again[k], err_msg=k)
    assert cols["ids"] == again["ids"] and cols["callers"] == again["callers"]
    assert not np.array_equal(cols["close"], other["close"])
    assert not np.array_equal(cols["ts_ms"], other["ts_ms"])


def test_valid_per_spec_1(cols):
    n, m = len(cols["ids"]), 600
    ts = cols["candle_ts"].reshape(n, m)
    assert (np.diff(ts, axis=1) > 0).all()
    o, h, lo, c = (cols[k].reshape(n, m) for k in ("open", "high", "low", "close"))
    for a in (o, h, lo, c):
        assert np.isfinite(a).all() and (a > 0).all()
    assert (lo <= h).all() and (lo <= np.minimum(o, c)).all() and (h >= np.maximum(o, c)).all()
    assert len(set(cols["ids"])) == n
    ds = from_synthetic_columns(cols)  # runs the SPEC 1 checks
    summary = ds.summary()
    assert summary["calls"] == n and summary["candles"] == n * m
    assert summary["calls_with_entry"] == n      # every alert falls inside its series
    # The entry candle is one of the first 16 (the series starts 0-15 min early).
    first = ts[:, 0]
    assert ((cols["ts_ms"] - first) < 16 * 60_000).all() and (cols["ts_ms"] >= first).all()


def test_alerts_uniform_over_60_days(cols):
    t = (cols["ts_ms"] - gen_b.START_MS) / DAY_MS
    assert t.min() >= 0 and t.max() < 60
    assert t.min() < 1 and t.max() > 59
    # Empirical CDF against the uniform one (KS distance; 2,000 draws: ~0.03).
    s = np.sort(t) / 60
    ks = np.abs(s - (np.arange(s.size) + 0.5) / s.size).max()
    assert ks < 0.05
    assert not (np.diff(cols["ts_ms"]) >= 0).all()   # rows are not in time order


def test_per_minute_volatility_within_1_to_6_percent(cols):
    n = len(cols["ids"])
    r = np.diff(np.log(cols["close"].reshape(n, 600)), axis=1)
    sigma = cols["sigma"]
    assert ((sigma >= 0.01) & (sigma <= 0.06)).all()
    assert sigma.min() < 0.0105 and sigma.max() > 0.055     # the whole range is used
    # Without a pump, a series' steps have sample std sigma (the first step,
    # into the first candle, is not a close-to-close return: 599 of 600 here).
    quiet = ~cols["pumped"]
    np.testing.assert_allclose(r[quiet].std(axis=1), sigma[quiet], rtol=0.05)
    # With one, the typical minute is unchanged (robust estimate, MAD).
    mad = np.median(np.abs(r - np.median(r, axis=1, keepdims=True)), axis=1) * 1.4826
    np.testing.assert_allclose(mad, sigma, rtol=0.25)
    # Rare pumps: a few % of calls gain 1.5x to 8x within 20 minutes, once.
    c = cols["close"].reshape(n, 600)
    jump = (np.log(c[:, 20:]) - np.log(c[:, :-20])).max(axis=1)
    assert 0.02 < cols["pumped"].mean() < 0.1
    assert (jump[cols["pumped"]] > np.log(1.4)).mean() > 0.9


def test_default_grid_keeps_most_calls_trading_and_saturates_the_account():
    # The 10,000-call density (1,000 calls in 6 days, not 60) on 48 h series.
    n = 1_000
    ds = gen_b.gen_b_dataset(n_calls=n, n_candles=2_880, span_days=6.0, seed=1)
    res = worker.optimize(ds, include_all=True)
    trades = np.array([p.metrics.trades_executed for p in res.all_results])
    full = np.array([p.metrics.skipped["max_positions"] for p in res.all_results])
    assert trades.size == 30
    assert (trades >= 0.6 * n).mean() >= 2 / 3            # most points keep most calls
    assert 0.7 * n <= np.median(trades) <= 0.95 * n        # "about 8,000 of 10,000"
    assert (full > 0).mean() >= 0.5                        # the account is often full
    assert np.median(full) >= 0.05 * n


def test_writes_parquet_both_styles(tmp_path):
    ds = gen_b.gen_b_dataset(n_calls=50, n_candles=100, seed=2)
    for style in ("worker", "pyarrow"):
        calls, candles = str(tmp_path / f"{style}-calls.parquet"), str(tmp_path / f"{style}-candles.parquet")
        gen_b.write_parquet(ds, calls, candles, style=style)
        back = worker.dataset_from_files(calls, candles)
        assert back.call_ids == ds.call_ids
        np.testing.assert_array_equal(back.high, ds.high)
        np.testing.assert_array_equal(back.ts_ms, ds.ts_ms)
