"""Reference of SPEC section 13, part 2: simulating strategy calls (exits in
units of risk R, long and short) in capital and per-trade mode.

Slow and obvious on purpose: one call at a time, one base bar at a time,
plain Python floats.  Sections 2-4 and 11 are reused from ``simulator`` and
``trade`` wherever the rules are the same (entry candle, account, metrics,
fee); what differs for strategies (direction, risk, levels in R, peak of a
short, ``bad_stop``) is written out here.  Decisions where the SPEC is silent
are marked "Decision:" and listed in ``strategy``'s docstring.

Bars: ``{symbol: [(ts_ms, open, high, low, close[, volume]), ...]}``, each
symbol's BASE bars, valid and increasing.  Calls: dicts from
``strategy.strategy_calls`` (``id, caller, symbol, ts_ms, dir, stop``).
"""

import statistics

from .robust_stats import sharpe
from .simulator import (
    _Account,
    _capital_metrics,
    avg_hold_min,
    exit_counts,
    mean_or_zero,
    profit_factor,
)
from .trade import CLOSE, HIGH, LOW, OPEN, TS, fee_of, find_entry, full_config

# Exit parameters of SPEC 13, in grid order, with the value used when a
# parameter set (or the exit grid) leaves one out.  Decision: tp_r 2 and
# sl_pct 0.02 (SPEC 13's own example point); max_hold_hrs None means the
# config's max_trade_horizon_hrs; trail_r / breakeven_r None means off.
EXIT_KEYS = ("tp_r", "sl_pct", "max_hold_hrs", "trail_r", "breakeven_r",
             "entry_delay_candles")
EXIT_DEFAULTS = {
    "tp_r": 2.0,
    "sl_pct": 0.02,
    "max_hold_hrs": None,
    "trail_r": None,
    "breakeven_r": None,
    "entry_delay_candles": 0,
}
NULLABLE_EXIT_KEYS = ("trail_r", "breakeven_r")

# Decision: the skip counters keep section 11's keys (no_fill stays 0: strategy
# entries are market entries) and add bad_stop, in SPEC 11's "first that
# applies" order.  Per-trade mode counts bad_stop too (a trade needs a risk).
STRATEGY_CAPITAL_SKIPS = ("max_positions", "no_entry", "no_fill", "bad_stop",
                          "below_min_size")
STRATEGY_PER_TRADE_SKIPS = ("no_entry", "no_fill", "bad_stop")


def strategy_config(config):
    """Section 2's defaults, with gap_fill defaulting to "open" (SPEC 13)."""
    cfg = dict(config or {})
    cfg.setdefault("gap_fill", "open")
    return full_config(cfg)


def _is_int(x):
    return isinstance(x, int) and not isinstance(x, bool)


def full_exit_params(exit_params, cfg):
    """Every exit parameter filled in and checked.  Decision: any other key
    (tp_mult, sl_mult, SPEC 11's trail_pct, entry_dip_pct, ...) is invalid."""
    exit_params = exit_params or {}
    for key in exit_params:
        if key not in EXIT_KEYS:
            raise ValueError("%r is not an exit parameter of a strategy" % key)
    p = dict(EXIT_DEFAULTS)
    p.update(exit_params)
    if p["max_hold_hrs"] is None:
        p["max_hold_hrs"] = cfg["max_trade_horizon_hrs"]
    if p["tp_r"] is None or not p["tp_r"] > 0:
        raise ValueError("tp_r must be > 0")
    if p["sl_pct"] is None or not 0 < p["sl_pct"] < 1:
        raise ValueError("sl_pct must be in (0, 1)")
    if not p["max_hold_hrs"] > 0:
        raise ValueError("max_hold_hrs must be > 0")
    if p["trail_r"] is not None and not p["trail_r"] > 0:
        raise ValueError("trail_r must be > 0 or null")
    if p["breakeven_r"] is not None and not p["breakeven_r"] > 0:
        raise ValueError("breakeven_r must be > 0 or null")
    if not _is_int(p["entry_delay_candles"]) or p["entry_delay_candles"] < 0:
        raise ValueError("entry_delay_candles must be an integer >= 0")
    return p


# --------------------------------------------------------------------------
# One trade's path
# --------------------------------------------------------------------------

def entry_of(rows, call, p):
    """(e, entry_px, risk) or a skip reason ("no_entry" / "bad_stop").

    e0 = the first base bar with time >= ts_ms (SPEC 2.3), e = e0 +
    entry_delay_candles (SPEC 11 market entry), entry at close[e]."""
    e0 = find_entry(rows, call["ts_ms"])
    if e0 is None:
        return "no_entry"
    e = e0 + p["entry_delay_candles"]
    if e >= len(rows):
        return "no_entry"
    entry_px = rows[e][CLOSE]
    d = call["dir"]
    stop = call.get("stop")
    if stop is None:
        risk = entry_px * p["sl_pct"]
    else:
        losing_side = stop < entry_px if d == 1 else stop > entry_px
        if not losing_side:
            return "bad_stop"
        risk = abs(entry_px - stop)
    return e, entry_px, risk


def stop_at(d, entry_px, risk, peak, p):
    """(stop_j, reason): the tightest armed component (long: highest, short:
    lowest); equal levels: trailing_stop, then breakeven, then stop_loss."""
    candidates = [(entry_px - d * risk, "stop_loss")]
    be = p["breakeven_r"]
    if be is not None and d * peak >= d * entry_px + be * risk:
        candidates.append((entry_px, "breakeven"))
    tr = p["trail_r"]
    if tr is not None:  # armed at once
        candidates.append((peak - d * tr * risk, "trailing_stop"))
    level, reason = candidates[0]
    for lv, rs in candidates[1:]:
        # Later candidates win ties (breakeven over stop_loss, trailing over both).
        tighter_or_equal = lv >= level if d == 1 else lv <= level
        if tighter_or_equal:
            level, reason = lv, rs
    return level, reason


def exit_of(rows, e, entry_px, risk, d, p, cfg):
    """(j, exit_px, reason) for a position of direction d filled at bar e."""
    tp_px = entry_px + d * p["tp_r"] * risk
    takes_profit = not (d == -1 and tp_px <= 0)
    hold_until = rows[e][TS] + int(p["max_hold_hrs"] * 3_600_000)
    gap_open = cfg["gap_fill"] == "open"
    sl_first = cfg["intrabar"] == "sl_first"
    peak = entry_px  # most favourable price seen before bar j
    for j in range(e + 1, len(rows)):
        row = rows[j]
        ts, open_, high, low, close = row[TS], row[OPEN], row[HIGH], row[LOW], row[CLOSE]
        stop_px, stop_reason = stop_at(d, entry_px, risk, peak, p)
        if d == 1:
            gap_tp = open_ >= tp_px
            gap_sl = open_ <= stop_px
            hit_tp = high >= tp_px
            hit_sl = low <= stop_px
        else:
            gap_tp = takes_profit and open_ <= tp_px
            gap_sl = open_ >= stop_px
            hit_tp = takes_profit and low <= tp_px
            hit_sl = high >= stop_px
        if gap_open:
            if gap_tp:
                return j, open_, "take_profit"
            if gap_sl:
                return j, open_, stop_reason
        if sl_first:
            if hit_sl:
                return j, stop_px, stop_reason
            if hit_tp:
                return j, tp_px, "take_profit"
        else:
            if hit_tp:
                return j, tp_px, "take_profit"
            if hit_sl:
                return j, stop_px, stop_reason
        if ts >= hold_until:
            return j, close, "time_exit"
        peak = max(peak, high) if d == 1 else min(peak, low)
    last = len(rows) - 1  # e itself when e is the last bar
    return last, rows[last][CLOSE], "end_of_data"


def _record(call, rows, e, entry_px, j, exit_px, reason, size, pnl):
    return {
        "call_id": call["id"],
        "caller": call["caller"],
        "entry_ts_ms": rows[e][TS],
        "exit_ts_ms": rows[j][TS],
        "entry_px": entry_px,
        "exit_px": exit_px,
        "size": size,
        "pnl": pnl,
        "exit_reason": reason,
        "exit_mult": exit_px / entry_px,
        "entry_kind": "market",
        "symbol": call["symbol"],
        "direction": "long" if call["dir"] == 1 else "short",
    }


def _dir_returns(records, cfg):
    """SPEC 12's per-trade returns with the trade's direction, entry order."""
    cost = (cfg["taker_fee_bps"] + cfg["slippage_bps"]) / 10_000 * 2
    out = []
    for r in records:
        d = 1 if r["direction"] == "long" else -1
        out.append(d * (r["exit_px"] / r["entry_px"] - 1) - cost)
    return out


def _order(calls):
    """Decision: calls are run in the order given, stably sorted by ts_ms
    (SPEC 2.1); strategy_calls already gives SPEC 13's (ts_ms, symbol bytes, i)."""
    indexed = list(enumerate(calls))
    indexed.sort(key=lambda pair: (pair[1]["ts_ms"], pair[0]))
    return [c for _, c in indexed]


# --------------------------------------------------------------------------
# Runs
# --------------------------------------------------------------------------

def simulate_strategy(bars, calls, exit_params, config, mode="capital",
                      include_trades=False):
    cfg = strategy_config(config)
    p = full_exit_params(exit_params, cfg)
    if mode == "capital":
        out = _capital(bars, calls, p, cfg)
        key = "trades"
    elif mode == "per_trade":
        out = _per_trade(bars, calls, p, cfg)
        key = "trade_records"
    else:
        raise ValueError("mode must be 'capital' or 'per_trade'")
    if not include_trades:
        del out[key]
    return out


def _capital(bars, calls, p, cfg):
    account = _Account(cfg["initial_capital"])
    skipped = {reason: 0 for reason in STRATEGY_CAPITAL_SKIPS}
    trades = []
    for call in _order(calls):
        t = call["ts_ms"]
        account.close_due(t)
        if len(account.open) >= cfg["max_concurrent_positions"]:
            skipped["max_positions"] += 1
            continue
        rows = bars.get(call["symbol"]) or []
        pc = call.get("exit_params", p)  # a stitched run: each call its own (SPEC 12)
        entry = entry_of(rows, call, pc)
        if entry in ("no_entry", "bad_stop"):
            skipped[entry] += 1
            continue
        e, entry_px, risk = entry
        free = account.free
        size = min(cfg["max_risk_per_trade"] / (risk / entry_px),
                   cfg["max_allocation_pct"] * free, free)
        if size < cfg["min_executable_size"]:
            skipped["below_min_size"] += 1
            continue
        d = call["dir"]
        j, exit_px, reason = exit_of(rows, e, entry_px, risk, d, pc, cfg)
        pnl = size * d * (exit_px / entry_px - 1) - fee_of(size, cfg)
        account.hold(size, rows[j][TS], pnl)  # cash held from the call's time
        trades.append(_record(call, rows, e, entry_px, j, exit_px, reason, size, pnl))
    account.close_due(None)
    metrics = _capital_metrics(cfg, account, trades, skipped)
    metrics["sharpe"] = sharpe(_dir_returns(trades, cfg))
    return metrics


def _per_trade(bars, calls, p, cfg):
    cost = (cfg["taker_fee_bps"] + cfg["slippage_bps"]) / 10_000 * 2
    skipped = {reason: 0 for reason in STRATEGY_PER_TRADE_SKIPS}
    records = []
    rets = []
    rs = []
    for call in _order(calls):
        rows = bars.get(call["symbol"]) or []
        entry = entry_of(rows, call, p)
        if entry in ("no_entry", "bad_stop"):
            skipped[entry] += 1
            continue
        e, entry_px, risk = entry
        d = call["dir"]
        j, exit_px, reason = exit_of(rows, e, entry_px, risk, d, p, cfg)
        ret = d * (exit_px / entry_px - 1) - cost
        rets.append(ret)
        rs.append(ret / (risk / entry_px))
        records.append(_record(call, rows, e, entry_px, j, exit_px, reason, 1.0, ret))
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
        "skipped": dict(skipped),
        "avg_hold_min": avg_hold_min(records),
        "sharpe": sharpe(rets),
        "trade_records": records,
    }
