"""Property tests for ``walkForward`` (SPEC 12): folds (windows, purge and
embargo, the chosen point, its train and test metrics, test rank, Spearman),
the aggregates, the stitched out-of-sample run with its equity curve, the
probability of backtest overfitting and the full-data optimize (with plateaus
and stress lanes, the train choice under ``rank_by``) agree with the
plain-loop reference (``tests/reference/robust.py``) to 1e-9, on random data
(``_strategies``; alerts a few minutes apart, so folds are fractions of a day)."""

from __future__ import annotations

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tests._checks import constraints_for
from tests._compare import assert_close, build, plain
from tests._strategies import configs, constraints, datasets, grids, grids11, robust_requests
from tests.reference.robust import walk_forward as ref_walk_forward
from worker import InvalidParams, walk_forward

PROPERTY = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
DAY_FRACTIONS = [0.0005, 0.001, 0.002, 0.004]      # 43 s .. 5.8 min

rolling = st.fixed_dictionaries({
    "scheme": st.sampled_from(["rolling", "anchored"]),
    "train_days": st.sampled_from(DAY_FRACTIONS), "test_days": st.sampled_from(DAY_FRACTIONS),
}, optional={"step_days": st.sampled_from(DAY_FRACTIONS),
             "embargo_hrs": st.sampled_from([0.0, 0.01, 0.05])})


@st.composite
def cpcv(draw):
    g = draw(st.integers(2, 5))
    spec = {"scheme": "cpcv", "n_groups": g, "n_test_groups": draw(st.integers(1, g - 1))}
    if draw(st.booleans()):
        spec["embargo_hrs"] = draw(st.sampled_from([0.0, 0.01, 0.05]))
    return spec


def _metrics(m):
    """A reference metrics dict without its trade list (the worker's folds carry none)."""
    if m is None:
        return None
    return {k: v for k, v in m.items()
            if k != "trade_records" and not (k == "trades" and isinstance(v, list))}


@PROPERTY
@given(data=datasets(), grid=st.one_of(grids, grids11(max_dims=1)), config=configs,
       mode=st.sampled_from(["capital", "per_trade"]), cons=constraints, minimize=st.booleans(),
       objective=st.sampled_from([None, "sharpe", "win_rate"]),
       folds=st.one_of(rolling, cpcv()), blocks=st.none() | st.sampled_from([2, 4]),
       robust=st.one_of(st.fixed_dictionaries({"rank_by": st.sampled_from([None, "plateau"])}),
                        robust_requests()))
def test_walk_forward_matches_reference(data, grid, config, mode, cons, minimize, objective,
                                        folds, blocks, robust):
    calls, series, key = data
    cons = constraints_for(mode, cons)
    pbo = None if blocks is None else {"blocks": blocks}
    kw = dict(mode=mode, objective=objective, minimize=minimize, constraints=cons, **robust)
    try:
        ours = walk_forward(build(calls, series, key), grid, config=config, folds=folds, pbo=pbo,
                            include_all=True, top_k=1_000, **kw)
    except InvalidParams as exc:
        assume(exc.path != "$.folds.train_days" and exc.path != "$.folds")  # no fold fits
        raise
    theirs = ref_walk_forward(calls, series, key, grid, config, folds=folds, pbo=pbo, **kw)
    ref_folds = [dict(f, train_metrics=_metrics(f["train_metrics"]),
                      test_metrics=_metrics(f["test_metrics"])) for f in theirs["folds"]]
    assert_close(plain(ours.folds), ref_folds)
    assert_close(plain(ours.aggregate), theirs["aggregate"])
    assert_close(plain(ours.pbo), theirs["pbo"])
    stitched = theirs["stitched"]
    assert_close(plain(ours.stitched), None if stitched is None else
                 {"metrics": _metrics(stitched["metrics"]), "equity": stitched["equity"]})
    full = theirs["full"]
    assert [p.rank for p in ours.full.all_results] == [p["rank"] for p in full["points"]]
    extras = ("plateau", "lanes", "worst_lane", "maximin")
    assert_close([{k: v for k, v in plain(p).items() if k in extras}
                  for p in ours.full.all_results],
                 [{k: p[k] for k in extras if k in p} for p in full["points"]])
    assert_close(ours.full.deflated_sharpe, full["deflated_sharpe"])
