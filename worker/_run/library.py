"""The library's grid operations (``worker.optimize``,
``worker.optimize_per_caller``, ``worker.grouped_eval``, ``worker.walk_forward``): their flows
(``worker._core``) driven in the calling thread by an ``InProcessEvaluator``,
with no event loop and no thread (``drive_sync``). Blocking, and not
cancellable once started: the kernels run to the end.
"""

from __future__ import annotations

from typing import Any

from protocol import (
    GroupedResult,
    OptimizeResult,
    PerCallerResult,
    StrategyResult,
    WalkForwardResult,
)

from .._core.callers import grouped_eval_flow, optimize_per_caller_flow
from .._core.dataset import Dataset
from .._core.bars import BarSet
from .._core.optimize import optimize_flow
from .._core.strategy import plan_strategy
from .._core.strategy_search import optimize_strategy_flow
from .._core.walkforward import walk_forward_flow
from .drive import drive_sync
from .evaluators import InProcessEvaluator

__all__ = ["grouped_eval", "optimize", "optimize_per_caller", "optimize_strategy",
           "walk_forward"]

_PLAN_KEYS = ("strategy", "strategy_grid", "timeframes", "symbols", "grid", "config",
              "max_points")


def optimize(ds: Dataset, grid: Any = None, **kwargs: Any) -> OptimizeResult:
    """SPEC 5: ``optimize_flow`` evaluated in this thread."""
    return drive_sync(optimize_flow(ds, grid, **kwargs), InProcessEvaluator(ds))


def optimize_per_caller(ds: Dataset, grid: Any = None, **kwargs: Any) -> PerCallerResult:
    """SPEC 6: ``optimize_per_caller_flow`` evaluated in this thread."""
    return drive_sync(optimize_per_caller_flow(ds, grid, **kwargs), InProcessEvaluator(ds))


def grouped_eval(ds: Dataset, grid: Any = None, **kwargs: Any) -> GroupedResult:
    """SPEC 6: ``grouped_eval_flow`` evaluated in this thread."""
    return drive_sync(grouped_eval_flow(ds, grid, **kwargs), InProcessEvaluator(ds))


def walk_forward(ds: Dataset, grid: Any = None, *, folds: Any, pbo: Any = None,
                 **kwargs: Any) -> WalkForwardResult:
    """SPEC 12: ``walk_forward_flow`` evaluated in this thread."""
    return drive_sync(walk_forward_flow(ds, grid, folds=folds, pbo_spec=pbo, **kwargs),
                      InProcessEvaluator(ds))



def optimize_strategy(bars: BarSet, **kwargs: Any) -> StrategyResult:
    """SPEC 13: ``plan_strategy`` (its keyword arguments) then
    ``optimize_strategy_flow`` (the rest), evaluated in this thread."""
    plan = plan_strategy(bars, **{k: kwargs.pop(k) for k in _PLAN_KEYS if k in kwargs})
    return drive_sync(optimize_strategy_flow(plan, **kwargs), InProcessEvaluator(plan.dataset))
