"""Checks on a data file before it is read: that it is a regular file (a
FIFO would block the opener), and what its Parquet metadata says (rows,
bytes once loaded) so a budget can refuse it unread. No file content is
ever quoted."""

from __future__ import annotations

import os
import stat

import pyarrow as pa
import pyarrow.parquet as pq

from .._errors import InvalidParams

__all__ = ["check_regular_file", "estimated_bytes", "parquet_rows"]


def check_regular_file(path: object, param: str) -> None:
    """``path`` names a regular file (after links), checked by ``stat``
    before anything opens it: opening a FIFO blocks until a writer comes."""
    if not isinstance(path, str) or not path:
        raise InvalidParams("must be a file path", path=param)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise InvalidParams(f"{path}: no such file", path=param) from None
    except (OSError, ValueError) as exc:
        raise InvalidParams(f"{path}: cannot read: "
                            f"{getattr(exc, 'strerror', None) or 'invalid path'}",
                            path=param) from None
    if not stat.S_ISREG(mode):
        kind = ("a directory" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode)
                else "a socket" if stat.S_ISSOCK(mode) else "a device")
        raise InvalidParams(f"{path}: is {kind}, not a regular file", path=param)


def parquet_rows(path: str) -> int | None:
    """Rows of a Parquet file from its metadata (None: not Parquet, or
    unreadable; the loader reports that with its own message). Opens the
    file: run it off the event loop, on a path that passed
    ``check_regular_file``."""
    if not str(path).endswith((".parquet", ".pq")) or not os.path.isfile(path):
        return None
    try:
        return pq.ParquetFile(path).metadata.num_rows
    except (OSError, pa.ArrowException):
        return None


def estimated_bytes(candles_path: str) -> int:
    """Bytes a candles file will take once loaded, from Parquet metadata
    (0 when unknown, e.g. CSV: then the built dataset is checked instead)."""
    return (parquet_rows(candles_path) or 0) * 6 * 8  # ts + open, high, low, close, volume
