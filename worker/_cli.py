"""``optimizer-worker`` command line (``python -m worker`` is the same)."""

from __future__ import annotations

import argparse
import os
import sys
import time

from ._errors import InvalidParams, WorkerError


def _demo(args: argparse.Namespace) -> int:
    if args.bars is not None:
        return _write_demo_bars(args)
    from ._data.synthetic import synthetic_dataset
    from ._run.library import optimize, optimize_per_caller

    t0 = time.perf_counter()
    ds = synthetic_dataset(n_calls=args.calls, n_candles=args.candles, seed=args.seed)
    t1 = time.perf_counter()
    if args.write_files is not None:
        return _write_demo_files(ds, args.write_files)
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


def _write_demo_files(ds, directory: str) -> int:
    """The demo dataset as SPEC 8 files, for trying the daemon or a client
    (the TypeScript example loads these)."""
    from ._data.files import write_dataset_files

    os.makedirs(directory, exist_ok=True)
    calls, candles = (os.path.join(directory, n) for n in ("calls.parquet", "candles.parquet"))
    write_dataset_files(ds, calls, candles)
    sys.stdout.write(f"wrote {calls} ({ds.n_calls:,} calls) and {candles} ({ds.n_candles:,} candles)\n")
    return 0


def _write_demo_bars(args: argparse.Namespace) -> int:
    """SPEC 13's demo: one-minute bars of a few symbols (trending and
    ranging regimes) as DIR/<SYMBOL>.parquet, for ``run: strategy``."""
    from ._data.synthetic_bars import write_demo_bars

    if args.symbols < 1 or not args.days > 0:
        raise InvalidParams("demo --bars needs --symbols >= 1 and --days > 0", path="$")
    t0 = time.perf_counter()
    written = write_demo_bars(args.bars, symbols=args.symbols, days=args.days, seed=args.seed)
    seconds = time.perf_counter() - t0
    out = sys.stdout
    total = sum(n for _, n in written)
    out.write(f"wrote {len(written)} symbols x {args.days:g} days of one-minute bars "
              f"({total:,} bars, seed {args.seed}) to {args.bars} in {seconds:.2f} s:\n")
    for path, n in written:
        out.write(f"  {path}  {n:,} bars\n")
    example = os.path.join("examples", "bars")
    here = os.path.normpath(os.path.abspath(args.bars))
    out.write("\nrun the example strategy search (sweep_bos, 3 timeframes, an exit grid):\n"
              "  optimizer-worker run examples/strategy.yaml\n")
    if not here.endswith(os.sep + example):
        out.write(f"(examples/strategy.yaml reads {example}/, relative to the config: "
                  f"write the bars there, or set its `bars:` to {here})\n")
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


def _run(args: argparse.Namespace) -> int:
    from ._batch.runner import run_main

    return run_main(args.config, dry=args.dry_run, restart=args.restart)


def _analyze(args: argparse.Namespace) -> int:
    from ._report.analyze import analyze_main

    return analyze_main(args.run_dir)


def _warm(args: argparse.Namespace) -> int:
    from ._run.warm import warm_kernels

    seconds = warm_kernels()
    sys.stderr.write(f"kernels ready in {seconds:.1f} s (compiled once, then loaded from the cache)\n")
    return 0


def _serve(args: argparse.Namespace) -> int:
    from ._daemon.server import serve
    from ._daemon.settings import Settings

    if args.executor == "ray":
        if not args.ray_address:
            raise InvalidParams("--executor ray needs --ray-address ADDRESS")
        from ._ray.select import RayExecutor, use

        # Large work goes to the cluster; the pool is only for what is asked.
        use(RayExecutor(address=args.ray_address))
        pool_size = 0 if args.pool_size is None else args.pool_size
    else:
        from ._daemon.settings import default_pool_size

        pool_size = default_pool_size() if args.pool_size is None else args.pool_size
    settings = Settings(pool_size=pool_size, cache_bytes=args.cache_bytes,
                        max_message_bytes=args.max_message_bytes,
                        max_grid_points=args.max_grid_points, shm_dir=args.shm_dir,
                        local_evaluations=args.local_evaluations,
                        stall_timeout_min_s=args.stall_timeout, stall_factor=args.stall_factor)
    return serve(settings, socket_path=args.socket, log_level=args.log_level)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _positive_number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="optimizer-worker", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="optimize the default grid on a seeded synthetic dataset")
    demo.add_argument("--calls", type=int, default=1_000, help="number of calls (default 1000)")
    demo.add_argument("--candles", type=int, default=2_880,
                      help="one-minute candles per call (default 2880 = 48 h)")
    demo.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    demo.add_argument("--write-files", metavar="DIR",
                      help="write the dataset as DIR/calls.parquet and DIR/candles.parquet "
                           "instead of optimizing")
    demo.add_argument("--bars", metavar="DIR",
                      help="write demo price bars (SPEC 13: one-minute OHLCV, trending and "
                           "ranging regimes) as DIR/<SYMBOL>.parquet instead, for "
                           "examples/strategy.yaml")
    demo.add_argument("--symbols", type=int, default=4, help="with --bars: symbols (default 4)")
    demo.add_argument("--days", type=float, default=90,
                      help="with --bars: days of one-minute bars per symbol (default 90)")
    demo.set_defaults(run=_demo)
    from ._daemon.logs import LEVELS
    from ._daemon.settings import Settings

    d = Settings()
    serve = sub.add_parser("serve", help="JSON-RPC 2.0 daemon over stdio (default) or a Unix socket")
    serve.add_argument("--socket", metavar="PATH",
                       help="listen on this Unix socket (its directory must be private to you)")
    serve.add_argument("--pool-size", type=_positive_int, default=None,
                       help="pool processes for large grids (default: one per usable CPU, "
                            "the CPU affinity capped by the cgroup CPU quota; 0 = none; "
                            "with --executor ray: 0)")
    serve.add_argument("--executor", choices=("pool", "ray"), default="pool",
                       help="where large grids run: the local process pool (default) or a "
                            "Ray cluster (--ray-address; needs the ray extra, docs/cluster.md)")
    serve.add_argument("--ray-address", metavar="ADDRESS",
                       help="with --executor ray: the cluster's address, HOST:PORT of its "
                            "head (ray start --head), ray://HOST:PORT, or auto")
    serve.add_argument("--stall-timeout", type=_positive_number, default=d.stall_timeout_min_s,
                       metavar="SECONDS",
                       help="a pool process with no reply to a span for this long (or "
                            "--stall-factor times the span's estimated time, if longer) is "
                            "killed and replaced, and the span retried once elsewhere "
                            f"(default {d.stall_timeout_min_s:g})")
    serve.add_argument("--stall-factor", type=_positive_number, default=d.stall_factor,
                       metavar="X", help="see --stall-timeout "
                                         f"(default {d.stall_factor:g})")
    serve.add_argument("--cache-bytes", type=_positive_int, default=d.cache_bytes,
                       help=f"memory budget of the dataset cache (default {d.cache_bytes:,})")
    serve.add_argument("--max-message-bytes", type=_positive_int, default=d.max_message_bytes,
                       help=f"longest accepted request line (default {d.max_message_bytes:,})")
    serve.add_argument("--max-grid-points", type=_positive_int, default=d.max_grid_points,
                       help=f"largest accepted grid (default {d.max_grid_points:,})")
    serve.add_argument("--local-evaluations", type=_positive_int, default=d.local_evaluations,
                       help="work below this many call x grid-point evaluations runs in the "
                            f"daemon itself, not the pool (default {d.local_evaluations:,})")
    serve.add_argument("--shm-dir", metavar="DIR",
                       help="where shared dataset files live (default /dev/shm if it has room)")
    serve.add_argument("--log-level", choices=LEVELS, default="info")
    serve.set_defaults(run=_serve)
    run = sub.add_parser("run", help="a checkpointed batch run from a YAML config, with a report "
                                     "(examples/demo.yaml); run it again to resume")
    run.add_argument("config", help="the YAML config")
    run.add_argument("--dry-run", action="store_true",
                     help="validate, print the grid size, a data summary and an estimate; run nothing")
    run.add_argument("--restart", action="store_true",
                     help="discard the output directory's checkpoint and start over")
    run.set_defaults(run=_run)
    analyze = sub.add_parser("analyze", help="write summary.md and plots again from a run directory")
    analyze.add_argument("run_dir")
    analyze.set_defaults(run=_analyze)
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
    except BrokenPipeError:
        # The reader went away (``| head``): not an error worth a traceback.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
