"""A walk_forward run's folds plan for ``--dry-run``: how many folds, their
windows, how many calls each trains and tests on (after the purge), the
embargo, PBO's splits and the work of the run's one grid job.

The windows and masks come from the engine's own functions
(``worker._core.folds``) with the same inputs as ``walk_forward_flow``, and
the work from the job that flow yields, so the plan is the run's.
"""

from __future__ import annotations

import datetime as _dt
import math
from typing import Any

from .._core.dataset import Dataset
from .._core.folds import embargo_ms, fold_masks, fold_windows
from .._core.walkforward import _default_embargo

MAX_LISTED = 4      # folds listed one per line: the first few and the last


def _when(ms: int) -> str:
    t = _dt.datetime.fromtimestamp(ms / 1000, _dt.timezone.utc)
    return t.strftime("%Y-%m-%d %H:%M")


def _windows(windows: list) -> str:
    return " + ".join(f"{_when(a)} .. {_when(b)}" for a, b in windows)


def _span(values: list[int]) -> str:
    lo, hi = min(values), max(values)
    return f"{lo:,}" if lo == hi else f"{lo:,}-{hi:,}"


def folds_plan(ds: Dataset, cfg: Any, study: Any, job: Any) -> tuple[list[str], int]:
    """(lines to print, call evaluations per grid point of the run's job)."""
    f = cfg.folds
    pos = study.positions
    ts = ds.call_ts_ms[pos]
    t0, t1 = int(ts.min()), int(ts.max()) + 1
    windows = fold_windows(t0, t1, f.scheme, f.train_days, f.test_days, f.step_days,
                           f.n_groups, f.n_test_groups)
    default = _default_embargo(ds, study)
    embargo = embargo_ms(f.embargo_hrs, default)
    masks = [fold_masks(ts, tr, te, embargo, f.scheme == "cpcv") for tr, te in windows]
    if f.scheme == "cpcv":
        shape = (f"{f.n_groups or 6} groups, {f.n_test_groups or 2} of them the test set "
                 "of each fold")
    else:
        step = f.step_days if f.step_days is not None else f.test_days
        shape = f"train {f.train_days:g} d, test {f.test_days:g} d, step {step:g} d"
    given = "given" if f.embargo_hrs is not None else "default: longest hold + wait + delay"
    lines = [f"folds: {f.scheme}, {len(windows):,} folds ({shape}); embargo "
             f"{embargo / 3_600_000:g} h ({given}); calls from {_when(t0)} to {_when(t1)}"]
    shown = (list(range(len(windows))) if len(windows) <= MAX_LISTED + 1
             else [*range(MAX_LISTED), len(windows) - 1])
    for k in shown:
        if k == shown[-1] and k != len(shown) - 1:
            lines.append("  ...")
        (tr, te), (train, test, purged) = windows[k], masks[k]
        lines.append(f"  fold {k}: train {_windows(tr)} ({int(train.sum()):,} calls, "
                     f"{int(purged.sum()):,} purged); test {_windows(te)} "
                     f"({int(test.sum()):,} calls)")
    trains = [int(m[0].sum()) for m in masks]
    tests = [int(m[1].sum()) for m in masks]
    empty = sum(1 for a, b in zip(trains, tests) if a == 0 or b == 0)
    lines.append(f"  calls per fold: train {_span(trains)} (after purging "
                 f"{_span([int(m[2].sum()) for m in masks])}), test {_span(tests)}"
                 + (f"; {empty:,} fold(s) with no train or test calls (left out)"
                    if empty else ""))
    starts = [te[0] for _, te in windows]
    overlap = any(a[1] > b[0] for a, b in zip(starts, starts[1:]))
    lines.append("  stitched out-of-sample run: " + (
        "none (cpcv folds)" if f.scheme == "cpcv" else
        "none (test windows overlap: step_days < test_days)" if overlap else
        "yes, every test call with its own fold's choice"))
    if cfg.pbo is not None:
        b = cfg.pbo.blocks
        lines.append(f"pbo: {b} blocks, C({b}, {b // 2}) = {math.comb(b, b // 2):,} "
                     "in-sample / out-of-sample splits")
    if study.plateau is not None or study.rank_by != "objective":
        lines.append(f"each fold's choice: ranked by {study.rank_by}"
                     + (f" (plateau radius {study.plateau.radius}, {study.plateau.stat})"
                        if study.plateau is not None else ""))
    n_blocks = 0 if cfg.pbo is None else cfg.pbo.blocks
    lines.append(f"work: one grid job of {job.n_groups:,} call sets ({len(windows):,} folds x "
                 f"train + test, {n_blocks} pbo blocks, the full data), the candles scanned "
                 "once")
    return lines, sum(int(g.size) for g in job.groups)
