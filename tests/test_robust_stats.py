"""SPEC 12's pure statistics (``worker._core.folds``, ``worker._core.robust``):
hand-computed cases, edge cases, and seeded-random comparisons with the
plain-Python reference (``tests/reference/robust_stats.py``,
``tests/reference/robust.py``)."""

from __future__ import annotations

import itertools
import math
import statistics

import numpy as np
import pytest

from worker._core import cscv
from worker._core import folds as F
from worker._core import robust as R
from worker._errors import InvalidParams

DAY = 86_400_000
NAN = float("nan")


def _none(x):
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else x


# ----------------------------------------------------------------- base interval

def test_base_interval_most_common_gap_within_series():
    # series 0 gaps 60, 60, 60; series 1 gaps 300, 300; 1000 - 180 crosses series
    ts = np.array([0, 60, 120, 180, 1000, 1300, 1600])
    assert F.base_interval_ms(ts, np.array([0, 4, 7])) == 60


def test_base_interval_tie_takes_smallest():
    # gaps 300, 300 | 60, 60: two of each -> 60
    ts = np.array([0, 300, 600, 5000, 5060, 5120])
    assert F.base_interval_ms(ts, np.array([0, 3, 6])) == 60


def test_base_interval_crossing_gap_would_win_if_counted():
    # 0,10 | 20,30 | 40,50: within series gap 10 once each (3x); across 10 too,
    # but 5 | 1000,1005: the only within gap is 5 in s1, crossing gaps are 995
    ts = np.array([0, 1000, 1005, 2000, 3000])
    assert F.base_interval_ms(ts, np.array([0, 1, 3, 4, 5])) == 5


def test_base_interval_no_gap_is_zero():
    assert F.base_interval_ms(np.array([5, 9]), np.array([0, 1, 2])) == 0
    assert F.base_interval_ms(np.zeros(0, np.int64), np.array([0])) == 0
    # an empty series between two others changes nothing
    assert F.base_interval_ms(np.array([0, 7, 100, 107]), np.array([0, 2, 2, 4])) == 7


# ----------------------------------------------------------------- fold windows

def test_rolling_folds():
    # 10 days, train 3, test 2, step = test = 2: test ends 5, 7, 9 (11 > 10)
    folds = F.fold_windows(0, 10 * DAY, "rolling", train_days=3, test_days=2)
    assert [tuple(f) for f in folds] == [
        ([[0, 3 * DAY]], [[3 * DAY, 5 * DAY]]),
        ([[2 * DAY, 5 * DAY]], [[5 * DAY, 7 * DAY]]),
        ([[4 * DAY, 7 * DAY]], [[7 * DAY, 9 * DAY]]),
    ]


def test_rolling_last_fold_may_end_exactly_at_t1():
    # step 1: k + 5 <= 10 -> k = 0..5
    folds = F.fold_windows(100, 100 + 10 * DAY, "rolling", 3, 2, step_days=1)
    assert len(folds) == 6 and folds[-1].test_windows == [[100 + 8 * DAY, 100 + 10 * DAY]]


def test_anchored_folds_start_at_t0():
    folds = F.fold_windows(7, 7 + 10 * DAY, "anchored", train_days=3, test_days=2)
    assert [f.train_windows for f in folds] == [[[7, 7 + 3 * DAY]], [[7, 7 + 5 * DAY]],
                                                [[7, 7 + 7 * DAY]]]
    assert folds[2].test_windows == [[7 + 7 * DAY, 7 + 9 * DAY]]


def test_fractional_days_truncate():
    # int(0.5 * 86_400_000) = 43_200_000; int(1e-7 * 86_400_000) = int(8.64) = 8
    folds = F.fold_windows(0, 43_200_020, "rolling", train_days=0.5, test_days=1e-7)
    assert folds == [([[0, 43_200_000]], [[43_200_000, 43_200_008]]),
                     ([[8, 43_200_008]], [[43_200_008, 43_200_016]])]


def test_cpcv_folds_lexicographic_and_merged():
    # edges 0, 25, 50, 75, 100; C(4, 2) = 6 folds; touching groups joined
    folds = F.fold_windows(0, 100, "cpcv", n_groups=4)
    assert [f.test_windows for f in folds] == [
        [[0, 50]], [[0, 25], [50, 75]], [[0, 25], [75, 100]],
        [[25, 75]], [[25, 50], [75, 100]], [[50, 100]]]
    assert folds[1].train_windows == [[25, 50], [75, 100]]
    assert folds[2].train_windows == [[25, 75]]


def test_cpcv_defaults_and_floor_boundaries():
    folds = F.fold_windows(0, 6_000, "cpcv")  # 6 groups, 2 test: C(6, 2) = 15
    assert len(folds) == 15
    # T1 - T0 = 10, 3 groups: floor(10/3) = 3, floor(20/3) = 6
    assert F.group_edges(0, 10, 3) == [0, 3, 6, 10]
    folds = F.fold_windows(0, 10, "cpcv", n_groups=3, n_test_groups=1)
    assert [f.test_windows for f in folds] == [[[0, 3]], [[3, 6]], [[6, 10]]]


@pytest.mark.parametrize("kwargs, path", [
    (dict(scheme="rolling", train_days=9, test_days=2), "$.folds.train_days"),
    (dict(scheme="rolling", train_days=0, test_days=2), "$.folds.train_days"),
    (dict(scheme="rolling", train_days=1, test_days=-2), "$.folds.test_days"),
    (dict(scheme="rolling", train_days=1, test_days=1, step_days=0), "$.folds.step_days"),
    (dict(scheme="rolling", train_days=1, test_days=1e-9), "$.folds.test_days"),
    (dict(scheme="rolling", train_days=True, test_days=1), "$.folds.train_days"),
    (dict(scheme="anchored", train_days=1), "$.folds.test_days"),
    (dict(scheme="anchored", train_days=float("inf"), test_days=1), "$.folds.train_days"),
    (dict(scheme="weekly"), "$.folds.scheme"),
    (dict(scheme="cpcv", n_groups=1), "$.folds.n_groups"),
    (dict(scheme="cpcv", n_groups=4, n_test_groups=4), "$.folds.n_test_groups"),
    (dict(scheme="cpcv", n_groups=4.0), "$.folds.n_groups"),
    (dict(scheme="cpcv", n_test_groups=0), "$.folds.n_test_groups"),
])
def test_fold_errors(kwargs, path):
    with pytest.raises(InvalidParams) as err:
        F.fold_windows(0, 10 * DAY, **kwargs)
    assert err.value.path == path


def test_no_calls_is_an_error():
    with pytest.raises(InvalidParams):
        F.fold_windows(5, 5, "cpcv")


def test_block_edges():
    assert F.block_edges(0, 100, 4) == [0, 25, 50, 75, 100]
    for bad in (3, 0, -2, 2.0, True):
        with pytest.raises(InvalidParams) as err:
            F.block_edges(0, 100, bad)
        assert err.value.path == "$.pbo.blocks"


def test_window_days():
    assert F.window_days([[0, DAY], [2 * DAY, 2 * DAY + DAY // 2]]) == 1.5


# ----------------------------------------------------------------- purge and embargo

def test_default_and_given_embargo():
    # int(24 * 3.6e6) + int(30 * 60_000) + (2 + 1) * 60_000
    assert F.default_embargo_ms(24, 30, 2, 60_000) == 86_400_000 + 1_800_000 + 180_000
    assert F.default_embargo_ms(0.5, 0, 0, 300_000) == 1_800_000 + 300_000
    assert F.embargo_ms(1.5, 123) == 5_400_000
    assert F.embargo_ms(None, 123) == 123
    with pytest.raises(InvalidParams) as err:
        F.embargo_ms(-1, 0)
    assert err.value.path == "$.folds.embargo_hrs"


def test_fold_masks_rolling():
    # train [0, 100), test [100, 150), E = 20: purge zone [80, 100)
    ts = np.array([10, 79, 80, 99, 100, 149, 150])
    train, test, purged = F.fold_masks(ts, [[0, 100]], [[100, 150]], 20, cpcv=False)
    assert train.tolist() == [1, 1, 0, 0, 0, 0, 0]
    assert purged.tolist() == [0, 0, 1, 1, 0, 0, 0]
    assert test.tolist() == [0, 0, 0, 0, 1, 1, 0]


def test_fold_masks_cpcv_end_embargo():
    # test [50, 100), E = 10: zones [40, 50) and (cpcv) [100, 110)
    ts = np.array([39, 40, 49, 50, 99, 100, 109, 110])
    tw, sw = [[0, 50], [100, 150]], [[50, 100]]
    train, test, purged = F.fold_masks(ts, tw, sw, 10, cpcv=True)
    assert train.tolist() == [1, 0, 0, 0, 0, 0, 0, 1]
    assert purged.tolist() == [0, 1, 1, 0, 0, 1, 1, 0]
    assert test.tolist() == [0, 0, 0, 1, 1, 0, 0, 0]
    train, _, purged = F.fold_masks(ts, tw, sw, 10, cpcv=False)
    assert train.tolist() == [1, 0, 0, 0, 0, 1, 1, 1]


def test_fold_masks_zero_embargo_and_no_calls():
    train, test, purged = F.fold_masks(np.array([5, 15]), [[0, 10]], [[10, 20]], 0, True)
    assert train.tolist() == [True, False] and not purged.any()
    masks = F.fold_masks(np.zeros(0, np.int64), [[0, 10]], [[10, 20]], 5, True)
    assert [m.size for m in masks] == [0, 0, 0]


# ----------------------------------------------------------------- ranks, spearman

def test_average_ranks_ties_and_nulls():
    v = np.array([3, 1, 3, NAN, 2, NAN])
    # maximize: 3, 3 share (1 + 2) / 2; 2 -> 3; 1 -> 4; nulls 5, 6 by grid order
    assert R.average_ranks(v, False).tolist() == [1.5, 4, 1.5, 5, 3, 6]
    # minimize: 1 -> 1, 2 -> 2, 3, 3 -> 3.5; nulls still last
    assert R.average_ranks(v, True).tolist() == [3.5, 1, 3.5, 5, 2, 6]
    assert R.average_ranks(np.zeros(0), False).size == 0
    assert R.average_ranks(np.array([-0.0, 0.0]), False).tolist() == [1.5, 1.5]


def test_test_rank_pct():
    # maximize, 40 has rank 2 of 5: (5 - 2) / 4
    assert R.test_rank_pct(np.array([10, 20, 30, 40, 50.0]), 3, False) == 0.75
    assert R.test_rank_pct(np.array([10, 20, 30, 40, 50.0]), 0, False) == 0.0
    assert R.test_rank_pct(np.array([7.0]), 0, False) == 1.0
    # tie of the best two: r = 1.5 -> (3 - 1.5) / 2
    assert R.test_rank_pct(np.array([5, 5, 1.0]), 1, False) == 0.75


def test_spearman():
    yes = np.ones(4, bool)
    assert R.spearman(np.array([1, 2, 3, 4.0]), np.array([2, 4, 6, 8.0]), yes) == 1.0
    assert R.spearman(np.array([1, 2, 3, 4.0]), np.array([8, 6, 4, 2.0]), yes) == -1.0
    # ranks (3, 2, 1) and (3, 1, 2): deviations (1, 0, -1), (1, -1, 0): 1 / sqrt(2 * 2)
    assert R.spearman(np.array([1, 2, 3.0]), np.array([1, 3, 2.0]), yes[:3]) == 0.5
    assert R.spearman(np.array([1, 2, 3, 4.0]), np.array([1, 3, 2, 4.0]),
                      np.array([1, 1, 0, 1], bool)) == 1.0  # 3 usable, monotone
    assert R.spearman(np.array([1, 2.0]), np.array([1, 2.0]), yes[:2]) is None
    assert R.spearman(np.array([1, 2, 3.0]), np.array([5, 5, 5.0]), yes[:3]) is None
    # a null leaves its point out: 2 remain
    assert R.spearman(np.array([1, 2, 3.0]), np.array([1, NAN, 2]), yes[:3]) is None


# ----------------------------------------------------------------- aggregates

def test_median_and_worst():
    assert R.median(np.array([3, 1, 2.0])) == 2.0
    assert R.median(np.array([4, 1, 3, 2.0])) == 2.5  # (2 + 3) / 2
    assert R.median(np.array([4, NAN, 1.0])) == 2.5
    assert R.median(np.array([NAN])) is None and R.median(np.zeros(0)) is None
    assert R.worst(np.array([3, NAN, -1.0]), False) == -1.0
    assert R.worst(np.array([3, NAN, -1.0]), True) == 3.0
    assert R.worst(np.array([NAN]), True) is None


def test_fold_aggregates():
    # test/train returns are the objective; train 10 days, test 5
    tr = np.array([0.2, 0.4, 0.1])
    te = np.array([0.1, -0.1, 0.3])
    agg = R.fold_aggregates(tr, te, tr, te, np.full(3, 10.0), np.full(3, 5.0), False)
    assert agg["median_test_objective"] == 0.1
    assert agg["worst_test_objective"] == -0.1
    assert agg["profitable_folds"] == pytest.approx(2 / 3)
    assert agg["degradation"] == pytest.approx((0.1 - 0.2) / 0.2)
    # (0.1/5)/(0.2/10) = 1, (-0.1/5)/(0.4/10) = -0.5, (0.3/5)/(0.1/10) = 6
    assert agg["efficiency"] == pytest.approx(6.5 / 3)
    # the second fold is null: left out of everything
    agg = R.fold_aggregates(tr, te, tr, te, np.full(3, 10.0), np.full(3, 5.0), True,
                            valid=np.array([1, 0, 1], bool))
    assert agg["median_test_objective"] == pytest.approx(0.2)
    assert agg["worst_test_objective"] == 0.3  # minimizing: the highest
    assert agg["profitable_folds"] == 1.0
    assert agg["efficiency"] == pytest.approx(3.5)


def test_fold_aggregates_nulls():
    # median train 0 -> degradation null; no train return > 0 -> efficiency null
    agg = R.fold_aggregates(np.array([0.0, -1, 1]), np.array([1, 2, 3.0]),
                            np.array([0.0, -1, 0]), np.array([1, 2, 3.0]),
                            np.ones(3), np.ones(3), False)
    assert agg["degradation"] is None and agg["efficiency"] is None
    agg = R.fold_aggregates(*[np.zeros(2)] * 6, False, valid=np.zeros(2, bool))
    assert all(v is None for v in agg.values())


# ----------------------------------------------------------------- pbo

def test_pbo_two_blocks_hand():
    # R = [[1, 0], [0, 2]]. I={0}: p*=0, its OOS 0 is the worst of (0, 2):
    # w = 1/3. I={1}: p*=1, OOS (1, 0): its 0 is the worst again: w = 1/3.
    out = cscv.pbo(np.array([[1.0, 0.0], [0.0, 2.0]]))
    assert out["pbo"] == 1.0
    assert out["prob_oos_loss"] == 0.0  # 0 is not < 0
    assert out["logit_quartiles"] == pytest.approx([math.log(0.5)] * 3, abs=1e-15)
    assert out["slope"] == 0.0  # (x, y) = (1, 0), (2, 0)


def test_pbo_dominant_point():
    # point 0 wins every block: p* = 0 and OOS rank 2 of 2 in all C(4,2) = 6 splits
    Rm = np.array([[1.0, 0], [2, -1], [3, 0], [4, -5]])
    out = cscv.pbo(Rm)
    assert out["pbo"] == 0.0
    assert out["logit_quartiles"] == pytest.approx([math.log(2)] * 3, abs=1e-15)
    assert out["prob_oos_loss"] == 0.0
    # p*'s (IS, OOS) means: I={0,1}: (1.5, 3.5) ... OOS = 5 - IS: slope -1
    assert out["slope"] == pytest.approx(-1.0)


def test_pbo_ties_and_single_point():
    # all equal: p* = 0 by grid order; OOS ranks tie at (1 + 2) / 2 -> w = 1/2
    out = cscv.pbo(np.ones((2, 2)))
    assert out["pbo"] == 1.0 and out["logit_quartiles"] == [0.0] * 3
    assert out["slope"] is None  # in-sample values do not vary
    out = cscv.pbo(np.array([[-1.0], [2.0]]))  # N = 1: w = 1/2, logit 0 <= 0
    assert out["pbo"] == 1.0 and out["prob_oos_loss"] == 0.5
    assert out["slope"] == -1.0  # (-1, 2), (2, -1)
    with pytest.raises(ValueError):
        cscv.pbo(np.ones((3, 2)))


def test_pbo_means_sum_in_block_order():
    # S = 6, split 0: I = {0, 1, 2}, O = {3, 4, 5}. Point 0's in-sample sum is
    # (1e16 + 1) + -1e16 = 0 left to right (the 1 is lost; another order would
    # give 1, mean 1/3); point 1's is 0.25, mean 1/12: p* = 1. Out of sample
    # point 1 has mean 1/3 > 0: rank 2 of 2, w = 2/3, logit ln 2.
    Rm = np.zeros((6, 2))
    Rm[:, 0] = [1e16, 1, -1e16, 0, 0, 0]
    Rm[:, 1] = [0.25, 0, 0, 1, 0, 0]
    best, is_mean, oos_mean, logit = cscv.cscv_splits(Rm)
    assert best.size == 20 and best[0] == 1
    assert is_mean[0] == 0.25 / 3 and oos_mean[0] == 1 / 3
    assert logit[0] == pytest.approx(math.log(2))
    # split 19: I = {3, 4, 5}: (0, 1/3): p* = 1; O = {0, 1, 2}: (0, 1/12): rank 2
    assert best[19] == 1 and oos_mean[19] == 0.25 / 3
    if ref is not None:
        _same_pbo(Rm)


# ----------------------------------------------------------------- sharpe

def test_sharpe():
    # mean 0.2, std sqrt((0.01 + 0.01) / 1) = 0.1414...
    assert R.sharpe(np.array([0.1, 0.3])) == pytest.approx(0.2 / math.sqrt(0.02))
    assert R.sharpe(np.array([1.0])) is None and R.sharpe(np.zeros(0)) is None
    assert R.sharpe(np.array([0.5, 0.5, 0.5])) is None  # std 0
    assert R.sharpe(np.array([1e6, 1e6 + 1e-7])) is None  # std <= 1e-12 * |mean|


def test_trade_returns():
    # 1.1 / 1 - 1 - (10 + 5) / 10_000 * 2 = 0.1 - 0.003
    r = R.trade_returns(np.array([1.0, 2.0]), np.array([1.1, 1.0]), 10, 5)
    assert r == pytest.approx([0.097, -0.503])


def test_deflated_sharpe_hand():
    # r = (1, 0, 1, 0): mean 0.5, std sqrt(1/3): SR = 0.866; m2 = 0.25, m3 = 0,
    # m4 = 0.0625: g3 = 0, g4 = 1, the root's argument 1.
    # sharpes (0, 1): N = 2, V = 0.5; Z(1 - 1/2) = 0
    sr = 0.5 / math.sqrt(1 / 3)
    sr0 = math.sqrt(0.5) * (0.5772156649 * statistics.NormalDist().inv_cdf(1 - 1 / (2 * math.e)))
    x = (sr - sr0) * math.sqrt(3)
    got = R.deflated_sharpe(np.array([1.0, 0, 1, 0]), np.array([0.0, NAN, 1.0]))
    assert got == pytest.approx(math.erfc(-x / math.sqrt(2)) / 2, rel=1e-12)


def test_deflated_sharpe_nulls():
    r = np.array([0.1, -0.05, 0.2])
    assert R.deflated_sharpe(r, np.array([1.0, NAN])) is None  # N = 1
    assert R.deflated_sharpe(r[:2], np.array([1.0, 2.0])) is None  # T = 2
    assert R.deflated_sharpe(np.zeros(3), np.array([1.0, 2.0])) is None  # no sharpe
    assert R.deflated_sharpe(None, np.array([1.0, 2.0])) is None
    assert 0 < R.deflated_sharpe(r, np.array([1.0, 2.0])) < 1


# ----------------------------------------------------------------- plateaus

def test_plateau_1d():
    lat = np.arange(5)[:, None]
    obj = np.array([1, 2, 3, 4, 100.0])
    yes = np.ones(5, bool)
    # means of (1,2), (1,2,3), (2,3,4), (3,4,100), (4,100)
    assert R.plateau_values(lat, obj, yes).tolist() == pytest.approx(
        [1.5, 2, 3, 107 / 3, 52])
    feas = np.array([1, 1, 0, 1, 1], bool)
    out = R.plateau_values(lat, obj, feas)
    assert out[[0, 1, 3, 4]].tolist() == [1.5, 1.5, 52, 52] and np.isnan(out[2])
    assert R.plateau_values(lat, obj, yes, stat="min").tolist() == [1, 1, 2, 3, 4]
    # minimized: "min" is the worst, the highest
    assert R.plateau_values(lat, obj, yes, stat="min", minimize=True).tolist() == [
        2, 3, 4, 100, 100]
    assert R.plateau_values(lat, obj, yes, radius=0).tolist() == obj.tolist()


def test_plateau_2d_and_nulls():
    lat = R.grid_lattice((3, 3))
    assert lat[:4].tolist() == [[0, 0], [0, 1], [0, 2], [1, 0]]
    obj = np.arange(9.0)
    out = R.plateau_values(lat, obj, np.ones(9, bool))
    assert out[4] == 4.0 and out[0] == 2.0  # corner: (0 + 1 + 3 + 4) / 4
    obj[4] = NAN  # a feasible null is skipped, but its point keeps a plateau
    out = R.plateau_values(lat, obj, np.ones(9, bool))
    assert out[0] == pytest.approx(4 / 3) and out[4] == 4.0  # (0+1+2+3+5+6+7+8)/8
    only = np.zeros(9, bool)
    only[4] = True
    assert np.isnan(R.plateau_values(lat, obj, only)).all()  # every value null


def test_plateau_sparse_path_matches_dense(monkeypatch):
    rng = np.random.default_rng(3)
    lat = R.grid_lattice((4, 3, 5))
    obj = rng.normal(size=60).round(2)
    obj[rng.random(60) < 0.1] = NAN
    feas = rng.random(60) < 0.7
    for stat, minimize, radius in itertools.product(("mean", "min"), (False, True), (1, 2)):
        dense = R.plateau_values(lat, obj, feas, radius, stat, minimize)
        monkeypatch.setattr(R, "_DENSE_FACTOR", 0)
        monkeypatch.setattr(R, "_DENSE_EXTRA", 0)
        sparse = R.plateau_values(lat, obj, feas, radius, stat, minimize)
        monkeypatch.undo()
        np.testing.assert_allclose(dense, sparse, rtol=1e-12, atol=1e-12)


def test_plateau_rank_order_ties_by_grid_order():
    plateau = np.array([2.0, 3.0, NAN, 3.0, 1.0])
    feas = np.array([1, 1, 0, 1, 1], bool)
    assert R.rank_order(plateau, feas, False).tolist() == [1, 3, 0, 4, 2]
    assert R.rank_order(plateau, feas, True).tolist() == [4, 0, 1, 3, 2]


# ----------------------------------------------------------------- stress

def test_stress_presets():
    names = {k: [lane.name for lane in v] for k, v in R.STRESS_PRESETS.items()}
    assert names == {
        "basic": ["baseline", "worse"],
        "full": ["baseline", "worse", "ugly", "latency_1", "gaps"],
        "adversarial": ["baseline", "worse", "ugly", "latency_1", "gaps",
                        "latency_3", "fee_spike", "all"]}
    lanes = {lane.name: lane for lane in R.STRESS_PRESETS["adversarial"]}
    assert lanes["worse"] == R.Lane("worse", taker_fee_bps=50, slippage_bps=50)
    assert lanes["all"] == R.Lane("all", 75, 150, 2, "open")
    assert lanes["gaps"].gap_fill == "open" and lanes["latency_3"].entry_delay_candles == 3
    assert lanes["baseline"] == R.Lane("baseline")


def test_maximin():
    lanes = np.array([[1, 5, NAN, 2, NAN], [3, 4, 1, 2, NAN]])
    v, w = R.maximin(lanes, minimize=False)
    assert w.tolist() == [0, 1, 0, 0, 0]
    np.testing.assert_array_equal(v, [1, 4, NAN, 2, NAN])
    v, w = R.maximin(lanes, minimize=True)
    assert w.tolist() == [1, 0, 0, 0, 0]
    np.testing.assert_array_equal(v, [3, 5, NAN, 2, NAN])
    v, w = R.maximin(np.array([[1.0, NAN]]), False)  # one lane
    assert w.tolist() == [0, 0]


# ----------------------------------------------------------------- vs the reference

try:
    from tests.reference import robust as ref_wf
    from tests.reference import robust_stats as ref
except ImportError:  # pragma: no cover - the reference is optional
    ref = ref_wf = None

pytestmark_ref = pytest.mark.skipif(ref is None, reason="no reference of SPEC 12")


def _rand_values(rng, n, null_share=0.15, digits=1):
    v = rng.normal(size=n).round(digits)  # rounding makes ties
    v[rng.random(n) < null_share] = NAN
    return v


def _as_list(v):
    return [None if math.isnan(x) else float(x) for x in v]


@pytestmark_ref
def test_average_ranks_vs_reference():
    rng = np.random.default_rng(10)
    for _ in range(300):
        v = _rand_values(rng, int(rng.integers(0, 30)))
        for minimize in (False, True):
            assert R.average_ranks(v, minimize).tolist() == ref.objective_ranks(
                _as_list(v), minimize)


@pytestmark_ref
def test_spearman_vs_reference():
    rng = np.random.default_rng(11)
    for _ in range(300):
        n = int(rng.integers(0, 15))
        a, b = _rand_values(rng, n), _rand_values(rng, n)
        use = rng.random(n) < 0.8
        for minimize in (False, True):
            got = R.spearman(a, b, use, minimize)
            want = ref.spearman(_as_list(a), _as_list(b), use.tolist(), minimize)
            assert (got is None) == (want is None)
            if got is not None:
                assert got == pytest.approx(want, rel=0, abs=1e-12)


@pytestmark_ref
def test_pbo_vs_reference():
    rng = np.random.default_rng(12)
    for _ in range(150):
        S = int(rng.choice([2, 4, 6, 8]))
        N = int(rng.integers(1, 15))
        Rm = rng.normal(size=(S, N)).round(int(rng.integers(0, 3)))
        _same_pbo(Rm)


def _same_pbo(Rm):
    """Counts exactly; quartiles and slope to 1e-12 (numpy's percentile
    interpolates with another formula, equal to the last bit or so)."""
    got, want = cscv.pbo(Rm), ref.pbo_stats(Rm.tolist())
    assert got["pbo"] == want["pbo"] and got["prob_oos_loss"] == want["prob_oos_loss"]
    np.testing.assert_allclose(got["logit_quartiles"], want["logit_quartiles"],
                               rtol=0, atol=1e-12)
    assert (got["slope"] is None) == (want["slope"] is None)
    if got["slope"] is not None:
        assert got["slope"] == pytest.approx(want["slope"], rel=1e-12, abs=1e-12)


@pytestmark_ref
def test_pbo_chunks_and_sixteen_blocks_vs_reference(monkeypatch):
    rng = np.random.default_rng(19)
    Rm = rng.normal(size=(16, 3)).round(1)  # C(16, 8) = 12,870 splits
    _same_pbo(Rm)
    monkeypatch.setattr(R, "_PBO_CELLS", 1)  # one point per chunk
    for _ in range(30):
        Rm = rng.normal(size=(int(rng.choice([2, 4, 6])), int(rng.integers(1, 8)))).round(0)
        _same_pbo(Rm)


@pytestmark_ref
def test_sharpe_and_deflated_vs_reference():
    rng = np.random.default_rng(13)
    for _ in range(400):
        T = int(rng.integers(0, 12))
        r = rng.normal(0.01, 0.05, size=T)
        if rng.random() < 0.2:
            r = np.round(r, 1)  # ties, zero variance
        s = _rand_values(rng, int(rng.integers(0, 8)), digits=3)
        got, want = R.sharpe(r), ref.sharpe(r.tolist())
        assert got == want or got == pytest.approx(want, rel=1e-12)
        got = R.deflated_sharpe(r, s)
        want = ref.deflated_sharpe(r.tolist(), _as_list(s))
        assert (got is None) == (want is None)
        if got is not None:
            assert got == pytest.approx(want, rel=1e-12, abs=1e-12)


@pytestmark_ref
def test_plateau_vs_reference():
    rng = np.random.default_rng(14)
    for _ in range(60):
        shape = tuple(int(x) for x in rng.integers(1, 5, size=int(rng.integers(1, 4))))
        lat = R.grid_lattice(shape)
        P = lat.shape[0]
        obj = _rand_values(rng, P, digits=2)
        feas = rng.random(P) < 0.75
        radius = int(rng.integers(0, 3))
        for stat, minimize in itertools.product(("mean", "min"), (False, True)):
            got = R.plateau_values(lat, obj, feas, radius, stat, minimize)
            want = ref.plateau_values([tuple(x) for x in lat.tolist()], _as_list(obj),
                                      feas.tolist(), radius, stat, minimize)
            want = np.array([NAN if w is None else w for w in want])
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytestmark_ref
def test_maximin_vs_reference():
    rng = np.random.default_rng(15)
    for _ in range(100):
        L, P = int(rng.integers(1, 5)), int(rng.integers(1, 10))
        lanes = np.round(rng.normal(size=(L, P)), 0)
        lanes[rng.random((L, P)) < 0.15] = NAN
        for minimize in (False, True):
            v, w = R.maximin(lanes, minimize)
            for p in range(P):
                name, value = ref.worst_lane(
                    [(i, _as_list(lanes[:, p])[i]) for i in range(L)], minimize)
                assert w[p] == name and _none(float(v[p])) == value


@pytestmark_ref
def test_fold_windows_vs_reference():
    rng = np.random.default_rng(16)
    for _ in range(200):
        t0 = int(rng.integers(0, 10**12))
        t1 = t0 + int(rng.integers(1, 40 * DAY))
        scheme = str(rng.choice(["rolling", "anchored", "cpcv"]))
        if scheme == "cpcv":
            g = int(rng.integers(2, 8))
            spec = {"scheme": scheme, "n_groups": g, "n_test_groups": int(rng.integers(1, g))}
        else:
            spec = {"scheme": scheme, "train_days": float(rng.uniform(0.1, 10)),
                    "test_days": float(rng.uniform(0.1, 5))}
            if rng.random() < 0.5:
                spec["step_days"] = float(rng.uniform(0.1, 5))
        want = ref_wf.window_sets(t0, t1, spec)
        if not want:
            with pytest.raises(InvalidParams):
                F.fold_windows(t0, t1, **spec)
            continue
        got = F.fold_windows(t0, t1, **spec)
        assert [(f.train_windows, f.test_windows) for f in got] == [tuple(w) for w in want]


@pytestmark_ref
def test_fold_masks_vs_reference():
    rng = np.random.default_rng(17)
    for _ in range(60):
        n = int(rng.integers(2, 60))
        ts = np.sort(rng.integers(0, 30 * DAY, size=n))
        ts[-1] = 30 * DAY  # the span fits the rolling folds
        calls = [{"id": str(i), "ts_ms": int(t)} for i, t in enumerate(ts)]
        cpcv = rng.random() < 0.5
        spec = ({"scheme": "cpcv", "n_groups": 5} if cpcv else
                {"scheme": "rolling", "train_days": 6, "test_days": 3})
        spec["embargo_hrs"] = float(rng.choice([0, 1.5, 30, 200]))
        plan = ref_wf.fold_plan(calls, {}, {}, {}, spec)
        E = F.embargo_ms(spec["embargo_hrs"], 0)
        assert E == plan["E"]
        windows = {k: v for k, v in spec.items() if k != "embargo_hrs"}
        if not plan["folds"]:  # the reference plans no fold; ours is an error
            with pytest.raises(InvalidParams):
                F.fold_windows(plan["T0"], plan["T1"], **windows)
            continue
        got = F.fold_windows(plan["T0"], plan["T1"], **windows)
        for fold, want in zip(got, plan["folds"], strict=True):
            train, test, purged = F.fold_masks(ts, *fold, E, cpcv)
            ids = np.array([c["id"] for c in calls])
            assert ids[train].tolist() == want["train_ids"]
            assert ids[test].tolist() == want["test_ids"]
            assert ids[purged].tolist() == want["purged_ids"]


@pytestmark_ref
def test_base_interval_vs_reference():
    rng = np.random.default_rng(18)
    for _ in range(100):
        sizes = rng.integers(0, 6, size=int(rng.integers(1, 5)))
        series, chunks = {}, []
        for k, m in enumerate(sizes):
            t = np.cumsum(rng.choice([60, 120, 300], size=m)) + 10**9 * k
            series[str(k)] = [(int(x),) for x in t]
            chunks.append(t)
        ts = np.concatenate(chunks) if chunks else np.zeros(0, np.int64)
        offsets = np.concatenate([[0], np.cumsum(sizes)])
        assert F.base_interval_ms(ts, offsets) == ref_wf.base_interval_ms(series)
