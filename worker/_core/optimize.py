"""The operations of SPEC sections 2-5 on a loaded dataset: simulate, and
optimize as a flow (``optimize_flow``; the library's ``worker.optimize``
drives it in this thread: ``worker._run.library``).

Each operation validates its inputs (errors name the JSON path of the bad
field), scans the candles once for the grid's distinct levels, runs every
grid point in one parallel kernel call, then ranks in numpy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec
import numpy as np

from protocol import (
    Constraints,
    OptimizeResult,
    ParamGrid,
    Params,
    Plateau,
    RankedPoint,
    SimulatorConfig,
)

from .._errors import InvalidParams
from . import validate as v
from .dataset import Dataset
from .engine import GridLevels, grid_levels, prepare, run_one, single_levels
from .jobs import Flow, GridJob, JobScore
from .lanes import Robustness, robustness_flow
from .layouts import ENTRY_KINDS, M_RET_M2, M_RET_M3, M_RET_M4, METRICS, TRADES_METRIC
from .metrics import to_metrics, trade_records
from .robust import Lane, deflated_sharpe_of


@dataclass(frozen=True)
class Study:
    """Validated inputs shared by the grid operations."""

    config: SimulatorConfig
    mode: str
    objective: str
    minimize: bool
    constraints: Constraints
    grid: ParamGrid
    positions: np.ndarray  # request positions of the participating calls
    # SPEC 12 (optimize only): plateau values, stress lanes, what ranks points.
    plateau: Plateau | None = None
    lanes: tuple[Lane, ...] | None = None
    rank_by: str = "objective"

    def column(self, name: str) -> int:
        return METRICS[self.mode].index(name)


def make_study(ds: Dataset, *, grid: Any = None, config: Any = None, mode: Any = None,
               objective: Any = None, minimize: bool = False, constraints: Any = None,
               caller_groups: Any = None, max_points: int | None = None,
               plateau: Any = None, stress: Any = None, rank_by: Any = None) -> Study:
    mode_ = v.mode(mode)
    lanes = v.stress(stress)
    rank = v.rank_by(rank_by, lanes is not None)
    return Study(
        config=v.config(config),
        mode=mode_,
        objective=v.objective(objective, mode_),
        minimize=v.flag(minimize, "$.minimize"),
        constraints=v.constraints(constraints, mode_),
        grid=v.grid(grid, max_points=max_points),
        positions=participating(ds, caller_groups),
        plateau=v.plateau(plateau, rank),
        lanes=lanes,
        rank_by=rank,
    )


def participating(ds: Dataset, caller_groups: Any, path: str = "$.caller_groups") -> np.ndarray:
    """Request positions of the calls whose caller is listed (all when None).

    Decision (SPEC is silent): a listed caller with no calls is ignored, as a
    filter would; the list must still be a list of strings.
    """
    if caller_groups is None:
        return np.arange(ds.n_calls)
    if not isinstance(caller_groups, (list, tuple)):
        raise InvalidParams("must be a list of caller names", path=path)
    for i, name in enumerate(caller_groups):
        if not isinstance(name, str):
            raise InvalidParams("must be a caller name (string)", path=f"{path}[{i}]")
    codes = [i for i, name in enumerate(ds.caller_names) if name in set(caller_groups)]
    return np.flatnonzero(np.isin(ds.call_caller, codes))


def unknown_callers(ds: Dataset, caller_groups: Any) -> list[str]:
    """Names in ``caller_groups`` that no call of ``ds`` has: ignored by the
    filter, but most likely typos, so callers warn about them."""
    if not isinstance(caller_groups, (list, tuple)):
        return []
    known = set(ds.caller_names)
    return [name for name in caller_groups if isinstance(name, str) and name not in known]


def feasible_mask(study: Study, metrics: np.ndarray) -> np.ndarray:
    """Feasibility of each row of ``metrics`` (``[..., N_METRICS]``)."""
    c = study.constraints
    # A row of a failed chunk (worker._run.checkpoint) has NaN metrics: never feasible.
    ok = ~np.isnan(metrics[..., study.column(TRADES_METRIC[study.mode])])
    if c.min_trades is not None:
        ok &= metrics[..., study.column(TRADES_METRIC[study.mode])] >= c.min_trades
    if c.max_drawdown is not None:
        ok &= metrics[..., study.column("max_drawdown")] <= c.max_drawdown
    if c.min_win_rate is not None:
        ok &= metrics[..., study.column("win_rate")] >= c.min_win_rate
    return ok


def rank_order(values: np.ndarray, feasible: np.ndarray, minimize: bool) -> np.ndarray:
    """Grid indices in rank order: feasible first, then by objective (a null
    objective after every number), ties by grid order (SPEC 5)."""
    missing = np.isnan(values)
    key = np.where(missing, 0.0, values if minimize else -values)
    return np.lexsort((np.arange(values.size), key, missing, ~feasible))


def _ranked(study: Study, levels: GridLevels, metrics, exits, skipped, idx: np.ndarray,
            ranks: np.ndarray, feasible: np.ndarray, robust: Robustness) -> list[RankedPoint]:
    return [RankedPoint(index=int(i), rank=int(ranks[i]), feasible=bool(feasible[i]),
                        params=levels.params[i],
                        metrics=to_metrics(study.mode, metrics[i], exits[i], skipped[i]),
                        **robust.point(i))
            for i in idx.tolist()]


def best_of(study: Study, metrics: np.ndarray, values: np.ndarray | None = None,
            ) -> tuple[np.ndarray, np.ndarray, int | None]:
    """Rank order, feasibility and the best point; ``values``: what ranks the
    points (default the objective; SPEC 12's plateau or maximin values)."""
    feasible = feasible_mask(study, metrics)
    if values is None:
        values = metrics[:, study.column(study.objective)]
    order = rank_order(values, feasible, study.minimize)
    best = int(order[0]) if order.size and feasible[order[0]] else None
    return order, feasible, best


def job_score(study: Study) -> JobScore:
    return JobScore(objective=study.objective, column=study.column(study.objective),
                    minimize=study.minimize, feasible=lambda m: feasible_mask(study, m))


def optimize_flow(ds: Dataset, grid: Any = None, *, top_k: int = 10, include_all: bool = False,
                  **study_args: Any) -> Flow[OptimizeResult]:
    """SPEC 5: evaluate every grid point, rank, and report the best feasible."""
    if not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 0:
        raise InvalidParams("must be a non-negative integer", path="$.top_k")
    include_all = v.flag(include_all, "$.include_all")
    study = make_study(ds, grid=grid, **study_args)
    levels = grid_levels(study.grid, study.config)
    metrics, exits, skipped = yield GridJob(levels, study.positions, None, study.config,
                                            study.mode, score=job_score(study))
    robust = yield from robustness_flow(study, levels, metrics)
    return optimize_result(ds, study, levels, (metrics, exits, skipped), robust, top_k,
                           include_all)


def optimize_result(ds: Dataset, study: Study, levels: GridLevels, arrays, robust: Robustness,
                    top_k: int, include_all: bool) -> OptimizeResult:
    """SPEC 5's answer (with SPEC 12's fields) from a grid's result arrays."""
    metrics, exits, skipped = arrays
    order, feasible, best = best_of(study, metrics, robust.ranking_values(study, metrics))
    ranks = np.empty(order.size, np.int64)
    ranks[order] = np.arange(1, order.size + 1)
    top = order[: min(top_k, int(feasible.sum()))]
    best_metrics = None if best is None else to_metrics(
        study.mode, metrics[best], exits[best], skipped[best])
    return OptimizeResult(
        objective=study.objective,
        minimize=study.minimize,
        best_params=None if best is None else levels.params[best],
        best_final_capital=getattr(best_metrics, "final_capital", None),
        best_total_return=None if best_metrics is None else best_metrics.total_return,
        best_metrics=best_metrics,
        params_evaluated=levels.n_points,
        feasible_count=int(feasible.sum()),
        top=_ranked(study, levels, metrics, exits, skipped, top, ranks, feasible, robust),
        # A point whose chunk failed (checkpointed runs) has no metrics to
        # show; the run's report lists it as failed.
        all_results=(_ranked(study, levels, metrics, exits, skipped, _evaluated(study, metrics),
                             ranks, feasible, robust) if include_all else msgspec.UNSET),
        deflated_sharpe=None if best is None else best_deflated_sharpe(study, metrics, best,
                                                                       feasible),
    )


def _evaluated(study: Study, metrics: np.ndarray) -> np.ndarray:
    """Grid indices of the points that have metrics (not in a failed chunk)."""
    return np.flatnonzero(~np.isnan(metrics[:, study.column(TRADES_METRIC[study.mode])]))


def simulate(ds: Dataset, params: Any, *, config: Any = None, mode: Any = None,
             include_trades: bool = True, caller_groups: Any = None):
    """SPEC 2/3: one run with one parameter set; metrics and trade records."""
    mode_ = v.mode(mode)
    cfg = v.config(config)
    p = v.params(params)
    include_trades = v.flag(include_trades, "$.include_trades")
    return simulate_positions(ds, p, cfg, mode_, participating(ds, caller_groups), include_trades)


def simulate_positions(ds: Dataset, p: Params, cfg: SimulatorConfig, mode: str,
                       positions: np.ndarray, include_trades: bool = True):
    sweep = prepare(ds, single_levels(p, cfg), positions)
    rows = np.arange(sweep.positions.size)
    metrics, exits, skipped, rec, calls = run_one(sweep, rows, cfg, mode)
    kind = ENTRY_KINDS[p.entry_dip_pct > 0]
    trades = trade_records(ds, sweep.positions, calls, rows, rec, kind) if include_trades else None
    return to_metrics(mode, metrics, exits, skipped, trades)


def best_deflated_sharpe(study: Study, metrics: np.ndarray, best: int,
                         feasible: np.ndarray) -> float | None:
    """SPEC 12's deflated Sharpe ratio of point ``best`` among the feasible
    ones, from the kernels' per-point sharpe, trade count and return moments."""
    row = metrics[best]
    return deflated_sharpe_of(float(row[study.column("sharpe")]),
                              int(row[study.column(TRADES_METRIC[study.mode])]),
                              float(row[M_RET_M2]), float(row[M_RET_M3]), float(row[M_RET_M4]),
                              metrics[feasible, study.column("sharpe")])

