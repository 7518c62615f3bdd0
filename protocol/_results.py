"""Results: SPEC section 4 metrics, trade records, optimization answers.

Field names are the earlier Python scripts' names, so the TypeScript CLI
reads them unchanged. Metrics carry a ``mode`` tag ("capital" or
"per_trade") because the two modes report different figures.
``profit_factor`` is null when there is no losing trade (SPEC 4).
"""

from __future__ import annotations

import msgspec

from ._params import Params

_STRUCT = dict(frozen=True, kw_only=True, forbid_unknown_fields=True)


class TradeRecord(msgspec.Struct, **_STRUCT):
    call_id: str
    caller: str
    entry_ts_ms: int
    exit_ts_ms: int
    entry_px: float
    exit_px: float
    size: float
    pnl: float
    exit_reason: str
    exit_mult: float
    entry_kind: str = "market"  # SPEC 11: "market" or "limit"


class CapitalMetrics(msgspec.Struct, tag="capital", tag_field="mode", **_STRUCT):
    final_capital: float
    total_return: float
    trades_executed: int
    wins: int
    losses: int
    win_rate: float
    exits: dict[str, int]
    skipped: dict[str, int]
    trades_skipped: int
    fees_paid: float
    profit_factor: float | None
    max_drawdown: float
    avg_hold_min: float
    completed_trades: list[TradeRecord] | msgspec.UnsetType = msgspec.UNSET


class PerTradeMetrics(msgspec.Struct, tag="per_trade", tag_field="mode", **_STRUCT):
    trades: int
    wins: int
    losses: int
    win_rate: float
    avg_return: float
    median_return: float
    total_return: float
    profit_factor: float | None
    avg_r: float
    total_r: float
    exits: dict[str, int]
    skipped: dict[str, int]
    avg_hold_min: float
    completed_trades: list[TradeRecord] | msgspec.UnsetType = msgspec.UNSET


Metrics = CapitalMetrics | PerTradeMetrics


class RankedPoint(msgspec.Struct, **_STRUCT):
    """One grid point: ``index`` in grid order, 1-based ``rank`` (feasible
    points first, then by objective, ties by grid order)."""

    index: int
    rank: int
    feasible: bool
    params: Params
    metrics: Metrics


class OptimizeResult(msgspec.Struct, **_STRUCT):
    objective: str
    minimize: bool
    best_params: Params | None
    best_final_capital: float | None
    best_total_return: float | None
    best_metrics: Metrics | None
    params_evaluated: int
    feasible_count: int
    top: list[RankedPoint]
    all_results: list[RankedPoint] | msgspec.UnsetType = msgspec.UNSET


class CallerResult(msgspec.Struct, **_STRUCT):
    caller: str
    calls: int
    best_params: Params | None
    best_final_capital: float | None
    best_total_return: float | None
    best_metrics: Metrics | None
    collapsed_capital: bool
    requires_extreme_params: bool


class PerCallerResult(msgspec.Struct, **_STRUCT):
    objective: str
    params_evaluated: int
    per_caller_results: dict[str, CallerResult]


class GroupedResult(msgspec.Struct, **_STRUCT):
    objective: str
    params_evaluated: int
    per_caller_results: dict[str, CallerResult]
    selected_callers: list[str]
    grouped_params: Params | None
    grouped_result: Metrics | None
