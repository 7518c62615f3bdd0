"""Wire types of the optimizer worker (SPEC sections 2-7, 12, 13).

Every type is a frozen, keyword-only ``msgspec.Struct``; ``schema.json``
beside this file is generated from them.
"""

from ._params import (
    DEFAULT_HOLD_HRS,
    DEFAULT_SL_MULTS,
    DEFAULT_TP_MULTS,
    EXTENDED_DEFAULTS,
    Constraints,
    FoldsSpec,
    GapFill,
    Intrabar,
    Mode,
    ParamGrid,
    Params,
    PboSpec,
    Plateau,
    RankBy,
    SimulatorConfig,
    StressLane,
    StressPreset,
)
from ._results import (
    CallerResult,
    CapitalMetrics,
    FoldAggregate,
    FoldResult,
    GroupedResult,
    Metrics,
    OptimizeResult,
    PboResult,
    PerCallerResult,
    PerTradeMetrics,
    RankedPoint,
    StitchedRun,
    TradeRecord,
    WalkForwardResult,
)
from ._strategy import (
    BarsInfo,
    FailedSet,
    LoadBarsParams,
    OptimizeStrategyParams,
    SignalCount,
    SignalSets,
    SimulateStrategyParams,
    StrategyCapitalMetrics,
    StrategyExitGrid,
    StrategyFoldResult,
    StrategyMetrics,
    StrategyPerTradeMetrics,
    StrategyPoint,
    StrategyResult,
    StrategySimulatorConfig,
    StrategyTradeRecord,
    SymbolResult,
)

__all__ = [
    "DEFAULT_HOLD_HRS", "DEFAULT_SL_MULTS", "DEFAULT_TP_MULTS", "EXTENDED_DEFAULTS",
    "CallerResult", "CapitalMetrics", "Constraints", "GapFill", "GroupedResult",
    "Intrabar", "Metrics",
    "Mode", "OptimizeResult", "ParamGrid", "Params", "PerCallerResult",
    "PerTradeMetrics", "Plateau", "RankBy", "RankedPoint", "SimulatorConfig", "StressLane",
    "StressPreset", "TradeRecord", "FoldsSpec", "PboSpec", "FoldAggregate", "FoldResult",
    "PboResult", "StitchedRun", "WalkForwardResult",
    # SPEC 13
    "BarsInfo", "FailedSet", "LoadBarsParams", "OptimizeStrategyParams", "SignalCount",
    "SignalSets", "SimulateStrategyParams", "StrategyCapitalMetrics", "StrategyExitGrid",
    "StrategyMetrics", "StrategyPerTradeMetrics", "StrategyPoint", "StrategyFoldResult", "StrategyResult",
    "StrategySimulatorConfig", "StrategyTradeRecord", "SymbolResult",
]
