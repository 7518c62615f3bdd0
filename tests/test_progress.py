"""``$/progress`` from its first message (issue 9): ``begin`` waits until
the work is known, and ``best`` carries the best feasible point so far,
ranked as the answer ranks it."""

from __future__ import annotations

import pytest

import worker
from tests._daemon import Daemon
from tests.test_daemon import cli_payload
from worker._core.engine import grid_levels
from worker._core.jobs import GridJob, evaluate
from worker._core.optimize import job_score, make_study
from worker._daemon.progress import Progress
from worker._data.synthetic import synthetic_dataset

GRID = {"tp_mults": [1.5, 2, 3, 4], "sl_mults": [0.7, 0.8, 0.9], "max_hold_hrs": [6, 24, 48]}


class Ctx:
    def __init__(self):
        self.sent = []

    async def notify(self, method, params):
        self.sent.append(params.value)


@pytest.mark.anyio
async def test_begin_waits_until_the_work_is_known():
    ctx = Ctx()
    progress = Progress(ctx, "t", "runs")
    await progress.tick_once()          # a resumed run still reading its journal
    await progress.tick_once()
    assert ctx.sent == []
    progress.set_done(9_818, 108_000)   # the journal is read: earlier work counts
    await progress.tick_once()
    assert [(v.kind, v.done, v.total) for v in ctx.sent] == [("begin", 9_818, 108_000)]
    await progress.tick_once()          # nothing changed: no report
    assert len(ctx.sent) == 1


@pytest.fixture(scope="module")
def ds():
    return synthetic_dataset(n_calls=120, n_candles=400, n_callers=4, seed=9)


@pytest.mark.parametrize("study_args", [
    {}, {"minimize": True, "objective": "max_drawdown"},
    {"constraints": {"min_trades": 10**6}},  # nothing feasible: no best
])
def test_best_of_spans_in_any_order_is_the_answers_best(ds, study_args):
    study = make_study(ds, grid=GRID, **study_args)
    job = GridJob(grid_levels(study.grid, study.config), study.positions, None, study.config,
                  study.mode, score=job_score(study))
    progress = Progress(Ctx(), "t", "runs")
    spans = [(a, min(job.n_items, a + 5)) for a in range(0, job.n_items, 5)]
    for a, b in reversed(spans):  # a pool finishes spans in any order
        progress.offer_rows(job, a, evaluate(ds, job, (a, b)))
    answer = worker.optimize(ds, GRID, **study_args)
    if answer.best_params is None:
        assert progress._best is None
        return
    best = progress._best[2]
    assert best.params == answer.best_params
    assert best.value == getattr(answer.best_metrics, study.objective)
    assert best.objective == study.objective


def test_progress_reports_carry_best_over_the_daemon():
    d = Daemon("--pool-size", "0", "--local-evaluations", "1000")
    try:
        c = d.client
        c.result("loadDataset", {"dataset_id": "p", **cli_payload(n_calls=200, n_candles=300)})
        grid = {"tp_mults": [round(1.1 + 0.1 * i, 1) for i in range(30)],
                "sl_mults": [0.6, 0.7, 0.8, 0.9], "max_hold_hrs": [6, 12, 24, 48]}
        res = c.result("optimize", {"dataset_id": "p", "param_grid": grid, "progress_token": "b"})
        values = [n["params"]["value"] for n in c.notifications
                  if n["method"] == "$/progress" and n["params"]["token"] == "b"]
        assert values[0]["kind"] == "begin" and values[0]["total"] == 480
        end = values[-1]
        assert end["kind"] == "end" and end["best"]["params"] == res["best_params"]
        assert end["best"]["value"] == res["best_final_capital"]
        assert end["best"]["objective"] == "final_capital"
        # The best so far never gets worse.
        seen = [v["best"]["value"] for v in values if v["best"] is not None]
        assert seen == sorted(seen)
    finally:
        d.kill()


def test_pool_and_checkpointed_progress_carry_the_answers_best(files, tmp_path):
    d = Daemon("--pool-size", "2", "--local-evaluations", "0")
    grid = {"tp_mults": [1.5, 2, 3, 4, 5], "sl_mults": [0.6, 0.7, 0.8, 0.9],
            "max_hold_hrs": [6, 12, 24, 48]}
    try:
        c = d.client
        c.result("loadDataset", {"dataset_id": "f", **files})
        for token, extra in (("pool", {}), ("ckpt", {"run_id": "r", "checkpoint_dir": str(tmp_path)})):
            res = c.result("optimize", {"dataset_id": "f", "param_grid": grid,
                                        "progress_token": token, **extra})
            end = [n["params"]["value"] for n in c.notifications
                   if n["method"] == "$/progress" and n["params"]["token"] == token][-1]
            assert end["kind"] == "end" and end["best"]["params"] == res["best_params"], token
            assert end["best"]["value"] == res["best_final_capital"], token
    finally:
        d.kill()
