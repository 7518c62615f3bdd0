"""The rules of SPEC section 1 as whole-array passes, and the grouping and
linking ``build_dataset`` (``worker._core.dataset``) runs on the columns:
call checks, series made contiguous, time and price rules (a cheap
"is everything valid?" pass first, per-candle masks only when it says no),
bad series named or dropped, and each call linked to its entry candle.

Functions take the loaders' column holders (``CandleColumns``, ``KeyColumn``)
and plain arrays; they hold no state.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from .._errors import InternalError, InvalidDataset

if TYPE_CHECKING:
    from .dataset import CandleColumns, KeyColumn

_PRICE_NAMES = ("open", "high", "low", "close")
# Every time (call ts_ms, candle ts_ms) is within +-2**53 ms (+-285,000
# years): the kernels carry times in float64 rows, exact only up to 2**53,
# and add holds to them in int64 (worker._core.engine.HOLD_NEVER_MS). One rule for
# every source; a time outside it is refused (rule ``ts_in_range``), never
# rounded or wrapped.
MAX_ABS_TS_MS = 2**53


def _check_calls(ids: Sequence[str], callers: Sequence[str], where: str,
                 ) -> tuple[tuple[str, ...], np.ndarray]:
    """Call rules of SPEC 1; returns callers in order of first appearance."""
    first_pos: dict[str, int] = {}
    caller_code: dict[str, int] = {}
    codes = np.empty(len(ids), dtype=np.int32)
    for i, (cid, caller) in enumerate(zip(ids, callers)):
        if cid == "":
            raise InvalidDataset(f"{where.format(i)}: call id is empty",
                                 key=cid, index=i, rule="non_empty_call_id")
        j = first_pos.setdefault(cid, i)
        if j != i:
            raise InvalidDataset(
                f"duplicate call id {cid!r} at {where.format(j)} and "
                f"{where.format(i)}",
                key=cid, index=i, rule="unique_call_id")
        if caller == "":
            raise InvalidDataset(f"{where.format(i)} (call {cid!r}): caller is empty",
                                 key=cid, index=i, rule="non_empty_caller")
        codes[i] = caller_code.setdefault(caller, len(caller_code))
    return tuple(caller_code), codes


def _check_call_times(ids: Sequence[str], ts: np.ndarray, where: str) -> None:
    bad = np.flatnonzero((ts < -MAX_ABS_TS_MS) | (ts > MAX_ABS_TS_MS))
    if bad.size:
        i = int(bad[0])
        raise InvalidDataset(
            f"{where.format(i)} (call {ids[i]!r}): ts_ms {int(ts[i])} is outside "
            f"+-2**53 ms, the range of times this worker handles exactly",
            key=ids[i], index=i, rule="ts_in_range")


def _ts_in_range(ts: np.ndarray) -> bool:
    # min/max, not abs: abs(INT64_MIN) wraps to itself.
    return ts.shape[0] == 0 or bool(ts.min() >= -MAX_ABS_TS_MS and ts.max() <= MAX_ABS_TS_MS)


def _key_runs(keys: KeyColumn) -> tuple[np.ndarray, np.ndarray]:
    """Start row and global key code of every maximal block of equal keys."""
    starts, codes, pos = [], [], 0
    for local, lut in keys.chunks:
        if local.shape[0]:
            s = np.flatnonzero(local[1:] != local[:-1]) + 1
            s = np.concatenate(([0], s))
            c = local[s] if lut is None else lut[local[s]]
            starts.append(s + pos)
            codes.append(c.astype(np.int64, copy=False))
        pos += local.shape[0]
    if not starts:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    start, code = np.concatenate(starts), np.concatenate(codes)
    # A block may continue across a chunk boundary: merge it.
    new = np.ones(code.shape[0], dtype=bool)
    new[1:] = code[1:] != code[:-1]
    return start[new], code[new]


def _group_series(cols: CandleColumns, referenced: set[str],
                  ) -> tuple[list[str], np.ndarray]:
    """Make every referenced key one contiguous block; drop unreferenced rows.

    Blocks keep their input order within a key (a stable regroup), so a row's
    index within its series is its index among that key's input rows.
    Returns the series keys (first-appearance order) and the offsets.
    """
    keys = cols.keys
    n = cols.ts_ms.shape[0]
    if keys is None or sum(c.shape[0] for c, _ in keys.chunks) != n:
        raise InternalError("candle keys missing or not one per candle row")
    start, code = _key_runs(keys)
    length = np.diff(np.append(start, n))
    wanted = np.fromiter((k in referenced for k in keys.names), dtype=bool,
                         count=len(keys.names))
    live = wanted[code]
    start, code, length = start[live], code[live], length[live]
    # Rank keys by their first block, then order blocks by that rank.
    uniq, first = np.unique(code, return_index=True)
    by_first = uniq[np.argsort(first, kind="stable")]
    rank = np.zeros(len(keys.names), dtype=np.int64)
    rank[by_first] = np.arange(by_first.shape[0])
    order = np.argsort(rank[code], kind="stable")
    in_place = live.all() and np.array_equal(order, np.arange(order.shape[0]))
    cols.keys = None  # the codes are not needed any more: free them
    if not in_place:
        cols.take(_block_rows(start[order], length[order]))
    series_len = np.bincount(rank[code], weights=length,
                             minlength=by_first.shape[0]).astype(np.int64)
    offsets = np.concatenate(([0], np.cumsum(series_len))).astype(np.int64)
    return [keys.names[c] for c in by_first], offsets


def _block_rows(src_start: np.ndarray, length: np.ndarray) -> np.ndarray:
    """Row indices that lay the given blocks end to end (vectorized, no loop)."""
    dst_start = np.cumsum(length) - length
    shift = np.repeat(src_start - dst_start, length)
    return np.arange(shift.shape[0], dtype=np.int64) + shift


def _ts_increasing(ts: np.ndarray, offsets: np.ndarray) -> bool:
    """Whether every series has strictly increasing timestamps."""
    if ts.shape[0] < 2:
        return True
    up = ts[1:] > ts[:-1]
    up[offsets[1:-1] - 1] = True  # pairs that straddle two series
    return bool(up.all())


def _sort_by_time(cols: CandleColumns, offsets: np.ndarray) -> None:
    """Sort each series by ts, stably (equal ts keep their file order)."""
    series = np.repeat(np.arange(offsets.shape[0] - 1), np.diff(offsets))
    cols.take(np.lexsort((cols.ts_ms, series)))


def _prices_valid(cols: CandleColumns) -> bool:
    """Whole-array price test by reductions, with no per-candle temporaries
    but one boolean mask. NaN propagates through min/max, so ``min > 0 and
    max < inf`` means "all finite and > 0"; for high and low half of that
    follows from ``low <= high``, which NaN also fails."""
    if cols.low.shape[0] == 0:
        return True
    o, h, lo, c = cols.open, cols.high, cols.low, cols.close
    return bool(lo.min() > 0 and h.max() < np.inf
                and o.min() > 0 and o.max() < np.inf
                and c.min() > 0 and c.max() < np.inf
                and np.less_equal(lo, h).all())


def _bad_series(cols: CandleColumns, offsets: np.ndarray,
                series_keys: list[str], series_key: str, *, ts_ok: bool,
                raise_first: bool) -> np.ndarray:
    """Indices of series that break a rule; raises for the first one instead
    when ``raise_first``. The rule of a bad candle is checked in the order
    time, price, low <= high."""
    if ts_ok and _prices_valid(cols):
        return np.zeros(0, dtype=np.int64)
    ts, n = cols.ts_ms, cols.ts_ms.shape[0]
    bad_ts = np.zeros(n, dtype=bool)
    np.less_equal(ts[1:], ts[:-1], out=bad_ts[1:])
    bad_ts[offsets[:-1]] = False  # a series' first candle has no predecessor
    bad_range = (ts < -MAX_ABS_TS_MS) | (ts > MAX_ABS_TS_MS)
    bad_ts |= bad_range
    bad_px = np.zeros(n, dtype=bool)
    for name in _PRICE_NAMES:
        col = getattr(cols, name)
        bad_px |= ~((col > 0) & (col < np.inf))
    rows = np.flatnonzero(bad_ts | bad_px | (cols.low > cols.high))
    series = np.searchsorted(offsets, rows, side="right") - 1
    if raise_first:
        s, r = int(series[0]), int(rows[0])
        raise _series_error(cols, series_keys[s], series_key, r,
                            r - int(offsets[s]), bool(bad_ts[r]),
                            bool(bad_px[r]), bool(bad_range[r]))
    return np.unique(series)


def _series_error(cols: CandleColumns, key: str, series_key: str, row: int,
                  index: int, bad_ts: bool, bad_px: bool,
                  bad_range: bool = False) -> InvalidDataset:
    """The message for the first bad candle: key, index, rule and the values."""
    where = f"series {json.dumps(key)} (by {series_key}), candle {index}"
    hint = '; pass on_bad_series="drop" to leave bad series out'
    ts = cols.ts_ms
    if bad_range:
        rule = "ts_in_range"
        what = (f"ts_ms {int(ts[row])} is outside +-2**53 ms, the range of times "
                "this worker handles exactly")
    elif bad_ts:
        rule = "strictly_increasing_ts"
        what = (f"ts_ms {int(ts[row])} is not after candle {index - 1}'s "
                f"ts_ms {int(ts[row - 1])}")
    elif bad_px:
        rule = "finite_positive_price"
        px = ", ".join(f"{p}={float(getattr(cols, p)[row])!r}"
                       for p in _PRICE_NAMES)
        what = f"open/high/low/close must be finite and > 0, got {px}"
    else:
        rule = "low_le_high"
        what = (f"low {float(cols.low[row])!r} > high "
                f"{float(cols.high[row])!r}")
    return InvalidDataset(f"{where}: {what} (rule {rule}){hint}",
                          key=key, index=index, rule=rule)


def _drop_series(cols: CandleColumns, offsets: np.ndarray,
                 series_keys: list[str], bad: np.ndarray,
                 ) -> tuple[list[str], np.ndarray]:
    """Leave the ``bad`` series out (on_bad_series="drop")."""
    keep = np.ones(len(series_keys), dtype=bool)
    keep[bad] = False
    length = np.diff(offsets)
    cols.take(_block_rows(offsets[:-1][keep], length[keep]))
    kept_len = length[keep]
    new_offsets = np.concatenate(([0], np.cumsum(kept_len))).astype(np.int64)
    return [k for k, ok in zip(series_keys, keep) if ok], new_offsets


def _link_calls(lookup: Sequence[str], call_ts: np.ndarray,
                series_keys: list[str], offsets: np.ndarray, ts: np.ndarray,
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each call's series, entry row (SPEC 2.2.3) and last row."""
    index = {k: s for s, k in enumerate(series_keys)}
    series = np.fromiter((index.get(k, -1) for k in lookup), dtype=np.int32,
                         count=len(lookup))
    entry = np.full(series.shape[0], -1, dtype=np.int64)
    end = np.full(series.shape[0], -1, dtype=np.int64)
    has = np.flatnonzero(series >= 0)
    if has.size:
        s = series[has]
        lo, hi = offsets[s].copy(), offsets[s + 1].copy()
        stop = hi.copy()
        _bisect_left(ts, call_ts[has], lo, hi)
        entry[has] = np.where(lo < stop, lo, -1)
        end[has] = stop - 1
    return series, entry, end


def _bisect_left(ts: np.ndarray, target: np.ndarray, lo: np.ndarray,
                 hi: np.ndarray) -> None:
    """Per call, the first row in [lo, hi) with ts >= target, into ``lo``.

    One binary search per call, run for all calls at once: ~log2(series
    length) vectorized steps instead of a Python loop over calls.
    """
    last = ts.shape[0] - 1
    while True:
        active = lo < hi
        if not active.any():
            return
        mid = (lo + hi) >> 1
        below = active & (ts[np.minimum(mid, last)] < target)
        lo[below] = mid[below] + 1
        above = active & ~below
        hi[above] = mid[above]
