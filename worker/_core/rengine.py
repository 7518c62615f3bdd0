"""Shaping a strategy's exit grid (SPEC 13) and its trades into the arrays
``rkernels`` takes, as ``engine`` does for calls.

``StrategyLevels`` plays ``GridLevels``' part in a ``GridJob``: the exit
grid's distinct levels, its points in grid order, and each call's direction
and stop (by request position: a strategy's dataset holds every signal
set's trades, ``strategy.plan_strategy``). ``prepare`` and the sweep's
``run`` are what ``jobs.evaluate`` and the pool processes call, for either.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np

from protocol import SimulatorConfig

from .._errors import InvalidParams
from .dataset import Dataset
from .engine import config_array, group_rows, hold_ms, max_open, sweep_calls
from .layouts import (
    N_EXITS,
    N_METRICS,
    N_POINT_LEVELS,
    N_REC_FIELDS,
    N_SKIPS,
    NO_LEVEL,
)
from .rkernels import point_rhits_nb, strategy_grid_nb, strategy_levels_nb
from .sweeps import capital_run_nb, per_trade_run_nb

# SPEC 13's exit grid, in grid order, and what a dimension left out is.
# Decision (SPEC is silent on defaults): one level each, tp 2 R with a 2 %
# stop when the signal has none, the config's horizon, no trail, no
# breakeven, no delay.
EXIT_DIMS = ("tp_r", "sl_pct", "max_hold_hrs", "trail_r", "breakeven_r", "entry_delay_candles")
EXIT_DEFAULTS: dict[str, Any] = {"tp_r": 2.0, "sl_pct": 0.02, "max_hold_hrs": None,
                                 "trail_r": None, "breakeven_r": None, "entry_delay_candles": 0}
_NULLABLE = ("trail_r", "breakeven_r")
MAX_DELAY = 1_000_000
# Decision: SPEC 13 says sl_pct > 0; below this, per-trade r (return / risk)
# overflows a double, and no market has such a tick (protocol: the same bound).
MIN_SL_PCT = 1e-6


@dataclass(frozen=True)
class StrategyLevels:
    """An exit grid's distinct levels (ascending), its points (``POINT_*``
    columns; ``POINT_ENTRY`` is ``delay index * n_sl + sl index``) and
    flat params in grid order, and per request position the trade's
    direction (+1 / -1) and stop (NaN: none)."""

    tp_r: np.ndarray
    sl_pct: np.ndarray
    hold_ms: np.ndarray
    trail_r: np.ndarray
    be_r: np.ndarray
    entry_delay: np.ndarray
    points: np.ndarray
    dirs: np.ndarray
    stops: np.ndarray
    params: list[dict] = dataclasses.field(default_factory=list)
    gap_open: bool = True
    kind = "strategy"

    @property
    def n_points(self) -> int:
        return self.points.shape[0]

    def arrays(self) -> dict[str, np.ndarray]:
        """Every array, by field name (what a pool process needs)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if f.name not in ("params", "gap_open")}

    def prepare(self, ds: Dataset, positions: np.ndarray | None = None) -> StrategySweep:
        return prepare_strategy(ds, self, positions)


def exit_grid(grid: Any, path: str = "$.param_grid") -> dict[str, list]:
    """The exit grid's dimensions (each a list of distinct values), checked
    against SPEC 13's ranges; SPEC 11's call parameters are refused."""
    raw = {} if grid is None else _as_dict(grid)
    for key in raw:
        if key not in EXIT_DIMS:
            raise InvalidParams(f"{key!r:.60} is not an exit parameter of strategies (they take "
                                f"{', '.join(EXIT_DIMS)}; their entries are market entries)",
                                path=f"{path}.{key}")
    dims = {}
    for key in EXIT_DIMS:
        values = raw.get(key)
        if values is None:
            dims[key] = [EXIT_DEFAULTS[key]]
            continue
        if not isinstance(values, list) or not values:
            raise InvalidParams("must be a non-empty list", path=f"{path}.{key}")
        seen = set()
        for i, value in enumerate(values):
            _check_exit_value(key, value, f"{path}.{key}[{i}]")
            if value in seen:
                raise InvalidParams(f"duplicate value {value!r}", path=f"{path}.{key}[{i}]")
            seen.add(value)
        dims[key] = list(values)
    return dims


def _as_dict(grid: Any) -> dict:
    if isinstance(grid, dict):
        return grid
    import msgspec

    return {k: v for k, v in msgspec.structs.asdict(grid).items() if v is not None}


def _check_exit_value(key: str, value: Any, path: str) -> None:
    if value is None and key in _NULLABLE:
        return
    if key == "entry_delay_candles":
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_DELAY:
            raise InvalidParams(f"must be an integer from 0 to {MAX_DELAY:,}, got {value!r:.40}",
                                path=path)
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
        raise InvalidParams(f"must be a finite number, got {value!r:.40}", path=path)
    if key == "sl_pct" and not MIN_SL_PCT <= value < 1:
        raise InvalidParams(f"must be >= {MIN_SL_PCT} and < 1, got {value!r}", path=path)
    if key != "sl_pct" and not value > 0:
        raise InvalidParams(f"must be > 0, got {value!r}", path=path)


def exit_points(dims: dict[str, list], config: SimulatorConfig) -> list[dict]:
    """Flat exit params of every point in grid order (an exit left at its
    default off, or a delay of 0, is left out of the point's params)."""
    out = []
    for values in itertools.product(*(dims[k] for k in EXIT_DIMS)):
        p = dict(zip(EXIT_DIMS, values))
        if p["max_hold_hrs"] is None:
            p["max_hold_hrs"] = config.max_trade_horizon_hrs
        out.append({k: v for k, v in p.items()
                    if not (k in _NULLABLE and v is None)
                    and not (k == "entry_delay_candles" and v == 0)})
    return out


def strategy_levels(dims: dict[str, list], config: SimulatorConfig, dirs: np.ndarray,
                    stops: np.ndarray) -> StrategyLevels:
    params = exit_points(dims, config)
    tp = np.array(sorted(dims["tp_r"]), np.float64)
    sl = np.array(sorted(dims["sl_pct"]), np.float64)
    holds = [p["max_hold_hrs"] for p in params]
    ms = np.array(sorted({hold_ms(h) for h in holds}), np.int64)
    trails = np.array(sorted(v for v in dims["trail_r"] if v is not None), np.float64)
    bes = np.array(sorted(v for v in dims["breakeven_r"] if v is not None), np.float64)
    delays = np.array(sorted(dims["entry_delay_candles"]), np.int64)
    at = {name: {v: i for i, v in enumerate(a.tolist())}
          for name, a in (("tp", tp), ("sl", sl), ("ms", ms), ("tr", trails), ("be", bes),
                          ("d", delays))}
    points = np.array([
        (at["tp"][p["tp_r"]], 0, at["ms"][hold_ms(p["max_hold_hrs"])],
         at["tr"][p["trail_r"]] if "trail_r" in p else NO_LEVEL,
         at["be"][p["breakeven_r"]] if "breakeven_r" in p else NO_LEVEL,
         at["d"][p.get("entry_delay_candles", 0)] * sl.size + at["sl"][p["sl_pct"]])
        for p in params], np.int64).reshape(-1, N_POINT_LEVELS)
    return StrategyLevels(tp, sl, ms, trails, bes, delays, points,
                          np.ascontiguousarray(dirs, np.float64),
                          np.ascontiguousarray(stops, np.float64), params,
                          gap_open=config.gap_fill == "open")


@dataclass(frozen=True)
class StrategySweep:
    """A strategy's trades in sweep order, scanned once for every level."""

    positions: np.ndarray
    calls: np.ndarray        # float64 [configs, N_CALL_ROWS, n]
    levels: StrategyLevels
    hits: tuple[np.ndarray, ...]
    risk: np.ndarray         # float64 [configs, n]
    dirs: np.ndarray         # float64 [n], sweep order

    def run(self, groups, config: SimulatorConfig, mode: str, span=None):
        """``engine.run_grid`` for a strategy's exit grid."""
        sel, offsets = group_rows(groups, self.positions.size)
        lv = self.levels
        start, stop = span if span is not None else (0, (offsets.size - 1) * lv.n_points)
        return strategy_grid_nb(self.calls, sel, offsets, self.hits, self.risk, self.dirs,
                                lv.points, lv.tp_r, config_array(config), max_open(config),
                                config.intrabar == "sl_first", lv.gap_open,
                                mode == "per_trade", start, stop)


def prepare_strategy(ds: Dataset, lv: StrategyLevels,
                     positions: np.ndarray | None = None) -> StrategySweep:
    order, entry, end, alert, calls = sweep_calls(ds, positions,
                                                  lv.entry_delay.size * lv.sl_pct.size)
    dirs = np.ascontiguousarray(lv.dirs[order])
    hits, risk = strategy_levels_nb(ds.ts_ms, ds.open, ds.high, ds.low, ds.close, entry, end,
                                    alert, dirs, np.ascontiguousarray(lv.stops[order]),
                                    lv.entry_delay, lv.sl_pct, lv.tp_r, lv.hold_ms, lv.trail_r,
                                    lv.be_r, lv.gap_open, calls)
    return StrategySweep(order, calls, lv, hits, risk, dirs)


def run_point(sweep: StrategySweep, p: int, rows: np.ndarray, config: SimulatorConfig,
              mode: str):
    """One run of point ``p`` over sweep rows ``rows`` with per-call records
    (``REC_*``); returns metrics, exits, skipped, records and the point's
    ``CALL_*`` rows."""
    lv = sweep.levels
    k, _, h, a, b, c = (int(x) for x in lv.points[p])
    x = point_rhits_nb(sweep.hits, sweep.risk, sweep.dirs, lv.tp_r, c, k, h, a, b)
    metrics = np.empty(N_METRICS)
    exits, skipped = np.zeros(N_EXITS, np.int64), np.zeros(N_SKIPS, np.int64)
    rec = np.zeros((rows.size, N_REC_FIELDS))
    run = per_trade_run_nb if mode == "per_trade" else capital_run_nb
    run(sweep.calls[c], rows.astype(np.int64), x, 0.0, 0.0, 0.0, config_array(config),
        max_open(config), config.intrabar == "sl_first", lv.gap_open, metrics, exits, skipped,
        rec)
    return metrics, exits, skipped, rec, sweep.calls[c]
