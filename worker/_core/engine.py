"""Plain-Python wrappers around the kernels: shape a dataset and a grid into
the arrays the kernels take, and the arrays they return into metrics.

Nothing here validates user input (``_validate`` did); everything here is
about layout. The grid is reduced to its distinct levels, sorted the way
``exit_levels_nb`` scans them, and each grid point (in grid order) becomes a
triple of level indices.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass

import numpy as np

from protocol import EXTENDED_DEFAULTS, ParamGrid, Params, SimulatorConfig

from .dataset import Dataset
from .grid import grid_nb, point_hits_nb, spec2_hits_nb
from .kernels import exit_levels_nb
from .layouts import (
    CALL_ALERT_TS,
    CALL_EOD_PX,
    CALL_EOD_TS,
    CFG_FIELDS,
    N_CALL_ROWS,
    N_EXITS,
    N_METRICS,
    N_POINT_LEVELS,
    N_REC_FIELDS,
    N_SKIPS,
    NO_LEVEL,
)
from .sweeps import capital_run_nb, per_trade_run_nb

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


# SPEC 11's parameters, in grid order (after ``max_hold_hrs``).
EXTENDED = tuple(EXTENDED_DEFAULTS)


def wait_ms(minutes: float) -> int:
    """SPEC 11: a limit order's window, ``int(entry_max_wait_min * 60_000)``,
    capped like a hold (``HOLD_NEVER_MS``: it then outlasts every candle)."""
    ms = minutes * 60_000
    return HOLD_NEVER_MS if not ms < HOLD_NEVER_MS else int(ms)


@dataclass(frozen=True)
class GridLevels:
    """A grid's distinct levels in scan order and its points in grid order.

    Trailing stops are sorted by (activation, distance) and grouped by
    activation, ``trail_groups`` the groups' offsets; breakevens by
    (trigger, level descending), grouped by trigger; entry configurations
    by (delay, dip, window). A point's ``POINT_*`` columns index these.
    """

    tp: np.ndarray              # ascending
    sl: np.ndarray              # descending: the highest stop is reached first
    hold_ms: np.ndarray         # ascending, int64
    points: np.ndarray          # int64 [P, N_POINT_LEVELS]: level indices (POINT_* columns)
    params: list[Params]        # grid order
    trail_dist: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0))
    trail_act: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0))
    trail_groups: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(1, np.int64))
    be_trig: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0))
    be_level: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0))  # 1 + offset
    be_groups: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(1, np.int64))
    entry_delay: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(1, np.int64))
    entry_dip: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(1))
    entry_wait_ms: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(1, np.int64))
    gap_open: bool = False

    @property
    def n_points(self) -> int:
        return self.points.shape[0]

    @property
    def extended(self) -> bool:
        """Some point has a SPEC 11 exit rule (the sweeps' compiled variant)."""
        return bool(self.trail_dist.size or self.be_level.size or self.gap_open)

    kind = "calls"  # what a pool process rebuilds (``rengine.StrategyLevels``: "strategy")

    def arrays(self) -> dict[str, np.ndarray]:
        """Every array but ``params``, by field name (what a pool process needs)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if f.name not in ("params", "gap_open")}

    def prepare(self, ds: Dataset, positions: np.ndarray | None = None) -> SweepInput:
        return prepare(ds, self, positions)


def _grouped(configs: set[tuple], group_key) -> tuple[list[tuple], dict, np.ndarray]:
    """Configurations sorted, their index, and the offsets of runs of equal
    ``group_key``."""
    order = sorted(configs)
    keys = [group_key(c) for c in order]
    starts = [i for i in range(len(order)) if i == 0 or keys[i] != keys[i - 1]]
    return order, {c: i for i, c in enumerate(order)}, np.array([*starts, len(order)], np.int64)


def grid_levels(grid: ParamGrid, config: SimulatorConfig) -> GridLevels:
    holds = list(grid.max_hold_hrs or [config.max_trade_horizon_hrs])
    ext = [getattr(grid, name) or [EXTENDED_DEFAULTS[name]] for name in EXTENDED]
    # Only values off their default are passed: msgspec leaves a field out of
    # an answer when it *is* the default object, not merely equal to it.
    params = [Params(tp_mult=t, sl_mult=s, max_hold_hrs=h,
                     **{k: v for k, v in zip(EXTENDED, x) if v != EXTENDED_DEFAULTS[k]})
              for t in grid.tp_mults for s in grid.sl_mults for h in holds
              for x in itertools.product(*ext)]
    tp = np.array(sorted(grid.tp_mults), np.float64)
    sl = np.array(sorted(grid.sl_mults, reverse=True), np.float64)
    # Two holds may truncate to the same millisecond; they share one level.
    ms = np.array(sorted({hold_ms(h) for h in holds}), np.int64)
    tp_at = {v: i for i, v in enumerate(tp.tolist())}
    sl_at = {v: i for i, v in enumerate(sl.tolist())}
    ms_at = {v: i for i, v in enumerate(ms.tolist())}
    trails, tr_at, tr_groups = _grouped(
        {(p.trail_activation, p.trail_pct) for p in params if p.trail_pct is not None},
        lambda c: c[0])
    # Breakeven levels descending within a trigger: the highest is hit first.
    bes, be_at, be_groups = _grouped(
        {(p.breakeven_trigger, -(1 + p.breakeven_offset)) for p in params
         if p.breakeven_trigger is not None}, lambda c: c[0])
    entries, en_at, _ = _grouped({_entry_key(p) for p in params}, lambda c: c)
    points = np.array([
        (tp_at[p.tp_mult], sl_at[p.sl_mult], ms_at[hold_ms(p.max_hold_hrs)],
         NO_LEVEL if p.trail_pct is None else tr_at[(p.trail_activation, p.trail_pct)],
         NO_LEVEL if p.breakeven_trigger is None
         else be_at[(p.breakeven_trigger, -(1 + p.breakeven_offset))],
         en_at[_entry_key(p)]) for p in params], np.int64).reshape(-1, N_POINT_LEVELS)
    return GridLevels(
        tp, sl, ms, points, params,
        trail_dist=np.array([d for _, d in trails], np.float64),
        trail_act=np.array([a for a, _ in trails], np.float64), trail_groups=tr_groups,
        be_trig=np.array([t for t, _ in bes], np.float64),
        be_level=np.array([-lv for _, lv in bes], np.float64), be_groups=be_groups,
        entry_delay=np.array([d for d, _, _ in entries], np.int64),
        entry_dip=np.array([d for _, d, _ in entries], np.float64),
        entry_wait_ms=np.array([w for _, _, w in entries], np.int64),
        gap_open=config.gap_fill == "open")


def _entry_key(p: Params) -> tuple[int, float, int]:
    """A point's entry configuration; a market order's window plays no part."""
    dip = p.entry_dip_pct
    return (p.entry_delay_candles, dip, wait_ms(p.entry_max_wait_min) if dip > 0 else 0)


def single_levels(p: Params, config: SimulatorConfig) -> GridLevels:
    hold = p.max_hold_hrs if p.max_hold_hrs is not None else config.max_trade_horizon_hrs
    dims = {name: [getattr(p, name)] for name in EXTENDED}
    return grid_levels(ParamGrid(tp_mults=[p.tp_mult], sl_mults=[p.sl_mult],
                                 max_hold_hrs=[hold], **dims), config)


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
    calls: np.ndarray       # float64 [entry configs, N_CALL_ROWS, n]: the CALL_* rows
    levels: GridLevels
    hits: tuple[np.ndarray, ...]  # exit_levels_nb's, HIT_* order, each [entry configs, levels, n]

    def run(self, groups, config: SimulatorConfig, mode: str, span=None):
        return run_grid(self, groups, config, mode, span)


def prepare(ds: Dataset, levels: GridLevels, positions: np.ndarray | None = None) -> SweepInput:
    """Scan the candles once for ``levels``. ``positions`` (request positions)
    limits the calls; None means all. Sweep order is kept either way."""
    order, entry, end, alert, calls = sweep_calls(ds, positions, levels.entry_delay.size)
    hits = exit_levels_nb(ds.ts_ms, ds.open, ds.high, ds.low, ds.close, entry, end, alert,
                          levels.entry_delay, levels.entry_dip, levels.entry_wait_ms,
                          levels.tp, levels.sl, levels.hold_ms,
                          levels.trail_dist, levels.trail_act, levels.trail_groups,
                          levels.be_trig, levels.be_level, levels.be_groups,
                          levels.gap_open, calls)
    return SweepInput(order, calls, levels, hits)


def sweep_calls(ds: Dataset, positions: np.ndarray | None, n_configs: int):
    """The calls at ``positions`` (None: all) in sweep order: ``(order,
    entry candle, series end, alert time, CALL_* rows [n_configs, rows, n])``
    with the rows every entry configuration shares filled in."""
    order = ds.call_order
    if positions is not None:
        keep = np.zeros(ds.n_calls, bool)
        keep[positions] = True
        order = order[keep[order]]
    entry = ds.entry_idx[order]
    end = ds.series_end[order]
    has = entry >= 0
    calls = np.zeros((n_configs, N_CALL_ROWS, order.size), np.float64)
    alert = ds.call_ts_ms[order]
    calls[:, CALL_ALERT_TS] = alert
    calls[:, CALL_EOD_TS, has] = ds.ts_ms[end[has]]
    calls[:, CALL_EOD_PX, has] = ds.close[end[has]]
    return order, entry, end, alert, calls


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
    return grid_nb(sweep.calls, sel, offsets, sweep.hits, lv.points, lv.tp, lv.sl, lv.be_level,
                   config_array(config), max_open(config), config.intrabar == "sl_first",
                   lv.gap_open, lv.extended, mode == "per_trade", start, stop)


def run_one(sweep: SweepInput, rows: np.ndarray, config: SimulatorConfig, mode: str):
    """One run of the first (single) point of ``sweep.levels`` over sweep rows
    ``rows``, with per-call records ``[len(rows), N_REC_FIELDS]`` (``REC_*``)
    and the ``CALL_*`` rows of its entry configuration."""
    lv = sweep.levels
    metrics = np.empty(N_METRICS, np.float64)
    exits = np.zeros(N_EXITS, np.int64)
    skipped = np.zeros(N_SKIPS, np.int64)
    rec = np.zeros((rows.size, N_REC_FIELDS), np.float64)
    run = per_trade_run_nb if mode == "per_trade" else capital_run_nb
    k, m, h, a, b, c = (int(x) for x in lv.points[0])
    x = (point_hits_nb(sweep.hits, c, k, m, h, a, b) if a >= 0 or b >= 0 or lv.gap_open
         else spec2_hits_nb(sweep.hits, c, k, m, h))
    be_mult = float(lv.be_level[b]) if b >= 0 else 0.0
    run(sweep.calls[c], rows.astype(np.int64), x, lv.tp[k], lv.sl[m], be_mult,
        config_array(config), max_open(config), config.intrabar == "sl_first", lv.gap_open,
        metrics, exits, skipped, rec)
    return metrics, exits, skipped, rec, sweep.calls[c]
