"""SPEC section 9, measured side by side in one run.

Builds a SPEC 9 dataset (10,000 calls x 2,880 one-minute candles, seeded: A,
the demo generator, or with ``--hard`` B, ``bench/gen_b.py``), then prints,
each against a baseline measured in this same process:

- the numpy floor: one pass over ``high`` and ``low`` (``high.max()``, ``low.min()``);
- the default grid (30 points, capital mode) and its ratio to the floor;
- a 20 x 20 x 10 grid (4,000 points): time and call x grid-point evaluations per second,
  in capital mode (with its candle scan and sweeps apart) and in per-trade mode;
- the plain-loop reference (tests/reference) against the kernels on a 300-call subset;
- memory: dataset bytes against raw column bytes, grid working set, peak RSS;
- loading the 28.8 million candles back from Parquet.

    python bench/bench_core.py [--hard] [--grids-only] [--calls 10000] [--candles 2880] [--reps 11]

``--grids-only`` stops after the grid figures (no reference, memory or Parquet).

Timings are medians of ``--reps`` runs after one warm-up run (kernels load
from Numba's on-disk cache; nothing is compiled inside a timed run).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from protocol import ParamGrid, SimulatorConfig  # noqa: E402
from tests import reference  # noqa: E402
from tests._compare import build  # noqa: E402
from worker import dataset_from_files, optimize, synthetic_dataset  # noqa: E402
from worker._core.engine import grid_levels, prepare, run_grid  # noqa: E402
from worker._data.files import write_dataset_files  # noqa: E402

BIG_GRID = {
    "tp_mults": [round(1.2 + 0.25 * i, 2) for i in range(20)],      # 1.2 .. 5.95
    "sl_mults": [round(0.5 + 0.024 * i, 3) for i in range(20)],     # 0.5 .. 0.956
    "max_hold_hrs": [1, 2, 4, 6, 8, 12, 18, 24, 36, 48],
}


def median_seconds(fn, reps: int, warm: int = 1) -> float:
    """Median wall time of ``fn`` over ``reps`` calls, after ``warm`` calls
    (they load kernels from the cache and touch memory)."""
    for _ in range(warm):
        fn()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def reference_input(ds, positions):
    """The reference's (calls, series) for the calls at ``positions``."""
    calls, series = [], {}
    for pos in positions.tolist():
        cid = ds.call_ids[pos]
        calls.append({"id": cid, "caller": ds.caller_names[ds.call_caller[pos]],
                      "mint": ds.call_mints[pos], "ts_ms": int(ds.call_ts_ms[pos])})
        s = ds.call_series[pos]
        if s >= 0:
            lo, hi = ds.series_offsets[s], ds.series_offsets[s + 1]
            series[cid] = list(zip(ds.ts_ms[lo:hi].tolist(), ds.open[lo:hi].tolist(),
                                   ds.high[lo:hi].tolist(), ds.low[lo:hi].tolist(),
                                   ds.close[lo:hi].tolist()))
    return calls, series


def line(name: str, text: str) -> None:
    print(f"{name:<28} {text}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--calls", type=int, default=10_000)
    ap.add_argument("--candles", type=int, default=2_880)
    ap.add_argument("--reps", type=int, default=11)
    ap.add_argument("--subset", type=int, default=300)
    ap.add_argument("--hard", action="store_true", help="data set B (bench/gen_b.py), not A")
    ap.add_argument("--grids-only", action="store_true", help="stop after the grid figures")
    ap.add_argument("--load-only", nargs=2, metavar=("CALLS", "CANDLES"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.load_only:
        return load_only(*args.load_only)

    t = time.perf_counter()
    if args.hard:
        from gen_b import gen_b_dataset  # bench/, beside this file
        ds, name = gen_b_dataset(n_calls=args.calls, n_candles=args.candles, seed=1), "B"
    else:
        ds, name = synthetic_dataset(n_calls=args.calls, n_candles=args.candles, seed=1), "A"
    n = ds.n_calls
    line(f"dataset {name}", f"{n:,} calls x {args.candles:,} candles = {ds.n_candles:,} candles "
                            f"(seed 1, built in {time.perf_counter() - t:.1f} s)")

    floor = median_seconds(lambda: (ds.high.max(), ds.low.min()), args.reps)
    line("numpy floor", f"{floor * 1e3:8.2f} ms  (high.max() + low.min(), one pass each)")

    default = median_seconds(lambda: optimize(ds), args.reps)
    line("default grid (30 pts)", f"{default * 1e3:8.2f} ms  = {default / floor:.2f}x the floor "
                                  f"(target <= 1.5x)")
    cfg = SimulatorConfig()
    levels = grid_levels(ParamGrid(), cfg)
    scan = median_seconds(lambda: prepare(ds, levels), args.reps)
    sweep_in = prepare(ds, levels)
    sweep = median_seconds(lambda: run_grid(sweep_in, None, cfg, "capital"), args.reps)
    line("  of which", f"candle scan {scan * 1e3:.2f} ms, 30 capital sweeps {sweep * 1e3:.2f} ms")

    big_reps = max(3, args.reps // 3)
    big = median_seconds(lambda: optimize(ds, BIG_GRID), big_reps)
    evals = n * 4_000
    line("4,000-point grid", f"{big * 1e3:8.1f} ms  = {evals / big / 1e6:.1f} M call x point "
                             f"evaluations/s (target >= 40 M/s on 2 cores)")
    big_levels = grid_levels(ParamGrid(**BIG_GRID), cfg)
    big_scan = median_seconds(lambda: prepare(ds, big_levels), big_reps)
    big_in = prepare(ds, big_levels)
    big_sweep = median_seconds(lambda: run_grid(big_in, None, cfg, "capital"), big_reps)
    line("  of which", f"candle scan {big_scan * 1e3:.1f} ms, 4,000 capital sweeps "
                       f"{big_sweep * 1e3:.1f} ms")
    per_trade = median_seconds(lambda: optimize(ds, BIG_GRID, mode="per_trade"), big_reps)
    line("4,000-point, per-trade", f"{per_trade * 1e3:8.1f} ms  = {evals / per_trade / 1e6:.1f} M "
                                   f"call x point evaluations/s")
    if args.grids_only:
        return

    rng = np.random.default_rng(3)
    subset = np.sort(rng.choice(n, size=min(args.subset, n), replace=False))
    calls, series = reference_input(ds, subset)
    small = build(calls, series, "call_id")
    fast = median_seconds(lambda: optimize(small), args.reps)
    t = time.perf_counter()
    reference.optimize(calls, series, "call_id", {"tp_mults": [1.5, 2, 2.5, 3, 4, 5],
                       "sl_mults": [0.85, 0.88, 0.9, 0.92, 0.95]}, {})
    slow = time.perf_counter() - t
    line(f"reference, {len(calls)} calls", f"{slow * 1e3:8.1f} ms  plain loops, default grid")
    line(f"kernels, {len(calls)} calls", f"{fast * 1e3:8.2f} ms  = {slow / fast:,.0f}x faster "
                                         f"than the reference")

    raw = ds.n_candles * 6 * 8 + n * 8
    line("memory: dataset", f"{ds.nbytes / 2**20:8.1f} MiB = {ds.nbytes / raw:.3f}x its raw "
                            f"int64/float64 column bytes (target <= 1.3x)")
    extra = sum(a.nbytes for a in big_in.hits) + big_in.calls.nbytes
    line("memory: 4,000-pt grid", f"{extra / 2**20:8.1f} MiB of first-hit levels "
                                  f"({n:,} calls x 50 distinct levels)")
    line("memory: peak RSS", f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10:8.0f} MiB "
                             f"(includes building the synthetic data)")

    with tempfile.TemporaryDirectory() as tmp:
        calls_path, candles_path = os.path.join(tmp, "calls.parquet"), os.path.join(tmp, "candles.parquet")
        write_dataset_files(ds, calls_path, candles_path)
        # Each load in a fresh process, as a worker starting up would pay it.
        loads = sorted(float(subprocess.run(
            [sys.executable, __file__, "--load-only", calls_path, candles_path],
            check=True, capture_output=True, text=True).stdout) for _ in range(3))
    line("load from Parquet", f"{loads[1] * 1e3:8.1f} ms  for {ds.n_candles:,} candles, median of "
                              f"3 fresh processes (min {loads[0] * 1e3:.0f} ms; target < 1 s)")


def load_only(calls_path: str, candles_path: str) -> None:
    t = time.perf_counter()
    dataset_from_files(calls_path, candles_path)
    print(time.perf_counter() - t)


if __name__ == "__main__":
    main()
