"""Hypothesis strategies for random datasets built to hit the edges of SPEC
sections 2-6: calls in the same millisecond, calls exactly at candle times
(so exits land exactly on a later call's time), prices on the grid's own
levels (so TP and SL are reached exactly, and both in one candle), entry on
the last candle, missing series, series that start after or end before the
alert, series shared by several calls (mint key), saturation of
max_concurrent_positions and sizes under min_executable_size.
"""

from __future__ import annotations

from hypothesis import strategies as st

MIN = 60_000
# Prices on (and next to) the levels the grids use, relative to entry 1.0.
PRICES = [0.4, 0.5, 0.8, 0.85, 0.88, 0.9, 0.95, 1.0, 1.05, 1.2, 1.5, 2.0, 2.5, 3.0, 5.0]
TP_LEVELS = [1.2, 1.5, 2.0, 2.5, 3.0]
SL_LEVELS = [0.5, 0.8, 0.85, 0.9, 0.95]
HOLD_LEVELS = [1 / 60, 2 / 60, 0.05, 0.1, 1.0, 48.0]  # 1 min, 2 min, 3 min, 6 min, 1 h, 48 h
CALLERS = ["alice", "bob", "carol"]
MINTS = ["m0", "m1", "m2"]


@st.composite
def candles(draw, start_ms: int, max_len: int = 10):
    n = draw(st.integers(0, max_len))
    rows = []
    t = start_ms
    scale = draw(st.sampled_from([1.0, 1e-6, 3.7]))
    for _ in range(n):
        o, c, hi, lo = (draw(st.sampled_from(PRICES)) for _ in range(4))
        hi, lo = max(o, c, hi), min(o, c, lo)
        rows.append((t, o * scale, hi * scale, lo * scale, c * scale))
        t += draw(st.sampled_from([MIN, MIN, MIN, 1, 2 * MIN]))
    return rows


@st.composite
def datasets(draw):
    """(calls, series, series_key): the reference's input shape."""
    series_key = draw(st.sampled_from(["call_id", "mint"]))
    n_calls = draw(st.integers(1, 10))
    base = 1_700_000_000_000
    keys = MINTS if series_key == "mint" else [f"c{i}" for i in range(n_calls)]
    series = {}
    for key in keys:
        if draw(st.booleans()) or draw(st.booleans()):  # most keys have a series
            offset = draw(st.sampled_from([0, MIN, 3 * MIN, 7 * MIN]))
            series[key] = draw(candles(base + offset))
    times = sorted({t for rows in series.values() for t, *_ in rows}) or [base]
    calls = []
    for i in range(n_calls):
        anchor = draw(st.sampled_from(times))
        ts = anchor + draw(st.sampled_from([0, 0, 0, 1, -1, -5 * MIN, 30 * MIN]))
        calls.append({"id": f"c{i}", "caller": draw(st.sampled_from(CALLERS)),
                      "mint": draw(st.sampled_from(MINTS)), "ts_ms": ts})
    return calls, series, series_key


CONFIG_CHOICES = {
    "initial_capital": st.sampled_from([10_000.0, 1_000.0, 500.0]),
    "max_allocation_pct": st.sampled_from([0.04, 0.3, 1.0]),
    "max_risk_per_trade": st.sampled_from([200.0, 50.0, 5_000.0]),
    "max_concurrent_positions": st.integers(1, 4),
    "max_trade_horizon_hrs": st.sampled_from(HOLD_LEVELS),
    "min_executable_size": st.sampled_from([10.0, 0.0, 150.0, 400.0]),
    "taker_fee_bps": st.sampled_from([30.0, 0.0]),
    "slippage_bps": st.sampled_from([10.0, 0.0]),
    "intrabar": st.sampled_from(["tp_first", "sl_first"]),
}
configs = st.fixed_dictionaries({}, optional=CONFIG_CHOICES)

grids = st.fixed_dictionaries({
    "tp_mults": st.lists(st.sampled_from(TP_LEVELS), min_size=1, max_size=3, unique=True),
    "sl_mults": st.lists(st.sampled_from(SL_LEVELS), min_size=1, max_size=3, unique=True),
}, optional={"max_hold_hrs": st.lists(st.sampled_from(HOLD_LEVELS), min_size=1, max_size=3,
                                      unique=True)})

constraints = st.fixed_dictionaries({}, optional={
    "min_trades": st.integers(0, 4),
    "min_win_rate": st.sampled_from([0.0, 0.5, 1.0]),
    "max_drawdown": st.sampled_from([0.0, 0.01, 0.5]),
})

single_params = st.fixed_dictionaries({
    "tp_mult": st.sampled_from(TP_LEVELS),
    "sl_mult": st.sampled_from(SL_LEVELS),
}, optional={"max_hold_hrs": st.sampled_from(HOLD_LEVELS)})


# --------------------------------------------------------------------------
# SPEC 11: trailing stops, breakeven, delayed and limit entries, gap fills.
#
# Prices are mostly dyadic (exact in binary), on the levels the SPEC 11
# strategies below use relative to an entry of 1.0, so that a trail lands
# exactly on the stop loss or on the breakeven level, a limit exactly on a
# low, and an open exactly on a target or a stop.  Entries are biased to 1.0
# (most candles close there) so the levels line up often.
# --------------------------------------------------------------------------

PRICES11 = [0.25, 0.5, 0.5625, 0.75, 0.875, 0.9, 0.9375, 1.0, 1.125, 1.25, 1.5, 1.75, 2.0,
            2.5, 3.0, 4.0]
TP_LEVELS11 = [1.25, 1.5, 2.0, 3.0, 4.0]
SL_LEVELS11 = [0.5, 0.75, 0.875, 0.9]
TRAIL_LEVELS = [0.0625, 0.1, 0.25, 0.5]           # from peak 1.0/1.5/2.0: 0.75, 1.125, 1.0, ...
ACTIVATION_LEVELS = [1.0, 1.25, 1.5, 2.0]
TRIGGER_LEVELS = [1.25, 1.5, 2.0]                 # trigger - 1 is exact: 0.25, 0.5, 1.0
OFFSET_LEVELS = [0.0, 0.125, 0.1]                 # every one < min(trigger) - 1 = 0.25
DELAY_LEVELS = [0, 0, 0, 1, 2, 3, 12]             # 12: past the end of every series
DIP_LEVELS = [0.0, 0.125, 0.25, 0.5, 0.1]         # limits 0.875, 0.75, 0.5, 0.9 of a 1.0 close
WAIT_LEVELS = [0.5, 1.0, 2.0, 2.5, 60.0, 1 / 3]   # 30 s .. 1 h; 1/3 min: int(19999.99..) or 20000
SCALES11 = [1.0, 1.0, 1.0, 0.25, 1e-6, 3.7]


@st.composite
def candles11(draw, start_ms: int, max_len: int = 10):
    """A series whose candles close at 1.0 half of the time, with highs and lows
    on the SPEC 11 levels and opens that gap (drawn independently of the
    previous close, often exactly on a level)."""
    n = draw(st.integers(0, max_len) if draw(st.integers(0, 9)) == 0
             else st.integers(max(1, max_len // 2), max_len))
    rows = []
    t = start_ms
    scale = draw(st.sampled_from(SCALES11))
    price = st.sampled_from(PRICES11)
    for _ in range(n):
        c = draw(st.sampled_from([1.0, 1.0]) | price)
        o = draw(st.sampled_from([1.0, c]) | price)
        hi = max(o, c, draw(price))
        lo = min(o, c, draw(price))
        rows.append((t, o * scale, hi * scale, lo * scale, c * scale))
        t += draw(st.sampled_from([MIN, MIN, MIN, 1, 2 * MIN, 30_000]))
    return rows


@st.composite
def pump_dump_candles(draw, start_ms: int):
    """Entry at 1.0, a pump (highs on the trigger/activation levels, lows
    staying up), then a crash candle whose open is on (or through) the
    level a trail or breakeven armed by the pump would sit at, then maybe
    more: the candle before the crash arms breakeven / the trail, and the
    crash candle's own high must not."""
    scale = draw(st.sampled_from(SCALES11))
    rows = [(1.0, 1.0, 1.0, 1.0)]
    for _ in range(draw(st.integers(0, 3))):
        hi = draw(st.sampled_from([1.0, 1.125, 1.25, 1.5, 2.0, 3.0]))
        lo = draw(st.sampled_from([1.0, 0.9375, 0.875, 0.75]))
        c = draw(st.sampled_from([hi, lo, 1.0]))
        o = draw(st.sampled_from([1.0, c, hi]))
        rows.append((o, max(o, c, hi), min(o, c, lo), c))
    o = draw(st.sampled_from([0.25, 0.5, 0.75, 0.875, 0.9375, 1.0, 1.125, 1.5, 2.0, 4.0]))
    hi = max(o, draw(st.sampled_from([1.0, 1.5, 2.0, 4.0])))
    c = draw(st.sampled_from([0.25, 0.5, 1.0]))
    lo = min(o, c, draw(st.sampled_from([0.25, 0.5, 0.75, 1.0])))
    rows.append((o, max(hi, c), lo, c))
    for _ in range(draw(st.integers(0, 3))):
        px = draw(st.sampled_from([0.5, 1.0, 1.5]))
        rows.append((px, px, px, px))
    out, t = [], start_ms
    for o, hi, lo, c in rows:
        out.append((t, o * scale, hi * scale, lo * scale, c * scale))
        t += draw(st.sampled_from([MIN, MIN, 30_000]))
    return out


@st.composite
def datasets11(draw):
    """(calls, series, series_key) for SPEC 11: several calls on one series
    (mint key) and calls at, or one millisecond either side of, a candle
    time, an earlier call's limit expiry (ts + 30 s, 1, 2, 2.5 min, 1 h) or
    an earlier exit, so later calls see cash and slots held by unfilled
    limit orders being given back (or not yet)."""
    series_key = draw(st.sampled_from(["call_id", "mint", "mint"]))
    n_calls = draw(st.integers(1, 12))
    base = 1_700_000_000_000
    keys = MINTS if series_key == "mint" else [f"c{i}" for i in range(n_calls)]
    series = {}
    for key in keys:
        if draw(st.booleans()) or draw(st.booleans()) or draw(st.booleans()):
            offset = draw(st.sampled_from([0, 0, MIN, 3 * MIN]))
            if draw(st.integers(0, 2)) == 0:
                series[key] = draw(pump_dump_candles(base + offset))
            else:
                series[key] = draw(candles11(base + offset,
                                             max_len=draw(st.sampled_from([4, 8, 12]))))
    times = sorted({t for rows in series.values() for t, *_ in rows}) or [base]
    calls = []
    for i in range(n_calls):
        mint = draw(st.sampled_from(MINTS))
        own = series.get(mint if series_key == "mint" else f"c{i}") or []
        if calls and draw(st.integers(0, 2)) == 0:
            # Relative to an earlier call: at/around its limit order's expiry.
            earlier = draw(st.sampled_from([c["ts_ms"] for c in calls]))
            anchor = earlier + draw(st.sampled_from([0, 30_000, MIN, MIN, 2 * MIN, 150_000,
                                                     60 * MIN]))
        elif own and draw(st.integers(0, 3)) > 0:
            anchor = draw(st.sampled_from([row[0] for row in own[:4]]))  # early in its series
        else:
            anchor = draw(st.sampled_from(times))
        ts = anchor + draw(st.sampled_from([0, 0, 0, 0, 1, -1, -30_000, 5 * MIN]))
        calls.append({"id": f"c{i}", "caller": draw(st.sampled_from(CALLERS)),
                      "mint": mint, "ts_ms": ts})
    return calls, series, series_key


configs11 = st.fixed_dictionaries({}, optional={
    **CONFIG_CHOICES,
    "max_allocation_pct": st.sampled_from([0.04, 0.3, 0.5, 1.0]),
    "gap_fill": st.sampled_from(["level", "open"]),
})


@st.composite
def _breakeven(draw):
    """(trigger, offset) with offset < trigger - 1 (trigger None: any offset)."""
    trigger = draw(st.sampled_from([None] + TRIGGER_LEVELS))
    offset = draw(st.sampled_from(OFFSET_LEVELS))
    if trigger is not None and trigger == 1.25 and draw(st.booleans()):
        offset = 0.1875  # close under trigger - 1 = 0.25
    return trigger, offset


@st.composite
def single_params11(draw):
    """One parameter set with any subset of SPEC 11's parameters given (each
    either on an edge level or explicitly at its default)."""
    p = {"tp_mult": draw(st.sampled_from(TP_LEVELS11)),
         "sl_mult": draw(st.sampled_from(SL_LEVELS11))}
    if draw(st.booleans()):
        p["max_hold_hrs"] = draw(st.sampled_from(HOLD_LEVELS))
    trigger, offset = draw(_breakeven())
    options = {
        "trail_pct": draw(st.sampled_from([None] + TRAIL_LEVELS)),
        "trail_activation": draw(st.sampled_from([1.0] + ACTIVATION_LEVELS)),
        "breakeven_trigger": trigger,
        "breakeven_offset": offset,
        "entry_delay_candles": draw(st.sampled_from(DELAY_LEVELS)),
        "entry_dip_pct": draw(st.sampled_from(DIP_LEVELS)),
        "entry_max_wait_min": draw(st.sampled_from(WAIT_LEVELS)),
    }
    for name, value in options.items():
        # Exits mostly given; entries (which may skip the call) half the time.
        if draw(st.integers(0, 3)) > (1 if name.startswith("entry_") else 0):
            p[name] = value
    return p


_DIM_VALUES = {
    "trail_pct": [None] + TRAIL_LEVELS,
    "trail_activation": ACTIVATION_LEVELS,
    "breakeven_trigger": [None] + TRIGGER_LEVELS,
    "breakeven_offset": OFFSET_LEVELS,
    "entry_delay_candles": DELAY_LEVELS,
    "entry_dip_pct": DIP_LEVELS,
    "entry_max_wait_min": WAIT_LEVELS,
}


@st.composite
def grids11(draw, max_dims: int = 3):
    """A grid with up to ``max_dims`` SPEC 11 dimensions (1-3 values each, in
    the order SPEC 11 lists them), so grids stay small (<= 2 x 2 x 1 x 27)."""
    grid = {
        "tp_mults": draw(st.lists(st.sampled_from(TP_LEVELS11), min_size=1, max_size=2, unique=True)),
        "sl_mults": draw(st.lists(st.sampled_from(SL_LEVELS11), min_size=1, max_size=2, unique=True)),
    }
    if draw(st.booleans()):
        grid["max_hold_hrs"] = [draw(st.sampled_from(HOLD_LEVELS))]
    names = draw(st.lists(st.sampled_from(list(_DIM_VALUES)), max_size=max_dims, unique=True))
    for name in names:
        grid[name] = draw(st.lists(st.sampled_from(_DIM_VALUES[name]), min_size=1, max_size=3,
                                   unique=True))
    return grid


@st.composite
def exit_datasets11(draw):
    """Calls at the first candle of their own pump-and-dump series (some on
    a shared mint, some a moment later): most enter at 1.0 on the candle
    before a pump, so trails, breakeven and gaps through them are reached
    often.  Same (calls, series, series_key) shape as ``datasets``."""
    series_key = draw(st.sampled_from(["call_id", "mint"]))
    n_calls = draw(st.integers(1, 8))
    base = 1_700_000_000_000
    keys = MINTS if series_key == "mint" else [f"c{i}" for i in range(n_calls)]
    series = {}
    for key in keys:
        start = base + draw(st.sampled_from([0, 0, MIN, 2 * MIN]))
        series[key] = draw(pump_dump_candles(start) if draw(st.integers(0, 3)) > 0
                           else candles11(start, max_len=8))
    calls = []
    for i in range(n_calls):
        mint = draw(st.sampled_from(MINTS))
        own = series.get(mint if series_key == "mint" else f"c{i}") or [(base,)]
        ts = own[0][0] + draw(st.sampled_from([0, 0, 0, 1, -1, 30_000, MIN]))
        calls.append({"id": f"c{i}", "caller": draw(st.sampled_from(CALLERS)),
                      "mint": mint, "ts_ms": ts})
    return calls, series, series_key


# Constraints away from the ill-conditioned max_drawdown 0.0: with unfilled
# limit orders taking and giving back cash (free - size + size), equity can
# land one ulp under its peak, a drawdown of ~1e-16 in one implementation and
# 0.0 in another -- equal to 1e-9, yet on opposite sides of a 0.0 bound.
constraints11 = st.fixed_dictionaries({}, optional={
    "min_trades": st.integers(0, 4),
    "min_win_rate": st.sampled_from([0.0, 0.5, 1.0]),
    "max_drawdown": st.sampled_from([0.01, 0.05, 0.5]),
})


# ------------------------------------------------------------ SPEC 12 requests

lane = st.fixed_dictionaries({"name": st.sampled_from(["a", "b", "c"])}, optional={
    "taker_fee_bps": st.sampled_from([0.0, 50.0, 150.0]),
    "slippage_bps": st.sampled_from([0.0, 150.0]),
    "entry_delay_candles": st.integers(0, 3),
    "gap_fill": st.sampled_from(["level", "open"]),
})
stress = st.none() | st.sampled_from(["basic", "full", "adversarial"]) | st.lists(
    lane, min_size=1, max_size=3, unique_by=lambda d: d["name"])
plateau = st.none() | st.fixed_dictionaries({}, optional={
    "radius": st.integers(0, 2), "stat": st.sampled_from(["mean", "min"])})


@st.composite
def robust_requests(draw):
    """SPEC 12's optional keys of an optimize or walkForward request."""
    lanes = draw(stress)
    rank_by = draw(st.sampled_from([None, "objective", "plateau"]
                                   + (["maximin"] if lanes is not None else [])))
    return {"stress": lanes, "plateau": draw(plateau), "rank_by": rank_by}
