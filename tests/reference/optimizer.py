"""Reference optimizer: the executable meaning of SPEC sections 5 and 6 (with
SPEC 11's grid dimensions).

Every grid point is simply simulated with the reference simulator; ranking,
feasibility, per-caller and grouped evaluation are plain loops and sorts.
"""

from .simulator import (
    EXTENDED_DEFAULTS,
    check_extended,
    full_config,
    simulate_capital,
    simulate_per_trade,
)

DEFAULT_GRID = {
    "tp_mults": [1.5, 2.0, 2.5, 3.0, 4.0, 5.0],
    "sl_mults": [0.85, 0.88, 0.9, 0.92, 0.95],
}

CAPITAL_OBJECTIVES = (
    "final_capital", "total_return", "trades_executed", "wins", "losses",
    "win_rate", "trades_skipped", "fees_paid", "profit_factor", "max_drawdown",
    "avg_hold_min", "sharpe",  # sharpe: SPEC 12
)
PER_TRADE_OBJECTIVES = (
    "trades", "wins", "losses", "win_rate", "avg_return", "median_return",
    "total_return", "profit_factor", "avg_r", "total_r", "avg_hold_min", "sharpe",
)

MODES = {
    # mode: (simulator, objectives, default objective, trade-count metric,
    #        key of the trade list in the simulator's output)
    "capital": (simulate_capital, CAPITAL_OBJECTIVES, "final_capital",
                "trades_executed", "trades"),
    "per_trade": (simulate_per_trade, PER_TRADE_OBJECTIVES, "avg_return",
                  "trades", "trade_records"),
}

CONSTRAINT_KEYS = ("min_trades", "max_drawdown", "min_win_rate")


# --------------------------------------------------------------------------
# Checking the request
# --------------------------------------------------------------------------

def mode_info(mode):
    if mode not in MODES:
        raise ValueError("mode must be 'capital' or 'per_trade'")
    return MODES[mode]


def check_objective(mode, objective):
    _, objectives, default, _, _ = mode_info(mode)
    if objective is None:
        return default
    if objective not in objectives:
        raise ValueError("unknown objective %r for mode %r" % (objective, mode))
    return objective


def check_constraints(mode, constraints):
    constraints = constraints or {}
    for key in constraints:
        if key not in CONSTRAINT_KEYS:
            raise ValueError("unknown constraint %r" % key)
    if mode == "per_trade" and constraints.get("max_drawdown") is not None:
        # Per-trade mode has no account, hence no drawdown to bound.
        raise ValueError("max_drawdown constraint needs capital mode")
    return constraints


# SPEC 11's grid dimensions, in grid order (after max_hold_hrs); a grid
# names each by its parameter's own (singular) name.
EXTENDED_DIMS = tuple(EXTENDED_DEFAULTS)
NULLABLE_DIMS = ("trail_pct", "breakeven_trigger")


def grid_points(grid, config):
    """Parameter sets in grid order: tp outermost, then sl, max_hold_hrs and
    SPEC 11's dimensions in the order SPEC 11 lists them (entry_max_wait_min
    innermost).  A point's params name a SPEC 11 parameter only when its
    value differs from the default."""
    grid = grid or {}
    cfg = full_config(config)
    tps = grid.get("tp_mults")
    sls = grid.get("sl_mults")
    holds = grid.get("max_hold_hrs")
    if tps is None:
        tps = DEFAULT_GRID["tp_mults"]
    if sls is None:
        sls = DEFAULT_GRID["sl_mults"]
    if holds is None:
        holds = [cfg["max_trade_horizon_hrs"]]
    dims = [("tp_mults", "tp_mult", tps), ("sl_mults", "sl_mult", sls),
            ("max_hold_hrs", "max_hold_hrs", holds)]
    for name in EXTENDED_DIMS:
        values = grid.get(name)
        if values is None:
            values = [EXTENDED_DEFAULTS[name]]
        dims.append((name, name, values))
    for grid_name, _, values in dims:
        if len(values) == 0:
            raise ValueError("%s must not be empty" % grid_name)
        if grid_name not in NULLABLE_DIMS and any(v is None for v in values):
            raise ValueError("null is not allowed in %s" % grid_name)
        if len(set(values)) != len(values):
            raise ValueError("duplicate values in %s" % grid_name)

    points = [{}]
    for _, key, values in dims:  # outermost first: later keys vary fastest
        points = [dict(p, **{key: v}) for p in points for v in values]
    out = []
    for p in points:
        check_extended(p)  # e.g. breakeven_offset >= breakeven_trigger - 1
        params = {"tp_mult": p["tp_mult"], "sl_mult": p["sl_mult"],
                  "max_hold_hrs": p["max_hold_hrs"]}
        for name in EXTENDED_DIMS:
            default = EXTENDED_DEFAULTS[name]
            value = p[name]
            if (value is None) != (default is None) or (value is not None and value != default):
                params[name] = value
        out.append(params)
    return out


def participating(calls, caller_groups):
    """The calls that take part: all, or those whose caller is listed."""
    if caller_groups is None:
        return list(calls)
    wanted = set(caller_groups)
    return [c for c in calls if c["caller"] in wanted]


# --------------------------------------------------------------------------
# optimize: SPEC 5
# --------------------------------------------------------------------------

def is_feasible(mode, metrics, constraints):
    trade_count_key = mode_info(mode)[3]
    min_trades = constraints.get("min_trades")
    if min_trades is not None and not metrics[trade_count_key] >= min_trades:
        return False
    max_dd = constraints.get("max_drawdown")
    if max_dd is not None and not metrics["max_drawdown"] <= max_dd:
        return False
    min_wr = constraints.get("min_win_rate")
    if min_wr is not None and not metrics["win_rate"] >= min_wr:
        return False
    return True


def rank_key(point, objective, minimize):
    """Feasible first; then objective (None last); then grid order."""
    value = point["metrics"][objective]
    if value is None:
        ordered = 0
    elif minimize:
        ordered = value
    else:
        ordered = -value
    return (not point["feasible"], value is None, ordered, point["index"])


def optimize(calls, series, series_key, grid, config, mode="capital",
             objective=None, minimize=False, constraints=None, caller_groups=None):
    simulate, _, _, _, trades_key = mode_info(mode)
    objective = check_objective(mode, objective)
    constraints = check_constraints(mode, constraints)
    calls = participating(calls, caller_groups)

    points = []
    for index, params in enumerate(grid_points(grid, config)):
        metrics = simulate(calls, series, series_key, params, config)
        del metrics[trades_key]
        points.append({
            "index": index,
            "params": params,
            "metrics": metrics,
            "feasible": is_feasible(mode, metrics, constraints),
            "rank": None,
        })

    ordered = sorted(points, key=lambda p: rank_key(p, objective, minimize))
    for position, point in enumerate(ordered):
        point["rank"] = position + 1
    ranking = [p["index"] for p in ordered]
    best = None
    if ordered and ordered[0]["feasible"]:
        best = ordered[0]["index"]
    return {"points": points, "ranking": ranking, "best": best}


# --------------------------------------------------------------------------
# Per caller and grouped: SPEC 6
# --------------------------------------------------------------------------

def callers_in_order(calls):
    seen = []
    for call in calls:
        if call["caller"] not in seen:
            seen.append(call["caller"])
    return seen


def caller_summary(caller, own_calls, result, mode, cfg, extreme_sl_below, extreme_tp_above):
    summary = {
        "caller": caller,
        "calls": len(own_calls),
        "best_params": None,
        "best_metrics": None,
        "best_final_capital": None,
        "best_total_return": None,
        "collapsed_capital": True,
        "requires_extreme_params": False,
        "deflated_sharpe": result.get("deflated_sharpe"),  # SPEC 12, of the best point
    }
    if result["best"] is None:
        return summary
    best = result["points"][result["best"]]
    params, metrics = best["params"], best["metrics"]
    summary["best_params"] = dict(params)
    summary["best_metrics"] = metrics
    summary["best_total_return"] = metrics["total_return"]
    if mode == "capital":
        summary["best_final_capital"] = metrics["final_capital"]
        summary["collapsed_capital"] = metrics["final_capital"] < cfg["initial_capital"]
    else:
        summary["collapsed_capital"] = metrics["total_return"] < 0
    summary["requires_extreme_params"] = (
        params["sl_mult"] < extreme_sl_below or params["tp_mult"] > extreme_tp_above)
    return summary


def _deflated_sharpe(calls, series, series_key, grid, config, mode, objective, minimize,
                     constraints):
    """SPEC 12's deflated Sharpe ratio of the best point (tests/reference/robust.py)."""
    from .robust import robust_optimize  # robust builds on this module

    return robust_optimize(calls, series, series_key, grid, config, mode=mode,
                           objective=objective, minimize=minimize,
                           constraints=constraints)["deflated_sharpe"]


def optimize_per_caller(calls, series, series_key, grid, config, mode="capital",
                        objective=None, minimize=False, constraints=None,
                        caller_groups=None, extreme_sl_below=0.88, extreme_tp_above=4.0):
    cfg = full_config(config)
    check_objective(mode, objective)
    check_constraints(mode, constraints)
    calls = participating(calls, caller_groups)
    results = {}
    for caller in callers_in_order(calls):
        own = [c for c in calls if c["caller"] == caller]
        # Each caller alone, starting from the full initial capital.
        result = optimize(own, series, series_key, grid, config, mode,
                          objective, minimize, constraints)
        result["deflated_sharpe"] = _deflated_sharpe(own, series, series_key, grid, config,
                                                     mode, objective, minimize, constraints)
        results[caller] = caller_summary(caller, own, result, mode, cfg,
                                         extreme_sl_below, extreme_tp_above)
    return results


def select_callers(per_caller, filter_collapsed, filter_extreme):
    selected = []
    for caller, summary in per_caller.items():
        if summary["best_params"] is None:
            continue
        if filter_collapsed and summary["collapsed_capital"]:
            continue
        if filter_extreme and summary["requires_extreme_params"]:
            continue
        selected.append(caller)
    return selected


def mean_params(per_caller, selected):
    n = len(selected)
    mean = {}
    for name in ("tp_mult", "sl_mult", "max_hold_hrs"):
        total = 0.0
        for caller in selected:
            total += per_caller[caller]["best_params"][name]
        mean[name] = total / n
    return mean


def grouped_eval(calls, series, series_key, grid, config, mode="capital",
                 objective=None, minimize=False, constraints=None, caller_groups=None,
                 extreme_sl_below=0.88, extreme_tp_above=4.0,
                 filter_collapsed=True, filter_extreme=True, grouped_params="mean"):
    if grouped_params not in ("mean", "optimize"):
        raise ValueError("grouped_params must be 'mean' or 'optimize'")
    simulate = mode_info(mode)[0]
    per_caller = optimize_per_caller(calls, series, series_key, grid, config, mode,
                                     objective, minimize, constraints, caller_groups,
                                     extreme_sl_below, extreme_tp_above)
    selected = select_callers(per_caller, filter_collapsed, filter_extreme)
    answer = {"per_caller_results": per_caller, "selected_callers": selected,
              "grouped_params": None, "grouped_result": None}
    if not selected:
        return answer

    chosen = set(selected)
    group_calls = [c for c in calls if c["caller"] in chosen]  # request order
    if grouped_params == "mean":
        params = mean_params(per_caller, selected)
    else:
        result = optimize(group_calls, series, series_key, grid, config, mode,
                          objective, minimize, constraints)
        if result["best"] is None:
            return answer
        params = dict(result["points"][result["best"]]["params"])
    answer["grouped_params"] = params
    answer["grouped_result"] = simulate(group_calls, series, series_key, params, config)
    return answer
