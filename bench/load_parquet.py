"""Time ``dataset_from_files`` on Parquet (SPEC 9: 28.8M candles in < 1 s).

Writes 10,000 series x 2,880 one-minute candles (keyed by call id) with
``write_dataset_files`` once, then loads it in fresh processes, so each load
pays for its own memory as a worker would. Prints one JSON line.

    python bench/load_parquet.py [--series 10000] [--candles 2880] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from worker._dataset import CandleColumns, KeyColumn, build_dataset  # noqa: E402
from worker._loaders import dataset_from_files, write_dataset_files  # noqa: E402

T0 = 1_767_225_600_000


def write(calls_path: str, candles_path: str, n_series: int, n_candles: int) -> None:
    rng = np.random.default_rng(1)
    ids = [f"call-{i:06d}-{'0' * 32}" for i in range(n_series)]  # mint-like length
    start = T0 + rng.integers(0, 30 * 1440, n_series) * 60_000
    ts = (start[:, None] + np.arange(n_candles) * 60_000).ravel()
    close = np.exp(np.cumsum(rng.normal(0, 0.01, (n_series, n_candles)), axis=1)).ravel()
    open_ = close * np.exp(rng.normal(0, 0.002, close.size))
    ds = build_dataset(
        call_ids=ids, call_callers=[f"caller-{i % 50}" for i in range(n_series)],
        call_mints=ids, call_ts_ms=start + 90_000,
        candles=CandleColumns(
            keys=KeyColumn(names=ids, chunks=[(np.repeat(np.arange(n_series), n_candles),
                                               None)]),
            ts_ms=ts, open=open_, high=np.maximum(open_, close) * 1.001,
            low=np.minimum(open_, close) * 0.999, close=close,
            volume=rng.exponential(1000.0, close.size)),
        series_key="call_id", on_bad_series="error", candles_sorted=True)
    write_dataset_files(ds, calls_path, candles_path)


def load_once(calls_path: str, candles_path: str) -> None:
    t = time.perf_counter()
    ds = dataset_from_files(calls_path, candles_path)
    seconds = time.perf_counter() - t
    raw = ds.n_candles * 6 * 8
    print(json.dumps({"seconds": seconds, "candles": ds.n_candles,
                      "bytes_ratio": ds.nbytes / raw}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--series", type=int, default=10_000)
    ap.add_argument("--candles", type=int, default=2_880)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--dir", default="/tmp/optimizer-bench")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    calls_path = os.path.join(args.dir, f"calls-{args.series}x{args.candles}.parquet")
    candles_path = os.path.join(args.dir, f"candles-{args.series}x{args.candles}.parquet")
    if args.child:
        return load_once(calls_path, candles_path)
    if not os.path.exists(candles_path):
        os.makedirs(args.dir, exist_ok=True)
        write(calls_path, candles_path, args.series, args.candles)
    runs = []
    for _ in range(args.repeat):
        out = subprocess.run(
            [sys.executable, __file__, "--child", "--dir", args.dir,
             "--series", str(args.series), "--candles", str(args.candles)],
            check=True, capture_output=True, text=True).stdout
        runs.append(json.loads(out))
    secs = sorted(r["seconds"] for r in runs)
    print(json.dumps({"bench": "load_parquet", "candles": runs[0]["candles"],
                      "seconds_min": round(secs[0], 3),
                      "seconds_median": round(secs[len(secs) // 2], 3),
                      "seconds_all": [round(r["seconds"], 3) for r in runs],
                      "bytes_ratio": round(runs[0]["bytes_ratio"], 4),
                      "target_seconds": 1.0}))


if __name__ == "__main__":
    main()
