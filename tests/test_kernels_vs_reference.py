"""Property tests: the Numba kernels agree with the plain-loop reference to
1e-9 on random datasets built to hit every edge (see ``_strategies``)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests._checks import check_grouped, check_optimize, check_per_caller, check_simulate
from tests._strategies import configs, constraints, datasets, grids, single_params

PROPERTY = settings(max_examples=300, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
modes = st.sampled_from(["capital", "per_trade"])


@PROPERTY
@given(data=datasets(), params=single_params, config=configs, mode=modes)
def test_simulate_matches_reference(data, params, config, mode):
    check_simulate(data, params, config, mode)


@PROPERTY
@given(data=datasets(), grid=grids, config=configs, mode=modes, cons=constraints,
       minimize=st.booleans(), objective=st.sampled_from([None, "win_rate", "profit_factor", "sharpe"]))
def test_optimize_matches_reference(data, grid, config, mode, cons, minimize, objective):
    check_optimize(data, grid, config, mode, cons, minimize, objective)


@PROPERTY
@given(data=datasets(), grid=grids, config=configs, mode=modes, cons=constraints,
       groups=st.none() | st.lists(st.sampled_from(["alice", "bob", "carol", "zed"]), max_size=2))
def test_per_caller_matches_reference(data, grid, config, mode, cons, groups):
    check_per_caller(data, grid, config, mode, cons, groups)


@PROPERTY
@given(data=datasets(), grid=grids, config=configs, mode=modes, cons=constraints,
       how=st.sampled_from(["mean", "optimize"]), fc=st.booleans(), fe=st.booleans())
def test_grouped_matches_reference(data, grid, config, mode, cons, how, fc, fe):
    check_grouped(data, grid, config, mode, cons, how, fc, fe)
