"""SPEC 13's built-in strategies, strategy grid and plug-ins.

Golden cases are worked by hand in the comments; the property tests run each
built-in kernel against the plain-loop reading of the SPEC in
tests/plugin_strategies.py (through the plug-in path, so it is checked too).
"""

from __future__ import annotations

import math
import sys
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from worker._core.indicators import rsi_nb
from worker._core.plugins import SignalError, load_plugin, plugin_bars, run_plugin
from worker._core.strategies import (
    check_params,
    is_rejected,
    run_strategy,
    strategy_sets,
)
from worker._errors import InvalidParams

REF = "tests.plugin_strategies:"


def bars_of(close, high=None, low=None):
    close = np.asarray(close, dtype=float)
    high = close if high is None else np.asarray(high, dtype=float)
    low = close if low is None else np.asarray(low, dtype=float)
    n = len(close)
    return SimpleNamespace(ts_ms=np.arange(n, dtype=np.int64) * 60_000, open=close.copy(),
                           high=high, low=low, close=close, volume=np.ones(n))


def sig(signals):
    """Signals as a list of (index, direction, stop or None)."""
    return [(int(i), int(d), None if math.isnan(s) else float(s))
            for i, d, s in zip(*signals, strict=True)]


# --- sma_cross ------------------------------------------------------------

def test_sma_cross_up_and_down():
    # fast=1 (the close), slow=2: slow[i] = (c[i-1] + c[i]) / 2.
    # i=1: f=10 s=10 neither; i=2: f=11 s=10.5 above (long: not above at 1);
    # i=3: f=11 s=11 neither; i=4: f=10 s=10.5 below (short: not below at 3).
    b = bars_of([10, 10, 11, 11, 10])
    p = {"fast": 1, "slow": 2}
    assert sig(run_strategy("sma_cross", b, p)) == [(2, 1, None), (4, -1, None)]
    assert sig(run_strategy("sma_cross", b, {**p, "direction": "long"})) == [(2, 1, None)]
    assert sig(run_strategy("sma_cross", b, {**p, "direction": "short"})) == [(4, -1, None)]


def test_sma_cross_first_bars_undefined():
    # slow=3 is first defined at bar 2, so the first signal can be at bar 3:
    # a cross between bars 1 and 2 (fast=1: 5 -> 9 over slow 5 -> 6.33) uses
    # slow[1], undefined: no signal.
    assert sig(run_strategy("sma_cross", bars_of([5, 5, 9]), {"fast": 1, "slow": 3})) == []
    # one bar more: bar 3's close 3 falls below slow (9+5+3)/3 = 5.67: short.
    b = bars_of([5, 5, 9, 3])
    assert sig(run_strategy("sma_cross", b, {"fast": 1, "slow": 3})) == [(3, -1, None)]


# s = fl(2**-40 / 1e-12) = 0.9094947017729282 is chosen so 1e-12 * s rounds
# to exactly t = 2**-40, a multiple of s's ulp 2**-53: s +- t are exact and
# their mean is exactly s. With fast=1, slow=2 and closes [s, s-t, s+t]:
# f - s at bar 2 is t == 1e-12 * s, not above (strict); a further 2**-52
# each way keeps the mean s and gives f - s > 1e-12 * s: above, a long.
S, T, U = 0.9094947017729282, 2.0**-40, 2.0**-52


@pytest.mark.parametrize("extra, want", [(0.0, []), (U, [(2, 1, None)])])
def test_sma_cross_band_edge_long(extra, want):
    assert 1e-12 * S == T
    b = bars_of([S, S - T - extra, S + T + extra])
    assert sig(run_strategy("sma_cross", b, {"fast": 1, "slow": 2})) == want


@pytest.mark.parametrize("extra, want", [(0.0, []), (U, [(2, -1, None)])])
def test_sma_cross_band_edge_short(extra, want):
    b = bars_of([S, S + T + extra, S - T - extra])
    assert sig(run_strategy("sma_cross", b, {"fast": 1, "slow": 2})) == want


# --- donchian_breakout ----------------------------------------------------

DONCHIAN = bars_of(
    #       0     1     2     3    4     5
    close=[9.5, 10.5, 11.5, 9.5, 8.5, 11.0],
    high=[10.0, 11.0, 11.5, 11.0, 10.0, 11.0],
    low=[8.0, 9.0, 10.0, 9.0, 8.0, 9.0])


def test_donchian_breakout():
    # lookback=2. Bar 1 closes above high[0] but its window [-1:1] is not
    # defined. Bar 2: close 11.5 > max(high[0:2]) = 11 -> long, stop
    # min(low[0:2]) = 8. Bar 3: 9.5 within [9, 11.5]. Bar 4: 8.5 < min(low[2:4])
    # = 9 -> short, stop max(high[2:4]) = 11.5. Bar 5: 11.0 == max(high[3:5])
    # = 11: not strictly above, no signal.
    got = sig(run_strategy("donchian_breakout", DONCHIAN, {"lookback": 2}))
    assert got == [(2, 1, 8.0), (4, -1, 11.5)]
    got = sig(run_strategy("donchian_breakout", DONCHIAN, {"lookback": 2, "direction": "short"}))
    assert got == [(4, -1, 11.5)]


def test_donchian_lookback_one_first_bar():
    # lookback=1: bar 1 (10.5 > high[0] = 10) is a long with stop low[0] = 8.
    got = sig(run_strategy("donchian_breakout", DONCHIAN, {"lookback": 1}))
    assert got[0] == (1, 1, 8.0)


# --- rsi_reversion --------------------------------------------------------

# closes 10 11 12 11 9 10 12: changes +1 +1 -1 -2 +1 +2; period 2.
# bar 2: gain (1+1)/2 = 1, loss 0 -> rsi 100 (loss 0).
# bar 3: gain (1*1+0)/2 = .5, loss (0+1)/2 = .5 -> 100 - 100/2 = 50.
# bar 4: gain .25, loss (.5+2)/2 = 1.25 -> 100 - 100/1.2 = 16.67.
# bar 5: gain (.25+1)/2 = .625, loss .625 -> 50.
# bar 6: gain (.625+2)/2 = 1.3125, loss .3125 -> 100 - 100/5.2 = 80.77.
RSI_CLOSE = [10, 11, 12, 11, 9, 10, 12]
RSI_WANT = [math.nan, math.nan, 100.0, 50.0, 100 - 100 / 1.2, 50.0, 100 - 100 / 5.2]


def test_rsi_values():
    got = rsi_nb(np.array(RSI_CLOSE, dtype=float), 2)
    np.testing.assert_allclose(got, RSI_WANT, rtol=0, atol=1e-12)
    assert np.array_equal(rsi_nb(np.full(4, 7.0), 2), [np.nan, np.nan, 50.0, 50.0],
                          equal_nan=True)  # no gain and no loss: 50


def test_rsi_reversion_crosses():
    # lower 30, upper 70: short at 3 (100 > 70 >= 50), long at 5 (16.67 < 30
    # <= 50); bar 6 (50 -> 80.77) crosses upper upward: nothing.
    b = bars_of(RSI_CLOSE)
    p = {"period": 2, "lower": 30, "upper": 70}
    assert sig(run_strategy("rsi_reversion", b, p)) == [(3, -1, None), (5, 1, None)]
    # lower 50: bar 5 lands exactly on it (16.67 < 50 <= 50): still a long;
    # upper 50: bar 3 (100 > 50 >= 50) a short... but lower 50 >= upper 50 is
    # a rejected set, so upper 60 here.
    p = {"period": 2, "lower": 50, "upper": 60}
    assert sig(run_strategy("rsi_reversion", b, p)) == [(3, -1, None), (5, 1, None)]
    assert sig(run_strategy("rsi_reversion", b, {**p, "direction": "long"})) == [(5, 1, None)]


def test_rsi_first_bars():
    # rsi starts at bar `period`; a signal needs rsi[i-1]: bar 2 (rsi 100 from
    # nothing) cannot be a short with upper 70 although rsi[2] = 100.
    b = bars_of(RSI_CLOSE[:3])
    assert sig(run_strategy("rsi_reversion", b, {"period": 2, "lower": 30, "upper": 70})) == []


# --- sweep_bos ------------------------------------------------------------

# swing=1: p is a swing low when low[p] < low[p-1] and low[p] <= low[p+1],
# known from p + 2. Series A (H, L, C):
#   0: 10   9    9.5
#   1: 12   8   11     swing low 8 and swing high 12 at bar 1, known from 3
#   2: 11   9   10
#   3: 10.5 7.5  8.5   7.5 < 8 < 8.5: long sweep s=3 (no short: 10.5 < 12)
#   4: 11.5 9   11     close 11 <= H 12: no break
#   5: 13  10   12.5   close 12.5 > 12: long, stop min(low[3..5]) = 7.5
#   6: 13.5 12  13.2   close > 12 again, but the sweep was used: nothing
SWEEP_A = {"high": [10, 12, 11, 10.5, 11.5, 13, 13.5], "low": [9, 8, 9, 7.5, 9, 10, 12],
           "close": [9.5, 11, 10, 8.5, 11, 12.5, 13.2]}


def test_sweep_then_break_of_structure():
    got = sig(run_strategy("sweep_bos", bars_of(**SWEEP_A), {"swing": 1, "window": 2}))
    assert got == [(5, 1, 7.5)]
    got = sig(run_strategy("sweep_bos", bars_of(**SWEEP_A),
                           {"swing": 1, "window": 2, "direction": "short"}))
    assert got == []


def test_sweep_expires_after_window():
    # window 1: the sweep at 3 waits for (3, 4] only; bar 5 is too late.
    assert sig(run_strategy("sweep_bos", bars_of(**SWEEP_A), {"swing": 1, "window": 1})) == []


def test_sweep_replaced_by_a_later_one():
    # Bar 4 becomes low 7.8 close 9: 7.8 < L 8 < 9 is a new sweep replacing
    # bar 3's (bar 4's close 9 does not break 12 first). Bar 5 breaks: the stop
    # is min(low[4..5]) = 7.8, not 7.5; and window 1 now suffices (5 in (4, 5]).
    a = {k: list(v) for k, v in SWEEP_A.items()}
    a["low"][4], a["close"][4] = 7.8, 9.0
    for window in (1, 3):
        got = sig(run_strategy("sweep_bos", bars_of(**a), {"swing": 1, "window": window}))
        assert got == [(5, 1, 7.8)]


# Series B, swing 1, window 10: an old swing high (11) below a newer swing low
# (11.5), so one close can break both ways.
#   0: 10   9    9.5
#   1: 11   9.5 10.5   swing high 11 at 1 (known from 3)
#   2: 10.8 10  10.2
#   3: 11.2 10.1 10.9  11.2 > 11 > 10.9: short sweep s=3 (no L yet)
#   4: 12   11.8 11.9  highs rise from here: no new swing high until bar 8
#   5: 12.2 11.5 12.1  swing low 11.5 at 5 (known from 7)
#   6: 12.4 11.6 12.3
#   7: 12.6 11.4 11.7  11.4 < 11.5 < 11.7: long sweep s=7
#   8: 12.8 11.3 11.4  long (11.4 > H 11) and short (11.4 < L 11.5) at once:
#                      neither, both sweeps cleared
#   9: 11.8 10.5 10.8  the cleared short would fire (10.8 < 11.5): nothing;
#                      11.8 > 11 > 10.8: a new short sweep s=9
#  10: 11   10   10.2  swing high 12.8 at 8 now known; 10.2 < 11.5: short,
#                      stop max(high[9..10]) = 11.8
SWEEP_B = {"high": [10, 11, 10.8, 11.2, 12, 12.2, 12.4, 12.6, 12.8, 11.8, 11],
           "low": [9, 9.5, 10, 10.1, 11.8, 11.5, 11.6, 11.4, 11.3, 10.5, 10],
           "close": [9.5, 10.5, 10.2, 10.9, 11.9, 12.1, 12.3, 11.7, 11.4, 10.8, 10.2]}


@pytest.mark.parametrize("direction, want", [("both", [(10, -1, 11.8)]), ("long", []),
                                             ("short", [(10, -1, 11.8)])])
def test_sweep_bar_giving_both_gives_neither(direction, want):
    p = {"swing": 1, "window": 10, "direction": direction}
    assert sig(run_strategy("sweep_bos", bars_of(**SWEEP_B), p)) == want


def test_sweep_needs_known_swings():
    # Series A cut at bar 3 then a break: the swing at 1 is known from bar 3,
    # so bar 2 (low 7 < 8) is no sweep yet.
    b = bars_of(high=[10, 12, 11, 13], low=[9, 8, 7, 9], close=[9.5, 11, 10, 12.5])
    assert sig(run_strategy("sweep_bos", b, {"swing": 1, "window": 5})) == []


# --- the grid -------------------------------------------------------------

def test_grid_order_and_defaults():
    sets = strategy_sets("sma_cross", {"slow": [5, 6], "fast": [1, 2]})
    assert sets == [{"slow": 5, "fast": 1, "direction": "both"},
                    {"slow": 5, "fast": 2, "direction": "both"},
                    {"slow": 6, "fast": 1, "direction": "both"},
                    {"slow": 6, "fast": 2, "direction": "both"}]
    sets = strategy_sets("donchian_breakout", {"direction": ["long", "short"], "lookback": [3, 4]})
    assert [tuple(s.values()) for s in sets] == [("long", 3), ("long", 4), ("short", 3),
                                                 ("short", 4)]
    (rsi,) = strategy_sets("rsi_reversion", {"period": [14], "lower": [30], "upper": [70.5]})
    assert type(rsi["lower"]) is float and type(rsi["period"]) is int


def test_rejected_sets():
    assert is_rejected("sma_cross", {"fast": 5, "slow": 5})
    assert is_rejected("sma_cross", {"fast": 6, "slow": 5})
    assert not is_rejected("sma_cross", {"fast": 4, "slow": 5})
    assert is_rejected("rsi_reversion", {"period": 2, "lower": 70.0, "upper": 70.0})
    assert not is_rejected("rsi_reversion", {"period": 2, "lower": 0.0, "upper": 100.0})
    assert not is_rejected("sweep_bos", {"swing": 1, "window": 1})
    assert not is_rejected(REF + "echo", {"fast": 9, "slow": 1})
    # the grid still lists them (the engine counts and drops them) ...
    assert len(strategy_sets("sma_cross", {"fast": [5, 6], "slow": [5]})) == 2
    # ... and running one is an error.
    with pytest.raises(InvalidParams, match="fast >= slow"):
        run_strategy("sma_cross", bars_of([1, 2, 3]), {"fast": 5, "slow": 5})


G = "$.strategy_grid"
BAD_GRIDS = [
    ("sma_cross", {"fast": [1], "slow": [2], "bogus": [1]}, f"{G}.bogus", "unknown parameter"),
    ("sma_cross", {"fast": 1, "slow": [2]}, f"{G}.fast", "list"),
    ("sma_cross", {"fast": [], "slow": [2]}, f"{G}.fast", "non-empty"),
    ("sma_cross", {"fast": [1, 2, 1], "slow": [2]}, f"{G}.fast[2]", "duplicate"),
    ("sma_cross", {"fast": [1, True], "slow": [2]}, f"{G}.fast[1]", "integer"),
    ("sma_cross", {"fast": [2.0], "slow": [3]}, f"{G}.fast[0]", "integer"),
    ("sma_cross", {"fast": ["3"], "slow": [3]}, f"{G}.fast[0]", "integer"),
    ("sma_cross", {"fast": [1], "slow": [0]}, f"{G}.slow[0]", "within"),
    ("sma_cross", {"fast": [2**31], "slow": [3]}, f"{G}.fast[0]", "within"),
    ("sma_cross", {"fast": [1]}, G, "needs slow"),
    ("rsi_reversion", {"period": [2]}, G, "needs lower, upper"),
    ("rsi_reversion", {"period": [2], "lower": [-1], "upper": [70]}, f"{G}.lower[0]", "within"),
    ("rsi_reversion", {"period": [2], "lower": [1], "upper": [100.5]}, f"{G}.upper[0]", "within"),
    ("rsi_reversion", {"period": [2], "lower": [math.nan], "upper": [7]}, f"{G}.lower[0]",
     "finite"),
    ("rsi_reversion", {"period": [2], "lower": [30, 30.0], "upper": [7]}, f"{G}.lower[1]",
     "duplicate"),
    ("sweep_bos", {"swing": [1], "window": [1], "direction": ["up"]}, f"{G}.direction[0]",
     "long, short, both"),
    ("sweep_bos", {"swing": [1], "window": [1], "direction": ["long", "long"]},
     f"{G}.direction[1]", "duplicate"),
    ("sweep_bos", [1], G, "object"),
    ("nope", {}, "$.strategy", "sma_cross, donchian_breakout, rsi_reversion, sweep_bos"),
    (7, {}, "$.strategy", "unknown strategy"),
    ("no_such_module_xyz:f", {}, "$.strategy", "not found"),
    (REF + "echo", {"a": []}, f"{G}.a", "non-empty"),
    (REF + "echo", {"a": [1, 1.0]}, f"{G}.a[1]", "duplicate"),
    (REF + "echo", {"a": ["x", [1]]}, f"{G}.a[1]", "JSON scalar"),
    (REF + "echo", {"a": [math.inf]}, f"{G}.a[0]", "JSON scalar"),
]


@pytest.mark.parametrize("strategy, grid, path, text", BAD_GRIDS)
def test_grid_errors(strategy, grid, path, text):
    with pytest.raises(InvalidParams, match=text) as info:
        strategy_sets(strategy, grid)
    assert info.value.path == path


def test_plugin_grid_takes_json_scalars():
    sets = strategy_sets(REF + "echo", {"a": [1, True, "1", None, 1.5]}, path="$.x")
    assert [s["a"] for s in sets] == [1, True, "1", None, 1.5]
    assert strategy_sets(REF + "echo", None) == [{}]


def test_check_params_paths():
    assert check_params("sweep_bos", {"swing": 2, "window": 3}) == {
        "swing": 2, "window": 3, "direction": "both"}
    with pytest.raises(InvalidParams) as info:
        check_params("sweep_bos", {"swing": 0, "window": 3})
    assert info.value.path == "$.params.swing"
    with pytest.raises(InvalidParams) as info:
        run_strategy("sweep_bos", bars_of([1.0]), {"swing": 1, "window": 3, "x": 1})
    assert info.value.path == "$.params.x"


# --- plug-ins -------------------------------------------------------------

@pytest.mark.parametrize("spec, text", [
    ("no_such_module_xyz:f", "not found"),
    (REF + "nope", "no attribute 'nope'"),
    (REF + "NOT_CALLABLE", "not callable"),
    ("a:b:c", "package.module:function"),
    ("os.path:", "dotted Python names"),
    (":f", "dotted Python names"),
    (".rel:f", "dotted Python names"),
    ("tests/plugin_strategies.py:echo", "dotted Python names"),
    (None, "package.module:function"),
])
def test_load_plugin_errors(spec, text):
    with pytest.raises(InvalidParams, match=text) as info:
        load_plugin(spec)
    assert info.value.path == "$.strategy"


def test_load_plugin_broken_modules(tmp_path, monkeypatch):
    (tmp_path / "broken_plugin_xyz.py").write_text("raise ValueError('secret')\n")
    (tmp_path / "needs_dep_xyz.py").write_text("import no_such_dep_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(InvalidParams, match=r"failed to import \(ValueError\)") as info:
        load_plugin("broken_plugin_xyz:f", path="$.s")
    assert info.value.path == "$.s" and "secret" not in info.value.message
    with pytest.raises(InvalidParams, match="no module named 'no_such_dep_xyz'"):
        load_plugin("needs_dep_xyz:f")
    sys.modules.pop("needs_dep_xyz", None)


N5 = bars_of([1.0, 2.0, 3.0, 4.0, 5.0])


def run_echo(**out):
    return run_plugin(load_plugin(REF + "echo"), N5, out)


def run_raw(out):
    return run_plugin(load_plugin(REF + "raw"), N5, {"out": out})


def test_plugin_valid_output():
    params = {"index": np.array([0, 4], dtype=np.uint8), "direction": [1.0, -1.0],
              "stop": [0.5, 9.0]}
    got = run_plugin(load_plugin(REF + "echo"), N5, params)
    assert "touched" not in params  # the plug-in had a copy
    assert got.index.dtype == np.int64 and got.direction.dtype == np.int64
    assert sig(got) == [(0, 1, 0.5), (4, -1, 9.0)]
    assert sig(run_echo(index=[2], direction=[-1])) == [(2, -1, None)]  # no stop: NaN
    assert sig(run_raw({"index": [1], "direction": [1], "stop": None})) == [(1, 1, None)]
    assert sig(run_raw({"index": [], "direction": []})) == []
    assert sig(run_strategy(REF + "echo", N5, {"index": [3], "direction": [1]})) == [(3, 1, None)]


@pytest.mark.parametrize("out, rule, position", [
    ([1, 2], "output", None),
    ({"index": [1]}, "output", None),
    ({"index": [1], "direction": [1], "stops": [1.0]}, "output", None),
    ({"index": [1, 2], "direction": [1]}, "length", None),
    ({"index": [1], "direction": [1], "stop": [1.0, 2.0]}, "length", None),
    ({"index": [1.0], "direction": [1]}, "dtype", None),
    ({"index": [None], "direction": [1]}, "dtype", None),
    ({"index": [1], "direction": [True]}, "dtype", None),
    ({"index": [[1]], "direction": [[1]]}, "array", None),
    ({"index": 1, "direction": 1}, "array", None),
    ({"index": [0, -1], "direction": [1, 1]}, "index_range", 1),
    ({"index": [0, 5], "direction": [1, 1]}, "index_range", 1),
    ({"index": [0, 2, 2], "direction": [1, 1, 1]}, "index_order", 2),
    ({"index": [3, 1], "direction": [1, 1]}, "index_order", 1),
    ({"index": [1, 2], "direction": [1, 0]}, "direction", 1),
    ({"index": [1], "direction": [2]}, "direction", 0),
    ({"index": [1, 2], "direction": [1, 1], "stop": [1.0, math.nan]}, "stop", 1),
    ({"index": [1], "direction": [1], "stop": [math.inf]}, "stop", 0),
    ({"index": [1], "direction": [1], "stop": [0.0]}, "stop", 0),
    ({"index": [1], "direction": [1], "stop": [-2.0]}, "stop", 0),
])
def test_plugin_bad_output(out, rule, position):
    with pytest.raises(SignalError) as info:
        run_raw(out)
    assert info.value.rule == rule and info.value.position == position


def test_plugin_exceptions():
    with pytest.raises(SignalError, match="RuntimeError: boom") as info:
        run_plugin(load_plugin(REF + "raises"), N5, {})
    assert info.value.rule == "exception"
    close = N5.close.copy()
    with pytest.raises(SignalError, match="ValueError"):
        run_plugin(load_plugin(REF + "writes"), N5, {})
    assert np.array_equal(N5.close, close)
    view = plugin_bars(N5)
    assert plugin_bars(view) is view and not view.close.flags.writeable


# --- each built-in against its plain-loop reading ---------------------------

PROPERTY = settings(max_examples=150, deadline=None)


@st.composite
def random_bars(draw):
    """Seeded random bars; coarse prices make ties (equal averages, equal
    lows) common, fine ones exercise rounding."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n = draw(st.integers(0, 60))
    if draw(st.booleans()):
        close = 20 + np.cumsum(rng.integers(-2, 3, n)) / 4
        wick = rng.integers(0, 3, (2, n)) / 4
    else:
        close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
        wick = rng.exponential(0.3, (2, n))
    close = np.maximum(close, 0.25)
    open_ = np.concatenate([close[:1], close[:-1]])
    high = np.maximum(open_, close) + wick[0]
    low = np.maximum(np.minimum(open_, close) - wick[1], 0.125)
    return bars_of(close, high, low)


directions = st.sampled_from(["both", "long", "short"])
thresholds = st.one_of(st.sampled_from([0.0, 20.0, 30.0, 50.0, 70.0, 100.0]),
                       st.floats(0, 100))


def same(strategy, bars, params):
    got = run_strategy(strategy, bars, params)
    want = run_strategy(REF + strategy, bars, params)
    for a, b in zip(got, want, strict=True):
        np.testing.assert_array_equal(a, b)


@PROPERTY
@given(random_bars(), st.integers(1, 8), st.integers(1, 8), directions)
def test_sma_cross_matches_reference(bars, fast, slow, direction):
    if fast < slow:
        same("sma_cross", bars, {"fast": fast, "slow": slow, "direction": direction})


@PROPERTY
@given(random_bars(), st.integers(1, 8), directions)
def test_donchian_matches_reference(bars, lookback, direction):
    same("donchian_breakout", bars, {"lookback": lookback, "direction": direction})


@PROPERTY
@given(random_bars(), st.integers(1, 6), thresholds, thresholds, directions)
def test_rsi_matches_reference(bars, period, lower, upper, direction):
    if lower < upper:
        same("rsi_reversion", bars, {"period": period, "lower": lower, "upper": upper,
                                     "direction": direction})


@PROPERTY
@given(random_bars(), st.integers(1, 3), st.integers(1, 6), directions)
def test_sweep_bos_matches_reference(bars, swing, window, direction):
    same("sweep_bos", bars, {"swing": swing, "window": window, "direction": direction})
