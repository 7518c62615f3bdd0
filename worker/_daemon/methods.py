"""The methods of SPEC section 7, on top of the flows, the cache and the pool.

Where work runs (the concurrency rules). A grid handler chooses an evaluator
(``_evaluator``; ``worker._run.evaluators``), wraps it in a
``CheckpointingEvaluator`` when the request is checkpointed, and drives the
flow with it (``worker._run.drive``):

- The event loop only decodes, dispatches and writes; it never runs a kernel,
  so ``ping`` is answered while grids run.
- Small work (under ``Settings.local_evaluations`` call x grid-point
  evaluations): a one-hop ``ThreadEvaluator``, the whole flow in one worker
  thread of this process, one request at a time (``_local``: Numba's
  parallel kernels are never launched from two threads at once, so a
  cancelled request keeps the limiter until its kernels stop). A cancel is
  answered -32800 at once by the dispatcher.
- Without a pool, larger work: a ``ThreadEvaluator`` in this process, in
  pieces of about ``SPAN_EVALUATIONS`` with a cancellation point between
  them, under the same limiter.
- Large work: a ``PoolEvaluator``, the process pool in spans; a flow's Python
  steps (validation, ranking, building results) still run in a worker
  thread. Cancelling stops the dispatch of its spans at once (``WorkerPool``).
  An inline dataset is shared with the pool for the request alone.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

import anyio
import msgspec
import structlog

from protocol import ParamGrid
from protocol import _messages as m

from .. import __version__
from .._core.callers import grouped_eval_flow, optimize_per_caller_flow
from .._core.dataset import Dataset
from .._core.jobs import Flow, recorded
from .._core.optimize import Study, make_study, optimize_flow, simulate, unknown_callers
from .._core.validate import grid_size
from .._core.walkforward import walk_forward_flow
from .._data.files import dataset_from_files
from .._data.loaders import dataset_from_columnar, dataset_from_rows
from .._data.precheck import check_regular_file, estimated_bytes, parquet_rows
from .._errors import InvalidParams
from .._pool.evaluator import PoolEvaluator
from .._pool.shm import SharedDataset, share_dataset
from .._pool.shm_build import SharedBuilder, planned_bytes
from .._ray.select import current as ray_executor
from .._report.rundir import (
    check_run_args,
    checkpoint_request,
    finish_run,
    now,
    open_run,
)
from .._run.checkpoint import CheckpointingEvaluator
from .._run.drive import drive
from .._run.evaluators import Evaluator, ThreadEvaluator
from .._run.journal import Journal
from . import strategy_methods as sm
from .cache import DatasetCache, Entry
from .dispatch import RequestContext
from .progress import track
from .settings import Settings

PROTOCOL_VERSION = "1.0"
log = structlog.get_logger()


def build_source(p: m.DataSource) -> Dataset:
    """The Dataset of an inline source: exactly one of rows, columns, files."""
    given = [name for name, present in (
        ("calls + candles_by_call_id", p.candles_by_call_id is not None),
        ("calls + candles_columnar", p.candles_columnar is not None),
        ("calls_path + candles_path", p.calls_path is not None or p.candles_path is not None),
    ) if present]
    if len(given) != 1:
        what = "none" if not given else " and ".join(given)
        raise InvalidParams(f"give exactly one data source (dataset_id, calls + candles_by_call_id, "
                            f"calls + candles_columnar, or calls_path + candles_path); got {what}")
    opts = {"series_key": p.series_key, "on_bad_series": p.on_bad_series}
    if p.calls_path is not None or p.candles_path is not None:
        if p.calls_path is None or p.candles_path is None:
            missing = "calls_path" if p.calls_path is None else "candles_path"
            raise InvalidParams("files come in pairs: calls_path and candles_path", path=f"$.{missing}")
        return dataset_from_files(p.calls_path, p.candles_path, **opts)
    if p.calls is None:
        raise InvalidParams("inline candles need their calls", path="$.calls")
    calls = msgspec.to_builtins(p.calls)
    if p.candles_by_call_id is not None:
        return dataset_from_rows(calls, p.candles_by_call_id, **opts)
    return dataset_from_columnar(calls, msgspec.structs.asdict(p.candles_columnar), **opts)


def build_within(p: m.DataSource, check_fits: Callable[[int, str], None]) -> Dataset:
    """``build_source`` with files checked first: regular files only (a FIFO
    would block), and a candles file that could never fit the budget refused
    from its metadata before it is read. Opens files: call it on a thread."""
    if p.calls_path is not None and p.candles_path is not None:
        check_regular_file(p.calls_path, "$.calls_path")
        check_regular_file(p.candles_path, "$.candles_path")
        check_fits(estimated_bytes(p.candles_path), f"candles file {p.candles_path}")
    return build_source(p)


def load_shared(p: m.DataSource, check_fits: Callable[[int, str], None],
                shm_dir: str | None) -> SharedDataset:
    """``loadDataset``'s dataset, in its shared file. Files are decoded
    straight into the file (``worker._pool.shm_build``), after the budget is
    checked against the file's planned size from Parquet metadata; inline
    sources are built, then copied in. Opens files: call it on a thread."""
    inline = (p.calls, p.candles_by_call_id, p.candles_columnar)
    if p.calls_path is None or p.candles_path is None or any(x is not None for x in inline):
        ds = build_within(p, check_fits)
        check_fits(ds.nbytes, "dataset")
        return share_dataset(ds, shm_dir)
    check_regular_file(p.calls_path, "$.calls_path")
    check_regular_file(p.candles_path, "$.candles_path")
    n_candles, n_calls = parquet_rows(p.candles_path), parquet_rows(p.calls_path)
    if n_candles is not None:
        check_fits(planned_bytes(n_candles, n_calls or 0), f"candles file {p.candles_path}")
    with SharedBuilder(shm_dir) as builder:
        ds = dataset_from_files(p.calls_path, p.candles_path, series_key=p.series_key,
                                on_bad_series=p.on_bad_series,
                                candle_sink=builder)
        return builder.finish(ds)


class Worker:
    """The daemon's state and its method handlers (``async (params, ctx)``)."""

    def __init__(self, settings: Settings, pool: Any | None, task_group: anyio.abc.TaskGroup) -> None:
        self.settings = settings
        self.pool = pool
        self._tg = task_group
        self.cache = DatasetCache(settings.cache_bytes, self._close_entry)
        self.started = time.monotonic()
        self.shutdown_requested = anyio.Event()
        self.in_flight: Callable[[], int] = lambda: 0
        self._local = anyio.CapacityLimiter(1)

    # ------------------------------------------------------------ lifecycle

    def handlers(self) -> dict[str, Callable]:
        return {
            "initialize": self.initialize, "ping": self.ping, "loadDataset": self.load_dataset,
            "dropDataset": self.drop_dataset, "listDatasets": self.list_datasets,
            "simulate": partial(sm.simulate, self), "optimize": self.optimize,
            "optimizePerCaller": self.optimize_per_caller, "groupedEval": self.grouped_eval,
            "walkForward": self.walk_forward, "stats": self.stats, "shutdown": self.shutdown,
            # SPEC 13 (strategy_methods): bars in the same cache, their own handlers.
            "loadBars": partial(sm.load_bars, self),
            "optimizeStrategy": partial(sm.optimize_strategy, self),
        }

    @staticmethod
    def params_types() -> dict[str, Any]:
        """Methods whose handler decodes its own params (``simulate``: calls or
        a strategy, ``protocol._messages.VARIANTS``)."""
        return {"simulate": msgspec.Raw}

    def _close_entry(self, entry: Entry) -> None:
        self._tg.start_soon(self._forget_and_close, entry.shared)

    async def _forget_and_close(self, shared: SharedDataset) -> None:
        try:
            if self.pool is not None:
                await self.pool.forget(shared.path)
        finally:
            shared.close()

    def close(self) -> None:
        """Release every shared file (the daemon is exiting)."""
        for entry in self.cache.entries():
            entry.shared.close()

    # ------------------------------------------------------------ simple methods

    async def initialize(self, p: m.InitializeParams, ctx: RequestContext) -> m.InitializeResult:
        return m.InitializeResult(
            server="optimizer-worker", version=__version__, protocol_version=PROTOCOL_VERSION,
            methods=sorted([*m.METHODS, *m.NOTIFICATIONS]),
            capabilities={"modes": ["capital", "per_trade"], "progress": True, "cancel": True,
                          "series_keys": ["call_id", "mint"], "file_formats": ["parquet", "csv"],
                          "max_message_bytes": self.settings.max_message_bytes,
                          "max_grid_points": self.settings.max_grid_points,
                          "pool_size": self.settings.pool_size})

    async def ping(self, p: m.Empty, ctx: RequestContext) -> m.Empty:
        return m.Empty()

    async def stats(self, p: m.Empty, ctx: RequestContext) -> m.StatsResult:
        pool = self.pool
        return m.StatsResult(
            datasets=len(self.cache), bytes=self.cache.nbytes, budget_bytes=self.cache.budget_bytes,
            requests_in_flight=self.in_flight(), pool_size=0 if pool is None else pool.size,
            pool_alive=0 if pool is None else pool.alive,
            pool_restarts=0 if pool is None else pool.restarts,
            pool_stalled=0 if pool is None else pool.stalled,
            pool_span_retries=0 if pool is None else pool.span_retries,
            pool_pids=[] if pool is None else list(pool.pids),
            uptime_s=time.monotonic() - self.started)

    async def shutdown(self, p: m.Empty, ctx: RequestContext) -> m.Empty:
        # Stop only once the {} is out: SPEC 7 promises the answer, then exit 0.
        ctx.call_after_response(self.shutdown_requested.set)
        return m.Empty()

    # ------------------------------------------------------------ datasets

    async def load_dataset(self, p: m.LoadDatasetParams, ctx: RequestContext) -> m.DatasetInfo:
        if p.dataset_id is not None and not p.dataset_id:
            raise InvalidParams("dataset_id must not be empty", path="$.dataset_id")
        shared = await anyio.to_thread.run_sync(load_shared, p, self.cache.check_fits,
                                                self.settings.shm_dir)
        info = shared.dataset.summary()
        dataset_id = p.dataset_id or self.cache.new_id()
        self.cache.put(dataset_id, shared, info)
        return self._info(dataset_id, info)

    @staticmethod
    def _info(dataset_id: str, info: dict) -> m.DatasetInfo:
        return msgspec.convert({**info, "dataset_id": dataset_id}, m.DatasetInfo)

    async def drop_dataset(self, p: m.DatasetIdParams, ctx: RequestContext) -> m.DropDatasetResult:
        freed = self.cache.drop(p.dataset_id)
        return m.DropDatasetResult(dataset_id=p.dataset_id, dropped=freed > 0, bytes_freed=freed)

    async def list_datasets(self, p: m.Empty, ctx: RequestContext) -> m.ListDatasetsResult:
        entries = self.cache.entries()
        return m.ListDatasetsResult(
            datasets=[self._info(e.dataset_id, e.info) for e in entries if not sm.is_bars(e)],
            bars=[sm.info_of(e) for e in entries if sm.is_bars(e)],
            bytes=self.cache.nbytes, budget_bytes=self.cache.budget_bytes)

    @asynccontextmanager
    async def _data(self, p: m.DataSource) -> AsyncIterator[tuple[Dataset, SharedDataset | None]]:
        """The request's dataset: a cache lease, or an inline source built
        for this request alone (shared with the pool only if it needs it)."""
        if p.dataset_id is not None:
            inline = [f for f in ("calls", "candles_by_call_id", "candles_columnar", "calls_path",
                                  "candles_path") if getattr(p, f) is not None]
            if inline:
                raise InvalidParams(f"give dataset_id or an inline source, not both (also got {inline[0]})",
                                    path=f"$.{inline[0]}")
            with self.cache.lease(p.dataset_id) as entry:
                yield entry.shared.dataset, entry.shared
        else:
            ds = await anyio.to_thread.run_sync(build_within, p, self.cache.check_fits)
            with self.cache.reserve(ds.nbytes):
                yield ds, None

    # ------------------------------------------------------------ compute

    @staticmethod
    def _warn_unknown_callers(ds: Dataset, p: Any, ctx: RequestContext) -> None:
        unknown = unknown_callers(ds, p.caller_groups)
        if unknown:
            log.warning("caller_groups names callers with no calls (ignored)",
                        id=ctx.id, method=ctx.method, callers=unknown[:20])

    def _study_args(self, p: m.OptimizeParams) -> dict[str, Any]:
        return dict(config=p.simulator_config, mode=p.mode, objective=p.objective,
                    minimize=p.minimize, constraints=p.constraints, caller_groups=p.caller_groups,
                    max_points=self.settings.max_grid_points, plateau=p.plateau,
                    stress=p.stress, rank_by=p.rank_by)

    async def simulate(self, p: m.SimulateParams, ctx: RequestContext) -> Any:
        async with self._data(p) as (ds, _):
            self._warn_unknown_callers(ds, p, ctx)
            return await anyio.to_thread.run_sync(
                lambda: simulate(ds, p.params, config=p.simulator_config, mode=p.mode,
                                 include_trades=p.include_trades, caller_groups=p.caller_groups),
                limiter=self._local)

    async def optimize(self, p: m.OptimizeParams, ctx: RequestContext) -> Any:
        return await self._run(p, ctx, "optimize", lambda ds: optimize_flow(
            ds, p.param_grid, top_k=p.top_k, include_all=p.include_all, **self._study_args(p)))

    async def optimize_per_caller(self, p: m.OptimizeParams, ctx: RequestContext) -> Any:
        return await self._run(p, ctx, "per_caller", lambda ds: optimize_per_caller_flow(
            ds, p.param_grid, extreme_sl_below=p.extreme_sl_below,
            extreme_tp_above=p.extreme_tp_above, **self._study_args(p)))

    async def grouped_eval(self, p: m.GroupedEvalParams, ctx: RequestContext) -> Any:
        return await self._run(p, ctx, "grouped", lambda ds: grouped_eval_flow(
            ds, p.param_grid, filter_collapsed=p.filter_collapsed, filter_extreme=p.filter_extreme,
            grouped_params=p.grouped_params, extreme_sl_below=p.extreme_sl_below,
            extreme_tp_above=p.extreme_tp_above, **self._study_args(p)))

    async def walk_forward(self, p: m.WalkForwardParams, ctx: RequestContext) -> Any:
        return await self._run(p, ctx, "walk_forward", lambda ds: walk_forward_flow(
            ds, p.param_grid, folds=p.folds, pbo_spec=p.pbo, top_k=p.top_k,
            include_all=p.include_all, **self._study_args(p)))

    def _evaluator(self, ds: Dataset, shared: SharedDataset | None,
                   p: m.OptimizeParams) -> Evaluator:
        """Where the request's grid work runs (module doc)."""
        return self.evaluator_for(ds, shared, ds.n_calls * grid_size(p.param_grid or ParamGrid()))

    def evaluator_for(self, ds: Dataset, shared: SharedDataset | None,
                      evaluations: int) -> Evaluator:
        """One hop on a thread for small work (``evaluations``: calls x grid
        points), else Ray when served with ``--executor ray`` (SPEC 14), else
        the pool (pieces on a thread without one)."""
        if evaluations <= self.settings.local_evaluations:
            return ThreadEvaluator(ds, limiter=self._local, one_hop=True)
        ray = ray_executor()
        if ray is not None:
            return ray.evaluator(ds)
        if self.pool is None:
            return ThreadEvaluator(ds, limiter=self._local)
        return PoolEvaluator(self.pool, ds if shared is None else shared,
                             shm_dir=self.settings.shm_dir)

    async def _run(self, p: m.OptimizeParams, ctx: RequestContext, kind: str,
                   make_flow: Callable[[Dataset], Flow]) -> Any:
        check_run_args(p)
        async with self._data(p) as (ds, shared):
            self._warn_unknown_callers(ds, p, ctx)
            run = None if p.run_id is None else await self._open_run(p, ds)
            try:
                async with track(ctx, p.progress_token, "runs") as progress:
                    evaluator = self._evaluator(ds, shared, p)
                    flow = make_flow(ds)
                    counts: dict[str, Any] = dict(
                        on_job=lambda job: progress.add_total(job.n_items),
                        on_progress=progress.chunk_done)
                    if run is not None:
                        # A failed chunk fails the request (-32603, naming it); the
                        # journal keeps what finished, so the same request resumes.
                        # The run counts its own progress, resumed work included.
                        evaluator = CheckpointingEvaluator(
                            evaluator, run.journal, on_durable=run.notifier(ctx, p),
                            on_progress=progress.set_done, isolate_failures=False)
                        flow, counts = recorded(flow, run.jobs), {}
                    result = await drive(flow, evaluator, on_rows=progress.offer_rows, **counts)
                if run is not None:
                    # The journal's lock is held until the run directory is complete.
                    await anyio.to_thread.run_sync(
                        finish_run, run.path, ds, kind, run.study, result, evaluator.stats,
                        run.jobs, run.started)
            finally:
                if run is not None:
                    run.journal.close()
            return result

    async def _open_run(self, p: m.OptimizeParams, ds: Dataset) -> _RunDir:
        """SPEC 7/8: a checkpointed request journals every finished chunk
        under checkpoint_dir/run_id, resumes what an earlier attempt
        finished, and ends by writing the run directory."""
        path = Path(p.checkpoint_dir) / p.run_id
        study = make_study(ds, grid=p.param_grid, **self._study_args(p))
        journal = await anyio.to_thread.run_sync(
            lambda: open_run(path, ds, checkpoint_request(p), restart=p.restart))
        return _RunDir(path, journal, study, now(), [])


class _RunDir(NamedTuple):
    """A checkpointed request's run directory, open while it runs."""

    path: Path
    journal: Journal
    study: Study
    started: str
    jobs: list   # (job, arrays) of the run, for its report

    def notifier(self, ctx: RequestContext, p: m.OptimizeParams):
        """``on_durable``: a ``$/checkpoint`` notification after every flush."""
        async def durable(done: int, total: int) -> None:
            await ctx.notify("$/checkpoint", m.CheckpointParams(
                token=p.progress_token, run_id=p.run_id, done=done, total=total,
                path=str(self.path)))
        return durable
