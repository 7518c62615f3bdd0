"""Numba kernels of a strategy's trades (SPEC 13): long and short, levels in
units of risk, on the symbols' base bars.

The same engine as calls: entries are ``kernels._entry_nb``'s market entries,
the scan is ``kernels._scan_extended_nb`` (first hits of every TP, stop,
trailing stop and breakeven level, gap opens), the runs are
``sweeps.capital_run_nb`` / ``per_trade_run_nb`` with an ``exits.RHits``.
What differs is only where the levels come from: per trade, from its risk
``R`` (the signal's stop distance, or ``entry * sl_pct``), as absolute prices
(the scan's ``entry_px`` is 1.0). A short is scanned as a long on negated
prices (``exits`` says why that is exact): ``-low`` is its high, ``-high``
its low.

Entry configurations are ``(entry_delay_candles, sl_pct)`` pairs, index
``d * n_sl + s``: a trade's risk, and so every level, depends on both.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from .exits import RHits
from .kernels import NO_HIT, _entry_nb, _scan_extended_nb, hold_hits_nb
from .layouts import (
    CALL_ENTRY_PX,
    N_EXITS,
    N_METRICS,
    N_REC_FIELDS,
    N_SKIPS,
    POINT_BE,
    POINT_ENTRY,
    POINT_HOLD,
    POINT_TP,
    POINT_TRAIL,
)
from .sweeps import capital_run_nb, per_trade_run_nb

# Numba's on-disk cache keys a kernel on its own file's content only (see
# kernels.py): the digest of what this file compiles in (tests/test_layouts.py).
DEPENDS_ON_DIGEST = "4f1157a8703f0d06"


@nb.njit(cache=True, nogil=True, parallel=True)
def strategy_levels_nb(ts, open_, high, low, close, entry0, series_end, alert_ts, dirs, stops,
                       entry_delay, sl_pct, tp_r, hold_ms, trail_r, be_r, gap_open, calls):
    """Entries, risks and first-hit times of every level, per entry
    configuration ``(delay, sl_pct)`` and trade.

    ``dirs``: +1 / -1 per trade; ``stops``: the signal's stop, NaN for none;
    ``tp_r``, ``trail_r``, ``be_r`` ascending (a smaller ``trail_r`` is the
    tighter, higher trail; every trail is armed at once). Writes ``calls``
    (``[configs, N_CALL_ROWS, n]``). Returns ``layouts.HITS``' arrays, each
    ``[configs, levels, n]`` (the SL "levels" are the one stop), prices of
    shorts negated except ``hold_px``, and ``risk [configs, n]`` (NaN: the
    stop is on the wrong side of the entry, ``bad_stop``).
    """
    n_d, n_s, n = entry_delay.shape[0], sl_pct.shape[0], entry0.shape[0]
    n_cfg = n_d * n_s
    n_tp, n_hold, n_tr, n_be = tp_r.shape[0], hold_ms.shape[0], trail_r.shape[0], be_r.shape[0]
    n_gap = n if gap_open else 0
    tp_ts = np.full((n_cfg, n_tp, n), NO_HIT, np.int64)
    sl_ts = np.full((n_cfg, 1, n), NO_HIT, np.int64)
    hold_ts = np.full((n_cfg, n_hold, n), NO_HIT, np.int64)
    hold_px = np.zeros((n_cfg, n_hold, n), np.float64)
    tr_ts = np.full((n_cfg, n_tr, n), NO_HIT, np.int64)
    tr_px = np.zeros((n_cfg, n_tr, n), np.float64)
    be_ts = np.full((n_cfg, n_be, n), NO_HIT, np.int64)
    tp_open = np.zeros((n_cfg, n_tp, n_gap), np.float64)
    sl_open = np.zeros((n_cfg, 1, n_gap), np.float64)
    tr_open = np.zeros((n_cfg, n_tr, n_gap), np.float64)
    be_open = np.zeros((n_cfg, n_be, n_gap), np.float64)
    risk = np.zeros((n_cfg, n), np.float64)
    neg_open, neg_high, neg_low = -open_, -low, -high   # a short's long-side view
    no_dist = np.zeros(n_tr, np.float64)
    armed = np.full(n_tr, -np.inf)                       # trails: armed at once
    one_group = np.array([0, n_tr], np.int64)
    be_groups = np.arange(n_be + 1).astype(np.int64)    # distinct triggers: one each
    for flat in nb.prange(n_cfg * n):
        cfg, i = flat // n, flat % n
        end = series_end[i] + 1
        e = _entry_nb(ts, open_, low, close, entry0[i], end, alert_ts[i],
                      entry_delay[cfg // n_s], 0.0, 0, calls[cfg], i)
        if e < 0:
            continue
        entry_px = calls[cfg, CALL_ENTRY_PX, i]
        d = dirs[i]
        r = _risk_nb(entry_px, d, stops[i], sl_pct[cfg % n_s])
        risk[cfg, i] = r
        if np.isnan(r):
            continue
        stop = hold_hits_nb(ts, close, e, end, hold_ms, hold_ts[cfg, :, i], hold_px[cfg, :, i])
        ep = d * entry_px
        o, h, lo = (open_, high, low) if d > 0 else (neg_open, neg_high, neg_low)
        _scan_extended_nb(ts, o, h, lo, e + 1, stop, 1.0, ep, ep + tp_r * r,
                          np.full(1, ep - r), no_dist, trail_r * r, armed, one_group,
                          ep + be_r * r, np.full(n_be, ep), be_groups, gap_open,
                          tp_ts[cfg, :, i], sl_ts[cfg, :, i], tr_ts[cfg, :, i], tr_px[cfg, :, i],
                          be_ts[cfg, :, i], tp_open[cfg, :, i:i + 1], sl_open[cfg, :, i:i + 1],
                          tr_open[cfg, :, i:i + 1], be_open[cfg, :, i:i + 1])
    return (tp_ts, sl_ts, hold_ts, hold_px, tr_ts, tr_px, be_ts,
            tp_open, sl_open, tr_open, be_open), risk


@nb.njit(cache=True, nogil=True, inline="always")
def _risk_nb(entry_px, d, stop, sl_pct):
    """SPEC 13's ``risk``: ``|entry - stop|`` for a stop on the losing side,
    NaN (``bad_stop``) for one on the wrong side or at the entry, else
    ``entry * sl_pct``."""
    if np.isnan(stop):
        return entry_px * sl_pct
    if d * (entry_px - stop) > 0.0:
        return abs(entry_px - stop)
    return np.nan


@nb.njit(cache=True, nogil=True, inline="always")
def point_rhits_nb(hits, risk, dirs, tp_r, c, k, h, a, b):
    """One exit-grid point's ``RHits``: configuration ``c``, TP ``k``, hold
    ``h``, trail ``a`` and breakeven ``b`` (negative: off)."""
    tp_ts, sl_ts, hold_ts, hold_px, tr_ts, tr_px, be_ts, tp_o, sl_o, tr_o, be_o = hits
    none_i = np.empty(0, np.int64)
    none_f = np.empty(0, np.float64)
    return RHits(tp_ts[c, k], sl_ts[c, 0], hold_ts[c, h], hold_px[c, h],
                 tr_ts[c, a] if a >= 0 else none_i, tr_px[c, a] if a >= 0 else none_f,
                 be_ts[c, b] if b >= 0 else none_i, tp_o[c, k], sl_o[c, 0],
                 tr_o[c, a] if a >= 0 else none_f, be_o[c, b] if b >= 0 else none_f,
                 risk[c], dirs, tp_r[k])


@nb.njit(cache=True, nogil=True, parallel=True)
def strategy_grid_nb(calls, sel, group_offsets, hits, risk, dirs, point_levels, tp_r,
                     cfg, max_open, sl_first, gap_open, per_trade, start, stop):
    """``grid.grid_nb`` for a strategy's exit grid: runs of the (group, point)
    items ``start:stop`` (item ``g * n_points + p``), ``point_levels`` in
    ``POINT_*`` columns (``POINT_ENTRY``: the ``(delay, sl_pct)``
    configuration; ``POINT_SL`` unused)."""
    n_points = point_levels.shape[0]
    count = stop - start
    metrics = np.empty((count, N_METRICS), np.float64)
    exits = np.zeros((count, N_EXITS), np.int64)
    skipped = np.zeros((count, N_SKIPS), np.int64)
    no_rec = np.empty((0, N_REC_FIELDS), np.float64)
    for q in nb.prange(count):
        g, p = (start + q) // n_points, (start + q) % n_points
        c = point_levels[p, POINT_ENTRY]
        x = point_rhits_nb(hits, risk, dirs, tp_r, c, point_levels[p, POINT_TP],
                           point_levels[p, POINT_HOLD], point_levels[p, POINT_TRAIL],
                           point_levels[p, POINT_BE])
        rows = sel[group_offsets[g]:group_offsets[g + 1]]
        if per_trade:
            per_trade_run_nb(calls[c], rows, x, 0.0, 0.0, 0.0, cfg, max_open, sl_first,
                             gap_open, metrics[q], exits[q], skipped[q], no_rec)
        else:
            capital_run_nb(calls[c], rows, x, 0.0, 0.0, 0.0, cfg, max_open, sl_first,
                           gap_open, metrics[q], exits[q], skipped[q], no_rec)
    return metrics, exits, skipped
