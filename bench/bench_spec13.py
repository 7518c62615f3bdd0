"""Issue 14's speed figures (SPEC 13), in this process:

1. The same ``sma_cross`` search (fast x slow, one exit point, direction
   both) on the same bars with the same costs and no capital limit: our
   per-trade mode (``worker.optimize_strategy``) against backtesting.py's
   ``Backtest.optimize``; both times, the ratio (goal >= 100x) and whether
   the best (fast, slow) agree.
2. Runs (grid points) per second of the example search
   (``examples/strategy.yaml``'s grids on the demo bars), in this thread.

    python bench/bench_spec13.py [--quick] [--runs N] [--bt-path /tmp/bt]

backtesting.py is never a dependency of this package: install it apart,
``pip install --target /tmp/bt backtesting`` (the default ``--bt-path``).

How the two searches are made the same problem:

- One symbol (the demo's ALPHA) at ONE interval: the demo's one-minute bars
  resampled to 1h by SPEC 13's rule here, written as a bars directory, so our
  base interval is the timeframe (no finer bars to resolve exits on, as
  backtesting.py has none) and both see the identical OHLC rows.
- Signals: SPEC 13's sma_cross (left-to-right sums, the 1e-12 relative
  band) against backtesting.py's ``crossover`` of ``pandas.rolling`` means
  (the same crosses but for a difference inside the band or a rounding of
  the rolling sums: rare).
- Entries: ours enter at the close of the bar after the signal bar
  (SPEC 2.3: entry candle = first base bar at or after signal bar time +
  tf, entry at its close; exits from the next bar on). backtesting.py with
  ``trade_on_close=True`` fills at the close of the bar where the order is
  placed, so the strategy places it one bar after the cross: the same
  price, and its SL/TP act from the next bar on, as ours.
- Exits: sl = entry x (1 -/+ sl_pct), tp = entry x (1 +/- tp_r x sl_pct),
  computed by both from the same close; no hold limit (ours: a hold longer
  than the data). Both SL and TP inside one bar: backtesting.py takes the
  stop, so ours runs with ``intrabar: sl_first``; a bar opening beyond a
  level fills at its open in both (``gap_fill: open``, SPEC 13's default).
- No capital limit: ``hedging=True`` and a cash far above every order, so
  every signal is its own trade, longs and shorts at once, as per-trade mode.
- Costs: ``taker_fee_bps`` only (slippage 0); backtesting.py's
  ``commission`` = fee / 10,000 per side. Ours charges 2 x fee on the entry
  size; backtesting.py charges fee on the entry and on the exit value:
  returns differ by fee x (exit/entry - 1), ~1e-5 here.
- Objective: the sum of trade returns (ours ``total_return`` in per-trade
  mode; backtesting.py ``maximize=`` ``Expectancy [%]`` x ``# Trades``).
  backtesting.py's own ``constraint`` leaves out fast >= slow, which SPEC
  13 counts as rejected sets.

Exit code 0 whatever the figures say (FAIL lines are results); 1 on errors.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import traceback
import warnings

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

import worker  # noqa: E402
from bench_spec9 import Figure, emit, repeat_runs  # noqa: E402
from worker._data.synthetic_bars import demo_bars, write_demo_bars  # noqa: E402

HOUR = 3_600_000
FEE_BPS = 10.0
TP_R, SL_PCT = 2.0, 0.02
NO_HOLD_LIMIT = 1e6                      # hours: longer than any data


def hourly(symbol: str = "ALPHA", days: float = 90, seed: int = 7) -> dict[str, np.ndarray]:
    """The demo's one-minute bars of ``symbol`` resampled to 1h (SPEC 13:
    first open, max high, min low, last close, summed volume)."""
    c = demo_bars(symbols=1, days=days, seed=seed)[symbol]
    bucket = (c["ts_ms"] // HOUR) * HOUR
    starts = np.flatnonzero(np.r_[True, bucket[1:] != bucket[:-1]])
    ends = np.r_[starts[1:], bucket.size] - 1
    return {"ts_ms": bucket[starts], "open": c["open"][starts],
            "high": np.maximum.reduceat(c["high"], starts),
            "low": np.minimum.reduceat(c["low"], starts), "close": c["close"][ends],
            "volume": np.add.reduceat(c["volume"], starts)}


def grids(quick: bool) -> dict[str, list[int]]:
    if quick:
        return {"fast": [5, 10, 15, 20], "slow": [20, 30, 40, 60, 80]}
    return {"fast": list(range(4, 52, 4)), "slow": list(range(10, 210, 10))}


def ours(bars, grid: dict) -> tuple[dict | None, int]:
    res = worker.optimize_strategy(
        bars, strategy="sma_cross", strategy_grid={**grid, "direction": ["both"]},
        timeframes=["1h"], grid={"tp_r": [TP_R], "sl_pct": [SL_PCT],
                                 "max_hold_hrs": [NO_HOLD_LIMIT]},
        config={"taker_fee_bps": FEE_BPS, "slippage_bps": 0.0, "intrabar": "sl_first",
                "gap_fill": "open"},
        mode="per_trade", objective="total_return")
    best = None if res.best_params is None else {k: res.best_params[k] for k in ("fast", "slow")}
    return best, res.params_evaluated


def sma(values, n):
    import pandas as pd

    return pd.Series(values).rolling(n).mean().to_numpy()


def backtesting_search(h: dict, grid: dict, bt_path: str) -> tuple[dict, object]:
    sys.path.insert(0, bt_path)
    import pandas as pd
    from backtesting import Backtest, Strategy
    from backtesting.lib import crossover

    class SmaCross(Strategy):
        fast = 10
        slow = 30

        def init(self):
            self.f = self.I(sma, self.data.Close, self.fast)
            self.s = self.I(sma, self.data.Close, self.slow)
            self.pending = 0

        def next(self):
            # Enter one bar after the cross, at that bar's close (module doc).
            if self.pending:
                px = self.data.Close[-1]
                if self.pending > 0:
                    self.buy(size=1, sl=px * (1 - SL_PCT), tp=px * (1 + TP_R * SL_PCT))
                else:
                    self.sell(size=1, sl=px * (1 + SL_PCT), tp=px * (1 - TP_R * SL_PCT))
            self.pending = (1 if crossover(self.f, self.s) else
                            -1 if crossover(self.s, self.f) else 0)

    # backtesting.py's pool pickles the class by name: make it a module global.
    SmaCross.__qualname__ = "SmaCross"
    globals()["SmaCross"] = SmaCross
    df = pd.DataFrame({"Open": h["open"], "High": h["high"], "Low": h["low"],
                       "Close": h["close"], "Volume": h["volume"]},
                      index=pd.to_datetime(h["ts_ms"], unit="ms"))
    bt = Backtest(df, SmaCross, cash=1e12, commission=FEE_BPS / 10_000, hedging=True,
                  trade_on_close=True, exclusive_orders=False, finalize_trades=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        stats = bt.optimize(fast=grid["fast"], slow=grid["slow"],
                            constraint=_fast_below_slow, maximize=_sum_of_returns)
        seconds = time.perf_counter() - t0
    best = {"fast": int(stats._strategy.fast), "slow": int(stats._strategy.slow)}
    return best, seconds


def _fast_below_slow(p) -> bool:
    return p.fast < p.slow


def _sum_of_returns(stats) -> float:
    """The sum of trade returns (optimize's stats carry no trade list:
    the arithmetic mean ``Expectancy [%]`` times ``# Trades``)."""
    n = int(stats["# Trades"])
    return float(stats["Expectancy [%]"]) * n / 100 if n else 0.0


def bench_versus(tmp: str, args, figs: list[Figure]) -> None:
    h = hourly(days=30 if args.quick else 90)
    import pyarrow as pa
    import pyarrow.parquet as pq

    d = os.path.join(tmp, "alpha-1h")
    os.makedirs(d, exist_ok=True)
    pq.write_table(pa.table(h), os.path.join(d, "ALPHA.parquet"))
    bars = worker.load_bars(d)
    grid = grids(args.quick)
    ours(bars, grid)                                     # kernels from the cache
    times = []
    for _ in range(args.reps):
        t0 = time.perf_counter()
        best_ours, points = ours(bars, grid)
        times.append(time.perf_counter() - t0)
    t_ours = float(np.median(times))
    best_bt, t_bt = backtesting_search(h, grid, args.bt_path)
    n = sum(1 for f in grid["fast"] for s in grid["slow"] if f < s)
    emit(figs, Figure(f"sma_cross {n} sets, {h['ts_ms'].size:,} bars", t_ours * 1e3, "ms",
                      f"backtesting.py optimize {t_bt:.2f} s", t_bt / t_ours, ">= 100x",
                      t_bt / t_ours >= 100))
    agree = best_ours == best_bt
    print(f"  best (fast, slow): ours {best_ours}, backtesting.py {best_bt}: "
          f"{'agree' if agree else 'DIFFER'} ({points} points evaluated by ours)", flush=True)
    emit(figs, Figure("best parameters agree", float(agree), "bool",
                      f"ours {best_ours}", None, "same (fast, slow)", agree))


def bench_example(tmp: str, args, figs: list[Figure]) -> None:
    from worker._batch.config import load_config

    cfg, _ = load_config(os.path.join(os.path.dirname(HERE), "examples", "strategy.yaml"))
    d = os.path.join(tmp, "demo-bars")
    if not os.path.isdir(d):
        write_demo_bars(d, days=30 if args.quick else 90)
    bars = worker.load_bars(d)
    kw = dict(strategy=cfg.strategy, strategy_grid=cfg.strategy_grid,
              timeframes=list(cfg.timeframes), grid=cfg.exit_grid(),
              config=cfg.simulator_config, mode=cfg.mode, objective=cfg.objective,
              constraints=cfg.constraints, top_k=cfg.top_k)
    worker.optimize_strategy(bars, **kw)
    times = []
    for _ in range(args.reps):
        t0 = time.perf_counter()
        res = worker.optimize_strategy(bars, **kw)
        times.append(time.perf_counter() - t0)
    t = float(np.median(times))
    emit(figs, Figure("example search, runs/s", res.params_evaluated / t, "/s",
                      f"{res.params_evaluated:,} points in {t:.2f} s (1 thread)", None,
                      "info", None))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="30 days, a 4 x 5 sma grid")
    ap.add_argument("--runs", type=int, default=1, help="repeat the whole measurement N times")
    ap.add_argument("--bt-path", default="/tmp/bt",
                    help="where backtesting.py is installed (pip install --target)")
    args = ap.parse_args()
    args.reps = 2 if args.quick else 5
    with tempfile.TemporaryDirectory(prefix="bench-spec13-") as tmp:
        repeat_runs(args.runs, lambda figs: (bench_versus(tmp, args, figs),
                                             bench_example(tmp, args, figs)))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception:
        traceback.print_exc()
        sys.exit(1)
