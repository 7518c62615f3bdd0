"""SPEC 12's folds on a strategy search (``optimize_strategy(folds=...)``):
windows over the bars' time, trades assigned by their call time, purge and
embargo, each fold's choice among every (set, exit) point, its test rank
and Spearman, the aggregates and the stitched out-of-sample account, against
a plain composition of the references (``tests/reference/strategy.py`` for
the trades, ``robust_stats`` and ``robust`` for the statistics)."""

from __future__ import annotations

from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from tests._compare import assert_close, plain
from tests.reference.optimizer import check_objective, is_feasible, rank_key
from tests.reference.robust import _aggregate
from tests.reference.robust_stats import (
    base_interval_ms,
    objective_ranks,
    rank_pct,
    spearman,
    window_sets,
)
from tests.reference.strategy import (
    _product,
    exit_points,
    full_exit_params,
    rejected,
    simulate_strategy,
    strategy_calls,
    strategy_config,
)
from tests.test_strategy_vs_reference import CONFIG, bar_sets
from worker import InvalidParams, optimize_strategy

PROPERTY = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
GRID = {"lookback": [2, 3]}
EXITS = {"tp_r": [1.0, 2.0], "max_hold_hrs": [0.02, 1.0], "entry_delay_candles": [0, 1]}
FOLDS = st.one_of(
    st.fixed_dictionaries({"scheme": st.sampled_from(["rolling", "anchored"]),
                           "train_days": st.sampled_from([0.005, 0.01, 0.02]),
                           "test_days": st.sampled_from([0.003, 0.005, 0.01])},
                          optional={"embargo_hrs": st.sampled_from([0.0, 0.05])}),
    st.fixed_dictionaries({"scheme": st.just("cpcv"), "n_groups": st.integers(2, 4)}))


def _in(ts, windows):
    return any(a <= ts < b for a, b in windows)


def reference(rows, folds, config, mode, minimize):
    cfg = strategy_config(config)
    objective = check_objective(mode, None)
    sets = [("1m", sp) for sp in _product(list(GRID.items())) if not rejected("donchian_breakout", sp)]
    calls = [strategy_calls(rows, "donchian_breakout", sp, tf) for tf, sp in sets]
    exits = exit_points(EXITS, cfg)
    points = [(k, ep) for k in range(len(sets)) for ep in exits]
    t0 = min(r[0] for s in rows.values() for r in s)
    t1 = max(r[0] for s in rows.values() for r in s) + 1
    if folds.get("embargo_hrs") is not None:
        E = int(folds["embargo_hrs"] * 3_600_000)
    else:
        E = (int(max(p["max_hold_hrs"] for p in exits) * 3_600_000)
             + (max(EXITS["entry_delay_candles"]) + 1) * base_interval_ms(rows))
    cpcv = folds["scheme"] == "cpcv"
    out, counted, stitched_calls = [], [], []
    for index, (train_w, test_w) in enumerate(window_sets(t0, t1, folds)):
        train, test, purged = [], [], 0
        for set_calls in calls:
            tr, te = [], []
            for c in set_calls:
                if _in(c["ts_ms"], test_w):
                    te.append(c)
                elif _in(c["ts_ms"], train_w):
                    near = any(s - E <= c["ts_ms"] < s for s, _ in test_w) or (
                        cpcv and any(e <= c["ts_ms"] < e + E for _, e in test_w))
                    purged += near
                    if not near:
                        tr.append(c)
            train.append(tr)
            test.append(te)
        row = {"index": index, "train_windows": train_w, "test_windows": test_w,
               "n_train": sum(map(len, train)), "n_test": sum(map(len, test)), "n_purged": purged,
               "chosen_params": None, "train_metrics": None, "test_metrics": None,
               "test_rank_pct": None, "spearman": None}
        out.append(row)
        if not row["n_train"] or not row["n_test"]:
            continue
        fit = [{"index": i, "metrics": simulate_strategy(rows, train[k], ep, config, mode)}
               for i, (k, ep) in enumerate(points)]
        for p in fit:
            p["feasible"] = is_feasible(mode, p["metrics"], {})
        best = min(fit, key=lambda p: rank_key(p, objective, minimize))
        if not best["feasible"]:
            continue
        b = best["index"]
        tested = [simulate_strategy(rows, test[k], ep, config, mode) for k, ep in points]
        values = [m[objective] for m in tested]
        k, ep = points[b]
        row.update(chosen_params={"timeframe": "1m", **sets[k][1], **ep},
                   train_metrics=fit[b]["metrics"], test_metrics=tested[b],
                   test_rank_pct=rank_pct(objective_ranks(values, minimize)[b], len(points)),
                   spearman=spearman([p["metrics"][objective] for p in fit], values,
                                     [True] * len(points), minimize))
        counted.append((row, {"train_windows": train_w, "test_windows": test_w}))
        stitched_calls += [dict(c, exit_params=full_exit_params(ep, cfg)) for c in test[k]]
    stitched = None
    if not cpcv and counted:
        metrics = simulate_strategy(rows, stitched_calls, {}, config, "capital", include_trades=True)
        trades = sorted(metrics.pop("trades"), key=lambda t: t["exit_ts_ms"])  # stable: opening order
        equity, running = [], cfg["initial_capital"]
        for t in trades:
            running += t["pnl"]
            equity.append([t["exit_ts_ms"], running])
        stitched = {"metrics": metrics, "equity": equity}
    return out, _aggregate(counted, objective, minimize), stitched


def _no_records(m):
    return None if m is None else {k: v for k, v in m.items() if not isinstance(v, list)}


@PROPERTY
@given(data=bar_sets(), folds=FOLDS, config=CONFIG, mode=st.sampled_from(["capital", "per_trade"]),
       minimize=st.booleans())
def test_strategy_folds_match_the_references(data, folds, config, mode, minimize):
    rows, bars = data
    try:
        ours = optimize_strategy(bars, strategy="donchian_breakout", strategy_grid=GRID,
                                 timeframes=["1m"], grid=EXITS, config=config, mode=mode,
                                 minimize=minimize, folds=folds)
    except InvalidParams as exc:
        assume(not exc.path.startswith("$.folds"))  # no fold fits the bars' span
        raise
    folds_want, aggregate, stitched = reference(rows, folds, config, mode, minimize)
    event(f"folds choosing: {min(sum(f['chosen_params'] is not None for f in folds_want), 3)}+")
    event(f"stitched: {stitched is not None}")
    assert_close(plain(ours.folds), [dict(f, train_metrics=_no_records(f["train_metrics"]),
                                         test_metrics=_no_records(f["test_metrics"]))
                                    for f in folds_want])
    assert_close(plain(ours.aggregate), aggregate)
    assert_close(plain(ours.stitched), stitched)
