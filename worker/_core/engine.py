"""Plain-Python wrappers around the kernels: shape a dataset and a grid into
the arrays the kernels take, and the arrays they return into metrics.

Nothing here validates user input (``_validate`` did); everything here is
about layout. The grid is reduced to its distinct levels, sorted the way
``exit_levels_nb`` scans them, and each grid point (in grid order) becomes a
triple of level indices.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from protocol import ParamGrid, Params, SimulatorConfig

from .dataset import Dataset
from .kernels import exit_levels_nb
from .layouts import (
    CALL_ALERT_TS,
    CALL_ENTRY_PX,
    CALL_ENTRY_TS,
    CALL_EOD_PX,
    CALL_EOD_TS,
    CFG_FIELDS,
    HIT_HOLD_PX,
    HIT_HOLD_TS,
    HIT_SL_TS,
    HIT_TP_TS,
    N_CALL_ROWS,
    N_EXITS,
    N_METRICS,
    N_POINT_LEVELS,
    N_REC_FIELDS,
    N_SKIPS,
    POINT_HOLD,
    POINT_SL,
    POINT_TP,
)
from .sweeps import capital_run_nb, grid_nb, per_trade_run_nb

_MS_PER_HOUR = 3_600_000
# A hold this long can never be reached: every time in a dataset is within
# +-MAX_ABS_TS_MS (2**53, worker._core.dataset), so ``entry_ts + hold`` lies past
# every candle and no candle triggers ``time_exit``, exactly as the SPEC's
# unbounded integer would behave. Capping keeps ``entry_ts + hold`` inside
# int64 in the kernels (2**53 + 2**62 < 2**63).
HOLD_NEVER_MS = 2**62


def hold_ms(hold_hrs: float) -> int:
    """SPEC 2.2.5: ``int(max_hold_hrs * 3_600_000)`` (truncation, as Python's
    int), capped at ``HOLD_NEVER_MS``; a product that overflows float64 (a
    hold past ~5e301 hours) is as unreachable as any other past the cap."""
    ms = hold_hrs * _MS_PER_HOUR
    return HOLD_NEVER_MS if not ms < HOLD_NEVER_MS else int(ms)


@dataclass(frozen=True)
class GridLevels:
    """A grid's distinct levels in scan order and its points in grid order."""

    tp: np.ndarray          # ascending
    sl: np.ndarray          # descending: the highest stop is reached first
    hold_ms: np.ndarray     # ascending, int64
    points: np.ndarray      # int64 [P, N_POINT_LEVELS]: level indices (POINT_* columns)
    params: list[Params]    # grid order

    @property
    def n_points(self) -> int:
        return self.points.shape[0]


def grid_levels(grid: ParamGrid, config: SimulatorConfig) -> GridLevels:
    holds = list(grid.max_hold_hrs or [config.max_trade_horizon_hrs])
    tp = np.array(sorted(grid.tp_mults), np.float64)
    sl = np.array(sorted(grid.sl_mults, reverse=True), np.float64)
    # Two holds may truncate to the same millisecond; they share one level.
    ms = np.array(sorted({hold_ms(h) for h in holds}), np.int64)
    tp_at = {v: i for i, v in enumerate(tp.tolist())}
    sl_at = {v: i for i, v in enumerate(sl.tolist())}
    ms_at = {v: i for i, v in enumerate(ms.tolist())}
    params = [Params(tp_mult=t, sl_mult=s, max_hold_hrs=h)
              for t in grid.tp_mults for s in grid.sl_mults for h in holds]
    points = np.empty((len(params), N_POINT_LEVELS), np.int64)
    points[:, POINT_TP] = [tp_at[p.tp_mult] for p in params]
    points[:, POINT_SL] = [sl_at[p.sl_mult] for p in params]
    points[:, POINT_HOLD] = [ms_at[hold_ms(p.max_hold_hrs)] for p in params]
    return GridLevels(tp, sl, ms, points, params)


def single_levels(p: Params, config: SimulatorConfig) -> GridLevels:
    hold = p.max_hold_hrs if p.max_hold_hrs is not None else config.max_trade_horizon_hrs
    return grid_levels(ParamGrid(tp_mults=[p.tp_mult], sl_mults=[p.sl_mult],
                                 max_hold_hrs=[hold]), config)


def config_array(config: SimulatorConfig) -> np.ndarray:
    """The config's real numbers, in ``CFG_FIELDS`` order (bounded at the edge)."""
    return np.array([float(getattr(config, f)) for f in CFG_FIELDS], np.float64)


def max_open(config: SimulatorConfig) -> np.int64:
    """``max_concurrent_positions`` as the exact int64 the kernels take (the
    schema bounds it to int64; it never passes through a float)."""
    return np.int64(config.max_concurrent_positions)


@dataclass(frozen=True)
class SweepInput:
    """The participating calls in sweep order, with their first-hit times."""

    positions: np.ndarray   # request positions, in sweep order
    calls: np.ndarray       # float64 [N_CALL_ROWS, n]: the CALL_* rows
    levels: GridLevels
    hits: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # exit_levels_nb's, HIT_* order


def prepare(ds: Dataset, levels: GridLevels, positions: np.ndarray | None = None) -> SweepInput:
    """Scan the candles once for ``levels``. ``positions`` (request positions)
    limits the calls; None means all. Sweep order is kept either way."""
    order = ds.call_order
    if positions is not None:
        keep = np.zeros(ds.n_calls, bool)
        keep[positions] = True
        order = order[keep[order]]
    entry = ds.entry_idx[order]
    end = ds.series_end[order]
    has = entry >= 0
    calls = np.zeros((N_CALL_ROWS, order.size), np.float64)
    calls[CALL_ALERT_TS] = ds.call_ts_ms[order]
    calls[CALL_ENTRY_PX, has] = ds.close[entry[has]]
    calls[CALL_ENTRY_TS, has] = ds.ts_ms[entry[has]]
    calls[CALL_EOD_TS, has] = ds.ts_ms[end[has]]
    calls[CALL_EOD_PX, has] = ds.close[end[has]]
    hits = exit_levels_nb(ds.ts_ms, ds.high, ds.low, ds.close, entry, end,
                          levels.tp, levels.sl, levels.hold_ms)
    return SweepInput(order, calls, levels, hits)


def group_rows(groups: list[np.ndarray] | None, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``(sel, offsets)``: groups of sweep rows, concatenated, for ``grid_nb``.
    None is one group of every call."""
    if groups is None:
        groups = [np.arange(n)]
    sel = np.concatenate(groups).astype(np.int64) if groups else np.zeros(0, np.int64)
    offsets = np.zeros(len(groups) + 1, np.int64)
    np.cumsum([g.size for g in groups], out=offsets[1:])
    return sel, offsets


def run_grid(sweep: SweepInput, groups: list[np.ndarray] | None, config: SimulatorConfig,
             mode: str, span: tuple[int, int] | None = None):
    """Metrics ``[W, N_METRICS]``, exits ``[W, N_EXITS]``, skips ``[W, N_SKIPS]``
    (``layouts.RESULT_*``) for the work items ``span`` (default: all) of the
    flat (group, grid point) range.

    ``groups`` are index arrays into the sweep order (ascending); None is one
    group of every call. Item ``g * n_points + p`` is group ``g``, point ``p``.
    """
    sel, offsets = group_rows(groups, sweep.positions.size)
    lv = sweep.levels
    start, stop = span if span is not None else (0, (offsets.size - 1) * lv.n_points)
    return grid_nb(sweep.calls, sel, offsets, *sweep.hits, lv.points, lv.tp, lv.sl,
                   config_array(config), max_open(config), config.intrabar == "sl_first",
                   mode == "per_trade",
                   start, stop)


def run_one(sweep: SweepInput, rows: np.ndarray, config: SimulatorConfig, mode: str):
    """One run of the first (single) point of ``sweep.levels`` over sweep rows
    ``rows``, with per-call records ``[len(rows), N_REC_FIELDS]`` (``REC_*``)."""
    lv = sweep.levels
    metrics = np.empty(N_METRICS, np.float64)
    exits = np.zeros(N_EXITS, np.int64)
    skipped = np.zeros(N_SKIPS, np.int64)
    rec = np.zeros((rows.size, N_REC_FIELDS), np.float64)
    run = per_trade_run_nb if mode == "per_trade" else capital_run_nb
    hits = sweep.hits
    k, m, h = (int(lv.points[0, c]) for c in (POINT_TP, POINT_SL, POINT_HOLD))
    run(sweep.calls, rows.astype(np.int64), hits[HIT_TP_TS][k], hits[HIT_SL_TS][m],
        hits[HIT_HOLD_TS][h], hits[HIT_HOLD_PX][h], lv.tp[k], lv.sl[m], config_array(config),
        max_open(config), config.intrabar == "sl_first", metrics, exits, skipped, rec)
    return metrics, exits, skipped, rec
