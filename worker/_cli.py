"""``optimizer-worker`` command line (``python -m worker`` is the same)."""

from __future__ import annotations

import argparse
import sys
import time

from ._errors import WorkerError


def _demo(args: argparse.Namespace) -> int:
    from ._callers import optimize_per_caller
    from ._optimize import optimize
    from ._synthetic import synthetic_dataset

    t0 = time.perf_counter()
    ds = synthetic_dataset(n_calls=args.calls, n_candles=args.candles, seed=args.seed)
    t1 = time.perf_counter()
    result = optimize(ds, None, top_k=5)
    t2 = time.perf_counter()
    per = optimize_per_caller(ds, None)
    t3 = time.perf_counter()
    out = sys.stdout
    out.write(f"demo dataset: {ds.n_calls:,} calls by {len(ds.caller_names)} callers, "
              f"{ds.n_candles:,} candles (seed {args.seed}), built in {t1 - t0:.2f} s\n")
    out.write(f"default grid: {result.params_evaluated} points, capital mode, "
              f"objective {result.objective}, optimized in {(t2 - t1) * 1e3:.1f} ms "
              f"(first run includes loading compiled kernels)\n\n")
    if result.best_params is None:
        out.write("no feasible grid point\n")
    else:
        b, m = result.best_params, result.best_metrics
        out.write(f"best: tp_mult {b.tp_mult:g}  sl_mult {b.sl_mult:g}  max_hold_hrs {b.max_hold_hrs:g}"
                  f"  -> final_capital {m.final_capital:,.2f} ({m.total_return:+.2%})\n\n")
    out.write(_top_table(result.top))
    profitable = sum(1 for r in per.per_caller_results.values() if not r.collapsed_capital)
    out.write(f"\nper caller: {len(per.per_caller_results)} callers optimized alone in "
              f"{(t3 - t2) * 1e3:.1f} ms; {profitable} end above their initial capital "
              f"at their best point\n")
    return 0


def _top_table(top) -> str:
    head = (f"{'rank':>4} {'tp':>5} {'sl':>5} {'hold':>5} {'final_capital':>14} {'return':>8} "
            f"{'trades':>6} {'win_rate':>8} {'max_dd':>7} {'skipped':>7}\n")
    rows = [head]
    for p in top:
        m = p.metrics
        rows.append(f"{p.rank:>4} {p.params.tp_mult:>5g} {p.params.sl_mult:>5g} "
                    f"{p.params.max_hold_hrs:>5g} {m.final_capital:>14,.2f} {m.total_return:>+8.2%} "
                    f"{m.trades_executed:>6} {m.win_rate:>8.1%} {m.max_drawdown:>7.2%} "
                    f"{m.trades_skipped:>7}\n")
    return "".join(rows)


def _warm(args: argparse.Namespace) -> int:
    from ._warm import warm_kernels

    seconds = warm_kernels()
    sys.stderr.write(f"kernels ready in {seconds:.1f} s (compiled once, then loaded from the cache)\n")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="optimizer-worker", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="optimize the default grid on a seeded synthetic dataset")
    demo.add_argument("--calls", type=int, default=1_000, help="number of calls (default 1000)")
    demo.add_argument("--candles", type=int, default=2_880,
                      help="one-minute candles per call (default 2880 = 48 h)")
    demo.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    demo.set_defaults(run=_demo)
    warm = sub.add_parser("warm", help="compile every kernel into Numba's on-disk cache")
    warm.set_defaults(run=_warm)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except WorkerError as exc:
        sys.stderr.write(f"optimizer-worker: error: {exc.message}\n")
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
