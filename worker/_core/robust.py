"""SPEC 12's statistics, vectorized with numpy: ranks and Spearman per fold,
fold aggregates, the probability of backtest overfitting (CSCV), the Sharpe
and deflated Sharpe ratios, plateaus and stress lanes.

Objective arrays are float64 with NaN for a ``null`` (SPEC 12 "Null
objectives"); a function returns ``None`` where SPEC 12 says ``null``. Time
windows and purge masks are in ``worker._core.folds``.
"""

from __future__ import annotations

import itertools
import math
import statistics
from dataclasses import dataclass

import numpy as np

__all__ = [
    "EULER_GAMMA", "Lane", "STRESS_PRESETS",
    "rank_order", "average_ranks", "test_rank_pct", "spearman",
    "median", "worst", "fold_aggregates",
    "trade_returns", "sharpe", "deflated_sharpe", "deflated_sharpe_of",
    "grid_lattice", "plateau_values", "maximin",
]

EULER_GAMMA = 0.5772156649  # SPEC 12: g = 0.5772156649
_PBO_CELLS = 1 << 20        # splits x points per chunk in ``pbo`` (and sparse plateaus)
_DENSE_FACTOR = 8           # plateau lattice: dense box filter when cells <=
_DENSE_EXTRA = 1 << 20      # _DENSE_FACTOR * P + _DENSE_EXTRA


def _left_sum(a: np.ndarray, axis: int = -1) -> np.ndarray:
    """Left-to-right sum along ``axis`` (``cumsum`` is sequential; ``sum`` is
    pairwise and rounds differently)."""
    a = np.asarray(a, np.float64)
    if a.shape[axis] == 0:
        return np.sum(a, axis=axis)
    return np.take(np.cumsum(a, axis=axis), -1, axis=axis)


def rank_order(values: np.ndarray, feasible: np.ndarray, minimize: bool) -> np.ndarray:
    """Point indices in rank order: feasible first, then by value (a null
    after every number), ties by grid order. SPEC 12: "rank_by: plateau /
    maximin ranks the feasible points by it ... (ties by grid order)"; the
    same rule as SPEC 5's (``worker._core.optimize.rank_order``)."""
    values = np.asarray(values, np.float64)
    missing = np.isnan(values)
    key = np.where(missing, 0.0, values if minimize else -values)
    return np.lexsort((np.arange(values.size), key, missing, ~np.asarray(feasible, bool)))


def average_ranks(values: np.ndarray, minimize: bool) -> np.ndarray:
    """SPEC 12 "Ranks are average ranks over all N grid points by test
    objective with r = 1 the best"; tied numbers share their average rank.

    Nulls rank below every number; among themselves they do not tie but are
    ranked by grid order (SPEC 12 "ties among nulls by grid order"), each
    getting its own rank.
    """
    v = np.asarray(values, np.float64)
    n = v.size
    missing = np.isnan(v)
    key = np.where(missing, 0.0, v if minimize else -v)
    order = np.lexsort((np.arange(n), key, missing))
    k, m = key[order], missing[order]
    # a new group starts at every position whose key differs from the one
    # before it, and at every null (nulls never tie)
    new = np.ones(n, bool)
    new[1:] = (k[1:] != k[:-1]) | m[1:] | m[:-1]
    starts = np.flatnonzero(new)
    ends = np.append(starts[1:], n)  # exclusive
    shared = (starts + 1 + ends) / 2.0  # mean of ranks starts+1 .. ends
    ranks = np.empty(n, np.float64)
    ranks[order] = np.repeat(shared, ends - starts)
    return ranks


def test_rank_pct(test_objective: np.ndarray, chosen: int, minimize: bool) -> float:
    """SPEC 12 "test_rank_pct = (N - r) / (N - 1) (1 when N is 1)", ``r`` the
    chosen point's average rank among all N points by test objective."""
    n = np.asarray(test_objective).size
    if n == 1:
        return 1.0
    r = average_ranks(test_objective, minimize)[chosen]
    return float((n - r) / (n - 1))


def spearman(train_obj: np.ndarray, test_obj: np.ndarray, feasible_both: np.ndarray,
             minimize: bool = False) -> float | None:
    """SPEC 12 "spearman is the Pearson correlation of the average ranks of
    train and test objective over the points feasible in both, null below 3
    such points or when either side is constant".

    Decisions: the ranks are taken among those points only; a point whose
    train or test objective is null is left out (aggregates skip nulls).
    """
    a = np.asarray(train_obj, np.float64)
    b = np.asarray(test_obj, np.float64)
    use = np.asarray(feasible_both, bool) & ~np.isnan(a) & ~np.isnan(b)
    a, b = a[use], b[use]
    if a.size < 3 or np.all(a == a[0]) or np.all(b == b[0]):
        return None
    ra = average_ranks(a, minimize)
    rb = average_ranks(b, minimize)
    da = ra - _left_sum(ra) / ra.size
    db = rb - _left_sum(rb) / rb.size
    return float(_left_sum(da * db) / math.sqrt(_left_sum(da * da) * _left_sum(db * db)))


def median(values: np.ndarray) -> float | None:
    """SPEC 12 "A median of an even count is the mean of the two middle
    values"; nulls skipped, None when every value is null (or none)."""
    v = np.sort(np.asarray(values, np.float64).ravel())
    v = v[~np.isnan(v)]
    n = v.size
    if n == 0:
        return None
    if n % 2:
        return float(v[n // 2])
    return float((v[n // 2 - 1] + v[n // 2]) / 2)


def worst(values: np.ndarray, minimize: bool) -> float | None:
    """SPEC 12 "worst test objective of the chosen points": the lowest when
    maximizing, the highest when minimizing. Decision: as an aggregate it
    skips nulls (None when every value is null)."""
    v = np.asarray(values, np.float64)
    v = v[~np.isnan(v)]
    if v.size == 0:
        return None
    return float(v.max() if minimize else v.min())


def fold_aggregates(train_obj, test_obj, train_return, test_return, train_days, test_days,
                    minimize: bool, valid=None) -> dict[str, float | None]:
    """SPEC 12 **Aggregates** over the folds (arrays [F], one entry a fold).

    ``valid`` marks the folds with a chosen point (default: all); the others
    ("null folds") are left out of every aggregate. Per SPEC 12:
    median/worst test objective of the chosen points; ``profitable_folds``
    the share of (valid) folds with test ``total_return > 0``;
    ``degradation = (median test - median train) / |median train|`` (None
    when the median train is 0 or null); ``efficiency`` the left-to-right
    mean over the folds with train ``total_return > 0`` of ``(test tr /
    test days) / (train tr / train days)`` (None when none remain).

    Decisions: nulls are skipped everywhere (a null total return is neither
    profitable nor counted in ``efficiency``); with no valid fold every
    aggregate is None.
    """
    arrs = [np.asarray(a, np.float64) for a in
            (train_obj, test_obj, train_return, test_return, train_days, test_days)]
    keep = np.ones(arrs[0].size, bool) if valid is None else np.asarray(valid, bool)
    tr_obj, te_obj, tr_ret, te_ret, tr_days, te_days = (a[keep] for a in arrs)
    med_test, med_train = median(te_obj), median(tr_obj)
    degradation = None
    if med_test is not None and med_train not in (None, 0.0):
        degradation = (med_test - med_train) / abs(med_train)
    eff = (tr_ret > 0) & ~np.isnan(te_ret)
    ratios = (te_ret[eff] / te_days[eff]) / (tr_ret[eff] / tr_days[eff])
    return {
        "median_test_objective": med_test,
        "worst_test_objective": worst(te_obj, minimize),
        "profitable_folds": float(np.mean(te_ret > 0)) if te_ret.size else None,
        "degradation": degradation,
        "efficiency": float(_left_sum(ratios) / ratios.size) if ratios.size else None,
    }


def trade_returns(entry_px: np.ndarray, exit_px: np.ndarray, taker_fee_bps: float,
                  slippage_bps: float, direction: float = 1.0) -> np.ndarray:
    """SPEC 12 "r = dir * (exit_px / entry_px - 1) - (taker_fee_bps +
    slippage_bps) / 10_000 * 2" (``dir`` +1 for calls), in the given order."""
    cost = (taker_fee_bps + slippage_bps) / 10_000 * 2
    return direction * (np.asarray(exit_px, np.float64) / np.asarray(entry_px, np.float64) - 1) - cost


def _mean_std(r: np.ndarray) -> tuple[float, float]:
    mean = float(_left_sum(r)) / r.size
    return mean, math.sqrt(float(_left_sum((r - mean) ** 2)) / (r.size - 1))


def sharpe(returns: np.ndarray) -> float | None:
    """SPEC 12 "mean = their left-to-right sum / T, std = sqrt(sum((r -
    mean)^2) / (T - 1)), SR = mean / std ... null when T < 2 or std <= 1e-12
    * max(1, |mean|)"."""
    r = np.asarray(returns, np.float64).ravel()
    if r.size < 2:
        return None
    mean, std = _mean_std(r)
    if not std > 1e-12 * max(1.0, abs(mean)):
        return None
    return mean / std


def deflated_sharpe(best_returns: np.ndarray | None, sharpes: np.ndarray) -> float | None:
    """SPEC 12 **Deflated Sharpe ratio** of the best point.

    ``best_returns``: the best point's per-trade returns in entry order (None
    without a best point); ``sharpes``: the ``sharpe`` of every feasible point
    (NaN for those without one). ``N`` counts the non-null sharpes, ``V`` is
    their sample variance (ddof 1), ``SR0 = sqrt(V) * ((1 - g) * Z(1 - 1/N) +
    g * Z(1 - 1/(N e)))``, and the result ``Phi((SR - SR0) * sqrt(T - 1) /
    sqrt(1 - g3 SR + (g4 - 1)/4 SR^2))`` with population central moments of
    ``r``; None when N < 2, T < 3, the best has no sharpe, or the root's
    argument is not > 0.
    """
    if best_returns is None:
        return None
    r = np.asarray(best_returns, np.float64).ravel()
    t = r.size
    if t < 3:
        return None
    d = r - float(_left_sum(r)) / t
    m2, m3, m4 = (float(_left_sum(d ** k)) / t for k in (2, 3, 4))
    return deflated_sharpe_of(sharpe(r), t, m2, m3, m4, sharpes)


def deflated_sharpe_of(sr: float | None, t: int, m2: float, m3: float, m4: float,
                       sharpes: np.ndarray) -> float | None:
    """``deflated_sharpe`` from the best point's ``sharpe``, trade count and
    population central moments of its returns (the kernels report them per
    point: ``layouts.MOMENTS``), and the feasible points' sharpes."""
    s = np.asarray(sharpes, np.float64).ravel()
    s = s[~np.isnan(s)]
    n = s.size
    if n < 2 or t < 3 or sr is None or math.isnan(sr):
        return None
    _, sd = _mean_std(s)  # sqrt of the sample variance (ddof 1)
    g = EULER_GAMMA
    z = statistics.NormalDist().inv_cdf
    sr0 = sd * ((1 - g) * z(1 - 1 / n) + g * z(1 - 1 / (n * math.e)))
    g3, g4 = m3 / m2 ** 1.5, m4 / m2 ** 2
    arg = 1 - g3 * sr + (g4 - 1) / 4 * sr ** 2
    if not arg > 0:
        return None
    x = (sr - sr0) * math.sqrt(t - 1) / math.sqrt(arg)
    return math.erfc(-x / math.sqrt(2)) / 2


def grid_lattice(shape: tuple[int, ...]) -> np.ndarray:
    """[P, D] index of every point of a Cartesian grid along each dimension,
    in grid order (the last dimension varies fastest, as
    ``worker._core.engine.grid_levels`` nests its loops)."""
    return np.indices(shape).reshape(len(shape), -1).T.astype(np.int64)


def plateau_values(lattice: np.ndarray, objective: np.ndarray, feasible: np.ndarray,
                   radius: int = 1, stat: str = "mean", minimize: bool = False) -> np.ndarray:
    """SPEC 12 **Plateaus**: "a feasible point's plateau value is its
    objective aggregated (mean or min; min means the worst for a minimized
    objective) over the feasible points whose index along every grid
    dimension is within radius of its own (itself included); an infeasible
    point has none". Nulls are skipped; NaN where there is no value.

    A lattice that fills most of its bounding box (always, for a grid) is
    scattered into a dense array: counts and worsts are box-filtered one
    dimension at a time, sums added one neighbour offset at a time in grid
    order (``_grid_order_sum``: O(P (2 radius + 1)^D') for the D' dimensions
    longer than 1); a sparse one is compared in chunks of points (O(P^2)
    time, O(P) memory per chunk row), also summing in grid order.
    """
    lat = np.asarray(lattice, np.int64)
    obj = np.asarray(objective, np.float64)
    feas = np.asarray(feasible, bool)
    if stat not in ("mean", "min"):
        raise ValueError(f"plateau stat must be 'mean' or 'min', got {stat!r}")
    if radius < 0:
        raise ValueError(f"plateau radius must be >= 0, got {radius}")
    P = obj.size
    if lat.ndim == 1:
        lat = lat[:, None]
    use = feas & ~np.isnan(obj)
    out = np.full(P, np.nan)
    if P == 0 or not use.any():
        return out
    low = lat.min(axis=0)
    lat = lat - low
    shape = tuple(int(m) + 1 for m in lat.max(axis=0))
    worst_sign = 1.0 if minimize else -1.0  # "min" as a max of worst_sign * value
    if math.prod(shape) <= _DENSE_FACTOR * P + _DENSE_EXTRA:
        flat = np.ravel_multi_index(lat.T, shape)
        cells = math.prod(shape)
        count = np.zeros(cells)
        np.add.at(count, flat[use], 1.0)
        count = _box(count.reshape(shape), radius, np.add, 0.0).ravel()[flat]
        if stat == "mean":
            total = np.zeros(cells)
            np.add.at(total, flat[use], obj[use])
            total = _grid_order_sum(total.reshape(shape), radius).ravel()[flat]
            agg = np.where(count > 0, total / np.where(count > 0, count, 1.0), np.nan)
        else:
            bad = np.full(cells, -np.inf)
            np.maximum.at(bad, flat[use], worst_sign * obj[use])
            bad = _box(bad.reshape(shape), radius, np.maximum, -np.inf).ravel()[flat]
            agg = np.where(count > 0, worst_sign * bad, np.nan)
    else:
        agg = _plateau_sparse(lat, obj, use, radius, stat, worst_sign)
    out[feas] = agg[feas]
    return out


def _grid_order_sum(vals: np.ndarray, radius: int) -> np.ndarray:
    """Every cell's sum over its box, the neighbours added one offset at a
    time in lexicographic order: for each cell that is its neighbours in grid
    order, left to right, as SPEC 12 sums a mean (an exact tie between two
    plateau values then breaks as a plain loop breaks it). Cells without a
    value hold 0.0, which adds nothing."""
    reach = [min(radius, n - 1) for n in vals.shape]
    padded = np.pad(vals, [(r, r) for r in reach])
    total = np.zeros(vals.shape)
    for off in itertools.product(*[range(-r, r + 1) for r in reach]):
        total += padded[tuple(slice(r + o, r + o + n)
                              for r, o, n in zip(reach, off, vals.shape))]
    return total


def _box(a: np.ndarray, radius: int, op, fill: float) -> np.ndarray:
    """``op``-reduce every cell's box ``[i - radius, i + radius]`` along each
    axis in turn (cells outside the array count as ``fill``)."""
    for axis in range(a.ndim):
        n = a.shape[axis]
        out = a.copy()
        for off in range(1, min(radius, n - 1) + 1):
            lo = [slice(None)] * a.ndim
            hi = [slice(None)] * a.ndim
            lo[axis], hi[axis] = slice(0, n - off), slice(off, n)
            out[tuple(lo)] = op(out[tuple(lo)], a[tuple(hi)])  # neighbour above
            out[tuple(hi)] = op(out[tuple(hi)], a[tuple(lo)])  # neighbour below
        a = out
    return a


def _plateau_sparse(lat, obj, use, radius, stat, worst_sign) -> np.ndarray:
    src = np.flatnonzero(use)
    vals = obj[src]
    P = obj.size
    agg = np.full(P, np.nan)
    chunk = max(1, _PBO_CELLS // max(1, src.size))
    for c0 in range(0, P, chunk):
        rows = np.arange(c0, min(P, c0 + chunk))
        near = np.all(np.abs(lat[rows, None, :] - lat[None, src, :]) <= radius, axis=2)
        cnt = near.sum(axis=1)
        has = cnt > 0
        if stat == "mean":
            s = _left_sum(np.where(near, vals, 0.0), axis=1)
            agg[rows[has]] = s[has] / cnt[has]
        else:
            b = np.where(near, worst_sign * vals, -np.inf).max(axis=1)
            agg[rows[has]] = worst_sign * b[has]
    return agg


@dataclass(frozen=True)
class Lane:
    """A stress lane (SPEC 12 **Stress lanes**): fees, slippage and
    ``gap_fill`` replace the request's when given; ``entry_delay_candles`` is
    added to the point's own."""

    name: str
    taker_fee_bps: float | None = None
    slippage_bps: float | None = None
    entry_delay_candles: int = 0
    gap_fill: str | None = None


_BASIC = (Lane("baseline"), Lane("worse", taker_fee_bps=50, slippage_bps=50))
_FULL = _BASIC + (Lane("ugly", slippage_bps=150), Lane("latency_1", entry_delay_candles=1),
                  Lane("gaps", gap_fill="open"))
STRESS_PRESETS: dict[str, tuple[Lane, ...]] = {
    "basic": _BASIC,
    "full": _FULL,
    "adversarial": _FULL + (
        Lane("latency_3", entry_delay_candles=3), Lane("fee_spike", taker_fee_bps=150),
        Lane("all", taker_fee_bps=75, slippage_bps=150, entry_delay_candles=2,
             gap_fill="open")),
}


def maximin(lane_objectives: np.ndarray, minimize: bool) -> tuple[np.ndarray, np.ndarray]:
    """SPEC 12: "maximin (the worst lane's objective: the lowest when
    maximizing, the highest when minimizing; a null objective is the worst;
    on a tie the earlier lane)". ``lane_objectives`` is [L lanes, P points];
    returns (maximin [P], NaN when the worst lane's objective is null, and
    worst lane index [P])."""
    v = np.asarray(lane_objectives, np.float64)
    if v.ndim != 2 or v.shape[0] == 0:
        raise ValueError(f"maximin needs [L >= 1, P] objectives, got {v.shape}")
    nan = np.isnan(v)
    bad = np.where(nan, -np.inf, v if minimize else -v)
    top = bad.max(axis=0)
    lane = np.where(nan.any(axis=0), np.argmax(nan, axis=0),
                    np.argmax((bad == top) & ~nan, axis=0))
    return v[lane, np.arange(v.shape[1])], lane
