"""Numba kernels of SPEC 13's built-in strategies: one symbol's bars at one
timeframe and one parameter set in, signals out, no validation (the wrappers
in ``strategies`` check the parameters).

Every kernel returns ``(index int64[k], direction int64[k], stop float64[k])``:
bar indices strictly increasing, at most one signal per bar, direction +1
(long) or -1 (short), stop NaN when the strategy gives none. ``direction``
(the parameter) is ``BOTH``, ``LONG_ONLY`` or ``SHORT_ONLY`` and filters the
signals the strategy makes: it never changes which signals those are (a
sweep_bos bar giving both sides gives neither, whatever the filter).

Each value is computed exactly as SPEC 13 writes it (an SMA is the
left-to-right sum of its own window, never a running sum), so a plain-loop
reading of the text gives the same bits (tests/plugin_strategies.py).

All helpers live in this file: Numba's disk cache keys a kernel on its own
file only, so a helper imported from elsewhere could leave a stale cache.
"""

from __future__ import annotations

from typing import NamedTuple

import numba as nb
import numpy as np

BOTH = 0
LONG_ONLY = 1
SHORT_ONLY = -1

BAND = 1e-12  # sma_cross: relative band around equality of the two averages


class Signals(NamedTuple):
    """A strategy's output on one symbol and timeframe."""

    index: np.ndarray  # int64, strictly increasing bar indices
    direction: np.ndarray  # int64, +1 long / -1 short
    stop: np.ndarray  # float64, NaN = no stop


@nb.njit(cache=True, nogil=True)
def _keep(side, direction):
    return direction == BOTH or direction == side


@nb.njit(cache=True, nogil=True)
def _emit(index, side, k, i, d, direction):
    """Signal ``d`` (0: none) at bar ``i`` as the ``k``-th, when ``direction``
    keeps it; the next free slot."""
    if d != 0 and _keep(d, direction):
        index[k] = i
        side[k] = d
        return k + 1
    return k


@nb.njit(cache=True, nogil=True)
def _trim(index, side, stop, k):
    return index[:k].copy(), side[:k].copy(), stop[:k].copy()


@nb.njit(cache=True, nogil=True)
def _buffers(n):
    return np.empty(n, np.int64), np.empty(n, np.int64), np.full(n, np.nan)


@nb.njit(cache=True, nogil=True)
def sma_nb(close, n):
    """``sma[i]`` = left-to-right sum of ``close[i-n+1..i]`` / n; NaN before
    bar ``n - 1``. Each window is summed afresh: a running sum would drift
    from the SPEC's value in the last bits."""
    out = np.full(close.shape[0], np.nan)
    for i in range(n - 1, close.shape[0]):
        s = 0.0
        for j in range(i - n + 1, i + 1):
            s += close[j]
        out[i] = s / n
    return out


@nb.njit(cache=True, nogil=True)
def sma_cross_nb(close, fast, slow, direction):
    """Long when fast is not above slow at ``i - 1`` and above at ``i``;
    short mirrored with *below*; no stop. Needs both averages at ``i - 1``."""
    return sma_cross_of_nb(sma_nb(close, fast), sma_nb(close, slow), fast, slow, direction)


@nb.njit(cache=True, nogil=True)
def sma_cross_of_nb(f, s, fast, slow, direction):
    """``sma_cross_nb`` from the two averages (a search computes each
    average once per symbol and timeframe, ``strategies.run_strategy``)."""
    index, side, stop = _buffers(f.shape[0])
    k = 0
    for i in range(max(fast, slow), f.shape[0]):
        above0 = f[i - 1] - s[i - 1] > BAND * s[i - 1]
        below0 = f[i - 1] - s[i - 1] < -BAND * s[i - 1]
        above1 = f[i] - s[i] > BAND * s[i]
        below1 = f[i] - s[i] < -BAND * s[i]
        d = 0
        if above1 and not above0:
            d = 1
        elif below1 and not below0:
            d = -1
        k = _emit(index, side, k, i, d, direction)
    return _trim(index, side, stop, k)


@nb.njit(cache=True, nogil=True)
def donchian_breakout_nb(high, low, close, lookback, direction):
    """Long when ``close[i] > max(high[i-lookback:i])``, stop the window's
    lowest low; short mirrored. The window excludes bar ``i`` itself."""
    index, side, stop = _buffers(close.shape[0])
    k = 0
    for i in range(lookback, close.shape[0]):
        hi = high[i - lookback]
        lo = low[i - lookback]
        for j in range(i - lookback + 1, i):
            hi = max(hi, high[j])
            lo = min(lo, low[j])
        # Both at once would need max(high) < min(low): impossible for valid
        # bars (high >= low); the long test wins then.
        if close[i] > hi:
            d, st = 1, lo
        elif close[i] < lo:
            d, st = -1, hi
        else:
            continue
        if _keep(d, direction):
            index[k] = i
            side[k] = d
            stop[k] = st
            k += 1
    return _trim(index, side, stop, k)


@nb.njit(cache=True, nogil=True)
def _rsi(gain, loss):
    if gain == 0.0 and loss == 0.0:
        return 50.0
    if loss == 0.0:
        return 100.0
    return 100.0 - 100.0 / (1.0 + gain / loss)


@nb.njit(cache=True, nogil=True)
def rsi_nb(close, period):
    """Wilder's RSI: NaN before bar ``period``; at ``period`` the simple
    means (left-to-right sums / period) of the first ``period`` changes' gains
    and losses, then ``avg = (avg * (period - 1) + change) / period``."""
    n = close.shape[0]
    out = np.full(n, np.nan)
    if n <= period:
        return out
    g = 0.0
    ls = 0.0
    for j in range(1, period + 1):
        ch = close[j] - close[j - 1]
        g += max(ch, 0.0)
        ls += max(-ch, 0.0)
    g /= period
    ls /= period
    out[period] = _rsi(g, ls)
    for i in range(period + 1, n):
        ch = close[i] - close[i - 1]
        g = (g * (period - 1) + max(ch, 0.0)) / period
        ls = (ls * (period - 1) + max(-ch, 0.0)) / period
        out[i] = _rsi(g, ls)
    return out


@nb.njit(cache=True, nogil=True)
def rsi_reversion_nb(close, period, lower, upper, direction):
    """Long when ``rsi[i-1] < lower <= rsi[i]``; short when ``rsi[i-1] >
    upper >= rsi[i]``; no stop. Needs ``rsi[i-1]``: first at ``period + 1``."""
    return rsi_reversion_of_nb(rsi_nb(close, period), period, lower, upper, direction)


@nb.njit(cache=True, nogil=True)
def rsi_reversion_of_nb(r, period, lower, upper, direction):
    """``rsi_reversion_nb`` from the RSI series (computed once per period)."""
    index, side, stop = _buffers(r.shape[0])
    k = 0
    for i in range(period + 1, r.shape[0]):
        d = 0
        if r[i - 1] < lower <= r[i]:
            d = 1
        elif r[i - 1] > upper >= r[i]:
            d = -1
        k = _emit(index, side, k, i, d, direction)
    return _trim(index, side, stop, k)


@nb.njit(cache=True, nogil=True)
def _is_swing(x, p, swing, sign):
    """``sign = 1``: ``x[p]`` strictly above each of the ``swing`` values
    before it and at least each of the ``swing`` after (a swing high);
    ``sign = -1`` mirrored (a swing low). Needs ``swing`` bars each side."""
    for j in range(p - swing, p):
        if not sign * x[p] > sign * x[j]:
            return False
    for j in range(p + 1, p + swing + 1):
        if not sign * x[p] >= sign * x[j]:
            return False
    return True


@nb.njit(cache=True, nogil=True)
def _extreme(x, a, b, sign):
    """max (``sign = 1``) or min (``sign = -1``) of ``x[a..b]`` inclusive."""
    m = x[a]
    for j in range(a + 1, b + 1):
        if sign * x[j] > sign * m:
            m = x[j]
    return m


@nb.njit(cache=True, nogil=True)
def sweep_bos_nb(high, low, close, swing, window, direction):
    """Liquidity sweep, then break of structure (SPEC 13).

    ``sw_low``/``sw_high``: the latest swing low's low / swing high's high
    known at bar ``i`` (a swing at ``p`` is known from ``p + swing + 1``;
    NaN while none is). ``pend_l``/``pend_s``: the pending long / short
    sweep's bar, -1 when none. Each bar first tests the pending sweeps (a
    sweep gives at most one signal, so it is consumed when it does; a bar
    giving both sides gives neither and clears both), then may become the
    new pending sweep of either side (replacing the old).
    """
    n = close.shape[0]
    index, side, stop = _buffers(n)
    k = 0
    sw_low = np.nan
    sw_high = np.nan
    pend_l = -1
    pend_s = -1
    for i in range(n):
        p = i - swing - 1  # the swing that becomes known at this bar
        if p >= swing:
            if _is_swing(low, p, swing, -1):
                sw_low = low[p]
            if _is_swing(high, p, swing, 1):
                sw_high = high[p]
        if pend_l >= 0 and i > pend_l + window:
            pend_l = -1  # expired: no signal within (s, s + window]
        if pend_s >= 0 and i > pend_s + window:
            pend_s = -1
        # NaN compares false: no signal while the level is undefined.
        go_l = pend_l >= 0 and close[i] > sw_high
        go_s = pend_s >= 0 and close[i] < sw_low
        if go_l and go_s:
            pend_l = -1
            pend_s = -1
        elif go_l:
            if _keep(1, direction):
                index[k], side[k], stop[k] = i, 1, _extreme(low, pend_l, i, -1)
                k += 1
            pend_l = -1
        elif go_s:
            if _keep(-1, direction):
                index[k], side[k], stop[k] = i, -1, _extreme(high, pend_s, i, 1)
                k += 1
            pend_s = -1
        if low[i] < sw_low and close[i] > sw_low:
            pend_l = i
        if high[i] > sw_high and close[i] < sw_high:
            pend_s = i
    return _trim(index, side, stop, k)
