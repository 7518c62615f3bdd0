"""SPEC 14: the same grid on the local process pool and on a local Ray
cluster (a head and a second node on this machine, ``ray.cluster_utils``),
so the Ray executor's overhead on one machine is a ratio; plus the task
count and sizes, to estimate the scaling to N nodes.

    .venv/bin/python bench/bench_ray.py [--quick] [--runs N]

Needs the ray extra (requirements-ray.lock). Both executors get the same
CPUs (``--cpus``, default 2: pool size 2; Ray: two nodes of one CPU each) and
evaluate the same optimize request (the default grid unless ``--quick``);
the answers are checked equal before any time is printed.

Estimating N nodes: the cluster run costs about ``tasks x per-task
overhead + dataset bytes x nodes / network bandwidth`` on top of the grid
work, which divides by the total CPUs; the figures give the first (the
overhead line, per task) and the sizes (dataset put once per request, fetched
once per node; each job's spec put once; a task's result rows).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import anyio  # noqa: E402
import msgspec  # noqa: E402

from bench_core import BIG_GRID  # noqa: E402
from bench_spec9 import Figure, emit, repeat_runs  # noqa: E402
from worker._core.layouts import RESULT_WIDTHS  # noqa: E402
from worker._core.optimize import optimize_flow  # noqa: E402
from worker._core.validate import grid_size  # noqa: E402
from worker._data.synthetic import synthetic_dataset  # noqa: E402
from worker._pool.evaluator import PoolEvaluator  # noqa: E402
from worker._pool.pool import WorkerPool  # noqa: E402
from worker._ray import RayEvaluator  # noqa: E402
from worker._ray.connect import disconnect  # noqa: E402
from worker._run.drive import drive  # noqa: E402

QUICK_GRID = {"tp_mults": [1.2, 1.5, 2, 2.5, 3, 4], "sl_mults": [0.8, 0.85, 0.9, 0.95],
              "max_hold_hrs": [2, 6, 12, 24]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="2,000 calls, a 96-point grid")
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--cpus", type=int, default=2)
    args = ap.parse_args()
    from protocol import ParamGrid
    from ray.cluster_utils import Cluster

    n_calls = 2_000 if args.quick else 5_000
    # Enough points for many spans (tasks): the per-task overhead is measurable.
    grid = QUICK_GRID if args.quick else BIG_GRID
    points = grid_size(ParamGrid(**grid) if grid else ParamGrid())
    ds = synthetic_dataset(n_calls=n_calls, n_candles=600, n_callers=25, seed=7)
    print(f"dataset: {n_calls:,} calls, {ds.n_candles:,} candles, {ds.nbytes / 2**20:.1f} MiB; "
          f"grid {points:,} points = {n_calls * points / 1e6:.1f} M evaluations", flush=True)

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    for _ in range(args.cpus - 1):
        cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()

    async def on_pool() -> tuple[float, object]:
        async with WorkerPool(args.cpus) as pool:
            ev = PoolEvaluator(pool, ds)
            async with ev:
                await drive(optimize_flow(ds, grid), ev)        # each process scans once: warm
                t = time.perf_counter()
                result = await drive(optimize_flow(ds, grid), ev)
                return time.perf_counter() - t, result

    async def on_ray() -> tuple[float, object, RayEvaluator]:
        # drive() enters the evaluator (its dataset put is the request's).
        await drive(optimize_flow(ds, grid), RayEvaluator(ds, cluster.address))  # warm
        ev = RayEvaluator(ds, cluster.address)
        t = time.perf_counter()
        result = await drive(optimize_flow(ds, grid), ev)
        return time.perf_counter() - t, result, ev

    def one_run(figs: list[Figure]) -> None:
        pool_s, want = anyio.run(on_pool)
        ray_s, got, ev = anyio.run(on_ray)
        assert msgspec.json.encode(got) == msgspec.json.encode(want), "answers differ"
        emit(figs, Figure(f"optimize, pool of {args.cpus}", pool_s, "s", "-", None, "-", None))
        emit(figs, Figure(f"optimize, Ray {args.cpus} nodes x 1 CPU", ray_s, "s",
                          f"pool of {args.cpus}: {pool_s:.3f} s", ray_s / pool_s,
                          "info (one machine)", None))
        per_task = max(0.0, ray_s - pool_s) / max(1, ev.tasks)
        emit(figs, Figure("Ray overhead per task", per_task * 1e3, "ms",
                          f"{ev.tasks} tasks over the pool's time", None, "-", None))
        emit(figs, Figure("Ray tasks", ev.tasks, "n", f"spans of ~{ev.span_seconds:g} s",
                          None, "-", None))
        emit(figs, Figure("Ray bytes put: dataset", ds.nbytes / 2**20, "MiB",
                          "once per request; fetched once per node", None, "-", None))
        emit(figs, Figure("Ray bytes put: jobs", (ev.task_bytes - ds.nbytes) / 2**20, "MiB",
                          "each job's spec once", None, "-", None))
        row = sum(RESULT_WIDTHS) * 8
        emit(figs, Figure("result bytes per task (mean)", n_calls and points * row / ev.tasks / 1024,
                          "KiB", f"{points:,} rows x {row} B", None, "-", None))

    try:
        repeat_runs(args.runs, one_run)
    finally:
        disconnect()
        cluster.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
