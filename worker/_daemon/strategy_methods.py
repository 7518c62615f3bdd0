"""SPEC 13's methods: ``loadBars``, ``optimizeStrategy``, and ``simulate``
with a strategy. Each handler is ``async handler(worker, params, ctx)``,
bound to the daemon's ``Worker`` in ``Worker.handlers()``.

Bars in the cache. A ``loadBars`` entry sits in the daemon's one
``DatasetCache`` in place of a ``SharedDataset``: ``HeldBars`` has what the
cache and the daemon use (``nbytes``, ``path``, ``close``), so bars share the
memory budget, ``listDatasets`` lists them (under ``bars``) and
``dropDataset`` drops them. A ``dataset_id`` names either kind: bars where
calls are expected (``HeldBars.dataset``) or calls where bars are expected
(``request_bars``) is -32602 at ``$.dataset_id``. Bars stay in this process
(a strategy's calls dataset, planned from them, is what the pool sees).

``optimizeStrategy`` runs like ``optimize`` (``methods.Worker._run``): the
plan (signal sets and their calls, ``plan.dataset``) is built on a worker
thread and counted against the budget for the request; the flow is driven
with progress, cancel and an optional checkpoint journal; the evaluator is
chosen the same way (one hop, pieces on a thread, or the pool, which gets
the planned dataset as an inline dataset is given to it).

``simulate`` is decoded here, not by the dispatcher: its params are
``SimulateParams`` (calls) or, when they hold ``strategy``,
``SimulateStrategyParams`` (``protocol._messages.VARIANTS``); the server
registers ``simulate`` with ``Worker.params_types()`` (raw params) for that.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import anyio
import msgspec
import numpy as np

from protocol import _messages as m
from protocol._strategy import (
    BarsInfo,
    LoadBarsParams,
    OptimizeStrategyParams,
    SimulateStrategyParams,
    StrategyExitGrid,
    StrategySimulatorConfig,
    Timeframe,
)

from .._core.jobs import recorded
from .._core.validate import DECODED
from .._errors import InvalidParams, split_msgspec_error
from .._report.rundir import check_run_args, checkpoint_request, now, open_run
from .._report.strategy import finish_strategy_run
from .._run.checkpoint import CheckpointingEvaluator
from .._run.drive import drive
from .dispatch import RequestContext
from .progress import track

_BAR_ARRAYS = ("offsets", "ts_ms", "open", "high", "low", "close", "volume", "base_interval_ms")


# ------------------------------------------------------------ bars in the cache

def bars_nbytes(bars: Any) -> int:
    nbytes = getattr(bars, "nbytes", None)
    if isinstance(nbytes, int):
        return nbytes
    return sum(int(getattr(bars, name).nbytes) for name in _BAR_ARRAYS)


class HeldBars:
    """A ``loadBars`` entry of the ``DatasetCache`` (module doc)."""

    def __init__(self, bars: Any) -> None:
        self.bars = bars
        self.nbytes = bars_nbytes(bars)
        self.path = f"bars:{id(self)}"  # no pool process maps it: ``forget`` finds nothing

    @property
    def dataset(self) -> Any:
        """Bars where a calls dataset is expected: invalid params."""
        raise InvalidParams("dataset_id names bars (loaded with loadBars); this method takes a "
                            "calls dataset (loadDataset)", path="$.dataset_id")

    def close(self) -> None:
        self.bars = None


def is_bars(entry: Any) -> bool:
    return isinstance(entry.shared, HeldBars)


def bars_info(bars: Any, nbytes: int) -> dict[str, Any]:
    """``BarsInfo``'s fields but ``dataset_id``."""
    offsets = np.asarray(bars.offsets)
    counts = np.diff(offsets).tolist()
    ts = np.asarray(bars.ts_ms)
    symbols = list(bars.symbols)
    return dict(
        symbols=symbols, bars=int(ts.size),
        bars_by_symbol=dict(zip(symbols, (int(c) for c in counts))),
        base_interval_ms=dict(zip(symbols, np.asarray(bars.base_interval_ms).tolist())),
        first_ts_ms=int(ts.min()) if ts.size else None,
        last_ts_ms=int(ts.max()) if ts.size else None,
        bytes=nbytes)


def info_of(entry: Any) -> BarsInfo:
    return BarsInfo(dataset_id=entry.dataset_id, **entry.info)


def read_bars(path: str, symbols: list[str] | None) -> Any:
    """The bars of ``path`` (a file or a directory). Opens files: call it on a thread."""
    if not os.path.isabs(path):
        raise InvalidParams(f"must be an absolute path, got {path!r:.200}", path="$.bars_path")
    from .._data.bars import load_bars  # SPEC 13 engine (imported when first used)

    return load_bars(path, symbols)


@asynccontextmanager
async def request_bars(worker: Any, p: Any) -> AsyncIterator[Any]:
    """The request's bars: a cache lease of ``loadBars`` bars, or
    ``bars_path`` read for this request alone (its bytes reserved)."""
    if p.dataset_id is not None:
        if p.bars_path is not None:
            raise InvalidParams("give dataset_id or bars_path, not both", path="$.bars_path")
        with worker.cache.lease(p.dataset_id) as entry:
            if not is_bars(entry):
                raise InvalidParams(f"dataset_id {p.dataset_id!r} names a calls dataset "
                                    f"(loadDataset); strategies take bars (loadBars)",
                                    path="$.dataset_id")
            yield entry.shared.bars
    elif p.bars_path is None:
        raise InvalidParams("give the bars: dataset_id (of loadBars) or bars_path",
                            path="$.dataset_id")
    else:
        bars = await anyio.to_thread.run_sync(read_bars, p.bars_path, p.symbols)
        with worker.cache.reserve(bars_nbytes(bars), "bars"):
            yield bars


async def load_bars(worker: Any, p: LoadBarsParams, ctx: RequestContext) -> BarsInfo:
    bars = await anyio.to_thread.run_sync(read_bars, p.bars_path, p.symbols)
    held = HeldBars(bars)
    info = bars_info(bars, held.nbytes)
    dataset_id = p.dataset_id or worker.cache.new_id()
    worker.cache.put(dataset_id, held, info)
    return BarsInfo(dataset_id=dataset_id, **info)


# ------------------------------------------------------------ optimizeStrategy

def exit_points(grid: StrategyExitGrid | None) -> int:
    n = 1
    for name in StrategyExitGrid.__struct_fields__:
        values = None if grid is None else getattr(grid, name)
        n *= 1 if values is None else len(values)
    return n


def _evaluator(worker: Any, ds: Any, p: OptimizeStrategyParams) -> Any:
    """As ``Worker._evaluator``: each call of the plan meets every exit point."""
    return worker.evaluator_for(ds, None, ds.n_calls * exit_points(p.param_grid))


def _fingerprinted(p: OptimizeStrategyParams) -> dict:
    request = checkpoint_request(p)
    request.pop("bars_path", None)  # where the bars come from: the plan's dataset is fingerprinted
    return request


async def optimize_strategy(worker: Any, p: OptimizeStrategyParams, ctx: RequestContext) -> Any:
    check_run_args(p)
    async with request_bars(worker, p) as bars:
        from .._core.strategy import plan_strategy
        from .._core.strategy_search import optimize_strategy_flow

        plan = await anyio.to_thread.run_sync(lambda: plan_strategy(
            bars, strategy=p.strategy, strategy_grid=p.strategy_grid, timeframes=p.timeframes,
            symbols=p.symbols, grid=p.param_grid, config=p.simulator_config,
            max_points=worker.settings.max_grid_points,
            checkpoint=anyio.from_thread.check_cancelled))
        ds = plan.dataset
        with worker.cache.reserve(ds.nbytes, "strategy calls"):
            journal = None
            started = now()
            if p.run_id is not None:
                run_path = Path(p.checkpoint_dir) / p.run_id
                journal = await anyio.to_thread.run_sync(
                    lambda: open_run(run_path, ds, _fingerprinted(p), restart=p.restart))
            try:
                async with track(ctx, p.progress_token, "runs") as progress:
                    evaluator = _evaluator(worker, ds, p)
                    flow = optimize_strategy_flow(
                        plan, mode=p.mode, objective=p.objective, minimize=p.minimize,
                        # A checkpointed run's table lists every point (the answer
                        # only when asked).
                        constraints=p.constraints, top_k=p.top_k,
                        include_all=p.include_all or journal is not None,
                        per_symbol=p.per_symbol, stress=p.stress, plateau=p.plateau,
                        rank_by=p.rank_by, folds=p.folds)
                    counts: dict[str, Any] = dict(
                        on_job=lambda job: progress.add_total(job.n_items),
                        on_progress=progress.chunk_done)
                    if journal is not None:
                        evaluator = CheckpointingEvaluator(
                            evaluator, journal, on_durable=_notifier(ctx, p, run_path),
                            on_progress=progress.set_done, isolate_failures=False)
                        flow, counts = recorded(flow, []), {}
                    result = await drive(flow, evaluator, on_rows=progress.offer_rows, **counts)
                if journal is not None:
                    points = result.all_results
                    if not p.include_all:
                        result = msgspec.structs.replace(result, all_results=msgspec.UNSET)
                    # The journal's lock is held until the run directory is complete.
                    await anyio.to_thread.run_sync(lambda: finish_strategy_run(
                        run_path, cfg=_RunConfig.of(p), bars=bars, plan=plan, result=result,
                        stats=evaluator.stats, started=started, all_results=points))
            finally:
                if journal is not None:
                    journal.close()
    return result


@dataclass(frozen=True)
class _RunConfig:
    """What ``worker._report.strategy`` reads of a batch config, from a
    checkpointed ``optimizeStrategy`` request (no ``report`` section: the
    default heatmaps)."""

    strategy: str
    strategy_grid: dict | None
    timeframes: list
    symbols: list | None
    mode: str
    objective: str | None
    simulator_config: Any
    param_grid: Any
    report: Any = field(default_factory=lambda: SimpleNamespace(heatmaps=None))

    @classmethod
    def of(cls, p: OptimizeStrategyParams) -> _RunConfig:
        return cls(strategy=p.strategy, strategy_grid=p.strategy_grid, timeframes=p.timeframes,
                   symbols=p.symbols, mode=p.mode, objective=p.objective,
                   simulator_config=p.simulator_config or StrategySimulatorConfig(),
                   param_grid=p.param_grid)

    def exit_grid(self) -> dict:
        grid = msgspec.to_builtins(self.param_grid) if self.param_grid is not None else {}
        return {k: v for k, v in grid.items() if v is not None}


def _notifier(ctx: RequestContext, p: OptimizeStrategyParams, path: Path):
    async def durable(done: int, total: int) -> None:
        await ctx.notify("$/checkpoint", m.CheckpointParams(
            token=p.progress_token, run_id=p.run_id, done=done, total=total, path=str(path)))
    return durable


# ------------------------------------------------------------ simulate

class _Peek(msgspec.Struct):
    strategy: Any = msgspec.UNSET


_PEEK = msgspec.json.Decoder(_Peek)
_MEMBER, _STRATEGY_TYPE, _ = m.VARIANTS["simulate"]
_DECODERS = {False: msgspec.json.Decoder(m.SimulateParams),
             True: msgspec.json.Decoder(_STRATEGY_TYPE)}


def decode_simulate(raw: msgspec.Raw | bytes) -> m.SimulateParams | SimulateStrategyParams:
    """``simulate``'s params: ``SimulateStrategyParams`` when they hold
    ``strategy``, else ``SimulateParams``; -32602 with the path otherwise."""
    try:
        has_strategy = _PEEK.decode(raw).strategy is not msgspec.UNSET
        params = _DECODERS[has_strategy].decode(raw)
    except msgspec.ValidationError as exc:
        message, path = split_msgspec_error(exc)
        raise InvalidParams(message, path=path) from None
    except msgspec.DecodeError as exc:
        raise InvalidParams(f"params are not valid JSON: {exc}", path="$") from None
    DECODED.set(tuple(v for v in msgspec.structs.astuple(params)
                      if isinstance(v, (msgspec.Struct, dict, list))))
    return params


async def simulate(worker: Any, p: Any, ctx: RequestContext) -> Any:
    """``simulate``: raw params are decoded here (module doc); calls go to
    ``Worker.simulate``."""
    if isinstance(p, (msgspec.Raw, bytes)):
        p = decode_simulate(p)
    if isinstance(p, SimulateStrategyParams):
        return await simulate_strategy(worker, p, ctx)
    return await worker.simulate(p, ctx)


def _timeframe(p: SimulateStrategyParams) -> tuple[str, dict[str, Any]]:
    """The one timeframe (``timeframe``, or ``params.timeframe``) and the
    strategy and exit parameters without it."""
    params = dict(p.params)
    given = params.pop("timeframe", None)
    if given is not None:
        try:
            given = msgspec.convert(given, Timeframe)
        except msgspec.ValidationError as exc:
            raise InvalidParams(split_msgspec_error(exc)[0], path="$.params.timeframe") from None
        if p.timeframe is not None and given != p.timeframe:
            raise InvalidParams(f"params.timeframe {given!r} is not timeframe {p.timeframe!r}",
                                path="$.params.timeframe")
    timeframe = p.timeframe or given
    if timeframe is None:
        raise InvalidParams("give the timeframe (timeframe, or params.timeframe)",
                            path="$.timeframe")
    return timeframe, params


async def simulate_strategy(worker: Any, p: SimulateStrategyParams, ctx: RequestContext) -> Any:
    timeframe, params = _timeframe(p)
    async with request_bars(worker, p) as bars:
        from .._core.strategy_search import simulate_strategy as run

        return await anyio.to_thread.run_sync(
            lambda: run(bars, strategy=p.strategy, timeframe=timeframe, params=params,
                        config=p.simulator_config, mode=p.mode, symbols=p.symbols,
                        include_trades=p.include_trades),
            limiter=worker._local)
