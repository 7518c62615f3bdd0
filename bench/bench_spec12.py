"""Issue 13's speed figures (SPEC 12), through the daemon on data set B (and
A), each a ratio to one ``optimize`` of the same 4,000-point grid in the
same run, timed alternately so a noisy machine slows them alike:

- ``walkForward`` with 8 rolling folds (train 20 days, test 5: every fold's
  train and test sets plus the full data, one job): at most 4x;
- the probability of backtest overfitting with 16 blocks, as what it adds to
  that walkForward request: at most 1.5x;
- ``optimize`` with the ``full`` stress preset (5 lanes, the baseline lane
  is the request's own run): at most 6x.

    python bench/bench_spec12.py [--quick] [--runs 3]
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from bench_core import BIG_GRID  # noqa: E402
from bench_spec9 import Daemon, Figure, emit, prepare, repeat_runs  # noqa: E402
from bench_spec11 import alternate  # noqa: E402
from gen_b import gen_b_dataset  # noqa: E402

from worker._data.synthetic import synthetic_dataset  # noqa: E402

FOLDS = {"scheme": "rolling", "train_days": 20, "test_days": 5}


def bench_dataset(d, tmp: str, args, figs: list[Figure], span_days: float) -> None:
    daemon = Daemon(tmp, f"{d.name}-spec12")
    # Folds in days scale with the calls' span; the train window takes what is
    # left after 8 test windows (~20 days of 60), so there are exactly 8 folds.
    test = FOLDS["test_days"] * span_days / 60.0
    folds = {**FOLDS, "test_days": test,
             "train_days": math.floor((span_days - 8 * test) * 1000) / 1000}
    try:
        calls, candles = d.files["worker"]
        daemon.call("loadDataset", {"dataset_id": "d", "calls_path": calls, "candles_path": candles})
        base = {"dataset_id": "d", "param_grid": BIG_GRID}
        wf = {**base, "folds": folds}
        t_opt, t_wf, t_pbo, t_stress = alternate([
            lambda: daemon.call("optimize", base),
            lambda: daemon.call("walkForward", wf),
            lambda: daemon.call("walkForward", {**wf, "pbo": {"blocks": 16}}),
            lambda: daemon.call("optimize", {**base, "stress": "full"}),
        ], args.reps)
        n_folds = len(daemon.call("walkForward", wf)["folds"])
        emit(figs, Figure(f"{d.name} walkForward, {n_folds} rolling folds", t_wf * 1e3, "ms",
                          f"optimize {t_opt * 1e3:.0f} ms", t_wf / t_opt, "<= 4x",
                          t_wf / t_opt <= 4))
        added = t_pbo - t_wf
        emit(figs, Figure(f"{d.name} PBO, 16 blocks (added)", added * 1e3, "ms",
                          f"optimize {t_opt * 1e3:.0f} ms", added / t_opt, "<= 1.5x",
                          added / t_opt <= 1.5))
        emit(figs, Figure(f"{d.name} optimize, stress full", t_stress * 1e3, "ms",
                          f"optimize {t_opt * 1e3:.0f} ms", t_stress / t_opt, "<= 6x",
                          t_stress / t_opt <= 6))
    finally:
        daemon.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="2,000 calls, fewer repetitions")
    ap.add_argument("--runs", type=int, default=1, help="repeat the whole measurement N times")
    args = ap.parse_args()
    calls = 2_000 if args.quick else 10_000
    args.reps = 2 if args.quick else 3
    span = 60.0 * calls / 10_000
    with tempfile.TemporaryDirectory(prefix="bench-spec12-") as tmp:
        b = prepare("B", gen_b_dataset(calls, 2_880, seed=1, span_days=span), tmp)
        a = prepare("A", synthetic_dataset(n_calls=calls, n_candles=2_880, seed=1), tmp)
        gc.collect()
        print(f"A, B: {calls:,} calls x 2,880 candles (bench_spec9's data sets); "
              f"grid: bench_core.BIG_GRID (4,000 points)")
        repeat_runs(args.runs, lambda figs: (bench_dataset(b, tmp, args, figs, _span_days(b)),
                                             bench_dataset(a, tmp, args, figs, _span_days(a))))
    return 0


def _span_days(d) -> float:
    import pyarrow.parquet as pq
    ts = pq.read_table(d.files["worker"][0], columns=["ts_ms"]).column("ts_ms").to_numpy()
    return (int(ts.max()) - int(ts.min()) + 1) / 86_400_000


if __name__ == "__main__":
    sys.exit(main())
