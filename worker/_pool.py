"""The daemon's process pool: warm pool processes that evaluate ``GridJob``
spans on datasets in shared memory.

- Start: ``size`` fresh interpreters (``python -m worker._pool_child``; no
  fork, so nothing of Numba's threading layer is inherited), each loading the
  kernels from Numba's on-disk cache before it is "ready". ``NUMBA_NUM_THREADS``
  (default 1) is set in their environment so N processes on N cores do not
  oversubscribe them. Their stderr is the daemon's stderr; they run in their
  own session, so signals to the daemon's process group reach the daemon only.
- Data: a dataset goes to the pool once, as a shared file (``worker._shm``);
  a pool process maps it on the first span of a job and keeps it mapped
  (small LRU) until ``forget``. A job (levels, positions, config) travels
  once per process, its candle scan runs once per process; spans are tiny.
- Work: a job's items are cut into contiguous spans of about equal cost
  (~25 ms each; one span when the whole job is smaller), queued, and pulled
  by idle processes; concurrent ``evaluate()`` calls take turns (round
  robin), so none waits for another to drain. Results are assembled in item
  order.
- Failure: a pool process that dies fails only the call whose span it was
  serving (``InternalError``, -32603); one that dies idle fails nothing. It
  is replaced in the background and ``restarts`` counts it. Cancelling
  ``evaluate()`` drops its queued spans at once; spans already running
  finish in their process (<= one span) and are discarded.
- Shutdown (``aclose``/``__aexit__``, also when cancelled): stdin closed (a
  pool process exits at EOF), a short grace, then SIGTERM, then SIGKILL, and
  every process is reaped. Pool processes also ask the kernel to kill them
  when the daemon dies (``PR_SET_PDEATHSIG``), so none is ever orphaned.

Use::

    async with WorkerPool(size) as pool:
        shared = share_dataset(ds)           # once per dataset; keep shared.dataset
        metrics, exits, skipped = await pool.evaluate(shared, "ds-1", job)
        result = await run_flow(pool, shared, "ds-1", optimize_flow(shared.dataset))  # whole flows
        ...
        await pool.forget("ds-1"); shared.close()
"""

from __future__ import annotations

import atexit
import itertools
import logging
import math
import os
import select
import signal
import sys
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar

import anyio
import msgspec
import numpy as np
from anyio.abc import Process
from anyio.streams.buffered import BufferedByteReceiveStream

from ._errors import InternalError
from ._jobs import Flow, GridJob, step
from ._pool_child import HEADER, decode_payload, encode_frame, pack_array, unpack_array
from ._shm import SharedDataset

__all__ = ["WorkerPool", "run_flow", "cut_spans", "available_cpus"]

log = logging.getLogger("worker.pool")

Arrays = tuple[np.ndarray, np.ndarray, np.ndarray]
R = TypeVar("R")

EVALS_PER_SECOND = 20_000_000     # one pool process, one thread (rough, for sizing)
SPAN_SECONDS = 0.025              # target duration of one span
ITEM_OVERHEAD = 16                # evaluations' worth of fixed cost per item
_STOP_GRACE = 2.0                 # seconds a pool process gets to exit at EOF
_TERM_GRACE = 1.0                 # then SIGTERM, then SIGKILL
_MAX_BACKOFF = 30.0               # between failed restarts

_DEATH_ERRORS = (anyio.EndOfStream, anyio.IncompleteRead, anyio.BrokenResourceError,
                 anyio.ClosedResourceError, OSError, RuntimeError)


def available_cpus() -> int:
    """CPUs this process may use: affinity, capped by a cgroup v2 CPU quota
    (``docker --cpus``)."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        n = os.cpu_count() or 1
    try:
        with open("/sys/fs/cgroup/cpu.max") as f:
            quota, period = f.read().split()[:2]
        if quota != "max":
            n = min(n, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, n)


def cut_spans(group_sizes: np.ndarray, n_points: int, n_workers: int,
              target: float = EVALS_PER_SECOND * SPAN_SECONDS) -> list[tuple[int, int]]:
    """Contiguous spans ``[a, b)`` covering items ``0 .. G * n_points`` once, of
    about equal cost. Item ``g * n_points + p`` costs ``group_sizes[g]`` call
    evaluations (+ a fixed overhead). Spans are ~``target`` evaluations; when
    there is more than one span of work there is at least one per worker."""
    sizes = np.asarray(group_sizes, np.float64).reshape(-1)
    n_items = sizes.size * n_points
    if n_items == 0:
        return []
    per_item = sizes + ITEM_OVERHEAD
    group_cost = per_item * n_points
    total = float(group_cost.sum())
    n_spans = math.ceil(total / target)
    if n_spans > 1:  # a multiple of the workers: no lone span at the end
        n_spans = math.ceil(n_spans / n_workers) * n_workers
    n_spans = max(1, min(n_spans, n_items))
    if n_spans == 1:
        return [(0, n_items)]
    starts = np.concatenate(([0.0], np.cumsum(group_cost)))
    cuts = np.arange(1, n_spans, dtype=np.float64) * (total / n_spans)
    g = np.clip(np.searchsorted(starts, cuts, side="right") - 1, 0, sizes.size - 1)
    within = np.clip(np.ceil((cuts - starts[g]) / per_item[g]), 0, n_points)
    bounds = np.unique(np.concatenate(([0], g * n_points + within.astype(np.int64),
                                       [n_items])).astype(np.int64))
    return [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]


def _exit_text(returncode: int | None) -> str:
    if returncode is None:
        return "still running, not answering"
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = "unknown"
        return f"signal {-returncode}, {name}"
    return f"exit code {returncode}"


class _ChildDied(Exception):
    pass


class _StartFailed(Exception):
    pass


class _Call:
    """One ``evaluate()`` in flight."""

    def __init__(self, call_id: int, job: GridJob, spec: dict,
                 spans: list[tuple[int, int]], total: int) -> None:
        self.id = call_id
        self.job = job
        self.spec = spec
        self.spans: deque[tuple[int, int]] = deque(spans)
        self.total = total
        self.done = 0
        self.out: Arrays = (np.empty((total, 11), np.float64), np.empty((total, 4), np.int64),
                            np.empty((total, 3), np.int64))
        self.error: BaseException | None = None
        self.finished = False
        self.holders: set[_Child] = set()   # pool processes that were sent the spec
        self.changed = anyio.Event()

    def notify(self) -> None:
        self.changed.set()
        self.changed = anyio.Event()


class _Child:
    """One pool process and its frame streams."""

    def __init__(self, proc: Process) -> None:
        self.proc = proc
        self.pid = proc.pid
        assert proc.stdout is not None and proc.stdin is not None
        self.reader = BufferedByteReceiveStream(proc.stdout)
        self.ready = False
        self.dead = False
        self.jobs: set[int] = set()
        self.control: list[bytes] = []           # frames to send before the next span
        self.serving: _Call | None = None
        self.replies_send, self.replies = anyio.create_memory_object_stream[Any](math.inf)
        try:  # Linux >= 5.3: readable once the process has ended
            self.pidfd: int | None = os.pidfd_open(self.pid)
        except (AttributeError, OSError):
            self.pidfd = None

    def has_exited(self) -> bool:
        """Whether the process has ended, right now (no await). A write to a
        dead process's pipe can look successful on asyncio for a loop turn
        or two, so this is asked before a span is handed over."""
        if self.proc.returncode is not None:
            return True
        if self.pidfd is None:
            return False
        return bool(select.select([self.pidfd], [], [], 0)[0])

    async def send(self, frame: bytes) -> None:
        await self.proc.stdin.send(frame)  # type: ignore[union-attr]

    def close_streams(self) -> None:
        self.replies_send.close()
        self.replies.close()

    def close_pidfd(self) -> None:  # once reaped
        if self.pidfd is not None:
            os.close(self.pidfd)
            self.pidfd = None

    async def read_frame(self) -> Any:
        (n,) = HEADER.unpack(await self.reader.receive_exactly(HEADER.size))
        return decode_payload(await self.reader.receive_exactly(n)) if n else None


_live_pools: weakref.WeakSet[WorkerPool] = weakref.WeakSet()


@atexit.register
def _kill_leftovers() -> None:  # a pool never closed (crash paths): no orphans
    for pool in list(_live_pools):
        pool._kill_all()


class WorkerPool:
    """``size`` warm pool processes evaluating ``GridJob`` spans (module doc).

    ``numba_threads``: Numba threads per pool process (``NUMBA_NUM_THREADS``).
    ``target_span_evaluations``: span size in call x grid-point evaluations.
    ``on_span_start(pid, job)``: test hook, called right after a span was sent.
    """

    def __init__(self, size: int, *, numba_threads: int = 1,
                 target_span_evaluations: int = int(EVALS_PER_SECOND * SPAN_SECONDS),
                 env: dict[str, str] | None = None) -> None:
        if size < 1:
            raise ValueError("pool size must be at least 1")
        self.size = size
        self.numba_threads = max(1, int(numba_threads))
        self.target_span_evaluations = max(1, int(target_span_evaluations))
        self.restarts = 0
        self.on_span_start: Callable[[int, GridJob], None] | None = None
        self._env = env
        self._children: list[_Child | None] = [None] * size
        self._procs: set[Process] = set()       # every process not yet reaped
        self._unreaped: set[_Child] = set()     # the same, as _Child (pidfds)
        self._queue: deque[_Call] = deque()     # calls with spans to hand out
        self._wake = anyio.Event()
        self._ids = itertools.count(1)
        self._tg: anyio.abc.TaskGroup | None = None
        self._started = False
        self._closing = False
        self._closed = False
        self._last_start_error = ""

    # ------------------------------------------------------------ stats

    @property
    def alive(self) -> int:
        """Pool processes ready to take work."""
        return sum(1 for c in self._children if c is not None and c.ready and not c.dead)

    @property
    def pids(self) -> list[int]:
        return [c.pid for c in self._children if c is not None and not c.dead]

    @property
    def all_pids(self) -> list[int]:
        """Every pool process started and not yet reaped (also ones starting)."""
        return [p.pid for p in self._procs]

    def stats(self) -> dict[str, Any]:
        return {"size": self.size, "alive": self.alive, "restarts": self.restarts,
                "queued_spans": sum(len(c.spans) for c in self._queue),
                "numba_threads": self.numba_threads,
                "last_start_error": self._last_start_error or None}

    # ------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> WorkerPool:
        if self._started:
            raise RuntimeError("a WorkerPool can be entered once")
        self._started = True
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        _live_pools.add(self)
        try:
            ready: list[anyio.Event] = [anyio.Event() for _ in range(self.size)]
            failed: list[BaseException] = []
            for i in range(self.size):
                self._tg.start_soon(self._slot, i, ready[i], failed)
            for ev in ready:
                await ev.wait()
                if failed:
                    raise InternalError(f"the process pool could not start: {failed[0]}")
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self.aclose()
                await self._tg.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(self, *exc: Any) -> bool | None:
        with anyio.CancelScope(shield=True):
            await self.aclose()
        assert self._tg is not None
        return await self._tg.__aexit__(*exc)

    async def aclose(self) -> None:
        """Stop every pool process (EOF, grace, SIGTERM, SIGKILL) and reap it.
        Any task may call it; idempotent; never leaves a process behind."""
        if self._closed:
            return
        self._closing = True
        for call in list(self._queue):
            self._fail(call, InternalError("the process pool is shutting down"))
        self._notify()
        with anyio.CancelScope(shield=True):
            procs = list(self._procs)
            for proc in procs:
                try:
                    await proc.stdin.aclose()  # type: ignore[union-attr]
                except Exception:
                    pass
            await self._wait_procs(_STOP_GRACE)
            for proc in list(self._procs):
                _signal(proc, signal.SIGTERM)
            await self._wait_procs(_TERM_GRACE)
            for proc in list(self._procs):
                _signal(proc, signal.SIGKILL)
            await self._wait_procs(None)
            for proc in procs:  # close the pipes (no ResourceWarning)
                with anyio.move_on_after(0.5):
                    try:
                        await proc.aclose()
                    except Exception:
                        pass
            self._closed = True
            if self._tg is not None:
                self._tg.cancel_scope.cancel()
        _live_pools.discard(self)

    async def _wait_procs(self, timeout: float | None) -> None:
        with anyio.move_on_after(timeout):
            for proc in list(self._procs):
                await proc.wait()
                self._procs.discard(proc)

    def _kill_all(self) -> None:
        """SIGKILL every process not yet reaped, synchronously (atexit)."""
        for child in list(self._unreaped):
            try:
                if child.pidfd is not None:  # immune to pid reuse
                    signal.pidfd_send_signal(child.pidfd, signal.SIGKILL)
                elif child.proc.returncode is None:
                    os.kill(child.pid, signal.SIGKILL)
            except OSError:
                pass

    # ------------------------------------------------------------ requests

    async def evaluate(self, shared: SharedDataset, dataset_key: str, job: GridJob, *,
                       on_progress: Callable[[int, int], None] | None = None) -> Arrays:
        """Metrics ``[n_items, 11]``, exits ``[n_items, 4]``, skips ``[n_items, 3]``
        of every item of ``job``, as ``worker._jobs.evaluate`` would give them.

        ``on_progress(done_items, total_items)`` is called (in this task) as
        spans complete, last with ``done == total``. Raises ``InternalError``
        when a pool process dies serving this call, or fails on it.
        """
        if self._closing or not self._started:
            raise InternalError("the process pool is not running")
        total = job.n_items
        with shared.hold():
            spec = self._spec(shared, dataset_key, job)
            spans = cut_spans(self._group_sizes(shared, job), job.levels.n_points,
                              self.size, self.target_span_evaluations)
            call = _Call(next(self._ids), job, spec, spans, total)
            if total == 0:
                return call.out
            self._queue.append(call)
            self._notify()
            reported = 0
            try:
                while True:
                    if call.error is not None:
                        raise call.error
                    if call.done != reported and on_progress is not None:
                        reported = call.done
                        on_progress(reported, total)
                    if call.done == total:
                        return call.out
                    await call.changed.wait()
            finally:
                self._finish(call)

    async def wait_ready(self) -> None:
        """Wait until every place in the pool has a ready process (after a
        restart, say). Returns at once when the pool is closing."""
        while self.alive < self.size and not self._closing:
            await self._wake.wait()

    async def forget(self, dataset_key: str) -> None:
        """Tell every pool process to unmap the dataset ``dataset_key``
        (before the daemon closes its ``SharedDataset``)."""
        frame = encode_frame({"op": "forget", "key": dataset_key})
        for child in self._children:
            if child is not None and not child.dead:
                child.control.append(frame)
        self._notify()

    # ------------------------------------------------------------ internals

    @staticmethod
    def _spec(shared: SharedDataset, key: str, job: GridJob) -> dict:
        lv = job.levels
        return {
            "key": key,
            "shared": shared.descriptor,
            "tp": pack_array(lv.tp), "sl": pack_array(lv.sl),
            "hold_ms": pack_array(lv.hold_ms), "points": pack_array(lv.points),
            "positions": pack_array(np.asarray(job.positions, np.int64)),
            "group_codes": None if job.group_codes is None else pack_array(job.group_codes),
            "config": msgspec.to_builtins(job.config),
            "mode": job.mode,
        }

    @staticmethod
    def _group_sizes(shared: SharedDataset, job: GridJob) -> np.ndarray:
        if job.group_codes is None:
            return np.array([job.positions.size], np.int64)
        caller = shared.dataset.call_caller[job.positions]
        counts = np.bincount(caller, minlength=int(job.group_codes.max(initial=0)) + 1)
        return counts[job.group_codes]

    def _notify(self) -> None:
        self._wake.set()
        self._wake = anyio.Event()

    def _fail(self, call: _Call, error: BaseException) -> None:
        if call.finished or call.error is not None:
            return
        call.error = error
        call.spans.clear()
        self._unqueue(call)
        call.notify()

    def _unqueue(self, call: _Call) -> None:
        try:
            self._queue.remove(call)
        except ValueError:
            pass

    def _finish(self, call: _Call) -> None:
        """Success, failure or cancellation: drop queued spans, free the job."""
        call.finished = True
        call.spans.clear()
        self._unqueue(call)
        if call.holders:
            frame = encode_frame({"op": "drop_job", "job": call.id})
            for child in call.holders:
                if not child.dead:
                    child.control.append(frame)
            call.holders.clear()
            self._notify()

    async def _next_work(self, child: _Child) -> tuple[_Call, tuple[int, int]] | None:
        """The next span for ``child`` (round robin over calls), or None when
        control frames are waiting. Raises ``_ChildDied`` when it died idle."""
        while True:
            if child.dead or self._closing:
                raise _ChildDied
            if child.control:
                return None
            if self._queue:
                call = self._queue[0]
                span = call.spans.popleft()
                if call.spans:
                    self._queue.rotate(-1)
                else:
                    self._queue.popleft()
                return call, span
            await self._wake.wait()

    def _requeue(self, call: _Call, span: tuple[int, int]) -> None:
        if call.finished or call.error is not None:
            return
        if self._closing:
            self._fail(call, InternalError("the process pool is shutting down"))
            return
        call.spans.appendleft(span)
        if call not in self._queue:
            self._queue.appendleft(call)
        self._notify()

    async def _serve(self, child: _Child) -> None:
        """Hand spans to one ready pool process until it dies or the pool closes."""
        while True:
            work = await self._next_work(child)
            while child.control:
                frame = child.control.pop(0)
                try:
                    await child.send(frame)
                except _DEATH_ERRORS:
                    raise _ChildDied from None
            if work is None:
                continue
            call, span = work
            msg: dict[str, Any] = {"op": "eval", "job": call.id, "span": list(span)}
            if call.id not in child.jobs:
                msg["spec"] = call.spec
            last = not call.spans  # the call's last span: no need to keep the job
            if last:
                msg["last"] = True
            if child.has_exited():
                self._requeue(call, span)
                raise _ChildDied
            try:
                await child.send(encode_frame(msg))
            except _DEATH_ERRORS:
                # It was gone before it got the span: not this call's fault.
                self._requeue(call, span)
                raise _ChildDied from None
            if last:
                child.jobs.discard(call.id)
                call.holders.discard(child)
            else:
                child.jobs.add(call.id)
                call.holders.add(child)
            child.serving = call
            if self.on_span_start is not None:
                try:
                    self.on_span_start(child.pid, call.job)
                except Exception:
                    log.exception("on_span_start hook failed")
            try:
                reply = await child.replies.receive()
            except (anyio.EndOfStream, anyio.ClosedResourceError):
                raise _ChildDied from None
            child.serving = None
            if call.finished or call.error is not None:
                continue  # cancelled or failed meanwhile: discard
            if not reply.get("ok"):
                self._fail(call, InternalError(
                    f"pool process {child.pid} failed on this request: {reply.get('error')}"))
                continue
            a, b = span
            for out, key in zip(call.out, ("m", "e", "s")):
                out[a:b] = unpack_array(reply[key], writable=False)
            call.done += b - a
            call.notify()

    async def _read(self, child: _Child) -> None:
        """Move reply frames from the process to ``child.replies``; on EOF
        mark it dead and wake its slot."""
        try:
            while True:
                child.replies_send.send_nowait(await child.read_frame())
        except _DEATH_ERRORS:
            pass
        except Exception:  # a garbled frame: treat the process as broken
            log.exception("pool process %d sent a bad frame; killing it", child.pid)
            _signal(child.proc, signal.SIGKILL)
        finally:
            child.dead = True
            child.replies_send.close()
            self._notify()

    async def _spawn(self) -> _Child:
        env = dict(os.environ if self._env is None else self._env)
        env["NUMBA_NUM_THREADS"] = str(self.numba_threads)
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            env.setdefault(var, str(self.numba_threads))
        env["OPTIMIZER_WORKER_PARENT_PID"] = str(os.getpid())
        # Own session: a signal to the daemon's process group (Ctrl-C, kill -TERM
        # -pgid) reaches the daemon only, which then closes the pool in order.
        proc = await anyio.open_process([sys.executable, "-m", "worker._pool_child"],
                                        stdin=-1, stdout=-1, stderr=None, env=env,
                                        start_new_session=True)
        self._procs.add(proc)
        child = _Child(proc)
        self._unreaped.add(child)
        if self._closing:
            await self._reap(child, kill=True)
            raise _StartFailed("the pool is closing")
        try:
            hello = await child.read_frame()
        except _DEATH_ERRORS:
            rc = await self._reap(child)
            raise _StartFailed(f"pool process {child.pid} exited before it was ready "
                               f"({_exit_text(rc)}); see its log above") from None
        except BaseException:  # cancelled while it started
            await self._reap(child, kill=True)
            raise
        if not isinstance(hello, dict) or hello.get("op") != "ready":
            await self._reap(child, kill=True)
            raise _StartFailed(f"pool process {child.pid} sent {hello!r} instead of ready")
        child.ready = True
        log.info("pool process %d ready (kernels loaded in %.2f s, %s numba threads)",
                 child.pid, hello.get("warm_s", float("nan")), hello.get("numba_threads"))
        return child

    async def _reap(self, child: _Child, kill: bool = False) -> int | None:
        """Wait for a dead (or killed) process, so no zombie stays behind."""
        with anyio.CancelScope(shield=True):
            if kill:
                _signal(child.proc, signal.SIGKILL)
            with anyio.move_on_after(_STOP_GRACE):
                await child.proc.wait()
            if child.proc.returncode is None:
                _signal(child.proc, signal.SIGKILL)
                await child.proc.wait()
            self._procs.discard(child.proc)
            self._unreaped.discard(child)
            child.close_streams()
            child.close_pidfd()
            with anyio.move_on_after(0.1):
                await child.proc.aclose()
        return child.proc.returncode

    async def _slot(self, index: int, first_ready: anyio.Event,
                    failed: list[BaseException]) -> None:
        """One place in the pool: start a process, serve, replace it when it dies."""
        backoff = 0.5
        while not self._closing:
            try:
                child = await self._spawn()
            except _StartFailed as e:
                if not first_ready.is_set():  # at pool start: give up
                    failed.append(e)
                    first_ready.set()
                    return
                if self._closing:
                    return
                self._last_start_error = str(e)
                log.error("%s; retrying in %.1f s", e, backoff)
                if self.alive == 0:  # nobody can serve the queue
                    for call in list(self._queue):
                        self._fail(call, InternalError(
                            f"no pool process is available: {e}"))
                await anyio.sleep(backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF)
                continue
            backoff = 0.5
            self._children[index] = child
            first_ready.set()
            self._notify()  # wake: work may have been waiting for a process
            try:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(self._read, child)
                    try:
                        await self._serve(child)
                    except _ChildDied:
                        pass
                    except Exception:  # a bug here must not take the pool down
                        log.exception("serving pool process %d failed; replacing it",
                                      child.pid)
                        _signal(child.proc, signal.SIGKILL)
                    tg.cancel_scope.cancel()
            finally:
                child.dead = True
                child.close_streams()
                self._children[index] = None
                call = child.serving
                if self._closing:
                    if call is not None:
                        self._fail(call, InternalError("the process pool is shutting down"))
                    await self._reap(child)
            if self._closing:
                return
            rc = await self._reap(child)
            self.restarts += 1
            what = f"pool process {child.pid} died ({_exit_text(rc)})"
            if call is not None:
                log.error("%s while serving request span; replacing it", what)
                self._fail(call, InternalError(
                    f"{what} while serving this request; the pool has replaced it"))
            else:
                log.error("%s while idle; replacing it", what)


async def run_flow(pool: WorkerPool, shared: SharedDataset, dataset_key: str, flow: Flow[R],
                   *, on_job: Callable[[GridJob], None] | None = None,
                   on_progress: Callable[[int, int], None] | None = None) -> R:
    """``worker._jobs.run_sync`` on the pool: drive ``flow`` (built on
    ``shared.dataset``) to its result, every job evaluated by ``pool``.

    The flow's own steps (validation, ranking, building results) run on a
    worker thread so the event loop stays free to answer other requests.
    ``on_job(job)`` is told of each job as it starts (a flow may yield
    several, one after the other); ``on_progress(done, total)`` follows the
    running job's spans.
    """
    try:
        done, value = await anyio.to_thread.run_sync(step, flow, None)
        while not done:
            if on_job is not None:
                on_job(value)
            arrays = await pool.evaluate(shared, dataset_key, value, on_progress=on_progress)
            done, value = await anyio.to_thread.run_sync(step, flow, arrays)
        return value
    finally:
        flow.close()


def _signal(proc: Process, sig: int) -> None:
    if proc.returncode is None:
        try:
            proc.send_signal(sig)
        except ProcessLookupError:
            pass
