"""Numba kernels: arrays and scalars in, arrays out, no validation.

The meaning of every kernel is the plain-loop reference in
``tests/reference/`` (SPEC sections 2-4); the Python wrappers in
``engine`` validate, sort and shape their inputs; ``layouts`` names what
their rows and columns mean.

The idea that makes a grid cheap: a call's exit depends on a grid point only
through its entry configuration and the levels of its exits (TP, SL, hold,
and SPEC 11's trailing stop and breakeven, each of which first hits at a
time that depends on that one configuration alone). ``exit_levels_nb`` makes
one pass over each call's candles per entry configuration and records, for
every distinct level, the time of the first candle that reaches it. A grid
point's exit is then the earliest of a few precomputed times, and each
capital run is a sweep over the calls with its open positions kept in exit
order (``book``): O(candles x entry configurations + calls x grid points)
instead of O(candles x grid points).

Times stand in for candle indices: timestamps strictly increase within a
series, so "earlier time" and "earlier candle" are the same thing, and
``NO_HIT`` (int64 max) sorts after every real candle.
"""

from __future__ import annotations

import numba as nb
import numpy as np
from numba import types
from numba.extending import overload

from .layouts import (
    CALL_ENTRY_PX,
    CALL_ENTRY_TS,
    CALL_EXPIRY_TS,
    NO_ENTRY_PX,
    NO_FILL_PX,
)

# Numba's on-disk cache keys a kernel on its own file's content only, not on
# the constants and inlined kernels it takes from layouts.py. This digest of
# them is part of this file, so when they change, this file changes and its
# kernels recompile (tests/test_layouts.py keeps it equal; a stale cache
# would give old numbers).
DEPENDS_ON_DIGEST = "befa693f456898b9"

NO_HIT = np.iinfo(np.int64).max

_BLOCK = 32  # candles tested at once for "could a level be reached here?"


@nb.njit(cache=True, nogil=True, parallel=True)
def exit_levels_nb(ts, open_, high, low, close, entry0, series_end, alert_ts,
                   entry_delay, entry_dip, entry_wait_ms,
                   tp_levels, sl_levels, hold_ms,
                   trail_dist, trail_act, trail_groups, be_trig, be_level, be_groups,
                   gap_open, calls):
    """Entries and first-hit times of every level, per entry configuration.

    For entry configuration ``c`` (``entry_delay[c]``, ``entry_dip[c]``,
    ``entry_wait_ms[c]``: SPEC 11's entry) and call ``i`` (``entry0``: SPEC
    2.3's entry candle, -1 if none): writes ``calls[c]``'s entry rows and
    scans the candles after the entry once for every level of every kind.

    Levels come sorted so each kind is reached in order and one pointer per
    kind (per group) suffices: ``tp_levels`` ascending, ``sl_levels``
    descending, ``hold_ms`` ascending; trailing stops grouped by activation
    (``trail_groups`` offsets; distances ascending in a group: the tighter
    trail is the higher level), breakevens grouped by trigger (``be_level``,
    ``1 + offset``, descending in a group). The scan stops once every grid
    point must have exited: all TP levels hit, all SL levels hit, or the
    longest hold reached (a stop component first hit later cannot matter).

    Returns the arrays of ``layouts.HITS``, each ``[entry configs, levels,
    calls]``, level-major so a grid point's sweep reads contiguous memory;
    first hits are ``NO_HIT`` where never reached. Reference:
    ``tests.reference.simulator`` (``find_entry``, ``find_exit``).
    """
    n_ent, n = entry_delay.shape[0], entry0.shape[0]
    n_tp, n_sl, n_hold = tp_levels.shape[0], sl_levels.shape[0], hold_ms.shape[0]
    n_tr, n_be = trail_dist.shape[0], be_level.shape[0]
    extended = n_tr > 0 or n_be > 0 or gap_open
    n_gap = n if gap_open else 0
    tp_ts = np.full((n_ent, n_tp, n), NO_HIT, np.int64)
    sl_ts = np.full((n_ent, n_sl, n), NO_HIT, np.int64)
    hold_ts = np.full((n_ent, n_hold, n), NO_HIT, np.int64)
    hold_px = np.zeros((n_ent, n_hold, n), np.float64)
    tr_ts = np.full((n_ent, n_tr, n), NO_HIT, np.int64)
    tr_px = np.zeros((n_ent, n_tr, n), np.float64)
    be_ts = np.full((n_ent, n_be, n), NO_HIT, np.int64)
    tp_open = np.zeros((n_ent, n_tp, n_gap), np.float64)
    sl_open = np.zeros((n_ent, n_sl, n_gap), np.float64)
    tr_open = np.zeros((n_ent, n_tr, n_gap), np.float64)
    be_open = np.zeros((n_ent, n_be, n_gap), np.float64)
    for flat in nb.prange(n_ent * n):
        c, i = flat // n, flat % n
        end = series_end[i] + 1
        e = _entry_nb(ts, open_, low, close, entry0[i], end, alert_ts[i], entry_delay[c],
                      entry_dip[c], entry_wait_ms[c], calls[c], i)
        if e < 0:
            continue
        entry_px = calls[c, CALL_ENTRY_PX, i]
        stop = hold_hits_nb(ts, close, e, end, hold_ms, hold_ts[c, :, i], hold_px[c, :, i])
        if not extended:
            _scan_levels_nb(ts, high, low, e + 1, stop, entry_px, tp_levels, sl_levels,
                            tp_ts[c, :, i], sl_ts[c, :, i])
            continue
        _scan_extended_nb(ts, open_, high, low, e + 1, stop, entry_px, entry_px, tp_levels,
                          sl_levels, trail_dist, None, trail_act, trail_groups, be_trig,
                          be_level, be_groups, gap_open, tp_ts[c, :, i], sl_ts[c, :, i], tr_ts[c, :, i],
                          tr_px[c, :, i], be_ts[c, :, i], tp_open[c, :, i:i + 1],
                          sl_open[c, :, i:i + 1], tr_open[c, :, i:i + 1], be_open[c, :, i:i + 1])
    return (tp_ts, sl_ts, hold_ts, hold_px, tr_ts, tr_px, be_ts,
            tp_open, sl_open, tr_open, be_open)


@nb.njit(cache=True, nogil=True, inline="always")
def hold_hits_nb(ts, close, e, end, hold_ms, hold_ts, hold_px):
    """The candle (time, close) each hold level (ascending) is reached on,
    for a trade entered on candle ``e`` of a series ending before ``end``;
    returns where the scan for the other levels may stop: the longest hold
    bounds it, and its own candle may still hit another level first."""
    stop = end
    for h in range(hold_ms.shape[0]):
        j = e + 1 + np.searchsorted(ts[e + 1:end], ts[e] + hold_ms[h])
        if j < end:
            hold_ts[h] = ts[j]
            hold_px[h] = close[j]
        stop = j + 1 if j < end else end
    return stop


@nb.njit(cache=True, nogil=True, inline="always")
def _entry_nb(ts, open_, low, close, e0, end, alert_t, delay, dip, wait_ms, calls, i):
    """SPEC 11's entry of call ``i``: writes its ``CALL_ENTRY_*`` rows (and
    an unfilled order's expiry) into ``calls``; returns the entry candle or -1.

    Market (``dip`` 0): ``e0 + delay``, none past the last candle. Limit: the
    first candle after ``e0 + delay``, before the call's time + the wait,
    whose low reaches ``close[e0] * (1 - dip)``, filled at that limit or at
    the candle's open if it opened below it.
    """
    calls[CALL_ENTRY_PX, i] = NO_ENTRY_PX
    if e0 < 0:
        return -1
    if dip == 0.0:
        e = e0 + delay
        if e >= end:
            return -1
        px = close[e]
    else:
        limit = close[e0] * (1 - dip)
        expiry = alert_t + wait_ms
        e = -1
        j = e0 + delay + 1
        while j < end and ts[j] < expiry:
            if low[j] <= limit:
                e = j
                break
            j += 1
        if e < 0:
            calls[CALL_ENTRY_PX, i] = NO_FILL_PX
            calls[CALL_EXPIRY_TS, i] = expiry
            return -1
        px = min(limit, open_[e])
    calls[CALL_ENTRY_PX, i] = px
    calls[CALL_ENTRY_TS, i] = ts[e]
    return e


# Reassociation lets LLVM vectorize the max/min reduction; prices are
# validated finite and positive, so "no NaN" holds. Kept to this helper so no
# other comparison (the inf sentinels) is compiled under fast-math.
@nb.njit(cache=True, nogil=True,
         fastmath={"nnan", "nsz", "reassoc", "arcp", "contract"})
def _block_extremes_nb(high, low, start, stop):
    block_high = high[start]
    block_low = low[start]
    for q in range(start + 1, stop):
        block_high = max(block_high, high[q])
        block_low = min(block_low, low[q])
    return block_high, block_low


@nb.njit(cache=True, nogil=True)
def _scan_levels_nb(ts, high, low, start, stop, entry_px, tp_levels, sl_levels, tp_out, sl_out):
    """First-hit times of the TP and SL levels among candles ``start:stop``.

    Candles go by in blocks of ``_BLOCK``: the block's highest high and lowest
    low (a SIMD reduction) tell whether any candle in it could reach the next
    level, and only such a block is walked candle by candle. Stops as soon as every
    level of either side is hit: no grid point can exit later than that.
    """
    n_tp, n_sl = tp_levels.shape[0], sl_levels.shape[0]
    k = 0
    m = 0
    tp_next = entry_px * tp_levels[0]
    sl_next = entry_px * sl_levels[0]
    j = start
    while j < stop:
        block_end = min(j + _BLOCK, stop)
        block_high, block_low = _block_extremes_nb(high, low, j, block_end)
        if block_high >= tp_next or block_low <= sl_next:
            for q in range(j, block_end):
                if high[q] >= tp_next:
                    while k < n_tp and high[q] >= entry_px * tp_levels[k]:
                        tp_out[k] = ts[q]
                        k += 1
                    tp_next = entry_px * tp_levels[k] if k < n_tp else np.inf
                if low[q] <= sl_next:
                    while m < n_sl and low[q] <= entry_px * sl_levels[m]:
                        sl_out[m] = ts[q]
                        m += 1
                    sl_next = entry_px * sl_levels[m] if m < n_sl else -np.inf
                if k == n_tp or m == n_sl:
                    return
        j = block_end


@nb.njit(cache=True, nogil=True)
def _scan_extended_nb(ts, open_, high, low, start, stop, entry_px, peak0, tp_levels, sl_levels,
                      trail_dist, trail_sub, trail_act, trail_groups, be_trig, be_level,
                      be_groups, gap_open, tp_out, sl_out, tr_out, tr_px, be_out,
                      tp_open, sl_open, tr_open, be_open):
    """``_scan_levels_nb`` with SPEC 11's stops: first hits of every trailing
    stop and breakeven configuration too, and (``gap_open``) the open of each
    first-hit candle (the ``*_open`` arrays are ``[levels, 1]``).

    Levels are ``entry_px`` times the given multiples, a trail's level
    ``trail_level_nb`` (``peak * (1 - trail_dist)``, less ``trail_sub``),
    and ``peak`` starts at ``peak0``. Calls (SPEC 2, 11) pass ``peak0 =
    entry_px`` and ``trail_sub`` None (compiled out); a strategy's trades
    (SPEC 13, ``rkernels``) pass ``entry_px = 1.0`` with absolute levels,
    and ``trail_dist`` zeros with ``trail_sub = trail_r * risk``.

    ``peak`` is the running peak *before* candle ``q`` (``peak_j``): a candle
    is tested against the stops its predecessors set, then raises the peak.
    A block is skipped when even its highest high as the peak could not
    bring a trail down to its lowest low (products with one positive factor
    round monotonically, so the bound is exact), nor any breakeven, TP or SL
    be reached in it.
    """
    n_tp, n_sl = tp_levels.shape[0], sl_levels.shape[0]
    n_trg, n_beg = trail_groups.shape[0] - 1, be_groups.shape[0] - 1
    tr_next = trail_groups[:-1].copy()   # per activation group: next unhit trail
    be_next = be_groups[:-1].copy()      # per trigger group: next unhit breakeven
    k = 0
    m = 0
    tp_next = entry_px * tp_levels[0]
    sl_next = entry_px * sl_levels[0]
    peak = peak0
    j = start
    while j < stop:
        block_end = min(j + _BLOCK, stop)
        block_high, block_low = _block_extremes_nb(high, low, j, block_end)
        near = block_high >= tp_next or block_low <= sl_next
        top = max(peak, block_high)
        for g in range(n_trg):
            a = tr_next[g]
            if a < trail_groups[g + 1] and block_low <= trail_level_nb(top, trail_dist, trail_sub, a):
                near = True
        for g in range(n_beg):
            if be_next[g] < be_groups[g + 1] and block_low <= entry_px * be_level[be_next[g]]:
                near = True
        if not near:
            peak = top
            j = block_end
            continue
        for q in range(j, block_end):
            if high[q] >= tp_next:
                while k < n_tp and high[q] >= entry_px * tp_levels[k]:
                    tp_out[k] = ts[q]
                    if gap_open:
                        tp_open[k, 0] = open_[q]
                    k += 1
                tp_next = entry_px * tp_levels[k] if k < n_tp else np.inf
            if low[q] <= sl_next:
                while m < n_sl and low[q] <= entry_px * sl_levels[m]:
                    sl_out[m] = ts[q]
                    if gap_open:
                        sl_open[m, 0] = open_[q]
                    m += 1
                sl_next = entry_px * sl_levels[m] if m < n_sl else -np.inf
            for g in range(n_trg):
                a = tr_next[g]
                if a == trail_groups[g + 1] or not peak >= entry_px * trail_act[a]:
                    continue
                while a < trail_groups[g + 1] and low[q] <= trail_level_nb(peak, trail_dist,
                                                                           trail_sub, a):
                    tr_out[a] = ts[q]
                    tr_px[a] = trail_level_nb(peak, trail_dist, trail_sub, a)
                    if gap_open:
                        tr_open[a, 0] = open_[q]
                    a += 1
                tr_next[g] = a
            for g in range(n_beg):
                b = be_next[g]
                if b == be_groups[g + 1] or not peak >= entry_px * be_trig[b]:
                    continue
                while b < be_groups[g + 1] and low[q] <= entry_px * be_level[b]:
                    be_out[b] = ts[q]
                    if gap_open:
                        be_open[b, 0] = open_[q]
                    b += 1
                be_next[g] = b
            peak = max(peak, high[q])
            if k == n_tp or m == n_sl:
                return
        j = block_end


def trail_level_nb(peak, trail_dist, trail_sub, a):
    """Trailing stop ``a``'s level at ``peak``: SPEC 11's ``peak * (1 -
    distance)``, or with ``trail_sub`` SPEC 13's ``peak - trail_r * risk``
    (``trail_dist`` 0: ``peak * 1`` is ``peak``). Chosen when Numba compiles:
    a None ``trail_sub`` leaves the calls' scan as it was, no subtraction."""
    raise NotImplementedError  # pragma: no cover - compiled only, see the overload


@overload(trail_level_nb, inline="always")
def _trail_level_overload(peak, trail_dist, trail_sub, a):
    if isinstance(trail_sub, types.NoneType):
        return lambda peak, trail_dist, trail_sub, a: peak * (1 - trail_dist[a])
    return lambda peak, trail_dist, trail_sub, a: peak * (1 - trail_dist[a]) - trail_sub[a]
