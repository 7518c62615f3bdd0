"""Golden cases, run against both the reference (tests/reference) and the worker.

Every expected number here was worked out by hand from SPEC sections 2-6 and
10; the comments show the arithmetic.  Default config unless said otherwise:
capital 10000, allocation 4% -> first size 400, costs (30 + 10) bps per side
-> 400 * 40 / 10000 * 2 = 3.2 per round trip of 400.
"""

import pytest

from tests import _worker_adapter, reference


@pytest.fixture(params=[reference, _worker_adapter], ids=["reference", "worker"])
def impl(request):
    """The implementation under test: the plain-loop reference or the worker."""
    return request.param


T0 = 1_700_000_000_000
MIN = 60_000
HOUR = 3_600_000
P = {"tp_mult": 2.0, "sl_mult": 0.85, "max_hold_hrs": 48}


def approx(x):
    return pytest.approx(x, rel=1e-12, abs=1e-12)


def call(cid, ts=T0, caller="c", mint=""):
    return {"id": cid, "caller": caller, "mint": mint, "ts_ms": ts}


def bar(ts, close, high=None, low=None):
    """A candle (ts, open, high, low, close); high/low default to the close."""
    high = close if high is None else high
    low = close if low is None else low
    return (ts, close, high, low, close)


def flat(ts, px=1.0):
    return bar(ts, px)


def one(impl, cid, candles, params=P, config=None, **kw):
    """Capital run of a single call on its own series."""
    return impl.simulate_capital([call(cid, **kw)], {cid: candles}, "call_id", params, config or {})


# ---------------------------------------------------------------- SPEC 10


def test_pump_2x_take_profit(impl):
    res = one(impl, "a", [flat(T0), bar(T0 + MIN, 2.0, high=2.0), flat(T0 + 2 * MIN)])
    # size = min(200 / 0.15, 0.04 * 10000, 10000) = 400; pnl = 400 * 1 - 3.2
    (t,) = res["trades"]
    assert t["size"] == approx(400.0)
    assert t["pnl"] == approx(396.8)
    assert t["exit_reason"] == "take_profit" and t["exit_px"] == 2.0 and t["exit_mult"] == 2.0
    assert t["entry_ts_ms"] == T0 and t["exit_ts_ms"] == T0 + MIN
    assert res["final_capital"] == approx(10396.8)
    assert res["total_return"] == approx(0.03968)
    assert res["fees_paid"] == approx(3.2)
    assert (res["trades_executed"], res["wins"], res["losses"], res["win_rate"]) == (1, 1, 0, 1.0)
    assert res["profit_factor"] is None  # no losing trade
    assert res["max_drawdown"] == 0.0
    assert res["avg_hold_min"] == approx(1.0)
    assert res["exits"] == {"take_profit": 1, "stop_loss": 0, "time_exit": 0, "end_of_data": 0,
                            "breakeven": 0, "trailing_stop": 0}
    assert res["skipped"] == {"max_positions": 0, "no_entry": 0, "no_fill": 0,
                             "below_min_size": 0}
    assert res["trades_skipped"] == 0


def test_rug_stop_loss(impl):
    res = one(impl, "a", [flat(T0), bar(T0 + MIN, 0.85, high=1.0, low=0.85)])
    # pnl = 400 * (0.85 - 1) - 3.2 = -63.2
    (t,) = res["trades"]
    assert t["exit_reason"] == "stop_loss" and t["exit_px"] == approx(0.85)
    assert t["pnl"] == approx(-63.2)
    assert res["final_capital"] == approx(9936.8)
    assert (res["wins"], res["losses"]) == (0, 1)
    assert res["profit_factor"] == 0.0
    assert res["max_drawdown"] == approx(63.2 / 10000)


def test_exact_fee_on_flat_path(impl):
    res = one(impl, "a", [flat(T0), flat(T0 + MIN), flat(T0 + 2 * MIN)])
    (t,) = res["trades"]
    assert t["exit_reason"] == "end_of_data" and t["exit_ts_ms"] == T0 + 2 * MIN
    assert t["pnl"] == approx(-3.2)
    assert res["fees_paid"] == approx(3.2)
    assert res["final_capital"] == approx(10000 - 3.2)
    assert res["losses"] == 1 and res["profit_factor"] == 0.0


def test_best_tp_is_2_5_on_exact_2_5x_path_default_grid(impl):
    candles = [flat(T0), bar(T0 + MIN, 1.5), bar(T0 + 2 * MIN, 2.0), bar(T0 + 3 * MIN, 2.5),
               bar(T0 + 4 * MIN, 1.5, high=2.0, low=1.5), bar(T0 + 5 * MIN, 1.0, high=1.5)]
    out = impl.optimize([call("a")], {"a": candles}, "call_id",
                   {"tp_mults": [1.5, 2, 2.5, 3, 4, 5], "sl_mults": [0.85, 0.88, 0.9, 0.92, 0.95],
                    "max_hold_hrs": [48]}, {})
    assert len(out["points"]) == 30
    # tp 2.5 is grid index 2; first sl (0.85) wins the tie among equal sizes.
    assert out["best"] == 10
    assert out["points"][10]["params"] == {"tp_mult": 2.5, "sl_mult": 0.85, "max_hold_hrs": 48}
    assert out["points"][10]["metrics"]["final_capital"] == approx(10596.8)
    # tp 2.5 (10..14), tp 2 (5..9), tp 1.5 (0..4), then tp 3/4/5 all end at 1.0 (-3.2).
    assert out["ranking"] == list(range(10, 15)) + list(range(5, 10)) + list(range(0, 5)) + list(range(15, 30))
    assert [p["rank"] for p in out["points"]][10:15] == [1, 2, 3, 4, 5]
    assert out["points"][29]["rank"] == 30
    assert "trades" not in out["points"][0]["metrics"]


def test_30_simultaneous_calls_25_positions(impl):
    calls = [call("c%02d" % i) for i in range(30)]
    series = {c["id"]: [flat(T0), bar(T0 + MIN, 2.0)] for c in calls}
    res = impl.simulate_capital(calls, series, "call_id", P, {})
    assert res["trades_executed"] == 25
    assert res["skipped"] == {"max_positions": 5, "no_entry": 0, "no_fill": 0,
                             "below_min_size": 0}
    assert res["trades_skipped"] == 5
    assert [t["call_id"] for t in res["trades"]] == ["c%02d" % i for i in range(25)]
    # size_k = 400 * 0.96^k; each pnl = 0.992 * size; sum sizes = 10000 * (1 - 0.96^25)
    for k, t in enumerate(res["trades"]):
        assert t["size"] == pytest.approx(400 * 0.96 ** k, rel=1e-12)
    assert res["final_capital"] == pytest.approx(10000 + 9920 * (1 - 0.96 ** 25), rel=1e-12)


# ---------------------------------------------------------------- more hand cases


def test_intrabar_order_on_candle_touching_both(impl):
    candles = [flat(T0), bar(T0 + MIN, 1.0, high=2.0, low=0.8)]
    tp = one(impl, "a", candles, config={"intrabar": "tp_first"})["trades"][0]
    sl = one(impl, "a", candles, config={"intrabar": "sl_first"})["trades"][0]
    assert (tp["exit_reason"], tp["pnl"]) == ("take_profit", approx(396.8))
    assert (sl["exit_reason"], sl["pnl"]) == ("stop_loss", approx(-63.2))


def test_entry_candle_high_low_never_trigger(impl):
    # Entry candle itself touches 3x and 0.5x: ignored (SPEC 10 point 2).
    res = one(impl, "a", [bar(T0, 1.0, high=3.0, low=0.5), flat(T0 + MIN)])
    assert res["trades"][0]["exit_reason"] == "end_of_data"
    assert res["trades"][0]["pnl"] == approx(-3.2)


def test_entry_on_last_candle_is_end_of_data_at_entry_close(impl):
    candles = [flat(T0 - 2 * MIN, 5.0), flat(T0 - MIN, 5.0), flat(T0, 1.25)]
    res = one(impl, "a", candles, ts=T0 - 30_000)  # first candle >= t is the last one
    (t,) = res["trades"]
    assert t["entry_ts_ms"] == T0 and t["exit_ts_ms"] == T0
    assert t["entry_px"] == 1.25 and t["exit_px"] == 1.25
    assert t["exit_reason"] == "end_of_data"
    assert t["pnl"] == approx(-3.2)
    assert res["avg_hold_min"] == 0.0


def test_time_exit_at_close(impl):
    candles = [flat(T0), bar(T0 + 30 * MIN, 1.05), bar(T0 + 60 * MIN, 1.1, high=1.2, low=1.0),
               bar(T0 + 90 * MIN, 3.0)]
    t = one(impl, "a", candles, params={"tp_mult": 2.0, "sl_mult": 0.85, "max_hold_hrs": 1})["trades"][0]
    assert (t["exit_reason"], t["exit_ts_ms"], t["exit_px"]) == ("time_exit", T0 + 60 * MIN, 1.1)
    assert t["pnl"] == approx(400 * (1.1 - 1) - 3.2)
    # 0.5 h = 1_800_000 ms: exits at the 30-minute candle.
    t = one(impl, "a", candles, params={"tp_mult": 2.0, "sl_mult": 0.85, "max_hold_hrs": 0.5})["trades"][0]
    assert (t["exit_reason"], t["exit_ts_ms"], t["exit_px"]) == ("time_exit", T0 + 30 * MIN, 1.05)


def test_max_hold_defaults_to_horizon(impl):
    candles = [flat(T0), bar(T0 + 2 * HOUR, 1.1), bar(T0 + 3 * HOUR, 1.2)]
    t = one(impl, "a", candles, params={"tp_mult": 2.0, "sl_mult": 0.85},
            config={"max_trade_horizon_hrs": 2})["trades"][0]
    assert (t["exit_reason"], t["exit_px"]) == ("time_exit", 1.1)


def test_exit_at_later_call_time_frees_cash_for_it(impl):
    cfg = {"initial_capital": 1000, "max_allocation_pct": 0.5, "max_risk_per_trade": 1e9}
    series = {"a": [flat(T0), bar(T0 + MIN, 2.0)], "b": [flat(T0 + MIN)]}
    # A: size 500, tp at T0+1m, pnl = 500 - 500 * 0.008 = 496.
    # B at exactly T0+1m: A closes first -> free = 500 + 996 = 1496 -> size 748.
    res = impl.simulate_capital([call("a"), call("b", ts=T0 + MIN)], series, "call_id", P, cfg)
    a, b = res["trades"]
    assert a["pnl"] == approx(496.0)
    assert b["size"] == approx(748.0)
    assert b["pnl"] == approx(-748 * 0.008)
    assert res["final_capital"] == approx(1496 - 5.984)
    # One millisecond earlier A is still open: free 500 -> size 250.
    res = impl.simulate_capital([call("a"), call("b", ts=T0 + MIN - 1)], series, "call_id", P, cfg)
    assert res["trades"][1]["size"] == approx(250.0)
    assert res["trades"][1]["entry_ts_ms"] == T0 + MIN
    assert res["final_capital"] == approx(1000 + 496 - 2)


def test_mint_series_shared_by_two_calls(impl):
    m1 = [flat(T0), bar(T0 + MIN, 1.5), bar(T0 + 2 * MIN, 1.5, high=1.6, low=1.4),
          bar(T0 + 3 * MIN, 3.0, low=1.5), flat(T0 + 4 * MIN, 3.0)]
    calls = [call("x", mint="M1"), call("y", ts=T0 + 2 * MIN, mint="M1"), call("z", mint="M2")]
    res = impl.simulate_capital(calls, {"M1": m1}, "mint", P, {})
    x, y = res["trades"]
    # x: entry 1.0, tp 2.0 hit at T0+3m; y: entry 1.5, tp 3.0 hit at T0+3m.
    assert (x["entry_px"], x["exit_px"], x["exit_ts_ms"]) == (1.0, 2.0, T0 + 3 * MIN)
    assert (y["entry_px"], y["exit_px"], y["exit_ts_ms"]) == (1.5, 3.0, T0 + 3 * MIN)
    assert y["size"] == approx(384.0)  # x still open: 0.04 * 9600
    assert y["pnl"] == approx(384 - 3.072)
    assert res["final_capital"] == approx(10000 + 396.8 + 380.928)
    assert res["skipped"]["no_entry"] == 1  # z: no M2 series


def test_below_min_size(impl):
    res = one(impl, "a", [flat(T0), bar(T0 + MIN, 2.0)], config={"initial_capital": 200})
    # size = min(1333.3, 0.04 * 200 = 8, 200) = 8 < 10
    assert res["trades_executed"] == 0
    assert res["skipped"] == {"max_positions": 0, "no_entry": 0, "no_fill": 0,
                             "below_min_size": 1}
    assert res["final_capital"] == 200
    assert (res["win_rate"], res["profit_factor"], res["avg_hold_min"], res["fees_paid"]) == (0.0, None, 0.0, 0.0)


def test_series_starting_after_and_ending_before_the_alert(impl):
    series = {"late": [flat(T0 + 5 * MIN, 2.0), bar(T0 + 6 * MIN, 4.0)],
              "gone": [flat(T0 - 10 * MIN), flat(T0 - 5 * MIN)],
              "empty": []}
    calls = [call("late"), call("gone"), call("empty"), call("missing")]
    res = impl.simulate_capital(calls, series, "call_id", P, {})
    (t,) = res["trades"]
    assert (t["call_id"], t["entry_ts_ms"], t["entry_px"]) == ("late", T0 + 5 * MIN, 2.0)
    assert t["exit_reason"] == "take_profit"
    assert res["skipped"]["no_entry"] == 3


def test_max_drawdown_hand_sequence(impl):
    cfg = {"initial_capital": 1000, "max_allocation_pct": 0.1, "max_risk_per_trade": 1e9,
           "taker_fee_bps": 0, "slippage_bps": 0}
    params = {"tp_mult": 2.0, "sl_mult": 0.5, "max_hold_hrs": 48}
    series = {
        "a": [flat(T0), flat(T0 + MIN, 0.9)],                       # eod at 0.9
        "b": [flat(T0), flat(T0 + MIN), bar(T0 + 3 * MIN, 2.0)],     # tp at T0+3m
        "c": [flat(T0 + 2 * MIN), bar(T0 + 4 * MIN, 0.5)],           # sl at T0+4m
    }
    calls = [call("a"), call("b"), call("c", ts=T0 + 2 * MIN)]
    res = impl.simulate_capital(calls, series, "call_id", params, cfg)
    # A size 100 -> -10; B size 90 -> +90; at C: A closed, free 900,
    # equity 990 (dd 0.01), C size 90 -> -45.  End: B closes, equity 1080
    # (new peak); C closes, equity 1035 -> dd 45 / 1080.
    assert [t["size"] for t in res["trades"]] == [approx(100), approx(90), approx(90)]
    assert [t["pnl"] for t in res["trades"]] == [approx(-10), approx(90), approx(-45)]
    assert res["final_capital"] == approx(1035)
    assert res["max_drawdown"] == approx(45 / 1080)
    assert res["profit_factor"] == approx(90 / 55)
    assert res["fees_paid"] == 0.0


def test_per_trade_mode_metrics(impl):
    # Request order B, A, C, D; processing order is by ts: A, B, C (D no series).
    series = {
        "A": [flat(T0), bar(T0 + MIN, 2.0)],                                             # tp
        "B": [flat(T0 + HOUR), bar(T0 + HOUR + MIN, 1.0, high=1.1, low=0.9),
              bar(T0 + HOUR + 2 * MIN, 0.8)],                                             # sl
        "C": [flat(T0 + 2 * HOUR), flat(T0 + 2 * HOUR + MIN, 1.05),
              flat(T0 + 2 * HOUR + 2 * MIN, 1.08), flat(T0 + 2 * HOUR + 3 * MIN, 1.1)],  # eod
    }
    calls = [call("B", ts=T0 + HOUR), call("A"), call("C", ts=T0 + 2 * HOUR), call("D")]
    res = impl.simulate_per_trade(calls, series, "call_id", {"tp_mult": 2.0, "sl_mult": 0.8, "max_hold_hrs": 48}, {})
    # rets: 1 - .008 = .992; -.2 - .008 = -.208; .1 - .008 = .092; r = ret / .2
    assert [t["call_id"] for t in res["trade_records"]] == ["A", "B", "C"]
    assert [t["pnl"] for t in res["trade_records"]] == [approx(0.992), approx(-0.208), approx(0.092)]
    assert all(t["size"] == 1.0 for t in res["trade_records"])
    assert (res["trades"], res["wins"], res["losses"]) == (3, 2, 1)
    assert res["win_rate"] == approx(2 / 3)
    assert res["total_return"] == approx(0.876)
    assert res["avg_return"] == approx(0.292)
    assert res["median_return"] == approx(0.092)
    assert res["profit_factor"] == approx(1.084 / 0.208)
    assert res["total_r"] == approx(4.38)
    assert res["avg_r"] == approx(1.46)
    assert res["exits"] == {"take_profit": 1, "stop_loss": 1, "time_exit": 0, "end_of_data": 1,
                            "breakeven": 0, "trailing_stop": 0}
    assert res["skipped"] == {"no_entry": 1, "no_fill": 0}
    assert res["avg_hold_min"] == approx(2.0)


def test_constraints_leave_nothing_feasible(impl):
    series = {"a": [flat(T0), bar(T0 + MIN, 2.0)]}
    grid = {"tp_mults": [1.5, 2.0], "sl_mults": [0.85]}
    out = impl.optimize([call("a")], series, "call_id", grid, {}, constraints={"min_trades": 2})
    assert out["best"] is None
    assert [p["feasible"] for p in out["points"]] == [False, False]
    assert out["ranking"] == [1, 0]  # still ranked by final_capital
    assert out["points"][0]["params"]["max_hold_hrs"] == 48  # from the config horizon
    ok = impl.optimize([call("a")], series, "call_id", grid, {},
                  constraints={"min_trades": 1, "min_win_rate": 1.0, "max_drawdown": 0.0})
    assert ok["best"] == 1


def test_minimize_ties_keep_grid_order(impl):
    series = {"a": [flat(T0), bar(T0 + MIN, 2.0, low=0.9)]}
    grid = {"tp_mults": [2.0], "sl_mults": [0.85, 0.95]}
    # Both points: size 400, tp -> fees 3.2 each; equal -> grid order.
    out = impl.optimize([call("a")], series, "call_id", grid, {}, objective="fees_paid", minimize=True)
    assert out["ranking"] == [0, 1] and out["best"] == 0
    assert out["points"][0]["metrics"]["fees_paid"] == approx(3.2)


def test_infeasible_point_never_best_even_if_top_objective(impl):
    series = {"a": [flat(T0), bar(T0 + MIN, 1.2, high=1.5), bar(T0 + 2 * MIN, 0.85, high=1.2)],
              "b": [flat(T0), bar(T0 + 5 * MIN, 5.0)]}
    grid = {"tp_mults": [1.5, 5.0], "sl_mults": [0.85]}
    # tp 1.5: both win (win rate 1); tp 5: a stops out, b makes 4x (higher capital, win rate .5)
    calls = [call("a"), call("b")]
    out = impl.optimize(calls, series, "call_id", grid, {})
    assert out["ranking"] == [1, 0] and out["best"] == 1
    assert out["points"][1]["metrics"]["final_capital"] == approx(10000 - 63.2 + 384 * 4 - 3.072)
    out = impl.optimize(calls, series, "call_id", grid, {}, constraints={"min_win_rate": 1.0})
    assert [p["feasible"] for p in out["points"]] == [True, False]
    assert out["ranking"] == [0, 1] and out["best"] == 0
    assert [p["rank"] for p in out["points"]] == [1, 2]
    out = impl.optimize(calls, series, "call_id", grid, {}, constraints={"min_trades": 3})
    assert out["best"] is None and not any(p["feasible"] for p in out["points"])
    if impl is _worker_adapter:
        # A win rate above 1 is a typo (55 meant as 55%?), not an empty constraint.
        with pytest.raises(ValueError, match=r"constraints\.min_win_rate"):
            impl.optimize(calls, series, "call_id", grid, {}, constraints={"min_win_rate": 1.01})


def test_capital_identity_and_invalid_inputs(impl):
    calls, series, grid = _callers_dataset()
    res = impl.simulate_capital(calls, series, "call_id", P, {})
    assert res["final_capital"] == approx(10000 + sum(t["pnl"] for t in res["trades"]))
    with pytest.raises(ValueError):
        impl.simulate_capital(calls, series, "call_id", {"tp_mult": 1.0, "sl_mult": 0.9}, {})
    with pytest.raises(ValueError):
        impl.optimize(calls, series, "call_id", {"tp_mults": [2, 2], "sl_mults": [0.9]}, {})


def test_none_objective_ranks_last_both_directions(impl):
    series = {"a": [flat(T0), bar(T0 + MIN, 2.0), flat(T0 + 2 * MIN, 0.9)]}
    grid = {"tp_mults": [2.0, 3.0], "sl_mults": [0.85]}
    # tp 2: win only -> profit_factor None; tp 3: eod at 0.9, a loss -> 0.0
    for minimize in (False, True):
        out = impl.optimize([call("a")], series, "call_id", grid, {}, objective="profit_factor", minimize=minimize)
        assert out["ranking"] == [1, 0] and out["best"] == 1
    with pytest.raises(ValueError):
        impl.optimize([call("a")], series, "call_id", grid, {}, objective="nonsense")


def _callers_dataset():
    """alice: pump to 2x (+ one call without series); bob: 5x; carol: rug to 0.5;
    dave: series ended before his call; erin: 1.3 at +1h, back to 1.0 at +2h."""
    series = {
        "al1": [flat(T0), bar(T0 + MIN, 2.0, low=1.0), bar(T0 + 2 * MIN, 1.0, high=2.0)],
        "bo1": [flat(T0), bar(T0 + MIN, 5.0, low=1.0)],
        "ca1": [flat(T0), bar(T0 + MIN, 0.5, high=1.0)],
        "da1": [flat(T0 - HOUR)],
        "er1": [flat(T0), bar(T0 + HOUR, 1.3, low=1.0), bar(T0 + 2 * HOUR, 1.0, high=1.3)],
    }
    calls = [call("al1", caller="alice"), call("bo1", caller="bob"), call("ca1", caller="carol"),
             call("da1", caller="dave"), call("er1", caller="erin"), call("al2", caller="alice")]
    grid = {"tp_mults": [1.5, 2.0, 5.0], "sl_mults": [0.9, 0.8], "max_hold_hrs": [48, 1]}
    return calls, series, grid


def test_per_caller_flags(impl):
    calls, series, grid = _callers_dataset()
    per = impl.optimize_per_caller(calls, series, "call_id", grid, {}, constraints={"min_trades": 1})
    assert list(per) == ["alice", "bob", "carol", "dave", "erin"]
    al, bo, ca, da, er = (per[k] for k in per)
    assert al["calls"] == 2 and al["caller"] == "alice"
    assert al["best_params"] == {"tp_mult": 2.0, "sl_mult": 0.9, "max_hold_hrs": 48}
    assert al["best_final_capital"] == approx(10396.8)
    assert al["best_total_return"] == approx(0.03968)
    assert al["best_metrics"]["skipped"]["no_entry"] == 1
    assert (al["collapsed_capital"], al["requires_extreme_params"]) == (False, False)
    assert bo["best_params"]["tp_mult"] == 5.0 and bo["best_final_capital"] == approx(11596.8)
    assert (bo["collapsed_capital"], bo["requires_extreme_params"]) == (False, True)
    # carol: sl 0.9 loses 400 * 0.1 + 3.2 = 43.2, the least bad.
    assert ca["best_params"] == {"tp_mult": 1.5, "sl_mult": 0.9, "max_hold_hrs": 48}
    assert ca["best_final_capital"] == approx(9956.8)
    assert (ca["collapsed_capital"], ca["requires_extreme_params"]) == (True, False)
    assert da == {"caller": "dave", "calls": 1, "best_params": None, "best_metrics": None,
                  "best_final_capital": None, "best_total_return": None,
                  "collapsed_capital": True, "requires_extreme_params": False,
                  "deflated_sharpe": None}
    # erin: hold 1 h -> time exit at 1.3: 400 * 0.3 - 3.2 = 116.8
    assert er["best_params"] == {"tp_mult": 1.5, "sl_mult": 0.9, "max_hold_hrs": 1}
    assert er["best_final_capital"] == approx(10116.8)
    # Lower thresholds: sl 0.9 < 0.95 makes everyone extreme.
    per = impl.optimize_per_caller(calls, series, "call_id", grid, {}, extreme_sl_below=0.95)
    assert per["alice"]["requires_extreme_params"] is True
    # caller_groups restricts callers; unknown names ignored.
    per = impl.optimize_per_caller(calls, series, "call_id", grid, {}, caller_groups=["erin", "zed"])
    assert list(per) == ["erin"]


def test_grouped_mean_and_optimize(impl):
    calls, series, grid = _callers_dataset()
    kw = {"constraints": {"min_trades": 1}}
    g = impl.grouped_eval(calls, series, "call_id", grid, {}, **kw)
    assert g["selected_callers"] == ["alice", "erin"]
    assert g["grouped_params"] == {"tp_mult": approx(1.75), "sl_mult": approx(0.9), "max_hold_hrs": approx(24.5)}
    res = g["grouped_result"]
    # alice: tp 1.75 -> 400 * 0.75 - 3.2 = 296.8; erin (size 384, alice open): eod at 1.0 -> -3.072
    assert [t["call_id"] for t in res["trades"]] == ["al1", "er1"]
    assert res["final_capital"] == approx(10000 + 296.8 - 3.072)
    assert res["skipped"]["no_entry"] == 1  # al2
    assert impl.grouped_eval(calls, series, "call_id", grid, {}, filter_extreme=False, **kw)["selected_callers"] == \
        ["alice", "bob", "erin"]
    assert impl.grouped_eval(calls, series, "call_id", grid, {}, filter_collapsed=False, **kw)["selected_callers"] == \
        ["alice", "carol", "erin"]
    # optimize over alice + erin together: tp 2 (396.8) and hold 1 (erin 384 * 0.3 - 3.072).
    g = impl.grouped_eval(calls, series, "call_id", grid, {}, grouped_params="optimize", **kw)
    assert g["grouped_params"] == {"tp_mult": 2.0, "sl_mult": 0.9, "max_hold_hrs": 1}
    assert g["grouped_result"]["final_capital"] == approx(10000 + 396.8 + 112.128)
    # Nobody selected.
    g = impl.grouped_eval(calls, series, "call_id", grid, {}, caller_groups=["carol", "dave"], **kw)
    assert g["selected_callers"] == [] and g["grouped_params"] is None and g["grouped_result"] is None


def test_per_caller_per_trade_mode_collapse_on_negative_total_return(impl):
    calls, series, grid = _callers_dataset()
    per = impl.optimize_per_caller(calls, series, "call_id", grid, {}, mode="per_trade", caller_groups=["carol"])
    ca = per["carol"]
    assert ca["best_final_capital"] is None
    assert ca["best_total_return"] == approx(0.9 - 1 - 0.008)
    assert ca["collapsed_capital"] is True
    g = impl.grouped_eval(calls, series, "call_id", grid, {}, mode="per_trade", caller_groups=["alice"])
    assert g["selected_callers"] == ["alice"]
    assert g["grouped_result"]["trade_records"][0]["pnl"] == approx(1.0 - 0.008)
