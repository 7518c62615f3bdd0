"""What one call's trade does once it is entered, for each kind of run the
sweeps compile: its exit (time, price, reason: ``resolve_exit_nb`` and
``resolve_extended_nb`` from the scan's first-hit times), the sizing stop
and the direction of its pnl.

``sweeps.capital_run_nb`` and ``per_trade_run_nb`` take an ``x`` that is one
of four things, told apart when Numba compiles (``@overload``), so each kind
of run gets straight-line code with no branch for the others:

- SPEC 2's four first-hit arrays (``layouts.HITS`` up to ``hold_px``);
- all of ``layouts.HITS`` (SPEC 11's trailing stops, breakevens, gap fills);
- ``GivenExits``: exits already known (a walk-forward's stitched run);
- ``RHits``: a strategy's trades (SPEC 13), long or short, levels in units
  of risk. A short is resolved as a long on negated prices: ``-x`` is exact,
  so ``-(entry - d)`` is ``-entry + d`` to the bit and every level, peak and
  comparison of the mirrored rules is the long rule's on ``-price``
  (``rkernels`` scans that way; the exit price is negated back here).
"""

from __future__ import annotations

from typing import NamedTuple

import numba as nb
import numpy as np
from numba import types
from numba.extending import overload

from .kernels import NO_HIT
from .layouts import (
    BREAKEVEN,
    CALL_ENTRY_TS,
    CALL_EOD_PX,
    CALL_EOD_TS,
    END_OF_DATA,
    N_SPEC2_HITS,
    STOP_LOSS,
    TAKE_PROFIT,
    TIME_EXIT,
    TRAILING_STOP,
)

# Numba's on-disk cache keys a kernel on its own file's content only (see
# kernels.py): the digest of what this file compiles in from layouts.py and
# kernels.py (tests/test_layouts.py keeps it equal).
DEPENDS_ON_DIGEST = "d9748850499117d4"


class GivenExits(NamedTuple):
    """Calls whose exits are already known, each with its own stop (a
    walk-forward's stitched run, SPEC 12: every test call with the params its
    fold chose). As ``capital_run_nb``'s ``x`` the account runs as SPEC 2
    says, sizing each call by its own risk: ``1 - sl_mult`` for calls,
    ``risk / entry_px`` for a strategy's trades (NaN: ``bad_stop``), and
    signing its pnl by its direction (1 for calls)."""

    exit_ts: np.ndarray   # int64 [n]
    exit_px: np.ndarray   # float64 [n]
    reason: np.ndarray    # int64 [n]: EXIT_REASONS codes
    risk_frac: np.ndarray  # float64 [n]
    sign: np.ndarray      # float64 [n]: +1 long, -1 short


class RHits(NamedTuple):
    """One grid point of a strategy's exit grid (SPEC 13): the first-hit
    arrays of ``layouts.HITS`` as ``rkernels.strategy_levels_nb`` scanned
    them (on negated prices for shorts: ``trail_px`` and the opens are
    negated there, ``hold_px`` is not), each call's risk (NaN: ``bad_stop``)
    and direction, and the point's ``tp_r``."""

    tp_ts: np.ndarray
    sl_ts: np.ndarray
    hold_ts: np.ndarray
    hold_px: np.ndarray
    tr_ts: np.ndarray
    tr_px: np.ndarray
    be_ts: np.ndarray
    tp_o: np.ndarray
    sl_o: np.ndarray
    tr_o: np.ndarray
    be_o: np.ndarray
    risk: np.ndarray      # float64 [n]: price distance of one R
    dirs: np.ndarray      # float64 [n]: +1 long, -1 short
    tp_r: float


def _is(x, cls) -> bool:
    return isinstance(x, types.BaseNamedTuple) and x.instance_class is cls


def call_exit_nb(calls, i, x, entry_px, tp_mult, sl_mult, be_mult, sl_first, gap_open):
    """(exit time, exit price, reason, minutes held) of call ``i``'s trade
    (module doc: which rules apply is settled at compile time)."""
    raise NotImplementedError  # pragma: no cover - compiled only, see the overload


@overload(call_exit_nb, inline="always")
def _call_exit_overload(calls, i, x, entry_px, tp_mult, sl_mult, be_mult, sl_first, gap_open):
    if _is(x, GivenExits):
        def given(calls, i, x, entry_px, tp_mult, sl_mult, be_mult, sl_first, gap_open):
            exit_t = x.exit_ts[i]
            return exit_t, x.exit_px[i], x.reason[i], held_min_nb(calls, i, exit_t)
        return given
    if _is(x, RHits):
        def strategy(calls, i, x, entry_px, tp_mult, sl_mult, be_mult, sl_first, gap_open):
            d, risk = x.dirs[i], x.risk[i]
            e = d * entry_px
            has_tr, has_be = x.tr_ts.shape[0] > 0, x.be_ts.shape[0] > 0
            # entry_px 1.0: the levels below are absolute (1.0 * v is v).
            exit_t, px, reason = resolve_extended_nb(
                x.tp_ts[i], x.sl_ts[i], x.hold_ts[i], d * x.hold_px[i],
                np.int64(calls[CALL_EOD_TS, i]), d * calls[CALL_EOD_PX, i], 1.0,
                e + x.tp_r * risk, e - risk,
                x.tr_ts[i] if has_tr else NO_HIT, x.tr_px[i] if has_tr else 0.0,
                x.be_ts[i] if has_be else NO_HIT, e,
                x.tp_o[i] if gap_open else 0.0, x.sl_o[i] if gap_open else 0.0,
                x.tr_o[i] if gap_open and has_tr else 0.0,
                x.be_o[i] if gap_open and has_be else 0.0, sl_first, gap_open)
            return exit_t, d * px, reason, held_min_nb(calls, i, exit_t)
        return strategy
    if len(x) == N_SPEC2_HITS:
        def spec2(calls, i, x, entry_px, tp_mult, sl_mult, be_mult, sl_first, gap_open):
            tp_ts, sl_ts, hold_ts, hold_px = x
            exit_t, exit_px, reason = resolve_exit_nb(
                tp_ts[i], sl_ts[i], hold_ts[i], hold_px[i], np.int64(calls[CALL_EOD_TS, i]),
                calls[CALL_EOD_PX, i], entry_px, tp_mult, sl_mult, sl_first)
            return exit_t, exit_px, reason, held_min_nb(calls, i, exit_t)
        return spec2

    def spec11(calls, i, x, entry_px, tp_mult, sl_mult, be_mult, sl_first, gap_open):
        tp_ts, sl_ts, hold_ts, hold_px, tr_ts, tr_px, be_ts, tp_o, sl_o, tr_o, be_o = x
        has_tr, has_be = tr_ts.shape[0] > 0, be_ts.shape[0] > 0
        exit_t, exit_px, reason = resolve_extended_nb(
            tp_ts[i], sl_ts[i], hold_ts[i], hold_px[i], np.int64(calls[CALL_EOD_TS, i]),
            calls[CALL_EOD_PX, i], entry_px, tp_mult, sl_mult,
            tr_ts[i] if has_tr else NO_HIT, tr_px[i] if has_tr else 0.0,
            be_ts[i] if has_be else NO_HIT, be_mult,
            tp_o[i] if gap_open else 0.0, sl_o[i] if gap_open else 0.0,
            tr_o[i] if gap_open and has_tr else 0.0, be_o[i] if gap_open and has_be else 0.0,
            sl_first, gap_open)
        return exit_t, exit_px, reason, held_min_nb(calls, i, exit_t)
    return spec11


def risk_cap_nb(x, i, entry_px, max_risk, risk_cap):
    """The sizing cap ``max_risk_per_trade / (risk as a fraction of the
    entry)``: SPEC 2.4's ``1 - sl_mult`` (``risk_cap``, one for every call),
    a given exit's own ``sl_mult``, or a strategy trade's ``risk / entry_px``."""
    raise NotImplementedError  # pragma: no cover - compiled only, see the overload


@overload(risk_cap_nb, inline="always")
def _risk_cap_overload(x, i, entry_px, max_risk, risk_cap):
    if _is(x, GivenExits):
        return lambda x, i, entry_px, max_risk, risk_cap: max_risk / x.risk_frac[i]
    if _is(x, RHits):
        return lambda x, i, entry_px, max_risk, risk_cap: max_risk / (x.risk[i] / entry_px)
    return lambda x, i, entry_px, max_risk, risk_cap: risk_cap


def risk_frac_nb(x, i, entry_px, risk):
    """Per-trade mode's R unit (SPEC 3: ``1 - sl_mult``, passed as ``risk``;
    SPEC 13: ``risk / entry_px``)."""
    raise NotImplementedError  # pragma: no cover - compiled only, see the overload


@overload(risk_frac_nb, inline="always")
def _risk_frac_overload(x, i, entry_px, risk):
    if _is(x, RHits):
        return lambda x, i, entry_px, risk: x.risk[i] / entry_px
    return lambda x, i, entry_px, risk: risk


def signed_nb(x, i, value):
    """``dir * value``: a short's pnl and return change sign (SPEC 13);
    calls are long (``value`` itself, no multiplication compiled in)."""
    raise NotImplementedError  # pragma: no cover - compiled only, see the overload


@overload(signed_nb, inline="always")
def _signed_overload(x, i, value):
    if _is(x, RHits):
        return lambda x, i, value: value * x.dirs[i]
    if _is(x, GivenExits):
        return lambda x, i, value: value * x.sign[i]
    return lambda x, i, value: value


def bad_stop_nb(x, i):
    """A strategy signal's stop on the wrong side of its entry (SPEC 13:
    skip, ``bad_stop``); never for calls."""
    raise NotImplementedError  # pragma: no cover - compiled only, see the overload


@overload(bad_stop_nb, inline="always")
def _bad_stop_overload(x, i):
    if _is(x, RHits):
        return lambda x, i: np.isnan(x.risk[i])
    if _is(x, GivenExits):
        return lambda x, i: np.isnan(x.risk_frac[i])
    return lambda x, i: False


@nb.njit(cache=True, nogil=True, inline="always")
def held_min_nb(calls, i, exit_t):
    return (exit_t - np.int64(calls[CALL_ENTRY_TS, i])) / 60_000.0


@nb.njit(cache=True, nogil=True, inline="always")
def resolve_extended_nb(tp_t, sl_t, hold_t, hold_close, eod_t, eod_close, entry_px,
                        tp_mult, sl_mult, tr_t, tr_level, be_t, be_mult,
                        tp_o, sl_o, tr_o, be_o, sl_first, gap_open):
    """SPEC 11's exit from first-hit times: (exit time, price, reason).

    The stop at a candle is the highest armed component, and "low reaches the
    highest" is "low reaches one of them", so the stop's first hit is the
    earliest of its components' (``tr_t``/``be_t`` are ``NO_HIT`` when that
    exit is off). Every component armed and at the stop's level on that
    candle is first hit there too, so the stop's level is the highest of
    those hit then; equal levels go to trailing_stop, then breakeven, then
    stop_loss. ``*_o``: the open of each first-hit candle (``gap_open``): a
    candle opening beyond a level settles at its open, whatever the
    intrabar rule.
    """
    stop_t = min(sl_t, tr_t, be_t)
    t = min(tp_t, stop_t, hold_t)
    if t == NO_HIT:
        return eod_t, eod_close, END_OF_DATA
    tp_px = entry_px * tp_mult
    stop_px = -np.inf
    reason = STOP_LOSS
    candle_open = tp_o
    if sl_t == t:
        stop_px, candle_open = entry_px * sl_mult, sl_o
    if be_t == t and entry_px * be_mult >= stop_px:
        stop_px, reason, candle_open = entry_px * be_mult, BREAKEVEN, be_o
    if tr_t == t and tr_level >= stop_px:
        stop_px, reason, candle_open = tr_level, TRAILING_STOP, tr_o
    if gap_open:
        if tp_t == t and candle_open >= tp_px:
            return t, candle_open, TAKE_PROFIT
        if stop_t == t and candle_open <= stop_px:
            return t, candle_open, reason
    if sl_first:
        if stop_t == t:
            return t, stop_px, reason
        if tp_t == t:
            return t, tp_px, TAKE_PROFIT
    else:
        if tp_t == t:
            return t, tp_px, TAKE_PROFIT
        if stop_t == t:
            return t, stop_px, reason
    return t, hold_close, TIME_EXIT


@nb.njit(cache=True, nogil=True, inline="always")
def resolve_exit_nb(tp_t, sl_t, hold_t, hold_close, eod_t, eod_close,
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
