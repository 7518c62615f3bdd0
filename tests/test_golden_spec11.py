"""Golden cases for SPEC section 11 (trailing stops, breakeven, delayed and
limit entries, gap fills), run against both the reference (tests/reference)
and the worker (tests._worker_adapter).

Every expected number was worked out by hand from SPEC 2-4 and 11 (and the
decisions recorded in the lead's brief where SPEC 11 is silent); comments show
the arithmetic.  Prices are dyadic (0.25, 0.5, 0.75, 1.25, ...) so every level
is exact in binary and the "equal level" cases really are equal.

Default config unless said otherwise: capital 10000, allocation 4% -> size
min(200 / (1 - sl), 400, 10000) = 400 for every sl <= 0.5 (and for sl 0.75:
200 / 0.25 = 800 -> 400); costs (30 + 10) bps per side -> 400 * 0.008 = 3.2.
"""

import importlib

import pytest


@pytest.fixture(params=["reference", "worker"], ids=["reference", "worker"])
def impl(request):
    """The implementation under test: the plain-loop reference or the worker.

    Imported lazily so the reference's cases still run while the worker's
    package does not import."""
    if request.param == "reference":
        return importlib.import_module("tests.reference")
    return importlib.import_module("tests._worker_adapter")


T0 = 1_700_000_000_000
MIN = 60_000
HOUR = 3_600_000
FEE = 3.2  # round trip of a 400 position at the default 40 bps per side
NO_FEES = {"taker_fee_bps": 0, "slippage_bps": 0}


def approx(x):
    return pytest.approx(x, rel=1e-12, abs=1e-12)


def call(cid, ts=T0, caller="c", mint=""):
    return {"id": cid, "caller": caller, "mint": mint, "ts_ms": ts}


def bar(ts, o, h, lo, c):
    """A candle (ts, open, high, low, close)."""
    return (ts, o, h, lo, c)


def flat(ts, px=1.0):
    return (ts, px, px, px, px)


def one(impl, candles, params, config=None, ts=T0):
    """Capital run of a single call "a" on its own series."""
    return impl.simulate_capital([call("a", ts=ts)], {"a": candles}, "call_id", params,
                                 config or {})


def only_trade(res):
    (t,) = res["trades"]
    return t


def exits(**nonzero):
    out = {"take_profit": 0, "stop_loss": 0, "time_exit": 0, "end_of_data": 0,
           "breakeven": 0, "trailing_stop": 0}
    out.update(nonzero)
    return out


def skips(**nonzero):
    out = {"max_positions": 0, "no_entry": 0, "no_fill": 0, "below_min_size": 0}
    out.update(nonzero)
    return out


# ------------------------------------------------------------ trailing stop


def test_trailing_stop_peak_set_and_tested_on_same_candle_does_not_trigger(impl):
    params = {"tp_mult": 4.0, "sl_mult": 0.5, "trail_pct": 0.25}
    candles = [
        flat(T0),                                   # entry 1.0; tp 4.0, sl 0.5
        bar(T0 + MIN, 1.0, 2.0, 1.5, 1.75),         # peak before = 1.0 -> trail 0.75;
                                                    # low 1.5 > 0.75: no exit.  (Were its own
                                                    # high 2.0 counted: 1.5 <= 1.5 would exit.)
        bar(T0 + 2 * MIN, 1.75, 1.75, 1.5, 1.5),    # peak 2.0 -> trail 2.0 * 0.75 = 1.5; low 1.5
    ]
    res = one(impl, candles, params)
    t = only_trade(res)
    assert (t["exit_reason"], t["exit_ts_ms"]) == ("trailing_stop", T0 + 2 * MIN)
    assert t["exit_px"] == approx(1.5) and t["exit_mult"] == approx(1.5)
    assert t["pnl"] == approx(400 * 0.5 - FEE)      # 196.8
    assert t["entry_kind"] == "market"
    assert res["final_capital"] == approx(10196.8)
    assert res["exits"] == exits(trailing_stop=1)
    assert res["skipped"] == skips()
    assert res["trades_skipped"] == 0


def test_trail_activation(impl):
    candles = [
        flat(T0),                                   # entry 1.0
        bar(T0 + MIN, 1.0, 1.25, 1.0, 1.0),         # peak before 1.0
        bar(T0 + 2 * MIN, 1.0, 1.25, 0.875, 1.0),   # peak 1.25 (trail would be 0.9375)
        bar(T0 + 3 * MIN, 1.25, 1.5, 1.25, 1.25),   # peak 1.25; sets peak 1.5
        bar(T0 + 4 * MIN, 1.25, 1.25, 1.125, 1.125),  # peak 1.5 -> trail 1.125
        flat(T0 + 5 * MIN, 1.0),
    ]
    # activation 1.5: armed only once peak >= 1.5, i.e. at T0+4m: 1.5 * 0.75 = 1.125 = low.
    params = {"tp_mult": 4.0, "sl_mult": 0.5, "trail_pct": 0.25, "trail_activation": 1.5}
    t = only_trade(one(impl, candles, params))
    assert (t["exit_reason"], t["exit_ts_ms"], t["exit_px"]) == ("trailing_stop", T0 + 4 * MIN,
                                                                approx(1.125))
    assert t["pnl"] == approx(400 * 0.125 - FEE)    # 46.8
    # activation 1 (default): armed from the start; at T0+2m peak 1.25 -> 0.9375 >= low 0.875.
    params = {"tp_mult": 4.0, "sl_mult": 0.5, "trail_pct": 0.25}
    t = only_trade(one(impl, candles, params))
    assert (t["exit_reason"], t["exit_ts_ms"], t["exit_px"]) == ("trailing_stop", T0 + 2 * MIN,
                                                                approx(0.9375))
    assert t["pnl"] == approx(400 * -0.0625 - FEE)  # -28.2
    # activation 2 (never reached): the plain stop loss 0.5 is never touched -> end of data 1.0.
    params = {"tp_mult": 4.0, "sl_mult": 0.5, "trail_pct": 0.25, "trail_activation": 2.0}
    t = only_trade(one(impl, candles, params))
    assert (t["exit_reason"], t["exit_px"]) == ("end_of_data", 1.0)
    assert t["pnl"] == approx(-FEE)


# ---------------------------------------------------------------- breakeven


def test_breakeven_arms_on_the_candle_before_the_crash(impl):
    params = {"tp_mult": 4.0, "sl_mult": 0.5, "breakeven_trigger": 1.5, "breakeven_offset": 0.25}
    # offset 0.25 < trigger - 1 = 0.5: valid.  Breakeven level 1.0 * 1.25 = 1.25.
    armed = [
        flat(T0),                                   # entry 1.0
        bar(T0 + MIN, 1.0, 1.5, 1.0, 1.25),         # peak before 1.0 < 1.5; sets peak 1.5
        bar(T0 + 2 * MIN, 1.25, 1.25, 0.25, 0.25),  # peak 1.5 >= 1.5 -> stop 1.25; crash
    ]
    res = one(impl, armed, params)
    t = only_trade(res)
    assert (t["exit_reason"], t["exit_ts_ms"], t["exit_px"]) == ("breakeven", T0 + 2 * MIN,
                                                                approx(1.25))
    assert t["pnl"] == approx(400 * 0.25 - FEE)     # 96.8
    assert res["exits"] == exits(breakeven=1)
    # The 1.5 high on the crash candle itself arms nothing (its order vs the low
    # is unknown): the plain stop loss at 0.5 -> 400 * -0.5 - 3.2.
    same_candle = [
        flat(T0),
        bar(T0 + MIN, 1.0, 1.25, 1.0, 1.25),        # peak stays below 1.5
        bar(T0 + 2 * MIN, 1.25, 1.5, 0.25, 0.25),
    ]
    t = only_trade(one(impl, same_candle, params))
    assert (t["exit_reason"], t["exit_px"]) == ("stop_loss", approx(0.5))
    assert t["pnl"] == approx(-203.2)


# ------------------------------------------------------------------ entries


DELAY_SERIES = [
    flat(T0),                                       # e0: the call's entry candle
    bar(T0 + MIN, 1.25, 2.5, 1.25, 1.25),           # before the delayed entry: ignored
    bar(T0 + 2 * MIN, 1.0, 3.0, 0.25, 1.0),         # e = e0 + 2: entry 1.0 at its close;
                                                    # its own high/low are never exits
    flat(T0 + 3 * MIN),
    flat(T0 + 4 * MIN),
    flat(T0 + 5 * MIN, 1.25),                       # entry_ts + 0.05 h (180000 ms): time exit
]


def test_market_entry_delay(impl):
    params = {"tp_mult": 2.0, "sl_mult": 0.5, "max_hold_hrs": 0.05, "entry_delay_candles": 2}
    # hold_until = (T0 + 2m) + int(0.05 * 3_600_000) = T0 + 5m: time exit at 1.25.
    res = one(impl, DELAY_SERIES, params)
    t = only_trade(res)
    assert (t["entry_ts_ms"], t["entry_px"]) == (T0 + 2 * MIN, 1.0)
    assert (t["exit_reason"], t["exit_ts_ms"], t["exit_px"]) == ("time_exit", T0 + 5 * MIN, 1.25)
    assert t["pnl"] == approx(400 * 0.25 - FEE)     # 96.8
    assert t["entry_kind"] == "market"
    assert res["avg_hold_min"] == approx(3.0)
    # Without the delay: entry at T0 and the 2.5 high at T0+1m takes profit at 2.0.
    t = only_trade(one(impl, DELAY_SERIES, {"tp_mult": 2.0, "sl_mult": 0.5, "max_hold_hrs": 0.05}))
    assert (t["exit_reason"], t["exit_ts_ms"]) == ("take_profit", T0 + MIN)


def test_delay_past_the_last_candle(impl):
    # 6 candles, e0 = 0: delay 5 enters on the last candle (end of data at its own close).
    params = {"tp_mult": 2.0, "sl_mult": 0.5, "entry_delay_candles": 5}
    t = only_trade(one(impl, DELAY_SERIES, params))
    assert (t["entry_ts_ms"], t["exit_ts_ms"]) == (T0 + 5 * MIN, T0 + 5 * MIN)
    assert (t["entry_px"], t["exit_px"], t["exit_reason"]) == (1.25, 1.25, "end_of_data")
    assert t["pnl"] == approx(-FEE)
    # delay 6: e = 6 is past the last candle -> no_entry (market entry).
    res = one(impl, DELAY_SERIES, dict(params, entry_delay_candles=6))
    assert res["trades"] == [] and res["trades_executed"] == 0
    assert res["skipped"] == skips(no_entry=1) and res["trades_skipped"] == 1
    assert res["final_capital"] == 10000
    # A limit order whose window starts past the last candle is no_fill, not no_entry.
    res = one(impl, DELAY_SERIES, dict(params, entry_delay_candles=6, entry_dip_pct=0.5))
    assert res["skipped"] == skips(no_fill=1)
    # Per-trade mode counts it the same way.
    pt = impl.simulate_per_trade([call("a")], {"a": DELAY_SERIES}, "call_id",
                                 dict(params, entry_delay_candles=6), {})
    assert pt["skipped"] == {"no_entry": 1, "no_fill": 0} and pt["trades"] == 0


def test_limit_entry_fills_at_min_of_limit_and_open(impl):
    # dip 0.25 -> limit = close[e0] * 0.75 = 0.75; tp 3, sl 0.5 (of the fill price).
    params = {"tp_mult": 3.0, "sl_mult": 0.5, "entry_dip_pct": 0.25}

    def series(fill_open):
        return [
            bar(T0, 1.0, 1.0, 0.5, 1.0),            # e0: its own low 0.5 is not a fill (j > e0)
            bar(T0 + MIN, 1.0, 1.0, 0.875, 0.875),  # low 0.875 > 0.75: no fill
            bar(T0 + 2 * MIN, fill_open, 1.0, 0.25, 0.8),  # fill here; its low 0.25 is no exit
            flat(T0 + 3 * MIN, 1.0),                # end of data at 1.0
        ]

    res = one(impl, series(0.875), params)
    t = only_trade(res)
    # open 0.875 above the limit: entry 0.75; tp 2.25, sl 0.375; eod at 1.0.
    assert (t["entry_px"], t["entry_ts_ms"], t["entry_kind"]) == (0.75, T0 + 2 * MIN, "limit")
    assert (t["exit_reason"], t["exit_px"]) == ("end_of_data", 1.0)
    assert t["size"] == approx(400.0)  # min(200 / 0.5, 0.04 * 10000, 10000)
    assert t["pnl"] == approx(400 * (1.0 / 0.75 - 1) - FEE)   # 130.1333...
    assert t["exit_mult"] == approx(1.0 / 0.75)
    # A gap down opening at 0.5 below the limit fills at the open: entry 0.5, eod at 1.0.
    t = only_trade(one(impl, series(0.5), params))
    assert (t["entry_px"], t["exit_reason"]) == (0.5, "end_of_data")
    assert t["pnl"] == approx(400 * 1.0 - FEE)      # 396.8


def test_limit_entry_window_ends_before_expiry(impl):
    # entry_max_wait_min 2: expiry T0 + 120000; the candle AT T0+2m is outside
    # (time[j] < expiry), so the touch there does not fill.
    candles = [flat(T0), flat(T0 + MIN), bar(T0 + 2 * MIN, 1.0, 1.0, 0.5, 1.0), flat(T0 + 3 * MIN)]
    params = {"tp_mult": 2.0, "sl_mult": 0.5, "entry_dip_pct": 0.5, "entry_max_wait_min": 2}
    res = one(impl, candles, params)
    assert res["trades"] == [] and res["skipped"] == skips(no_fill=1)
    t = only_trade(one(impl, candles, dict(params, entry_max_wait_min=2.5)))
    assert (t["entry_ts_ms"], t["entry_px"]) == (T0 + 2 * MIN, 0.5)


def test_unfilled_limit_order_holds_cash_and_slot_until_expiry(impl):
    cfg = {"initial_capital": 1000, "max_allocation_pct": 0.5, "max_risk_per_trade": 1e9,
           **NO_FEES}
    params = {"tp_mult": 4.0, "sl_mult": 0.5, "entry_dip_pct": 0.5, "entry_max_wait_min": 2}
    series = {
        # A (call T0): limit 0.5 never touched in [T0, T0+2m) -> no_fill, holds
        # size min(1e9 / 0.5, 0.5 * 1000, 1000) = 500 until T0 + 120000.
        "A": [flat(T0), flat(T0 + MIN), flat(T0 + 2 * MIN), flat(T0 + 3 * MIN)],
        # B (call T0+1m): free 500 -> size 250; fills at min(0.5, 0.75) = 0.5 at
        # T0+2m; tp 2.0, sl 0.25; end of data at 1.0 (T0+10m): pnl 250 * 1 = 250.
        "B": [flat(T0 + MIN), bar(T0 + 2 * MIN, 0.75, 0.75, 0.5, 0.5), flat(T0 + 10 * MIN)],
        # C: fills at 0.5 at T0+3m, end of data at 0.5 at T0+4m: pnl 0.
        "C": [flat(T0 + 2 * MIN), bar(T0 + 3 * MIN, 1.0, 1.0, 0.5, 0.5), flat(T0 + 4 * MIN, 0.5)],
    }

    def run(c_ts, config=cfg):
        calls = [call("A"), call("B", ts=T0 + MIN), call("C", ts=c_ts)]
        return impl.simulate_capital(calls, series, "call_id", params, config)

    # C at T0+2m: A's order expires at T0+2m <= t, released first: free 250 + 500 = 750
    # -> C size 375.
    res = run(T0 + 2 * MIN)
    b, c = res["trades"]
    assert (b["call_id"], b["size"], b["entry_px"], b["pnl"]) == ("B", approx(250), 0.5, approx(250))
    assert (c["call_id"], c["size"], c["pnl"]) == ("C", approx(375), approx(0))
    assert res["skipped"] == skips(no_fill=1) and res["trades_skipped"] == 1
    assert res["trades_executed"] == 2 and res["exits"] == exits(end_of_data=2)
    assert res["final_capital"] == approx(1250)     # the held 500 came back with pnl 0
    assert res["fees_paid"] == 0.0
    assert res["max_drawdown"] == 0.0
    # One millisecond earlier A's 500 is still held: free 250 -> C size 125.
    res = run(T0 + 2 * MIN - 1)
    assert res["trades"][1]["size"] == approx(125)
    assert res["final_capital"] == approx(1250)
    # The slot: with 2 positions allowed, A's order and B fill them until T0+2m.
    res = run(T0 + 2 * MIN - 1, dict(cfg, max_concurrent_positions=2))
    assert [t["call_id"] for t in res["trades"]] == ["B"]
    assert res["skipped"] == skips(no_fill=1, max_positions=1)
    res = run(T0 + 2 * MIN, dict(cfg, max_concurrent_positions=2))
    assert [t["call_id"] for t in res["trades"]] == ["B", "C"]
    # With 1 slot, A's order takes it: B is max_positions; C at T0+2m enters
    # with the full 1000 back: size 500.
    res = run(T0 + 2 * MIN, dict(cfg, max_concurrent_positions=1))
    assert res["skipped"] == skips(no_fill=1, max_positions=1)
    assert [(t["call_id"], t["size"]) for t in res["trades"]] == [("C", approx(500))]


def test_unfilled_limit_order_below_min_size_holds_nothing(impl):
    # size = min(1e9, 0.5 * 1000, 1000) = 500 for A.  min_executable_size 600:
    # A is no_fill (whatever its size) and holds no slot, so B at T0+1m is not
    # max_positions (1 slot) but below_min_size (free still 1000 -> 500 < 600).
    cfg = {"initial_capital": 1000, "max_allocation_pct": 0.5, "max_risk_per_trade": 1e9,
           "max_concurrent_positions": 1, "min_executable_size": 600, **NO_FEES}
    params = {"tp_mult": 4.0, "sl_mult": 0.5, "entry_dip_pct": 0.5, "entry_max_wait_min": 2}
    series = {"A": [flat(T0), flat(T0 + MIN)],
              "B": [flat(T0 + MIN), bar(T0 + 2 * MIN, 0.5, 0.5, 0.5, 0.5)]}
    calls = [call("A"), call("B", ts=T0 + MIN)]
    res = impl.simulate_capital(calls, series, "call_id", params, cfg)
    assert res["skipped"] == skips(no_fill=1, below_min_size=1)
    # min_executable_size 500: A holds 500 and the one slot -> B is max_positions.
    res = impl.simulate_capital(calls, series, "call_id", params,
                                dict(cfg, min_executable_size=500))
    assert res["skipped"] == skips(no_fill=1, max_positions=1)
    assert res["final_capital"] == 1000


# ----------------------------------------------------------------- gap fill


@pytest.mark.parametrize("intrabar", ["tp_first", "sl_first"])
def test_gap_fill_open_through_target_and_stop(impl, intrabar):
    params = {"tp_mult": 2.0, "sl_mult": 0.5}       # tp 2.0, sl 0.5 of entry 1.0
    up = [flat(T0), bar(T0 + MIN, 2.5, 3.0, 0.25, 1.0)]    # opens above tp; touches both
    down = [flat(T0), bar(T0 + MIN, 0.25, 3.0, 0.25, 1.0)]  # opens below sl; touches both
    level = {"intrabar": intrabar}
    gap = {"intrabar": intrabar, "gap_fill": "open"}
    # "level": the intrabar rule decides, at the levels: tp 400 * 1 - 3.2; sl 400 * -0.5 - 3.2.
    want_level = ("take_profit", 2.0, 396.8) if intrabar == "tp_first" else ("stop_loss", 0.5, -203.2)
    for candles in (up, down):
        t = only_trade(one(impl, candles, params, level))
        assert (t["exit_reason"], t["exit_px"], t["pnl"]) == (
            want_level[0], approx(want_level[1]), approx(want_level[2]))
    # "open": the open settles it whatever the intrabar rule.
    t = only_trade(one(impl, up, params, gap))
    assert (t["exit_reason"], t["exit_px"]) == ("take_profit", 2.5)
    assert t["pnl"] == approx(400 * 1.5 - FEE)      # 596.8
    t = only_trade(one(impl, down, params, gap))
    assert (t["exit_reason"], t["exit_px"]) == ("stop_loss", 0.25)
    assert t["pnl"] == approx(400 * -0.75 - FEE)    # -303.2
    # An open between the levels follows rules 1-3 (at the levels).
    mid = [flat(T0), bar(T0 + MIN, 1.0, 3.0, 0.25, 1.0)]
    t = only_trade(one(impl, mid, params, gap))
    assert (t["exit_reason"], t["exit_px"]) == (want_level[0], approx(want_level[1]))


@pytest.mark.parametrize("intrabar", ["tp_first", "sl_first"])
def test_gap_fill_open_through_trailing_stop_keeps_its_reason(impl, intrabar):
    params = {"tp_mult": 4.0, "sl_mult": 0.5, "trail_pct": 0.25}
    candles = [flat(T0), bar(T0 + MIN, 1.0, 2.0, 1.5, 1.75),   # peak -> 2.0
               bar(T0 + 2 * MIN, 1.25, 1.75, 1.25, 1.5)]       # stop 1.5; opens at 1.25
    t = only_trade(one(impl, candles, params, {"intrabar": intrabar, "gap_fill": "open"}))
    assert (t["exit_reason"], t["exit_px"]) == ("trailing_stop", 1.25)
    assert t["pnl"] == approx(400 * 0.25 - FEE)     # 96.8
    t = only_trade(one(impl, candles, params, {"intrabar": intrabar}))
    assert (t["exit_reason"], t["exit_px"]) == ("trailing_stop", 1.5)
    assert t["pnl"] == approx(400 * 0.5 - FEE)      # 196.8


# ------------------------------------------------------------ level ties


def test_trail_at_and_below_the_stop_loss_and_reason_ties(impl):
    drop = [flat(T0), bar(T0 + MIN, 1.0, 1.0, 0.5, 0.5)]
    # trail 0.25 from peak 1.0 (armed at activation 1): 0.75 == sl 0.75 -> trailing_stop wins the tie.
    t = only_trade(one(impl, drop, {"tp_mult": 4.0, "sl_mult": 0.75, "trail_pct": 0.25}))
    assert (t["exit_reason"], t["exit_px"]) == ("trailing_stop", 0.75)
    assert t["pnl"] == approx(400 * -0.25 - FEE)    # -103.2
    # trail 0.5: 0.5 < sl 0.75 -> the stop is the stop loss.
    t = only_trade(one(impl, drop, {"tp_mult": 4.0, "sl_mult": 0.75, "trail_pct": 0.5}))
    assert (t["exit_reason"], t["exit_px"]) == ("stop_loss", 0.75)

    peak2 = [flat(T0), bar(T0 + MIN, 1.0, 2.0, 1.5, 1.5), bar(T0 + 2 * MIN, 1.5, 1.5, 0.75, 0.75)]
    be = {"tp_mult": 4.0, "sl_mult": 0.5, "breakeven_trigger": 1.5}
    # peak 2.0: trail 0.5 -> 1.0 == breakeven 1.0 * (1 + 0) -> trailing_stop.
    t = only_trade(one(impl, peak2, dict(be, trail_pct=0.5)))
    assert (t["exit_reason"], t["exit_px"]) == ("trailing_stop", 1.0)
    assert t["pnl"] == approx(-FEE)
    # trail 0.75 -> 0.5 < breakeven 1.0 -> breakeven.
    t = only_trade(one(impl, peak2, dict(be, trail_pct=0.75)))
    assert (t["exit_reason"], t["exit_px"]) == ("breakeven", 1.0)
    # trail 0.25 -> 1.5 > breakeven 1.0 -> trailing at 1.5.
    t = only_trade(one(impl, peak2, dict(be, trail_pct=0.25)))
    assert (t["exit_reason"], t["exit_px"]) == ("trailing_stop", 1.5)
    assert t["pnl"] == approx(400 * 0.5 - FEE)


def test_tp_checked_before_trailing_stop_and_sl_first_swaps(impl):
    # Candle touching tp 2.0 and the trail 0.75 (peak 1.0): tp_first -> tp; sl_first -> trail.
    candles = [flat(T0), bar(T0 + MIN, 1.0, 2.0, 0.5, 1.0)]
    params = {"tp_mult": 2.0, "sl_mult": 0.5, "trail_pct": 0.25}
    t = only_trade(one(impl, candles, params))
    assert (t["exit_reason"], t["exit_px"]) == ("take_profit", 2.0)
    t = only_trade(one(impl, candles, params, {"intrabar": "sl_first"}))
    assert (t["exit_reason"], t["exit_px"]) == ("trailing_stop", 0.75)
    assert t["pnl"] == approx(400 * -0.25 - FEE)


# --------------------------------------------------------------- per trade


def test_per_trade_mode_with_limit_and_trailing(impl):
    params = {"tp_mult": 4.0, "sl_mult": 0.5, "entry_dip_pct": 0.25, "trail_pct": 0.25}
    series = {
        # L: limit 0.75 filled at T0+1m (open 1.0 -> 0.75); tp 3.0, sl 0.375;
        # T0+2m: peak 0.75 -> trail 0.5625; sets peak 1.5;
        # T0+3m: trail 1.5 * 0.75 = 1.125 >= low 1.0 -> exit 1.125.
        "L": [flat(T0), bar(T0 + MIN, 1.0, 1.0, 0.75, 0.75), bar(T0 + 2 * MIN, 0.75, 1.5, 0.75, 1.5),
              bar(T0 + 3 * MIN, 1.5, 1.5, 1.0, 1.0)],
        # N: never dips to 0.75 -> no_fill.
        "N": [flat(T0), flat(T0 + MIN), flat(T0 + 2 * MIN)],
        # X has no series -> no_entry.
    }
    calls = [call("L"), call("N"), call("X")]
    res = impl.simulate_per_trade(calls, series, "call_id", params, {})
    (t,) = res["trade_records"]
    # ret = 1.125 / 0.75 - 1 - 0.008 = 0.492; r = 0.492 / (1 - 0.5) = 0.984
    assert (t["entry_px"], t["entry_kind"], t["size"]) == (0.75, "limit", 1.0)
    assert (t["exit_reason"], t["exit_px"], t["exit_ts_ms"]) == ("trailing_stop", approx(1.125),
                                                                T0 + 3 * MIN)
    assert t["pnl"] == approx(0.492)
    assert (res["trades"], res["wins"], res["losses"]) == (1, 1, 0)
    assert res["avg_return"] == approx(0.492) and res["total_return"] == approx(0.492)
    assert res["avg_r"] == approx(0.984) and res["total_r"] == approx(0.984)
    assert res["skipped"] == {"no_entry": 1, "no_fill": 1}
    assert res["exits"] == exits(trailing_stop=1)
    assert res["avg_hold_min"] == approx(2.0)       # T0+1m -> T0+3m


# -------------------------------------------------------------------- grids


def test_grid_order_and_params_name_only_non_defaults(impl):
    series = {"a": DELAY_SERIES}
    grid = {"tp_mults": [2.0], "sl_mults": [0.5], "max_hold_hrs": [48],
            "trail_pct": [None, 0.25], "entry_delay_candles": [0, 2],
            "trail_activation": [1.0]}  # given at its default: a one-value dimension
    out = impl.optimize([call("a")], series, "call_id", grid, {})
    assert [p["params"] for p in out["points"]] == [
        {"tp_mult": 2.0, "sl_mult": 0.5, "max_hold_hrs": 48},
        {"tp_mult": 2.0, "sl_mult": 0.5, "max_hold_hrs": 48, "entry_delay_candles": 2},
        {"tp_mult": 2.0, "sl_mult": 0.5, "max_hold_hrs": 48, "trail_pct": 0.25},
        {"tp_mult": 2.0, "sl_mult": 0.5, "max_hold_hrs": 48, "trail_pct": 0.25,
         "entry_delay_candles": 2},
    ]
    fc = [p["metrics"]["final_capital"] for p in out["points"]]
    # 0: entry T0 1.0, tp 2.0 at T0+1m (high 2.5): +396.8
    # 1: entry T0+2m 1.0; flat 1.0, 1.0, then eod 1.25: +96.8
    # 2: trail 0.75; T0+1m: tp first -> +396.8
    # 3: entry T0+2m; peak 1.0 -> 0.75, never touched; eod 1.25: +96.8
    assert fc == [approx(10396.8), approx(10096.8), approx(10396.8), approx(10096.8)]
    assert out["ranking"] == [0, 2, 1, 3] and out["best"] == 0


def test_invalid_extended_params(impl):
    candles = [flat(T0), flat(T0 + MIN)]
    base = {"tp_mult": 2.0, "sl_mult": 0.5}
    for bad in ({"trail_pct": 0.0}, {"trail_pct": 1.0}, {"trail_activation": 0.5},
                {"breakeven_trigger": 1.0}, {"breakeven_trigger": 1.5, "breakeven_offset": 0.5},
                {"breakeven_trigger": 1.5, "breakeven_offset": 0.75},
                {"breakeven_offset": -0.25}, {"entry_delay_candles": -1},
                {"entry_dip_pct": 1.0}, {"entry_dip_pct": -0.25}, {"entry_max_wait_min": 0}):
        with pytest.raises(ValueError):
            one(impl, candles, dict(base, **bad))
    grid = {"tp_mults": [2.0], "sl_mults": [0.5]}
    for bad in ({"breakeven_trigger": [None, 1.5], "breakeven_offset": [0.0, 0.5]},
                {"trail_pct": [0.25, 0.25]},
                {"entry_delay_candles": [1, 1]},
                {"trail_activation": [None]}):
        with pytest.raises(ValueError):
            impl.optimize([call("a")], {"a": candles}, "call_id", dict(grid, **bad), {})


def test_explicit_defaults_reproduce_spec_2(impl):
    candles = [flat(T0), bar(T0 + MIN, 1.0, 1.5, 0.75, 1.25), bar(T0 + 2 * MIN, 1.25, 2.0, 1.0, 2.0)]
    defaults = {"trail_pct": None, "trail_activation": 1, "breakeven_trigger": None,
                "breakeven_offset": 0, "entry_delay_candles": 0, "entry_dip_pct": 0,
                "entry_max_wait_min": 60}
    base = {"tp_mult": 2.0, "sl_mult": 0.5}
    plain = one(impl, candles, base)
    full = one(impl, candles, dict(base, **defaults), {"gap_fill": "level"})
    assert full == plain
    t = only_trade(plain)
    assert (t["exit_reason"], t["exit_px"], t["entry_kind"]) == ("take_profit", 2.0, "market")
    assert plain["exits"] == exits(take_profit=1) and plain["skipped"] == skips()
