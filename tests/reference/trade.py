"""Reference simulator, part 1: inputs and one trade's path (SPEC sections 2
and 11: entry, exit, fee), independent of capital.

Slow and obvious on purpose: one call at a time, one candle at a time, plain
Python floats, no numpy.  Every formula is written exactly as SPEC writes it so
that a fast implementation can be compared against it to a relative 1e-9.

Inputs (shared by both simulators):
  calls      list of {"id", "caller", "mint", "ts_ms"} in request order
  series     {key: [(ts_ms, open, high, low, close), ...]}, valid and sorted
  series_key "call_id" or "mint": which call field names the call's series
  params     {"tp_mult", "sl_mult", "max_hold_hrs"} and, optionally, any of
             SPEC 11's parameters (EXTENDED_DEFAULTS; a missing one is off)
  config     any SPEC section 2 config keys and SPEC 11's ``gap_fill``;
             missing ones take the defaults
"""

DEFAULT_CONFIG = {
    "initial_capital": 10000.0,
    "max_allocation_pct": 0.04,
    "max_risk_per_trade": 200.0,
    "max_concurrent_positions": 25,
    "max_trade_horizon_hrs": 48.0,
    "min_executable_size": 10.0,
    "taker_fee_bps": 30.0,
    "slippage_bps": 10.0,
    "intrabar": "tp_first",
    "gap_fill": "level",  # SPEC 11
}

# SPEC 11's parameters and the values that leave SPEC 2 exactly as it is.
EXTENDED_DEFAULTS = {
    "trail_pct": None,
    "trail_activation": 1.0,
    "breakeven_trigger": None,
    "breakeven_offset": 0.0,
    "entry_delay_candles": 0,
    "entry_dip_pct": 0.0,
    "entry_max_wait_min": 60.0,
}

EXIT_REASONS = ("take_profit", "stop_loss", "time_exit", "end_of_data",
                "breakeven", "trailing_stop")
CAPITAL_SKIP_REASONS = ("max_positions", "no_entry", "no_fill", "below_min_size")
PER_TRADE_SKIP_REASONS = ("no_entry", "no_fill")

# Candle tuple fields.
TS, OPEN, HIGH, LOW, CLOSE = 0, 1, 2, 3, 4


# --------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------

def full_config(config):
    """SPEC defaults overlaid with whatever the caller gave."""
    cfg = dict(DEFAULT_CONFIG)
    cfg.update(config or {})
    if cfg["intrabar"] not in ("tp_first", "sl_first"):
        raise ValueError("intrabar must be 'tp_first' or 'sl_first'")
    if cfg["gap_fill"] not in ("level", "open"):
        raise ValueError("gap_fill must be 'level' or 'open'")
    return cfg


def full_params(params, cfg):
    """Fill max_hold_hrs from the config, SPEC 11's parameters from their
    defaults, and reject out-of-range values.

    SPEC 2 and 11: out-of-range parameters are an error, never a silent clamp.
    """
    tp_mult = params["tp_mult"]
    sl_mult = params["sl_mult"]
    max_hold_hrs = params.get("max_hold_hrs")
    if max_hold_hrs is None:
        max_hold_hrs = cfg["max_trade_horizon_hrs"]
    if not tp_mult > 1:
        raise ValueError("tp_mult must be > 1")
    if not 0 < sl_mult < 1:
        raise ValueError("sl_mult must be in (0, 1)")
    if not max_hold_hrs > 0:
        raise ValueError("max_hold_hrs must be > 0")
    out = {"tp_mult": tp_mult, "sl_mult": sl_mult, "max_hold_hrs": max_hold_hrs}
    for name, default in EXTENDED_DEFAULTS.items():
        out[name] = params.get(name, default)
    check_extended(out)
    return out


def check_extended(p):
    """SPEC 11's value rules (the table), one parameter at a time."""
    trail = p["trail_pct"]
    if trail is not None and not 0 < trail < 1:
        raise ValueError("trail_pct must be in (0, 1) or null")
    if not p["trail_activation"] >= 1:
        raise ValueError("trail_activation must be >= 1")
    trigger = p["breakeven_trigger"]
    if trigger is not None and not trigger > 1:
        raise ValueError("breakeven_trigger must be > 1 or null")
    offset = p["breakeven_offset"]
    if not offset >= 0:
        raise ValueError("breakeven_offset must be >= 0")
    if trigger is not None and not offset < trigger - 1:
        raise ValueError("breakeven_offset must be < breakeven_trigger - 1")
    delay = p["entry_delay_candles"]
    if isinstance(delay, bool) or not isinstance(delay, int) or delay < 0:
        raise ValueError("entry_delay_candles must be an integer >= 0")
    if not 0 <= p["entry_dip_pct"] < 1:
        raise ValueError("entry_dip_pct must be in [0, 1)")
    if not p["entry_max_wait_min"] > 0:
        raise ValueError("entry_max_wait_min must be > 0")


def processing_order(calls):
    """Calls sorted by (ts_ms, position in the request) -- SPEC 2 step 1."""
    indexed = list(enumerate(calls))
    indexed.sort(key=lambda pair: (pair[1]["ts_ms"], pair[0]))
    return [call for _, call in indexed]


def series_of(call, series, series_key):
    """The call's candles, or an empty list when it has none."""
    if series_key == "call_id":
        key = call["id"]
    elif series_key == "mint":
        key = call["mint"]
    else:
        raise ValueError("series_key must be 'call_id' or 'mint'")
    return series.get(key) or []


# --------------------------------------------------------------------------
# One trade's path (independent of capital): SPEC 2 steps 2.3, 2.5, 2.6 and
# SPEC 11's entries and exits
# --------------------------------------------------------------------------

def find_entry(candles, t):
    """e0: index of the first candle with time >= t and a close > 0, else None."""
    for i, candle in enumerate(candles):
        if candle[TS] >= t:
            if not candle[CLOSE] > 0:
                return None
            return i
    return None


def limit_expiry(ts_ms, params):
    """A limit order's expiry, exactly as SPEC 11 writes it."""
    return ts_ms + int(params["entry_max_wait_min"] * 60_000)


def is_limit(params):
    return params["entry_dip_pct"] > 0


def find_fill(candles, ts_ms, e0, params):
    """(e, entry_px) of the fill after entry candle e0, or a skip reason.

    Market (entry_dip_pct 0): e = e0 + entry_delay_candles, at close[e];
    past the last candle: "no_entry".
    Limit: the first j > e0 + delay with time[j] < expiry and low[j] <= limit,
    at min(limit, open[j]); none (also when e0 + delay is past the last
    candle): "no_fill".
    """
    delay = params["entry_delay_candles"]
    if not is_limit(params):
        e = e0 + delay
        if e >= len(candles):
            return "no_entry"
        return e, candles[e][CLOSE]
    ref = candles[e0][CLOSE]
    limit = ref * (1 - params["entry_dip_pct"])
    expiry = limit_expiry(ts_ms, params)
    for j in range(e0 + delay + 1, len(candles)):
        ts, open_, _, low, _ = candles[j]
        if not ts < expiry:
            break  # times only grow: the window is over
        if low <= limit:
            return j, min(limit, open_)
    return "no_fill"


def stop_level(entry_px, peak, params):
    """(stop_j, reason): the highest armed component at running peak ``peak``.

    Equal levels: trailing_stop, then breakeven, then stop_loss.
    """
    candidates = [(entry_px * params["sl_mult"], "stop_loss")]
    trigger = params["breakeven_trigger"]
    if trigger is not None and peak >= entry_px * trigger:
        candidates.append((entry_px * (1 + params["breakeven_offset"]), "breakeven"))
    trail = params["trail_pct"]
    if trail is not None and peak >= entry_px * params["trail_activation"]:
        candidates.append((peak * (1 - trail), "trailing_stop"))
    best_level, best_reason = candidates[0]
    for level, reason in candidates[1:]:
        # Later candidates win ties (breakeven over stop_loss, trailing over both).
        if level >= best_level:
            best_level, best_reason = level, reason
    return best_level, best_reason


def find_exit(candles, e, entry_px, params, cfg):
    """(exit index, exit price, reason) for a position filled at candle e.

    Exits are looked for from e + 1 on: the entry candle's high and low
    happened before the fill.  The running peak before candle j is
    max(entry_px, high[e+1..j-1]): a candle never raises the stop it is
    itself tested against.
    """
    tp_px = entry_px * params["tp_mult"]
    hold_until = candles[e][TS] + int(params["max_hold_hrs"] * 3_600_000)
    intrabar = cfg["intrabar"]
    gap_open = cfg["gap_fill"] == "open"
    peak = entry_px
    for j in range(e + 1, len(candles)):
        ts, open_, high, low, close = candles[j]
        stop_px, stop_reason = stop_level(entry_px, peak, params)
        if gap_open:
            if open_ >= tp_px:
                return j, open_, "take_profit"
            if open_ <= stop_px:
                return j, open_, stop_reason
        hit_tp = high >= tp_px
        hit_sl = low <= stop_px
        if intrabar == "tp_first":
            if hit_tp:
                return j, tp_px, "take_profit"
            if hit_sl:
                return j, stop_px, stop_reason
        else:
            if hit_sl:
                return j, stop_px, stop_reason
            if hit_tp:
                return j, tp_px, "take_profit"
        if ts >= hold_until:
            return j, close, "time_exit"
        peak = max(peak, high)
    last = len(candles) - 1  # equals e when e is the last candle
    return last, candles[last][CLOSE], "end_of_data"


def fee_of(size, cfg):
    """Round-trip cost of a position, written exactly as SPEC 2 step 7."""
    return size * (cfg["taker_fee_bps"] + cfg["slippage_bps"]) / 10_000 * 2
