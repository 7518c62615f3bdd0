"""Kernel output rows -> SPEC section 4 metric Structs and trade records
(the rows' layouts: ``layouts``)."""

from __future__ import annotations

import math

import numpy as np

from protocol import CapitalMetrics, Metrics, PerTradeMetrics, TradeRecord

from .dataset import Dataset
from .layouts import (
    CALL_ENTRY_PX,
    CALL_ENTRY_TS,
    COUNT_METRICS,
    ENTERED,
    EXIT_REASONS,
    METRICS,
    MODE_SKIP_REASONS,
    REC_EXIT_PX,
    REC_EXIT_REASON,
    REC_EXIT_TS,
    REC_PNL,
    REC_SIZE,
    REC_STATUS,
    SKIP_REASONS,
    STRATEGY_SKIP_REASONS,
)

_STRUCTS = {"capital": CapitalMetrics, "per_trade": PerTradeMetrics}


def _fields(names: tuple[str, ...], row: np.ndarray) -> dict:
    out = {}
    for name, value in zip(names, row.tolist()):
        if name in COUNT_METRICS:
            out[name] = int(value)
        elif math.isnan(value):
            out[name] = None  # profit_factor with no losing trade
        else:
            out[name] = value
    return out


def to_metrics(mode: str, row: np.ndarray, exits: np.ndarray, skipped: np.ndarray,
               trades: list[TradeRecord] | None = None, *, strategy: bool = False) -> Metrics:
    """A result row as the wire's metrics; ``strategy``: a strategy's run
    (SPEC 13), whose ``skipped`` has ``bad_stop`` too."""
    exits_d = dict(zip(EXIT_REASONS, (int(x) for x in exits)))
    reasons = (STRATEGY_SKIP_REASONS if strategy else MODE_SKIP_REASONS)[mode]
    skipped_d = {r: int(skipped[SKIP_REASONS.index(r)]) for r in reasons}
    extra = {} if trades is None else {"completed_trades": trades}
    return _STRUCTS[mode](**_fields(METRICS[mode], row), exits=exits_d, skipped=skipped_d,
                          **extra)


def trade_records(ds: Dataset, positions: np.ndarray, calls: np.ndarray,
                  rows: np.ndarray, rec: np.ndarray, entry_kind: str = "market",
                  ) -> list[TradeRecord]:
    """Records of the entered calls, in opening order (= sweep order);
    ``calls``: the ``CALL_*`` rows of the run's entry configuration."""
    out = []
    for r in np.flatnonzero(rec[:, REC_STATUS] == ENTERED).tolist():
        i = int(rows[r])
        pos = int(positions[i])
        entry_px = float(calls[CALL_ENTRY_PX, i])
        exit_px = float(rec[r, REC_EXIT_PX])
        out.append(TradeRecord(
            call_id=ds.call_ids[pos],
            caller=ds.caller_names[int(ds.call_caller[pos])],
            entry_ts_ms=int(calls[CALL_ENTRY_TS, i]),
            exit_ts_ms=int(rec[r, REC_EXIT_TS]),
            entry_px=entry_px,
            exit_px=exit_px,
            size=float(rec[r, REC_SIZE]),
            pnl=float(rec[r, REC_PNL]),
            exit_reason=EXIT_REASONS[int(rec[r, REC_EXIT_REASON])],
            exit_mult=exit_px / entry_px,
            entry_kind=entry_kind,
        ))
    return out
