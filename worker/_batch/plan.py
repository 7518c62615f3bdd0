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

import msgspec
import numpy as np

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



# --------------------------------------------------------------- run: strategy (SPEC 13)

def _values(values: list) -> str:
    return "[" + ", ".join("null" if v is None else f"{v:g}" if isinstance(v, float) else str(v)
                           for v in values) + "]"


def _interval(ms: int) -> str:
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1_000)):
        if ms and ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms} ms"


def strategy_plan(cfg: Any, bars: Any, plan: Any, signal_seconds: float) -> list[str]:
    """``--dry-run`` of a ``run: strategy`` config: the bars, the (timeframe,
    params) signal sets (evaluated and rejected), the exit grid, the total
    runs and an estimate. ``plan``: the engine's ``plan_strategy`` (the
    signals are made already: ``signal_seconds`` with the bars' load)."""
    from .._core.tunables import EVALS_PER_SECOND
    from .._core.validate import stress as stress_lanes

    symbols = list(bars.symbols)
    selected = list(cfg.symbols) if cfg.symbols else symbols
    offsets = np.asarray(bars.offsets)
    n_bars = int(offsets[-1] - offsets[0]) if offsets.size else 0
    intervals = sorted({int(x) for x in np.asarray(bars.base_interval_ms).tolist()})
    shown = ", ".join(selected[:8]) + (f", ... ({len(selected) - 8} more)" if len(selected) > 8 else "")
    lines = [f"config ok: run strategy, strategy {cfg.strategy}, mode {cfg.mode}, "
             f"output {cfg.output}",
             f"bars: {len(symbols):,} symbols, {n_bars:,} bars, base interval "
             f"{' / '.join(_interval(ms) for ms in intervals) or '-'}; trading {len(selected):,} "
             f"symbol(s): {shown}"]
    sgrid = cfg.strategy_grid or {}
    per_tf = math.prod(len(v) for v in sgrid.values())
    evaluated, rejected = signal_set_counts(plan)
    failed = list(getattr(plan, "failed", None) or [])
    ds = plan.dataset
    lines.append(f"signal sets: {evaluated:,} (timeframe, params) sets evaluated, {rejected:,} "
                 f"rejected ({len(cfg.timeframes)} timeframes {', '.join(cfg.timeframes)} x "
                 f"{per_tf:,} strategy parameter sets"
                 + "".join(f"; {k} {_values(v)}" for k, v in sgrid.items())
                 + f"): {ds.n_calls:,} signals, made in {signal_seconds:.1f} s")
    if failed:
        first = failed[0]
        lines.append(f"failed signal sets: {len(failed):,} (left out; first: "
                     f"{getattr(first, 'symbol', '?')}: {getattr(first, 'error', '?')})")
    exits = cfg.exit_grid()
    exit_points = math.prod(len(v) for v in exits.values())
    lines.append("exit grid: " + (" x ".join(f"{len(v)} {k}" for k, v in exits.items())
                                  or "the defaults") + f" = {exit_points:,} points"
                 + "".join(f"; {k} {_values(v)}" for k, v in exits.items()))
    n_points = int(plan.n_points)
    evals = ds.n_calls * exit_points        # each signal belongs to one set
    extra = ""
    if cfg.per_symbol:
        evals *= 2
        extra += f", then each of the {len(selected):,} symbols alone (per_symbol)"
    lanes = stress_lanes(msgspec.to_builtins(cfg.stress)) if cfg.stress is not None else None
    if lanes:
        reruns = sum(1 for lane in lanes if not _is_baseline(lane))
        evals *= 1 + reruns
        extra += f"; stress: {len(lanes)} lanes, the grid {reruns} more time(s)"
    workers = max(1, cfg.workers)
    lines.append(f"total runs: {evaluated:,} signal sets x {exit_points:,} exit points = "
                 f"{n_points:,} grid points, each a portfolio of every symbol's signals"
                 f"{extra}; {evals:,} signal x exit evaluations")
    lines.append(f"estimated time: about {max(evals / (EVALS_PER_SECOND * workers), 0.1):.1f} s "
                 f"of grid work on {workers} worker(s), plus the bar scan")
    return lines


def signal_set_counts(plan: Any) -> tuple[int, int]:
    """(evaluated, rejected) (timeframe, params) signal sets of a plan."""
    evaluated = getattr(plan, "signal_sets", None)
    if evaluated is None:
        evaluated = len(plan.sets)
    return int(evaluated), int(plan.rejected)


def _is_baseline(lane: Any) -> bool:
    from .._core.lanes import lane_is_baseline

    return lane_is_baseline(lane)
