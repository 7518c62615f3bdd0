"""The inline dataset sources of SPEC 7 (``loadDataset``): rows and columns.

Files are read in ``_files.py``.

Each loader only checks shapes and types (``InvalidParams`` naming the JSON
path, or the file and column) and turns its input into integer key codes and
numpy columns; every data rule lives in ``_dataset.build_dataset``.
Readers return a ``CandleColumns`` from a helper so that no local variable
keeps a second reference to a column the builder may replace.

Rows come as dicts (the library, ``json.loads``) or as the ``CandleRow``
Structs the daemon's decoder made: those msgspec has already checked
(``validate.DECODED``), so their columns are read straight into numpy with
no second check and no dict in between. A Struct built in Python is checked
like a dict.
"""

from __future__ import annotations

import json
from itertools import chain
from operator import attrgetter
from typing import Any

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .._core.dataset import (
    CandleColumns,
    Dataset,
    KeyColumn,
    build_dataset,
    check_options,
)
from .._core.validate import DECODED
from .._errors import InvalidParams

__all__ = ["dataset_from_rows", "dataset_from_columnar"]

PRICES = ("open", "high", "low", "close")
CANDLE_COLUMNS = ("key", "ts_ms", *PRICES)
# ts * 1000 must stay inside int64 (about +-292 million years either way).
_MAX_SECONDS = np.iinfo(np.int64).max // 1000


# ---------------------------------------------------------------- calls

def _calls_from_json(calls: Any) -> tuple[list[str], list[str], list[str],
                                          np.ndarray]:
    """``calls`` as four columns; one Python pass (calls are few)."""
    if not isinstance(calls, list):
        raise InvalidParams("calls must be an array of objects", path="$.calls")
    ids, callers, mints = [], [], []
    ts = np.empty(len(calls), dtype=np.int64)
    for i, call in enumerate(calls):
        where = f"$.calls[{i}]"
        if not isinstance(call, dict):
            raise InvalidParams("call must be an object", path=where)
        for field, out in (("id", ids), ("caller", callers)):
            value = call.get(field)
            if not isinstance(value, str):
                raise InvalidParams(f"call {field} must be a string, got "
                                    f"{_kind(value)}", path=f"{where}.{field}")
            out.append(value)
        mint = call.get("mint")
        if mint is not None and not isinstance(mint, str):
            raise InvalidParams(f"mint must be a string, got {_kind(mint)}",
                                path=f"{where}.mint")
        mints.append(mint or "")
        ts[i] = _int64(call.get("ts_ms"), f"{where}.ts_ms")
    return ids, callers, mints, ts


def _int64(value: Any, path: str) -> int:
    """An integer in int64 range; bool is not an integer here."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        if -2**63 <= int(value) < 2**63:
            return int(value)
        raise InvalidParams(f"integer {value} is out of int64 range", path=path)
    raise InvalidParams(f"must be an integer (Unix ms), got {_kind(value)}",
                        path=path)


def _kind(value: Any) -> str:
    return "missing" if value is None else f"{type(value).__name__} {value!r:.40}"


# ---------------------------------------------------------------- rows

def dataset_from_rows(calls: list[dict], candles_by_call_id: dict[str, list[Any]],
                      *, series_key: str = "call_id",
                      on_bad_series: str = "error") -> Dataset:
    """The CLI payload: per-key lists of ``{timestamp (s), open, ..., volume?}``
    (dicts, or ``protocol.CandleRow`` Structs).

    With ``series_key="mint"`` the keys of ``candles_by_call_id`` are mints.
    """
    check_options(series_key, on_bad_series)
    ids, callers, mints, ts = _calls_from_json(calls)
    return build_dataset(
        call_ids=ids, call_callers=callers, call_mints=mints, call_ts_ms=ts,
        candles=_candles_from_rows(candles_by_call_id), series_key=series_key,
        on_bad_series=on_bad_series, candles_sorted=True)


def _candles_from_rows(by_key: Any) -> CandleColumns:
    root = "$.candles_by_call_id"
    if not isinstance(by_key, dict):
        raise InvalidParams("must be an object of arrays", path=root)
    names = list(by_key)
    for name in names:
        if not isinstance(by_key[name], list):
            raise InvalidParams("must be an array of candle objects",
                                path=f"{root}[{json.dumps(name)}]")
    lengths = np.array([len(by_key[k]) for k in names], dtype=np.int64)
    rows = list(chain.from_iterable(by_key.values()))
    decoded = any(by_key is d for d in DECODED.get())
    if not decoded and rows and isinstance(rows[0], msgspec.Struct):
        # Built in Python, so never checked: read as the dicts they hold.
        rows = [msgspec.structs.asdict(r) if isinstance(r, msgspec.Struct) else r for r in rows]
    table = _RowTable(names, lengths, rows, decoded=decoded)
    codes = np.repeat(np.arange(len(names), dtype=np.int64), lengths)
    return CandleColumns(
        keys=KeyColumn(names=names, chunks=[(codes, None)]),
        ts_ms=_seconds_to_ms(table, table.column("timestamp")),
        open=table.column("open"), high=table.column("high"),
        low=table.column("low"), close=table.column("close"),
        volume=table.column("volume", optional=True))


class _RowTable:
    """Pulls one numeric field out of all candle rows at once.

    Rows the decoder checked (``decoded``) are read with ``np.fromiter``.
    Dicts take a list comprehension plus numpy's type inference; only on
    failure do we walk the rows again to name the exact bad one.
    """

    def __init__(self, names: list[str], lengths: np.ndarray, rows: list, *,
                 decoded: bool = False) -> None:
        self.names, self.rows, self.decoded = names, rows, decoded
        self.ends = np.cumsum(lengths)

    def column(self, field: str, *, optional: bool = False) -> np.ndarray:
        if self.decoded:  # CandleRow Structs: floats, and a volume may be null
            get = attrgetter(field)
            if not optional:
                return np.fromiter(map(get, self.rows), np.float64, len(self.rows))
            values = np.array(list(map(get, self.rows)), dtype=np.float64)  # null: NaN
            return np.where(np.isnan(values) | (values == 0), 0.0, values)  # as ``or 0.0``
        try:
            if optional:  # a missing or null volume is 0.0
                values = [r.get(field) or 0.0 for r in self.rows]
            else:
                values = [r[field] for r in self.rows]
        except (KeyError, TypeError, AttributeError):
            raise self._bad_row(field, optional) from None
        try:
            arr = np.array(values) if values else np.zeros(0)
        except (ValueError, TypeError, OverflowError):
            raise self._bad_row(field, optional) from None
        if arr.ndim != 1 or arr.dtype.kind not in "iuf":
            raise self._bad_row(field, optional)
        return arr if field == "timestamp" else arr.astype(np.float64, copy=False)

    def path(self, row: int) -> str:
        k = int(np.searchsorted(self.ends, row, side="right"))
        start = int(self.ends[k - 1]) if k else 0
        return f"$.candles_by_call_id[{json.dumps(self.names[k])}][{row - start}]"

    def _bad_row(self, field: str, optional: bool) -> InvalidParams:
        for i, r in enumerate(self.rows):
            if not isinstance(r, dict):
                return InvalidParams("candle must be an object", path=self.path(i))
            v = r.get(field)
            if not _is_number(v, optional):
                return InvalidParams(f"{field} must be a number, got {_kind(v)}",
                                     path=f"{self.path(i)}.{field}")
        return InvalidParams(f"every {field} must be a number in float64/int64 "
                             "range", path="$.candles_by_call_id")


def _is_number(v: Any, optional: bool) -> bool:
    if v is None:
        return optional
    return isinstance(v, (int, float, np.number)) and not isinstance(v, bool)


def _seconds_to_ms(table: _RowTable, sec: np.ndarray) -> np.ndarray:
    """``round(timestamp * 1000)`` exactly as Python does (half to even)."""
    if sec.dtype.kind in "iu":
        bad = np.flatnonzero(np.abs(sec) > _MAX_SECONDS)
        ms = None if bad.size else sec.astype(np.int64) * 1000
    else:
        ms_f = np.rint(sec * 1000.0)
        bad = np.flatnonzero(~(np.abs(ms_f) < 2.0**63))  # also NaN and inf
        ms = None if bad.size else ms_f.astype(np.int64)
    if ms is None:
        i = int(bad[0])
        raise InvalidParams(f"timestamp {sec[i]!r} s is not a finite time in "
                            "int64 ms range", path=f"{table.path(i)}.timestamp")
    return ms


# ---------------------------------------------------------------- columnar

def dataset_from_columnar(calls: list[dict], candles_columnar: dict[str, Any],
                          *, series_key: str = "call_id",
                          on_bad_series: str = "error") -> Dataset:
    """Equal-length arrays ``key, ts_ms, open, high, low, close[, volume]``.

    Rows of one key may be interleaved with other keys but must be in time
    order.
    """
    check_options(series_key, on_bad_series)
    ids, callers, mints, ts = _calls_from_json(calls)
    return build_dataset(
        call_ids=ids, call_callers=callers, call_mints=mints, call_ts_ms=ts,
        candles=_candles_from_columnar(candles_columnar),
        series_key=series_key, on_bad_series=on_bad_series,
        candles_sorted=True)


def _candles_from_columnar(cc: Any) -> CandleColumns:
    root = "$.candles_columnar"
    if not isinstance(cc, dict):
        raise InvalidParams("must be an object of arrays", path=root)
    present = [f for f in (*CANDLE_COLUMNS, "volume") if cc.get(f) is not None]
    for field in CANDLE_COLUMNS:
        if field not in present:
            raise InvalidParams(f"missing array {field!r}", path=f"{root}.{field}")
    sizes = {}
    for field in present:
        try:
            sizes[field] = len(cc[field])
        except TypeError:
            raise InvalidParams("must be an array", path=f"{root}.{field}") from None
    n = sizes["key"]
    for field, size in sizes.items():
        if size != n:
            raise InvalidParams(f"has {size} values but key has {n}",
                                path=f"{root}.{field}")
    return CandleColumns(
        keys=_encode_keys(cc["key"], f"{root}.key"),
        ts_ms=_numeric(cc["ts_ms"], f"{root}.ts_ms", integer=True),
        open=_numeric(cc["open"], f"{root}.open"),
        high=_numeric(cc["high"], f"{root}.high"),
        low=_numeric(cc["low"], f"{root}.low"),
        close=_numeric(cc["close"], f"{root}.close"),
        volume=(_numeric(cc["volume"], f"{root}.volume")
                if "volume" in present else None))


def _encode_keys(values: Any, path: str) -> KeyColumn:
    """Strings -> codes by pyarrow's hash table (first-appearance order)."""
    try:
        arr = pa.array(values, type=pa.string())
    except (pa.ArrowException, TypeError, ValueError) as exc:
        raise InvalidParams(f"must be an array of strings ({exc})",
                            path=path) from None
    if arr.null_count:
        first = int(pc.index(arr.is_null(), True).as_py())
        raise InvalidParams("key must be a string, got null",
                            path=f"{path}[{first}]")
    enc = arr.dictionary_encode()
    return KeyColumn(names=enc.dictionary.to_pylist(),
                     chunks=[(enc.indices.to_numpy(zero_copy_only=False), None)])


def _numeric(values: Any, path: str, *, integer: bool = False) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise InvalidParams("must be a flat array", path=path)
    ok = "iu" if integer else "iuf"
    if arr.size and arr.dtype.kind not in ok:
        what = "integers (Unix ms)" if integer else "numbers"
        raise InvalidParams(f"must be an array of {what}, got {arr.dtype} "
                            "values", path=path)
    if arr.dtype.kind == "u" and arr.size and arr.max() > np.iinfo(np.int64).max:
        # uint64 (numpy's type for 2**63 .. 2**64-1) must not wrap to negative times.
        i = int(np.argmax(arr > np.iinfo(np.int64).max))
        raise InvalidParams(f"integer {int(arr[i])} is out of int64 range",
                            path=f"{path}[{i}]")
    return arr.astype(np.int64 if integer else np.float64, copy=False)
