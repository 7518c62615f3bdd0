"""The Ray evaluator (SPEC 14, worker._ray) against a real local cluster: a
head and a second node started here with Ray's own ``cluster_utils``.

Equal to the in-process evaluator to the bit (every job's result arrays,
then the answer) on optimize, per-caller, grouped, walk-forward and
strategy requests, also under a checkpoint; a Ray worker process killed
mid-request (its task retried, the answer exact); cancel; an unreachable
address (the request fails naming it, the daemon keeps answering).

Marked ``ray`` and skipped when ray is not installed (the default install);
``.ci/run`` installs requirements-ray.lock and runs ``pytest -q -m ray``.
"""

from __future__ import annotations

import inspect
import json
import os
import signal
import sys
import time

import msgspec
import numpy as np
import pytest

ray = pytest.importorskip("ray", reason="the ray extra is not installed")

import anyio  # noqa: E402

from worker._core.callers import grouped_eval_flow, optimize_per_caller_flow  # noqa: E402
from worker._core.jobs import recorded  # noqa: E402
from worker._core.optimize import optimize_flow  # noqa: E402
from worker._core.walkforward import walk_forward_flow  # noqa: E402
from worker._data.synthetic import synthetic_dataset  # noqa: E402
from worker._errors import InternalError  # noqa: E402
from worker._ray import RayEvaluator, RayExecutor  # noqa: E402
from worker._ray.connect import disconnect  # noqa: E402
from worker._run.drive import drive, drive_sync  # noqa: E402
from worker._run.evaluators import InProcessEvaluator  # noqa: E402

pytestmark = pytest.mark.ray

GRID = {"tp_mults": [1.5, 2, 3], "sl_mults": [0.85, 0.9], "max_hold_hrs": [6, 24]}
UNREACHABLE = "127.0.0.1:9"   # discard port: nothing listens


@pytest.fixture(scope="module")
def cluster():
    from ray.cluster_utils import Cluster

    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    c.add_node(num_cpus=1)
    c.wait_for_nodes()
    yield c
    disconnect()
    c.shutdown()


@pytest.fixture(scope="module")
def ds():
    return synthetic_dataset(n_calls=300, n_candles=400, n_callers=6, seed=3)


def same(a, b) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b, equal_nan=True)


def run_both(flow_of, evaluator, ds):
    """Every job's arrays and the answer, in-process and on ``evaluator``."""
    want_jobs, got_jobs = [], []
    want = drive_sync(recorded(flow_of(), want_jobs), InProcessEvaluator(ds))

    async def main():
        async with evaluator:
            return await drive(recorded(flow_of(), got_jobs), evaluator)

    got = anyio.run(main)
    assert len(got_jobs) == len(want_jobs) >= 1
    for (_, g), (_, w) in zip(got_jobs, want_jobs):
        assert all(same(x, y) for x, y in zip(g, w))
    assert msgspec.json.encode(got) == msgspec.json.encode(want)
    return evaluator


FLOWS = {
    "optimize": lambda ds: optimize_flow(ds, GRID, top_k=5),
    "per_caller": lambda ds: optimize_per_caller_flow(ds, GRID),
    "grouped": lambda ds: grouped_eval_flow(ds, GRID),
    "walk_forward": lambda ds: walk_forward_flow(
        ds, GRID, folds={"scheme": "rolling", "train_days": 0.6, "test_days": 0.3},
        pbo_spec={"blocks": 4}),
}


@pytest.mark.parametrize("kind", list(FLOWS))
def test_equal_to_in_process(cluster, ds, kind):
    ev = run_both(lambda: FLOWS[kind](ds), RayEvaluator(ds, cluster.address, span_seconds=1e-5),
                  ds)
    assert ev.tasks > 1 and ev.concurrency == 2


def test_strategy_equal_to_in_process(cluster, tmp_path):
    from tests.test_daemon_strategy import SMALL, write_bars
    from worker._core.strategy import plan_strategy
    from worker._core.strategy_search import optimize_strategy_flow
    from worker._data.bars import load_bars

    bars = load_bars(write_bars(tmp_path / "bars"))
    plan = plan_strategy(bars, strategy=SMALL["strategy"], strategy_grid=SMALL["strategy_grid"],
                         timeframes=SMALL["timeframes"], grid=SMALL["param_grid"])
    run_both(lambda: optimize_strategy_flow(plan, include_all=True),
             RayEvaluator(plan.dataset, cluster.address, span_seconds=1e-5), plan.dataset)


def test_checkpointed_counts_each_chunk_once(cluster, ds, tmp_path):
    from worker._run.checkpoint import CheckpointingEvaluator
    from worker._run.journal import Journal

    want = drive_sync(FLOWS["per_caller"](ds), InProcessEvaluator(ds))
    done = []

    async def main():
        inner = RayEvaluator(ds, cluster.address, span_seconds=1e-5)
        journal = Journal.open(tmp_path / "journal", "ray-test")
        try:
            ev = CheckpointingEvaluator(inner, journal, on_progress=lambda d, t: done.append((d, t)))
            async with ev:
                result = await drive(FLOWS["per_caller"](ds), ev)
            return result, ev.stats, journal.chunks_done, journal.items_done
        finally:
            journal.close()

    got, stats, chunks, items = anyio.run(main)
    assert msgspec.json.encode(got) == msgspec.json.encode(want)
    assert stats.failed == [] and stats.chunks_computed == stats.chunks_total == chunks
    assert items == stats.items_total and done[-1][0] == done[-1][1] == items
    assert all(a[0] <= b[0] for a, b in zip(done, done[1:]))


BIG_GRID = {"tp_mults": [1.2, 1.4, 1.6, 1.8, 2, 2.25, 2.5, 2.75, 3, 3.5, 4, 5],
            "sl_mults": [0.75, 0.8, 0.83, 0.85, 0.88, 0.9, 0.93, 0.95],
            "max_hold_hrs": [1, 2, 4, 6, 8, 12, 18, 24]}


def until(condition, what: str, timeout: float = 60.0) -> None:
    """Ray pushes no event for a task's state: ask its state API until
    ``condition()`` holds (each query is a round trip to the cluster, which
    paces the loop); fail after ``timeout`` seconds, a hang guard."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"


def test_killed_worker_is_retried_and_exact(cluster):
    from ray.util.state import list_tasks, list_workers

    big = synthetic_dataset(n_calls=6000, n_candles=600, n_callers=4, seed=5)
    grid = {**BIG_GRID, "tp_mults": [1.1 + 0.15 * i for i in range(24)],
            "sl_mults": [0.7 + 0.018 * i for i in range(16)]}
    want = drive_sync(optimize_flow(big, grid), InProcessEvaluator(big))
    killed = []

    def kill_workers():
        # Every Ray worker process of the cluster, while the request's tasks run.
        for w in list_workers(filters=[("worker_type", "=", "WORKER"), ("is_alive", "=", True)],
                              raise_on_missing_output=False):
            if w.pid and w.pid != os.getpid():
                try:
                    os.kill(w.pid, signal.SIGKILL)
                    killed.append(w.pid)
                except ProcessLookupError:
                    pass

    async def main():
        # Worker processes started and their kernels loaded first, so the kill
        # below lands while the request's one long task (~1 s) runs.
        async with RayEvaluator(big, cluster.address, span_seconds=1e-3) as warm:
            await drive(optimize_flow(big, GRID), warm)
        ev = RayEvaluator(big, cluster.address, span_seconds=5)
        async with ev, anyio.create_task_group() as tg:
            async def killer():
                # Kill once the request's task is running (not merely queued).
                await anyio.to_thread.run_sync(lambda: until(
                    lambda: list_tasks(filters=[("name", "=", "run_span"),
                                                ("state", "=", "RUNNING")],
                                       raise_on_missing_output=False),
                    "the request's task to run"))
                await anyio.to_thread.run_sync(kill_workers)

            tg.start_soon(killer)
            result = await drive(optimize_flow(big, grid), ev)
            tg.cancel_scope.cancel()
            return result

    got = anyio.run(main)
    assert killed, "no Ray worker process was found"
    assert msgspec.json.encode(got) == msgspec.json.encode(want)
    until(lambda: any(t.attempt_number > 0 for t in list_tasks(
        filters=[("name", "=", "run_span")], limit=10_000, raise_on_missing_output=False)),
        "a retried attempt of the killed workers' task")


def test_cancel_cancels_the_requests_tasks(cluster):
    from ray.util.state import list_tasks

    big = synthetic_dataset(n_calls=3000, n_candles=600, n_callers=4, seed=6)
    seen = []

    async def main():
        ev = RayEvaluator(big, cluster.address, span_seconds=0.0002)
        with anyio.CancelScope() as scope:
            def progressed(*a):  # cancel at the first finished span
                seen.append(a)
                scope.cancel()

            await drive(optimize_flow(big, BIG_GRID), ev, on_progress=progressed)
        return ev, scope.cancelled_caught

    before = {t.task_id for t in list_tasks(filters=[("name", "=", "run_span")], limit=10_000,
                                            raise_on_missing_output=False)}
    ev, cancelled = anyio.run(main)
    assert cancelled and seen
    assert ev.tasks > 10

    def request_tasks():
        return [t for t in list_tasks(filters=[("name", "=", "run_span")], limit=10_000,
                                      raise_on_missing_output=False) if t.task_id not in before]

    # Every task of the request ends: finished before the cancel, or cancelled.
    until(lambda: (tasks := request_tasks()) and {t.state for t in tasks} <= {"FINISHED", "FAILED"},
          "every task of the request to end")
    tasks = request_tasks()
    states = {t.state for t in tasks}
    assert "FAILED" in states, states   # cancelled before they ran
    assert sum(t.state == "FINISHED" for t in tasks) < ev.tasks


def test_unreachable_address_fails_naming_it(ds):
    async def main():
        async with RayEvaluator(ds, UNREACHABLE, connect_timeout=2):
            pass

    with pytest.raises(InternalError) as e:
        anyio.run(main)
    assert UNREACHABLE in e.value.message and e.value.code == -32603


# ------------------------------------------------------------ the daemon

LAUNCH = r"""
import sys, inspect
from worker._daemon import methods
if "_ray" not in inspect.getsource(methods.Worker._evaluator):
    # worker/_ray/select.py's change to Worker._evaluator, until it is applied.
    from worker._ray.select import current
    plain = methods.Worker._evaluator
    def _evaluator(self, ds, shared, p):
        from protocol import ParamGrid
        from worker._core.validate import grid_size
        ray = current()
        if ray is not None and ds.n_calls * grid_size(p.param_grid or ParamGrid()) > self.settings.local_evaluations:
            return ray.evaluator(ds)
        return plain(self, ds, shared, p)
    methods.Worker._evaluator = _evaluator
from worker._cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_daemon_unreachable_cluster_fails_the_request_and_keeps_serving(tmp_path):
    import subprocess

    from tests._daemon import LineClient, worker_env
    from tests.test_daemon import cli_payload

    proc = subprocess.Popen([sys.executable, "-c", LAUNCH, "serve", "--executor", "ray",
                             "--ray-address", UNREACHABLE, "--local-evaluations", "0"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, env=worker_env(), cwd=str(tmp_path))

    def write(data: bytes) -> None:
        proc.stdin.write(data)
        proc.stdin.flush()

    client = LineClient(proc.stdout, write)
    try:
        resp = client.call("optimize", {**cli_payload(), "param_grid": GRID})
        assert resp["error"]["code"] == -32603, resp
        assert UNREACHABLE in resp["error"]["message"], resp
        assert client.result("ping") == {}
    finally:
        proc.kill()
        proc.wait()


def test_executor_is_only_a_choice_of_where(ds):
    ex = RayExecutor(address="10.0.0.1:6379")
    ev = ex.evaluator(ds)
    assert isinstance(ev, RayEvaluator) and ev.address == "10.0.0.1:6379"
