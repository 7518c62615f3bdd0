"""Numba sweeps: one run of the calls per grid point, on precomputed exits.

Inputs are the outputs of ``exit_levels_nb`` plus per-call arrays, all in
*sweep order* (calls sorted by ``(ts_ms, position in the request)``). A run
touches only the calls listed in ``sel[group_offsets[g]:group_offsets[g+1]]``,
so per-caller optimization is one kernel call over (group, grid point) pairs.

Every array's rows and columns are named in ``layouts``: ``calls`` rows
``CALL_*``, ``cfg`` (the simulator config's real numbers as float64)
``CFG_*``, grid points ``POINT_*``, per-call records ``REC_*``, metric
columns ``CAP_*`` / ``PT_*``. ``max_open``, the one integer of the config,
travels as an int64 of its own so that no value of it is rounded or wrapped
on the way (a float64 holds integers exactly only below 2**53). Kernels take
and return only arrays and scalars; see ``engine`` for the wrappers.
References: ``tests.reference.simulator.simulate_capital`` and
``simulate_per_trade``.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from .book import SMALL_BOOK, heap_pop_nb, heap_push_nb, ring_insert_nb
from .exits import (
    GivenExits,
    RHits,
    bad_stop_nb,
    call_exit_nb,
    risk_cap_nb,
    risk_frac_nb,
    signed_nb,
)
from .layouts import (
    BAD_STOP,
    BELOW_MIN_SIZE,
    CALL_ALERT_TS,
    CALL_ENTRY_PX,
    CALL_EXPIRY_TS,
    CAP_AVG_HOLD_MIN,
    CAP_FEES_PAID,
    CAP_FINAL_CAPITAL,
    CAP_LOSSES,
    CAP_MAX_DRAWDOWN,
    CAP_PROFIT_FACTOR,
    CAP_SHARPE,
    CAP_TOTAL_RETURN,
    CAP_TRADES_EXECUTED,
    CAP_TRADES_SKIPPED,
    CAP_WIN_RATE,
    CAP_WINS,
    CFG_INITIAL_CAPITAL,
    CFG_MAX_ALLOCATION_PCT,
    CFG_MAX_RISK_PER_TRADE,
    CFG_MIN_EXECUTABLE_SIZE,
    CFG_SLIPPAGE_BPS,
    CFG_TAKER_FEE_BPS,
    ENTERED,
    MAX_POSITIONS,
    NO_ENTRY,
    NO_FILL,
    PT_AVG_HOLD_MIN,
    PT_AVG_R,
    PT_AVG_RETURN,
    PT_LOSSES,
    PT_MEDIAN_RETURN,
    PT_PROFIT_FACTOR,
    PT_SHARPE,
    PT_TOTAL_R,
    PT_TOTAL_RETURN,
    PT_TRADES,
    PT_WIN_RATE,
    PT_WINS,
    REC_EXIT_PX,
    REC_EXIT_REASON,
    REC_EXIT_TS,
    REC_PNL,
    REC_SIZE,
    REC_STATUS,
)
from .moments import sharpe_nb

__all__ = ["GivenExits", "RHits", "capital_run_nb", "per_trade_run_nb"]

# Numba's on-disk cache keys a kernel on its own file's content only, not on
# the constants and inlined kernels it takes from layouts.py and kernels.py. This digest of
# them is part of this file, so when they change, this file changes and its
# kernels recompile (tests/test_layouts.py keeps it equal; a stale cache
# would give old numbers).
DEPENDS_ON_DIGEST = "659893b03bdacaf8"


@nb.njit(cache=True, nogil=True, inline="always")
def _tally_nb(value, wins, pos_sum, neg_sum):
    """A trade's pnl (or return) into wins and the two sides of profit factor."""
    if value > 0:
        return wins + 1, pos_sum + value, neg_sum
    return wins, pos_sum, neg_sum + value


@nb.njit(cache=True, nogil=True, inline="always")
def _record_nb(rec, r, size, pnl, exit_t, exit_px, reason):
    rec[r, REC_STATUS] = ENTERED
    rec[r, REC_SIZE] = size
    rec[r, REC_PNL] = pnl
    rec[r, REC_EXIT_TS] = exit_t
    rec[r, REC_EXIT_PX] = exit_px
    rec[r, REC_EXIT_REASON] = reason


@nb.njit(cache=True, nogil=True)
def capital_run_nb(calls, sel, x, tp_mult, sl_mult, be_mult,
                   cfg, max_open, sl_first, gap_open, metrics, exits, skipped, rec):
    """One capital-mode run (SPEC 2, 11) over the calls ``sel``.

    ``calls``: the ``CALL_*`` rows of the point's entry configuration;
    ``x``: its first-hit arrays (``exits.call_exit_nb``). Writes
    ``metrics`` (``CAP_*`` columns), ``exits`` and ``skipped`` counts.
    ``rec`` is ``(n_sel, N_REC_FIELDS)`` to record each call's outcome
    (``REC_*`` columns) or ``(0, N_REC_FIELDS)`` to skip recording.
    """
    initial = cfg[CFG_INITIAL_CAPITAL]
    alloc_pct, max_risk = cfg[CFG_MAX_ALLOCATION_PCT], cfg[CFG_MAX_RISK_PER_TRADE]
    min_size = cfg[CFG_MIN_EXECUTABLE_SIZE]
    cost_bps = cfg[CFG_TAKER_FEE_BPS] + cfg[CFG_SLIPPAGE_BPS]
    n = sel.shape[0]
    alert_ts = calls[CALL_ALERT_TS]
    # No more than n positions can ever be open: any max_open >= n is the same
    # run, so the slots are bounded by the calls, not by max_open. A small
    # book is a sorted ring (``kernels.ring_insert_nb``), a large one a heap.
    cap = max(1, min(max_open, n))
    small = cap <= SMALL_BOOK
    slots = 1
    while slots < cap:
        slots *= 2
    mask = slots - 1
    heap = np.arange(slots)
    b_ts = np.empty(slots, np.int64)
    b_order = np.empty(slots, np.int64)
    b_size = np.empty(slots, np.float64)
    b_pnl = np.empty(slots, np.float64)
    head = 0
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
    opened = 0  # trades and unfilled orders holding cash: the book's opening order
    cost = cost_bps / 10_000 * 2
    rets = np.empty(n, np.float64)  # each trade's return, in entry order (sharpe)
    ret_sum = 0.0
    risk_cap = max_risk / (1.0 - sl_mult)
    record = rec.shape[0] > 0
    r = 0
    while True:
        last = r == n
        t = 0 if last else np.int64(alert_ts[sel[r]])
        # Close what has exited by now (everything after the last call), in
        # (exit time, opening order); equity is marked after every close.
        while n_open > 0:
            if small:
                slot = head & mask
                if not (last or b_ts[slot] <= t):
                    break
                head += 1
                n_open -= 1
            else:
                if not (last or b_ts[heap[0]] <= t):
                    break
                n_open = heap_pop_nb(heap, b_ts, b_order, n_open)
                slot = heap[n_open]
            free += b_size[slot] + b_pnl[slot]
            open_sum = open_sum - b_size[slot] if n_open > 0 else 0.0
            equity = free + open_sum
            peak = max(peak, equity)
            max_dd = max(max_dd, (peak - equity) / peak)
        if last:
            break
        i = sel[r]
        if n_open >= max_open:
            # Saturated until the next exit: every call before it is skipped,
            # so walk to it without visiting the account (calls are in time order).
            target = np.float64(b_ts[head & mask] if small else b_ts[heap[0]])
            nxt = r + 1
            while nxt < n and alert_ts[sel[nxt]] < target:
                nxt += 1
            skipped[MAX_POSITIONS] += nxt - r
            if record:
                rec[r:nxt, REC_STATUS] = MAX_POSITIONS
            r = nxt
            continue
        entry_px = calls[CALL_ENTRY_PX, i]
        if entry_px > 0.0 and bad_stop_nb(x, i):
            skipped[BAD_STOP] += 1
            if record:
                rec[r, REC_STATUS] = BAD_STOP
            r += 1
            continue
        if entry_px > 0.0:
            size = min(risk_cap_nb(x, i, entry_px, max_risk, risk_cap), alloc_pct * free, free)
            if size < min_size:
                skipped[BELOW_MIN_SIZE] += 1
                if record:
                    rec[r, REC_STATUS] = BELOW_MIN_SIZE
                r += 1
                continue
            exit_t, exit_px, reason, held = call_exit_nb(
                calls, i, x, entry_px, tp_mult, sl_mult, be_mult, sl_first, gap_open)
            fee = size * cost_bps / 10_000 * 2
            pnl = signed_nb(x, i, size) * (exit_px / entry_px - 1) - fee
            ret = signed_nb(x, i, exit_px / entry_px - 1) - cost
            rets[trades] = ret
            ret_sum += ret
            exits[reason] += 1
            wins, pos_sum, neg_sum = _tally_nb(pnl, wins, pos_sum, neg_sum)
            fees += fee
            hold_min += held
            trades += 1
            if record:
                _record_nb(rec, r, size, pnl, exit_t, exit_px, reason)
        else:
            status = NO_FILL if entry_px < 0.0 else NO_ENTRY
            skipped[status] += 1
            if record:
                rec[r, REC_STATUS] = status
            if status == NO_ENTRY:
                r += 1
                continue
            size = min(risk_cap_nb(x, i, entry_px, max_risk, risk_cap), alloc_pct * free, free)
            if size < min_size:
                r += 1
                continue
            # A limit order that never fills holds its cash and a slot until
            # it expires, then gives both back: pnl 0, no fee (SPEC 11).
            exit_t = np.int64(calls[CALL_EXPIRY_TS, i])
            pnl = 0.0
        free -= size
        open_sum += size
        # Written out, not a helper: as an inlined function returning the
        # count, this insertion measured ~25 % slower sweeps (data sets A, B).
        if small:
            ring_insert_nb(b_ts, b_size, b_pnl, head, n_open, mask, exit_t, size, pnl)
            n_open += 1
        else:
            slot = heap[n_open]
            b_ts[slot], b_order[slot], b_size[slot], b_pnl[slot] = exit_t, opened, size, pnl
            n_open = heap_push_nb(heap, b_ts, b_order, n_open)
        opened += 1
        r += 1
    metrics[CAP_FINAL_CAPITAL] = free
    metrics[CAP_TOTAL_RETURN] = free / initial - 1
    metrics[CAP_TRADES_EXECUTED] = trades
    metrics[CAP_WINS] = wins
    metrics[CAP_LOSSES] = trades - wins
    metrics[CAP_WIN_RATE] = wins / trades if trades > 0 else 0.0
    metrics[CAP_TRADES_SKIPPED] = skipped.sum()
    metrics[CAP_FEES_PAID] = fees
    metrics[CAP_PROFIT_FACTOR] = pos_sum / -neg_sum if neg_sum != 0.0 else np.nan
    metrics[CAP_MAX_DRAWDOWN] = max_dd
    metrics[CAP_AVG_HOLD_MIN] = hold_min / trades if trades > 0 else 0.0
    sharpe_nb(rets, trades, ret_sum, metrics, CAP_SHARPE)


@nb.njit(cache=True, nogil=True)
def per_trade_run_nb(calls, sel, x, tp_mult, sl_mult, be_mult,
                     cfg, max_open, sl_first, gap_open, metrics, exits, skipped, rec):
    """One per-trade-mode run (SPEC 3): every call with an entry, notional 1.

    Same arguments as ``capital_run_nb`` (``max_open`` is unused: no account);
    writes ``metrics`` in ``PT_*`` columns; ``rec`` size column is 1 and its
    pnl column is the trade's return.
    """
    cost = (cfg[CFG_TAKER_FEE_BPS] + cfg[CFG_SLIPPAGE_BPS]) / 10_000 * 2
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
        entry_px = calls[CALL_ENTRY_PX, i]
        if not entry_px > 0.0:
            status = NO_FILL if entry_px < 0.0 else NO_ENTRY
            skipped[status] += 1
            if record:
                rec[r, REC_STATUS] = status
            continue
        if bad_stop_nb(x, i):
            skipped[BAD_STOP] += 1
            if record:
                rec[r, REC_STATUS] = BAD_STOP
            continue
        exit_t, exit_px, reason, held = call_exit_nb(
            calls, i, x, entry_px, tp_mult, sl_mult, be_mult, sl_first, gap_open)
        ret = signed_nb(x, i, exit_px / entry_px - 1) - cost
        rets[trades] = ret
        trades += 1
        exits[reason] += 1
        wins, pos_sum, neg_sum = _tally_nb(ret, wins, pos_sum, neg_sum)
        total_r += ret / risk_frac_nb(x, i, entry_px, risk)
        hold_min += held
        if record:
            _record_nb(rec, r, 1.0, ret, exit_t, exit_px, reason)
    total = 0.0
    for k in range(trades):
        total += rets[k]
    metrics[PT_TRADES] = trades
    metrics[PT_WINS] = wins
    metrics[PT_LOSSES] = trades - wins
    metrics[PT_WIN_RATE] = wins / trades if trades > 0 else 0.0
    metrics[PT_AVG_RETURN] = total / trades if trades > 0 else 0.0
    metrics[PT_MEDIAN_RETURN] = np.median(rets[:trades]) if trades > 0 else 0.0
    metrics[PT_TOTAL_RETURN] = total
    metrics[PT_PROFIT_FACTOR] = pos_sum / -neg_sum if neg_sum != 0.0 else np.nan
    metrics[PT_AVG_R] = total_r / trades if trades > 0 else 0.0
    metrics[PT_TOTAL_R] = total_r
    metrics[PT_AVG_HOLD_MIN] = hold_min / trades if trades > 0 else 0.0
    sharpe_nb(rets, trades, total, metrics, PT_SHARPE)
