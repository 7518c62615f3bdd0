"""Params and results of every JSON-RPC method of SPEC section 7.

Field names are the earlier Python scripts' (``calls``, ``candles_by_call_id``,
``param_grid``, ``simulator_config``, ``caller_groups``, ``filter_collapsed``,
``filter_extreme``), so the TypeScript CLI's payloads decode unchanged.
Params reject unknown fields: a misspelt option must not silently change a
result. Range rules live in the ``Meta`` bounds of ``_params``; the worker
re-checks what a schema cannot say (duplicates, finite numbers).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from ._params import (
    CheckpointDir,
    Constraints,
    FoldsSpec,
    Mode,
    ParamGrid,
    Params,
    PboSpec,
    Plateau,
    RankBy,
    RunId,
    SimulatorConfig,
    StressLane,
    StressPreset,
)
from ._results import (
    GroupedResult,
    Metrics,
    OptimizeResult,
    PerCallerResult,
    WalkForwardResult,
)
from ._strategy import (
    BarsInfo,
    LoadBarsParams,
    OptimizeStrategyParams,
    SimulateStrategyParams,
    StrategyMetrics,
    StrategyResult,
)

_PARAMS = dict(frozen=True, kw_only=True, forbid_unknown_fields=True)
_RESULT = dict(frozen=True, kw_only=True)

SeriesKey = Literal["call_id", "mint"]
OnBadSeries = Literal["error", "drop"]
Objective = Annotated[str, msgspec.Meta(description="a metric name of the mode (SPEC 4)")]


class Call(msgspec.Struct, **_PARAMS):
    id: str
    caller: str
    ts_ms: int
    mint: str = ""


class CandleRow(msgspec.Struct, **_PARAMS):
    """The CLI's row shape; ``timestamp`` is in seconds."""

    timestamp: float
    open: float
    high: float
    low: float
    close: float
    volume: float | None = None


class CandlesColumnar(msgspec.Struct, **_PARAMS):
    key: list[str]
    ts_ms: list[int]
    open: list[float]
    high: list[float]
    low: list[float]
    close: list[float]
    volume: list[float] | None = None


class DataSource(msgspec.Struct, **_PARAMS):
    """Where a request's data comes from: a loaded ``dataset_id``, or exactly
    one inline source (rows, columns or files)."""

    dataset_id: str | None = None
    calls: list[Call] | None = None
    candles_by_call_id: dict[str, list[CandleRow]] | None = None
    candles_columnar: CandlesColumnar | None = None
    calls_path: str | None = None
    candles_path: str | None = None
    series_key: SeriesKey = "call_id"
    on_bad_series: OnBadSeries = "error"


class InitializeParams(msgspec.Struct, frozen=True, kw_only=True):
    """Unknown fields are allowed here: clients announce themselves freely,
    and nothing they add can change a result."""

    client: dict[str, Any] | str | None = None


class InitializeResult(msgspec.Struct, **_RESULT):
    server: str
    version: str
    protocol_version: str
    methods: list[str]
    capabilities: dict[str, Any]


class Empty(msgspec.Struct, **_PARAMS):
    """Params of methods that take none, and the ``{}`` result."""


class LoadDatasetParams(DataSource, **_PARAMS):
    pass


class Dropped(msgspec.Struct, **_RESULT):
    count: int
    keys: list[str]


class DatasetInfo(msgspec.Struct, **_RESULT):
    dataset_id: str
    series_key: SeriesKey
    calls: int
    callers: int
    series: int
    candles: int
    calls_with_entry: int
    bytes: int
    dropped: Dropped


class DatasetIdParams(msgspec.Struct, **_PARAMS):
    dataset_id: str


class DropDatasetResult(msgspec.Struct, **_RESULT):
    dataset_id: str
    dropped: bool
    bytes_freed: int


class ListDatasetsResult(msgspec.Struct, **_RESULT):
    """``datasets``: the calls datasets; ``bars``: what ``loadBars`` holds
    (SPEC 13). ``bytes`` counts both."""

    datasets: list[DatasetInfo]
    bytes: int
    budget_bytes: int
    bars: list[BarsInfo] = msgspec.field(default_factory=list)


class SimulateParams(DataSource, **_PARAMS):
    """``simulate`` of calls. With a ``strategy`` member the params are
    ``SimulateStrategyParams`` instead (SPEC 13), and the result is
    ``StrategyMetrics`` (trades with ``symbol`` and ``direction``)."""

    params: Params
    simulator_config: SimulatorConfig | None = None
    mode: Mode = "capital"
    include_trades: bool = True
    caller_groups: list[str] | None = None


class OptimizeParams(DataSource, **_PARAMS):
    param_grid: ParamGrid | None = None
    simulator_config: SimulatorConfig | None = None
    mode: Mode = "capital"
    objective: Objective | None = None
    minimize: bool = False
    constraints: Constraints | None = None
    top_k: Annotated[int, msgspec.Meta(ge=0)] = 10
    include_all: bool = False
    caller_groups: list[str] | None = None
    progress_token: str | int | None = None
    run_id: RunId | None = None
    checkpoint_dir: CheckpointDir | None = None
    restart: bool = False
    extreme_sl_below: float = 0.88
    extreme_tp_above: float = 4.0
    # SPEC 12 (optimize): plateau values, stress lanes, and what ranks the points.
    plateau: Plateau | None = None
    stress: StressPreset | list[StressLane] | None = None
    rank_by: RankBy | None = None


class WalkForwardParams(OptimizeParams, **_PARAMS):
    """SPEC 12: ``optimize``'s params plus the folds (and ``pbo`` when asked)."""

    folds: FoldsSpec
    pbo: PboSpec | None = None


class GroupedEvalParams(OptimizeParams, **_PARAMS):
    filter_collapsed: bool = True
    filter_extreme: bool = True
    grouped_params: Literal["mean", "optimize"] = "mean"


class CancelParams(msgspec.Struct, **_PARAMS):
    id: str | int


class CancelResult(msgspec.Struct, **_RESULT):
    cancelled: bool


class StatsResult(msgspec.Struct, **_RESULT):
    datasets: int
    bytes: int
    budget_bytes: int
    requests_in_flight: int
    pool_size: int
    pool_alive: int
    pool_restarts: int
    pool_stalled: int        # of the restarts: processes killed as stalled (no reply in time)
    pool_span_retries: int   # spans lost with their process and retried on another
    pool_pids: list[int]
    uptime_s: float


class ProgressBest(msgspec.Struct, **_RESULT):
    """The best feasible grid point among those evaluated so far, ranked as
    the answer ranks (SPEC 5: objective, ties by grid order)."""

    objective: str
    value: float
    params: Params


class ProgressValue(msgspec.Struct, **_RESULT):
    """``best``: of ``optimize`` (and a grouped run's own grid), once a
    feasible point has been evaluated; null before that and for per-caller
    work, whose callers each have their own best."""

    kind: Literal["begin", "report", "end"]
    done: int
    total: int
    unit: str
    elapsed_ms: float
    best: ProgressBest | None = None


class CheckpointParams(msgspec.Struct, **_RESULT):
    """Sent each time a checkpointed run's progress has become durable."""

    token: str | int | None
    run_id: str
    done: int
    total: int
    path: str


class ProgressParams(msgspec.Struct, **_RESULT):
    token: str | int
    value: ProgressValue


# method name -> (params type, result type): the table the dispatcher, the
# schema and the TypeScript client are built from.
METHODS: dict[str, tuple[type, Any]] = {
    "initialize": (InitializeParams, InitializeResult),
    "ping": (Empty, Empty),
    "loadDataset": (LoadDatasetParams, DatasetInfo),
    "dropDataset": (DatasetIdParams, DropDatasetResult),
    "listDatasets": (Empty, ListDatasetsResult),
    "simulate": (SimulateParams, Metrics),
    "optimize": (OptimizeParams, OptimizeResult),
    "optimizePerCaller": (OptimizeParams, PerCallerResult),
    "groupedEval": (GroupedEvalParams, GroupedResult),
    "walkForward": (WalkForwardParams, WalkForwardResult),
    "loadBars": (LoadBarsParams, BarsInfo),
    "optimizeStrategy": (OptimizeStrategyParams, StrategyResult),
    "cancel": (CancelParams, CancelResult),
    "stats": (Empty, StatsResult),
    "shutdown": (Empty, Empty),
}

# A method's second params shape, told apart by one member's presence:
# method -> (member, params type, result type). The dispatcher decodes
# METHODS' type; the daemon's handler decodes this one when the member is
# there. The schema lists these types under $defs.
VARIANTS: dict[str, tuple[str, type, Any]] = {
    "simulate": ("strategy", SimulateStrategyParams, StrategyMetrics),
}

NOTIFICATIONS: dict[str, type] = {
    "$/cancelRequest": CancelParams,   # client -> worker
    "$/progress": ProgressParams,      # worker -> client
    "$/checkpoint": CheckpointParams,  # worker -> client
}
