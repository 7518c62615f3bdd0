"""Batch run configs (``optimizer-worker run CONFIG.yaml``), validated by
msgspec; an error names the bad key as a path and the line it is on."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

from protocol import (
    Constraints,
    FoldsSpec,
    Mode,
    ParamGrid,
    PboSpec,
    Plateau,
    RankBy,
    SimulatorConfig,
    StrategyExitGrid,
    StrategySimulatorConfig,
    StressLane,
    StressPreset,
)

from .._core.bars import parse_timeframe
from .._core.strategies import check_strategy_name
from .._errors import InvalidParams, split_msgspec_error
from .._report.text import DIMENSIONS, EXTENDED
from .yaml_errors import located

_STRICT = dict(frozen=True, kw_only=True, forbid_unknown_fields=True)


class DemoData(msgspec.Struct, **_STRICT):
    """The built-in synthetic dataset (``optimizer-worker demo``'s)."""

    calls: Annotated[int, msgspec.Meta(ge=1)] = 1_000
    candles: Annotated[int, msgspec.Meta(ge=1)] = 2_880
    callers: Annotated[int, msgspec.Meta(ge=1)] = 25
    seed: int = 7


class DataConfig(msgspec.Struct, **_STRICT):
    """Files (paths relative to the config file), or the demo dataset."""

    calls: str | None = None
    candles: str | None = None
    demo: DemoData | None = None
    series_key: Literal["call_id", "mint"] = "call_id"
    on_bad_series: Literal["error", "drop"] = "error"


class GroupedConfig(msgspec.Struct, **_STRICT):
    filter_collapsed: bool = True
    filter_extreme: bool = True
    grouped_params: Literal["mean", "optimize"] = "mean"


class ReportConfig(msgspec.Struct, **_STRICT):
    """How the report is drawn, not what the run computes (so it is not
    fingerprinted: changing it still resumes). ``heatmaps``: pairs of grid
    dimensions ``[x, y]`` (column names: ``tp_mult``, ``trail_pct``, ...),
    one heatmap each instead of tp x sl per hold; ``[]``: none."""

    heatmaps: list[Annotated[list[str], msgspec.Meta(min_length=2, max_length=2)]] | None = None


class ExecutorConfig(msgspec.Struct, **_STRICT):
    """Where the grid work runs (not what it computes: not fingerprinted).
    ``kind: local``: ``workers`` (threads, or a pool of that many processes);
    ``kind: ray``: the Ray cluster at ``address`` (SPEC 14, docs/cluster.md)."""

    kind: Literal["local", "ray"] = "local"
    address: Annotated[str, msgspec.Meta(min_length=1)] | None = None

    def __post_init__(self) -> None:
        if self.kind == "ray" and self.address is None:
            raise ValueError("`kind: ray` needs an `address` (HOST:PORT of the cluster's head)")


class RunConfig(msgspec.Struct, **_STRICT):
    data: DataConfig
    # The issue's ``kind: walk_forward`` is this key's ``walk_forward``; ``run: strategy``
    # configs decode as StrategyRunConfig (SPEC 13) instead.
    run: Literal["optimize", "per_caller", "grouped", "walk_forward"] = "optimize"
    mode: Mode = "capital"
    param_grid: ParamGrid = msgspec.field(default_factory=ParamGrid)
    simulator_config: SimulatorConfig = msgspec.field(default_factory=SimulatorConfig)
    objective: str | None = None
    minimize: bool = False
    constraints: Constraints = msgspec.field(default_factory=Constraints)
    caller_groups: list[str] | None = None
    top_k: Annotated[int, msgspec.Meta(ge=0)] = 10
    grouped: GroupedConfig = msgspec.field(default_factory=GroupedConfig)
    extreme_sl_below: float = 0.88
    extreme_tp_above: float = 4.0
    output: str = "runs/run"
    workers: Annotated[int, msgspec.Meta(ge=0)] = 0
    executor: ExecutorConfig | None = None
    report: ReportConfig = msgspec.field(default_factory=ReportConfig)
    # SPEC 12. ``folds`` (required) and ``pbo``: walk_forward only; ``plateau``,
    # ``rank_by``, ``stress``: optimize and walk_forward (the train choice and
    # the full-data optimize).
    folds: FoldsSpec | None = None
    pbo: PboSpec | None = None
    plateau: Plateau | None = None
    stress: StressPreset | Annotated[list[StressLane], msgspec.Meta(min_length=1)] | None = None
    rank_by: RankBy | None = None


# SPEC 12's keys: left out of a run's fingerprint when not given, so a run
# directory made before they existed still resumes.
SPEC12_KEYS = ("folds", "pbo", "plateau", "stress", "rank_by")


# ------------------------------------------------------------ SPEC 13: run: strategy

EXIT_KEYS = tuple(StrategyExitGrid.__struct_fields__)     # grid order


class StrategyRunConfig(msgspec.Struct, **_STRICT):
    """``run: strategy`` (the issue's ``kind: strategy``): a strategy's
    parameters x timeframes x the exit grid over bars (SPEC 13). ``bars``: a
    file or a directory of ``<SYMBOL>.parquet|csv`` (relative to the config
    file); ``param_grid`` is SPEC 13's exit grid (``tp_r``, ``sl_pct``, ...)."""

    run: Literal["strategy"]
    bars: str
    strategy: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    timeframes: Annotated[list[str], msgspec.Meta(min_length=1)]
    # Checked by strategy_error (msgspec would name a dict's value ``[...]``).
    strategy_grid: dict[str, Any] | None = None
    symbols: Annotated[list[str], msgspec.Meta(min_length=1)] | None = None
    per_symbol: bool = False
    mode: Mode = "capital"
    param_grid: StrategyExitGrid = msgspec.field(default_factory=StrategyExitGrid)
    # gap_fill defaults to "open" here (SPEC 13).
    simulator_config: StrategySimulatorConfig = msgspec.field(
        default_factory=StrategySimulatorConfig)
    objective: str | None = None
    minimize: bool = False
    constraints: Constraints = msgspec.field(default_factory=Constraints)
    top_k: Annotated[int, msgspec.Meta(ge=0)] = 10
    max_points: Annotated[int, msgspec.Meta(ge=1)] = 1_000_000
    output: str = "runs/strategy"
    workers: Annotated[int, msgspec.Meta(ge=0)] = 0
    executor: ExecutorConfig | None = None
    report: ReportConfig = msgspec.field(default_factory=ReportConfig)
    plateau: Plateau | None = None
    stress: StressPreset | Annotated[list[StressLane], msgspec.Meta(min_length=1)] | None = None
    rank_by: RankBy | None = None

    def exit_grid(self) -> dict:
        """The exit grid as the engine takes it: the keys given, in grid order."""
        return {k: v for k in EXIT_KEYS if (v := getattr(self.param_grid, k)) is not None}


def _strategy_kind(text: str) -> bool:
    """Does the YAML ask for ``run: strategy``? (Anything unreadable is left
    to the typed decode, which reports it.)"""
    try:
        raw = msgspec.yaml.decode(text.encode())
    except msgspec.DecodeError:
        return False
    return isinstance(raw, dict) and raw.get("run") == "strategy"


def _load_strategy(path: Path, text: str) -> StrategyRunConfig:
    try:
        cfg = msgspec.yaml.decode(text.encode(), type=StrategyRunConfig)
    except msgspec.ValidationError as exc:
        raise located(path, text, *split_msgspec_error(exc)) from None
    bad = strategy_error(cfg)
    if bad is not None:
        raise located(path, text, *bad)
    base = path.parent
    return msgspec.structs.replace(cfg, output=os.path.normpath(base / cfg.output),
                                   bars=os.path.normpath(base / cfg.bars))


def strategy_error(cfg: StrategyRunConfig) -> tuple[str, str] | None:
    """(message, JSON path) of the first key of a strategy run that cannot
    be right whatever the bars: the strategy's name, timeframes' spelling,
    duplicates, heatmap axes, stress lanes. The values of strategy
    parameters and the timeframes' fit to the bars are the engine's checks
    (run before anything is written, located by the runner)."""
    try:  # the engine's own checks of the name and of each timeframe's spelling
        check_strategy_name(cfg.strategy)
        spans = [parse_timeframe(tf, f"$.timeframes[{i}]") for i, tf in enumerate(cfg.timeframes)]
    except InvalidParams as exc:
        return exc.message.removesuffix(f" (at {exc.path})"), exc.path
    seen: dict[int, int] = {}
    for i, ms in enumerate(spans):
        if ms in seen:
            return (f"the same timeframe as timeframes[{seen[ms]}]", f"$.timeframes[{i}]")
        seen[ms] = i
    for dim, values in (cfg.strategy_grid or {}).items():
        where = f"$.strategy_grid.{dim}"
        if not isinstance(values, list) or not values:
            return "must be a non-empty list of values", where
        for j, v in enumerate(values):
            if isinstance(v, bool) or not isinstance(v, (int, float, str, type(None))):
                return "must be a number, a string or null", f"{where}[{j}]"
    for i, sym in enumerate(cfg.symbols or []):
        if sym in (cfg.symbols or [])[:i]:
            return f"duplicate symbol {sym!r:.40}", f"$.symbols[{i}]"
    grids = [("strategy_grid", cfg.strategy_grid or {}),
             ("param_grid", cfg.exit_grid())]
    for key, grid in grids:
        for dim, values in grid.items():
            for j, v in enumerate(values):
                if v in values[:j]:
                    return f"duplicate value {v!r:.40}", f"$.{key}.{dim}[{j}]"
    axes = set(cfg.strategy_grid or {}) | set(cfg.exit_grid()) | {"timeframe"}
    seen_pairs = set()
    for i, pair in enumerate(cfg.report.heatmaps or []):
        for j, dim in enumerate(pair):
            if dim not in axes:
                return (f"{dim!r:.60} is not a dimension of this run's grid; one of "
                        f"{', '.join(sorted(axes))}", f"$.report.heatmaps[{i}][{j}]")
        repeated = _pair_error(pair, i, seen_pairs)
        if repeated:
            return repeated
    return _lanes_error(cfg)


def load_config(path: str | Path) -> tuple[RunConfig | StrategyRunConfig, str]:
    """The config at ``path`` and its text; relative data paths and the
    output directory are resolved against the config file's directory.
    ``run: strategy`` configs are a ``StrategyRunConfig`` (SPEC 13)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise InvalidParams(f"cannot read config {path}: {exc.strerror}", path="$") from None
    if _strategy_kind(text):
        return _load_strategy(path, text), text
    try:
        cfg = msgspec.yaml.decode(text.encode(), type=RunConfig)
    except msgspec.ValidationError as exc:
        raise located(path, text, *split_msgspec_error(exc)) from None
    except msgspec.DecodeError as exc:
        raise InvalidParams(f"{path}: not valid YAML: {exc}", path="$") from None
    data = cfg.data
    given = (data.calls is not None or data.candles is not None, data.demo is not None)
    if given[0] == given[1] or (given[0] and (data.calls is None or data.candles is None)):
        raise located(path, text, "give data.calls and data.candles (files), or data.demo "
                                   "(the synthetic dataset), not both", "$.data")
    for check in (heatmap_error, robust_error):
        bad = check(cfg)
        if bad is not None:
            raise located(path, text, *bad)
    base = path.parent
    resolved = msgspec.structs.replace(
        cfg, output=os.path.normpath(base / cfg.output),
        data=msgspec.structs.replace(
            data, calls=None if data.calls is None else os.path.normpath(base / data.calls),
            candles=None if data.candles is None else os.path.normpath(base / data.candles)))
    return resolved, text


def heatmap_error(cfg: RunConfig) -> tuple[str, str] | None:
    """(message, JSON path) of the first bad ``report.heatmaps`` entry: an
    axis must be a dimension of this run's grid, a pair two of them, once."""
    seen = set()
    for i, pair in enumerate(cfg.report.heatmaps or []):
        for j, name in enumerate(pair):
            if name not in DIMENSIONS:
                return (f"unknown grid dimension {name!r:.60}; one of {', '.join(DIMENSIONS)}",
                        f"$.report.heatmaps[{i}][{j}]")
            if name in EXTENDED and getattr(cfg.param_grid, name) is None:
                # Every point has its default: an axis of one value.
                return (f"{name} is not a dimension of this run's grid (give "
                        f"param_grid.{name})", f"$.report.heatmaps[{i}][{j}]")
        repeated = _pair_error(pair, i, seen)
        if repeated:
            return repeated
    return None


def _pair_error(pair: list, i: int, seen: set) -> tuple[str, str] | None:
    """A heatmap pair naming one dimension twice, or given twice; records it."""
    if pair[0] == pair[1]:
        return "a heatmap needs two different dimensions", f"$.report.heatmaps[{i}][1]"
    if tuple(pair) in seen:
        return f"the pair {pair} is given twice", f"$.report.heatmaps[{i}]"
    seen.add(tuple(pair))
    return None


def robust_error(cfg: RunConfig) -> tuple[str, str] | None:
    """(message, JSON path) of the first SPEC 12 key that does not fit the
    run: which kinds take which keys, the keys of each fold scheme, lane
    names, and what ``rank_by`` needs. Checks that need the data (do the
    folds fit?) are the engine's, before anything is written (runner)."""
    wf = cfg.run == "walk_forward"
    if wf and cfg.folds is None:
        return "run: walk_forward needs folds: {scheme, train_days, test_days, ...}", "$.folds"
    for key in ("folds", "pbo"):
        if not wf and getattr(cfg, key) is not None:
            return f"{key} is for run: walk_forward (this run is {cfg.run})", f"$.{key}"
    return _lanes_error(cfg) or _folds_error(cfg)


def _lanes_error(cfg) -> tuple[str, str] | None:
    """Stress lane names once each; ``rank_by: maximin`` needs lanes."""
    if isinstance(cfg.stress, list):
        seen: dict[str, int] = {}
        for i, lane in enumerate(cfg.stress):
            if lane.name in seen:
                return (f"duplicate lane name {lane.name!r:.40} (first at index "
                        f"{seen[lane.name]})", f"$.stress[{i}].name")
            seen[lane.name] = i
    if cfg.rank_by == "maximin" and cfg.stress is None:
        return "rank_by maximin needs stress lanes (give stress)", "$.rank_by"
    return None


def _folds_error(cfg: RunConfig) -> tuple[str, str] | None:
    f = cfg.folds
    if f is not None:
        rolling = f.scheme != "cpcv"
        own = ("train_days", "test_days", "step_days") if rolling else ("n_groups",
                                                                         "n_test_groups")
        other = ("n_groups", "n_test_groups") if rolling else ("train_days", "test_days",
                                                               "step_days")
        for key in other:
            if getattr(f, key) is not None:
                return (f"{key} is not a key of {f.scheme} folds; they take "
                        f"{', '.join(own)} (and embargo_hrs)", f"$.folds.{key}")
        for key in ("train_days", "test_days") if rolling else ():
            if getattr(f, key) is None:
                return f"{f.scheme} folds need {key}", "$.folds"
        if not rolling and (f.n_test_groups or 2) >= (f.n_groups or 6):
            return (f"must be less than n_groups ({f.n_groups or 6}), got "
                    f"{f.n_test_groups or 2}", "$.folds.n_test_groups")
    if cfg.pbo is not None and cfg.pbo.blocks % 2:
        return f"must be an even number of blocks, got {cfg.pbo.blocks}", "$.pbo.blocks"
    return None
