"""The worker against the reference, one check per operation: shared by the
SPEC 2-6 property tests (``test_kernels_vs_reference``) and SPEC 11's
(``test_spec11_vs_reference``), which differ only in the data they draw."""

from __future__ import annotations

from tests import reference as ref
from tests._compare import assert_close, build, plain
from worker import grouped_eval, optimize, optimize_per_caller, simulate


def ref_simulation(out: dict, mode: str) -> dict:
    """The reference's simulate output in the worker's field names."""
    out = dict(out)
    out["completed_trades"] = out.pop("trades" if mode == "capital" else "trade_records")
    return out


def constraints_for(mode: str, c: dict) -> dict:
    return {k: v for k, v in c.items() if not (mode == "per_trade" and k == "max_drawdown")}


def check_simulate(data, params, config, mode) -> None:
    calls, series, key = data
    ours = simulate(build(calls, series, key), params, config=config, mode=mode)
    sim = ref.simulate_capital if mode == "capital" else ref.simulate_per_trade
    assert_close(plain(ours), ref_simulation(sim(calls, series, key, params, config), mode))


def check_optimize(data, grid, config, mode, cons, minimize, objective) -> None:
    calls, series, key = data
    cons = constraints_for(mode, cons)
    ours = optimize(build(calls, series, key), grid, config=config, mode=mode,
                    objective=objective, minimize=minimize, constraints=cons,
                    include_all=True, top_k=1_000)
    theirs = ref.optimize(calls, series, key, grid, config, mode=mode, objective=objective,
                          minimize=minimize, constraints=cons)
    points = theirs["points"]
    assert_close([plain(p.params) for p in ours.all_results], [p["params"] for p in points])
    assert_close([plain(p.metrics) for p in ours.all_results], [p["metrics"] for p in points])
    assert [p.rank for p in ours.all_results] == [p["rank"] for p in points]
    assert [p.feasible for p in ours.all_results] == [p["feasible"] for p in points]
    assert [p.index for p in ours.top] == [i for i in theirs["ranking"] if points[i]["feasible"]]
    best = theirs["best"]
    assert ours.best_params == (None if best is None else ours.all_results[best].params)
    if best is not None:
        assert_close(plain(ours.best_params), points[best]["params"])


def check_per_caller(data, grid, config, mode, cons, groups) -> None:
    calls, series, key = data
    cons = constraints_for(mode, cons)
    ours = optimize_per_caller(build(calls, series, key), grid, config=config, mode=mode,
                               constraints=cons, caller_groups=groups)
    theirs = ref.optimize_per_caller(calls, series, key, grid, config, mode=mode,
                                     constraints=cons, caller_groups=groups)
    assert list(ours.per_caller_results) == list(theirs)
    assert_close(plain(ours.per_caller_results), theirs)


def check_grouped(data, grid, config, mode, cons, how, fc, fe) -> None:
    calls, series, key = data
    cons = constraints_for(mode, cons)
    ours = grouped_eval(build(calls, series, key), grid, config=config, mode=mode,
                        constraints=cons, grouped_params=how, filter_collapsed=fc,
                        filter_extreme=fe)
    theirs = ref.grouped_eval(calls, series, key, grid, config, mode=mode, constraints=cons,
                              grouped_params=how, filter_collapsed=fc, filter_extreme=fe)
    assert ours.selected_callers == theirs["selected_callers"]
    assert_close(plain(ours.per_caller_results), theirs["per_caller_results"])
    assert_close(plain(ours.grouped_params), theirs["grouped_params"])
    expected = theirs["grouped_result"]
    assert_close(plain(ours.grouped_result),
                 None if expected is None else ref_simulation(expected, mode))
