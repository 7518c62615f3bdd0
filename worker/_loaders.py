"""The three dataset sources of SPEC 7 (``loadDataset``): rows, columns, files.

Each loader only checks shapes and types (``InvalidParams`` naming the JSON
path, or the file and column) and turns its input into integer key codes and
numpy columns; every data rule lives in ``_dataset.build_dataset``.
Readers return a ``CandleColumns`` from a helper so that no local variable
keeps a second reference to a column the builder may replace.
"""

from __future__ import annotations

import json
import os
import re
from itertools import chain
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from worker._dataset import (
    CandleColumns, Dataset, KeyColumn, build_dataset, check_options,
)
from worker._errors import InvalidParams

__all__ = [
    "dataset_from_rows", "dataset_from_columnar", "dataset_from_files",
    "write_dataset_files",
]

_PRICES = ("open", "high", "low", "close")
_CANDLE_COLUMNS = ("key", "ts_ms", *_PRICES)
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

def dataset_from_rows(calls: list[dict], candles_by_call_id: dict[str, list[dict]],
                      *, series_key: str = "call_id",
                      on_bad_series: str = "error") -> Dataset:
    """The CLI payload: per-key lists of ``{timestamp (s), open, ..., volume?}``.

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
    table = _RowTable(names, lengths, rows)
    codes = np.repeat(np.arange(len(names), dtype=np.int64), lengths)
    return CandleColumns(
        keys=KeyColumn(names=names, chunks=[(codes, None)]),
        ts_ms=_seconds_to_ms(table, table.column("timestamp")),
        open=table.column("open"), high=table.column("high"),
        low=table.column("low"), close=table.column("close"),
        volume=table.column("volume", optional=True))


class _RowTable:
    """Pulls one numeric field out of all candle rows at once.

    The fast path is a list comprehension plus numpy's type inference; only on
    failure do we walk the rows again to name the exact bad one.
    """

    def __init__(self, names: list[str], lengths: np.ndarray, rows: list) -> None:
        self.names, self.rows = names, rows
        self.ends = np.cumsum(lengths)

    def column(self, field: str, *, optional: bool = False) -> np.ndarray:
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
    present = [f for f in (*_CANDLE_COLUMNS, "volume") if cc.get(f) is not None]
    for field in _CANDLE_COLUMNS:
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
    return arr.astype(np.int64 if integer else np.float64, copy=False)


# ---------------------------------------------------------------- files

class _Src(NamedTuple):
    """A file and the request field that named it, for error messages."""

    path: str
    param: str  # "$.calls_path" or "$.candles_path"

    def error(self, what: str) -> InvalidParams:
        return InvalidParams(f"{self.path}: {what}", path=self.param)


def dataset_from_files(calls_path: str, candles_path: str, *,
                       series_key: str = "call_id",
                       on_bad_series: str = "error") -> Dataset:
    """Parquet (.parquet/.pq) or CSV with a header (.csv), SPEC 8.

    Rows need not be sorted: candles are grouped by key and sorted by time
    (stably) before validation. ``mint`` may be left out of the calls table
    unless ``series_key="mint"``.
    """
    check_options(series_key, on_bad_series)
    src = _Src(calls_path, "$.calls_path")
    required = ("id", "caller", "ts_ms") + (("mint",) if series_key == "mint" else ())
    calls = _read_table(src, required, ("mint",), _CALL_TYPES)
    n = calls.num_rows
    mints = _strings(calls, "mint", src) if "mint" in calls.column_names else [""] * n
    ids, callers = _strings(calls, "id", src), _strings(calls, "caller", src)
    ts = _int_column(calls, "ts_ms", src)
    del calls
    return build_dataset(
        call_ids=ids, call_callers=callers, call_mints=mints, call_ts_ms=ts,
        candles=_candles_from_file(_Src(candles_path, "$.candles_path")),
        series_key=series_key, on_bad_series=on_bad_series,
        candles_sorted=False,
        calls_where=_brace_safe(os.path.basename(str(calls_path))) + " row {}")


def _brace_safe(text: str) -> str:
    """``text`` as a literal inside a str.format template."""
    return text.replace("{", "{{").replace("}", "}}")


_CALL_TYPES = {"id": pa.string(), "caller": pa.string(), "mint": pa.string(),
               "ts_ms": pa.int64()}
_CANDLE_TYPES = {"key": pa.dictionary(pa.int32(), pa.string()),
                 "ts_ms": pa.int64(), **{p: pa.float64() for p in _PRICES},
                 "volume": pa.float64()}


def _candles_from_file(src: _Src) -> CandleColumns:
    table = _read_table(src, _CANDLE_COLUMNS, ("volume",), _CANDLE_TYPES)
    has_volume = "volume" in table.column_names
    return CandleColumns(
        keys=_dictionary_keys(table.column("key"), src),
        ts_ms=_int_column(table, "ts_ms", src),
        open=_float_column(table, "open", src),
        high=_float_column(table, "high", src),
        low=_float_column(table, "low", src),
        close=_float_column(table, "close", src),
        volume=_float_column(table, "volume", src) if has_volume else None)


def _read_table(src: _Src, required: tuple[str, ...],
                optional: tuple[str, ...], csv_types: dict) -> pa.Table:
    """Only the needed columns; Parquet keys come back dictionary-encoded."""
    if not isinstance(src.path, str) or not src.path:
        raise InvalidParams("must be a file path", path=src.param)
    if not os.path.isfile(src.path):
        raise src.error("no such file")
    ext = os.path.splitext(src.path)[1].lower()
    try:
        if ext in (".parquet", ".pq"):
            names = pq.read_schema(src.path).names
            cols = _columns(names, required, optional, src)
            # ParquetFile.read (unlike read_table) yields one chunk per
            # primitive column, so to_numpy() below is zero-copy. No
            # pre-buffering: it would hold whole column chunks a second time.
            with pq.ParquetFile(src.path, memory_map=True, pre_buffer=False,
                                read_dictionary=[c for c in cols if c == "key"]) as pf:
                return pf.read(columns=cols, use_threads=True)
        if ext == ".csv":
            with pacsv.open_csv(src.path) as reader:  # reads the header only
                names = reader.schema.names
            cols = _columns(names, required, optional, src)
            conv = pacsv.ConvertOptions(
                include_columns=cols,
                column_types={c: csv_types[c] for c in cols})
            return _read_csv(src, conv, names)
    except (pa.ArrowException, OSError) as exc:
        raise src.error(f"cannot read: {exc}") from None
    raise src.error(f"unknown file type {ext!r} (use .parquet, .pq or .csv)")


def _read_csv(src: _Src, conv: pacsv.ConvertOptions, names: list[str]) -> pa.Table:
    """pyarrow names a failing CSV column by number only; add its name."""
    try:
        return pacsv.read_csv(src.path, convert_options=conv)
    except pa.ArrowInvalid as exc:
        m = re.search(r"column #(\d+)", str(exc))
        if m is None or int(m[1]) >= len(names):
            raise
        raise src.error(f"column {names[int(m[1])]!r} has a bad value: "
                        f"{exc}") from None


def _columns(names: list[str], required: tuple[str, ...],
             optional: tuple[str, ...], src: _Src) -> list[str]:
    missing = [c for c in required if c not in names]
    if missing:
        raise src.error(f"missing column(s) {missing} (the file has {names})")
    return [c for c in dict.fromkeys((*required, *optional)) if c in names]


def _check_column(col: pa.ChunkedArray, name: str, src: _Src, ok: bool,
                  want: str, *, nulls_ok: bool = False) -> None:
    if not ok:
        raise src.error(f"column {name!r} must be {want}, got {col.type}")
    if col.null_count and not nulls_ok:
        first = int(pc.index(col.is_null(), True).as_py())
        raise src.error(f"column {name!r} has a null at row {first}")


def _is_string(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t)


def _strings(table: pa.Table, name: str, src: _Src) -> list[str]:
    col = table.column(name)
    if name == "mint":  # a missing mint is the empty mint, as in JSON calls
        if pa.types.is_null(col.type):
            return [""] * len(col)
        col = pc.fill_null(col, "")
    _check_column(col, name, src, _is_string(col.type), "string")
    return col.to_pylist()


def _int_column(table: pa.Table, name: str, src: _Src) -> np.ndarray:
    col = table.column(name)
    _check_column(col, name, src, pa.types.is_integer(col.type),
                  "an integer (Unix ms)")
    try:
        return col.cast(pa.int64()).to_numpy()
    except pa.ArrowInvalid as exc:
        raise src.error(f"column {name!r}: {exc}") from None


def _float_column(table: pa.Table, name: str, src: _Src) -> np.ndarray:
    """float64 numpy, zero-copy when the file holds non-null float64.

    Null prices become NaN, so they fail the price rule (and can be dropped
    like any bad series); a null volume is 0.0.
    """
    col = table.column(name)
    numeric = pa.types.is_floating(col.type) or pa.types.is_integer(col.type)
    _check_column(col, name, src, numeric, "numeric", nulls_ok=True)
    if name == "volume" and col.null_count:
        col = pc.fill_null(col, 0.0)
    return col.cast(pa.float64()).to_numpy()


def _dictionary_keys(col: pa.ChunkedArray, src: _Src) -> KeyColumn:
    """Per-chunk dictionary codes plus a map of each chunk's dictionary onto
    one global list of names (vectorized; chunks often share a dictionary)."""
    dict_type = pa.types.is_dictionary(col.type)
    value_type = col.type.value_type if dict_type else col.type
    _check_column(col, "key", src, _is_string(value_type), "string")
    if not dict_type:
        col = col.dictionary_encode()
    chunks = [c for c in col.chunks if len(c)]
    names = (pc.unique(pa.chunked_array([c.dictionary for c in chunks],
                                        type=value_type))
             if chunks else pa.array([], type=value_type))
    out: list[tuple[np.ndarray, np.ndarray | None]] = []
    prev_dict, prev_lut = None, None
    for c in chunks:
        if prev_dict is None or not c.dictionary.equals(prev_dict):
            prev_dict = c.dictionary
            prev_lut = pc.index_in(prev_dict, value_set=names).to_numpy(
                zero_copy_only=False).astype(np.int64)
        out.append((c.indices.to_numpy(zero_copy_only=False), prev_lut))
    return KeyColumn(names=names.to_pylist(), chunks=out)


def write_dataset_files(ds: Dataset, calls_path: str, candles_path: str) -> None:
    """Write ``ds`` as SPEC 8 files (by extension), for tests and benches."""
    calls = pa.table({"id": list(ds.call_ids),
                      "caller": [ds.caller_names[c] for c in ds.call_caller],
                      "mint": list(ds.call_mints), "ts_ms": ds.call_ts_ms})
    codes = np.repeat(np.arange(ds.n_series, dtype=np.int32),
                      np.diff(ds.series_offsets))
    key = pa.DictionaryArray.from_arrays(
        codes, pa.array(list(ds.series_keys), type=pa.string()))
    candles = pa.table({"key": key, "ts_ms": ds.ts_ms, "open": ds.open,
                        "high": ds.high, "low": ds.low, "close": ds.close,
                        "volume": ds.volume})
    for table, path in ((calls, calls_path), (candles, candles_path)):
        if os.path.splitext(path)[1].lower() == ".csv":
            if "key" in table.column_names:
                table = table.set_column(0, "key", table.column("key").cast(pa.string()))
            pacsv.write_csv(table, path)
        else:
            # Tuned for reading: only keys get a dictionary (float columns
            # would fall back to plain anyway after paying for the attempt),
            # times delta-packed, and no compression, which random-looking
            # prices would not repay at read time.
            pq.write_table(table, path, use_dictionary=["key"],
                           compression="none",
                           column_encoding={"ts_ms": "DELTA_BINARY_PACKED"})
