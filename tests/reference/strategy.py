"""Reference of SPEC section 13 (strategies on bars), written from the SPEC
alone: resampling, the four built-in strategies, signals -> calls, the search.
The simulation of strategy calls (exits in R, long and short) is in
``strategy_exits``; metrics, ranking and constraints are the reference's own
(``simulator``, ``optimizer``).  Slow and obvious on purpose: plain loops,
plain floats, no numpy.

Rows: ``(ts_ms, open, high, low, close, volume)`` tuples of one symbol,
strictly increasing (a 5-tuple without volume counts as volume 0).

Decisions where SPEC 13 is silent or ambiguous (the worker must agree):

 1. Timeframe strings: ``<n>m|h|d`` with ``n`` a positive decimal integer
    without sign, spaces or leading zeros, lower-case unit; m = 60_000 ms,
    h = 3_600_000, d = 86_400_000.  Anything else is invalid.
 2. Base interval: most common gap, smallest on a tie; 0 for fewer than two
    bars (such a symbol accepts every timeframe).  Only the SELECTED symbols
    constrain the timeframes.
 3. A call's id is ``<symbol>:<tf>:<i>`` with ``tf`` the timeframe string as
    the request gave it and ``i`` the index into the RESAMPLED bars.
 4. ``direction`` is a pure filter on the strategy's output: the signals are
    computed for both directions (including sweep_bos's rule that a bar
    giving both gives neither and clears both pending sweeps) and then
    "long" keeps +1, "short" keeps -1.  So long + short == both, always.
 5. sweep_bos, per bar b in increasing order: (a) a pending sweep s with
    b > s + window is dropped; (b) each remaining pending sweep is tested
    (close[b] > H for long, H the latest swing high known at b; close[b] < L
    for short); one that signals is consumed; if both signal, neither is
    emitted and both are cleared; (c) then b may become the new pending long
    and/or short sweep (replacing the old), also when b just signalled.  A
    swing point p needs its `swing` neighbours on both sides to exist
    (p - swing >= 0, p + swing <= last); "latest known at b" = the largest
    such p with p + swing + 1 <= b.  No known swing: no sweep / no signal.
 6. A rejected set (sma_cross fast >= slow, rsi lower >= upper) makes
    ``signals`` / ``strategy_calls`` raise ValueError (callers check
    ``rejected`` first); the search leaves it out and counts it.
 7. Strategy parameters: every required one must be given, no unknown ones
    (``direction`` is optional, default "both"); integers are int (not bool,
    not float) >= 1; RSI thresholds are int or float in [0, 100].
 8. Exit parameters (grid keys, each a list) and their defaults when the
    exit grid leaves one out: tp_r [2.0], sl_pct [0.02], max_hold_hrs
    [config max_trade_horizon_hrs], trail_r [null], breakeven_r [null],
    entry_delay_candles [0].  Only trail_r and breakeven_r may hold null;
    empty lists and duplicates are errors; any other key (tp_mults,
    trail_pct, entry_dip_pct, ...) is invalid.  ``simulate_strategy`` takes
    the same keys as single values with the same defaults.
 9. A point's flat params: ``timeframe``, then the strategy_grid keys in the
    order given (``direction`` only when the grid names it), then tp_r,
    sl_pct, max_hold_hrs always, then trail_r, breakeven_r,
    entry_delay_candles only when they differ from off/0 (as section 11's
    grid points do).
10. ``index`` counts the points that remain after rejected sets are left
    out (0, 1, ... in grid order); ties in ranking go to the lower index.
11. ``signals`` lists the evaluated (not rejected) sets in grid order, each
    ``{timeframe, params (the strategy params of the set), long, short}``,
    counts summed over the selected symbols.
12. ``symbols``: None = every symbol of ``bars``; an unknown or repeated
    name is invalid; the timeframe list must be non-empty without repeats;
    every strategy_grid value must be a non-empty list without repeats.
13. Calls are simulated in the order given, stably sorted by ts_ms
    (strategy_calls already yields SPEC 13's order).
14. Skip counters: capital {max_positions, no_entry, no_fill (always 0),
    bad_stop, below_min_size}; per-trade {no_entry, no_fill, bad_stop}.
    A stop equal to the entry price is bad_stop.
15. ``sharpe`` uses SPEC 12's r with the trade's own direction.
16. Trade records (include_trades): section 4's fields plus entry_kind
    ("market"), symbol and direction; per-trade mode's record has size 1 and
    pnl = ret (as the existing reference does).
"""

import re

from .optimizer import check_constraints, check_objective, is_feasible, rank_key
from .strategy_exits import (  # noqa: F401  (re-exported)
    EXIT_DEFAULTS,
    EXIT_KEYS,
    NULLABLE_EXIT_KEYS,
    full_exit_params,
    simulate_strategy,
    strategy_config,
)

TS, OPEN, HIGH, LOW, CLOSE = 0, 1, 2, 3, 4

UNIT_MS = {"m": 60_000, "h": 3_600_000, "d": 86_400_000}


# --------------------------------------------------------------------------
# Bars and timeframes
# --------------------------------------------------------------------------

def parse_timeframe(tf):
    if not isinstance(tf, str):
        raise ValueError("timeframe must be a string like '1h'")
    m = re.fullmatch(r"([1-9][0-9]*)([mhd])", tf)
    if m is None:
        raise ValueError("bad timeframe %r" % (tf,))
    return int(m.group(1)) * UNIT_MS[m.group(2)]


def base_interval(rows):
    counts = {}
    for a, b in zip(rows, rows[1:]):
        gap = b[TS] - a[TS]
        counts[gap] = counts.get(gap, 0) + 1
    if not counts:
        return 0
    top = max(counts.values())
    return min(gap for gap, n in counts.items() if n == top)


def resample(rows, tf_ms):
    """Bars of timeframe tf_ms: bucket floor(ts / tf) * tf (Python's //),
    open of its first base bar, highest high, lowest low, close of its last,
    summed volume (left to right).  Empty buckets have no bar."""
    out = []
    cur = None
    for row in rows:
        ts, o, h, l, c = row[TS], row[OPEN], row[HIGH], row[LOW], row[CLOSE]
        v = row[5] if len(row) > 5 else 0.0
        bucket = (ts // tf_ms) * tf_ms
        if cur is not None and cur[0] == bucket:
            cur[2] = max(cur[2], h)
            cur[3] = min(cur[3], l)
            cur[4] = c
            cur[5] = cur[5] + v
        else:
            if cur is not None:
                out.append(tuple(cur))
            cur = [bucket, o, h, l, c, v]
    if cur is not None:
        out.append(tuple(cur))
    return out


# --------------------------------------------------------------------------
# Strategy parameters
# --------------------------------------------------------------------------

STRATEGIES = {
    "sma_cross": ("fast", "slow"),
    "donchian_breakout": ("lookback",),
    "rsi_reversion": ("period", "lower", "upper"),
    "sweep_bos": ("swing", "window"),
}
THRESHOLDS = ("lower", "upper")
DIRECTIONS = ("long", "short", "both")


def _is_int(x):
    return isinstance(x, int) and not isinstance(x, bool)


def _is_number(x):
    return (isinstance(x, (int, float)) and not isinstance(x, bool)
            and x == x and x not in (float("inf"), float("-inf")))


def check_params(strategy, params):
    """Raise ValueError for invalid strategy parameters (decision 7)."""
    if strategy not in STRATEGIES:
        raise ValueError("unknown strategy %r" % (strategy,))
    required = STRATEGIES[strategy]
    for key in params:
        if key not in required and key != "direction":
            raise ValueError("unknown parameter %r of %s" % (key, strategy))
    for key in required:
        if key not in params:
            raise ValueError("missing parameter %r of %s" % (key, strategy))
        value = params[key]
        if key in THRESHOLDS:
            if not _is_number(value) or not 0 <= value <= 100:
                raise ValueError("%s must be a number in [0, 100]" % key)
        elif not _is_int(value) or value < 1:
            raise ValueError("%s must be an integer >= 1" % key)
    if params.get("direction", "both") not in DIRECTIONS:
        raise ValueError("direction must be 'long', 'short' or 'both'")


def rejected(strategy, params):
    """True for combinations the strategy cannot run (fast >= slow,
    lower >= upper); invalid parameters raise ValueError."""
    check_params(strategy, params)
    if strategy == "sma_cross":
        return params["fast"] >= params["slow"]
    if strategy == "rsi_reversion":
        return params["lower"] >= params["upper"]
    return False


# --------------------------------------------------------------------------
# The four built-in strategies: lists of (i, dir, stop or None)
# --------------------------------------------------------------------------

def _sma(close, n, i):
    if i - n + 1 < 0:
        return None
    total = 0.0
    for k in range(i - n + 1, i + 1):
        total += close[k]
    return total / n


def _sma_state(close, fast, slow, i):
    """+1 fast above slow, -1 below, 0 neither; None when undefined."""
    f = _sma(close, fast, i)
    s = _sma(close, slow, i)
    if f is None or s is None:
        return None
    if f - s > 1e-12 * s:
        return 1
    if f - s < -1e-12 * s:
        return -1
    return 0


def sma_cross(rows, fast, slow):
    close = [r[CLOSE] for r in rows]
    out = []
    for i in range(1, len(rows)):
        before = _sma_state(close, fast, slow, i - 1)
        now = _sma_state(close, fast, slow, i)
        if before is None or now is None:
            continue
        if before != 1 and now == 1:
            out.append((i, 1, None))
        elif before != -1 and now == -1:
            out.append((i, -1, None))
    return out


def donchian_breakout(rows, lookback):
    out = []
    for i in range(lookback, len(rows)):
        highs = [r[HIGH] for r in rows[i - lookback:i]]
        lows = [r[LOW] for r in rows[i - lookback:i]]
        close = rows[i][CLOSE]
        if close > max(highs):
            out.append((i, 1, min(lows)))
        elif close < min(lows):
            out.append((i, -1, max(highs)))
    return out


def wilder_rsi(close, period):
    """rsi[i] for i >= period (None before)."""
    n = len(close)
    rsi = [None] * n
    if n <= period:
        return rsi

    def value(gain, loss):
        if loss == 0:
            return 50.0 if gain == 0 else 100.0
        return 100 - 100 / (1 + gain / loss)

    gain_sum = 0.0
    loss_sum = 0.0
    for k in range(1, period + 1):
        change = close[k] - close[k - 1]
        gain_sum += change if change > 0 else 0.0
        loss_sum += -change if change < 0 else 0.0
    avg_gain = gain_sum / period
    avg_loss = loss_sum / period
    rsi[period] = value(avg_gain, avg_loss)
    for k in range(period + 1, n):
        change = close[k] - close[k - 1]
        gain = change if change > 0 else 0.0
        loss = -change if change < 0 else 0.0
        avg_gain = (avg_gain * (period - 1) + gain) / period
        avg_loss = (avg_loss * (period - 1) + loss) / period
        rsi[k] = value(avg_gain, avg_loss)
    return rsi


def rsi_reversion(rows, period, lower, upper):
    rsi = wilder_rsi([r[CLOSE] for r in rows], period)
    out = []
    for i in range(1, len(rows)):
        a, b = rsi[i - 1], rsi[i]
        if a is None or b is None:
            continue
        if a < lower <= b:
            out.append((i, 1, None))
        elif a > upper >= b:
            out.append((i, -1, None))
    return out


def swing_points(values, swing, low):
    """Indices p of swing lows (low=True) or highs: strictly beyond each of
    the `swing` values before, at least as far as each of the `swing` after."""
    out = []
    for p in range(swing, len(values) - swing):
        v = values[p]
        before = values[p - swing:p]
        after = values[p + 1:p + swing + 1]
        if low:
            ok = all(v < x for x in before) and all(v <= x for x in after)
        else:
            ok = all(v > x for x in before) and all(v >= x for x in after)
        if ok:
            out.append(p)
    return out


def _latest_known(points, values, swing, b):
    """The value at the latest swing point known at bar b, else None."""
    level = None
    for p in points:
        if p + swing + 1 <= b:
            level = values[p]
    return level


def sweep_bos(rows, swing, window):
    highs = [r[HIGH] for r in rows]
    lows = [r[LOW] for r in rows]
    closes = [r[CLOSE] for r in rows]
    swing_lows = swing_points(lows, swing, True)
    swing_highs = swing_points(highs, swing, False)
    out = []
    long_s = None  # pending long sweep bar
    short_s = None
    for b in range(len(rows)):
        L = _latest_known(swing_lows, lows, swing, b)
        H = _latest_known(swing_highs, highs, swing, b)
        if long_s is not None and b > long_s + window:
            long_s = None
        if short_s is not None and b > short_s + window:
            short_s = None
        long_sig = None
        short_sig = None
        if long_s is not None and H is not None and closes[b] > H:
            long_sig = (b, 1, min(lows[long_s:b + 1]))
        if short_s is not None and L is not None and closes[b] < L:
            short_sig = (b, -1, max(highs[short_s:b + 1]))
        if long_sig is not None and short_sig is not None:
            long_s = None
            short_s = None
        elif long_sig is not None:
            out.append(long_sig)
            long_s = None
        elif short_sig is not None:
            out.append(short_sig)
            short_s = None
        if L is not None and lows[b] < L and closes[b] > L:
            long_s = b
        if H is not None and highs[b] > H and closes[b] < H:
            short_s = b
    return out


def signals(strategy, rows, params):
    """[(i, dir, stop or None)] on ``rows`` (the strategy's timeframe)."""
    if rejected(strategy, params):
        raise ValueError("rejected parameter set for %s: %r" % (strategy, params))
    if strategy == "sma_cross":
        out = sma_cross(rows, params["fast"], params["slow"])
    elif strategy == "donchian_breakout":
        out = donchian_breakout(rows, params["lookback"])
    elif strategy == "rsi_reversion":
        out = rsi_reversion(rows, params["period"], params["lower"], params["upper"])
    else:
        out = sweep_bos(rows, params["swing"], params["window"])
    direction = params.get("direction", "both")
    if direction == "long":
        out = [s for s in out if s[1] == 1]
    elif direction == "short":
        out = [s for s in out if s[1] == -1]
    return out


# --------------------------------------------------------------------------
# Signals -> calls
# --------------------------------------------------------------------------

def check_timeframe(bars, tf):
    tf_ms = parse_timeframe(tf)
    for symbol, rows in bars.items():
        base = base_interval(rows)
        if base and tf_ms % base != 0:
            raise ValueError("timeframe %s is not a multiple of %s's base interval %d ms"
                             % (tf, symbol, base))
    return tf_ms


def strategy_calls(bars, strategy, params, tf):
    tf_ms = check_timeframe(bars, tf)
    keyed = []
    for symbol, rows in bars.items():
        tf_rows = resample(rows, tf_ms)
        for i, d, stop in signals(strategy, tf_rows, params):
            ts = tf_rows[i][TS] + tf_ms
            call = {"id": "%s:%s:%d" % (symbol, tf, i), "caller": symbol,
                    "symbol": symbol, "ts_ms": ts, "dir": d, "stop": stop}
            keyed.append(((ts, symbol.encode("utf-8"), i), call))
    keyed.sort(key=lambda pair: pair[0])
    return [call for _, call in keyed]


# --------------------------------------------------------------------------
# The search
# --------------------------------------------------------------------------

def _check_list(name, values, nullable=False):
    if not isinstance(values, list) or not values:
        raise ValueError("%s must be a non-empty list" % name)
    if not nullable and any(v is None for v in values):
        raise ValueError("null is not allowed in %s" % name)
    if len(set(values)) != len(values):
        raise ValueError("duplicate values in %s" % name)


def _product(keys_values):
    points = [{}]
    for key, values in keys_values:  # outermost first: later keys vary fastest
        points = [dict(p, **{key: v}) for p in points for v in values]
    return points


def exit_points(param_grid, cfg):
    """Exit parameter sets in grid order, as reported (decisions 8 and 9)."""
    param_grid = param_grid or {}
    for key in param_grid:
        if key not in EXIT_KEYS:
            raise ValueError("%r is not an exit grid key of a strategy" % key)
    dims = []
    for key in EXIT_KEYS:
        values = param_grid.get(key)
        if values is None:
            default = EXIT_DEFAULTS[key]
            if key == "max_hold_hrs":
                default = cfg["max_trade_horizon_hrs"]
            values = [default]
        _check_list(key, values, key in NULLABLE_EXIT_KEYS)
        dims.append((key, values))
    out = []
    for p in _product(dims):
        full_exit_params(p, cfg)  # value checks
        shown = {"tp_r": p["tp_r"], "sl_pct": p["sl_pct"], "max_hold_hrs": p["max_hold_hrs"]}
        for key in ("trail_r", "breakeven_r", "entry_delay_candles"):
            if p[key] != EXIT_DEFAULTS[key]:
                shown[key] = p[key]
        out.append(shown)
    return out


def optimize_strategy(bars, strategy, strategy_grid, timeframes, param_grid, config,
                      mode="capital", symbols=None, objective=None, minimize=False,
                      constraints=None):
    objective = check_objective(mode, objective)
    constraints = check_constraints(mode, constraints)
    cfg = strategy_config(config)
    if symbols is None:
        symbols = list(bars)
    _check_list("symbols", symbols)
    for s in symbols:
        if s not in bars:
            raise ValueError("unknown symbol %r" % (s,))
    chosen = {s: bars[s] for s in symbols}
    _check_list("timeframes", timeframes)
    for tf in timeframes:
        check_timeframe(chosen, tf)
    strategy_grid = strategy_grid or {}
    for key, values in strategy_grid.items():
        _check_list(key, values)
    strategy_sets = _product(list(strategy_grid.items()))
    flags = [rejected(strategy, sp) for sp in strategy_sets]  # validates all first
    exits = exit_points(param_grid, cfg)

    points = []
    signal_rows = []
    n_rejected = 0
    for tf in timeframes:
        for sp, is_rejected in zip(strategy_sets, flags):
            if is_rejected:
                n_rejected += 1
                continue
            calls = strategy_calls(chosen, strategy, sp, tf)
            signal_rows.append({
                "timeframe": tf, "params": dict(sp),
                "long": sum(1 for c in calls if c["dir"] == 1),
                "short": sum(1 for c in calls if c["dir"] == -1),
            })
            for ep in exits:
                metrics = simulate_strategy(chosen, calls, ep, config, mode)
                params = {"timeframe": tf}
                params.update(sp)
                params.update(ep)
                points.append({
                    "index": len(points),
                    "params": params,
                    "metrics": metrics,
                    "feasible": is_feasible(mode, metrics, constraints),
                    "rank": None,
                })

    ordered = sorted(points, key=lambda p: rank_key(p, objective, minimize))
    for position, point in enumerate(ordered):
        point["rank"] = position + 1
    best = ordered[0]["index"] if ordered and ordered[0]["feasible"] else None
    return {
        "points": points,
        "ranking": [p["index"] for p in ordered],
        "best": best,
        "signal_sets": {"evaluated": len(signal_rows), "rejected": n_rejected},
        "signals": signal_rows,
    }
