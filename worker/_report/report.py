"""The run directory's report (docs/run-directory.md): ``results.parquet`` /
``results.csv`` (one row per caller group and grid point), ``summary.md``
(``worker._report.summary``) and plots (``worker._report.plots``).

Everything in ``summary.md`` is computed from the results table, ``run.json``
(``meta``) and ``result.json`` (``result``) alone, so ``optimizer-worker
analyze`` can rewrite it byte for byte from the files of a finished run.
Nothing here prints: the daemon's stdout is its protocol channel.
"""

from __future__ import annotations

import io
import os
import threading
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from protocol import EXTENDED_DEFAULTS, ParamGrid, Params

from .._core.layouts import EXIT_REASONS, N_EXITS, N_METRICS, N_SKIPS, SKIP_REASONS
from .summary import pearson, point_means, summary_markdown, table_columns  # noqa: F401
from .text import (  # noqa: F401  (re-exported: _plots, tests)
    CORR_METRICS,
    COUNTS,
    DIMENSIONS,
    EXTENDED,
    FLAGS,
    KEY_METRICS,
    METRICS,
    MONEY,
    OFF_WHEN_NULL,
    PARAMS,
    PERCENT,
    SIGNED,
    TOP_N,
    exit_column,
    fmt_dim,
    fmt_metric,
    fmt_param,
    fmt_params,
    md_cell,
    md_table,
    param_columns,
    param_value,
    skip_column,
    skip_reasons,
    table_column_names,
)

# --------------------------------------------------------------- results table

def results_table(*, mode: str, params: list[Params], metrics: np.ndarray, exits: np.ndarray,
                  skipped: np.ndarray, feasible: np.ndarray, rank: np.ndarray,
                  failed: np.ndarray, callers: list[str] | None = None,
                  grid: ParamGrid | None = None,
                  extra: dict[str, pa.Array] | None = None) -> pa.Table:
    """One row per (caller group ``g``, grid point ``p``), row ``g * P + p``.

    Parameter columns: tp_mult, sl_mult, max_hold_hrs, then each SPEC 11
    dimension that ``grid`` sets or some point varies (``extended_dims``),
    holding the point's value (its default when the point leaves it out;
    null for a trail or breakeven switched off).

    A failed row (its chunk failed) has null metrics and counts, and is never
    feasible, whatever ``feasible`` says: its figures are unknown.

    ``extra``: SPEC 12's per-point columns (``robust.robust_columns``:
    ``plateau``, ``lane_<name>``, ``worst_lane``, ``maximin``), after ``failed``.
    """
    n_points = len(params)
    n_rows = n_points * (1 if callers is None else len(callers))
    failed = np.asarray(failed, bool).reshape(n_rows)
    metrics = np.asarray(metrics, np.float64).reshape(n_rows, N_METRICS)
    exits = np.asarray(exits).reshape(n_rows, N_EXITS)
    skipped = np.asarray(skipped).reshape(n_rows, N_SKIPS)
    reps = n_rows // n_points if n_points else 0
    cols: dict[str, pa.Array] = {}
    if callers is not None:
        cols["caller"] = pa.array([c for c in callers for _ in range(n_points)], pa.string())
    cols["index"] = pa.array(np.tile(np.arange(n_points, dtype=np.int64), reps))
    for name in (*PARAMS, *extended_dims(params, grid)):
        cols[name] = _param_column(name, params, reps)
    for j, name in enumerate(METRICS[mode]):
        cols[name] = (_ints(metrics[:, j], failed) if name in COUNTS
                      else _floats(metrics[:, j], failed))
    for j, reason in enumerate(EXIT_REASONS):
        cols[exit_column(reason)] = _ints(exits[:, j], failed)
    for reason in skip_reasons(mode):
        cols[skip_column(reason)] = _ints(skipped[:, SKIP_REASONS.index(reason)], failed)
    cols["feasible"] = pa.array(np.asarray(feasible, bool).reshape(n_rows) & ~failed)
    cols["rank"] = pa.array(np.asarray(rank, np.int64).reshape(n_rows))
    cols["failed"] = pa.array(failed)
    cols.update(extra or {})
    return pa.table(cols)


def extended_dims(params: list[Params], grid: ParamGrid | None) -> tuple[str, ...]:
    """The SPEC 11 dimensions a run has: those its grid gives (even at one
    value, so a run says what it held fixed) and any a point sets."""
    return tuple(name for name in EXTENDED
                 if (grid is not None and getattr(grid, name) is not None)
                 or any(getattr(p, name) != EXTENDED_DEFAULTS[name] for p in params))


def _param_column(name: str, params: list[Params], reps: int) -> pa.Array:
    """A candle count stays an integer; None (off, or the config's hold) is null."""
    values = [getattr(p, name) for p in params]
    if name == "entry_delay_candles":
        return pa.array(np.tile(np.array(values, np.int64), reps), pa.int64())
    values = np.tile(np.array(values, np.float64), reps)  # None -> NaN
    return _floats(values, np.zeros(values.size, bool))


def _floats(values: np.ndarray, null: np.ndarray) -> pa.Array:
    """NaN (profit_factor without a losing trade) becomes null, as in result.json."""
    values = np.asarray(values, np.float64)
    return pa.array(values, pa.float64(), mask=null | np.isnan(values))


def _ints(values: np.ndarray, null: np.ndarray) -> pa.Array:
    values = np.asarray(values, np.float64)
    null = null | ~np.isfinite(values)
    # Zero the null slots first: casting NaN to int64 is undefined (and warns).
    return pa.array(np.where(null, 0, values).astype(np.int64), pa.int64(), mask=null)


# --------------------------------------------------------------------- writing

def write_atomic(path: Path, data: bytes) -> Path:
    """Write a sibling temporary file, then rename: a reader never sees half a
    file. ``open`` (not mkstemp) so the file gets the usual umask permissions;
    the name is unique per process and thread."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_report(run_dir: Path, *, table: pa.Table, meta: dict, result: Any,
                 best_trades: list | None) -> list[Path]:
    """results.parquet, results.csv, summary.md and plots; the paths written."""
    run_dir = Path(run_dir)
    buf = io.BytesIO()
    pq.write_table(table, buf)
    paths = [write_atomic(run_dir / "results.parquet", buf.getvalue())]
    return paths + write_derived(run_dir, table=table, meta=meta, result=result,
                                 best_trades=best_trades)


def write_derived(run_dir: Path, *, table: pa.Table, meta: dict, result: Any,
                  best_trades: list | None) -> list[Path]:
    """Everything computed from the table: results.csv, summary.md, plots."""
    from . import plots as _plots  # matplotlib is loaded only when a report is written

    run_dir = Path(run_dir)
    result = _builtins(result) or {}
    buf = io.BytesIO()
    pacsv.write_csv(table, buf)
    paths = [write_atomic(run_dir / "results.csv", buf.getvalue()),
             write_atomic(run_dir / "summary.md", summary_markdown(table, meta, result).encode())]
    walk_forward = meta.get("kind") == "walk_forward"
    # A walk-forward run's table, heatmaps and equity curve are its full-data optimize's.
    paths += _plots.write_plots(run_dir, table=table, meta=meta,
                                result=(result.get("full") or {}) if walk_forward else result,
                                best_trades=_builtins(best_trades))
    if walk_forward:
        from .walkforward import write_walk_forward

        paths += write_walk_forward(run_dir, meta=meta, result=result,
                                    best_trades=_builtins(best_trades))
    return paths


def _builtins(value: Any) -> Any:
    """Structs (in the worker) and decoded JSON (in ``analyze``) alike."""
    return None if value is None else msgspec.to_builtins(value)

