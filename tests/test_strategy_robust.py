"""SPEC 12 on a strategy search (SPEC 13): plateaus over the full grid
(timeframes x strategy params x exit params; a rejected set's points are
absent), stress lanes, maximin and ``rank_by``, against the plain-loop
references (``tests/reference/strategy.py``, ``robust_stats``)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests._compare import assert_close
from tests.reference.robust_stats import plateau_values, worst_lane
from tests.reference.strategy import optimize_strategy as ref_optimize
from tests.test_strategy_vs_reference import CONFIG, bar_sets
from worker import InvalidParams, optimize_strategy

PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
GRID = {"fast": [1, 2, 3], "slow": [2, 4]}           # (2, 2), (3, 2) rejected
EXITS = {"tp_r": [0.5, 1.0, 2.0], "sl_pct": [0.01, 0.05], "entry_delay_candles": [0, 1]}
LANE = st.fixed_dictionaries({"name": st.just("lane")}, optional={
    "taker_fee_bps": st.sampled_from([0.0, 80.0]), "slippage_bps": st.sampled_from([0.0, 50.0]),
    "entry_delay_candles": st.integers(0, 2), "gap_fill": st.sampled_from(["level", "open"])})


def _indices(params, timeframes):
    """A reference point's index along every dimension of the full grid."""
    dims = [("timeframe", timeframes), *GRID.items(), *EXITS.items()]
    return tuple(values.index(params.get(key, values[0])) for key, values in dims)


@PROPERTY
@given(data=bar_sets(), config=CONFIG, mode=st.sampled_from(["capital", "per_trade"]),
       minimize=st.booleans(), radius=st.integers(0, 2), stat=st.sampled_from(["mean", "min"]))
def test_plateau_over_the_full_grid_matches_reference(data, config, mode, minimize, radius,
                                                      stat):
    rows, bars = data
    timeframes = ["1m", "2m"]
    kw = dict(strategy="sma_cross", strategy_grid=GRID, timeframes=timeframes, mode=mode,
              minimize=minimize)
    try:
        ours = optimize_strategy(bars, grid=EXITS, config=config, include_all=True,
                                 top_k=10_000, plateau={"radius": radius, "stat": stat},
                                 rank_by="plateau", **kw)
    except InvalidParams as exc:
        assert exc.path.startswith("$.timeframes[")
        return
    theirs = ref_optimize(rows, "sma_cross", GRID, timeframes, EXITS, config, mode=mode,
                          minimize=minimize)
    points = theirs["points"]
    assert theirs["signal_sets"]["rejected"] == 4 and ours.signal_sets.rejected == 4
    objective = ours.objective
    want = plateau_values([_indices(p["params"], timeframes) for p in points],
                          [p["metrics"][objective] for p in points],
                          [p["feasible"] for p in points], radius, stat, minimize)
    assert_close([p.plateau for p in ours.all_results], want)


@PROPERTY
@given(data=bar_sets(), config=CONFIG, mode=st.sampled_from(["capital", "per_trade"]),
       minimize=st.booleans(), lane=LANE)
def test_a_stress_lane_is_the_search_under_its_costs_and_delay(data, config, mode, minimize,
                                                                lane):
    rows, bars = data
    kw = dict(strategy="donchian_breakout", strategy_grid={"lookback": [2, 3]},
              timeframes=["1m"], mode=mode, minimize=minimize)
    ours = optimize_strategy(bars, grid=EXITS, config=config, include_all=True, top_k=10_000,
                             stress=[{"name": "baseline"}, lane],
                             rank_by="maximin", **kw)
    base = ref_optimize(rows, "donchian_breakout", {"lookback": [2, 3]}, ["1m"], EXITS, config,
                        mode=mode, minimize=minimize)
    shift = lane.get("entry_delay_candles", 0)
    lane_config = {**config, **{k: x for k, x in lane.items() if k not in ("name",
                                                                        "entry_delay_candles")}}
    lane_exits = {**EXITS, "entry_delay_candles": [d + shift for d in
                                                   EXITS["entry_delay_candles"]]}
    stressed = ref_optimize(rows, "donchian_breakout", {"lookback": [2, 3]}, ["1m"], lane_exits,
                            lane_config, mode=mode, minimize=minimize)
    objective = ours.objective
    lanes = [[p["metrics"][objective] for p in base["points"]],
             [p["metrics"][objective] for p in stressed["points"]]]
    assert_close([p.lanes for p in ours.all_results],
                 [{"baseline": a, "lane": b} for a, b in zip(*lanes)])
    want = [worst_lane([("baseline", a), ("lane", b)], minimize) for a, b in zip(*lanes)]
    assert [p.worst_lane for p in ours.all_results] == [w[0] for w in want]
    assert_close([p.maximin for p in ours.all_results], [w[1] for w in want])
