"""Numba kernels: arrays and scalars in, arrays out, no validation.

The meaning of every kernel is the plain-loop reference in
``tests/reference/`` (SPEC sections 2-4); the Python wrappers in
``engine`` validate, sort and shape their inputs; ``layouts`` names what
their rows and columns mean.

The idea that makes a grid cheap: a call's exit depends on a grid point only
through its TP level, SL level and hold. ``exit_levels_nb`` makes one pass over
each call's candles and records, for every distinct level, the time of the
first candle that reaches it. A grid point's exit is then the earliest of three
precomputed times, and each capital run is a sweep over the calls with its
open positions kept in exit order (a sorted ring for up to ``SMALL_BOOK``
positions, a heap beyond): O(candles + calls x grid points) instead of
O(candles x grid points).

Times stand in for candle indices: timestamps strictly increase within a
series, so "earlier time" and "earlier candle" are the same thing, and
``NO_HIT`` (int64 max) sorts after every real candle.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from .layouts import END_OF_DATA, STOP_LOSS, TAKE_PROFIT, TIME_EXIT

# Numba's on-disk cache keys a kernel on its own file's content only, not on
# the constants and inlined kernels it takes from layouts.py. This digest of
# them is part of this file, so when they change, this file changes and its
# kernels recompile (tests/test_layouts.py keeps it equal; a stale cache
# would give old numbers).
DEPENDS_ON_DIGEST = "3549580b8ae0b7ba"

NO_HIT = np.iinfo(np.int64).max

_BLOCK = 32  # candles tested at once for "could a level be reached here?"


@nb.njit(cache=True, nogil=True, parallel=True)
def exit_levels_nb(ts, high, low, close, entry_idx, series_end,
                   tp_levels, sl_levels, hold_ms):
    """First-hit times of every TP, SL and hold level, for every call.

    ``tp_levels`` ascending, ``sl_levels`` descending, ``hold_ms`` ascending,
    so on each side the levels are reached in order and one pointer per side
    suffices. Only candles after the entry count (SPEC 2.2.6). The scan stops
    once every grid point must have exited: all TP levels hit, all SL levels
    hit, or the longest hold reached. Calls without entry keep NO_HIT.

    Returns ``tp_ts[n_tp, n]``, ``sl_ts[n_sl, n]``, ``hold_ts[n_hold, n]``,
    ``hold_px[n_hold, n]`` (close of the hold candle), in ``layouts.HITS``
    order, level-major so a grid point's sweep reads contiguous memory. Reference:
    ``tests.reference.simulator.simulate_capital`` (the exit rule).
    """
    n = entry_idx.shape[0]
    n_tp, n_sl, n_hold = tp_levels.shape[0], sl_levels.shape[0], hold_ms.shape[0]
    tp_ts = np.full((n_tp, n), NO_HIT, np.int64)
    sl_ts = np.full((n_sl, n), NO_HIT, np.int64)
    hold_ts = np.full((n_hold, n), NO_HIT, np.int64)
    hold_px = np.zeros((n_hold, n), np.float64)
    for i in nb.prange(n):
        e = entry_idx[i]
        if e < 0:
            continue
        end = series_end[i] + 1
        entry_px = close[e]
        stop = end
        for h in range(n_hold):
            target = ts[e] + hold_ms[h]
            j = e + 1 + np.searchsorted(ts[e + 1:end], target)
            if j < end:
                hold_ts[h, i] = ts[j]
                hold_px[h, i] = close[j]
            # The longest hold (last) bounds the scan; its own candle may
            # still hit TP or SL first, so it is scanned too.
            stop = j + 1 if j < end else end
        _scan_levels_nb(ts, high, low, e + 1, stop, entry_px, tp_levels, sl_levels,
                        tp_ts[:, i], sl_ts[:, i])
    return tp_ts, sl_ts, hold_ts, hold_px


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


@nb.njit(cache=True, nogil=True, inline="always")
def _resolve_exit_nb(tp_t, sl_t, hold_t, hold_close, eod_t, eod_close,
                     entry_px, tp_mult, sl_mult, sl_first):
    """(exit time, exit price, reason) from the three first-hit times.

    On the same candle TP beats time and SL beats time (the time rule is
    checked last); TP against SL follows the intrabar rule.
    """
    t = min(tp_t, sl_t, hold_t)
    if t == NO_HIT:
        return eod_t, eod_close, END_OF_DATA
    if sl_first:
        if sl_t == t:
            return t, entry_px * sl_mult, STOP_LOSS
        if tp_t == t:
            return t, entry_px * tp_mult, TAKE_PROFIT
    else:
        if tp_t == t:
            return t, entry_px * tp_mult, TAKE_PROFIT
        if sl_t == t:
            return t, entry_px * sl_mult, STOP_LOSS
    return t, hold_close, TIME_EXIT


# The open positions: a binary min-heap of slot ids ordered by (exit time,
# opening order). ``heap`` is always a permutation of the slots: ``heap[:count]``
# is the heap, the rest are free slots, so a push reuses the slot a pop freed
# and a sift moves one small integer instead of four fields.


@nb.njit(cache=True, nogil=True, inline="always")
def _before_nb(exit_ts, order, a, b):
    return exit_ts[a] < exit_ts[b] or (exit_ts[a] == exit_ts[b] and order[a] < order[b])


@nb.njit(cache=True, nogil=True, inline="always")
def heap_push_nb(heap, exit_ts, order, count):
    """Sift up the slot ``heap[count]`` (its fields already written)."""
    i = count
    slot = heap[i]
    while i > 0:
        parent = (i - 1) // 2
        if not _before_nb(exit_ts, order, slot, heap[parent]):
            break
        heap[i] = heap[parent]
        i = parent
    heap[i] = slot
    return count + 1


@nb.njit(cache=True, nogil=True, inline="always")
def heap_pop_nb(heap, exit_ts, order, count):
    """Remove the root; it ends at ``heap[count - 1]``. Returns the new count."""
    last = count - 1
    root = heap[0]
    slot = heap[last]
    heap[last] = root
    i = 0
    while True:
        child = 2 * i + 1
        if child >= last:
            break
        if child + 1 < last and _before_nb(exit_ts, order, heap[child + 1], heap[child]):
            child += 1
        if not _before_nb(exit_ts, order, heap[child], slot):
            break
        heap[i] = heap[child]
        i = child
    if last > 0:
        heap[i] = slot
    return last


# The open positions of a capital run, with at most ``SMALL_BOOK`` slots: a
# ring of ``mask + 1`` (a power of two) entries sorted by (exit time, opening
# order), oldest exit at ``head``. A new position is always the latest opened,
# so it goes after every entry with the same exit time: insertion walks back
# from the tail while the entry there exits strictly later (new exits are
# mostly the latest, so few entries move), and the next to close is always
# at ``head``. Measured on data set B (25 positions, the account full much
# of the time) a run costs less than half of what it does on the heap: no
# sift, and the pop is ``head += 1``. Larger books use the heap above
# (a sorted insertion could move O(slots) entries).
SMALL_BOOK = 64


@nb.njit(cache=True, nogil=True, inline="always")
def ring_insert_nb(b_ts, b_size, b_pnl, head, count, mask, exit_t, size, pnl):
    """Insert a position into the sorted ring ``head : head + count``."""
    j = head + count
    while j > head:
        p = (j - 1) & mask
        if b_ts[p] <= exit_t:
            break
        q = j & mask
        b_ts[q] = b_ts[p]
        b_size[q] = b_size[p]
        b_pnl[q] = b_pnl[p]
        j -= 1
    q = j & mask
    b_ts[q] = exit_t
    b_size[q] = size
    b_pnl[q] = pnl
