"""The worker behind the reference's function signatures and output shapes,
so the same golden cases (``test_golden.py``) check both implementations."""

from __future__ import annotations

from tests._compare import build, plain
from worker import grouped_eval as _grouped
from worker import optimize as _optimize
from worker import optimize_per_caller as _per_caller
from worker import simulate as _simulate
from worker import walk_forward as _walk_forward


def _simulation(metrics, mode: str) -> dict:
    out = plain(metrics)
    out["trades" if mode == "capital" else "trade_records"] = out.pop("completed_trades")
    return out


def simulate_capital(calls, series, series_key, params, config):
    ds = build(calls, series, series_key)
    return _simulation(_simulate(ds, params, config=config, mode="capital"), "capital")


def simulate_per_trade(calls, series, series_key, params, config):
    ds = build(calls, series, series_key)
    return _simulation(_simulate(ds, params, config=config, mode="per_trade"), "per_trade")


def optimize(calls, series, series_key, grid, config, mode="capital", objective=None,
             minimize=False, constraints=None, caller_groups=None):
    res = _optimize(build(calls, series, series_key), grid, config=config, mode=mode,
                    objective=objective, minimize=minimize, constraints=constraints,
                    caller_groups=caller_groups, include_all=True)
    points = [{"index": p.index, "params": plain(p.params), "metrics": plain(p.metrics),
               "feasible": p.feasible, "rank": p.rank} for p in res.all_results]
    ranking = sorted(range(len(points)), key=lambda i: points[i]["rank"])
    best = ranking[0] if res.best_params is not None else None
    return {"points": points, "ranking": ranking, "best": best}


def optimize_per_caller(calls, series, series_key, grid, config, **kw):
    res = _per_caller(build(calls, series, series_key), grid, config=config, **kw)
    return plain(res.per_caller_results)


def grouped_eval(calls, series, series_key, grid, config, mode="capital", **kw):
    res = _grouped(build(calls, series, series_key), grid, config=config, mode=mode, **kw)
    out = plain(res)
    if res.grouped_result is not None:
        out["grouped_result"] = _simulation(res.grouped_result, mode)
    return out


def walk_forward(calls, series, series_key, grid, config, folds=None, pbo=None, **kw):
    """``worker.walk_forward`` in the reference's shape (``full`` as
    ``robust_optimize``'s: points, best, deflated_sharpe)."""
    res = _walk_forward(build(calls, series, series_key), grid, config=config, folds=folds,
                        pbo=pbo, include_all=True, top_k=1_000_000, **kw)
    out = plain(res)
    extras = ("plateau", "lanes", "worst_lane", "maximin")  # SPEC 12, when asked
    points = [{"index": p.index, "params": plain(p.params), "metrics": plain(p.metrics),
               "feasible": p.feasible, "rank": p.rank,
               **{k: v for k, v in plain(p).items() if k in extras}}
              for p in res.full.all_results]
    best = None if res.full.best_params is None else next(
        p["index"] for p in points if p["rank"] == 1)
    out["full"] = {"points": points, "best": best, "deflated_sharpe": res.full.deflated_sharpe}
    return out

