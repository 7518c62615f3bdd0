"""Wire types of SPEC 13: strategies on bars (``loadBars``,
``optimizeStrategy``, and ``simulate`` with a strategy).

Decisions where SPEC 13 is silent (each repeated where it applies):

- ``StrategySimulatorConfig`` is ``SimulatorConfig`` with ``gap_fill``
  defaulting to ``"open"`` (SPEC 13: a gap through a stop is the risk a bar
  strategy runs); call requests keep ``SimulatorConfig`` and its ``"level"``.
- A point's ``params`` is one flat object (``timeframe``, the strategy's
  parameters, the exit parameters), so it is ``dict[str, Any]``, not
  ``Params``; ``StrategyPoint`` is ``RankedPoint`` with that one change.
- ``per_symbol_results`` is keyed by symbol, like ``per_caller_results`` is
  by caller; ``requires_extreme_params`` is always false for strategies.
- ``folds`` (SPEC 12 on a strategy search): the answer gains walkForward's
  ``folds``, ``aggregate`` and ``stitched`` (``StrategyResult``).
- ``simulate`` with a strategy is its own params type
  (``SimulateStrategyParams``); the worker tells the two apart by the
  ``strategy`` member. Its trades carry ``symbol`` and ``direction``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from ._params import (
    CheckpointDir,
    Constraints,
    EntryDelay,
    FoldsSpec,
    GapFill,
    HoldHrs,
    Mode,
    Plateau,
    RankBy,
    RunId,
    SimulatorConfig,
    StressLane,
    StressPreset,
)
from ._results import (
    CapitalMetrics,
    FoldAggregate,
    Metrics,
    PerTradeMetrics,
    StitchedRun,
    TradeRecord,
)

_PARAMS = dict(frozen=True, kw_only=True, forbid_unknown_fields=True)
_RESULT = dict(frozen=True, kw_only=True, forbid_unknown_fields=True)

TpR = Annotated[float, msgspec.Meta(gt=0, description="take profit at this many R, > 0")]
# Decision: at least 1e-6 (SPEC 13 says > 0): a smaller risk makes per-trade r
# (return / risk) overflow a double, and no market has such a tick.
SlPct = Annotated[float, msgspec.Meta(
    ge=1e-6, lt=1,
    description="risk as a fraction of entry when a signal has no stop, in [1e-6, 1)")]
TrailR = Annotated[float, msgspec.Meta(gt=0, description="trailing stop this many R behind the peak, > 0")]
BreakevenR = Annotated[float, msgspec.Meta(
    gt=0, description="the stop moves to entry once the peak is this many R in profit, > 0")]
Timeframe = Annotated[str, msgspec.Meta(
    pattern=r"^[1-9][0-9]{0,15}[mhd]$",
    description='"<n>m", "<n>h" or "<n>d" (e.g. "1m", "15m", "4h", "1d")')]
Symbol = Annotated[str, msgspec.Meta(min_length=1)]
Symbols = Annotated[list[Symbol], msgspec.Meta(min_length=1)]
StrategyName = Annotated[str, msgspec.Meta(
    min_length=1, description='a built-in ("sma_cross", "donchian_breakout", "rsi_reversion", '
                              '"sweep_bos") or a plug-in "package.module:function"')]
AbsolutePath = Annotated[str, msgspec.Meta(
    min_length=1, description="absolute path of a bars file (Parquet or CSV) or of a directory "
                              "of <SYMBOL>.csv / <SYMBOL>.parquet files")]
Objective = Annotated[str, msgspec.Meta(description="a metric name of the mode (SPEC 4)")]
# One value of a strategy parameter (a number, or a string such as direction "long").
StrategyValue = bool | int | float | str | None


def _dim(item):
    return Annotated[list[item], msgspec.Meta(min_length=1)] | None


class StrategySimulatorConfig(SimulatorConfig, **_PARAMS):
    """SPEC 2's config for strategy trades: the same fields, but ``gap_fill``
    defaults to ``"open"`` (SPEC 13)."""

    gap_fill: GapFill = "open"


class StrategyExitGrid(msgspec.Struct, **_PARAMS):
    """SPEC 13's exit grid, in grid order (``tp_r`` outermost). A dimension
    left out is the engine's one default; ``null`` in ``trail_r`` or
    ``breakeven_r`` is that exit switched off."""

    tp_r: _dim(TpR) = None
    sl_pct: _dim(SlPct) = None
    max_hold_hrs: _dim(HoldHrs) = None
    trail_r: _dim(TrailR | None) = None
    breakeven_r: _dim(BreakevenR | None) = None
    entry_delay_candles: _dim(EntryDelay) = None


class BarsSource(msgspec.Struct, **_PARAMS):
    """Where a strategy request's bars come from: a ``dataset_id`` of
    ``loadBars``, or a ``bars_path`` read for this request alone;
    ``symbols`` selects (default: every symbol)."""

    dataset_id: str | None = None
    bars_path: AbsolutePath | None = None
    symbols: Symbols | None = None


class LoadBarsParams(msgspec.Struct, **_PARAMS):
    """SPEC 13 ``loadBars``: bars cached like datasets (``listDatasets``
    lists them under ``bars``; ``dropDataset`` drops them)."""

    bars_path: AbsolutePath
    dataset_id: Annotated[str, msgspec.Meta(min_length=1)] | None = None
    symbols: Symbols | None = None


class BarsInfo(msgspec.Struct, **_RESULT):
    """What ``loadBars`` holds: symbols in byte order, bar counts, each
    symbol's base interval (0 for a symbol with one bar) and time span."""

    dataset_id: str
    symbols: list[str]
    bars: int
    bars_by_symbol: dict[str, int]
    base_interval_ms: dict[str, int]
    first_ts_ms: int | None
    last_ts_ms: int | None
    bytes: int


class OptimizeStrategyParams(BarsSource, **_PARAMS):
    """SPEC 13 ``optimizeStrategy``. Grid order: timeframe outermost (in the
    order of ``timeframes``), then ``strategy_grid`` in its keys' order as
    sent, then ``param_grid``. With ``folds``, the answer also has
    walkForward's ``folds``, ``aggregate`` and ``stitched``."""

    strategy: StrategyName
    strategy_grid: dict[str, Annotated[list[StrategyValue], msgspec.Meta(min_length=1)]] | None = None
    timeframes: Annotated[list[Timeframe], msgspec.Meta(min_length=1)]
    param_grid: StrategyExitGrid | None = None
    simulator_config: StrategySimulatorConfig | None = None
    mode: Mode = "capital"
    objective: Objective | None = None
    minimize: bool = False
    constraints: Constraints | None = None
    top_k: Annotated[int, msgspec.Meta(ge=0)] = 10
    include_all: bool = False
    per_symbol: bool = False
    plateau: Plateau | None = None
    stress: StressPreset | list[StressLane] | None = None
    rank_by: RankBy | None = None
    folds: FoldsSpec | None = None
    progress_token: str | int | None = None
    run_id: RunId | None = None
    checkpoint_dir: CheckpointDir | None = None
    restart: bool = False


class SimulateStrategyParams(BarsSource, **_PARAMS):
    """``simulate`` with a strategy (SPEC 13): one timeframe and one flat
    parameter set (the strategy's parameters and the exit parameters, as a
    point's ``params`` of ``optimizeStrategy``; its ``timeframe`` member, if
    any, must agree with ``timeframe``, and stands for it when that is left
    out)."""

    strategy: StrategyName
    timeframe: Timeframe | None = None
    params: dict[str, Any]
    simulator_config: StrategySimulatorConfig | None = None
    mode: Mode = "capital"
    include_trades: bool = True


class StrategyTradeRecord(TradeRecord, **_RESULT):
    """A section 4 trade record of a strategy: ``call_id`` is
    ``<symbol>:<timeframe>:<bar index>``, ``caller`` the symbol."""

    symbol: str
    direction: Literal["long", "short"]


class StrategyCapitalMetrics(CapitalMetrics, tag="capital", tag_field="mode", **_RESULT):
    completed_trades: list[StrategyTradeRecord] | msgspec.UnsetType = msgspec.UNSET


class StrategyPerTradeMetrics(PerTradeMetrics, tag="per_trade", tag_field="mode", **_RESULT):
    completed_trades: list[StrategyTradeRecord] | msgspec.UnsetType = msgspec.UNSET


StrategyMetrics = StrategyCapitalMetrics | StrategyPerTradeMetrics


class StrategyPoint(msgspec.Struct, **_RESULT):
    """``RankedPoint`` with ``params`` one flat object: ``timeframe``, the
    strategy's parameters, the exit parameters."""

    index: int
    rank: int
    feasible: bool
    params: dict[str, Any]
    metrics: Metrics
    plateau: float | None | msgspec.UnsetType = msgspec.UNSET
    lanes: dict[str, float | None] | msgspec.UnsetType = msgspec.UNSET
    worst_lane: str | msgspec.UnsetType = msgspec.UNSET
    maximin: float | None | msgspec.UnsetType = msgspec.UNSET


class SignalSets(msgspec.Struct, **_RESULT):
    """(timeframe, strategy params) sets: evaluated, and rejected (a
    combination the strategy cannot run, such as ``fast >= slow``)."""

    evaluated: int
    rejected: int


class SignalCount(msgspec.Struct, **_RESULT):
    """How many long and short signals one (timeframe, strategy params) set
    gave, over the selected symbols."""

    timeframe: str
    params: dict[str, Any]
    long: int
    short: int


class FailedSet(msgspec.Struct, **_RESULT):
    """A plug-in's (timeframe, params) set that failed on a symbol: its
    points are left out of the ranking."""

    symbol: str
    timeframe: str
    params: dict[str, Any]
    error: str


class SymbolResult(msgspec.Struct, **_RESULT):
    """``CallerResult`` of a symbol traded alone (``per_symbol``)."""

    symbol: str
    calls: int
    best_params: dict[str, Any] | None
    best_final_capital: float | None
    best_total_return: float | None
    best_metrics: Metrics | None
    collapsed_capital: bool
    requires_extreme_params: bool = False
    deflated_sharpe: float | None = None


class StrategyFoldResult(msgspec.Struct, **_RESULT):
    """``FoldResult`` of a strategy search: the chosen point's flat params."""

    index: int
    train_windows: list[list[int]]
    test_windows: list[list[int]]
    n_train: int
    n_test: int
    n_purged: int
    chosen_params: dict[str, Any] | None
    train_metrics: Metrics | None
    test_metrics: Metrics | None
    test_rank_pct: float | None
    spearman: float | None


class StrategyResult(msgspec.Struct, **_RESULT):
    """``optimize``'s answer with flat params, plus the signal sets."""

    objective: str
    minimize: bool
    best_params: dict[str, Any] | None
    best_final_capital: float | None
    best_total_return: float | None
    best_metrics: Metrics | None
    params_evaluated: int
    feasible_count: int
    top: list[StrategyPoint]
    signal_sets: SignalSets
    signals: list[SignalCount]
    failed_sets: list[FailedSet] = msgspec.field(default_factory=list)
    all_results: list[StrategyPoint] | msgspec.UnsetType = msgspec.UNSET
    deflated_sharpe: float | None = None
    per_symbol_results: dict[str, SymbolResult] | None = None
    # With ``folds`` (SPEC 12 on a strategy search): walkForward's fields; the
    # rest of the answer is the full-data search (walkForward's ``full``).
    folds: list[StrategyFoldResult] | msgspec.UnsetType = msgspec.UNSET
    aggregate: FoldAggregate | msgspec.UnsetType = msgspec.UNSET
    stitched: StitchedRun | None | msgspec.UnsetType = msgspec.UNSET
