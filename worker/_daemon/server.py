"""Server lifecycle: start, serve stdio or a Unix socket, stop cleanly.

Start: claim stdout for the protocol (stdio mode), configure logging, start
the pool (its processes load every kernel from Numba's on-disk cache) and
warm this process's kernels too, then serve. No request is read before the
kernels are warm, so none pays for compilation.

Stop, on any of: EOF on stdin (stdio mode: requests already read are
answered first), ``shutdown`` (after its ``{}`` is written), SIGTERM or
SIGINT (requests still running are cancelled). Then the pool's processes are
ended (no orphans), shared dataset files are removed and the socket file is
unlinked; the process exits 0.

A deadline bounds the stop after ``shutdown`` and signals: a request's
thread that is inside a kernel cannot be cancelled, and the orderly stop
waits for it. If the stop has not finished ``STOP_DEADLINE_S`` after it
began, a timer thread does what the orderly stop would (kills the pool's
processes, removes this process's shared files and the socket file) and
ends the process with ``os._exit(0)``. EOF on stdin has no deadline: it
answers what was already read first, however long that takes. A socket
client that disconnects has its own requests cancelled; the daemon keeps
serving the others.
"""

from __future__ import annotations

import itertools
import os
import signal
import threading
from contextlib import AsyncExitStack

import anyio
import structlog

from .._errors import StartupError, WorkerError
from .._pool.pool import WorkerPool
from .._pool.shm import remove_own_files, remove_stale_files
from .._run.warm import warm_kernels
from .dispatch import Dispatcher
from .logs import configure_logging
from .methods import Worker
from .settings import Settings
from .transport import claim_stdio, peer_uid, unix_listener

log = structlog.get_logger()

STOP_DEADLINE_S = 4.0   # SIGTERM / shutdown: the process is gone within ~this


def serve(settings: Settings, *, socket_path: str | None = None, log_level: str = "info") -> int:
    """Run the daemon until it is told to stop; returns the exit code."""
    stdio = claim_stdio() if socket_path is None else None
    configure_logging(log_level)
    try:
        anyio.run(_main, settings, socket_path, stdio)
    except WorkerError as exc:
        log.error("startup failed", error=exc.message)
        return 2
    except KeyboardInterrupt:
        pass
    return 0


async def _main(settings: Settings, socket_path: str | None, stdio) -> None:
    remove_stale_files(settings.shm_dir)
    async with AsyncExitStack() as stack:
        listener = await unix_listener(socket_path) if socket_path else None
        if listener is not None:
            stack.push_async_callback(listener.aclose)
            stack.callback(_unlink, os.path.abspath(socket_path))
        pool = (WorkerPool(settings.pool_size, stall_timeout_min_s=settings.stall_timeout_min_s,
                           stall_factor=settings.stall_factor)
                if settings.pool_size > 0 else None)
        seconds = await _start(stack, pool)
        async with anyio.create_task_group() as tg:
            daemon = Worker(settings, pool, tg)
            stack.callback(daemon.close)
            dispatcher = Dispatcher()
            for name, handler in daemon.handlers().items():
                dispatcher.register(name, handler, params_type=daemon.params_types().get(name))
            daemon.in_flight = dispatcher.in_flight_count
            log.info("ready", transport="socket" if listener else "stdio", socket=socket_path,
                     pool_size=settings.pool_size, warm_s=round(seconds, 3), pid=os.getpid())
            deadline = _StopDeadline(settings, pool, socket_path)
            tg.start_soon(_stop_on_signal, tg.cancel_scope, deadline)
            tg.start_soon(_stop_on_shutdown, daemon, tg.cancel_scope, deadline)
            if listener is None:
                # EOF on stdin: answer what is in flight (``printf req | serve``
                # works), then stop. A client that vanished fails the writes.
                await dispatcher.serve(stdio, stdio, conn_id="stdio", drain_on_eof=True,
                                       max_message_bytes=settings.max_message_bytes)
                tg.cancel_scope.cancel()
            else:
                await listener.serve(lambda s: _connection(dispatcher, settings, s))
    log.info("stopped")


async def _start(stack: AsyncExitStack, pool: WorkerPool | None) -> float:
    """Start the pool and warm this process's kernels at the same time; the
    warm-up runs on a plain thread so the pool's context is entered (and
    later left) in this task, outside any task group."""
    result: list[float] = []
    warm = threading.Thread(target=lambda: result.append(warm_kernels()), name="warm-kernels")
    warm.start()
    if pool is not None:
        await stack.enter_async_context(pool)
    await anyio.to_thread.run_sync(warm.join)
    if not result:
        raise StartupError("warming the kernels failed; see the traceback above")
    return result[0]


_conn_ids = itertools.count(1)


async def _connection(dispatcher: Dispatcher, settings: Settings, stream) -> None:
    conn_id = f"socket-{next(_conn_ids)}"
    async with stream:
        uid = peer_uid(stream)
        if uid != os.getuid():
            log.warning("connection refused", conn=conn_id, peer_uid=uid, reason="another user")
            return
        log.info("connected", conn=conn_id)
        await dispatcher.serve(stream, stream, conn_id=conn_id,
                               max_message_bytes=settings.max_message_bytes)
        log.info("disconnected", conn=conn_id)


class _StopDeadline:
    """Ends the process ``STOP_DEADLINE_S`` after ``start()`` if the orderly
    stop has not (module doc). Runs on a daemon thread: the event loop may be
    blocked waiting for the very thread that holds the stop up."""

    def __init__(self, settings: Settings, pool: WorkerPool | None,
                 socket_path: str | None) -> None:
        self._settings = settings
        self._pool = pool
        self._socket = os.path.abspath(socket_path) if socket_path else None
        self._timer: threading.Timer | None = None

    def start(self) -> None:
        if self._timer is None:
            self._timer = threading.Timer(STOP_DEADLINE_S, self._expire)
            self._timer.daemon = True
            self._timer.start()

    def _expire(self) -> None:
        try:
            log.error("stop deadline passed; exiting without waiting for running work",
                      deadline_s=STOP_DEADLINE_S)
            if self._pool is not None:
                for pid in self._pool.all_pids:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except OSError:
                        pass
            remove_own_files(self._settings.shm_dir)
            if self._socket is not None:
                _unlink(self._socket)
        finally:
            os._exit(0)


async def _stop_on_signal(scope: anyio.CancelScope, deadline: _StopDeadline) -> None:
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            log.info("signal", signal=signal.Signals(signum).name)
            deadline.start()
            scope.cancel()
            return


async def _stop_on_shutdown(daemon: Worker, scope: anyio.CancelScope,
                            deadline: _StopDeadline) -> None:
    await daemon.shutdown_requested.wait()
    log.info("shutdown requested")
    deadline.start()
    scope.cancel()


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
