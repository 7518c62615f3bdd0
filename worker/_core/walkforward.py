"""SPEC 12's ``walkForward`` as a flow: folds, the probability of backtest
overfitting and the full-data optimize of the same grid, evaluated as **one**
``GridJob`` whose groups are every fold's train and test calls, every PBO
block and all the calls: the candles are scanned once per request, and each
group is a sweep over the calls it owns (``jobs.GridJob.groups``).

Stress lanes are one more job per lane over every fold's train calls and all
the calls. Then per fold: the train rows choose a point (``optimize.best_of``,
under ``rank_by`` when asked: its plateau or its lanes' maximin on the train
calls), the test rows rank every point; the
aggregates, the stitched out-of-sample run (``stitched_run``) and the PBO
statistics follow (``robust``, ``folds``).
"""

from __future__ import annotations

from typing import Any

import msgspec
import numpy as np

from protocol import (
    FoldAggregate,
    FoldResult,
    FoldsSpec,
    PboResult,
    PboSpec,
    StitchedRun,
    WalkForwardResult,
)

from .._errors import InvalidParams, ResourceLimit
from . import validate as v
from .cscv import pbo
from .dataset import Dataset
from .engine import config_array, grid_levels, max_open, prepare, run_one, single_levels
from .folds import (
    block_edges,
    default_embargo_ms,
    embargo_ms,
    fold_masks,
    fold_windows,
    window_days,
)
from .jobs import Flow, GridJob
from .lanes import Robustness, lane_objectives_flow, robustness
from .layouts import (
    CALL_ALERT_TS,
    ENTERED,
    N_EXITS,
    N_METRICS,
    N_REC_FIELDS,
    N_SKIPS,
    REC_EXIT_PX,
    REC_EXIT_REASON,
    REC_EXIT_TS,
    REC_PNL,
    REC_STATUS,
)
from .metrics import to_metrics
from .optimize import Study, best_of, feasible_mask, make_study, optimize_result
from .robust import fold_aggregates, spearman, test_rank_pct
from .sweeps import GivenExits, capital_run_nb

# A fold is two runs of the grid; more folds than this is a mistake (a tiny
# step_days), not a study.
MAX_FOLDS = 10_000


def walk_forward_flow(ds: Dataset, grid: Any = None, *, folds: Any, pbo_spec: Any = None,
                      top_k: int = 10, include_all: bool = False,
                      **study_args: Any) -> Flow[WalkForwardResult]:
    """SPEC 12: folds, aggregates, stitched run, PBO and the full optimize."""
    study = make_study(ds, grid=grid, **study_args)
    spec = v.convert(folds, FoldsSpec, "$.folds")
    pbo_req = None if pbo_spec is None else v.convert(pbo_spec, PboSpec, "$.pbo")
    levels = grid_levels(study.grid, study.config)
    pos = study.positions
    if pos.size == 0:
        raise InvalidParams("there are no calls to split into folds", path="$.folds")
    ts = ds.call_ts_ms[pos]
    t0, t1 = int(ts.min()), int(ts.max()) + 1
    windows = fold_windows(t0, t1, spec.scheme, spec.train_days, spec.test_days, spec.step_days,
                           spec.n_groups, spec.n_test_groups)
    if len(windows) > MAX_FOLDS:
        raise ResourceLimit(f"{len(windows):,} folds, over the limit of {MAX_FOLDS:,}",
                            data={"path": "$.folds", "folds": len(windows), "limit": MAX_FOLDS})
    embargo = embargo_ms(spec.embargo_hrs, _default_embargo(ds, study))
    sets = [fold_masks(ts, train_w, test_w, embargo, spec.scheme == "cpcv")
            for train_w, test_w in windows]
    groups = [pos[m] for train, test, _ in sets for m in (train, test)]
    blocks = [] if pbo_req is None else _blocks(pos, ts, block_edges(t0, t1, pbo_req.blocks))
    metrics, exits, skipped = yield GridJob(levels, pos, None, study.config, study.mode,
                                            groups=tuple([*groups, *blocks, pos]))
    n = levels.n_points
    rows = [slice(g * n, (g + 1) * n) for g in range(len(groups) + len(blocks) + 1)]
    arrays = (metrics, exits, skipped)
    # Stress lanes: every fold's train calls and all the calls, one job per lane.
    lanes = yield from lane_objectives_flow(
        study, levels, np.concatenate([metrics[r] for r in [*rows[:2 * len(sets):2], rows[-1]]]),
        pos, groups=tuple([*groups[::2], pos]))
    fold_rows = []
    for k, ((train_w, test_w), (train, test, purged)) in enumerate(zip(windows, sets)):
        train_robust = robustness(study, levels, metrics[rows[2 * k]],
                                  None if lanes is None else lanes[:, k * n:(k + 1) * n])
        fold = _fold(study, levels, [a[rows[2 * k]] for a in arrays],
                     [a[rows[2 * k + 1]] for a in arrays], int(train.sum()), int(test.sum()),
                     train_robust)
        fold_rows.append(msgspec.structs.replace(
            fold, index=k, train_windows=[list(w) for w in train_w],
            test_windows=[list(w) for w in test_w], n_purged=int(purged.sum())))
    full_arrays = tuple(a[rows[-1]] for a in arrays)
    full_robust = robustness(study, levels, full_arrays[0],
                             None if lanes is None else lanes[:, -n:])
    full = optimize_result(ds, study, levels, full_arrays, full_robust, top_k, include_all)
    col = study.column("total_return")
    return WalkForwardResult(
        objective=study.objective, minimize=study.minimize, folds=fold_rows,
        aggregate=_aggregate(study, fold_rows, windows),
        stitched=_stitched(ds, study, spec, fold_rows, windows, sets, pos),
        pbo=None if pbo_req is None else PboResult(**pbo(np.stack(
            [metrics[rows[len(groups) + b], col] for b in range(len(blocks))]))),
        full=full)


def _default_embargo(ds: Dataset, study: Study) -> int:
    """SPEC 12: E = int(H h) + int(W min) + (D + 1) I from the grid's largest
    hold, limit-order wait (0 without limit entries) and delay."""
    g = study.grid
    holds = g.max_hold_hrs or [study.config.max_trade_horizon_hrs]
    limit = any(d > 0 for d in (g.entry_dip_pct or [0.0]))
    wait = max(g.entry_max_wait_min or [60.0]) if limit else 0.0
    delay = max(g.entry_delay_candles or [0])
    return default_embargo_ms(max(holds), wait, delay, ds.base_interval_ms)


def _blocks(pos: np.ndarray, ts: np.ndarray, edges: list[int]) -> list[np.ndarray]:
    return [pos[(ts >= a) & (ts < b)] for a, b in zip(edges[:-1], edges[1:])]


def _fold(study: Study, levels, train, test, n_train: int, n_test: int,
          robust: Robustness) -> FoldResult:
    """One fold's result (its windows and index are filled in by the caller);
    ``robust``: the train rows' plateau and lanes, for ``rank_by``."""
    return fold_result(study, train, test, n_train, n_test, robust,
                       params_of=levels.params.__getitem__,
                       metrics_of=lambda row: to_metrics(study.mode, *row))


def fold_result(study: Study, train, test, n_train: int, n_test: int, robust: Robustness, *,
                params_of, metrics_of, cls=FoldResult):
    """A fold's choice on its train rows and how it did on its test rows
    (``params_of(point)``, ``metrics_of((metrics, exits, skipped) row))``:
    the point's params and metrics as the answer shows them)."""
    empty = cls(index=0, train_windows=[], test_windows=[], n_train=n_train,
                n_test=n_test, n_purged=0, chosen_params=None, train_metrics=None,
                test_metrics=None, test_rank_pct=None, spearman=None)
    if n_train == 0 or n_test == 0:
        return empty
    _, feasible, best = best_of(study, train[0], robust.ranking_values(study, train[0]))
    if best is None:
        return empty
    col = study.column(study.objective)
    both = feasible & feasible_mask(study, test[0])
    return msgspec.structs.replace(
        empty, chosen_params=params_of(best),
        train_metrics=metrics_of([a[best] for a in train]),
        test_metrics=metrics_of([a[best] for a in test]),
        test_rank_pct=test_rank_pct(test[0][:, col], best, study.minimize),
        spearman=spearman(train[0][:, col], test[0][:, col], both, study.minimize))


def _aggregate(study: Study, folds: list[FoldResult], windows) -> FoldAggregate:
    def value(m, name):
        x = None if m is None else getattr(m, name)
        return np.nan if x is None else x

    def column(attr, name):
        return np.array([value(getattr(f, attr), name) for f in folds], np.float64)

    return FoldAggregate(**fold_aggregates(
        column("train_metrics", study.objective), column("test_metrics", study.objective),
        column("train_metrics", "total_return"), column("test_metrics", "total_return"),
        np.array([window_days(tw) for tw, _ in windows]),
        np.array([window_days(sw) for _, sw in windows]), study.minimize,
        valid=np.array([f.chosen_params is not None for f in folds], bool)))


def _stitched(ds: Dataset, study: Study, spec: FoldsSpec, folds: list[FoldResult], windows,
              sets, pos: np.ndarray) -> StitchedRun | None:
    """Every test call with its own fold's params, one capital account
    (SPEC 12). Decision: none for cpcv, for overlapping test windows or when
    no fold chose a point."""
    if not stitched_allowed(spec, windows):
        return None
    chosen = [(f.chosen_params, pos[test]) for f, (_, test, _) in zip(folds, sets)
              if f.chosen_params is not None]
    if not chosen:
        return None
    return stitched_run(ds, study, chosen)


def stitched_allowed(spec: FoldsSpec, windows) -> bool:
    """A stitched run needs test windows that follow each other (not cpcv)."""
    starts = [sw[0] for _, sw in windows]
    return not (spec.scheme == "cpcv" or any(a[1] > b[0] for a, b in zip(starts, starts[1:])))


def stitched_run(ds: Dataset, study: Study, chosen) -> StitchedRun:
    """One capital run (SPEC 2) over the calls of every ``(params, positions)``
    in ``chosen`` (time-ordered, disjoint), each call with its own params:
    the exits come from each params' own scan, the account from
    ``capital_run_nb`` with ``GivenExits``."""
    cfg = study.config
    parts = []
    for params, positions in chosen:
        sweep = prepare(ds, single_levels(params, cfg), positions)
        rows = np.arange(sweep.positions.size)
        _, _, _, rec, calls = run_one(sweep, rows, cfg, "per_trade")
        n = sweep.positions.size  # SPEC 2.4 sizes by 1 - sl_mult; calls are long
        parts.append((sweep.positions, calls, rec, np.full(n, 1.0 - params.sl_mult), np.ones(n)))
    return stitched_account(cfg, parts)


def stitched_account(cfg, parts, *, strategy: bool = False) -> StitchedRun:
    """The stitched run's one account over ``parts``, each ``(positions,
    CALL_* rows, per-call records, risk as a fraction of the entry, sign)``
    of one fold's test calls with their own exits (``GivenExits``)."""
    order = np.concatenate([p[0] for p in parts])
    calls = np.concatenate([p[1] for p in parts], axis=1)
    keep = np.lexsort((order, calls[CALL_ALERT_TS]))  # sweep order across folds
    rec = np.concatenate([p[2] for p in parts])[keep]
    given = GivenExits(
        exit_ts=np.ascontiguousarray(rec[:, REC_EXIT_TS].astype(np.int64)),
        exit_px=np.ascontiguousarray(rec[:, REC_EXIT_PX]),
        reason=np.ascontiguousarray(rec[:, REC_EXIT_REASON].astype(np.int64)),
        risk_frac=np.ascontiguousarray(np.concatenate([p[3] for p in parts])[keep]),
        sign=np.ascontiguousarray(np.concatenate([p[4] for p in parts])[keep]))
    calls = np.ascontiguousarray(calls[:, keep])
    m = np.empty(N_METRICS)
    e, s = np.zeros(N_EXITS, np.int64), np.zeros(N_SKIPS, np.int64)
    out = np.zeros((keep.size, N_REC_FIELDS))
    capital_run_nb(calls, np.arange(keep.size, dtype=np.int64), given, 2.0, 0.5, 0.0,
                   config_array(cfg), max_open(cfg), cfg.intrabar == "sl_first",
                   cfg.gap_fill == "open", m, e, s, out)
    traded = np.flatnonzero(out[:, REC_STATUS] == ENTERED)
    closes = traded[np.lexsort((traded, out[traded, REC_EXIT_TS]))]
    equity = cfg.initial_capital + np.cumsum(out[closes, REC_PNL])
    return StitchedRun(metrics=to_metrics("capital", m, e, s, strategy=strategy),
                       equity=[(int(t), float(x)) for t, x in
                               zip(out[closes, REC_EXIT_TS].tolist(), equity.tolist())])
