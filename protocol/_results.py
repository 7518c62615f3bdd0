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
    sharpe: float | None  # SPEC 12: mean / std of the trades' returns; null below 2 trades
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
    sharpe: float | None  # SPEC 12
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
    # SPEC 12, when the request asks for them: the plateau value (null for
    # an infeasible point), each stress lane's objective, the worst lane and
    # its objective.
    plateau: float | None | msgspec.UnsetType = msgspec.UNSET
    lanes: dict[str, float | None] | msgspec.UnsetType = msgspec.UNSET
    worst_lane: str | msgspec.UnsetType = msgspec.UNSET
    maximin: float | None | msgspec.UnsetType = msgspec.UNSET


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
    # SPEC 12: of the best point (after rank_by); null when it cannot be computed.
    deflated_sharpe: float | None = None


class CallerResult(msgspec.Struct, **_STRUCT):
    caller: str
    calls: int
    best_params: Params | None
    best_final_capital: float | None
    best_total_return: float | None
    best_metrics: Metrics | None
    collapsed_capital: bool
    requires_extreme_params: bool
    # SPEC 12: of this caller's best point (after rank_by); null when it cannot be computed.
    deflated_sharpe: float | None = None


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


class FoldResult(msgspec.Struct, **_STRUCT):
    """One walk-forward fold (SPEC 12): windows ``[start_ms, end_ms)``, call
    counts, the point chosen on the train calls and how it did on the test
    calls; a fold that could choose nothing has nulls."""

    index: int
    train_windows: list[list[int]]
    test_windows: list[list[int]]
    n_train: int
    n_test: int
    n_purged: int
    chosen_params: Params | None
    train_metrics: Metrics | None
    test_metrics: Metrics | None
    test_rank_pct: float | None
    spearman: float | None


class FoldAggregate(msgspec.Struct, **_STRUCT):
    median_test_objective: float | None
    worst_test_objective: float | None
    profitable_folds: float | None
    degradation: float | None
    efficiency: float | None


class StitchedRun(msgspec.Struct, **_STRUCT):
    """Every test call with its own fold's chosen params, one account:
    ``equity`` is ``[ts_ms, equity]`` after every trade's close."""

    metrics: CapitalMetrics
    equity: list[tuple[int, float]]


class PboResult(msgspec.Struct, **_STRUCT):
    pbo: float
    prob_oos_loss: float
    logit_quartiles: list[float]
    slope: float | None


class WalkForwardResult(msgspec.Struct, **_STRUCT):
    objective: str
    minimize: bool
    folds: list[FoldResult]
    aggregate: FoldAggregate
    stitched: StitchedRun | None
    pbo: PboResult | None
    full: OptimizeResult

