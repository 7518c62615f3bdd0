"""The in-memory dataset (SPEC section 1) and the one builder every source ends in.

Layout: every candle series is one contiguous block of six columns
(``ts_ms`` int64, ``open/high/low/close/volume`` float64); series ``s`` is rows
``series_offsets[s]:series_offsets[s+1]``. Series are ordered by the first
appearance of their key in the candle input, so the same data gives the same
arrays whether it came as rows, columns, Parquet or CSV, and data that is
already grouped that way is never copied.

All checks are whole-array numpy passes (``worker._core.rules``). A cheap pass (reductions, one
comparison per rule) answers "is everything valid?"; only when it says no do
we build per-candle masks to name the first bad candle of each bad series.

Errors: a broken data rule is ``InvalidDataset(key=, index=, rule=)``. For a
series ``key`` is the series key and ``index`` the candle index within the
series; for a call rule ``key`` is the call id and ``index`` its position in
the calls. Bad shapes and types are the loaders' job (``InvalidParams``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from functools import cached_property
from typing import Any

import numpy as np

from .._errors import InternalError, InvalidParams
from .rules import (
    _PRICE_NAMES,
    MAX_ABS_TS_MS,
    _bad_series,
    _check_call_times,
    _check_calls,
    _drop_series,
    _group_series,
    _link_calls,
    _sort_by_time,
    _ts_in_range,
    _ts_increasing,
)

__all__ = [
    "SERIES_KEYS", "BAD_SERIES_MODES", "KeyColumn", "CandleColumns",
    "Dataset", "build_dataset", "check_options", "MAX_ABS_TS_MS",
]

SERIES_KEYS = ("call_id", "mint")
BAD_SERIES_MODES = ("error", "drop")
_COLUMNS = ("ts_ms", *_PRICE_NAMES, "volume")
_DROPPED_SHOWN = 20  # SPEC 1: the answer lists the first 20 dropped keys



@dataclass(frozen=True, eq=False, kw_only=True)
class Dataset:
    """A validated, read-only dataset; arrays are never written after build."""

    series_key: str
    call_ids: tuple[str, ...]
    call_mints: tuple[str, ...]
    caller_names: tuple[str, ...]
    call_caller: np.ndarray      # int32 [n_calls] -> caller_names
    call_ts_ms: np.ndarray       # int64 [n_calls]
    call_series: np.ndarray      # int32 [n_calls] -> series_keys, -1: none
    series_keys: tuple[str, ...]
    series_offsets: np.ndarray   # int64 [n_series + 1]
    ts_ms: np.ndarray            # int64 [n_candles]
    open: np.ndarray             # float64 [n_candles], same for the rest
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray           # 0.0 where the input had no volume
    call_order: np.ndarray       # int64: positions sorted by (ts_ms, position)
    entry_idx: np.ndarray        # int64: row of first candle >= call ts, or -1
    series_end: np.ndarray       # int64: row of the series' last candle, or -1
    dropped_keys: tuple[str, ...]

    @property
    def n_calls(self) -> int:
        # From an array, not the ids: a pool process's attached dataset has no strings.
        return int(self.call_ts_ms.shape[0])

    @property
    def n_series(self) -> int:
        return len(self.series_keys)

    @property
    def n_candles(self) -> int:
        return int(self.ts_ms.shape[0])

    @cached_property
    def base_interval_ms(self) -> int:
        """SPEC 12's base interval ``I`` (``folds.base_interval_ms``), computed
        once: the dataset never changes."""
        from .folds import base_interval_ms  # folds sits beside this module, above it

        return base_interval_ms(self.ts_ms, self.series_offsets)

    @property
    def dropped_count(self) -> int:
        return len(self.dropped_keys)

    @property
    def nbytes(self) -> int:
        """Bytes held by the numpy arrays (the strings are small next to them)."""
        return sum(
            getattr(self, f.name).nbytes
            for f in fields(self)
            if isinstance(getattr(self, f.name), np.ndarray)
        )

    def summary(self) -> dict[str, Any]:
        """Counts for a ``loadDataset`` answer (SPEC 7)."""
        return {
            "series_key": self.series_key,
            "calls": self.n_calls,
            "callers": len(self.caller_names),
            "series": self.n_series,
            "candles": self.n_candles,
            "calls_with_entry": int(np.count_nonzero(self.entry_idx >= 0)),
            "bytes": self.nbytes,
            "dropped": {
                "count": self.dropped_count,
                "keys": list(self.dropped_keys[:_DROPPED_SHOWN]),
            },
        }


@dataclass(eq=False)
class KeyColumn:
    """Candle keys as integer codes, so no per-candle Python string exists.

    ``chunks`` is a list of ``(codes, lut)``: ``codes`` index a chunk-local
    dictionary and ``lut`` maps it to positions in ``names`` (``None`` when the
    codes are already global). Chunks let Parquet/CSV row groups with their
    own dictionaries be used without rewriting every index.
    """

    names: Sequence[str]
    chunks: list[tuple[np.ndarray, np.ndarray | None]]


@dataclass(eq=False)
class CandleColumns:
    """The candle columns on their way into a Dataset.

    Mutable on purpose: the builder replaces each column when it reorders
    rows, so the loader's original arrays can be freed instead of being held
    twice while the dataset lives.
    """

    keys: KeyColumn | None
    ts_ms: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray | None
    # True: the columns are the final arrays' storage (a shared file being
    # built, ``worker._pool.shm_build``): reordering writes back into them,
    # and dropping rows leaves each column a prefix of its storage.
    in_place: bool = False

    def take(self, rows: np.ndarray) -> None:
        """Keep ``rows`` in that order, one column at a time (low peak memory)."""
        for name in _COLUMNS:
            col = getattr(self, name)
            if col is None:
                continue
            if self.in_place:
                out = col[:rows.shape[0]]
                out[...] = col[rows]  # the gather is a temporary: no aliasing
                setattr(self, name, out)
            else:
                setattr(self, name, col[rows])

    def normalize(self) -> None:
        """int64/float64, contiguous (no copy when already so), equal lengths."""
        n = np.shape(self.ts_ms)[0]
        for name in _COLUMNS:
            col = getattr(self, name)
            if col is None:
                continue
            col = np.ascontiguousarray(col, np.int64 if name == "ts_ms" else np.float64)
            if col.ndim != 1 or col.shape[0] != n:
                raise InternalError(f"candle column {name} has shape {col.shape}, "
                                    f"ts_ms has {n} rows")
            setattr(self, name, col)


def check_options(series_key: Any, on_bad_series: Any) -> None:
    """Reject unknown option values before any work is done."""
    if series_key not in SERIES_KEYS:
        raise InvalidParams(
            f"series_key must be one of {list(SERIES_KEYS)}, got {series_key!r}",
            path="$.series_key")
    if on_bad_series not in BAD_SERIES_MODES:
        raise InvalidParams(
            f"on_bad_series must be one of {list(BAD_SERIES_MODES)}, "
            f"got {on_bad_series!r}", path="$.on_bad_series")


def build_dataset(
    *,
    call_ids: Sequence[str],
    call_callers: Sequence[str],
    call_mints: Sequence[str],
    call_ts_ms: np.ndarray,
    candles: CandleColumns,
    series_key: str,
    on_bad_series: str,
    candles_sorted: bool,
    calls_where: str = "calls[{}]",
) -> Dataset:
    """Validate and index one dataset; every loader ends here.

    ``candles_sorted``: rows of a key must already be in time order (inline
    payloads); when False (files) they are sorted by time first, stably, so
    only repeated timestamps remain as ``strictly_increasing_ts`` errors.
    ``calls_where`` names call ``i`` in messages (``calls[3]``, ``x.csv row 3``).
    """
    check_options(series_key, on_bad_series)
    ts = np.asarray(call_ts_ms, dtype=np.int64)
    if not len(call_ids) == len(call_callers) == len(call_mints) == ts.shape[0]:
        raise InternalError("call columns differ in length")
    caller_names, call_caller = _check_calls(call_ids, call_callers, calls_where)
    _check_call_times(call_ids, ts, calls_where)
    candles.normalize()
    lookup = call_ids if series_key == "call_id" else call_mints
    # An empty mint names no token, so it matches no series.
    referenced = set(lookup) - {""}
    series_keys, offsets = _group_series(candles, referenced)
    ts_ok = _ts_increasing(candles.ts_ms, offsets)
    if not ts_ok and not candles_sorted:
        _sort_by_time(candles, offsets)
        ts_ok = _ts_increasing(candles.ts_ms, offsets)
    ts_ok = ts_ok and _ts_in_range(candles.ts_ms)
    bad_series = _bad_series(candles, offsets, series_keys, series_key,
                             ts_ok=ts_ok, raise_first=on_bad_series == "error")
    dropped: tuple[str, ...] = ()
    if bad_series.size:
        dropped = tuple(series_keys[s] for s in bad_series)
        series_keys, offsets = _drop_series(candles, offsets, series_keys,
                                            bad_series)
    call_series, entry_idx, series_end = _link_calls(
        lookup, ts, series_keys, offsets, candles.ts_ms)
    n = candles.ts_ms.shape[0]
    return Dataset(
        series_key=series_key,
        call_ids=tuple(call_ids),
        call_mints=tuple(call_mints),
        caller_names=caller_names,
        call_caller=_frozen(call_caller, np.int32),
        call_ts_ms=_frozen(ts, np.int64),
        call_series=_frozen(call_series, np.int32),
        series_keys=tuple(series_keys),
        series_offsets=_frozen(offsets, np.int64),
        ts_ms=_frozen(candles.ts_ms, np.int64),
        open=_frozen(candles.open, np.float64),
        high=_frozen(candles.high, np.float64),
        low=_frozen(candles.low, np.float64),
        close=_frozen(candles.close, np.float64),
        volume=_frozen(np.zeros(n) if candles.volume is None
                       else candles.volume, np.float64),
        # Stable sort on ts alone gives (ts_ms, position) order (SPEC 2.1).
        call_order=_frozen(np.argsort(ts, kind="stable"), np.int64),
        entry_idx=_frozen(entry_idx, np.int64),
        series_end=_frozen(series_end, np.int64),
        dropped_keys=dropped,
    )


def _frozen(a: np.ndarray, dtype: type) -> np.ndarray:
    """Contiguous, right dtype (copy only if needed), read-only: datasets are shared."""
    a = np.ascontiguousarray(a, dtype=dtype)
    a.flags.writeable = False
    return a
