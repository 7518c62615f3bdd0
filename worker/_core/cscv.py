"""The CSCV kernel of SPEC 12's probability of backtest overfitting: every
split's in-sample best point and that point's out-of-sample standing
(``cscv_nb``), the ranks and logits (``cscv_splits``) and the ``pbo``
result.

Every mean is summed per point, block by block in increasing block order
(left to right, as SPEC 12 writes it), so the result is the plain loop's to
the bit. Splits come in lexicographic order, so consecutive ones share a
prefix of blocks: each worker walks a contiguous run of them keeping the
partial sums of the current prefix (``h`` rows of ``N``), and adds only the
blocks after the first one that changed. Split ``s``'s out-of-sample blocks
are split ``comp[s]``'s in-sample blocks, so the second pass reuses the same
walk: the in-sample means of ``s`` are the out-of-sample means of ``comp[s]``.
Memory stays O(workers x h x N) whatever the number of splits.
"""

from __future__ import annotations

import itertools

import numba as nb
import numpy as np

from .robust import _left_sum

_RUNS = 64  # contiguous runs of splits handed to the threads


@nb.njit(cache=True, nogil=True, inline="always")
def _advance_nb(R, ins, s, prev, partial):
    """Bring ``partial`` (row j: the sum of blocks ``ins[s, :j+1]``) from split
    ``prev`` (-1: none) to split ``s``; returns the means row (last row / h)."""
    h = ins.shape[1]
    j = 0
    if prev >= 0:
        while j < h and ins[prev, j] == ins[s, j]:
            j += 1
    for k in range(j, h):
        if k == 0:
            partial[0, :] = R[ins[s, 0]]
        else:
            partial[k, :] = partial[k - 1] + R[ins[s, k]]
    return partial[h - 1] / h


@nb.njit(cache=True, nogil=True, parallel=True)
def cscv_nb(R, ins, outs, comp):
    """For each split ``s`` (in-sample blocks ``ins[s]``, out-of-sample
    ``outs[s]`` = ``ins[comp[s]]``, all ascending, rows in lexicographic
    order): p* (the first highest in-sample mean, NaN the lowest; 0 when all
    are NaN), its in-sample mean, its out-of-sample mean ``x``, and how many
    points' out-of-sample means are ``< x``, ``== x`` and NaN."""
    n = R.shape[1]
    c, h = ins.shape
    best = np.zeros(c, np.int64)
    best_val = np.full(c, np.nan)
    runs = min(_RUNS, c)
    for r in nb.prange(runs):
        partial = np.empty((h, n))
        prev = -1
        for s in range(r * c // runs, (r + 1) * c // runs):
            m = _advance_nb(R, ins, s, prev, partial)
            prev = s
            top, at = np.nan, 0
            for p in range(n):
                v = m[p]
                if v > top or (np.isnan(top) and not np.isnan(v)):
                    top, at = v, p
            best[s], best_val[s] = at, top
    oos = np.empty(c)
    for s in range(c):  # p*'s out-of-sample mean, left to right over its blocks
        acc = R[outs[s, 0], best[s]]
        for j in range(1, outs.shape[1]):
            acc += R[outs[s, j], best[s]]
        oos[s] = acc / outs.shape[1]
    below = np.zeros(c, np.int64)
    equal = np.zeros(c, np.int64)
    n_nan = np.zeros(c, np.int64)
    for r in nb.prange(runs):
        partial = np.empty((h, n))
        prev = -1
        for s in range(r * c // runs, (r + 1) * c // runs):
            m = _advance_nb(R, ins, s, prev, partial)  # = split comp[s]'s out-of-sample means
            prev = s
            t = comp[s]
            x = oos[t]
            lt, eq, nn = 0, 0, 0
            for p in range(n):
                v = m[p]
                if np.isnan(v):
                    nn += 1
                elif v < x:
                    lt += 1
                elif v == x:
                    eq += 1
            below[t], equal[t], n_nan[t] = lt, eq, nn
    return best, best_val, oos, below, equal, n_nan


def cscv_splits(R: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """SPEC 12 **Probability of backtest overfitting** (CSCV) of ``R[b, p]``
    (float64 [S blocks, N points], S even).

    For each of the C(S, S/2) in-sample block sets (lexicographic order):
    ``p*`` the point with the highest in-sample mean (ties by grid order),
    ``w = rank / (N + 1)`` its out-of-sample rank with rank 1 the worst and
    ties sharing their average rank, ``logit = ln(w / (1 - w))``. Every mean
    is the left-to-right sum over the blocks in increasing block order
    divided by their count: done so in ``cscv.cscv_nb`` (not as a matrix
    product, whose summation order differs), one parallel pass over the
    splits. Returns, per split: p*, its in-sample and out-of-sample means,
    and the logit.

    Decisions: a NaN mean ranks below every number on both sides (and is
    never ``< 0``); p* is point 0 when every in-sample mean is NaN.
    """
    R = np.asarray(R, np.float64)
    if R.ndim != 2 or R.shape[0] < 2 or R.shape[0] % 2 or R.shape[1] < 1:
        raise ValueError(f"pbo needs R of shape [S even >= 2, N >= 1], got {R.shape}")
    S, N = R.shape
    h = S // 2
    ins = np.array(list(itertools.combinations(range(S), h)), np.int64)  # [C, h]
    # The out-of-sample blocks of split i are the in-sample blocks of split
    # comp[i] (both ascending).
    codes = (np.int64(1) << ins).sum(axis=1)  # the subsets as bit sets
    order = np.argsort(codes)
    comp = order[np.searchsorted(codes[order], codes ^ ((1 << S) - 1))]
    best, best_val, x, below, equal, n_nan = cscv_nb(np.ascontiguousarray(R), ins,
                                                     ins[comp], comp)
    rank = np.where(np.isnan(x), (n_nan + 1) / 2.0, below + n_nan + (equal + 1) / 2.0)
    w = rank / (N + 1)
    return best, best_val, x, np.log(w / (1 - w))


def pbo(R: np.ndarray) -> dict[str, object]:
    """SPEC 12's ``pbo`` result ``{pbo, prob_oos_loss, logit_quartiles,
    slope}`` from ``cscv_splits(R)``: the share of splits with ``logit <=
    0``, the share whose p* has an out-of-sample mean ``< 0``, the logits'
    ``np.percentile`` quartiles, and the OLS slope (with intercept) of p*'s
    out-of-sample on in-sample mean, None when the in-sample means do not
    vary (splits with a NaN mean left out)."""
    _, is_best, x, logit = cscv_splits(R)
    C = logit.size
    ok = ~np.isnan(is_best) & ~np.isnan(x)
    xs, ys = is_best[ok], x[ok]
    slope = None
    if xs.size >= 2 and not np.all(xs == xs[0]):
        dx = xs - _left_sum(xs) / xs.size
        dy = ys - _left_sum(ys) / ys.size
        slope = float(_left_sum(dx * dy) / _left_sum(dx * dx))
    return {
        "pbo": float(np.count_nonzero(logit <= 0) / C),
        "prob_oos_loss": float(np.count_nonzero(x < 0) / C),
        "logit_quartiles": [float(q) for q in np.percentile(logit, [25, 50, 75])],
        "slope": slope,
    }
