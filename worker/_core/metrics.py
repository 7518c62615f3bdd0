"""Kernel output rows -> SPEC section 4 metric Structs and trade records."""

from __future__ import annotations

import math

import numpy as np

from protocol import CapitalMetrics, Metrics, PerTradeMetrics, TradeRecord

from .dataset import Dataset
from .kernels import CAPITAL_METRICS, ENTERED, EXIT_REASONS, PER_TRADE_METRICS, SKIP_REASONS

_COUNTS = {"trades_executed", "wins", "losses", "trades_skipped", "trades"}


def _fields(names: tuple[str, ...], row: np.ndarray) -> dict:
    out = {}
    for name, value in zip(names, row.tolist()):
        if name in _COUNTS:
            out[name] = int(value)
        elif math.isnan(value):
            out[name] = None  # profit_factor with no losing trade
        else:
            out[name] = value
    return out


def to_metrics(mode: str, row: np.ndarray, exits: np.ndarray, skipped: np.ndarray,
               trades: list[TradeRecord] | None = None) -> Metrics:
    exits_d = dict(zip(EXIT_REASONS, (int(x) for x in exits)))
    extra = {} if trades is None else {"completed_trades": trades}
    if mode == "per_trade":
        return PerTradeMetrics(**_fields(PER_TRADE_METRICS, row), exits=exits_d,
                               skipped={"no_entry": int(skipped[1])}, **extra)
    skipped_d = dict(zip(SKIP_REASONS, (int(x) for x in skipped)))
    return CapitalMetrics(**_fields(CAPITAL_METRICS, row), exits=exits_d,
                          skipped=skipped_d, **extra)


def trade_records(ds: Dataset, positions: np.ndarray, calls: np.ndarray,
                  rows: np.ndarray, rec: np.ndarray) -> list[TradeRecord]:
    """Records of the entered calls, in opening order (= sweep order)."""
    out = []
    for r in np.flatnonzero(rec[:, 0] == ENTERED).tolist():
        i = int(rows[r])
        pos = int(positions[i])
        entry_px = float(calls[1, i])
        exit_px = float(rec[r, 4])
        out.append(TradeRecord(
            call_id=ds.call_ids[pos],
            caller=ds.caller_names[int(ds.call_caller[pos])],
            entry_ts_ms=int(calls[2, i]),
            exit_ts_ms=int(rec[r, 3]),
            entry_px=entry_px,
            exit_px=exit_px,
            size=float(rec[r, 1]),
            pnl=float(rec[r, 2]),
            exit_reason=EXIT_REASONS[int(rec[r, 5])],
            exit_mult=exit_px / entry_px,
        ))
    return out
