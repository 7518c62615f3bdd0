"""SPEC 13's ``optimizeStrategy`` and ``simulate`` with a strategy, on a
``strategy.StrategyPlan``: the flow, its ranking and the answer's shape.

The flow asks for one ``GridJob`` whose groups are the signal sets (item
``set * n_exit_points + exit point``: grid order, timeframe outermost), and
with ``per_symbol`` one more whose groups are (symbol, set) pairs. Ranking,
feasibility and the deflated Sharpe ratio are ``optimize``'s.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Generator
from typing import Any

import msgspec
import numpy as np

from protocol import (
    SignalSets,
    StrategyCapitalMetrics,
    StrategyPerTradeMetrics,
    StrategyPoint,
    StrategyResult,
    StrategyTradeRecord,
    SymbolResult,
)

from .._errors import InvalidParams
from . import validate as v
from .bars import BarSet
from .jobs import Flow, GridJob
from .lanes import Robustness, lane_objectives_flow, robustness
from .layouts import (
    CALL_ENTRY_PX,
    CALL_ENTRY_TS,
    ENTERED,
    EXIT_REASONS,
    REC_EXIT_PX,
    REC_EXIT_REASON,
    REC_EXIT_TS,
    REC_PNL,
    REC_SIZE,
    REC_STATUS,
)
from .metrics import to_metrics
from .optimize import Study, best_deflated_sharpe, best_of
from .rengine import EXIT_DIMS, run_point
from .robust import grid_lattice, plateau_values
from .strategy import StrategyPlan, make_strategy_study, plan_strategy
from .strategy_folds import fold_groups, fold_plan, folds_result

__all__ = ["optimize_strategy_flow", "simulate_strategy", "strategy_result"]


def optimize_strategy_flow(plan: StrategyPlan, *, mode: Any = None, objective: Any = None,
                           minimize: bool = False, constraints: Any = None, top_k: int = 10,
                           include_all: bool = False, per_symbol: bool = False,
                           stress: Any = None, plateau: Any = None, rank_by: Any = None,
                           folds: Any = None) -> Flow[StrategyResult]:
    """Every (timeframe, params, exit) point of the plan, ranked (SPEC 5, 13)."""
    if not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 0:
        raise InvalidParams("must be a non-negative integer", path="$.top_k")
    include_all = v.flag(include_all, "$.include_all")
    per_symbol = v.flag(per_symbol, "$.per_symbol")
    study = make_strategy_study(plan, mode, objective, minimize, constraints, plateau, stress,
                                rank_by)
    everything = np.arange(plan.dataset.n_calls)
    groups = tuple(plan.set_positions)
    folded = None if folds is None else fold_plan(plan, folds)
    if folded is None:
        arrays = yield GridJob(plan.levels, everything, None, study.config, study.mode,
                               groups=groups)
        robust = yield from strategy_robustness(plan, study, arrays[0], groups)
    else:
        # One job: every fold's train and test trades per set, then the sets.
        n_folds, n_sets = len(folded[1]), len(groups)
        all_groups = fold_groups(plan, folded[2])
        every = yield GridJob(plan.levels, everything, None, study.config, study.mode,
                              groups=all_groups)
        arrays = tuple(a[-plan.n_points:] for a in every)
        # Plateaus and lanes on each fold's train trades and on all of them.
        trains = [g for k in range(n_folds) for g in all_groups[2 * k * n_sets:
                                                                 (2 * k + 1) * n_sets]]
        rows = np.concatenate([np.arange(2 * k * plan.n_points, (2 * k + 1) * plan.n_points)
                               for k in range(n_folds)] +
                              [np.arange(every[0].shape[0] - plan.n_points, every[0].shape[0])])
        both = yield from strategy_robustness(plan, study, every[0][rows], (*trains, *groups))
        robust = _part(both, n_folds, plan.n_points)
    by_symbol = None
    if per_symbol:
        caller = plan.dataset.call_caller
        groups = tuple(pos[caller[pos] == s] for s in range(len(plan.dataset.caller_names))
                       for pos in plan.set_positions)
        by_symbol = yield GridJob(plan.levels, everything, None, study.config, study.mode,
                                  groups=groups)
    result = strategy_result(plan, study, arrays, top_k, include_all, by_symbol, robust)
    if folded is None:
        return result
    fold_rows, aggregate, stitched = folds_result(
        plan, study, *folded, every, lambda k: _part(both, k, plan.n_points))
    return msgspec.structs.replace(result, folds=fold_rows, aggregate=aggregate,
                                   stitched=stitched)


def _part(robust: Robustness, k: int, n: int) -> Robustness:
    """Rows ``k * n : (k + 1) * n`` of a ``Robustness`` over several blocks."""
    rows = slice(k * n, (k + 1) * n)

    def cut(a):
        return None if a is None else a[..., rows]

    return dataclasses.replace(robust, plateau=cut(robust.plateau),
                               lane_objective=cut(robust.lane_objective),
                               maximin=cut(robust.maximin), worst_lane=cut(robust.worst_lane))


def strategy_robustness(plan: StrategyPlan, study: Study, metrics: np.ndarray, groups,
                        ) -> Generator[GridJob, Any, Robustness]:
    """SPEC 12 on a strategy's points (``lanes``' mechanism): plateaus over
    the full grid, each stress lane one more job over every signal set (a
    lane's delay shifts every entry configuration's; its fees and fills
    replace the request's)."""
    def lane_levels(lane, config):
        return dataclasses.replace(
            plan.levels, entry_delay=plan.levels.entry_delay + (lane.entry_delay_candles or 0),
            gap_open=config.gap_fill == "open")

    lanes = yield from lane_objectives_flow(study, plan.levels, metrics,
                                            np.arange(plan.dataset.n_calls), groups=groups,
                                            lane_levels=lane_levels)
    return robustness(study, plan.levels, metrics, lanes, block=plan.n_points,
                      plateau_of=lambda obj, ok: _plateau(plan, study, obj, ok))


def _plateau(plan: StrategyPlan, study: Study, objective: np.ndarray,
             feasible: np.ndarray) -> np.ndarray:
    """Plateau values of the evaluated points, their neighbours taken in the
    full grid (``strategy`` module doc)."""
    n = plan.levels.n_points
    full = (np.asarray(plan.set_numbers, np.int64)[:, None] * n + np.arange(n)).ravel()
    size = int(np.prod(plan.grid_shape)) if plan.grid_shape else 0
    obj, ok = np.full(size, np.nan), np.zeros(size, bool)
    obj[full], ok[full] = objective, feasible
    values = plateau_values(grid_lattice(plan.grid_shape), obj, ok, study.plateau.radius,
                            study.plateau.stat, study.minimize)
    return values[full]


def strategy_result(plan: StrategyPlan, study: Study, arrays, top_k: int, include_all: bool,
                    by_symbol=None, robust: Robustness | None = None) -> StrategyResult:
    metrics = arrays[0]
    robust = robust or Robustness()
    order, feasible, best = best_of(study, metrics, robust.ranking_values(study, metrics))
    ranks = np.empty(order.size, np.int64)
    ranks[order] = np.arange(1, order.size + 1)

    def points(idx: np.ndarray) -> list[StrategyPoint]:
        return [StrategyPoint(index=int(i), rank=int(ranks[i]), feasible=bool(feasible[i]),
                              params=plan.point_params(int(i)),
                              metrics=_metrics(study, arrays, int(i)), **robust.point(int(i)))
                for i in idx.tolist()]

    best_metrics = None if best is None else _metrics(study, arrays, best)
    return StrategyResult(
        objective=study.objective, minimize=study.minimize,
        best_params=None if best is None else plan.point_params(best),
        best_final_capital=getattr(best_metrics, "final_capital", None),
        best_total_return=None if best_metrics is None else best_metrics.total_return,
        best_metrics=best_metrics, params_evaluated=plan.n_points,
        feasible_count=int(feasible.sum()),
        top=points(order[: min(top_k, int(feasible.sum()))]),
        signal_sets=SignalSets(evaluated=len(plan.sets), rejected=plan.rejected),
        signals=plan.signals, failed_sets=plan.failed,
        all_results=points(np.arange(plan.n_points)) if include_all else msgspec.UNSET,
        deflated_sharpe=None if best is None else best_deflated_sharpe(study, metrics, best,
                                                                       feasible),
        per_symbol_results=None if by_symbol is None else _per_symbol(plan, study, by_symbol))


def _metrics(study: Study, arrays, i: int):
    metrics, exits, skipped = arrays
    return to_metrics(study.mode, metrics[i], exits[i], skipped[i], strategy=True)


def _per_symbol(plan: StrategyPlan, study: Study, arrays) -> dict[str, SymbolResult]:
    """Each symbol traded alone (SPEC 6 with symbol = caller); module doc of
    ``strategy`` for ``calls``."""
    n = plan.n_points
    out = {}
    for s, name in enumerate(plan.dataset.caller_names):
        rows = tuple(a[s * n:(s + 1) * n] for a in arrays)
        _, feasible, best = best_of(study, rows[0])
        if best is None:
            out[name] = SymbolResult(symbol=name, calls=0, best_params=None,
                                     best_final_capital=None, best_total_return=None,
                                     best_metrics=None, collapsed_capital=True)
            continue
        m = _metrics(study, rows, best)
        pos = plan.set_positions[best // plan.levels.n_points]
        lost = (m.final_capital < study.config.initial_capital if study.mode == "capital"
                else m.total_return < 0)
        out[name] = SymbolResult(
            symbol=name, calls=int((plan.dataset.call_caller[pos] == s).sum()),
            best_params=plan.point_params(best), best_final_capital=getattr(m, "final_capital",
                                                                             None),
            best_total_return=m.total_return, best_metrics=m, collapsed_capital=bool(lost),
            deflated_sharpe=best_deflated_sharpe(study, rows[0], best, feasible))
    return out


def simulate_strategy(bars: BarSet, *, strategy: str, timeframe: Any = None, params: Any,
                      config: Any = None, mode: Any = None, symbols: Any = None,
                      include_trades: bool = True):
    """One (timeframe, params, exit) point: its metrics and, when asked,
    its trades (SPEC 4's records plus ``symbol`` and ``direction``)."""
    if not isinstance(params, dict):
        raise InvalidParams("must be an object of parameters", path="$.params")
    params = dict(params)
    tf = params.pop("timeframe", None) if timeframe is None else timeframe
    if tf is None:
        raise InvalidParams("give the timeframe (timeframe, or params.timeframe)",
                            path="$.timeframe")
    exits = {k: [params.pop(k)] for k in EXIT_DIMS if k in params}
    include_trades = v.flag(include_trades, "$.include_trades")
    plan = plan_strategy(bars, strategy=strategy, timeframes=[tf], symbols=symbols,
                         strategy_grid={k: [x] for k, x in params.items()}, grid=exits,
                         config=config)
    study = make_strategy_study(plan, mode, None, False, None)
    if not plan.sets:
        if plan.failed:
            raise InvalidParams(f"the strategy failed on {plan.failed[0].symbol}: "
                                f"{plan.failed[0].error}", path="$.strategy")
        raise InvalidParams("the strategy cannot run this parameter set", path="$.params")
    sweep = plan.levels.prepare(plan.dataset, plan.set_positions[0])
    rows = np.arange(sweep.positions.size)
    metrics, exits_, skipped, rec, calls = run_point(sweep, 0, rows, plan.config, study.mode)
    out = to_metrics(study.mode, metrics, exits_, skipped, strategy=True)
    cls = StrategyCapitalMetrics if study.mode == "capital" else StrategyPerTradeMetrics
    fields = {f: getattr(out, f) for f in out.__struct_fields__ if f != "completed_trades"}
    if include_trades:
        fields["completed_trades"] = _trades(plan, sweep, calls, rec)
    return cls(**fields)


def _trades(plan: StrategyPlan, sweep, calls: np.ndarray, rec: np.ndarray):
    ds = plan.dataset
    out = []
    for r in np.flatnonzero(rec[:, REC_STATUS] == ENTERED).tolist():
        pos = int(sweep.positions[r])
        symbol = ds.caller_names[int(ds.call_caller[pos])]
        entry_px, exit_px = float(calls[CALL_ENTRY_PX, r]), float(rec[r, REC_EXIT_PX])
        out.append(StrategyTradeRecord(
            call_id=ds.call_ids[pos].split("|", 1)[1], caller=symbol, symbol=symbol,
            direction="long" if sweep.dirs[r] > 0 else "short",
            entry_ts_ms=int(calls[CALL_ENTRY_TS, r]), exit_ts_ms=int(rec[r, REC_EXIT_TS]),
            entry_px=entry_px, exit_px=exit_px, size=float(rec[r, REC_SIZE]),
            pnl=float(rec[r, REC_PNL]), exit_reason=EXIT_REASONS[int(rec[r, REC_EXIT_REASON])],
            exit_mult=exit_px / entry_px))
    return out

