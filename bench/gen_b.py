"""Data set B of SPEC section 9: seeded, independent of the demo generator,
built to be hard for the kernels and the capital sweep.

Properties (checked by ``tests/test_gen_b.py``):

- ``n_calls`` calls (default 10,000), each with its own series (keyed by call
  id) of ``n_candles`` one-minute candles (default 2,880: 48 hours);
  ``n_callers`` callers (default 40) with Zipf-like call counts.
- Alert times uniform over ``span_days`` (default 60) from 2026-02-01, to the
  millisecond, in random row order (the calls table is not sorted by time).
- A call's series starts on the minute of its alert minus 0 to 15 minutes, so
  the entry candle is one of the first 16, and most 48 h holds reach the end
  of the data.
- Prices: a random walk in log price (close to close) with a small upward
  drift (+0.005 % a minute, so fees do not drain the account to its minimum
  size) and a per-call volatility ``sigma`` in [1 %, 6 %] per minute
  (``1 % + 5 % * U ** 1.5``: weighted toward the low end, about 40 % of calls
  under 2.3 %, so positions stay open for hours); the steps of each series
  are normalised to sample standard deviation exactly ``sigma`` before pumps
  are added. Rare pumps: about 6 % of calls rise 1.5x to 8x over 3 to 20
  minutes, once. Opens are the previous close; highs and lows add
  exponential wicks (mean 0.5 ``sigma``); the first close is a per-call
  price between 1e-8 and 1. Every candle is valid per SPEC 1 (strictly
  increasing times, finite prices > 0, low <= open, close <= high).
- With the default grid and config, on 10,000 calls over 60 days (seed 1),
  most grid points keep most calls trading (median 8,443 trades over the 30
  points, mean 8,144, 22 points at 7,000 or more) while the 25-position
  account is often full: 27 of 30 points skip calls for ``max_positions``
  (median 1,557 skips). A smaller instance with the same density (calls per
  day: 1,000 calls over 6 days) behaves the same.

Fully vectorised numpy, built in blocks of calls (one generator, drawn in a
fixed order, so a seed gives the same data whatever the machine): 28.8 M
candles take a few seconds.

    python bench/gen_b.py OUT_DIR [--calls 10000] [--candles 2880] [--seed 1] [--style worker|pyarrow]

writes ``OUT_DIR/calls.parquet`` and ``OUT_DIR/candles.parquet``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from worker._core.dataset import Dataset  # noqa: E402
from worker._data.synthetic import from_synthetic_columns  # noqa: E402

__all__ = ["gen_b_columns", "gen_b_dataset", "write_parquet", "SIGMA_RANGE", "SPAN_DAYS"]

MINUTE_MS = 60_000
START_MS = 1_769_904_000_000       # 2026-02-01T00:00:00Z
SPAN_DAYS = 60.0
SIGMA_RANGE = (0.01, 0.06)         # per-minute volatility of log close
PUMP_RATE = 0.06
MAX_LEAD_MIN = 15
SIGMA_POWER = 1.5                  # sigma = lo + (hi - lo) * U ** SIGMA_POWER
DRIFT = 5e-5                        # per-minute drift of log close (+0.7 % an hour)
_BLOCK = 512                        # calls per block: ~1.5 M candles, cache friendly


def gen_b_columns(n_calls: int = 10_000, n_candles: int = 2_880, n_callers: int = 40,
                  seed: int = 1, span_days: float = SPAN_DAYS) -> dict:
    """Raw columns in the layout of ``worker._data.synthetic.synthetic_columns``
    (``from_synthetic_columns`` builds the Dataset), plus per call ``sigma``
    (its per-minute volatility) and ``pumped`` (whether it had a pump)."""
    if n_calls < 1 or n_candles < 2:
        raise ValueError("need at least 1 call and 2 candles")
    rng = np.random.default_rng([seed, 0xB])
    weight = 1.0 / np.arange(1, n_callers + 1) ** 0.8
    caller = rng.choice(n_callers, size=n_calls, p=weight / weight.sum())
    ts = START_MS + rng.integers(0, int(span_days * 86_400_000), n_calls, dtype=np.int64)
    lead = rng.integers(0, MAX_LEAD_MIN + 1, n_calls)
    first = (ts // MINUTE_MS - lead) * MINUTE_MS
    lo, hi = SIGMA_RANGE
    # Low volatility dominates holding times (~ 1/sigma^2); a squared uniform
    # puts about half the calls under 2.3 %.
    sigma = lo + (hi - lo) * rng.random(n_calls) ** SIGMA_POWER
    scale = 10.0 ** rng.uniform(-8.0, 0.0, n_calls)

    n = n_calls * n_candles
    out = {k: np.empty(n) for k in ("open", "high", "low", "close", "volume")}
    pumped = np.zeros(n_calls, dtype=bool)
    for b0 in range(0, n_calls, _BLOCK):
        b1 = min(n_calls, b0 + _BLOCK)
        rows = slice(b0 * n_candles, b1 * n_candles)
        pumped[b0:b1] = _prices(rng, sigma[b0:b1], scale[b0:b1],
                                {k: v[rows].reshape(b1 - b0, n_candles) for k, v in out.items()})
    minutes = np.arange(n_candles, dtype=np.int64) * MINUTE_MS
    ids = [f"B{i:06d}" for i in range(n_calls)]
    return {
        "ids": ids,
        "callers": [f"b-caller-{c:02d}" for c in caller.tolist()],
        "mints": [f"b-mint-{i:06d}" for i in range(n_calls)],
        "ts_ms": ts,
        "keys": np.repeat(np.arange(n_calls, dtype=np.int32), n_candles),
        "key_names": ids,
        "candle_ts": (first[:, None] + minutes[None, :]).ravel(),
        "sigma": sigma,
        "pumped": pumped,
        **out,
    }


def _prices(rng: np.random.Generator, sigma: np.ndarray, scale: np.ndarray,
            out: dict[str, np.ndarray]) -> np.ndarray:
    """OHLCV of one block of calls into ``out`` (2-D views, a row per series);
    returns which calls pumped."""
    m, n_candles = out["close"].shape
    z = rng.standard_normal((m, n_candles))
    z -= z.mean(axis=1, keepdims=True)
    z *= (sigma / z.std(axis=1))[:, None]        # sample std exactly sigma
    # Rare pumps: a few minutes of steady rise, once.
    pumps = rng.random(m) < PUMP_RATE
    pumped = np.flatnonzero(pumps)
    if pumped.size:
        length = rng.integers(3, 21, pumped.size)
        at = rng.integers(1, max(2, n_candles - 20), pumped.size)
        gain = np.log(rng.uniform(1.5, 8.0, pumped.size)) / length
        row = np.repeat(pumped, length)
        start = np.repeat(np.cumsum(length) - length, length)
        col = np.minimum(np.repeat(at, length) + (np.arange(row.size) - start), n_candles - 1)
        z[row, col] += np.repeat(gain, length)
    z += DRIFT
    close, open_, high, low = out["close"], out["open"], out["high"], out["low"]
    np.cumsum(z, axis=1, out=close)
    # The first candle closes at ``scale``.
    close += (np.log(scale) - close[:, 0])[:, None]
    np.exp(close, out=close)
    open_[:, 1:] = close[:, :-1]
    open_[:, 0] = close[:, 0] * np.exp(-z[:, 0])
    for side, extreme in ((high, np.maximum), (low, np.minimum)):
        wick = rng.standard_exponential((m, n_candles))
        wick *= (0.5 if side is high else -0.5) * sigma[:, None]
        np.exp(wick, out=wick)
        extreme(open_, close, out=side)
        side *= wick
    out["volume"][:] = rng.lognormal(6.0, 1.5, (m, n_candles))
    return pumps


def gen_b_dataset(n_calls: int = 10_000, n_candles: int = 2_880, n_callers: int = 40,
                  seed: int = 1, span_days: float = SPAN_DAYS) -> Dataset:
    """Data set B as a validated ``Dataset`` (SPEC 1 checks run on it)."""
    return from_synthetic_columns(gen_b_columns(n_calls, n_candles, n_callers, seed, span_days))


def write_parquet(ds: Dataset, calls_path: str, candles_path: str, style: str = "worker") -> None:
    """Write ``ds`` as SPEC 8 Parquet files.

    ``style="worker"``: as ``optimizer-worker demo --write-files`` writes them
    (``worker._data.files.write_dataset_files``). ``style="pyarrow"``: the same
    tables with pyarrow's default writer options (``pq.write_table(table,
    path)``: snappy, dictionary pages, default row groups).
    """
    if style == "worker":
        from worker._data.files import write_dataset_files
        write_dataset_files(ds, calls_path, candles_path)
        return
    if style != "pyarrow":
        raise ValueError(f"unknown style {style!r}")
    import pyarrow as pa
    import pyarrow.parquet as pq
    calls = pa.table({"id": list(ds.call_ids),
                      "caller": [ds.caller_names[c] for c in ds.call_caller],
                      "mint": list(ds.call_mints), "ts_ms": ds.call_ts_ms})
    codes = np.repeat(np.arange(ds.n_series, dtype=np.int32), np.diff(ds.series_offsets))
    key = pa.DictionaryArray.from_arrays(codes, pa.array(list(ds.series_keys), type=pa.string()))
    candles = pa.table({"key": key, "ts_ms": ds.ts_ms, "open": ds.open, "high": ds.high,
                        "low": ds.low, "close": ds.close, "volume": ds.volume})
    pq.write_table(calls, calls_path)
    pq.write_table(candles, candles_path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out_dir")
    ap.add_argument("--calls", type=int, default=10_000)
    ap.add_argument("--candles", type=int, default=2_880)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--style", choices=("worker", "pyarrow"), default="worker")
    args = ap.parse_args()
    t = time.perf_counter()
    ds = gen_b_dataset(args.calls, args.candles, seed=args.seed)
    built = time.perf_counter() - t
    os.makedirs(args.out_dir, exist_ok=True)
    write_parquet(ds, os.path.join(args.out_dir, "calls.parquet"),
                  os.path.join(args.out_dir, "candles.parquet"), args.style)
    print(f"B: {ds.n_calls:,} calls, {ds.n_candles:,} candles (seed {args.seed}), built in "
          f"{built:.1f} s, written to {args.out_dir} ({args.style})")


if __name__ == "__main__":
    main()
