"""SPEC 12 on ``optimize``: plateau values, stress lanes and what ranks the
points (``rank_by``), as a sub-flow of ``optimize.optimize_flow``.

Each stress lane is the same grid run again with the lane's costs and fills:
one ``GridJob`` per lane (its own candle scan, since a lane may delay entries
or fill gaps at the open). Feasibility stays the request's own.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec
import numpy as np

from protocol import EXTENDED_DEFAULTS, ParamGrid, SimulatorConfig

from .engine import GridLevels, grid_levels
from .jobs import GridJob
from .robust import Lane, grid_lattice, maximin, plateau_values

if TYPE_CHECKING:
    from .optimize import Study


@dataclass(frozen=True)
class Robustness:
    """Per point: the plateau value, each lane's objective, the worst lane and
    its objective (None where not asked)."""

    plateau: np.ndarray | None = None           # [P], NaN: none (infeasible)
    lane_names: tuple[str, ...] = ()
    lane_objective: np.ndarray | None = None     # [L, P], NaN: null
    maximin: np.ndarray | None = None            # [P]
    worst_lane: np.ndarray | None = None         # [P] lane index

    def ranking_values(self, study: Study, metrics: np.ndarray) -> np.ndarray:
        """What ``rank_by`` ranks the points by (feasibility stays the objective's)."""
        if study.rank_by == "plateau":
            return self.plateau
        if study.rank_by == "maximin":
            return self.maximin
        return metrics[:, study.column(study.objective)]

    def point(self, i: int) -> dict[str, Any]:
        """``RankedPoint``'s SPEC 12 fields for point ``i`` (only those asked)."""
        out: dict[str, Any] = {}
        if self.plateau is not None:
            out["plateau"] = _number(self.plateau[i])
        if self.lane_objective is not None:
            out["lanes"] = {name: _number(self.lane_objective[k, i])
                            for k, name in enumerate(self.lane_names)}
            out["worst_lane"] = self.lane_names[int(self.worst_lane[i])]
            out["maximin"] = _number(self.maximin[i])
        return out


def _number(x: float) -> float | None:
    return None if np.isnan(x) else float(x)


def robustness_flow(study: Study, levels: GridLevels, metrics: np.ndarray,
                    group_codes: np.ndarray | None = None, positions: np.ndarray | None = None,
                    ) -> Generator[GridJob, Any, Robustness]:
    """Plateau values and stress lanes for the grid whose metrics are given:
    one group of ``positions`` (default the study's calls), or one per caller
    code in ``group_codes`` (rows ``g * P + p``, as the job that made them)."""
    positions = study.positions if positions is None else positions
    lanes = yield from lane_objectives_flow(study, levels, metrics, positions,
                                            group_codes=group_codes)
    return robustness(study, levels, metrics, lanes)


def lane_objectives_flow(study: Study, levels: GridLevels, metrics: np.ndarray,
                         positions: np.ndarray, *, group_codes: np.ndarray | None = None,
                         groups: tuple[np.ndarray, ...] | None = None,
                         lane_levels: Callable[[Lane, SimulatorConfig], Any] | None = None,
                         ) -> Generator[GridJob, Any, np.ndarray | None]:
    """Every stress lane's objective ``[L, rows]`` over the rows of
    ``metrics`` (the request's own run, grouped as ``group_codes`` or
    ``groups`` group it): one ``GridJob`` per lane, the baseline lane read
    from ``metrics``. None without lanes. ``lane_levels(lane, config)``:
    the lane's levels (default: the study's grid with the lane's delay;
    a strategy search passes its own, SPEC 13)."""
    if not study.lanes:
        return None
    col = study.column(study.objective)
    lane_objective = np.empty((len(study.lanes), metrics.shape[0]))
    for k, lane in enumerate(study.lanes):
        if lane_is_baseline(lane):  # the request's own run: its numbers, not a rerun
            lane_objective[k] = metrics[:, col]
            continue
        config = lane_config(study, lane)
        levels_k = (grid_levels(lane_grid(study.grid, lane), config) if lane_levels is None
                    else lane_levels(lane, config))
        lane_metrics, _, _ = yield GridJob(levels_k, positions, group_codes, config,
                                           study.mode, groups=groups)
        lane_objective[k] = lane_metrics[:, col]
    return lane_objective


def robustness(study: Study, levels: GridLevels, metrics: np.ndarray,
               lane_objective: np.ndarray | None, *, block: int | None = None,
               plateau_of: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
               ) -> Robustness:
    """Plateau values (per group of ``block`` rows, default
    ``levels.n_points``) and the lanes' maximin from ``lane_objective``
    (``lane_objectives_flow``). ``plateau_of(objective, feasible)``: one
    group's plateau values (default: over the study's grid; a strategy
    search passes its own lattice, SPEC 13)."""
    from .optimize import feasible_mask  # the flow's own module: no cycle at import

    objective = metrics[:, study.column(study.objective)]
    feasible = feasible_mask(study, metrics)
    n = levels.n_points if block is None else block
    plateau = None
    if study.plateau is not None:
        if plateau_of is None:
            lattice = grid_lattice(grid_shape(study.grid))

            def plateau_of(obj: np.ndarray, ok: np.ndarray) -> np.ndarray:
                return plateau_values(lattice, obj, ok, study.plateau.radius,
                                      study.plateau.stat, study.minimize)
        plateau = np.concatenate([
            plateau_of(objective[g:g + n], feasible[g:g + n])
            for g in range(0, objective.size, n)]) if objective.size else objective.copy()
    if lane_objective is None:
        return Robustness(plateau=plateau)
    worst_value, worst_lane = maximin(lane_objective, study.minimize)
    return Robustness(plateau=plateau, lane_names=tuple(lane.name for lane in study.lanes),
                      lane_objective=lane_objective, maximin=worst_value,
                      worst_lane=worst_lane)


def grid_shape(grid: ParamGrid) -> tuple[int, ...]:
    """The grid's length along every dimension, in grid order (a dimension
    left out has one value)."""
    names = ("tp_mults", "sl_mults", "max_hold_hrs", *EXTENDED_DEFAULTS)
    return tuple(len(getattr(grid, name) or (0,)) for name in names)


def lane_is_baseline(lane: Lane) -> bool:
    """A lane that changes nothing (the presets' ``baseline``)."""
    return (lane.taker_fee_bps is None and lane.slippage_bps is None
            and not lane.entry_delay_candles and lane.gap_fill is None)


def lane_config(study: Study, lane: Lane):
    """The request's config with the lane's fees, slippage and gap_fill."""
    changes = {k: getattr(lane, k) for k in ("taker_fee_bps", "slippage_bps", "gap_fill")
               if getattr(lane, k) is not None}
    return msgspec.structs.replace(study.config, **changes)


def lane_grid(grid: ParamGrid, lane: Lane) -> ParamGrid:
    """The grid with the lane's delay added to every point's own (the points
    keep their order: a shift keeps the delays distinct and sorted alike)."""
    if not lane.entry_delay_candles:
        return grid
    delays = grid.entry_delay_candles or [EXTENDED_DEFAULTS["entry_delay_candles"]]
    return msgspec.structs.replace(
        grid, entry_delay_candles=[d + lane.entry_delay_candles for d in delays])
