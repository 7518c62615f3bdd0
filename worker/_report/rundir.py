"""The run directory of SPEC 8 (docs/run-directory.md), shared by the batch
CLI and the daemon's checkpointed requests: opened (with its journal) before
a run, finished (results, report) after it."""

from __future__ import annotations

import datetime as _dt
import os
import shutil
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from .._core.dataset import Dataset
from .._core.layouts import TRADES_METRIC
from .._core.optimize import Study, feasible_mask, rank_order, simulate_positions
from .._errors import InvalidParams
from .._run.journal import Journal, fingerprint
from .report import results_table, write_atomic, write_report
from .robust import result_ranks, robust_columns

_ENCODER = msgspec.json.Encoder()


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _write_json(path: Path, value: Any) -> None:
    write_atomic(path, msgspec.json.format(_ENCODER.encode(value)) + b"\n")


# What a finished run adds to its directory. A run being (re)started or
# resumed is not finished: these go, so a directory never mixes one run's
# journal with another run's results (analyze refuses it until the end).
_END_OF_RUN = ("result.json", "run.json", "best_trades.json", "results.parquet",
               "results.csv", "summary.md", "folds.csv", "fold_points.parquet")


def _clear_end_of_run(run_dir: Path) -> None:
    for name in _END_OF_RUN:
        (run_dir / name).unlink(missing_ok=True)
    shutil.rmtree(run_dir / "plots", ignore_errors=True)


# Request fields that say where the data or the run lives, or how it is
# reported: the dataset's content is fingerprinted instead, so reloading the
# same data under another id (or path) still resumes.
_NOT_FINGERPRINTED = ("dataset_id", "calls", "candles_by_call_id", "candles_columnar",
                      "calls_path", "candles_path", "progress_token", "run_id",
                      "checkpoint_dir", "restart")


def checkpoint_request(params: Any) -> dict:
    """What a daemon request computes, for its run's fingerprint."""
    request = msgspec.to_builtins(params)
    return {k: v for k, v in request.items() if k not in _NOT_FINGERPRINTED}


def check_run_args(p: Any) -> None:
    """A checkpointed request's ``run_id`` and ``checkpoint_dir``: both or
    neither, the directory absolute."""
    if (p.run_id is None) != (p.checkpoint_dir is None):
        missing = "checkpoint_dir" if p.checkpoint_dir is None else "run_id"
        raise InvalidParams("run_id and checkpoint_dir go together (a checkpointed run)",
                            path=f"$.{missing}")
    if p.checkpoint_dir is not None and not os.path.isabs(p.checkpoint_dir):
        # Relative to what? The daemon's working directory is not the client's.
        raise InvalidParams(f"must be an absolute path, got {p.checkpoint_dir!r:.200}",
                            path="$.checkpoint_dir")


def open_run(run_dir: Path, ds: Dataset, request: Any, *, restart: bool = False,
             path: str = "$.checkpoint_dir") -> Journal:
    """Create or resume ``run_dir``: its journal (refusing a different run
    unless ``restart``) and the request that makes it."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidParams(f"cannot create run directory {run_dir}: {exc.strerror}",
                            path=path) from None
    journal = Journal.open(run_dir / "journal.jsonl", fingerprint(ds, request), restart=restart)
    _clear_end_of_run(run_dir)
    _write_json(run_dir / "request.json", request)
    return journal


def finish_run(run_dir: Path, ds: Dataset, kind: str, study: Study, result: Any, stats: Any,
               jobs: list, started: str, *, heatmaps: list | None = None) -> list[Path]:
    """Write result.json, run.json, best_trades.json and the report.

    ``jobs`` are the (job, arrays) pairs the run's flow received; the first
    one holds every grid point (per caller for per-caller and grouped runs).
    ``heatmaps``: pairs of dimensions to draw instead of tp x sl per hold
    (the batch config's ``report.heatmaps``), kept in run.json for analyze.
    """
    job, (metrics, exits, skipped) = jobs[0]
    n_points = job.levels.n_points
    # The answer whose points the table lists: a walk-forward run's full-data optimize.
    ranked = result.full if kind == "walk_forward" else result
    fold_points = None
    if kind == "walk_forward":
        from .walkforward import fold_points_table

        # Its one job's groups: every fold's train and test calls, the PBO
        # blocks, then all the calls (worker._core.walkforward).
        fold_points = fold_points_table(study, job.levels, metrics, result.folds)
        metrics, exits, skipped = (a[-n_points:] for a in (metrics, exits, skipped))
    callers = (None if job.group_codes is None or kind == "walk_forward"
               else [ds.caller_names[c] for c in job.group_codes.tolist()])
    feasible, rank = _feasible_and_rank(study, metrics, n_points)
    if kind in ("optimize", "walk_forward"):
        # rank_by (plateau, maximin) ranks as the answer does.
        rank = result_ranks(ranked, rank)
    table = results_table(mode=study.mode, params=job.levels.params, metrics=metrics,
                          exits=exits, skipped=skipped, feasible=feasible, rank=rank,
                          failed=_failed_rows(study, metrics), callers=callers,
                          grid=study.grid,
                          extra=robust_columns(ranked, n_points)
                          if kind in ("optimize", "walk_forward") else None)
    trades = _best_trades(ds, kind, study, ranked)
    meta = {"kind": kind, "mode": study.mode, "objective": study.objective,
            "minimize": study.minimize, "initial_capital": study.config.initial_capital,
            "params_evaluated": n_points, "fingerprint": stats.fingerprint,
            "rank_by": study.rank_by,
            "started": started, "finished": now(),
            # An incomplete run (the batch CLI isolates failed chunks): its
            # best is of the evaluated points only; summary.md warns first.
            "incomplete": bool(stats.failed), "chunks_failed": len(stats.failed),
            "chunks_total": stats.chunks_total, "failed_chunks": stats.failed,
            "dropped": {"count": ds.dropped_count, "keys": list(ds.dropped_keys[:20])}}
    if heatmaps is not None:
        meta["heatmaps"] = [list(pair) for pair in heatmaps]
    _write_json(run_dir / "result.json", result)
    _write_json(run_dir / "run.json", meta)
    if fold_points is not None:
        # Per fold and grid point, what overfit.png draws (not in result.json).
        import io

        import pyarrow.parquet as pq

        buf = io.BytesIO()
        pq.write_table(fold_points, buf)
        write_atomic(run_dir / "fold_points.parquet", buf.getvalue())
    if trades is not None:
        _write_json(run_dir / "best_trades.json", trades)
    else:
        (run_dir / "best_trades.json").unlink(missing_ok=True)
    return write_report(run_dir, table=table, meta=meta, result=result, best_trades=trades)


def _failed_rows(study: Study, metrics: np.ndarray) -> np.ndarray:
    """Rows of failed chunks: NaN metrics (an evaluated row always has a
    trade count)."""
    return np.isnan(metrics[:, study.column(TRADES_METRIC[study.mode])])


def _feasible_and_rank(study: Study, metrics: np.ndarray, n_points: int):
    """Feasibility and 1-based rank of every row, ranked within its caller."""
    feasible = feasible_mask(study, metrics)
    rank = np.empty(metrics.shape[0], np.int64)
    column = metrics[:, study.column(study.objective)]
    for start in range(0, metrics.shape[0], n_points):
        rows = slice(start, start + n_points)
        order = rank_order(column[rows], feasible[rows], study.minimize)
        rank[start + order] = np.arange(1, order.size + 1)
    return feasible, rank


def _best_trades(ds: Dataset, kind: str, study: Study, result: Any):
    if kind in ("optimize", "walk_forward") and result.best_params is not None:
        return simulate_positions(ds, result.best_params, study.config, study.mode,
                                  study.positions).completed_trades
    if kind == "grouped" and result.grouped_result is not None:
        return result.grouped_result.completed_trades
    return None
