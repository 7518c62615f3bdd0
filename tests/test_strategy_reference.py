"""Hand-computed golden cases for the SPEC 13 reference (tests/reference/strategy.py).

Every expected number is worked out in the comments from the SPEC's words.
Costs with the default config: (taker_fee_bps 30 + slippage_bps 10) / 10_000 * 2
= 0.008 of the size per round trip.
"""

import pytest

from tests.reference import (
    base_interval,
    optimize_strategy,
    parse_timeframe,
    rejected,
    resample,
    signals,
    simulate_strategy,
    strategy_calls,
)
from tests.reference.strategy import wilder_rsi
from tests.reference.strategy_exits import stop_at

M = 60_000  # one minute in ms
approx = lambda x: pytest.approx(x, rel=1e-12, abs=1e-12)  # noqa: E731


def bar(ts, o, h, l, c, v=1.0):  # noqa: E741
    return (ts, o, h, l, c, v)


def ohlc(rows):
    """Bars from (o, h, l, c) with times 0, 1m, 2m, ..."""
    return [bar(k * M, *r) for k, r in enumerate(rows)]


def call(symbol, ts, d, stop=None, i=0):
    return {"id": "%s:1m:%d" % (symbol, i), "caller": symbol, "symbol": symbol,
            "ts_ms": ts, "dir": d, "stop": stop}


# --------------------------------------------------------------------------
# Bars and timeframes
# --------------------------------------------------------------------------

def test_timeframes_and_base_interval():
    assert parse_timeframe("1m") == 60_000
    assert parse_timeframe("15m") == 900_000
    assert parse_timeframe("4h") == 14_400_000
    assert parse_timeframe("1d") == 86_400_000
    assert parse_timeframe("90m") == 5_400_000
    for bad in ("0m", "1s", "1H", "h", "01m", " 1m", "1.5h", 60_000):
        with pytest.raises(ValueError):
            parse_timeframe(bad)
    # gaps 1m, 2m, 1m, 2m: a tie between 1m and 2m -> the smaller, 1m
    rows = [bar(t * M, 1, 1, 1, 1) for t in (0, 1, 3, 4, 6)]
    assert base_interval(rows) == M
    # gaps 2m, 2m, 1m -> 2m
    rows = [bar(t * M, 1, 1, 1, 1) for t in (0, 2, 4, 5)]
    assert base_interval(rows) == 2 * M
    assert base_interval(rows[:1]) == 0


def test_resample_missing_first_base_bar_and_negative_time():
    rows = [
        bar(-1 * M, 5, 6, 4, 5.5, 2),  # bucket floor(-1/5)*5 = -5m (Python //)
        # bucket [0, 5m): its first base bar (time 0) is missing
        bar(1 * M, 10, 11, 9, 10.5, 1),
        bar(2 * M, 10.5, 12, 10, 11, 2),
        bar(4 * M, 11, 11.5, 8, 9, 3),
        # bucket [5m, 10m) has no base bar: no bar at all
        bar(10 * M, 9, 9.5, 8.5, 9.2, 4),  # bucket 10m
    ]
    out = resample(rows, 5 * M)
    assert out == [
        (-5 * M, 5, 6, 4, 5.5, 2),
        # time 0 (not 1m); open of the first base bar 10, max high 12,
        # min low 8, close of the last 9, volume 1 + 2 + 3 = 6
        (0, 10, 12, 8, 9, 6),
        (10 * M, 9, 9.5, 8.5, 9.2, 4),
    ]


def test_timeframe_must_be_a_multiple_of_the_base_interval():
    rows = [bar(t * 2 * M, 1, 1, 1, 1) for t in range(4)]  # base 2m
    bars = {"X": rows, "ONE": rows[:1]}  # ONE (one bar) accepts anything
    assert strategy_calls(bars, "donchian_breakout", {"lookback": 1}, "4m") == []
    with pytest.raises(ValueError):
        strategy_calls(bars, "donchian_breakout", {"lookback": 1}, "3m")


# --------------------------------------------------------------------------
# Strategies
# --------------------------------------------------------------------------

SWEEP_BARS = ohlc([
    # (open, high, low, close)
    (9.5, 10, 9, 9.5),       # 0
    (9.5, 12, 9.5, 11),      # 1  swing high (12 > 10, 12 >= 11), known from 3
    (11, 11, 8, 8.5),        # 2  swing low  (8 < 9.5, 8 <= 8.5), known from 4
    (8.5, 10, 8.5, 9.5),     # 3
    (9.5, 10.5, 8.8, 10),    # 4  swing high (10.5 > 10, 10.5 >= 10), known from 6
    (10, 10, 7.5, 8.2),      # 5  long sweep: low 7.5 < L = 8 and close 8.2 > 8
    (8.2, 11, 8, 10.8),      # 6  close 10.8 > H = 10.5 (latest swing high, bar 4)
])


def test_sweep_then_break_of_structure():
    # Walk, swing = 1: bar 5 is the pending long sweep (L = 8 from bar 2);
    # at bar 6 the latest known swing high is bar 4's 10.5 (bar 1's 12 is
    # older), close 10.8 > 10.5 -> long at 6 with stop min(low[5..6]) =
    # min(7.5, 8) = 7.5.  No short sweep: no bar closes back below H after
    # taking it out.
    p = {"swing": 1, "window": 3}
    assert signals("sweep_bos", SWEEP_BARS, p) == [(6, 1, 7.5)]
    assert signals("sweep_bos", SWEEP_BARS, dict(p, window=1)) == [(6, 1, 7.5)]
    assert signals("sweep_bos", SWEEP_BARS, dict(p, direction="short")) == []
    # No break: close 10.4 is not above 10.5 -> nothing.
    no_break = SWEEP_BARS[:6] + [bar(6 * M, 8.2, 11, 8, 10.4)]
    assert signals("sweep_bos", no_break, p) == []
    # The break one bar after the window (s + window = 5 + 1 = 6 < 7): none.
    late = SWEEP_BARS[:6] + [bar(6 * M, 8.2, 10.4, 8, 10.2), bar(7 * M, 10.2, 11, 10, 10.8)]
    assert signals("sweep_bos", late, dict(p, window=1)) == []
    assert signals("sweep_bos", late, dict(p, window=2)) == [(7, 1, 7.5)]


def test_sweep_uses_the_latest_swing_known_only_from_p_plus_swing_plus_1():
    rows = ohlc([
        (8.5, 9, 8, 8.5),        # 0
        (8.5, 10, 8.5, 9.5),     # 1  swing high 10, known from 3
        (9.5, 9.5, 7, 7.5),      # 2  swing low 7, known from 4
        (7.5, 9, 7.5, 8.5),      # 3
        (8.5, 9.2, 6.8, 7.2),    # 4  long sweep of L = 7 (6.8 < 7 < 7.2); swing low 6.8
        (7.2, 11, 7.4, 9),       # 5  swing high 11 (11 > 9.2, 11 >= 10.8), known from 7
        (9, 10.8, 8.9, 10.5),    # 6  close 10.5 > H = 10 (bar 1): bar 5's 11 is not known yet
    ])
    # long at 6, stop min(low[4..6]) = min(6.8, 7.4, 8.9) = 6.8.  (Bar 5 is
    # a short sweep of H = 10: high 11 > 10, close 9 < 10; at bar 6 the
    # latest known swing low is bar 4's 6.8 and close 10.5 is not below it.)
    assert signals("sweep_bos", rows, {"swing": 1, "window": 3}) == [(6, 1, 6.8)]


def test_sweep_bar_with_both_signals_gives_neither():
    # swing 1.  Swing highs: bar 1 (7 > 6, 7 >= 6.5; known from 3) and bar 7
    # (known from 9).  Swing lows: bar 2 (3; known from 4), bar 5 (7.2 < 7.5,
    # 7.2 <= 8; known from 7), bar 7 (known from 9).
    rows = ohlc([
        (5, 6, 4, 5),           # 0
        (5, 7, 5, 6),           # 1
        (6, 6.5, 3, 3.5),       # 2
        (3.5, 8, 3.5, 6.9),     # 3  short sweep of H = 7 (8 > 7, close 6.9 < 7)
        (6.9, 9, 7.5, 8.8),     # 4
        (8.8, 10, 7.2, 9.5),    # 5
        (9.5, 11, 8, 10.5),     # 6
        (10.5, 11.5, 7.0, 7.5),  # 7  long sweep of L = 7.2 (7.0 < 7.2 < 7.5)
        (7.5, 7.6, 7.05, 7.1),  # 8  7.1 > H = 7 (long) and 7.1 < L = 7.2 (short)
    ])
    # window 5: the short sweep at 3 is still pending at 8 (8 <= 3 + 5), so
    # bar 8 gives both, hence neither; direction filters after that.
    p = {"swing": 1, "window": 5}
    assert signals("sweep_bos", rows, p) == []
    assert signals("sweep_bos", rows, dict(p, direction="long")) == []
    # window 4: the short sweep expired (8 > 3 + 4): the long alone, stop
    # min(low[7..8]) = 7.0.
    assert signals("sweep_bos", rows, dict(p, window=4)) == [(8, 1, 7.0)]


def test_sma_cross():
    closes = [10, 10, 10, 9, 12, 12]
    rows = ohlc([(c, c, c, c) for c in closes])
    # fast 2, slow 3 (defined from i = 2):
    # i=2: sma2 = 10, sma3 = 10 -> neither
    # i=3: sma2 = (10 + 9) / 2 = 9.5, sma3 = 29 / 3 = 9.667 -> below: short
    # i=4: sma2 = (9 + 12) / 2 = 10.5, sma3 = 31 / 3 = 10.333 -> above: long
    # i=5: sma2 = 12, sma3 = 11 -> above, was above: nothing
    p = {"fast": 2, "slow": 3}
    assert signals("sma_cross", rows, p) == [(3, -1, None), (4, 1, None)]
    assert signals("sma_cross", rows, dict(p, direction="long")) == [(4, 1, None)]
    assert rejected("sma_cross", {"fast": 3, "slow": 3})
    assert rejected("sma_cross", {"fast": 4, "slow": 3})
    assert not rejected("sma_cross", p)
    with pytest.raises(ValueError):
        signals("sma_cross", rows, {"fast": 3, "slow": 3})
    # From "neither" (equal) to above is a cross too: i=2 equal, i=3 sma2 =
    # 10.5 > sma3 = 31/3 -> long at 3.
    flat_then_up = ohlc([(c, c, c, c) for c in (10, 10, 10, 11)])
    assert signals("sma_cross", flat_then_up, p) == [(3, 1, None)]
    # The 1e-12 band: at i=3 sma2 = (0.79 + 0.1) / 2 = 0.445 and sma3 =
    # (0.445 + 0.79 + 0.1) / 3 = 0.44500000000000006 (equal but for rounding):
    # neither, so i=4 (sma2 0.075 < sma3 0.313) is a fresh short.  Without the
    # band i=3 would already be "below" and i=4 no signal.
    band = ohlc([(c, c, c, c) for c in (0.8, 0.445, 0.79, 0.1, 0.05)])
    assert signals("sma_cross", band, p) == [(4, -1, None)]
    for bad in ({"fast": 0, "slow": 3}, {"fast": 2.0, "slow": 3}, {"fast": 2},
                {"fast": 2, "slow": 3, "direction": "up"}, {"fast": 2, "slow": 3, "x": 1}):
        with pytest.raises(ValueError):
            rejected("sma_cross", bad)


def test_donchian_breakout():
    rows = ohlc([
        (9.5, 10, 9, 9.5),       # 0
        (9.5, 11, 9.5, 10.5),    # 1  close 10.5 > high[0] 10 -> long, stop low[0] 9
        (10.5, 12, 10, 11.5),    # 2  11.5 > max(10, 11) -> long, stop min(9, 9.5) = 9
        (11.5, 11.6, 8, 8.5),    # 3  8.5 < min(9.5, 10) -> short, stop max(11, 12) = 12
        (8.5, 9, 8.2, 8.9),      # 4  inside [8, 12]: nothing
    ])
    assert signals("donchian_breakout", rows, {"lookback": 2}) == [(2, 1, 9), (3, -1, 12)]
    assert signals("donchian_breakout", rows, {"lookback": 1})[0] == (1, 1, 9)


def test_rsi_cross():
    # period 2; changes -1, -1, +1, +2, -1
    # bar 2: gain 0, loss (1 + 1) / 2 = 1 -> rsi 100 - 100 / (1 + 0) = 0
    # bar 3: gain (0*1 + 1)/2 = 0.5, loss (1*1 + 0)/2 = 0.5 -> rsi 50;
    #        0 < 30 <= 50 -> long
    # bar 4: gain (0.5 + 2)/2 = 1.25, loss 0.25 -> rsi 100 - 100/6 = 83.33
    # bar 5: gain 0.625, loss (0.25 + 1)/2 = 0.625 -> rsi 50;
    #        83.33 > 70 >= 50 -> short
    closes = [10, 9, 8, 9, 11, 10]
    rows = ohlc([(c, c, c, c) for c in closes])
    rsi = wilder_rsi(closes, 2)
    assert rsi[:2] == [None, None]
    assert rsi[2:] == [approx(0.0), approx(50.0), approx(100 - 100 / 6), approx(50.0)]
    p = {"period": 2, "lower": 30, "upper": 70}
    assert signals("rsi_reversion", rows, p) == [(3, 1, None), (5, -1, None)]
    assert wilder_rsi([10, 10, 10], 2)[2] == 50.0   # no gain, no loss
    assert wilder_rsi([10, 11, 12], 2)[2] == 100.0  # no loss
    assert rejected("rsi_reversion", {"period": 2, "lower": 70, "upper": 70})
    with pytest.raises(ValueError):
        rejected("rsi_reversion", {"period": 2, "lower": -1, "upper": 70})


# --------------------------------------------------------------------------
# Exits in R
# --------------------------------------------------------------------------

def test_short_take_profit_and_stop_pnl_with_fees():
    # Short at close 100, no stop: risk = 100 * 0.02 = 2, sl_px 102,
    # tp_px = 100 + (-1 * 2) * 2 = 96.  size = min(200 / (2/100) = 10000,
    # 0.04 * 10000 = 400, 10000) = 400; fee = 400 * 0.008 = 3.2.
    tp_bars = {"S": ohlc([(100, 100, 100, 100), (99, 100, 95, 96)])}
    m = simulate_strategy(tp_bars, [call("S", 0, -1)], {"tp_r": 2, "sl_pct": 0.02}, {},
                          include_trades=True)
    # low 95 <= 96: take profit at 96; pnl = 400 * -1 * (0.96 - 1) - 3.2 = 12.8
    t = m["trades"][0]
    assert (t["exit_reason"], t["exit_px"], t["size"]) == ("take_profit", 96, 400)
    assert t["pnl"] == approx(12.8)
    assert t["direction"] == "short" and t["symbol"] == "S"
    assert m["final_capital"] == approx(10012.8)
    assert m["fees_paid"] == approx(3.2)
    assert m["exits"]["take_profit"] == 1 and m["wins"] == 1

    # high 103 >= 102: stop at 102; pnl = 400 * -1 * (1.02 - 1) - 3.2 = -11.2
    sl_bars = {"S": ohlc([(100, 100, 100, 100), (101, 103, 100.5, 102.5)])}
    m = simulate_strategy(sl_bars, [call("S", 0, -1)], {"tp_r": 2, "sl_pct": 0.02}, {},
                          include_trades=True)
    t = m["trades"][0]
    assert (t["exit_reason"], t["exit_px"]) == ("stop_loss", 102)
    assert t["pnl"] == approx(-11.2)
    assert m["final_capital"] == approx(10000 - 11.2)
    assert m["losses"] == 1 and m["profit_factor"] == 0.0


def test_short_with_tp_at_or_below_zero_never_takes_profit():
    # Short at 100 with stop 160: risk 60; tp_r 2 -> tp_px = 100 - 120 = -20
    # <= 0: never takes profit, even though the price falls to 1.  The stop
    # 160 is not reached: end_of_data at the last close 2.
    # ret = -1 * (2/100 - 1) - 0.008 = 0.972; r = 0.972 / (60/100) = 1.62
    bars = {"S": ohlc([(100, 100, 100, 100), (50, 60, 1, 2)])}
    c = [call("S", 0, -1, stop=160)]
    m = simulate_strategy(bars, c, {"tp_r": 2}, {}, mode="per_trade", include_trades=True)
    rec = m["trade_records"][0]
    assert (rec["exit_reason"], rec["exit_px"]) == ("end_of_data", 2)
    assert m["avg_return"] == approx(0.972)
    assert m["avg_r"] == approx(1.62)
    # tp_r 0.5 -> tp_px = 100 - 30 = 70 > 0; the bar opens at 50 <= 70: with
    # gap_fill "open" (the strategy default) take profit at the open 50;
    # ret = -1 * (0.5 - 1) - 0.008 = 0.492
    m = simulate_strategy(bars, c, {"tp_r": 0.5}, {}, mode="per_trade", include_trades=True)
    rec = m["trade_records"][0]
    assert (rec["exit_reason"], rec["exit_px"]) == ("take_profit", 50)
    assert m["avg_return"] == approx(0.492)


def test_long_with_structural_stop():
    # Long at 100, stop 95: risk 5 (sl_pct 0.5 is ignored), sl_px 95,
    # tp_px = 100 + 2 * 5 = 110.  With max_allocation_pct 1:
    # size = min(200 / (5/100) = 4000, 1 * 10000, 10000) = 4000.
    # bar 1 stays inside (99, 106); bar 2's high 111 >= 110: take profit at 110.
    # pnl = 4000 * (1.1 - 1) - 4000 * 0.008 = 400 - 32 = 368
    bars = {"L": ohlc([(100, 100, 100, 100), (101, 106, 99, 105), (105, 111, 104, 110)])}
    m = simulate_strategy(bars, [call("L", 0, 1, stop=95)], {"tp_r": 2, "sl_pct": 0.5},
                          {"max_allocation_pct": 1.0}, include_trades=True)
    t = m["trades"][0]
    assert (t["exit_reason"], t["exit_px"], t["size"]) == ("take_profit", 110, 4000)
    assert t["pnl"] == approx(368.0)
    assert (t["entry_ts_ms"], t["exit_ts_ms"]) == (0, 2 * M)
    assert m["final_capital"] == approx(10368.0)
    assert m["avg_hold_min"] == approx(2.0)


def test_entry_delay_on_base_bars():
    # delay 1: entry at the close of the bar after the entry candle (101);
    # delay 2 is past the last bar: no_entry.
    bars = {"L": ohlc([(100, 100, 100, 100), (100, 101, 100, 101)])}
    m = simulate_strategy(bars, [call("L", 0, 1)], {"entry_delay_candles": 1}, {},
                          include_trades=True)
    t = m["trades"][0]
    assert (t["entry_px"], t["entry_ts_ms"], t["exit_reason"]) == (101, M, "end_of_data")
    m = simulate_strategy(bars, [call("L", 0, 1)], {"entry_delay_candles": 2}, {})
    assert m["skipped"]["no_entry"] == 1 and m["trades_executed"] == 0


def test_bad_stop():
    bars = {"X": ohlc([(100, 100, 100, 100), (100, 101, 99, 100)])}
    calls = [
        call("X", 0, 1, stop=100, i=0),   # equal to the entry: bad_stop
        call("X", 0, 1, stop=101, i=1),   # long with the stop above: bad_stop
        call("X", 0, -1, stop=99, i=2),   # short with the stop below: bad_stop
        call("X", 5 * M, 1, stop=200, i=3),  # no bar at or after 5m: no_entry first
    ]
    m = simulate_strategy(bars, calls, {}, {})
    assert m["skipped"] == {"max_positions": 0, "no_entry": 1, "no_fill": 0,
                            "bad_stop": 3, "below_min_size": 0}
    assert m["trades_executed"] == 0 and m["trades_skipped"] == 4
    assert m["final_capital"] == 10000
    m = simulate_strategy(bars, calls, {}, {}, mode="per_trade")
    assert m["skipped"] == {"no_entry": 1, "no_fill": 0, "bad_stop": 3}
    assert m["trades"] == 0


SHORT_TRAIL_BARS = {"S": ohlc([
    (100, 100, 100, 100),    # 0 entry at 100
    (99.5, 100.5, 98, 98.5),  # 1
    (98.5, 99, 95, 97.5),    # 2
    (96, 99.5, 94, 99.2),    # 3
    (99.5, 100.5, 99, 100.3),  # 4
])}


def test_trailing_and_breakeven_in_r_for_a_short():
    # Short at 100, risk 100 * 0.02 = 2, sl 102, tp_r 10 -> tp 80 (never).
    # trail_r 2: component peak - (-1 * 2) * 2 = peak + 4, armed at once.
    # breakeven_r 1: component 100, armed when -peak >= -100 + 1 * 2 (peak <= 98).
    # j=1: peak 100 -> trail 104, sl 102 -> stop 102; high 100.5 no; peak -> 98
    # j=2: peak 98 -> trail 102, be 100 (armed) -> stop 100; high 99 no; peak -> 95
    # j=3: peak 95 -> trail 99, be 100 -> stop 99 (trailing); high 99.5 >= 99:
    #      trailing_stop at 99 (bar 3's own low 94 does not move its stop to 98)
    # ret = -1 * (99/100 - 1) - 0.008 = 0.002; r = 0.002 / 0.02 = 0.1
    c = [call("S", 0, -1)]
    exit_p = {"tp_r": 10, "sl_pct": 0.02, "trail_r": 2, "breakeven_r": 1}
    m = simulate_strategy(SHORT_TRAIL_BARS, c, exit_p, {}, mode="per_trade",
                          include_trades=True)
    rec = m["trade_records"][0]
    assert (rec["exit_reason"], rec["exit_px"], rec["exit_ts_ms"]) == ("trailing_stop", 99, 3 * M)
    assert m["avg_return"] == approx(0.002)
    assert m["avg_r"] == approx(0.1)
    assert m["exits"]["trailing_stop"] == 1

    # Breakeven alone: stop 100 from j=2 on; bar 3's high 99.5 < 100; bar 4's
    # high 100.5 >= 100 (open 99.5 < 100): breakeven at 100; ret = -0.008.
    m = simulate_strategy(SHORT_TRAIL_BARS, c, dict(exit_p, trail_r=None), {},
                          mode="per_trade", include_trades=True)
    rec = m["trade_records"][0]
    assert (rec["exit_reason"], rec["exit_px"], rec["exit_ts_ms"]) == ("breakeven", 100, 4 * M)
    assert m["avg_return"] == approx(-0.008)

    # Equal levels: trail_r 1 at peak 98 gives 98 + 2 = 100 = breakeven's 100:
    # trailing_stop wins the tie; for a short the LOWEST level is the tightest.
    p = {"trail_r": 1, "breakeven_r": 1}
    assert stop_at(-1, 100.0, 2.0, 98.0, p) == (100.0, "trailing_stop")
    assert stop_at(-1, 100.0, 2.0, 98.0, {"trail_r": None, "breakeven_r": 1}) == (100.0, "breakeven")
    assert stop_at(-1, 100.0, 2.0, 98.5, {"trail_r": None, "breakeven_r": 1}) == (102.0, "stop_loss")
    assert stop_at(1, 100.0, 2.0, 101.0, {"trail_r": 3, "breakeven_r": None}) == (98.0, "stop_loss")
    assert stop_at(1, 100.0, 2.0, 103.0, {"trail_r": 1, "breakeven_r": None}) == (101.0, "trailing_stop")


def test_gap_through_a_short_stop_fills_at_the_open():
    # Short at 100, stop 102; bar 1 opens at 105 >= 102: with gap_fill "open"
    # (the strategy default) a stop_loss at 105:
    # pnl = 400 * -1 * (1.05 - 1) - 3.2 = -23.2.  With gap_fill "level" the
    # high 106 >= 102 exits at the level: 400 * -0.02 - 3.2 = -11.2.
    bars = {"S": ohlc([(100, 100, 100, 100), (105, 106, 104, 105.5)])}
    c = [call("S", 0, -1)]
    m = simulate_strategy(bars, c, {}, {}, include_trades=True)
    t = m["trades"][0]
    assert (t["exit_reason"], t["exit_px"]) == ("stop_loss", 105)
    assert t["pnl"] == approx(-23.2)
    m = simulate_strategy(bars, c, {}, {"gap_fill": "level"}, include_trades=True)
    t = m["trades"][0]
    assert (t["exit_reason"], t["exit_px"]) == ("stop_loss", 102)
    assert t["pnl"] == approx(-11.2)


# --------------------------------------------------------------------------
# Calls, the shared account, per-trade r
# --------------------------------------------------------------------------

RISING = [
    bar(0 * M, 10, 10.5, 9.5, 10),
    bar(1 * M, 10, 11, 9.8, 10.8),
    bar(2 * M, 10.8, 11.2, 10.6, 11),
    bar(3 * M, 11, 12, 10.9, 11.9),
    bar(4 * M, 11.9, 12.2, 11.8, 12),
    bar(5 * M, 12, 12.5, 11.9, 12.4),
]


def test_two_symbols_sharing_a_timestamp_ordered_by_symbol_bytes():
    # 2m bars: bar0 (10, 11, 9.5, 10.8), bar1 (10.8, 12, 10.6, 11.9),
    # bar2 (11.9, 12.5, 11.8, 12.4).  Donchian lookback 1: long at 1
    # (11.9 > 11, stop 9.5) and at 2 (12.4 > 12, stop 10.6).
    # Call times: 2m + 2m = 4m and 4m + 2m = 6m.  Byte order: "B" < "a" < "b".
    bars = {"b": list(RISING), "a": list(RISING), "B": list(RISING)}
    assert resample(RISING, 2 * M)[1] == (2 * M, 10.8, 12, 10.6, 11.9, 2.0)
    calls = strategy_calls(bars, "donchian_breakout", {"lookback": 1}, "2m")
    assert [c["id"] for c in calls] == ["B:2m:1", "a:2m:1", "b:2m:1",
                                        "B:2m:2", "a:2m:2", "b:2m:2"]
    assert [c["ts_ms"] for c in calls] == [4 * M] * 3 + [6 * M] * 3
    assert calls[0] == {"id": "B:2m:1", "caller": "B", "symbol": "B", "ts_ms": 4 * M,
                        "dir": 1, "stop": 9.5}
    # Entries at base bar 4 (close 12), risk 12 - 9.5 = 2.5, exit end_of_data
    # at 12.4.  One account: B takes 0.04 * 10000 = 400 (risk cap 200 /
    # (2.5/12) = 960), then a 0.04 * 9600 = 384, then b 0.04 * 9216 = 368.64.
    # The 6m calls have no base bar at or after 6m: no_entry.
    m = simulate_strategy(bars, calls, {}, {}, include_trades=True)
    assert [t["symbol"] for t in m["trades"]] == ["B", "a", "b"]
    assert [t["size"] for t in m["trades"]] == [approx(400), approx(384), approx(368.64)]
    assert m["skipped"]["no_entry"] == 3
    # pnl each: size * (12.4/12 - 1) - size * 0.008; total over 1152.64
    total = 1152.64 * (12.4 / 12 - 1) - 1152.64 * 0.008
    assert m["final_capital"] == approx(10000 + total)


def test_per_trade_r():
    # Long at 100, stop 95 (risk fraction 0.05), take profit at 110:
    #   ret = 0.1 - 0.008 = 0.092, r = 0.092 / 0.05 = 1.84
    # Short at 100 without stop (sl_pct 0.02), take profit at 96:
    #   ret = 0.04 - 0.008 = 0.032, r = 0.032 / 0.02 = 1.6
    bars = {
        "L": ohlc([(100, 100, 100, 100), (101, 106, 99, 105), (105, 111, 104, 110)]),
        "S": ohlc([(100, 100, 100, 100), (99, 100, 95, 96)]),
    }
    calls = [call("L", 0, 1, stop=95), call("S", 0, -1)]
    m = simulate_strategy(bars, calls, {"tp_r": 2, "sl_pct": 0.02}, {}, mode="per_trade")
    assert m["trades"] == 2 and m["wins"] == 2
    assert m["total_return"] == approx(0.092 + 0.032)
    assert m["avg_r"] == approx((1.84 + 1.6) / 2)
    assert m["total_r"] == approx(3.44)
    assert m["median_return"] == approx((0.092 + 0.032) / 2)


# --------------------------------------------------------------------------
# The search
# --------------------------------------------------------------------------

def test_optimize_strategy_grid_order_rejected_sets_and_ranking():
    closes = [10, 10, 10, 9, 12, 13, 14, 15, 16, 17]
    rows = [bar(k * M, c, c + 0.5, c - 0.5, c) for k, c in enumerate(closes)]
    bars = {"X": rows}
    out = optimize_strategy(bars, "sma_cross", {"fast": [2, 3], "slow": [3]}, ["1m"],
                            {"tp_r": [1, 2]}, {})
    # (fast 3, slow 3) is rejected: left out and counted.
    assert out["signal_sets"] == {"evaluated": 1, "rejected": 1}
    # fast 2 / slow 3: short at 3, long at 4 (see test_sma_cross)
    assert out["signals"] == [{"timeframe": "1m", "params": {"fast": 2, "slow": 3},
                               "long": 1, "short": 1}]
    assert [p["index"] for p in out["points"]] == [0, 1]
    assert out["points"][0]["params"] == {"timeframe": "1m", "fast": 2, "slow": 3,
                                          "tp_r": 1, "sl_pct": 0.02, "max_hold_hrs": 48.0}
    assert list(out["points"][1]["params"]) == ["timeframe", "fast", "slow", "tp_r",
                                                "sl_pct", "max_hold_hrs"]
    calls = strategy_calls(bars, "sma_cross", {"fast": 2, "slow": 3}, "1m")
    for point, tp_r in zip(out["points"], (1, 2)):
        assert point["metrics"] == simulate_strategy(bars, calls, {"tp_r": tp_r}, {})
    caps = [p["metrics"]["final_capital"] for p in out["points"]]
    best = max(range(2), key=lambda k: (caps[k], -k))
    assert out["best"] == best
    assert out["points"][best]["rank"] == 1
    # An impossible constraint: nothing feasible, no best.
    out = optimize_strategy(bars, "sma_cross", {"fast": [2], "slow": [3]}, ["1m"],
                            {"trail_r": [None, 1]}, {}, constraints={"min_trades": 99})
    assert out["best"] is None
    assert "trail_r" not in out["points"][0]["params"]
    assert out["points"][1]["params"]["trail_r"] == 1


def test_short_intrabar_order():
    # Short at 100, risk 2: tp 96, stop 102.  Bar 1 (open 100: no gap) has
    # low 95 <= 96 and high 103 >= 102: tp_first takes profit at 96
    # (ret 0.04 - 0.008 = 0.032), sl_first stops at 102 (ret -0.02 - 0.008).
    bars = {"S": ohlc([(100, 100, 100, 100), (100, 103, 95, 100)])}
    c = [call("S", 0, -1)]
    m = simulate_strategy(bars, c, {}, {}, mode="per_trade")
    assert m["exits"]["take_profit"] == 1 and m["avg_return"] == approx(0.032)
    m = simulate_strategy(bars, c, {}, {"intrabar": "sl_first"}, mode="per_trade")
    assert m["exits"]["stop_loss"] == 1 and m["avg_return"] == approx(-0.028)
