"""``optimizer-worker run CONFIG.yaml``: a checkpointed batch run that ends
in a run directory with results and a report (docs/run-directory.md).

Running the same config again resumes: chunks already in the journal are
not recomputed. A config that asks for a different run against the same
output directory is refused unless ``--restart`` is given.

Failed chunks. A pool process lost while serving a span has that span
retried once on another process (``worker._pool.pool``); a chunk that still
fails (or raises in-process) is isolated (``isolate_failures=True``): its
points get no figures and the run goes on, so one bad chunk does not throw
away hours of finished work. Such a run is *incomplete* and says so
everywhere, never passing off the best of a subset as the best:

- exit code 3 (``EXIT_INCOMPLETE``; 0 complete, 2 error), a stdout line
  starting ``<kind> INCOMPLETE: N chunk(s) failed``, and a warning on stderr
  naming the command that resumes the run;
- ``run.json``: ``"incomplete": true``, ``"chunks_failed": N``,
  ``"chunks_total"`` and ``"failed_chunks"`` (id, job, span, error of each);
- ``summary.md``: a warning before anything else, and every "best" / "top"
  qualified as "of the evaluated points (incomplete run: N chunks failed)";
- ``result.json`` stays exactly the result object a daemon would answer
  (OptimizeResult, ...; no extra field, so clients decode it with the same
  type); its failed points are infeasible there, left out of ``top``.

To finish an incomplete run, run the same command again (without
``--restart``): failed chunks are journaled as failed, so only they (and
whatever depended on them) are computed; the others come from the journal.
"""

from __future__ import annotations

import math
import shlex
import sys
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import anyio
import msgspec

from protocol import ParamGrid

from .._core.callers import grouped_eval_flow, optimize_per_caller_flow
from .._core.dataset import Dataset
from .._core.jobs import Flow, recorded
from .._core.lanes import lane_is_baseline as _baseline
from .._core.optimize import make_study, optimize_flow, unknown_callers
from .._core.tunables import EVALS_PER_SECOND
from .._core.walkforward import walk_forward_flow
from .._data.files import dataset_from_files
from .._data.synthetic import synthetic_dataset
from .._errors import InvalidParams
from .._pool.evaluator import PoolEvaluator
from .._pool.pool import WorkerPool
from .._report.rundir import finish_run, now, open_run
from .._report.text import EXTENDED
from .._run.checkpoint import CheckpointingEvaluator, CheckpointStats
from .._run.drive import drive
from .._run.evaluators import Evaluator, ThreadEvaluator
from .._run.journal import Journal
from .config import SPEC12_KEYS, RunConfig, StrategyRunConfig, load_config
from .plan import folds_plan, strategy_plan
from .progress_bar import ProgressPrinter
from .yaml_errors import locate_error

EXIT_INCOMPLETE = 3             # the run finished with failed chunks (module doc)


def load_data(cfg: RunConfig) -> Dataset:
    d = cfg.data
    if d.demo is not None:
        return synthetic_dataset(n_calls=d.demo.calls, n_candles=d.demo.candles,
                                 n_callers=d.demo.callers, seed=d.demo.seed)
    return dataset_from_files(d.calls, d.candles, series_key=d.series_key,
                              on_bad_series=d.on_bad_series)


def request_of(cfg: RunConfig) -> dict:
    """What the run computes: the config without where and how it runs."""
    request = msgspec.to_builtins(cfg)
    # Where and how it runs, and how its report is drawn, are not the run.
    for key in ("output", "workers", "report"):
        request.pop(key)
    request.pop("executor", None)       # where it runs (a Ray cluster, SPEC 14)
    # The data's content is fingerprinted; where the files are is not (a
    # resume from another directory, or after moving them, still resumes).
    for key in ("calls", "candles"):
        request["data"].pop(key, None)
    # SPEC 12's keys count only when given: a run made before they existed resumes.
    for key in SPEC12_KEYS:
        if request.get(key) is None:
            request.pop(key, None)
    return request


def _study_args(cfg: RunConfig) -> dict[str, Any]:
    args = dict(config=cfg.simulator_config, mode=cfg.mode, objective=cfg.objective,
                minimize=cfg.minimize, constraints=cfg.constraints,
                caller_groups=cfg.caller_groups)
    for key in ("plateau", "stress", "rank_by"):    # SPEC 12, when given
        if getattr(cfg, key) is not None:
            args[key] = msgspec.to_builtins(getattr(cfg, key))
    return args


def make_flow(ds: Dataset, cfg: RunConfig) -> Flow:
    args = _study_args(cfg)
    if cfg.run == "optimize":
        return optimize_flow(ds, cfg.param_grid, top_k=cfg.top_k, include_all=True, **args)
    if cfg.run == "walk_forward":
        return walk_forward_flow(
            ds, cfg.param_grid, folds=msgspec.to_builtins(cfg.folds),
            pbo_spec=None if cfg.pbo is None else msgspec.to_builtins(cfg.pbo),
            top_k=cfg.top_k, include_all=True, **args)
    extreme = dict(extreme_sl_below=cfg.extreme_sl_below, extreme_tp_above=cfg.extreme_tp_above)
    if cfg.run == "per_caller":
        return optimize_per_caller_flow(ds, cfg.param_grid, **extreme, **args)
    g = cfg.grouped
    return grouped_eval_flow(ds, cfg.param_grid, filter_collapsed=g.filter_collapsed,
                             filter_extreme=g.filter_extreme, grouped_params=g.grouped_params,
                             **extreme, **args)


def grid_dimensions(grid: ParamGrid) -> list[tuple[int, str]]:
    """(values, label) of every dimension: tp, sl, hold always (a grid without
    holds has the config's one), then each SPEC 11 dimension the grid sets."""
    dims = [(len(grid.tp_mults), "tp"), (len(grid.sl_mults), "sl"),
            (len(grid.max_hold_hrs or [0]), "hold")]
    return dims + [(len(getattr(grid, name)), name) for name in EXTENDED
                   if getattr(grid, name) is not None]


def dry_run(ds: Dataset, cfg: RunConfig, out=sys.stdout, first_job: Any = None,
            study: Any = None) -> None:
    """Sizes and an estimate; a walk_forward run's folds plan (``first_job``:
    the job its flow yields first, ``study``: its validated inputs)."""
    dims = grid_dimensions(cfg.param_grid)
    points = math.prod(n for n, _ in dims)
    evals = ds.n_calls * points
    plan = ""
    if cfg.run == "walk_forward" and first_job is not None:
        lines, calls = folds_plan(ds, cfg, study, first_job)
        plan, evals = "".join(f"{line}\n" for line in lines), calls * points
    elif cfg.stress is not None and study is not None and study.lanes:
        # Every non-baseline lane is the grid again (its own scan).
        reruns = sum(1 for lane in study.lanes if not _baseline(lane))
        plan = (f"stress: {len(study.lanes)} lanes ({', '.join(x.name for x in study.lanes)}): "
                f"the grid runs {reruns} more time(s)\n")
        evals *= 1 + reruns
    workers = max(1, cfg.workers)
    out.write(f"config ok: run {cfg.run}, mode {cfg.mode}, output {cfg.output}\n"
              f"data: {ds.n_calls:,} calls by {len(ds.caller_names)} callers, "
              f"{ds.n_series:,} series, {ds.n_candles:,} candles"
              f"{f', {ds.dropped_count} bad series dropped' if ds.dropped_count else ''}\n"
              f"{plan}"
              f"grid: {' x '.join(f'{n} {label}' for n, label in dims)} = {points:,} points, "
              f"{evals:,} call x point evaluations\n"
              f"estimated time: about {max(evals / (EVALS_PER_SECOND * workers), 0.1):.1f} s "
              f"of grid work on {workers} worker(s), plus the candle scan\n")


def run_main(config_path: str, *, dry: bool = False, restart: bool = False) -> int:
    cfg, text = load_config(config_path)
    if isinstance(cfg, StrategyRunConfig):
        return run_strategy_main(config_path, cfg, text, dry=dry, restart=restart)
    try:
        ds = load_data(cfg)
        # Every check before anything is written: a bad config must not
        # leave a run directory that then refuses the corrected one.
        study = make_study(ds, grid=cfg.param_grid, **_study_args(cfg))
        # A walk_forward flow checks its folds (do they fit the data?) and
        # builds them when asked for its first job: before anything is written.
        first_job = next(make_flow(ds, cfg)) if cfg.run == "walk_forward" else None
    except InvalidParams as exc:
        raise locate_error(Path(config_path), text, exc, _CONFIG_KEYS) from None
    unknown = unknown_callers(ds, cfg.caller_groups)
    if unknown:
        sys.stderr.write(f"optimizer-worker: warning: caller_groups names callers with no calls "
                         f"in the data (ignored): {', '.join(unknown[:20])}\n")
    if dry:
        dry_run(ds, cfg, first_job=first_job, study=study)
        return 0
    run_dir = Path(cfg.output)
    journal = open_run(run_dir, ds, request_of(cfg), restart=restart, path="$.output")
    bar = ProgressPrinter(sys.stderr, label=f"{cfg.run} {run_dir.name}")
    try:
        (run_dir / "config.yaml").write_text(text)
        started = now()
        jobs: list = []
        result, stats = anyio.run(_execute, ds, cfg, journal, recorded(make_flow(ds, cfg), jobs), bar)
        # The journal's lock is held until the run directory is complete.
        paths = finish_run(run_dir, ds, cfg.run, study, result, stats, jobs, started,
                           heatmaps=cfg.report.heatmaps)
    finally:
        journal.close()
        bar.close()
    return _report_end(config_path, cfg.run, run_dir, stats, paths)


def _report_end(config_path: str, kind: str, run_dir: Path, stats: CheckpointStats,
                paths: list) -> int:
    """The last lines of a run: what it wrote; an incomplete run's warning
    and the command that finishes it (module doc). The exit code."""
    counts = (f"{stats.chunks_computed} chunks computed, {stats.chunks_reused} reused from "
              f"the journal, {len(stats.failed)} failed")
    if not stats.failed:
        sys.stdout.write(f"{kind} finished: {counts}\n")
        for path in paths:
            sys.stdout.write(f"  {path}\n")
        return 0
    n = len(stats.failed)
    failed = f"{n} chunk{'' if n == 1 else 's'} failed"
    again = f"optimizer-worker run {shlex.quote(config_path)}"
    sys.stdout.write(f"{kind} INCOMPLETE: {failed} (of {stats.chunks_total}; their points "
                     f"have no results, the best reported is of the evaluated points only); "
                     f"{counts}\n")
    for path in paths:
        sys.stdout.write(f"  {path}\n")
    sys.stdout.write(f"to compute the failed chunks, run again: {again}\n")
    first = stats.failed[0]
    sys.stderr.write(f"optimizer-worker: warning: incomplete run: {failed} (first: chunk "
                     f"{first['id']}: {first['error']}); see {run_dir / 'summary.md'}. Run "
                     f"`{again}` to compute them: finished chunks are kept in the journal.\n")
    return EXIT_INCOMPLETE


# Where a library error's path lives in a config file.
_CONFIG_KEYS = {"$.calls_path": "$.data.calls", "$.candles_path": "$.data.candles",
                "$.simulator_config": "$.simulator_config", "$.param_grid": "$.param_grid",
                "$.pbo_spec": "$.pbo"}


# --------------------------------------------------------------- run: strategy (SPEC 13)

# Where an engine error's path lives in a strategy config.
_STRATEGY_KEYS = {"$.bars_path": "$.bars", "$.grid": "$.param_grid",
                  "$.config": "$.simulator_config", "$.dataset_id": "$.bars"}


def strategy_request(cfg: StrategyRunConfig) -> dict:
    """What a strategy run computes (its fingerprint, with the signals'
    dataset): the config without where and how it runs, and without where
    the bars are (their content is in the dataset the signals make)."""
    request = msgspec.to_builtins(cfg)
    for key in ("output", "workers", "report", "bars"):
        request.pop(key)
    request.pop("executor", None)       # where it runs (a Ray cluster, SPEC 14)
    for key in ("plateau", "stress", "rank_by", "symbols", "strategy_grid"):
        if request.get(key) is None:
            request.pop(key, None)
    return request


def plan_of(cfg: StrategyRunConfig) -> tuple[Any, Any]:
    """(bars, plan): the bars loaded and the (timeframe, params) signal sets
    made into the dataset of calls the run evaluates (engine API)."""
    from .._core.strategy import plan_strategy
    from .._data.bars import load_bars

    bars = load_bars(cfg.bars, symbols=cfg.symbols)
    plan = plan_strategy(bars, strategy=cfg.strategy, strategy_grid=cfg.strategy_grid,
                         timeframes=list(cfg.timeframes), symbols=cfg.symbols,
                         grid=cfg.exit_grid() or None, config=cfg.simulator_config,
                         max_points=cfg.max_points)
    return bars, plan


def make_strategy_flow(plan: Any, cfg: StrategyRunConfig) -> Flow:
    from .._core.strategy_search import optimize_strategy_flow

    args: dict[str, Any] = dict(mode=cfg.mode, objective=cfg.objective, minimize=cfg.minimize,
                                constraints=cfg.constraints, top_k=cfg.top_k, include_all=True,
                                per_symbol=cfg.per_symbol)
    for key in ("plateau", "stress", "rank_by"):    # SPEC 12, when given
        if getattr(cfg, key) is not None:
            args[key] = msgspec.to_builtins(getattr(cfg, key))
    return optimize_strategy_flow(plan, **args)


def run_strategy_main(config_path: str, cfg: StrategyRunConfig, text: str, *, dry: bool,
                      restart: bool) -> int:
    """``run: strategy``: signals from the bars, then the exit grid over
    them as an optimize run is driven (journal, chunks, isolated failures),
    then the run directory (``worker._report.strategy``)."""
    t0 = time.perf_counter()
    try:
        bars, plan = plan_of(cfg)
        # The flow checks the rest (mode, objective, constraints, stress)
        # when asked for its first job: before anything is written.
        next(make_strategy_flow(plan, cfg))
    except InvalidParams as exc:
        raise locate_error(Path(config_path), text, exc, _STRATEGY_KEYS) from None
    signal_seconds = time.perf_counter() - t0
    if dry:
        for line in strategy_plan(cfg, bars, plan, signal_seconds):
            sys.stdout.write(line + "\n")
        return 0
    from .._report.strategy import finish_strategy_run

    ds = plan.dataset
    run_dir = Path(cfg.output)
    journal = open_run(run_dir, ds, strategy_request(cfg), restart=restart, path="$.output")
    bar = ProgressPrinter(sys.stderr, label=f"strategy {run_dir.name}")
    try:
        (run_dir / "config.yaml").write_text(text)
        started = now()
        result, stats = anyio.run(_execute, ds, cfg, journal, make_strategy_flow(plan, cfg), bar)
        paths = finish_strategy_run(run_dir, cfg=cfg, bars=bars, plan=plan, result=result,
                                    stats=stats, started=started)
    finally:
        journal.close()
        bar.close()
    return _report_end(config_path, "strategy", run_dir, stats, paths)


async def _execute(ds: Dataset, cfg: RunConfig | StrategyRunConfig, journal: Journal, flow: Flow,
                   bar: ProgressPrinter) -> tuple[Any, CheckpointStats]:
    """The run: ``workers`` 0, on worker threads of this process; else on a
    pool of that many processes (the dataset shared with it for the run);
    ``executor: {kind: ray}``: on that Ray cluster (``worker._ray``).
    Failed chunks are isolated (module doc)."""
    async with AsyncExitStack() as stack:
        if cfg.executor is not None and cfg.executor.kind == "ray":
            from .._ray.select import RayExecutor

            inner: Evaluator = RayExecutor(address=cfg.executor.address).evaluator(ds)
        elif cfg.workers == 0:
            inner = ThreadEvaluator(ds)
        else:
            pool = await stack.enter_async_context(WorkerPool(cfg.workers))
            inner = PoolEvaluator(pool, ds)
        evaluator = CheckpointingEvaluator(inner, journal, on_progress=bar.update,
                                           on_durable=bar.durable, isolate_failures=True)
        return await drive(flow, evaluator), evaluator.stats
