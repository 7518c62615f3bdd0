"""SPEC 13's bars: per-symbol OHLCV blocks, timeframes, and resampling.

Layout as ``Dataset``'s candles: symbol ``s`` is rows
``offsets[s]:offsets[s+1]`` of six columns (``ts_ms`` int64, prices and
``volume`` float64), symbols in byte order of their UTF-8 names, so every
loader gives the same arrays for the same data. A ``BarSet`` is built once
(``build_bars``: validation is the loader's job, ``worker._data.bars``) and
never written after; resampled sets are ``BarSet`` s too.

Resampling (SPEC 13 **Timeframes**): a bar of timeframe ``tf`` covers
``[floor(ts / tf) * tf, + tf)`` and its time is that bucket start, even when
its first base bar is missing. Floor division also for negative times (numpy's
and Numba's ``//`` on integers both floor, as Python's does).
"""

from __future__ import annotations

import json
import re
import threading
import unicodedata
from dataclasses import dataclass, field, fields
from typing import Any, NamedTuple

import numba as nb
import numpy as np

from .._errors import InternalError, InvalidParams
from .dataset import _frozen
from .folds import DAY_MS, HOUR_MS, MINUTE_MS, base_interval_ms
from .rules import MAX_ABS_TS_MS

__all__ = [
    "BarSet",
    "BarView",
    "build_bars",
    "byte_order",
    "check_symbol_list",
    "check_timeframe",
    "format_timeframe",
    "parse_timeframe",
    "resample",
    "resample_nb",
    "select",
    "symbol_indices",
    "valid_symbol",
]

_UNITS = {"m": MINUTE_MS, "h": HOUR_MS, "d": DAY_MS}
# [0-9], not \d: \d also matches other scripts' digits ("٥m").
_TIMEFRAME = re.compile(r"([1-9][0-9]{0,15})([mhd])")
# Resampled sets kept per BarSet (FIFO): a request asks a few timeframes of
# one selection; the bound keeps a long-lived daemon's BarSet from growing.
_CACHE_MAX = 16


class BarView(NamedTuple):
    """One symbol's bars: views into its ``BarSet`` (no copy, read-only)."""

    symbol: str
    ts_ms: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray


@dataclass(frozen=True, eq=False, kw_only=True)
class BarSet:
    """Validated, read-only bars of one or more symbols (module doc).

    ``base_interval_ms[s]``: symbol ``s``'s most common gap between
    consecutive bars, the smallest on a tie; 0 for a symbol with one bar,
    which accepts every timeframe.
    """

    symbols: tuple[str, ...]          # byte order of name.encode()
    offsets: np.ndarray               # int64 [n_symbols + 1]
    ts_ms: np.ndarray                 # int64, strictly increasing per symbol
    open: np.ndarray                  # float64, same for the rest
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    base_interval_ms: np.ndarray      # int64 [n_symbols]
    # resample()'s cache: {(tf_ms, symbol indices): BarSet}, guarded by _lock.
    _resampled: dict = field(init=False, default_factory=dict, repr=False)
    _lock: Any = field(init=False, default_factory=threading.Lock, repr=False)

    @property
    def n_symbols(self) -> int:
        return len(self.symbols)

    @property
    def n_bars(self) -> int:
        return int(self.ts_ms.shape[0])

    @property
    def nbytes(self) -> int:
        return sum(getattr(self, f.name).nbytes for f in fields(self)
                   if isinstance(getattr(self, f.name), np.ndarray))

    def symbol_view(self, s: int) -> BarView:
        """Symbol ``s``'s arrays as slices (views, no copy)."""
        a, b = int(self.offsets[s]), int(self.offsets[s + 1])
        return BarView(self.symbols[s], self.ts_ms[a:b], self.open[a:b],
                       self.high[a:b], self.low[a:b], self.close[a:b],
                       self.volume[a:b])


def byte_order(names) -> list[str]:
    """``names`` sorted by their UTF-8 bytes (SPEC 13's symbol order)."""
    return sorted(names, key=lambda n: n.encode("utf-8", "surrogatepass"))


def valid_symbol(name: object) -> bool:
    """A symbol is a non-empty string, valid UTF-8 (no lone surrogates, as a
    file name that is not UTF-8 decodes to), with no control characters and
    no surrounding white space: it names files, ids and report rows."""
    if not isinstance(name, str) or not name or name != name.strip():
        return False
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return not any(unicodedata.category(ch) == "Cc" for ch in name)


def build_bars(symbols, offsets, ts_ms, open, high, low, close, volume,
               base_interval: np.ndarray | None = None) -> BarSet:
    """A ``BarSet`` from columns already grouped and validated; the arrays
    become read-only (copied only when not int64/float64 contiguous).
    ``base_interval``: known intervals (a resample that changed nothing)."""
    symbols = tuple(symbols)
    if list(symbols) != byte_order(set(symbols)):
        raise InternalError("bar symbols must be unique and in byte order")
    off = _frozen(offsets, np.int64)
    n = np.shape(ts_ms)[0]
    if off.shape != (len(symbols) + 1,) or off[0] != 0 or off[-1] != n \
            or np.any(np.diff(off) < 0):
        raise InternalError(f"bar offsets {off.shape} do not fit {n} rows")
    ts = _frozen(ts_ms, np.int64)
    if base_interval is None:
        base_interval = np.array(
            [base_interval_ms(ts[off[s]:off[s + 1]], np.array([0, off[s + 1] - off[s]]))
             for s in range(len(symbols))], dtype=np.int64)
    cols = {k: _frozen(v, np.float64) for k, v in
            (("open", open), ("high", high), ("low", low), ("close", close),
             ("volume", volume))}
    if any(c.shape != (n,) for c in cols.values()):
        raise InternalError("bar columns differ in length")
    return BarSet(symbols=symbols, offsets=off, ts_ms=ts,
                  base_interval_ms=_frozen(base_interval, np.int64), **cols)


# ---------------------------------------------------------------- timeframes

def parse_timeframe(tf: object, path: str) -> int:
    """``"<n>m|h|d"`` in ms: ``n`` a positive integer written without sign or
    leading zeros, the unit lower case. One spelling per number keeps call
    ids (``<symbol>:<tf>:<i>``) unambiguous; ``"60m"`` and ``"1h"`` are both
    valid and equal. At most 2**53 ms, the range of times handled exactly."""
    m = _TIMEFRAME.fullmatch(tf) if isinstance(tf, str) else None
    if m is None:
        shown = json.dumps(tf) if isinstance(tf, str) else type(tf).__name__
        raise InvalidParams(f"timeframe {shown[:40]} is not <n>m, <n>h or <n>d "
                            "with n a positive integer (like \"5m\", \"4h\", \"1d\")",
                            path=path)
    ms = int(m[1]) * _UNITS[m[2]]
    if ms > MAX_ABS_TS_MS:
        raise InvalidParams(f"timeframe {json.dumps(tf)} is longer than 2**53 ms",
                            path=path)
    return ms


def format_timeframe(tf_ms: int) -> str:
    """``tf_ms`` in the largest unit that divides it (``"4h"``), else ``"<ms> ms"``."""
    for unit, ms in (("d", DAY_MS), ("h", HOUR_MS), ("m", MINUTE_MS)):
        if tf_ms > 0 and tf_ms % ms == 0:
            return f"{tf_ms // ms}{unit}"
    return f"{tf_ms} ms"


# ---------------------------------------------------------------- symbols

def check_symbol_list(symbols: object, path: str) -> list[str] | None:
    """``None`` (every symbol) or a non-empty list of distinct strings."""
    if symbols is None:
        return None
    if not isinstance(symbols, (list, tuple)) or not symbols:
        raise InvalidParams("must be a non-empty array of symbol names", path=path)
    seen: dict[str, int] = {}
    for i, name in enumerate(symbols):
        if not isinstance(name, str):
            raise InvalidParams(f"symbol must be a string, got {type(name).__name__}",
                                path=f"{path}[{i}]")
        j = seen.setdefault(name, i)
        if j != i:
            raise InvalidParams(f"symbol {json.dumps(name)} is also at "
                                f"{path}[{j}]", path=f"{path}[{i}]")
    return list(symbols)


def symbol_indices(names, symbols: object, path: str) -> np.ndarray:
    """Positions in ``names`` (byte order) of ``symbols`` (default all),
    ascending, so the result is in byte order too."""
    wanted = check_symbol_list(symbols, path)
    if wanted is None:
        return np.arange(len(names), dtype=np.int64)
    index = {n: s for s, n in enumerate(names)}
    for i, name in enumerate(wanted):
        if name not in index:
            raise InvalidParams(f"unknown symbol {json.dumps(name)} (the bars "
                                f"have {len(names)} symbol(s))", path=f"{path}[{i}]")
    return np.sort(np.array([index[n] for n in wanted], dtype=np.int64))


def select(bars: BarSet, symbols: object, path: str = "$.symbols") -> np.ndarray:
    """Indices of the requested symbols of ``bars`` in byte order (default all)."""
    return symbol_indices(bars.symbols, symbols, path)


def check_timeframe(bars: BarSet, sym_idx: np.ndarray, tf_ms: int, path: str) -> None:
    """SPEC 13: ``tf_ms`` is a multiple of every selected symbol's base
    interval (a symbol with one bar, interval 0, accepts every timeframe)."""
    base = bars.base_interval_ms[np.asarray(sym_idx, np.int64)]
    bad = np.flatnonzero((base > 0) & (int(tf_ms) % np.maximum(base, 1) != 0))
    if bad.size:
        s = int(np.asarray(sym_idx)[bad[0]])
        raise InvalidParams(
            f"timeframe {format_timeframe(int(tf_ms))} is not a multiple of symbol "
            f"{json.dumps(bars.symbols[s])}'s base interval "
            f"{format_timeframe(int(bars.base_interval_ms[s]))}", path=path)


# ---------------------------------------------------------------- resampling

@nb.njit(cache=True, nogil=True)
def resample_nb(ts, open_, high, low, close, volume, tf_ms):
    """One symbol's bars in buckets of ``tf_ms``: bucket start, first open,
    highest high, lowest low, last close, volume summed left to right; one
    output bar per non-empty bucket. ``ts`` strictly increasing."""
    n = ts.shape[0]
    m = 0
    for i in range(n):  # count buckets first: the outputs are exact-size
        if i == 0 or (ts[i] // tf_ms) != (ts[i - 1] // tf_ms):
            m += 1
    out_ts = np.empty(m, np.int64)
    o = np.empty(m, np.float64)
    h = np.empty(m, np.float64)
    lo = np.empty(m, np.float64)
    c = np.empty(m, np.float64)
    v = np.empty(m, np.float64)
    j = -1
    for i in range(n):
        bucket = (ts[i] // tf_ms) * tf_ms
        if j < 0 or bucket != out_ts[j]:
            j += 1
            out_ts[j] = bucket
            o[j] = open_[i]
            h[j] = high[i]
            lo[j] = low[i]
            v[j] = volume[i]
        else:
            h[j] = max(h[j], high[i])
            lo[j] = min(lo[j], low[i])
            v[j] += volume[i]
        c[j] = close[i]
    return out_ts, o, h, lo, c, v


def resample(bars: BarSet, tf_ms: int, sym_idx: np.ndarray | None = None) -> BarSet:
    """The selected symbols (default all) at timeframe ``tf_ms``.

    Does not check ``tf_ms`` against base intervals (``check_timeframe``).
    Results are cached on ``bars``. Thread safety: the lock guards only the
    dict; two threads asking the same key at once may both compute it (same
    answer), and ``setdefault`` makes both return the first one stored.
    """
    tf = _positive_tf(tf_ms)
    idx = _indices(bars, sym_idx)
    key = (tf, tuple(idx.tolist()))
    with bars._lock:
        hit = bars._resampled.get(key)
    if hit is not None:
        return hit
    out = _resample(bars, tf, idx)
    with bars._lock:
        cache = bars._resampled
        out = cache.setdefault(key, out)
        while len(cache) > _CACHE_MAX:  # oldest first; the new key is last
            cache.pop(next(iter(cache)))
    return out


def _positive_tf(tf_ms: object) -> int:
    if isinstance(tf_ms, bool) or not isinstance(tf_ms, (int, np.integer)) \
            or not 0 < int(tf_ms) <= MAX_ABS_TS_MS:
        raise InternalError(f"timeframe must be a positive int64 ms, got {tf_ms!r}")
    return int(tf_ms)


def _indices(bars: BarSet, sym_idx: np.ndarray | None) -> np.ndarray:
    if sym_idx is None:
        return np.arange(bars.n_symbols, dtype=np.int64)
    idx = np.asarray(sym_idx, dtype=np.int64)
    if idx.ndim != 1 or (idx.size and (idx[0] < 0 or idx[-1] >= bars.n_symbols
                                       or np.any(np.diff(idx) <= 0))):
        raise InternalError("symbol indices must be ascending, distinct and in range")
    return idx


def _resample(bars: BarSet, tf: int, idx: np.ndarray) -> BarSet:
    parts, same = [], True
    for s in idx:
        v = bars.symbol_view(int(s))
        if not np.any(v.ts_ms % tf):
            # Every time aligned (and strictly increasing): one bar per
            # bucket, so the bars are their own resample.
            parts.append(v[1:])
        else:
            same = False
            parts.append(resample_nb(v.ts_ms, v.open, v.high, v.low, v.close,
                                     v.volume, np.int64(tf)))
    names = [bars.symbols[int(s)] for s in idx]
    lengths = np.array([p[0].shape[0] for p in parts], dtype=np.int64)
    offsets = np.concatenate(([0], np.cumsum(lengths)))
    base = bars.base_interval_ms[idx] if same else None
    if same and idx.size and idx[-1] - idx[0] + 1 == idx.size:
        # A contiguous run of unchanged symbols: views of the input, no copy.
        a, b = int(bars.offsets[idx[0]]), int(bars.offsets[idx[-1] + 1])
        cols = [getattr(bars, k)[a:b] for k in _COLUMNS]
    else:
        cols = [np.concatenate([p[k] for p in parts]) if parts
                else np.zeros(0, np.int64 if k == 0 else np.float64)
                for k in range(len(_COLUMNS))]
    return build_bars(names, offsets, *cols, base_interval=base)


_COLUMNS = ("ts_ms", "open", "high", "low", "close", "volume")
