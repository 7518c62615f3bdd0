"""Issue 12's speed figures (SPEC 11 exits), through the daemon, on data sets
A and B, each next to its baseline from the same run:

- a SPEC 2 grid (the 4,000-point grid of SPEC 9) on this tree and on a
  baseline revision from before SPEC 11 (``--baseline``, default the last
  commit without it), started side by side and timed alternately: the ratio
  must stay near 1 ("no slower than before");
- a 6 tp x 5 sl x 4 hold x 5 trail x 3 activation x 3 breakeven grid (5,400
  points) in capital mode: at least 30 M call x point evaluations per second.

The baseline is extracted with ``git archive`` into a temporary directory
and run with its own kernels (compiled there once, then cached), so both
daemons read the same Parquet files with the same interpreter.

    python bench/bench_spec11.py [--quick] [--runs 3] [--baseline REV]
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from bench_core import BIG_GRID  # noqa: E402
from bench_spec9 import Daemon, Figure, emit, prepare, repeat_runs  # noqa: E402
from gen_b import gen_b_dataset  # noqa: E402

from worker._data.synthetic import synthetic_dataset  # noqa: E402

# The last commit before SPEC 11's kernels (issue 12).
BASELINE = "ab83702"
TRAILING_GRID = {
    "tp_mults": [1.5, 2.0, 2.5, 3.0, 4.0, 5.0],
    "sl_mults": [0.85, 0.88, 0.9, 0.92, 0.95],
    "max_hold_hrs": [1, 6, 24, 48],
    "trail_pct": [None, 0.05, 0.1, 0.15, 0.25],
    "trail_activation": [1.0, 1.1, 1.3],
    "breakeven_trigger": [None, 1.2, 1.5],
}
TRAILING_POINTS = 6 * 5 * 4 * 5 * 3 * 3


def baseline_tree(rev: str, tmp: str) -> str:
    """``rev``'s source in ``tmp/base``, its kernels compiled (``warm``)."""
    root = os.path.join(tmp, "base")
    os.makedirs(root)
    repo = os.path.dirname(HERE)
    archive = subprocess.run(["git", "-C", repo, "archive", rev], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", root], input=archive, check=True)
    subprocess.run([sys.executable, "-m", "worker", "warm"], cwd=root, check=True,
                   env={**os.environ, "PYTHONPATH": root}, capture_output=True)
    return root


def alternate(fns, reps: int) -> list[float]:
    """Median time of each of ``fns``, called in turn ``reps`` times (after one
    warm call each), so a noisy machine slows them alike."""
    for fn in fns:
        fn()
    times = [[] for _ in fns]
    for _ in range(reps):
        for fn, out in zip(fns, times):
            t = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t)
    return [statistics.median(t) for t in times]


def bench_dataset(d, base_root: str, rev: str, tmp: str, args, figs: list[Figure]) -> None:
    ours, base = Daemon(tmp, f"{d.name}-ours"), Daemon(tmp, f"{d.name}-base", root=base_root)
    try:
        calls, candles = d.files["worker"]
        for daemon in (ours, base):
            daemon.call("loadDataset", {"dataset_id": "d", "calls_path": calls,
                                        "candles_path": candles})
        big = {"dataset_id": "d", "param_grid": BIG_GRID}
        t_ours, t_base = alternate([lambda: ours.call("optimize", big),
                                    lambda: base.call("optimize", big)], args.big_reps)
        emit(figs, Figure(f"{d.name} SPEC 2 grid (4,000 pts)", t_ours * 1e3, "ms",
                          f"baseline {rev} {t_base * 1e3:.0f} ms", t_ours / t_base,
                          "<= 1.05x (noise)", t_ours / t_base <= 1.05))
        trailing = {"dataset_id": "d", "param_grid": TRAILING_GRID}
        ours.call("optimize", trailing)
        t = statistics.median(ours.timed("optimize", trailing) for _ in range(args.big_reps))
        rate = d.n_calls * TRAILING_POINTS / t / 1e6
        emit(figs, Figure(f"{d.name} trailing grid (5,400 pts)", rate, "M/s",
                          f"{t * 1e3:.0f} ms; SPEC 2 grid {d.n_calls * 4_000 / t_ours / 1e6:.0f} M/s",
                          rate / 30, ">= 30 M/s", rate >= 30))
        per_trade = {**trailing, "mode": "per_trade"}
        t_pt = statistics.median(ours.timed("optimize", per_trade) for _ in range(args.big_reps))
        emit(figs, Figure(f"{d.name} trailing grid, per-trade", d.n_calls * TRAILING_POINTS / t_pt / 1e6,
                          "M/s", f"{t_pt * 1e3:.0f} ms", None, "info", None))
    finally:
        ours.close()
        base.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="2,000 calls, fewer repetitions")
    ap.add_argument("--runs", type=int, default=1, help="repeat the whole measurement N times")
    ap.add_argument("--baseline", default=BASELINE, help=f"revision to compare (default {BASELINE})")
    args = ap.parse_args()
    calls = 2_000 if args.quick else 10_000
    args.big_reps = 3 if args.quick else 5
    span = 60.0 * calls / 10_000
    with tempfile.TemporaryDirectory(prefix="bench-spec11-") as tmp:
        base_root = baseline_tree(args.baseline, tmp)
        a = prepare("A", synthetic_dataset(n_calls=calls, n_candles=2_880, seed=1), tmp)
        b = prepare("B", gen_b_dataset(calls, 2_880, seed=1, span_days=span), tmp)
        gc.collect()
        print(f"A, B: {calls:,} calls x 2,880 candles (bench_spec9's data sets); "
              f"baseline {args.baseline} from git archive")
        repeat_runs(args.runs, lambda figs: [
            bench_dataset(d, base_root, args.baseline, tmp, args, figs) for d in (a, b)])
    return 0


if __name__ == "__main__":
    sys.exit(main())
