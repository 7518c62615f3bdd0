"""Reference simulator, part 2: the executable meaning of SPEC sections
2-4 and 11 for a whole run (capital and per-trade modes) and its metrics;
one trade's path is in ``trade``.

Slow and obvious on purpose: one call at a time, plain Python floats, no
numpy. Every formula is written exactly as SPEC writes it so that a fast
implementation can be compared against it to a relative 1e-9.
"""

import statistics

from .robust_stats import sharpe  # SPEC 12's, written once for the reference
from .trade import (  # noqa: F401  (re-exported for optimizer and tests)
    CAPITAL_SKIP_REASONS,
    CLOSE,
    DEFAULT_CONFIG,
    EXIT_REASONS,
    EXTENDED_DEFAULTS,
    PER_TRADE_SKIP_REASONS,
    TS,
    check_extended,
    fee_of,
    find_entry,
    find_exit,
    find_fill,
    full_config,
    full_params,
    is_limit,
    limit_expiry,
    processing_order,
    series_of,
    stop_level,
)

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


def trade_returns(records, cfg):
    """SPEC 12: r = dir * (exit_px / entry_px - 1) - round-trip cost, per trade
    (dir = +1: calls go long). Decision: "entry order" is the order the run
    enters trades (processing order), the order of the trade list."""
    cost = (cfg["taker_fee_bps"] + cfg["slippage_bps"]) / 10_000 * 2
    return [r["exit_px"] / r["entry_px"] - 1 - cost for r in records]


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


def make_record(call, candles, e, entry_px, j, exit_px, reason, size, pnl, kind):
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
        "entry_kind": kind,
    }


# --------------------------------------------------------------------------
# Capital mode: SPEC 2 and the capital metrics of SPEC 4
# --------------------------------------------------------------------------

class _Account:
    """Free cash, what holds it (positions and unfilled limit orders) and the
    drawdown traced out by the closes."""

    def __init__(self, initial_capital):
        self.free = initial_capital
        self.open = []  # dicts: exit_ts, order, size, pnl (held orders: pnl 0)
        self.opened = 0  # opening order, counting trades and held orders
        self.peak = initial_capital
        self.max_drawdown = 0.0

    def hold(self, size, exit_ts, pnl):
        """Take ``size`` of cash and a slot until ``exit_ts``."""
        self.free -= size
        self.open.append({"exit_ts": exit_ts, "order": self.opened,
                          "size": size, "pnl": pnl})
        self.opened += 1

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
    kind = "limit" if is_limit(params) else "market"
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
        e0 = find_entry(candles, t)
        if e0 is None:
            skipped["no_entry"] += 1
            continue
        fill = find_fill(candles, t, e0, params)
        if fill == "no_entry":  # market entry delayed past the last candle
            skipped["no_entry"] += 1
            continue
        size = min(cfg["max_risk_per_trade"] / (1 - sl_mult),
                   cfg["max_allocation_pct"] * account.free,
                   account.free)
        if fill == "no_fill":
            # SPEC 11: a skip, never a trade; it holds its cash and a slot
            # from the call's time until expiry when it was big enough.
            skipped["no_fill"] += 1
            if size >= cfg["min_executable_size"]:
                account.hold(size, limit_expiry(t, params), 0.0)
            continue
        if size < cfg["min_executable_size"]:
            skipped["below_min_size"] += 1
            continue
        e, entry_px = fill
        j, exit_px, reason = find_exit(candles, e, entry_px, params, cfg)
        pnl = size * (exit_px / entry_px - 1) - fee_of(size, cfg)
        # The cash is held from the call's time, whatever the fill time.
        account.hold(size, candles[j][TS], pnl)
        trades.append(make_record(call, candles, e, entry_px, j, exit_px, reason,
                                  size, pnl, kind))

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
        "sharpe": sharpe(trade_returns(trades, cfg)),
        "trades": trades,
    }


# --------------------------------------------------------------------------
# Per-trade mode: SPEC 3 and the per-trade metrics of SPEC 4
# --------------------------------------------------------------------------

def simulate_per_trade(calls, series, series_key, params, config):
    cfg = full_config(config)
    params = full_params(params, cfg)
    kind = "limit" if is_limit(params) else "market"
    cost = (cfg["taker_fee_bps"] + cfg["slippage_bps"]) / 10_000 * 2
    records = []
    skipped = {reason: 0 for reason in PER_TRADE_SKIP_REASONS}

    for call in processing_order(calls):
        candles = series_of(call, series, series_key)
        e0 = find_entry(candles, call["ts_ms"])
        if e0 is None:
            skipped["no_entry"] += 1
            continue
        fill = find_fill(candles, call["ts_ms"], e0, params)
        if fill in PER_TRADE_SKIP_REASONS:
            skipped[fill] += 1
            continue
        e, entry_px = fill
        j, exit_px, reason = find_exit(candles, e, entry_px, params, cfg)
        ret = exit_px / entry_px - 1 - cost
        records.append(make_record(call, candles, e, entry_px, j, exit_px, reason,
                                   1.0, ret, kind))

    return _per_trade_metrics(params, records, skipped)


def _per_trade_metrics(params, records, skipped):
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
        "skipped": dict(skipped),
        "avg_hold_min": avg_hold_min(records),
        "sharpe": sharpe(rets),
        "trade_records": records,
    }
