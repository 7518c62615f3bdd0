"""SPEC 12 on per-caller and grouped runs: a caller's answer under plateau,
stress lanes and ``rank_by`` is ``optimize``'s on that caller's calls alone
(whose SPEC 12 numbers are checked against the reference in
``test_robust_vs_reference``): best params, best metrics, deflated Sharpe."""

from __future__ import annotations

import msgspec
import pytest

import worker
from worker._data.synthetic import synthetic_dataset

GRID = {"tp_mults": [1.5, 2, 3], "sl_mults": [0.8, 0.9], "trail_pct": [None, 0.15]}


@pytest.fixture(scope="module")
def ds():
    return synthetic_dataset(n_calls=240, n_candles=300, n_callers=4, seed=21)


@pytest.mark.parametrize("robust", [
    {"rank_by": "plateau"},
    {"stress": "full", "rank_by": "maximin"},
    {"stress": [{"name": "fees", "taker_fee_bps": 80}], "plateau": {"radius": 1, "stat": "min"},
     "rank_by": "plateau"},
    {"objective": "sharpe"},
], ids=["plateau", "maximin", "custom-lane-min-plateau", "sharpe"])
def test_a_callers_result_is_optimize_on_its_calls(ds, robust):
    per = worker.optimize_per_caller(ds, GRID, **robust).per_caller_results
    assert len(per) == 4
    for name, result in per.items():
        alone = worker.optimize(ds, GRID, caller_groups=[name], **robust)
        assert result.best_params == alone.best_params, name
        assert msgspec.to_builtins(result.best_metrics) == msgspec.to_builtins(alone.best_metrics)
        assert result.deflated_sharpe == alone.deflated_sharpe


def test_grouped_optimize_uses_rank_by_on_the_selected_callers(ds):
    res = worker.grouped_eval(ds, GRID, grouped_params="optimize", stress="basic",
                              rank_by="maximin", filter_collapsed=False, filter_extreme=False)
    alone = worker.optimize(ds, GRID, caller_groups=res.selected_callers, stress="basic",
                            rank_by="maximin")
    assert res.selected_callers and res.grouped_params == alone.best_params
