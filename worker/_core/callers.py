"""SPEC section 6: per-caller optimization and grouped evaluation, as flows
(the library's ``worker.optimize_per_caller`` and ``worker.grouped_eval``
drive them in this thread: ``worker._run.library``).

Every caller's calls are optimized alone, each from the full initial capital,
in one kernel call over (caller, grid point) pairs: the candle scan is shared
by all callers, since a call's first-hit times do not depend on who else runs.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from protocol import CallerResult, GroupedResult, Params, PerCallerResult

from .._errors import InvalidParams
from . import validate as v
from .dataset import Dataset
from .engine import grid_levels
from .jobs import Flow, GridJob
from .lanes import robustness_flow
from .metrics import to_metrics
from .optimize import (
    Study,
    best_deflated_sharpe,
    best_of,
    job_score,
    make_study,
    simulate_positions,
)
from .validate import grid_size


def _per_caller_flow(ds: Dataset, study: Study, sl_below: float, tp_above: float,
                     ) -> Flow[dict[str, CallerResult]]:
    levels = grid_levels(study.grid, study.config)
    # Caller codes are numbered by first appearance, so sorted = SPEC 6 order.
    codes = np.unique(ds.call_caller[study.positions])
    job = GridJob(levels, study.positions, codes, study.config, study.mode)
    metrics, exits, skipped = yield job
    robust = yield from robustness_flow(study, levels, metrics, codes)
    values = robust.ranking_values(study, metrics)
    n_points = levels.n_points
    callers = ds.call_caller[study.positions]
    counts = np.bincount(callers, minlength=len(ds.caller_names))
    out: dict[str, CallerResult] = {}
    for g, code in enumerate(codes.tolist()):
        name = ds.caller_names[code]
        rows = slice(g * n_points, (g + 1) * n_points)
        out[name] = _caller_result(ds, study, levels, name, int(counts[code]), metrics[rows],
                                   exits[rows], skipped[rows], values[rows],
                                   study.positions[callers == code], sl_below, tp_above)
    return out


def _caller_result(ds: Dataset, study: Study, levels, name: str, calls: int, metrics, exits,
                   skipped, values, positions, sl_below: float, tp_above: float) -> CallerResult:
    _, feasible, best = best_of(study, metrics, values)
    if best is None:
        return CallerResult(caller=name, calls=calls, best_params=None,
                            best_final_capital=None, best_total_return=None, best_metrics=None,
                            collapsed_capital=True, requires_extreme_params=False)
    m = to_metrics(study.mode, metrics[best], exits[best], skipped[best])
    p = levels.params[best]
    if study.mode == "capital":
        collapsed = m.final_capital < study.config.initial_capital
    else:
        # Decision: per-trade mode has no capital; "collapsed" = lost money.
        collapsed = m.total_return < 0
    return CallerResult(
        caller=name, calls=calls, best_params=p,
        best_final_capital=getattr(m, "final_capital", None),
        best_total_return=m.total_return, best_metrics=m,
        collapsed_capital=bool(collapsed),
        requires_extreme_params=p.sl_mult < sl_below or p.tp_mult > tp_above,
        deflated_sharpe=best_deflated_sharpe(study, metrics, best, feasible))


def _thresholds(extreme_sl_below: Any, extreme_tp_above: Any) -> tuple[float, float]:
    for name, value in (("extreme_sl_below", extreme_sl_below), ("extreme_tp_above", extreme_tp_above)):
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not np.isfinite(value):
            raise InvalidParams("must be a finite number", path=f"$.{name}")
    return float(extreme_sl_below), float(extreme_tp_above)


def optimize_per_caller_flow(ds: Dataset, grid: Any = None, *, extreme_sl_below: float = 0.88,
                             extreme_tp_above: float = 4.0, **study_args: Any,
                             ) -> Flow[PerCallerResult]:
    """SPEC 6: each caller's calls optimized alone, from the full capital."""
    sl_below, tp_above = _thresholds(extreme_sl_below, extreme_tp_above)
    study = make_study(ds, grid=grid, **study_args)
    per = yield from _per_caller_flow(ds, study, sl_below, tp_above)
    return PerCallerResult(objective=study.objective, params_evaluated=grid_size(study.grid),
                           per_caller_results=per)


def grouped_eval_flow(ds: Dataset, grid: Any = None, *, filter_collapsed: bool = True,
                      filter_extreme: bool = True, grouped_params: str = "mean",
                      extreme_sl_below: float = 0.88, extreme_tp_above: float = 4.0,
                      **study_args: Any) -> Flow[GroupedResult]:
    """SPEC 6: per-caller optimization, selection, then one run of the group."""
    if grouped_params not in ("mean", "optimize"):
        raise InvalidParams(f"unknown grouped_params {grouped_params!r}; expected 'mean' or 'optimize'",
                            path="$.grouped_params")
    filter_collapsed = v.flag(filter_collapsed, "$.filter_collapsed")
    filter_extreme = v.flag(filter_extreme, "$.filter_extreme")
    sl_below, tp_above = _thresholds(extreme_sl_below, extreme_tp_above)
    study = make_study(ds, grid=grid, **study_args)
    per = yield from _per_caller_flow(ds, study, sl_below, tp_above)
    selected = [name for name, r in per.items()
                if r.best_params is not None
                and not (filter_collapsed and r.collapsed_capital)
                and not (filter_extreme and r.requires_extreme_params)]
    params: Params | None = None
    result = None
    if selected:
        codes = [ds.caller_names.index(n) for n in selected]
        positions = study.positions[np.isin(ds.call_caller[study.positions], codes)]
        if grouped_params == "mean":
            params = _mean_params([per[n].best_params for n in selected])
        else:
            params = yield from _best_params_flow(study, positions)
        if params is not None:
            result = simulate_positions(ds, params, study.config, study.mode, positions)
    return GroupedResult(objective=study.objective, params_evaluated=grid_size(study.grid),
                         per_caller_results=per, selected_callers=selected,
                         grouped_params=params, grouped_result=result)


def _mean_params(best: list[Params]) -> Params:
    """SPEC 6's mean of tp, sl and hold. Decision: SPEC 11's parameters stay
    at their defaults (a mean of "off" and a trail, or of candle counts, has
    no meaning); ``grouped_params: "optimize"`` searches them instead."""
    n = len(best)
    return Params(tp_mult=sum(p.tp_mult for p in best) / n,
                  sl_mult=sum(p.sl_mult for p in best) / n,
                  max_hold_hrs=sum(p.max_hold_hrs for p in best) / n)


def _best_params_flow(study: Study, positions: np.ndarray) -> Flow[Params | None]:
    levels = grid_levels(study.grid, study.config)
    metrics, _, _ = yield GridJob(levels, positions, None, study.config, study.mode,
                                  score=job_score(study))
    robust = yield from robustness_flow(study, levels, metrics, positions=positions)
    _, _, best = best_of(study, metrics, robust.ranking_values(study, metrics))
    return None if best is None else levels.params[best]
