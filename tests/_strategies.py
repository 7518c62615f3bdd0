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


configs = st.fixed_dictionaries({}, optional={
    "initial_capital": st.sampled_from([10_000.0, 1_000.0, 500.0]),
    "max_allocation_pct": st.sampled_from([0.04, 0.3, 1.0]),
    "max_risk_per_trade": st.sampled_from([200.0, 50.0, 5_000.0]),
    "max_concurrent_positions": st.integers(1, 4),
    "max_trade_horizon_hrs": st.sampled_from(HOLD_LEVELS),
    "min_executable_size": st.sampled_from([10.0, 0.0, 150.0, 400.0]),
    "taker_fee_bps": st.sampled_from([30.0, 0.0]),
    "slippage_bps": st.sampled_from([10.0, 0.0]),
    "intrabar": st.sampled_from(["tp_first", "sl_first"]),
})

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
