"""Property tests: the Numba kernels agree with the plain-loop reference to
1e-9 on random datasets built to hit every edge (see ``_strategies``)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests import reference as ref
from tests._compare import assert_close, build, plain
from tests._strategies import configs, constraints, datasets, grids, single_params
from worker import grouped_eval, optimize, optimize_per_caller, simulate

PROPERTY = settings(max_examples=300, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
modes = st.sampled_from(["capital", "per_trade"])


def _ref_simulation(out: dict, mode: str) -> dict:
    """The reference's simulate output in the worker's field names."""
    out = dict(out)
    out["completed_trades"] = out.pop("trades" if mode == "capital" else "trade_records")
    return out


def _constraints_for(mode: str, c: dict) -> dict:
    return {k: v for k, v in c.items() if not (mode == "per_trade" and k == "max_drawdown")}


@PROPERTY
@given(data=datasets(), params=single_params, config=configs, mode=modes)
def test_simulate_matches_reference(data, params, config, mode):
    calls, series, key = data
    ours = simulate(build(calls, series, key), params, config=config, mode=mode)
    sim = ref.simulate_capital if mode == "capital" else ref.simulate_per_trade
    theirs = _ref_simulation(sim(calls, series, key, params, config), mode)
    assert_close(plain(ours), theirs)


@PROPERTY
@given(data=datasets(), grid=grids, config=configs, mode=modes, cons=constraints,
       minimize=st.booleans(), objective=st.sampled_from([None, "win_rate", "profit_factor"]))
def test_optimize_matches_reference(data, grid, config, mode, cons, minimize, objective):
    calls, series, key = data
    cons = _constraints_for(mode, cons)
    ours = optimize(build(calls, series, key), grid, config=config, mode=mode,
                    objective=objective, minimize=minimize, constraints=cons,
                    include_all=True, top_k=1_000)
    theirs = ref.optimize(calls, series, key, grid, config, mode=mode, objective=objective,
                          minimize=minimize, constraints=cons)
    points = theirs["points"]
    assert_close([plain(p.metrics) for p in ours.all_results], [p["metrics"] for p in points])
    assert [p.rank for p in ours.all_results] == [p["rank"] for p in points]
    assert [p.feasible for p in ours.all_results] == [p["feasible"] for p in points]
    assert [p.index for p in ours.top] == [i for i in theirs["ranking"] if points[i]["feasible"]]
    best = theirs["best"]
    assert ours.best_params == (None if best is None else ours.all_results[best].params)
    if best is not None:
        assert_close(plain(ours.best_params), points[best]["params"])


@PROPERTY
@given(data=datasets(), grid=grids, config=configs, mode=modes, cons=constraints,
       groups=st.none() | st.lists(st.sampled_from(["alice", "bob", "carol", "zed"]), max_size=2))
def test_per_caller_matches_reference(data, grid, config, mode, cons, groups):
    calls, series, key = data
    cons = _constraints_for(mode, cons)
    ours = optimize_per_caller(build(calls, series, key), grid, config=config, mode=mode,
                               constraints=cons, caller_groups=groups)
    theirs = ref.optimize_per_caller(calls, series, key, grid, config, mode=mode,
                                     constraints=cons, caller_groups=groups)
    assert list(ours.per_caller_results) == list(theirs)
    assert_close(plain(ours.per_caller_results), theirs)


@PROPERTY
@given(data=datasets(), grid=grids, config=configs, mode=modes, cons=constraints,
       how=st.sampled_from(["mean", "optimize"]), fc=st.booleans(), fe=st.booleans())
def test_grouped_matches_reference(data, grid, config, mode, cons, how, fc, fe):
    calls, series, key = data
    cons = _constraints_for(mode, cons)
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
                 None if expected is None else _ref_simulation(expected, mode))
