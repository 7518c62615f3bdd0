"""Bar files (SPEC 13, ``loadBars``): one table, or a directory of one file
per symbol.

A table (``.parquet``, ``.pq`` or ``.csv`` with a header) has columns
``symbol, ts_ms, open, high, low, close[, volume]``; a directory holds
``<SYMBOL>.csv`` / ``<SYMBOL>.parquet`` (or ``.pq``) files with the same
columns but ``symbol``. Either may give ``timestamp`` in seconds instead of
``ts_ms`` (``round(timestamp * 1000)``, half to even, as the candle loaders
do); when a file has both, ``ts_ms`` is read and ``timestamp`` ignored.

Table rows are grouped by symbol (stably, symbols in byte order) but never
sorted by time: a symbol's rows out of time order are an error, not a
guess. Checks are SPEC 1's, per symbol (``worker._core.rules``: time, then
prices, then ``low <= high``), then volume: finite and ``>= 0`` (a null
volume is 0, like a missing column; NaN is an error, since a volume a
plug-in reads must mean something). Errors are ``InvalidDataset(key=symbol,
index=row within the symbol, rule=...)`` and ``InvalidParams`` for files,
columns and types, naming the file and column, never the contents
(``worker._data.files``, whose readers this module uses).

Rules chosen where SPEC is silent: a file with no rows is an error; hidden
files (a leading ``.``) and other extensions in a directory are ignored;
``A.csv`` beside ``A.parquet`` is an error; a symbol must be
``worker._core.bars.valid_symbol``.
"""

from __future__ import annotations

import json
import os
from itertools import chain

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from .._core.bars import (
    BarSet,
    build_bars,
    byte_order,
    check_symbol_list,
    symbol_indices,
    valid_symbol,
)
from .._core.dataset import CandleColumns
from .._core.rules import _bad_series, _ts_in_range, _ts_increasing
from .._errors import InvalidDataset, InvalidParams
from .files import (
    _arrow_reason,
    _check_column,
    _float_column,
    _int_column,
    _is_string,
    _read_table,
    _Src,
)
from .loaders import _MAX_SECONDS, PRICES
from .precheck import check_regular_file

__all__ = ["load_bars"]

PARAM = "$.bars_path"
BAR_EXTENSIONS = (".parquet", ".pq", ".csv")
# Explicit CSV types: a price that is not a number fails, naming its column.
# Seconds as float64 are exact for every time within +-2**53 ms.
_TYPES = {"symbol": pa.string(), "ts_ms": pa.int64(), "timestamp": pa.float64(),
          **{p: pa.float64() for p in PRICES}, "volume": pa.float64()}
_COLUMNS = ("ts_ms", *PRICES, "volume")
_SAME_ROWS = np.zeros(0, np.int64)  # a table whose rows kept their places
_RULE_TEXT = {
    "ts_in_range": "its time is outside +-2**53 ms, the range of times this "
                   "worker handles exactly",
    "strictly_increasing_ts": "its time is not after the previous bar's (a "
                              "symbol's rows must be in strictly increasing "
                              "time; they are not sorted on load)",
    "finite_positive_price": "open, high, low and close must be finite and > 0",
    "low_le_high": "low is above high",
    "finite_nonnegative_volume": "volume must be finite and >= 0",
}


def load_bars(path: str, symbols: list[str] | None = None) -> BarSet:
    """SPEC 13 bars from a table file or a directory (module doc);
    ``symbols``: load (and check) only these."""
    check_symbol_list(symbols, "$.symbols")
    if not isinstance(path, str) or not path:
        raise InvalidParams("must be a file or directory path", path=PARAM)
    try:
        if os.path.isdir(path):
            names, offsets, cols, rows = _from_directory(path, symbols)
        else:
            names, offsets, cols, rows = _from_table(_Src(path, PARAM), symbols)
        _validate(path, names, offsets, cols, rows)
        return build_bars(names, offsets, *cols)
    finally:
        # pyarrow's allocator keeps freed buffers (see files.dataset_from_files).
        pa.default_memory_pool().release_unused()


# ---------------------------------------------------------------- one file

def _time_column(src: _Src) -> str:
    """``ts_ms`` or ``timestamp``, whichever the header has (``ts_ms`` first)."""
    check_regular_file(src.path, src.param)
    ext = os.path.splitext(src.path)[1].lower()
    try:
        if ext in (".parquet", ".pq"):
            names = pq.read_schema(src.path).names
        elif ext == ".csv":
            with pacsv.open_csv(src.path) as reader:  # the first block only
                names = reader.schema.names
        else:
            raise src.error(f"unknown file type {ext!r} (use .parquet, .pq or .csv)")
    except (pa.ArrowException, OSError) as exc:
        raise src.error(f"cannot read: {_arrow_reason(exc)}") from None
    for name in ("ts_ms", "timestamp"):
        if name in names:
            return name
    raise src.error(f"missing column 'ts_ms' (or 'timestamp' in seconds); the "
                    f"file's header has {len(names)} other column(s)")


def _read(src: _Src, first: tuple[str, ...]) -> tuple[pa.Table, str]:
    time_col = _time_column(src)
    table = _read_table(src, (*first, time_col, *PRICES), ("volume",), _TYPES)
    if table.num_rows == 0:
        raise src.error("has no bars (no data rows)")
    return table, time_col


def _numeric(table: pa.Table, time_col: str, src: _Src) -> list[np.ndarray]:
    """``ts_ms, open, high, low, close, volume`` as numpy (zero-copy where
    pyarrow allows); no volume column: zeros."""
    ts = (_int_column(table, "ts_ms", src) if time_col == "ts_ms"
          else _ms_from_seconds(table.column("timestamp"), src))
    vol = (_float_column(table, "volume", src) if "volume" in table.column_names
           else np.zeros(table.num_rows))
    return [ts, *(_float_column(table, p, src) for p in PRICES), vol]


def _ms_from_seconds(col: pa.ChunkedArray, src: _Src) -> np.ndarray:
    """``round(timestamp * 1000)`` as ``loaders._seconds_to_ms``, but an error
    names the row, never the value (a file's contents)."""
    integer = pa.types.is_integer(col.type)
    _check_column(col, "timestamp", src, integer or pa.types.is_floating(col.type),
                  "a number (Unix seconds)")
    if integer:
        sec = col.to_numpy()  # its own integer type: uint64 must not wrap
        bad = np.flatnonzero((sec < -_MAX_SECONDS) | (sec > _MAX_SECONDS))
        ms = sec.astype(np.int64) * 1000 if not bad.size else None
    else:
        ms_f = np.rint(col.cast(pa.float64()).to_numpy() * 1000.0)
        bad = np.flatnonzero(~(np.abs(ms_f) < 2.0**63))  # also NaN and inf
        ms = ms_f.astype(np.int64) if not bad.size else None
    if ms is None:
        raise src.error(f"column 'timestamp' has a value at row {int(bad[0])} "
                        "that is not a finite time in int64 ms range")
    return ms


# ---------------------------------------------------------------- table

def _from_table(src: _Src, symbols: list[str] | None):
    table, time_col = _read(src, ("symbol",))
    names, codes = _symbol_codes(table.column("symbol"), src)
    table = table.drop_columns(["symbol"])
    idx = symbol_indices(names, symbols, "$.symbols")
    if idx.size < len(names):  # keep the asked symbols, renumbered
        lut = np.full(len(names), -1, dtype=np.int64)
        lut[idx] = np.arange(idx.size)
        codes, names = lut[codes], [names[i] for i in idx]
    cols = _numeric(table, time_col, src)
    del table
    rows = np.flatnonzero(codes >= 0) if np.any(codes < 0) else None
    kept = codes if rows is None else codes[rows]
    if np.any(kept[1:] < kept[:-1]):
        # Group symbols stably: a symbol's rows keep their file order.
        order = np.argsort(kept, kind="stable")
        rows = order if rows is None else rows[order]
    if rows is not None:
        for k in range(len(cols)):  # one column at a time: low peak memory
            cols[k] = cols[k][rows]
    counts = np.bincount(kept, minlength=len(names))
    # rows: each grouped row's file row; _SAME_ROWS when nothing moved.
    return (names, np.concatenate(([0], np.cumsum(counts))), cols,
            _SAME_ROWS if rows is None else rows)


def _symbol_codes(col: pa.ChunkedArray, src: _Src) -> tuple[list[str], np.ndarray]:
    """Symbols in byte order and each row's position among them, by
    pyarrow's hash tables (no Python object per row). A dictionary column
    (Parquet written from a dictionary array) is coded through its
    dictionaries, which may hold values no row uses: those are dropped."""
    is_dict = pa.types.is_dictionary(col.type)
    value_type = col.type.value_type if is_dict else col.type
    _check_column(col, "symbol", src, _is_string(value_type), "string")
    chunks = [c for c in col.chunks if len(c)]
    found = ([c.dictionary for c in chunks] if is_dict
             else [pc.unique(col)] if chunks else [])
    names = byte_order(set(chain.from_iterable(a.to_pylist() for a in found)))
    value_set = pa.array(names, type=value_type)
    parts = []
    for c in chunks:
        if is_dict:
            lut = pc.index_in(c.dictionary, value_set=value_set).to_numpy(
                zero_copy_only=False).astype(np.int64)
            parts.append(lut[c.indices.to_numpy(zero_copy_only=False)])
        else:
            parts.append(pc.index_in(c, value_set=value_set).to_numpy(
                zero_copy_only=False).astype(np.int64))
    codes = np.concatenate(parts) if parts else np.zeros(0, np.int64)
    used = np.bincount(codes, minlength=len(names)) > 0
    if not used.all():
        codes = (np.cumsum(used) - 1)[codes]
        names = [n for n, u in zip(names, used) if u]
    for s, name in enumerate(names):
        if not valid_symbol(name):
            row = int(np.argmax(codes == s))
            raise src.error(f"column 'symbol' has an invalid symbol at row {row} "
                            "(empty, control characters or surrounding spaces)")
    return names, codes


# ---------------------------------------------------------------- directory

def _bar_files(path: str) -> dict[str, str]:
    """``{symbol: file}`` for the bar files of directory ``path``."""
    try:
        entries = sorted(os.listdir(path))
    except OSError as exc:
        raise InvalidParams(f"{path}: cannot list: {exc.strerror or 'error'}",
                            path=PARAM) from None
    files: dict[str, str] = {}
    for name in entries:
        stem, ext = os.path.splitext(name)
        if name.startswith(".") or ext.lower() not in BAR_EXTENSIONS:
            continue
        if not valid_symbol(stem):
            raise InvalidParams(f"{path}: file name {json.dumps(name)} is not "
                                "<SYMBOL>.csv or <SYMBOL>.parquet with a valid symbol "
                                "(UTF-8, no control characters or surrounding spaces)",
                                path=PARAM)
        if stem in files:
            raise InvalidParams(
                f"{path}: two files for symbol {json.dumps(stem)}: "
                f"{json.dumps(os.path.basename(files[stem]))} and {json.dumps(name)}",
                path=PARAM)
        files[stem] = os.path.join(path, name)
    if not files:
        raise InvalidParams(f"{path}: no bar files (<SYMBOL>.csv or "
                            "<SYMBOL>.parquet) in the directory", path=PARAM)
    return files


def _from_directory(path: str, symbols: list[str] | None):
    files = _bar_files(path)
    names = byte_order(files)
    names = [names[i] for i in symbol_indices(names, symbols, "$.symbols")]
    per_file: list[list[np.ndarray]] = []
    for name in names:
        src = _Src(files[name], PARAM)
        table, time_col = _read(src, ())
        per_file.append(_numeric(table, time_col, src))
        del table
    counts = np.array([p[0].shape[0] for p in per_file], dtype=np.int64)
    cols = []
    for k in range(len(_COLUMNS)):  # one column at a time, freeing the pieces
        cols.append(np.concatenate([p[k] for p in per_file]))
        for p in per_file:
            p[k] = None
    return names, np.concatenate(([0], np.cumsum(counts))), cols, None


# ---------------------------------------------------------------- rules

def _validate(path: str, names: list[str], offsets: np.ndarray,
              cols: list[np.ndarray], rows: np.ndarray | None) -> None:
    """SPEC 1 per symbol; raises for the first bad bar (module doc).
    ``rows``: each grouped row's row in the table file (``_SAME_ROWS``: the
    same row; None: not a table)."""
    ts, o, h, lo, c, v = cols
    holder = CandleColumns(keys=None, ts_ms=ts, open=o, high=h, low=lo, close=c,
                           volume=v)
    ts_ok = _ts_increasing(ts, offsets) and _ts_in_range(ts)
    try:
        _bad_series(holder, offsets, names, "symbol", ts_ok=ts_ok, raise_first=True)
    except InvalidDataset as exc:  # reworded: rules' message quotes values
        raise _bar_error(path, names, offsets, rows, exc.key, exc.index,
                         exc.rule) from None
    if v.size and not (v.min() >= 0 and v.max() < np.inf):  # NaN fails both
        r = int(np.flatnonzero(~((v >= 0) & (v < np.inf)))[0])
        s = int(np.searchsorted(offsets, r, side="right")) - 1
        raise _bar_error(path, names, offsets, rows, names[s],
                         r - int(offsets[s]), "finite_nonnegative_volume")


def _bar_error(path: str, names: list[str], offsets: np.ndarray,
               rows: np.ndarray | None, symbol: str, index: int,
               rule: str) -> InvalidDataset:
    s = names.index(symbol)
    where = f"{path}: symbol {json.dumps(symbol)}, bar {index}"
    if rows is not None:  # a table: also its row in the file (0 = first data row)
        r = int(offsets[s]) + index
        where += f" (file row {r if rows is _SAME_ROWS else int(rows[r])})"
    return InvalidDataset(f"{where}: {_RULE_TEXT[rule]} (rule {rule})",
                          key=symbol, index=index, rule=rule)
