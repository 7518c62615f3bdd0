"""Dataset files (SPEC 8): Parquet (.parquet/.pq) or CSV with a header.

A calls table ``id, caller, mint, ts_ms`` and a candles table ``key, ts_ms,
open, high, low, close[, volume]``; rows need not be sorted. Columns go to
numpy without copies where pyarrow allows, and keys stay dictionary codes,
so no Python object is made per candle. Errors name the file and column
(and the request field that named the file).

Errors never quote a file's contents: a path may name any file the daemon
can read (a link to a system file, say), and an error goes back to whoever
sent the request. Messages say which column, row and rule, never the text;
pyarrow's own messages, which often quote the offending line, are reduced
to what they say about the structure (``_arrow_reason``). Only regular files
are opened: a FIFO or a device could block the reading thread for ever.
"""

from __future__ import annotations

import os
import re
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from .._core.dataset import (
    CandleColumns,
    Dataset,
    KeyColumn,
    build_dataset,
    check_options,
)
from .._errors import InvalidParams
from .loaders import CANDLE_COLUMNS, PRICES
from .precheck import check_regular_file

__all__ = ["dataset_from_files", "write_dataset_files"]



class CandleSink(Protocol):
    """Where ``dataset_from_files`` puts the candle columns (module doc of
    ``worker._pool.shm_build``): ``columns(n)``, called once before reading,
    gives six writable arrays of ``n`` rows (``ts_ms`` int64, prices and
    ``volume`` float64) that end as the dataset's columns, each row written
    by ``write(name, pos, values)`` (a batch into rows ``pos:`` of one)
    before anything reads it."""

    def columns(self, n: int) -> dict[str, np.ndarray]: ...

    def write(self, name: str, pos: int, values: np.ndarray) -> None: ...


class _Src(NamedTuple):
    """A file and the request field that named it, for error messages."""

    path: str
    param: str  # "$.calls_path" or "$.candles_path"

    def error(self, what: str) -> InvalidParams:
        return InvalidParams(f"{self.path}: {what}", path=self.param)


def dataset_from_files(calls_path: str, candles_path: str, *,
                       series_key: str = "call_id",
                       on_bad_series: str = "error",
                       candle_sink: CandleSink | None = None) -> Dataset:
    """Parquet (.parquet/.pq) or CSV with a header (.csv), SPEC 8.

    Rows need not be sorted: candles are grouped by key and sorted by time
    (stably) before validation. ``mint`` may be left out of the calls table
    unless ``series_key="mint"``.

    ``candle_sink``: where the candle columns go (``CandleSink``: the
    daemon's shared file), decoded a few row groups at a time; the dataset's
    final columns are its arrays, reordered and trimmed in place.
    """
    check_options(series_key, on_bad_series)
    src = _Src(calls_path, "$.calls_path")
    check_regular_file(calls_path, "$.calls_path")
    check_regular_file(candles_path, "$.candles_path")
    required = ("id", "caller", "ts_ms") + (("mint",) if series_key == "mint" else ())
    calls = _read_table(src, required, ("mint",), _CALL_TYPES)
    n = calls.num_rows
    mints = _strings(calls, "mint", src) if "mint" in calls.column_names else [""] * n
    ids, callers = _strings(calls, "id", src), _strings(calls, "caller", src)
    ts = _int_column(calls, "ts_ms", src)
    del calls
    try:
        return build_dataset(
            call_ids=ids, call_callers=callers, call_mints=mints, call_ts_ms=ts,
            candles=(_candles_from_file(_Src(candles_path, "$.candles_path"))
                     if candle_sink is None else
                     _candles_into(_Src(candles_path, "$.candles_path"), candle_sink)),
            series_key=series_key, on_bad_series=on_bad_series,
            candles_sorted=False,
            calls_where=_brace_safe(os.path.basename(str(calls_path))) + " row {}")
    finally:
        # pyarrow's allocator keeps freed buffers: give the decode's temporaries
        # back (a daemon held ~400 MiB more after a 28.8 M-candle load).
        pa.default_memory_pool().release_unused()


def _brace_safe(text: str) -> str:
    """``text`` as a literal inside a str.format template."""
    return text.replace("{", "{{").replace("}", "}}")


_CALL_TYPES = {"id": pa.string(), "caller": pa.string(), "mint": pa.string(),
               "ts_ms": pa.int64()}
_CANDLE_TYPES = {"key": pa.dictionary(pa.int32(), pa.string()),
                 "ts_ms": pa.int64(), **{p: pa.float64() for p in PRICES},
                 "volume": pa.float64()}


def _candles_from_file(src: _Src) -> CandleColumns:
    table = _read_table(src, CANDLE_COLUMNS, ("volume",), _CANDLE_TYPES)
    has_volume = "volume" in table.column_names
    return CandleColumns(
        keys=_dictionary_keys(table.column("key"), src),
        ts_ms=_int_column(table, "ts_ms", src),
        open=_float_column(table, "open", src),
        high=_float_column(table, "high", src),
        low=_float_column(table, "low", src),
        close=_float_column(table, "close", src),
        volume=_float_column(table, "volume", src) if has_volume else None)


def _candles_into(src: _Src, sink: CandleSink) -> CandleColumns:
    """The candle columns decoded into ``sink`` (``dataset_from_files``):
    Parquet a few row groups at a time (each batch decoded by pyarrow's
    threads, then written to its place and freed, so no second full copy is
    ever held); CSV by pyarrow's multi-threaded reader, then written. Checks
    and conversions are ``_int_column``'s and ``_float_column``'s; a null
    time is reported at its row in the file."""
    keys: list[pa.Array] = []
    key_type, out = pa.dictionary(pa.int32(), pa.string()), {}
    # One batch is written (a thread) while the next is decoded.
    with ThreadPoolExecutor(1, thread_name_prefix="candle-writer") as writer:
        pending = None
        for table, pos, out in _candle_batches(src, sink):
            cols = [(name, _int_column(table, name, src, pos) if name == "ts_ms"
                     else _float_column(table, name, src) if name in table.column_names
                     else np.zeros(table.num_rows))  # no volume column: zeros
                    for name in ("ts_ms", *PRICES, "volume")]
            key_type = table.column("key").type
            keys.extend(table.column("key").chunks)
            if pending is not None:
                pending.result()
            pending = writer.submit(_write, sink, pos, cols)
            del table, cols
        if pending is not None:
            pending.result()
    key_col = pa.chunked_array(keys, type=key_type)
    return CandleColumns(keys=_dictionary_keys(key_col, src), **out, in_place=True)


def _write(sink: CandleSink, pos: int, cols: list[tuple[str, np.ndarray]]) -> None:
    for name, values in cols:
        sink.write(name, pos, values)


_ROW_GROUPS_PER_BATCH = 2  # decoded together (pyarrow's threads); then written, freed


def _candle_batches(src: _Src, sink: CandleSink):
    """``(table, first row, sink's columns)`` for each piece of the candles file."""
    if os.path.splitext(src.path)[1].lower() not in (".parquet", ".pq"):
        table = _read_table(src, CANDLE_COLUMNS, ("volume",), _CANDLE_TYPES)
        yield table, 0, sink.columns(table.num_rows)
        return
    check_regular_file(src.path, src.param)
    try:
        with pq.ParquetFile(src.path, memory_map=True, pre_buffer=False,
                            read_dictionary=["key"]) as pf:
            cols = _columns(pf.schema_arrow.names, CANDLE_COLUMNS, ("volume",), src)
            n, groups = pf.metadata.num_rows, list(range(pf.num_row_groups))
            out, pos = sink.columns(n), 0
            for i in range(0, len(groups), _ROW_GROUPS_PER_BATCH):
                table = pf.read_row_groups(groups[i:i + _ROW_GROUPS_PER_BATCH],
                                           columns=cols, use_threads=True)
                if pos + table.num_rows > n:
                    break
                yield table, pos, out
                pos += table.num_rows
    except (pa.ArrowException, OSError) as exc:
        raise src.error(f"cannot read: {_arrow_reason(exc)}") from None
    if pos != n:
        raise src.error("cannot read: its row groups do not add up to its row count")


def _read_table(src: _Src, required: tuple[str, ...],
                optional: tuple[str, ...], csv_types: dict) -> pa.Table:
    """Only the needed columns; Parquet keys come back dictionary-encoded."""
    check_regular_file(src.path, src.param)
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
        raise src.error(f"cannot read: {_arrow_reason(exc)}") from None
    raise src.error(f"unknown file type {ext!r} (use .parquet, .pq or .csv)")


def _read_csv(src: _Src, conv: pacsv.ConvertOptions, names: list[str]) -> pa.Table:
    """pyarrow names a failing CSV column by number only; add its name."""
    try:
        return pacsv.read_csv(src.path, convert_options=conv)
    except pa.ArrowInvalid as exc:
        m = re.search(r"column #(\d+)", str(exc))
        if m is None or int(m[1]) >= len(names):
            raise
        row = re.search(r"Row #(\d+)", str(exc))
        at = f" at row {row[1]}" if row else ""
        want = conv.column_types.get(names[int(m[1])])
        raise src.error(f"column {names[int(m[1])]!r} has a value{at} that is not "
                        f"{'an integer' if pa.types.is_integer(want) else 'a ' + str(want)}"
                        ) from None


def _columns(names: list[str], required: tuple[str, ...],
             optional: tuple[str, ...], src: _Src) -> list[str]:
    missing = [c for c in required if c not in names]
    if missing:
        # The names the file has are its contents: count them, never quote them.
        raise src.error(f"missing column(s) {missing} (the file's header has "
                        f"{len(names)} other column(s))")
    return [c for c in dict.fromkeys((*required, *optional)) if c in names]


def _check_column(col: pa.ChunkedArray, name: str, src: _Src, ok: bool,
                  want: str, *, nulls_ok: bool = False, base: int = 0) -> None:
    if not ok:
        raise src.error(f"column {name!r} must be {want}, got {col.type}")
    if col.null_count and not nulls_ok:
        first = int(pc.index(col.is_null(), True).as_py()) + base
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


def _int_column(table: pa.Table, name: str, src: _Src, base: int = 0) -> np.ndarray:
    col = table.column(name)
    _check_column(col, name, src, pa.types.is_integer(col.type),
                  "an integer (Unix ms)", base=base)
    try:
        return col.cast(pa.int64()).to_numpy()
    except pa.ArrowInvalid:
        raise src.error(f"column {name!r} has an integer out of int64 range") from None


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


def _arrow_reason(exc: BaseException) -> str:
    """What went wrong reading a file, without the file's text: pyarrow
    quotes the offending line in many messages (module doc)."""
    if isinstance(exc, OSError) and not isinstance(exc, pa.ArrowException):
        return exc.strerror or type(exc).__name__
    text = str(exc)
    m = re.search(r"Expected (\d+) columns, got (\d+)", text)
    if m:
        return f"not a valid CSV table: a row has {m[2]} column(s), the header {m[1]}"
    if "CSV" in text:
        return "not a valid CSV table"
    if "Parquet" in text or "parquet" in text:
        # The Parquet messages worth keeping say what is broken, not what is in it.
        first = re.split(r"[.:\n]", text, maxsplit=1)[0]
        return re.sub(r"['\"].*?['\"]", "...", first)[:120]
    return f"not a readable table ({type(exc).__name__})"
