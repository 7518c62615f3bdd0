"""Reference of SPEC section 12: walk-forward folds with purge and embargo,
the stitched out-of-sample run, PBO, the deflated Sharpe ratio, plateaus and
stress lanes.  Written from the SPEC alone on top of the reference simulator
and optimizer; slow and obvious on purpose.  The pure statistics are in
``robust_stats`` (with the stress presets, the base interval and the fold
windows: pure functions of their arguments).

Decisions where SPEC 12 is silent are marked "Decision:".
"""

import itertools

from .optimizer import (
    DEFAULT_GRID,
    EXTENDED_DIMS,
    check_constraints,
    grid_points,
    is_feasible,
    mode_info,
    participating,
)
from .robust_stats import (  # noqa: F401  (re-exported)
    STRESS_PRESETS,
    base_interval_ms,
    deflated_sharpe,
    lane_setup,
    mean_skip_null,
    median_skip_null,
    objective_ranks,
    pbo_stats,
    plateau_values,
    rank_pct,
    sharpe,
    spearman,
    stress_lanes,
    window_sets,
    worst_lane,
)
from .simulator import (
    CAPITAL_SKIP_REASONS,
    EXTENDED_DEFAULTS,
    _Account,
    _capital_metrics,
    fee_of,
    find_entry,
    find_exit,
    find_fill,
    full_config,
    full_params,
    is_limit,
    limit_expiry,
    make_record,
    processing_order,
    series_of,
    trade_returns,
)

DAY_MS = 86_400_000
HOUR_MS = 3_600_000


# --------------------------------------------------------------------------
# Grid geometry and the default embargo
# --------------------------------------------------------------------------

def grid_dims(grid, config):
    """Every grid dimension's values, in grid order (as ``grid_points``)."""
    grid = grid or {}
    cfg = full_config(config)
    defaults = {"tp_mults": DEFAULT_GRID["tp_mults"], "sl_mults": DEFAULT_GRID["sl_mults"],
                "max_hold_hrs": [cfg["max_trade_horizon_hrs"]]}
    defaults.update((name, [EXTENDED_DEFAULTS[name]]) for name in EXTENDED_DIMS)
    return [grid.get(name) if grid.get(name) is not None else values
            for name, values in defaults.items()]


def point_indices(grid, config):
    """Each point's index along every dimension, in grid order."""
    dims = grid_dims(grid, config)
    return list(itertools.product(*[range(len(values)) for values in dims]))


def default_embargo_ms(grid, config, series):
    """E = int(H * 3_600_000) + int(W * 60_000) + (D + 1) * I."""
    dims = dict(zip(("tp", "sl", "hold") + EXTENDED_DIMS, grid_dims(grid, config)))
    H = max(dims["hold"])
    W = 0
    if any(x > 0 for x in dims["entry_dip_pct"]):
        W = max(dims["entry_max_wait_min"])
    D = max(dims["entry_delay_candles"])
    return int(H * HOUR_MS) + int(W * 60_000) + (D + 1) * base_interval_ms(series)


# --------------------------------------------------------------------------
# Folds
# --------------------------------------------------------------------------

def _inside(ts, windows):
    return any(start <= ts < end for start, end in windows)


def fold_plan(calls, series, grid, config, folds):
    """T0, T1, E and, per fold, windows and the call ids of its train (after
    purge), test and purged sets (each in request order)."""
    if not calls:
        raise ValueError("walk-forward needs at least one call")
    t0 = min(c["ts_ms"] for c in calls)
    t1 = max(c["ts_ms"] for c in calls) + 1
    if folds.get("embargo_hrs") is not None:
        E = int(folds["embargo_hrs"] * HOUR_MS)
    else:
        E = default_embargo_ms(grid, config, series)
    cpcv = folds.get("scheme") == "cpcv"
    plan = []
    for index, (train_w, test_w) in enumerate(window_sets(t0, t1, folds)):
        train, test, purged = [], [], []
        for c in calls:
            ts = c["ts_ms"]
            if _inside(ts, test_w):
                test.append(c["id"])
            elif _inside(ts, train_w):
                near = any(s - E <= ts < s for s, _ in test_w)
                if cpcv:
                    near = near or any(e <= ts < e + E for _, e in test_w)
                (purged if near else train).append(c["id"])
        plan.append({"index": index, "train_windows": train_w, "test_windows": test_w,
                     "train_ids": train, "test_ids": test, "purged_ids": purged})
    return {"T0": t0, "T1": t1, "E": E, "folds": plan}


# --------------------------------------------------------------------------
# One point: metrics with sharpe; stress lanes
# --------------------------------------------------------------------------

def evaluate(calls, series, series_key, params, config, mode):
    """(metrics with ``sharpe``, per-trade returns) of one run."""
    simulate, _, _, _, trades_key = mode_info(mode)
    metrics = simulate(calls, series, series_key, params, config)
    returns = trade_returns(metrics.pop(trades_key), full_config(config))
    metrics["sharpe"] = sharpe(returns)
    return metrics, returns


# --------------------------------------------------------------------------
# optimize with SPEC 12's additions
# --------------------------------------------------------------------------

def check_objective(mode, objective):
    _, objectives, default, _, _ = mode_info(mode)
    objective = default if objective is None else objective
    if objective not in objectives + ("sharpe",):
        raise ValueError("unknown objective %r" % objective)
    return objective


def robust_optimize(calls, series, series_key, grid, config, mode="capital",
                    objective=None, minimize=False, constraints=None,
                    caller_groups=None, plateau=None, stress=None, rank_by=None):
    """optimize (SPEC 5) plus ``sharpe`` per point, plateau, stress lanes,
    rank_by and ``deflated_sharpe``.  Without them its ranking is optimize's.

    Decision: infeasible points rank after every feasible one, by the same
    key as the feasible ones (their plateau is null, hence grid order)."""
    objective = check_objective(mode, objective)
    constraints = check_constraints(mode, constraints)
    if rank_by not in (None, "objective", "plateau", "maximin"):
        raise ValueError("rank_by must be 'plateau' or 'maximin'")
    lanes = stress_lanes(stress)
    if rank_by == "maximin" and lanes is None:
        raise ValueError("rank_by 'maximin' needs stress lanes")  # Decision
    calls = participating(calls, caller_groups)

    points, returns = [], []
    for index, params in enumerate(grid_points(grid, config)):
        metrics, rets = evaluate(calls, series, series_key, params, config, mode)
        point = {"index": index, "params": params, "metrics": metrics,
                 "feasible": is_feasible(mode, metrics, constraints), "rank": None}
        if lanes is not None:
            values = []
            for lane in lanes:
                p, c = lane_setup(params, config, lane)
                values.append((lane["name"],
                               evaluate(calls, series, series_key, p, c, mode)[0][objective]))
            point["lanes"] = dict(values)
            point["worst_lane"], point["maximin"] = worst_lane(values, minimize)
        points.append(point)
        returns.append(rets)

    if plateau is not None or rank_by == "plateau":
        settings = plateau or {}  # Decision: rank_by plateau alone uses defaults
        values = plateau_values(point_indices(grid, config),
                                [p["metrics"][objective] for p in points],
                                [p["feasible"] for p in points],
                                settings.get("radius", 1), settings.get("stat", "mean"),
                                minimize)
        for point, value in zip(points, values):
            point["plateau"] = value

    def key(point):
        if rank_by == "plateau":
            value = point["plateau"]
        elif rank_by == "maximin":
            value = point["maximin"]
        else:
            value = point["metrics"][objective]
        ordered = 0 if value is None else (value if minimize else -value)
        return (not point["feasible"], value is None, ordered, point["index"])

    ordered = sorted(points, key=key)
    for position, point in enumerate(ordered):
        point["rank"] = position + 1
    best = ordered[0]["index"] if ordered and ordered[0]["feasible"] else None
    dsr = deflated_sharpe(None if best is None else returns[best],
                          [p["metrics"]["sharpe"] for p in points if p["feasible"]])
    return {"points": points, "ranking": [p["index"] for p in ordered],
            "best": best, "deflated_sharpe": dsr, "objective": objective}


# --------------------------------------------------------------------------
# Capital run where every call carries its own params (stitched run)
# --------------------------------------------------------------------------

class _CurveAccount(_Account):
    """SPEC 2's account that also lists equity after every trade's close
    (equity = free + sizes still open, held limit orders included, as in
    max_drawdown); an unfilled order's release is not listed."""

    def __init__(self, initial_capital):
        super().__init__(initial_capital)
        self.curve = []

    def hold_as(self, size, exit_ts, pnl, is_trade):
        self.hold(size, exit_ts, pnl)
        self.open[-1]["trade"] = is_trade

    def close_due(self, t):
        due = [p for p in self.open if t is None or p["exit_ts"] <= t]
        due.sort(key=lambda p: (p["exit_ts"], p["order"]))
        for position in due:
            self.open.remove(position)
            self.free += position["size"] + position["pnl"]
            self._mark()
            if position["trade"]:
                equity = self.free + sum(p["size"] for p in self.open)
                self.curve.append([position["exit_ts"], equity])


def simulate_capital_each(calls_params, series, series_key, config):
    """SPEC 2 over [(call, params)] (request order), each call simulated with
    its own params; returns (capital metrics, equity curve)."""
    cfg = full_config(config)
    account = _CurveAccount(cfg["initial_capital"])
    skipped = {reason: 0 for reason in CAPITAL_SKIP_REASONS}
    trades = []
    own = {id(call): params for call, params in calls_params}
    for call in processing_order([call for call, _ in calls_params]):
        params = full_params(own[id(call)], cfg)
        t = call["ts_ms"]
        account.close_due(t)
        if len(account.open) >= cfg["max_concurrent_positions"]:
            skipped["max_positions"] += 1
            continue
        candles = series_of(call, series, series_key)
        e0 = find_entry(candles, t)
        fill = None if e0 is None else find_fill(candles, t, e0, params)
        if fill is None or fill == "no_entry":
            skipped["no_entry"] += 1
            continue
        size = min(cfg["max_risk_per_trade"] / (1 - params["sl_mult"]),
                   cfg["max_allocation_pct"] * account.free, account.free)
        if fill == "no_fill":
            skipped["no_fill"] += 1
            if size >= cfg["min_executable_size"]:
                account.hold_as(size, limit_expiry(t, params), 0.0, False)
            continue
        if size < cfg["min_executable_size"]:
            skipped["below_min_size"] += 1
            continue
        e, entry_px = fill
        j, exit_px, reason = find_exit(candles, e, entry_px, params, cfg)
        pnl = size * (exit_px / entry_px - 1) - fee_of(size, cfg)
        account.hold_as(size, candles[j][0], pnl, True)
        kind = "limit" if is_limit(params) else "market"
        trades.append(make_record(call, candles, e, entry_px, j, exit_px, reason,
                                  size, pnl, kind))
    account.close_due(None)
    metrics = _capital_metrics(cfg, account, trades, skipped)
    del metrics["trades"]
    return metrics, account.curve


# --------------------------------------------------------------------------
# PBO matrix and walk-forward
# --------------------------------------------------------------------------

def pbo_matrix(calls, series, series_key, grid, config, mode, blocks, t0, t1):
    """R[b][p]: total_return of every grid point on block b's calls alone."""
    simulate, _, _, _, _ = mode_info(mode)
    b = [t0 + (g * (t1 - t0)) // blocks for g in range(blocks + 1)]
    points = grid_points(grid, config)
    R = []
    for g in range(blocks):
        own = [c for c in calls if b[g] <= c["ts_ms"] < b[g + 1]]
        R.append([simulate(own, series, series_key, p, config)["total_return"]
                  for p in points])
    return R


def _days(windows):
    return sum(end - start for start, end in windows) / DAY_MS


def walk_forward(calls, series, series_key, grid, config, mode="capital",
                 objective=None, minimize=False, constraints=None, folds=None,
                 pbo=None, plateau=None, stress=None, rank_by=None, caller_groups=None):
    objective = check_objective(mode, objective)
    constraints = check_constraints(mode, constraints)
    # Decision: the base interval is the dataset's, over the series its calls
    # use (every call of the request, before caller_groups filters them).
    used = {c["id"] if series_key == "call_id" else c["mint"] for c in calls}
    dataset_series = {k: v for k, v in series.items() if k in used}
    calls = participating(calls, caller_groups)
    plan = fold_plan(calls, dataset_series, grid, config, folds or {})
    by_id = {c["id"]: c for c in calls}
    params_list = grid_points(grid, config)
    N = len(params_list)
    opts = dict(mode=mode, objective=objective, minimize=minimize,
                constraints=constraints, plateau=plateau, stress=stress, rank_by=rank_by)

    out_folds = []
    for f in plan["folds"]:
        train = [by_id[i] for i in f["train_ids"]]
        test = [by_id[i] for i in f["test_ids"]]
        row = {"index": f["index"], "train_windows": f["train_windows"],
               "test_windows": f["test_windows"], "n_train": len(train),
               "n_test": len(test), "n_purged": len(f["purged_ids"]),
               "chosen_params": None, "train_metrics": None, "test_metrics": None,
               "test_rank_pct": None, "spearman": None}
        out_folds.append(row)
        if not train or not test:
            continue
        fit = robust_optimize(train, series, series_key, grid, config, **opts)
        if fit["best"] is None:
            continue
        best = fit["best"]
        tested = [evaluate(test, series, series_key, p, config, mode)[0] for p in params_list]
        test_values = [m[objective] for m in tested]
        ranks = objective_ranks(test_values, minimize)
        usable = [fit["points"][p]["feasible"] and is_feasible(mode, tested[p], constraints)
                  for p in range(N)]
        row.update(chosen_params=dict(params_list[best]),
                   train_metrics=fit["points"][best]["metrics"],
                   test_metrics=tested[best],
                   test_rank_pct=rank_pct(ranks[best], N),
                   spearman=spearman([p["metrics"][objective] for p in fit["points"]],
                                     test_values, usable, minimize))

    counted = [(row, f) for row, f in zip(out_folds, plan["folds"])
               if row["chosen_params"] is not None]
    aggregate = _aggregate(counted, objective, minimize)

    stitched = None
    scheme = (folds or {}).get("scheme")
    tests = sorted(f["test_windows"][0] for f in plan["folds"]) if scheme != "cpcv" else []
    no_overlap = all(a[1] <= b[0] for a, b in zip(tests, tests[1:]))
    # Decision: no stitched run (null) for cpcv, overlapping test windows, or
    # when no fold chose params.
    if scheme in ("rolling", "anchored") and no_overlap and counted:
        chosen = {}
        for row, f in counted:
            for i in f["test_ids"]:
                chosen[i] = row["chosen_params"]
        pairs = [(c, chosen[c["id"]]) for c in calls if c["id"] in chosen]
        metrics, equity = simulate_capital_each(pairs, series, series_key, config)
        stitched = {"metrics": metrics, "equity": equity}

    pbo_result = None
    if pbo is not None:
        R = pbo_matrix(calls, series, series_key, grid, config, mode,
                       pbo.get("blocks", 16), plan["T0"], plan["T1"])
        pbo_result = pbo_stats(R)

    full = robust_optimize(calls, series, series_key, grid, config, **opts)
    return {"folds": out_folds, "aggregate": aggregate, "stitched": stitched,
            "pbo": pbo_result, "full": full}


def _aggregate(counted, objective, minimize):
    """Decisions: worst_test_objective skips nulls like the other aggregates;
    profitable_folds is null when no fold counts; degradation is null when
    either median is null."""
    test_obj = [row["test_metrics"][objective] for row, _ in counted]
    train_obj = [row["train_metrics"][objective] for row, _ in counted]
    numbers = [v for v in test_obj if v is not None]
    worst = None
    if numbers:
        worst = max(numbers) if minimize else min(numbers)
    med_test = median_skip_null(test_obj)
    med_train = median_skip_null(train_obj)
    degradation = None
    if med_test is not None and med_train is not None and med_train != 0:
        degradation = (med_test - med_train) / abs(med_train)
    profitable = None
    if counted:
        profitable = sum(1 for row, _ in counted
                         if row["test_metrics"]["total_return"] > 0) / len(counted)
    ratios = []
    for row, f in counted:
        train_ret = row["train_metrics"]["total_return"]
        if train_ret <= 0:
            continue
        test_rate = row["test_metrics"]["total_return"] / _days(f["test_windows"])
        ratios.append(test_rate / (train_ret / _days(f["train_windows"])))
    return {"median_test_objective": med_test, "worst_test_objective": worst,
            "profitable_folds": profitable, "degradation": degradation,
            "efficiency": mean_skip_null(ratios)}
