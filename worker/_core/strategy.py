"""SPEC 13's search: a strategy's signals become calls, and the calls'
engine does the rest.

``plan_strategy`` runs the strategy on every (timeframe, parameter set) and
symbol, and gathers every signal set's trades into **one** ``Dataset`` on
the symbols' base bars (series keyed by symbol, caller = symbol), so the
daemon's pool, checkpoints and progress work on it as on any loaded dataset.
``optimize_strategy_flow`` then asks for one ``GridJob`` whose groups are
the signal sets (the bars are scanned once per request, as walk-forward
folds are) and ranks every (timeframe, params, exit) point as SPEC 5 does.

Decisions (SPEC is silent): a plug-in that fails on any symbol fails its
(timeframe, params) set, whose points are left out (``failed_sets`` names
the symbol and the error); ``per_symbol_results[s].calls`` counts symbol
``s``'s trades in its best point's signal set; a plateau's neighbours are
taken in the full grid (timeframes x strategy params x exit params), where a
rejected or failed set's points are absent, as infeasible points are;
``folds``: ``strategy_folds``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec
import numpy as np

from protocol import FailedSet, ParamGrid, SignalCount, SimulatorConfig

from .._errors import InvalidParams, ResourceLimit
from . import validate as v
from .bars import BarSet, check_timeframe, parse_timeframe, resample, select
from .dataset import CandleColumns, Dataset, KeyColumn, build_dataset
from .folds import base_interval_ms
from .optimize import Study
from .plugins import SignalError
from .rengine import StrategyLevels, exit_grid, strategy_levels
from .strategies import is_rejected, run_strategy, strategy_sets

MAX_SIGNALS = 20_000_000  # trades of every signal set together: ~1 GB of arrays


@dataclass(frozen=True)
class StrategyPlan:
    """A search's signal sets and their trades, ready to evaluate."""

    strategy: str
    symbols: tuple[str, ...]          # selected, byte order
    config: SimulatorConfig
    sets: list[tuple[str, dict]]      # evaluated (timeframe, strategy params), grid order
    set_positions: list[np.ndarray]   # request positions of each set's trades
    rejected: int
    signals: list[SignalCount]
    failed: list[FailedSet]
    dataset: Dataset
    levels: StrategyLevels
    # Decision: a point's params name ``direction`` only when the request's
    # strategy_grid does (SPEC 13's example point has none).
    direction_named: bool = True
    # The full grid's shape (timeframes, strategy params, exit params) and
    # each evaluated set's place in it (rejected and failed sets have none):
    # what SPEC 12's plateaus are taken over.
    grid_shape: tuple[int, ...] = ()
    set_numbers: tuple[int, ...] = ()
    # SPEC 12's [T0, T1) for strategies: the selected symbols' earliest base
    # bar and their latest + 1 ms, and their base interval (the default
    # embargo's I). From the bars, not from ``dataset``: its series are only
    # the symbols that signalled.
    t0_ms: int = 0
    t1_ms: int = 0
    base_interval_ms: int = 0

    @property
    def n_points(self) -> int:
        return len(self.sets) * self.levels.n_points

    def point_params(self, item: int) -> dict[str, Any]:
        tf, params = self.sets[item // self.levels.n_points]
        return {"timeframe": tf, **params, **self.levels.params[item % self.levels.n_points]}


def strategy_config(config: Any) -> SimulatorConfig:
    """The request's config; ``gap_fill`` defaults to ``"open"`` for strategies."""
    if config is None:
        return SimulatorConfig(gap_fill="open")
    if isinstance(config, msgspec.Struct):  # the wire's StrategySimulatorConfig, say
        config = msgspec.structs.asdict(config)
    if isinstance(config, dict) and "gap_fill" not in config:
        config = {**config, "gap_fill": "open"}
    return v.config(config)


def plan_strategy(bars: BarSet, *, strategy: str, strategy_grid: Any = None, timeframes: Any,
                  symbols: Any = None, grid: Any = None, config: Any = None,
                  max_points: int | None = None,
                  checkpoint: Callable[[], None] = lambda: None) -> StrategyPlan:
    """Signals of every (timeframe, params) set on every selected symbol, as
    one dataset of trades (module doc). Blocking; raises ``InvalidParams``.

    Cancellation: ``checkpoint`` is called before every signal set and may
    raise to stop the plan (the daemon passes anyio's
    ``from_thread.check_cancelled``: a cancelled request stops planning
    within one set)."""
    cfg = strategy_config(config)
    sym_idx = select(bars, symbols, "$.symbols")
    tfs = _timeframes(bars, sym_idx, timeframes)
    dims = exit_grid(grid)
    n_exit = math.prod(len(x) for x in dims.values())  # Python ints: no int64 wrap
    # The limit is checked before the strategy grid is expanded (10**20 sets
    # would hang, then exhaust memory, before any later check).
    all_sets = strategy_sets(strategy, strategy_grid, max_points=max_points,
                             points_per_set=len(tfs) * n_exit)
    named = isinstance(strategy_grid, dict) and "direction" in strategy_grid
    names = [bars.symbols[s] for s in sym_idx.tolist()]
    cols: dict[str, list] = {"ids": [], "sym": [], "ts": [], "dir": [], "stop": []}
    sets, set_pos, counts, failed, rejected = [], [], [], [], 0
    numbers = []
    for t, (tf, tf_ms) in enumerate(tfs):
        sampled = resample(bars, tf_ms, sym_idx)
        memos: list[dict] = [{} for _ in sampled.symbols]  # indicators shared by the sets
        for j, params in enumerate(all_sets):
            checkpoint()
            if is_rejected(strategy, params):
                rejected += 1
                continue
            shown = params if named else {k: x for k, x in params.items() if k != "direction"}
            out = _signal_set(strategy, sampled, params, tf, tf_ms, len(sets), memos)
            if isinstance(out, FailedSet):
                failed.append(msgspec.structs.replace(out, params=shown))
                continue
            start = len(cols["ids"])
            for key, values in out.items():
                cols[key].extend(values)
            if len(cols["ids"]) > MAX_SIGNALS:
                raise ResourceLimit(f"over {MAX_SIGNALS:,} signals", data={"path": "$.strategy_grid"})
            set_pos.append(np.arange(start, len(cols["ids"]), dtype=np.int64))
            d = np.asarray(out["dir"])
            counts.append(SignalCount(timeframe=tf, params=shown, long=int((d > 0).sum()),
                                      short=int((d < 0).sum())))
            sets.append((tf, shown))
            numbers.append(t * len(all_sets) + j)
    ds = _dataset(bars, sym_idx, names, cols)
    levels = strategy_levels(dims, cfg, np.array(cols["dir"], np.float64),
                             np.array(cols["stop"], np.float64))
    return StrategyPlan(strategy=strategy, symbols=tuple(names), config=cfg, sets=sets,
                        set_positions=set_pos, rejected=rejected, signals=counts, failed=failed,
                        dataset=ds, levels=levels, direction_named=named,
                        grid_shape=(len(tfs), *_set_dims(all_sets),
                                    *(len(x) for x in dims.values())),
                        set_numbers=tuple(numbers),
                        **_span(bars, sym_idx))


def _span(bars: BarSet, sym_idx: np.ndarray) -> dict[str, int]:
    """``t0_ms``, ``t1_ms`` and ``base_interval_ms`` of the selected symbols' bars."""
    views = [bars.symbol_view(s) for s in sym_idx.tolist()]
    ts = np.concatenate([v.ts_ms for v in views]) if views else np.zeros(0, np.int64)
    if ts.size == 0:
        return {"t0_ms": 0, "t1_ms": 0, "base_interval_ms": 0}
    offsets = np.cumsum([0] + [v.ts_ms.size for v in views])
    return {"t0_ms": int(ts.min()), "t1_ms": int(ts.max()) + 1,
            "base_interval_ms": base_interval_ms(ts, offsets)}


def _set_dims(all_sets: list[dict]) -> list[int]:
    """The strategy grid's length along each key (values are distinct)."""
    return [len({repr(p[k]) for p in all_sets}) for k in all_sets[0]] if all_sets else []


def _timeframes(bars: BarSet, sym_idx: np.ndarray, timeframes: Any) -> list[tuple[str, int]]:
    if not isinstance(timeframes, (list, tuple)) or not timeframes:
        raise InvalidParams("must be a non-empty list of timeframes", path="$.timeframes")
    out, seen = [], {}
    for i, tf in enumerate(timeframes):
        ms = parse_timeframe(tf, f"$.timeframes[{i}]")
        if ms in seen:
            raise InvalidParams(f"timeframe {tf!r} repeats $.timeframes[{seen[ms]}]",
                                path=f"$.timeframes[{i}]")
        seen[ms] = i
        check_timeframe(bars, sym_idx, ms, f"$.timeframes[{i}]")
        out.append((tf, ms))
    return out


def _signal_set(strategy: str, sampled: BarSet, params: dict, tf: str, tf_ms: int,
                set_no: int, memos: list[dict]) -> dict[str, list] | FailedSet:
    """One set's trades on every symbol, in SPEC 13's order (time, symbol
    bytes, bar index): each symbol's signals are in time order, so a stable
    sort by time of the symbols' concatenation (symbols in byte order) is it."""
    parts = []
    for s, sym in enumerate(sampled.symbols):
        bars = sampled.symbol_view(s)
        try:
            sig = run_strategy(strategy, bars, params, memos[s])
        except SignalError as exc:
            return FailedSet(symbol=sym, timeframe=tf, params=params, error=str(exc))
        idx = np.asarray(sig.index, np.int64)
        parts.append((sym, idx, bars.ts_ms[idx] + tf_ms, np.asarray(sig.direction, np.float64),
                      np.asarray(sig.stop, np.float64)))
    ts = np.concatenate([p[2] for p in parts]) if parts else np.zeros(0, np.int64)
    order = np.argsort(ts, kind="stable")
    sym = np.concatenate([np.full(p[1].size, k) for k, p in enumerate(parts)])[order]
    idx = np.concatenate([p[1] for p in parts])[order] if parts else np.zeros(0, np.int64)
    names = [p[0] for p in parts]
    return {"ids": [f"{set_no}|{names[k]}:{tf}:{i}" for k, i in zip(sym.tolist(), idx.tolist())],
            "sym": [names[k] for k in sym.tolist()], "ts": ts[order].tolist(),
            "dir": np.concatenate([p[3] for p in parts])[order].tolist(),
            "stop": np.concatenate([p[4] for p in parts])[order].tolist()}


def _dataset(bars: BarSet, sym_idx: np.ndarray, names: list[str], cols: dict) -> Dataset:
    """Every set's trades on the selected symbols' base bars (ids carry their
    set number before ``|``: one bar may signal in many sets)."""
    views = [bars.symbol_view(s) for s in sym_idx.tolist()]
    codes = np.concatenate([np.full(b.ts_ms.size, k, np.int32) for k, b in enumerate(views)])
    candles = CandleColumns(
        keys=KeyColumn(names=names, chunks=[(codes, None)]),
        **{f: np.concatenate([getattr(b, f) for b in views])
           for f in ("ts_ms", "open", "high", "low", "close", "volume")})
    return build_dataset(call_ids=cols["ids"], call_callers=cols["sym"], call_mints=cols["sym"],
                         call_ts_ms=np.array(cols["ts"], np.int64), candles=candles,
                         series_key="mint", on_bad_series="error", candles_sorted=True)


def make_strategy_study(plan: StrategyPlan, mode: Any, objective: Any, minimize: Any,
                        constraints: Any, plateau: Any = None, stress: Any = None,
                        rank_by: Any = None) -> Study:
    mode_ = v.mode(mode)
    lanes = v.stress(stress)
    rank = v.rank_by(rank_by, lanes is not None)
    return Study(config=plan.config, mode=mode_, objective=v.objective(objective, mode_),
                 minimize=v.flag(minimize, "$.minimize"),
                 constraints=v.constraints(constraints, mode_), grid=ParamGrid(),
                 positions=np.arange(plan.dataset.n_calls), plateau=v.plateau(plateau, rank),
                 lanes=lanes, rank_by=rank)
