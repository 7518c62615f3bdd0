"""Numba sweeps: one run of the calls per grid point, on precomputed exits.

Inputs are the outputs of ``exit_levels_nb`` plus per-call arrays, all in
*sweep order* (calls sorted by ``(ts_ms, position in the request)``). A run
touches only the calls listed in ``sel[group_offsets[g]:group_offsets[g+1]]``,
so per-caller optimization is one kernel call over (group, grid point) pairs.

``cfg`` packs the simulator config's real numbers as float64, in the order of
``CFG_FIELDS`` (read through the ``CFG_*`` indices); ``max_open``, the one
integer, travels as an int64 of its own so that no value of it is rounded or
wrapped on the way (a float64 holds integers exactly only below 2**53).
Kernels take and return only arrays and scalars; see ``_engine.py`` for the
wrappers. References: ``tests.reference.simulator.simulate_capital`` and
``simulate_per_trade``.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from .kernels import (
    BELOW_MIN_SIZE,
    CAPITAL_METRICS,
    ENTERED,
    MAX_POSITIONS,
    NO_ENTRY,
    PER_TRADE_METRICS,
    _resolve_exit_nb,
    heap_pop_nb,
    heap_push_nb,
)

CFG_FIELDS = (
    "initial_capital", "max_allocation_pct", "max_risk_per_trade",
    "min_executable_size", "taker_fee_bps", "slippage_bps",
)
CFG_INITIAL, CFG_ALLOC_PCT, CFG_MAX_RISK, CFG_MIN_SIZE, CFG_TAKER_BPS, CFG_SLIPPAGE_BPS = range(6)
assert len(CFG_FIELDS) == 6
_N_METRICS = len(CAPITAL_METRICS)
assert _N_METRICS == len(PER_TRADE_METRICS)  # one metric matrix serves both modes


@nb.njit(cache=True, nogil=True, inline="always")
def _call_exit_nb(calls, i, tp_ts, sl_ts, hold_ts, hold_px, entry_px, tp_mult, sl_mult,
                  sl_first):
    """(exit time, exit price, reason, minutes held) of call ``i``'s trade."""
    exit_t, exit_px, reason = _resolve_exit_nb(
        tp_ts[i], sl_ts[i], hold_ts[i], hold_px[i],
        np.int64(calls[3, i]), calls[4, i], entry_px, tp_mult, sl_mult, sl_first)
    return exit_t, exit_px, reason, (exit_t - np.int64(calls[2, i])) / 60_000.0


@nb.njit(cache=True, nogil=True, inline="always")
def _tally_nb(value, wins, pos_sum, neg_sum):
    """A trade's pnl (or return) into wins and the two sides of profit factor."""
    if value > 0:
        return wins + 1, pos_sum + value, neg_sum
    return wins, pos_sum, neg_sum + value


@nb.njit(cache=True, nogil=True, inline="always")
def _record_nb(rec, r, size, pnl, exit_t, exit_px, reason):
    rec[r, 0] = ENTERED
    rec[r, 1] = size
    rec[r, 2] = pnl
    rec[r, 3] = exit_t
    rec[r, 4] = exit_px
    rec[r, 5] = reason


@nb.njit(cache=True, nogil=True)
def _first_row_at_or_after_nb(call_ts, sel, lo, hi, t):
    """First ``r`` in ``[lo, hi)`` with ``call_ts[sel[r]] >= t`` (else ``hi``);
    alert times are non-decreasing along ``sel``."""
    target = np.float64(t)
    while lo < hi:
        mid = (lo + hi) // 2
        if call_ts[sel[mid]] < target:
            lo = mid + 1
        else:
            hi = mid
    return lo


@nb.njit(cache=True, nogil=True)
def capital_run_nb(calls, sel, tp_ts, sl_ts, hold_ts, hold_px, tp_mult, sl_mult,
                   cfg, max_open, sl_first, metrics, exits, skipped, rec):
    """One capital-mode run (SPEC 2) over the calls ``sel``.

    ``calls`` rows: alert ts, entry px (0 = no entry), entry ts, end-of-data
    ts, end-of-data close (as float64; times are exact below 2**53). Writes
    ``metrics`` (CAPITAL_METRICS order), ``exits`` and ``skipped`` counts.
    ``rec`` is ``(n_sel, 6)`` to record each call's outcome (status, size,
    pnl, exit ts, exit px, exit reason) or ``(0, 6)`` to skip recording.
    """
    initial, alloc_pct, max_risk = cfg[CFG_INITIAL], cfg[CFG_ALLOC_PCT], cfg[CFG_MAX_RISK]
    min_size = cfg[CFG_MIN_SIZE]
    cost_bps = cfg[CFG_TAKER_BPS] + cfg[CFG_SLIPPAGE_BPS]
    n = sel.shape[0]
    # No more than n positions can ever be open: any max_open >= n is the same
    # run, so the slots are bounded by the calls, not by max_open.
    cap = max(1, min(max_open, n))
    heap = np.arange(cap)
    h_ts = np.empty(cap, np.int64)
    h_order = np.empty(cap, np.int64)
    h_size = np.empty(cap, np.float64)
    h_pnl = np.empty(cap, np.float64)
    n_open = 0
    free = initial
    open_sum = 0.0
    peak = initial
    max_dd = 0.0
    trades = 0
    wins = 0
    pos_sum = 0.0
    neg_sum = 0.0
    fees = 0.0
    hold_min = 0.0
    risk_cap = max_risk / (1.0 - sl_mult)
    record = rec.shape[0] > 0
    r = 0
    while True:
        last = r == n
        t = 0 if last else np.int64(calls[0, sel[r]])
        # Close what has exited by now (everything after the last call), in
        # (exit time, opening order); equity is marked after every close.
        while n_open > 0 and (last or h_ts[heap[0]] <= t):
            n_open = heap_pop_nb(heap, h_ts, h_order, n_open)
            slot = heap[n_open]
            free += h_size[slot] + h_pnl[slot]
            open_sum = open_sum - h_size[slot] if n_open > 0 else 0.0
            equity = free + open_sum
            peak = max(peak, equity)
            max_dd = max(max_dd, (peak - equity) / peak)
        if last:
            break
        i = sel[r]
        if n_open >= max_open:
            # Saturated until the next exit: every call before it is skipped,
            # so jump there instead of visiting each one.
            nxt = _first_row_at_or_after_nb(calls[0], sel, r, n, h_ts[heap[0]])
            skipped[MAX_POSITIONS] += nxt - r
            if record:
                rec[r:nxt, 0] = MAX_POSITIONS
            r = nxt
            continue
        entry_px = calls[1, i]
        if not entry_px > 0.0:
            skipped[NO_ENTRY] += 1
            if record:
                rec[r, 0] = NO_ENTRY
            r += 1
            continue
        size = min(risk_cap, alloc_pct * free, free)
        if size < min_size:
            skipped[BELOW_MIN_SIZE] += 1
            if record:
                rec[r, 0] = BELOW_MIN_SIZE
            r += 1
            continue
        free -= size
        open_sum += size
        exit_t, exit_px, reason, held = _call_exit_nb(
            calls, i, tp_ts, sl_ts, hold_ts, hold_px, entry_px, tp_mult, sl_mult, sl_first)
        fee = size * cost_bps / 10_000 * 2
        pnl = size * (exit_px / entry_px - 1) - fee
        exits[reason] += 1
        wins, pos_sum, neg_sum = _tally_nb(pnl, wins, pos_sum, neg_sum)
        fees += fee
        hold_min += held
        slot = heap[n_open]
        h_ts[slot], h_order[slot], h_size[slot], h_pnl[slot] = exit_t, trades, size, pnl
        n_open = heap_push_nb(heap, h_ts, h_order, n_open)
        trades += 1
        if record:
            _record_nb(rec, r, size, pnl, exit_t, exit_px, reason)
        r += 1
    metrics[0] = free
    metrics[1] = free / initial - 1
    metrics[2] = trades
    metrics[3] = wins
    metrics[4] = trades - wins
    metrics[5] = wins / trades if trades > 0 else 0.0
    metrics[6] = skipped.sum()
    metrics[7] = fees
    metrics[8] = pos_sum / -neg_sum if neg_sum != 0.0 else np.nan
    metrics[9] = max_dd
    metrics[10] = hold_min / trades if trades > 0 else 0.0


@nb.njit(cache=True, nogil=True)
def per_trade_run_nb(calls, sel, tp_ts, sl_ts, hold_ts, hold_px, tp_mult, sl_mult,
                     cfg, max_open, sl_first, metrics, exits, skipped, rec):
    """One per-trade-mode run (SPEC 3): every call with an entry, notional 1.

    Same arguments as ``capital_run_nb`` (``max_open`` is unused: no account);
    ``rec`` size column is 1 and its pnl column is the trade's return.
    """
    cost = (cfg[CFG_TAKER_BPS] + cfg[CFG_SLIPPAGE_BPS]) / 10_000 * 2
    risk = 1.0 - sl_mult
    n = sel.shape[0]
    rets = np.empty(n, np.float64)
    trades = 0
    wins = 0
    pos_sum = 0.0
    neg_sum = 0.0
    total_r = 0.0
    hold_min = 0.0
    record = rec.shape[0] > 0
    for r in range(n):
        i = sel[r]
        entry_px = calls[1, i]
        if not entry_px > 0.0:
            skipped[NO_ENTRY] += 1
            if record:
                rec[r, 0] = NO_ENTRY
            continue
        exit_t, exit_px, reason, held = _call_exit_nb(
            calls, i, tp_ts, sl_ts, hold_ts, hold_px, entry_px, tp_mult, sl_mult, sl_first)
        ret = exit_px / entry_px - 1 - cost
        rets[trades] = ret
        trades += 1
        exits[reason] += 1
        wins, pos_sum, neg_sum = _tally_nb(ret, wins, pos_sum, neg_sum)
        total_r += ret / risk
        hold_min += held
        if record:
            _record_nb(rec, r, 1.0, ret, exit_t, exit_px, reason)
    total = 0.0
    for k in range(trades):
        total += rets[k]
    metrics[0] = trades
    metrics[1] = wins
    metrics[2] = trades - wins
    metrics[3] = wins / trades if trades > 0 else 0.0
    metrics[4] = total / trades if trades > 0 else 0.0
    metrics[5] = np.median(rets[:trades]) if trades > 0 else 0.0
    metrics[6] = total
    metrics[7] = pos_sum / -neg_sum if neg_sum != 0.0 else np.nan
    metrics[8] = total_r / trades if trades > 0 else 0.0
    metrics[9] = total_r
    metrics[10] = hold_min / trades if trades > 0 else 0.0


@nb.njit(cache=True, nogil=True, parallel=True)
def grid_nb(calls, sel, group_offsets, tp_ts, sl_ts, hold_ts, hold_px,
            point_levels, tp_levels, sl_levels, cfg, max_open, sl_first, per_trade, start, stop):
    """Runs for the (group, grid point) pairs ``start:stop`` of the flat range
    ``g * n_points + p``: metrics ``[stop - start, 11]`` (the mode's metric
    order), exit counts ``[.., 4]``, skip counts ``[.., 3]``.

    ``point_levels[p]`` = (tp level, sl level, hold level) indices into the
    level arrays. A flat range lets any request be cut into chunks of about
    equal work, and many small callers parallelize as well as one large grid.
    Reference: ``tests.reference.optimizer.optimize``.
    """
    n_points = point_levels.shape[0]
    count = stop - start
    metrics = np.empty((count, _N_METRICS), np.float64)
    exits = np.zeros((count, 4), np.int64)
    skipped = np.zeros((count, 3), np.int64)
    no_rec = np.empty((0, 6), np.float64)
    for q in nb.prange(count):
        g, p = (start + q) // n_points, (start + q) % n_points
        k, m, h = point_levels[p, 0], point_levels[p, 1], point_levels[p, 2]
        rows = sel[group_offsets[g]:group_offsets[g + 1]]
        if per_trade:
            per_trade_run_nb(calls, rows, tp_ts[k], sl_ts[m], hold_ts[h], hold_px[h],
                             tp_levels[k], sl_levels[m], cfg, max_open, sl_first,
                             metrics[q], exits[q], skipped[q], no_rec)
        else:
            capital_run_nb(calls, rows, tp_ts[k], sl_ts[m], hold_ts[h], hold_px[h],
                           tp_levels[k], sl_levels[m], cfg, max_open, sl_first,
                           metrics[q], exits[q], skipped[q], no_rec)
    return metrics, exits, skipped
