"""Reference simulator: the executable meaning of SPEC sections 2-4.

Slow and obvious on purpose: one call at a time, one candle at a time, plain
Python floats, no numpy.  Every formula is written exactly as SPEC writes it so
that a fast implementation can be compared against it to a relative 1e-9.

Inputs (shared by both simulators):
  calls      list of {"id", "caller", "mint", "ts_ms"} in request order
  series     {key: [(ts_ms, open, high, low, close), ...]}, valid and sorted
  series_key "call_id" or "mint": which call field names the call's series
  params     {"tp_mult", "sl_mult", "max_hold_hrs"}
  config     any SPEC section 2 config keys; missing ones take the defaults
"""

import statistics

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
}

EXIT_REASONS = ("take_profit", "stop_loss", "time_exit", "end_of_data")
CAPITAL_SKIP_REASONS = ("max_positions", "no_entry", "below_min_size")

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
    return cfg


def full_params(params, cfg):
    """Fill max_hold_hrs from the config and reject out-of-range values.

    SPEC 2: out-of-range parameters are an error, never a silent clamp.
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
    return {"tp_mult": tp_mult, "sl_mult": sl_mult, "max_hold_hrs": max_hold_hrs}


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
# One trade's path (independent of capital): SPEC 2 steps 2.3, 2.5, 2.6
# --------------------------------------------------------------------------

def find_entry(candles, t):
    """Index of the first candle with time >= t and a close > 0, else None."""
    for i, candle in enumerate(candles):
        if candle[TS] >= t:
            if not candle[CLOSE] > 0:
                return None
            return i
    return None


def find_exit(candles, e, params, intrabar):
    """(exit index, exit price, reason) for a position entered at candle e.

    Exits are looked for from e + 1 on: the entry candle's high and low
    happened before the fill at its close.
    """
    entry_px = candles[e][CLOSE]
    tp_px = entry_px * params["tp_mult"]
    sl_px = entry_px * params["sl_mult"]
    hold_until = candles[e][TS] + int(params["max_hold_hrs"] * 3_600_000)
    for j in range(e + 1, len(candles)):
        ts, _, high, low, close = candles[j]
        hit_tp = high >= tp_px
        hit_sl = low <= sl_px
        if intrabar == "tp_first":
            if hit_tp:
                return j, tp_px, "take_profit"
            if hit_sl:
                return j, sl_px, "stop_loss"
        else:
            if hit_sl:
                return j, sl_px, "stop_loss"
            if hit_tp:
                return j, tp_px, "take_profit"
        if ts >= hold_until:
            return j, close, "time_exit"
    last = len(candles) - 1  # equals e when e is the last candle
    return last, candles[last][CLOSE], "end_of_data"


def fee_of(size, cfg):
    """Round-trip cost of a position, written exactly as SPEC 2 step 7."""
    return size * (cfg["taker_fee_bps"] + cfg["slippage_bps"]) / 10_000 * 2


# --------------------------------------------------------------------------
# Shared metric helpers
# --------------------------------------------------------------------------

def profit_factor(values):
    """sum(positive) / -sum(non-positive); None when the denominator is 0."""
    gains = 0.0
    losses = 0.0
    for v in values:
        if v > 0:
            gains += v
        else:
            losses += v
    if losses == 0:
        return None
    return gains / -losses


def mean_or_zero(values):
    if not values:
        return 0.0
    return sum(values) / len(values)


def avg_hold_min(records):
    return mean_or_zero([(r["exit_ts_ms"] - r["entry_ts_ms"]) / 60000 for r in records])


def exit_counts(records):
    counts = {reason: 0 for reason in EXIT_REASONS}
    for r in records:
        counts[r["exit_reason"]] += 1
    return counts


def make_record(call, candles, e, j, exit_px, reason, size, pnl):
    entry_px = candles[e][CLOSE]
    return {
        "call_id": call["id"],
        "caller": call["caller"],
        "entry_ts_ms": candles[e][TS],
        "exit_ts_ms": candles[j][TS],
        "entry_px": entry_px,
        "exit_px": exit_px,
        "size": size,
        "pnl": pnl,
        "exit_reason": reason,
        "exit_mult": exit_px / entry_px,
    }


# --------------------------------------------------------------------------
# Capital mode: SPEC 2 and the capital metrics of SPEC 4
# --------------------------------------------------------------------------

class _Account:
    """Free cash, open positions and the drawdown they trace out."""

    def __init__(self, initial_capital):
        self.free = initial_capital
        self.open = []  # dicts: exit_ts, order, size, pnl
        self.peak = initial_capital
        self.max_drawdown = 0.0

    def close_due(self, t):
        """Close every position with exit time <= t (t None: all of them)."""
        due = [p for p in self.open if t is None or p["exit_ts"] <= t]
        due.sort(key=lambda p: (p["exit_ts"], p["order"]))
        for position in due:
            self.open.remove(position)
            self.free += position["size"] + position["pnl"]
            self._mark()

    def _mark(self):
        # Equity after a close: cash plus the cost of what is still open.
        equity = self.free + sum(p["size"] for p in self.open)
        self.peak = max(self.peak, equity)
        drawdown = (self.peak - equity) / self.peak
        self.max_drawdown = max(self.max_drawdown, drawdown)


def simulate_capital(calls, series, series_key, params, config):
    cfg = full_config(config)
    params = full_params(params, cfg)
    sl_mult = params["sl_mult"]
    account = _Account(cfg["initial_capital"])
    skipped = {reason: 0 for reason in CAPITAL_SKIP_REASONS}
    trades = []

    for call in processing_order(calls):
        t = call["ts_ms"]
        account.close_due(t)
        if len(account.open) >= cfg["max_concurrent_positions"]:
            skipped["max_positions"] += 1
            continue
        candles = series_of(call, series, series_key)
        e = find_entry(candles, t)
        if e is None:
            skipped["no_entry"] += 1
            continue
        size = min(cfg["max_risk_per_trade"] / (1 - sl_mult),
                   cfg["max_allocation_pct"] * account.free,
                   account.free)
        if size < cfg["min_executable_size"]:
            skipped["below_min_size"] += 1
            continue
        account.free -= size
        j, exit_px, reason = find_exit(candles, e, params, cfg["intrabar"])
        entry_px = candles[e][CLOSE]
        pnl = size * (exit_px / entry_px - 1) - fee_of(size, cfg)
        account.open.append({"exit_ts": candles[j][TS], "order": len(trades),
                             "size": size, "pnl": pnl})
        trades.append(make_record(call, candles, e, j, exit_px, reason, size, pnl))

    account.close_due(None)  # SPEC 2 step 3
    return _capital_metrics(cfg, account, trades, skipped)


def _capital_metrics(cfg, account, trades, skipped):
    final_capital = account.free
    pnls = [r["pnl"] for r in trades]
    n = len(trades)
    wins = sum(1 for p in pnls if p > 0)
    fees = 0.0
    for r in trades:
        fees += fee_of(r["size"], cfg)
    return {
        "final_capital": final_capital,
        "total_return": final_capital / cfg["initial_capital"] - 1,
        "trades_executed": n,
        "wins": wins,
        "losses": n - wins,
        "win_rate": wins / n if n else 0.0,
        "exits": exit_counts(trades),
        "skipped": dict(skipped),
        "trades_skipped": sum(skipped.values()),
        "fees_paid": fees,
        "profit_factor": profit_factor(pnls),
        "max_drawdown": account.max_drawdown,
        "avg_hold_min": avg_hold_min(trades),
        "trades": trades,
    }


# --------------------------------------------------------------------------
# Per-trade mode: SPEC 3 and the per-trade metrics of SPEC 4
# --------------------------------------------------------------------------

def simulate_per_trade(calls, series, series_key, params, config):
    cfg = full_config(config)
    params = full_params(params, cfg)
    cost = (cfg["taker_fee_bps"] + cfg["slippage_bps"]) / 10_000 * 2
    records = []
    no_entry = 0

    for call in processing_order(calls):
        candles = series_of(call, series, series_key)
        e = find_entry(candles, call["ts_ms"])
        if e is None:
            no_entry += 1
            continue
        j, exit_px, reason = find_exit(candles, e, params, cfg["intrabar"])
        ret = exit_px / candles[e][CLOSE] - 1 - cost
        records.append(make_record(call, candles, e, j, exit_px, reason, 1.0, ret))

    return _per_trade_metrics(params, records, no_entry)


def _per_trade_metrics(params, records, no_entry):
    rets = [r["pnl"] for r in records]
    rs = [ret / (1 - params["sl_mult"]) for ret in rets]
    n = len(records)
    wins = sum(1 for ret in rets if ret > 0)
    return {
        "trades": n,
        "wins": wins,
        "losses": n - wins,
        "win_rate": wins / n if n else 0.0,
        "avg_return": mean_or_zero(rets),
        "median_return": statistics.median(rets) if rets else 0.0,
        "total_return": float(sum(rets)),
        "profit_factor": profit_factor(rets),
        "avg_r": mean_or_zero(rs),
        "total_r": float(sum(rs)),
        "exits": exit_counts(records),
        "skipped": {"no_entry": no_entry},
        "avg_hold_min": avg_hold_min(records),
        "trade_records": records,
    }
