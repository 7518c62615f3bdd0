"""Property tests for SPEC 13: ``worker.optimize_strategy`` (signals ->
calls, exits in units of risk, long and short, one account across symbols,
per-trade mode) agrees with the plain-loop reference
(``tests/reference/strategy.py``) to 1e-9, on random bars built to hit the
edges: gaps through stops, wide candles that hit both levels, structural
stops on the wrong side (``bad_stop``), shorts whose take profit is at or
below zero, symbols sharing bucket times."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests._compare import assert_close, plain
from tests.reference.strategy import optimize_strategy as ref_optimize
from worker import InvalidParams, optimize_strategy
from worker._core.bars import build_bars, byte_order

PROPERTY = settings(max_examples=120, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
MIN = 60_000


@st.composite
def bar_sets(draw):
    """2-3 symbols of 1-minute bars (some minutes missing), as reference rows
    and as a ``BarSet``."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    names = draw(st.sampled_from([["A", "B"], ["BTC", "ETH", "b"], ["Z", "ä"]]))
    start = draw(st.sampled_from([0, 1_700_000_000_000, -7 * MIN]))
    vol = draw(st.sampled_from([0.002, 0.02, 0.3]))
    rows = {}
    for name in names:
        span = int(rng.integers(20, 200))
        minutes = np.flatnonzero(rng.random(span) < 0.85)  # most gaps one minute
        n = minutes.size
        close = 100 * np.exp(np.cumsum(rng.normal(0, vol, n)))
        open_ = np.r_[close[0], close[:-1]] * np.exp(rng.normal(0, vol / 2, n))
        high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0, vol, n)))
        low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0, vol, n)))
        rows[name] = [(int(start + m * MIN), float(o), float(h), float(lo), float(c), 1.0)
                      for m, o, h, lo, c in zip(minutes, open_, high, low, close)]
    order = byte_order(names)
    cols = list(zip(*[r for s in order for r in rows[s]]))
    offsets = np.cumsum([0] + [len(rows[s]) for s in order])
    bars = build_bars(tuple(order), offsets.astype(np.int64), np.array(cols[0], np.int64),
                      *(np.array(c, np.float64) for c in cols[1:]))
    return rows, bars


STRATEGY = st.sampled_from([
    ("sma_cross", {"fast": [1, 2], "slow": [3, 5], "direction": ["both", "short"]}),
    ("sma_cross", {"fast": [2, 4], "slow": [4]}),
    ("donchian_breakout", {"lookback": [2, 4]}),
    ("rsi_reversion", {"period": [2, 3], "lower": [30, 45], "upper": [55, 70]}),
    ("sweep_bos", {"swing": [1, 2], "window": [3, 8]}),
])
EXITS = st.fixed_dictionaries({}, optional={
    "tp_r": st.sampled_from([[0.5, 2.0], [1.0], [40.0, 60.0]]),
    "sl_pct": st.sampled_from([[0.005, 0.02], [0.3]]),
    "max_hold_hrs": st.sampled_from([[0.05, 1.0], [24.0]]),
    "trail_r": st.sampled_from([[None, 0.5], [1.5]]),
    "breakeven_r": st.sampled_from([[None, 0.5], [1.0]]),
    "entry_delay_candles": st.sampled_from([[0, 2], [1]]),
})
CONFIG = st.fixed_dictionaries({}, optional={
    "gap_fill": st.sampled_from(["open", "level"]),
    "intrabar": st.sampled_from(["tp_first", "sl_first"]),
    "max_concurrent_positions": st.integers(1, 4),
    "max_allocation_pct": st.sampled_from([0.04, 0.5, 1.0]),
    "taker_fee_bps": st.sampled_from([0.0, 30.0]),
})


@PROPERTY
@given(data=bar_sets(), strategy=STRATEGY, exits=EXITS, config=CONFIG,
       timeframes=st.sampled_from([["1m"], ["2m", "5m"], ["3m"]]),
       mode=st.sampled_from(["capital", "per_trade"]), minimize=st.booleans())
def test_optimize_strategy_matches_reference(data, strategy, exits, config, timeframes, mode,
                                             minimize):
    rows, bars = data
    name, grid = strategy
    kw = dict(strategy=name, strategy_grid=grid, timeframes=timeframes, mode=mode,
              minimize=minimize)
    try:
        ours = optimize_strategy(bars, grid=exits, config=config, include_all=True,
                                 top_k=10_000, **kw)
    except InvalidParams as exc:  # a timeframe that is not a multiple of a base interval
        assert exc.path.startswith("$.timeframes[")
        with pytest.raises(ValueError):
            ref_optimize(rows, name, grid, timeframes, exits, config, mode=mode)
        return
    theirs = ref_optimize(rows, name, grid, timeframes, exits, config, mode=mode,
                          minimize=minimize)
    assert ours.signal_sets.evaluated == theirs["signal_sets"]["evaluated"]
    assert ours.signal_sets.rejected == theirs["signal_sets"]["rejected"]
    assert plain(ours.signals) == theirs["signals"]
    points = theirs["points"]
    assert [p.params for p in ours.all_results] == [p["params"] for p in points]
    assert_close([plain(p.metrics) for p in ours.all_results], [
        {k: x for k, x in p["metrics"].items() if k not in ("trades", "trade_records")
         or not isinstance(x, list)} for p in points])
    assert [p.rank for p in ours.all_results] == [p["rank"] for p in points]
    for p in points:  # what the examples reach (--hypothesis-show-statistics)
        m = p["metrics"]
        event(f"traded: {min(m.get('trades_executed', m.get('trades', 0)), 3)}+")
        event(f"bad_stop: {m['skipped']['bad_stop'] > 0}")
        event(f"exits: {sorted(k for k, x in m['exits'].items() if x)}")
    event(f"shorts: {sum(x['short'] for x in theirs['signals']) > 0}")
    best = theirs["best"]
    assert ours.best_params == (None if best is None else points[best]["params"])


def every_kth(bars, params):
    """A plug-in (SPEC 13) whose stops fall on both sides of the entry, and
    at it: every ``k``-th bar, alternating direction; ``stop`` = close x (1
    -+ off), on the wrong side every third signal, none with ``off`` 0."""
    return _every_kth(len(bars.close), np.asarray(bars.close), params)


def _every_kth(n, close, params):
    k, off = params["k"], params["off"]
    idx = np.arange(k - 1, n, k)
    direction = np.where((idx // k) % 2 == 0, 1, -1)
    side = np.where((idx // k) % 3 == 2, -1, 1)  # -1: the wrong side
    out = {"index": idx, "direction": direction}
    if off:
        out["stop"] = close[idx] * (1 - direction * side * off)
    return out


def _reference_calls(rows, tf, tf_ms, params):
    from tests.reference.strategy import resample

    keyed = []
    for symbol, base in rows.items():
        sampled = resample(base, tf_ms)
        sig = _every_kth(len(sampled), np.array([r[4] for r in sampled]), params)
        stops = sig.get("stop", [None] * len(sig["index"]))
        for i, d, stop in zip(sig["index"].tolist(), sig["direction"].tolist(), list(stops)):
            ts = sampled[i][0] + tf_ms
            keyed.append(((ts, symbol.encode(), i), {
                "id": f"{symbol}:{tf}:{i}", "caller": symbol, "symbol": symbol, "ts_ms": ts,
                "dir": d, "stop": None if stop is None else float(stop)}))
    return [c for _, c in sorted(keyed, key=lambda kc: kc[0])]


@PROPERTY
@given(data=bar_sets(), exits=EXITS, config=CONFIG, mode=st.sampled_from(["capital", "per_trade"]),
       k=st.integers(1, 4), off=st.sampled_from([0.0, 0.001, 0.01, 0.2]))
def test_plugin_signals_and_bad_stops_match_reference(data, exits, config, mode, k, off):
    """Stops on the wrong side are ``bad_stop`` skips, in both modes, exactly
    as the reference simulates the same calls."""
    from tests.reference.strategy import exit_points, simulate_strategy, strategy_config

    rows, bars = data
    params = {"k": k, "off": off}
    ours = optimize_strategy(bars, strategy="tests.test_strategy_vs_reference:every_kth",
                             strategy_grid={"k": [k], "off": [off]}, timeframes=["1m"],
                             grid=exits, config=config, mode=mode, include_all=True,
                             top_k=10_000)
    calls = _reference_calls(rows, "1m", MIN, params)
    points = exit_points(exits, strategy_config(config))
    assert [p.params for p in ours.all_results] == [{"timeframe": "1m", **params, **p}
                                                     for p in points]
    want = [simulate_strategy(rows, calls, p, config, mode) for p in points]
    assert_close([plain(p.metrics) for p in ours.all_results], want)
    for m in want:
        event(f"bad_stop: {m['skipped']['bad_stop'] > 0}")
