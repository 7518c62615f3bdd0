"""SPEC 12's folds on a strategy search (SPEC 13: ``optimizeStrategy`` with
``folds``): windows over the bars' time (``T0`` the earliest base bar of the
selected symbols, ``T1`` the latest + 1 ms, the same for every point), a
signal's trade assigned by its call time, purge and embargo as for calls.

One ``GridJob`` again: its groups are, per fold, every signal set's train
trades then every set's test trades, and last the sets themselves (the
full-data search). A fold's points are all (set, exit) points, in grid
order, so its choice, ranks and Spearman are ``walkforward``'s.

Decisions (SPEC is silent): ``n_train``, ``n_test`` and ``n_purged`` count
the trades of every signal set together; a fold chooses nothing when no set
has a train trade or none a test trade; the default embargo uses the exit
grid's longest hold and delay with the bars' base interval (no limit
entries); no ``pbo`` (``optimizeStrategy`` does not take it).
"""

from __future__ import annotations

from typing import Any

import msgspec
import numpy as np

from protocol import FoldsSpec, StrategyFoldResult

from .._errors import ResourceLimit
from . import validate as v
from .folds import default_embargo_ms, embargo_ms, fold_masks, fold_windows
from .layouts import BAD_STOP, CALL_ENTRY_PX, REC_STATUS
from .metrics import to_metrics
from .optimize import Study, best_of
from .rengine import run_point
from .strategy import StrategyPlan
from .walkforward import (
    MAX_FOLDS,
    _aggregate,
    fold_result,
    stitched_account,
    stitched_allowed,
)


def fold_plan(plan: StrategyPlan, folds: Any):
    """(spec, windows, per-fold (train, test, purged) masks over the trades)."""
    spec = v.convert(folds, FoldsSpec, "$.folds")
    windows = fold_windows(plan.t0_ms, plan.t1_ms, spec.scheme, spec.train_days,
                           spec.test_days, spec.step_days, spec.n_groups, spec.n_test_groups)
    if len(windows) > MAX_FOLDS:
        raise ResourceLimit(f"{len(windows):,} folds, over the limit of {MAX_FOLDS:,}",
                            data={"path": "$.folds", "folds": len(windows), "limit": MAX_FOLDS})
    exits = plan.levels.params
    default = default_embargo_ms(max(p["max_hold_hrs"] for p in exits), 0.0,
                                 max(p.get("entry_delay_candles", 0) for p in exits),
                                 plan.base_interval_ms)
    embargo = embargo_ms(spec.embargo_hrs, default)
    ts = plan.dataset.call_ts_ms
    masks = [fold_masks(ts, train_w, test_w, embargo, spec.scheme == "cpcv")
             for train_w, test_w in windows]
    return spec, windows, masks


def fold_groups(plan: StrategyPlan, masks) -> tuple[np.ndarray, ...]:
    """Per fold, each set's train trades then each set's test trades; then
    the sets (the job's last ``len(plan.sets)`` groups: the full data)."""
    out = []
    for train, test, _ in masks:
        out += [pos[train[pos]] for pos in plan.set_positions]
        out += [pos[test[pos]] for pos in plan.set_positions]
    return (*out, *plan.set_positions)


def folds_result(plan: StrategyPlan, study: Study, spec, windows, masks, arrays,
                 robust_of) -> tuple[list[StrategyFoldResult], Any, Any]:
    """(folds, aggregate, stitched) from the job's arrays; ``robust_of(k)``:
    fold ``k``'s train rows' ``Robustness``."""
    n = plan.n_points
    rows = [slice(g * n, (g + 1) * n) for g in range(2 * len(windows))]
    out = []
    for k, ((train_w, test_w), (train, test, purged)) in enumerate(zip(windows, masks)):
        fold = fold_result(
            study, [a[rows[2 * k]] for a in arrays], [a[rows[2 * k + 1]] for a in arrays],
            int(train.sum()), int(test.sum()), robust_of(k), params_of=plan.point_params,
            metrics_of=lambda row: to_metrics(study.mode, *row, strategy=True),
            cls=StrategyFoldResult)
        out.append(msgspec.structs.replace(
            fold, index=k, train_windows=[list(w) for w in train_w],
            test_windows=[list(w) for w in test_w], n_purged=int(purged.sum())))
    aggregate = _aggregate(study, out, windows)
    chosen = [None if f.chosen_params is None else
              best_of(study, arrays[0][rows[2 * k]],
                      robust_of(k).ranking_values(study, arrays[0][rows[2 * k]]))[2]
              for k, f in enumerate(out)]
    return out, aggregate, _stitched(plan, spec, windows, masks, chosen)


def _stitched(plan: StrategyPlan, spec, windows, masks, chosen: list[int | None]):
    """Every fold's test trades of its chosen (set, exit) point, one account
    (SPEC 12), sized by each trade's own risk and signed by its direction."""
    if not stitched_allowed(spec, windows):
        return None
    n_exit = plan.levels.n_points
    parts = []
    for k, best in enumerate(chosen):
        if best is None:
            continue
        s, p = divmod(best, n_exit)
        test = masks[k][1]
        positions = plan.set_positions[s][test[plan.set_positions[s]]]
        sweep = plan.levels.prepare(plan.dataset, positions)
        rec_rows = np.arange(sweep.positions.size)
        _, _, _, rec, calls = run_point(sweep, p, rec_rows, plan.config, "per_trade")
        c = int(plan.levels.points[p, -1])
        entry = calls[CALL_ENTRY_PX]
        with np.errstate(divide="ignore", invalid="ignore"):
            risk = np.where(rec[:, REC_STATUS] == BAD_STOP, np.nan, sweep.risk[c] / entry)
        risk = np.where(entry > 0, risk, 1.0)   # no entry: never sized
        parts.append((sweep.positions, calls, rec, risk, sweep.dirs))
    if not parts:
        return None
    return stitched_account(plan.config, parts, strategy=True)
