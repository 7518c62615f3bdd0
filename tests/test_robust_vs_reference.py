"""Property tests for SPEC 12 on ``optimize``: the per-point ``sharpe``,
plateau values, stress lanes (``lanes``, ``worst_lane``, ``maximin``),
``rank_by`` and ``deflated_sharpe`` agree with the plain-loop reference
(``tests/reference/robust.py``) to 1e-9 on random data built to hit the
edges (``_strategies``)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests._checks import constraints_for
from tests._compare import assert_close, build, plain
from tests._strategies import (
    configs,
    constraints,
    datasets,
    grids,
    grids11,
    robust_requests,
)
from tests.reference.robust import robust_optimize
from worker import optimize

PROPERTY = settings(max_examples=120, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(data=datasets(), grid=st.one_of(grids, grids11(max_dims=2)), config=configs,
       mode=st.sampled_from(["capital", "per_trade"]), cons=constraints,
       minimize=st.booleans(), objective=st.sampled_from([None, "sharpe", "win_rate"]),
       robust=robust_requests())
def test_robust_optimize_matches_reference(data, grid, config, mode, cons, minimize,
                                           objective, robust):
    calls, series, key = data
    cons = constraints_for(mode, cons)
    ours = optimize(build(calls, series, key), grid, config=config, mode=mode,
                    objective=objective, minimize=minimize, constraints=cons,
                    include_all=True, top_k=1_000, **robust)
    theirs = robust_optimize(calls, series, key, grid, config, mode=mode, objective=objective,
                             minimize=minimize, constraints=cons, **robust)
    points = theirs["points"]
    assert_close([plain(p.metrics) for p in ours.all_results],
                 [{k: v for k, v in p["metrics"].items()
                   if k != "trade_records" and not (k == "trades" and isinstance(v, list))}
                  for p in points])
    extras = ("plateau", "lanes", "worst_lane", "maximin")
    assert_close([{k: getattr(p, k) for k in extras if k in plain(p)} for p in ours.all_results],
                 [{k: p[k] for k in extras if k in p} for p in points])
    assert [p.rank for p in ours.all_results] == [p["rank"] for p in points]
    best = theirs["best"]
    assert ours.best_params == (None if best is None else ours.all_results[best].params)
    assert_close(ours.deflated_sharpe, theirs["deflated_sharpe"])
