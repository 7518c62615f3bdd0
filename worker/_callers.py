"""SPEC section 6: per-caller optimization and grouped evaluation.

Every caller's calls are optimized alone, each from the full initial capital,
in one kernel call over (caller, grid point) pairs: the candle scan is shared
by all callers, since a call's first-hit times do not depend on who else runs.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from protocol import CallerResult, GroupedResult, Params, PerCallerResult

from ._dataset import Dataset
from ._engine import grid_levels, prepare, run_grid
from ._errors import InvalidParams
from ._metrics import to_metrics
from ._optimize import Study, _best_of, make_study, simulate_positions


def _caller_groups(ds: Dataset, positions_in_sweep: np.ndarray) -> tuple[list[int], list[np.ndarray]]:
    """Caller codes in order of first appearance, each with its sweep rows."""
    codes = ds.call_caller[positions_in_sweep]
    present = np.unique(codes)  # codes are numbered by first appearance
    rows = [np.flatnonzero(codes == c) for c in present.tolist()]
    return present.tolist(), rows


def _extreme(p: Params, sl_below: float, tp_above: float) -> bool:
    return p.sl_mult < sl_below or p.tp_mult > tp_above


def _per_caller(ds: Dataset, study: Study, sl_below: float, tp_above: float) -> dict[str, CallerResult]:
    levels = grid_levels(study.grid, study.config)
    sweep = prepare(ds, levels, study.positions)
    codes, groups = _caller_groups(ds, sweep.positions)
    metrics, exits, skipped = run_grid(sweep, groups, study.config, study.mode)
    out: dict[str, CallerResult] = {}
    for g, code in enumerate(codes):
        name = ds.caller_names[code]
        _, _, best = _best_of(study, metrics[g])
        if best is None:
            out[name] = CallerResult(
                caller=name, calls=int(groups[g].size), best_params=None,
                best_final_capital=None, best_total_return=None, best_metrics=None,
                collapsed_capital=True, requires_extreme_params=False)
            continue
        m = to_metrics(study.mode, metrics[g, best], exits[g, best], skipped[g, best])
        p = levels.params[best]
        if study.mode == "capital":
            collapsed = m.final_capital < study.config.initial_capital
        else:
            # Decision: per-trade mode has no capital; "collapsed" = lost money.
            collapsed = m.total_return < 0
        out[name] = CallerResult(
            caller=name, calls=int(groups[g].size), best_params=p,
            best_final_capital=getattr(m, "final_capital", None),
            best_total_return=m.total_return, best_metrics=m,
            collapsed_capital=bool(collapsed),
            requires_extreme_params=_extreme(p, sl_below, tp_above))
    return out


def _thresholds(extreme_sl_below: Any, extreme_tp_above: Any) -> tuple[float, float]:
    for name, value in (("extreme_sl_below", extreme_sl_below), ("extreme_tp_above", extreme_tp_above)):
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not np.isfinite(value):
            raise InvalidParams("must be a finite number", path=f"$.{name}")
    return float(extreme_sl_below), float(extreme_tp_above)


def optimize_per_caller(ds: Dataset, grid: Any = None, *, extreme_sl_below: float = 0.88,
                        extreme_tp_above: float = 4.0, **study_args: Any) -> PerCallerResult:
    sl_below, tp_above = _thresholds(extreme_sl_below, extreme_tp_above)
    study = make_study(ds, grid=grid, **study_args)
    return PerCallerResult(
        objective=study.objective,
        params_evaluated=len(study.grid.tp_mults) * len(study.grid.sl_mults)
        * len(study.grid.max_hold_hrs or (0,)),
        per_caller_results=_per_caller(ds, study, sl_below, tp_above))


def grouped_eval(ds: Dataset, grid: Any = None, *, filter_collapsed: bool = True,
                 filter_extreme: bool = True, grouped_params: str = "mean",
                 extreme_sl_below: float = 0.88, extreme_tp_above: float = 4.0,
                 **study_args: Any) -> GroupedResult:
    if grouped_params not in ("mean", "optimize"):
        raise InvalidParams(f"unknown grouped_params {grouped_params!r}; expected 'mean' or 'optimize'",
                            path="$.grouped_params")
    sl_below, tp_above = _thresholds(extreme_sl_below, extreme_tp_above)
    study = make_study(ds, grid=grid, **study_args)
    per = _per_caller(ds, study, sl_below, tp_above)
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
            params = _best_params(ds, study, positions)
        if params is not None:
            result = simulate_positions(ds, params, study.config, study.mode, positions)
    n_points = len(study.grid.tp_mults) * len(study.grid.sl_mults) * len(study.grid.max_hold_hrs or (0,))
    return GroupedResult(objective=study.objective, params_evaluated=n_points,
                         per_caller_results=per, selected_callers=selected,
                         grouped_params=params, grouped_result=result)


def _mean_params(best: list[Params]) -> Params:
    n = len(best)
    return Params(tp_mult=sum(p.tp_mult for p in best) / n,
                  sl_mult=sum(p.sl_mult for p in best) / n,
                  max_hold_hrs=sum(p.max_hold_hrs for p in best) / n)


def _best_params(ds: Dataset, study: Study, positions: np.ndarray) -> Params | None:
    levels = grid_levels(study.grid, study.config)
    sweep = prepare(ds, levels, positions)
    metrics, _, _ = run_grid(sweep, None, study.config, study.mode)
    _, _, best = _best_of(study, metrics[0])
    return None if best is None else levels.params[best]
