"""Every point of a grid, in parallel: the kernel that hands each (caller
group, grid point) pair its first-hit arrays and runs it (``sweeps``).

A grid whose points have no SPEC 11 exit passes SPEC 2's four first-hit
arrays, so its runs compile to the code they always were; a point with a
trailing stop, a breakeven or gap fills passes all of ``layouts.HITS``
(``exits.call_exit_nb`` is chosen by the tuple's length). Reference:
``tests.reference.optimizer.optimize``.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from .layouts import (
    HIT_HOLD_PX,
    HIT_HOLD_TS,
    HIT_SL_TS,
    HIT_TP_TS,
    N_EXITS,
    N_METRICS,
    N_REC_FIELDS,
    N_SKIPS,
    POINT_BE,
    POINT_ENTRY,
    POINT_HOLD,
    POINT_SL,
    POINT_TP,
    POINT_TRAIL,
)
from .sweeps import capital_run_nb, per_trade_run_nb

# Numba's on-disk cache keys a kernel on its own file's content only, not on
# the constants and kernels it takes from layouts.py, kernels.py, book.py and
# sweeps.py. This digest of them is part of this file, so when they change,
# this file changes and its kernels recompile (tests/test_layouts.py keeps
# it equal; a stale cache would give old numbers).
DEPENDS_ON_DIGEST = "4f1157a8703f0d06"


@nb.njit(cache=True, nogil=True, inline="always")
def point_hits_nb(hits, c, k, m, h, a, b):
    """The first-hit arrays of one grid point (``exits.call_exit_nb``'s ``x``):
    entry configuration ``c``, levels ``k, m, h``, trail ``a`` and breakeven
    ``b`` (``NO_LEVEL``, negative: off, a zero-length array)."""
    tp_ts, sl_ts, hold_ts, hold_px, tr_ts, tr_px, be_ts, tp_o, sl_o, tr_o, be_o = hits
    none_i = np.empty(0, np.int64)
    none_f = np.empty(0, np.float64)
    return (tp_ts[c, k], sl_ts[c, m], hold_ts[c, h], hold_px[c, h],
            tr_ts[c, a] if a >= 0 else none_i, tr_px[c, a] if a >= 0 else none_f,
            be_ts[c, b] if b >= 0 else none_i, tp_o[c, k], sl_o[c, m],
            tr_o[c, a] if a >= 0 else none_f, be_o[c, b] if b >= 0 else none_f)


@nb.njit(cache=True, nogil=True, parallel=True)
def grid_nb(calls, sel, group_offsets, hits, point_levels, tp_levels, sl_levels, be_level,
            cfg, max_open, sl_first, gap_open, extended, per_trade, start, stop):
    """Runs for the (group, grid point) pairs ``start:stop`` of the flat range
    ``g * n_points + p``: metrics ``[stop - start, N_METRICS]`` (the mode's
    metric order), exit counts ``[.., N_EXITS]``, skip counts ``[.., N_SKIPS]``.

    ``calls``: ``[entry configs, N_CALL_ROWS, n]``; ``hits``: the tuple
    ``exit_levels_nb`` returns; ``point_levels[p]``: the point's level
    indices (``POINT_*`` columns); ``extended``: some point has a trailing
    stop or breakeven, or ``gap_open`` (``exits.call_exit_nb``). A flat range lets any request be cut into
    chunks of about equal work, and many small callers parallelize as well
    as one large grid. Reference: ``tests.reference.optimizer.optimize``.
    """
    n_points = point_levels.shape[0]
    count = stop - start
    metrics = np.empty((count, N_METRICS), np.float64)
    exits = np.zeros((count, N_EXITS), np.int64)
    skipped = np.zeros((count, N_SKIPS), np.int64)
    no_rec = np.empty((0, N_REC_FIELDS), np.float64)
    for q in nb.prange(count):
        g, p = (start + q) // n_points, (start + q) % n_points
        k, m, h = point_levels[p, POINT_TP], point_levels[p, POINT_SL], point_levels[p, POINT_HOLD]
        a, b, c = point_levels[p, POINT_TRAIL], point_levels[p, POINT_BE], point_levels[p, POINT_ENTRY]
        be_mult = be_level[b] if b >= 0 else 0.0
        rows = sel[group_offsets[g]:group_offsets[g + 1]]
        # A point of an extended grid with no SPEC 11 exit of its own runs
        # the SPEC 2 variant (its entry may still be delayed or a limit).
        if extended and (a >= 0 or b >= 0 or gap_open):
            _run_nb(per_trade, calls[c], rows, point_hits_nb(hits, c, k, m, h, a, b),
                    tp_levels[k], sl_levels[m], be_mult, cfg, max_open, sl_first, gap_open,
                    metrics[q], exits[q], skipped[q], no_rec)
        else:
            _run_nb(per_trade, calls[c], rows, spec2_hits_nb(hits, c, k, m, h),
                    tp_levels[k], sl_levels[m], be_mult, cfg, max_open, sl_first, gap_open,
                    metrics[q], exits[q], skipped[q], no_rec)
    return metrics, exits, skipped


@nb.njit(cache=True, nogil=True, inline="always")
def _run_nb(per_trade, calls, rows, x, tp_mult, sl_mult, be_mult, cfg, max_open, sl_first,
            gap_open, metrics, exits, skipped, rec):
    if per_trade:
        per_trade_run_nb(calls, rows, x, tp_mult, sl_mult, be_mult, cfg, max_open, sl_first,
                         gap_open, metrics, exits, skipped, rec)
    else:
        capital_run_nb(calls, rows, x, tp_mult, sl_mult, be_mult, cfg, max_open, sl_first,
                       gap_open, metrics, exits, skipped, rec)


@nb.njit(cache=True, nogil=True, inline="always")
def spec2_hits_nb(hits, c, k, m, h):
    """The first-hit arrays of a SPEC 2 grid point (``exits.call_exit_nb``'s ``x``)."""
    return (hits[HIT_TP_TS][c, k], hits[HIT_SL_TS][c, m], hits[HIT_HOLD_TS][c, h],
            hits[HIT_HOLD_PX][c, h])
