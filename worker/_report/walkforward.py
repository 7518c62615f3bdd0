"""A walk-forward run's own files (SPEC 12, docs/run-directory.md):

- ``folds.csv``: one row per fold, from ``result.json`` alone (``folds_table``);
- ``fold_points.parquet``: every grid point's train and test objective in
  every fold, written at the end of the run from its grid job's rows
  (``fold_points_table``): what ``plots/overfit.png`` draws, which
  ``result.json`` does not hold;
- ``plots/stitched_equity.png`` and ``plots/overfit.png`` (``wf_plots``).

``write_walk_forward`` writes folds.csv and the plots from the run's files,
so ``analyze`` redraws them.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from .._core.optimize import feasible_mask
from .report import write_atomic
from .text import DIMENSIONS, iso, param_value

FOLD_POINTS = "fold_points.parquet"


def fold_points_table(study: Any, levels: Any, metrics: np.ndarray, folds: list) -> pa.Table:
    """Rows ``(fold, index)`` of every fold that chose a point: the point's
    train and test objective, whether it is feasible on the train calls, and
    whether it is the fold's choice. ``metrics``: the walk-forward job's rows,
    fold ``k``'s train group ``2k``, its test group ``2k + 1``."""
    n = levels.n_points
    col = study.column(study.objective)
    where = {p: i for i, p in enumerate(levels.params)}
    parts: dict[str, list] = {k: [] for k in ("fold", "index", "train_objective",
                                              "test_objective", "train_feasible", "chosen")}
    for k, fold in enumerate(folds):
        if fold.chosen_params is None:
            continue
        train = metrics[2 * k * n:(2 * k + 1) * n]
        test = metrics[(2 * k + 1) * n:(2 * k + 2) * n]
        chosen = np.zeros(n, bool)
        chosen[where[fold.chosen_params]] = True
        parts["fold"].append(np.full(n, k, np.int64))
        parts["index"].append(np.arange(n, dtype=np.int64))
        parts["train_objective"].append(train[:, col])
        parts["test_objective"].append(test[:, col])
        parts["train_feasible"].append(feasible_mask(study, train))
        parts["chosen"].append(chosen)
    types = {"fold": np.int64, "index": np.int64, "train_objective": np.float64,
             "test_objective": np.float64, "train_feasible": bool, "chosen": bool}
    cols = {}
    for name, chunks in parts.items():
        values = np.concatenate(chunks) if chunks else np.zeros(0, types[name])
        mask = np.isnan(values) if values.dtype == np.float64 else None
        cols[name] = pa.array(values, mask=mask)
    return pa.table(cols)


def windows_text(windows: list) -> str:
    return "; ".join(f"{iso(a)}/{iso(b)}" for a, b in windows)


def fold_dimensions(result: dict) -> list[str]:
    """tp_mult, sl_mult, max_hold_hrs and every SPEC 11 dimension some
    fold's choice sets (answers omit a parameter at its default)."""
    chosen = [f["chosen_params"] for f in result.get("folds") or [] if f.get("chosen_params")]
    return [d for d in DIMENSIONS
            if d in ("tp_mult", "sl_mult", "max_hold_hrs") or any(d in p for p in chosen)]


def folds_table(result: dict) -> pa.Table:
    """folds.csv: one row per fold (SPEC 12's FoldResult, flat)."""
    folds = result.get("folds") or []
    dims = fold_dimensions(result)

    def metric(f: dict, side: str, name: str):
        m = f.get(f"{side}_metrics")
        return None if m is None else m.get(name)

    objective = result.get("objective")
    cols: dict[str, pa.Array] = {
        "fold": pa.array([f["index"] for f in folds], pa.int64()),
        "train_start_ms": pa.array([f["train_windows"][0][0] for f in folds], pa.int64()),
        "train_end_ms": pa.array([f["train_windows"][-1][1] for f in folds], pa.int64()),
        "test_start_ms": pa.array([f["test_windows"][0][0] for f in folds], pa.int64()),
        "test_end_ms": pa.array([f["test_windows"][-1][1] for f in folds], pa.int64()),
        "train_windows": pa.array([windows_text(f["train_windows"]) for f in folds]),
        "test_windows": pa.array([windows_text(f["test_windows"]) for f in folds]),
    }
    for name in ("n_train", "n_test", "n_purged"):
        cols[name] = pa.array([f[name] for f in folds], pa.int64())
    for d in dims:
        values = [None if f.get("chosen_params") is None else param_value(f["chosen_params"], d)
                  for f in folds]
        cols[d] = pa.array(values, pa.int64() if d == "entry_delay_candles" else pa.float64())
    for side in ("train", "test"):
        cols[f"{side}_objective"] = pa.array([metric(f, side, objective) for f in folds],
                                             pa.float64())
        cols[f"{side}_total_return"] = pa.array([metric(f, side, "total_return") for f in folds],
                                                pa.float64())
    cols["test_rank_pct"] = pa.array([f.get("test_rank_pct") for f in folds], pa.float64())
    cols["spearman"] = pa.array([f.get("spearman") for f in folds], pa.float64())
    return pa.table(cols)


def read_fold_points(run_dir: Path) -> pa.Table | None:
    path = Path(run_dir) / FOLD_POINTS
    if not path.is_file():
        return None
    try:
        return pq.read_table(path)
    except (OSError, pa.ArrowException):
        return None


def write_walk_forward(run_dir: Path, *, meta: dict, result: dict,
                       best_trades: list | None) -> list[Path]:
    """folds.csv, plots/stitched_equity.png and plots/overfit.png (each plot
    only when there is something to draw; a stale one is removed)."""
    from .wf_plots import overfit_plot, stitched_equity_plot

    run_dir = Path(run_dir)
    buf = io.BytesIO()
    pacsv.write_csv(folds_table(result), buf)
    paths = [write_atomic(run_dir / "folds.csv", buf.getvalue())]
    plots = run_dir / "plots"
    drawn = [stitched_equity_plot(run_dir, meta=meta, result=result, full_trades=best_trades),
             overfit_plot(run_dir, meta=meta, result=result, points=read_fold_points(run_dir))]
    for name, path in zip(("stitched_equity.png", "overfit.png"), drawn):
        if path is None:
            (plots / name).unlink(missing_ok=True)
        else:
            paths.append(path)
    return paths
