"""The processes of the pool (``worker._pool.pool``), one by one: start one
(``python -m worker._pool.child``) and wait for its "ready", read its reply
frames, reap it, and stop them all (EOF, grace, SIGTERM, SIGKILL). Nothing
here knows about jobs, spans or calls.
"""

from __future__ import annotations

import atexit
import logging
import math
import os
import select
import signal
import sys
import weakref
from collections.abc import Callable
from typing import Any

import anyio
from anyio.abc import Process
from anyio.streams.buffered import BufferedByteReceiveStream

from .codec import HEADER, decode_payload

__all__ = ["DEATH_ERRORS", "Child", "ChildDied", "Processes", "StartFailed",
           "exit_text", "send_signal"]

log = logging.getLogger("worker.pool")

_STOP_GRACE = 2.0                 # seconds a pool process gets to exit at EOF
_TERM_GRACE = 1.0                 # then SIGTERM, then SIGKILL

DEATH_ERRORS = (anyio.EndOfStream, anyio.IncompleteRead, anyio.BrokenResourceError,
                anyio.ClosedResourceError, OSError, RuntimeError)


def exit_text(returncode: int | None) -> str:
    if returncode is None:
        return "still running, not answering"
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = "unknown"
        return f"signal {-returncode}, {name}"
    return f"exit code {returncode}"


def send_signal(proc: Process, sig: int) -> None:
    if proc.returncode is None:
        try:
            proc.send_signal(sig)
        except ProcessLookupError:
            pass


class ChildDied(Exception):
    pass


class StartFailed(Exception):
    pass


class Child:
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
        self.serving: Any = None  # its request in progress (a PoolRequest: a layer above)
        self.serving_span: tuple[int, int] | None = None   # and the span of it
        self.stalled: str | None = None  # why the pool killed it as stalled, if it did
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

    async def read_replies(self, on_dead: Callable[[], None]) -> None:
        """Move reply frames from the process to ``replies``; on EOF mark it
        dead and call ``on_dead()`` (which wakes its slot)."""
        try:
            while True:
                self.replies_send.send_nowait(await self.read_frame())
        except DEATH_ERRORS:
            pass
        except Exception:  # a garbled frame: treat the process as broken
            log.exception("pool process %d sent a bad frame; killing it", self.pid)
            send_signal(self.proc, signal.SIGKILL)
        finally:
            self.dead = True
            self.replies_send.close()
            on_dead()


_live: weakref.WeakSet[Processes] = weakref.WeakSet()


@atexit.register
def _kill_leftovers() -> None:  # a pool never closed (crash paths): no orphans
    for processes in list(_live):
        processes.kill_all()


class Processes:
    """Every pool process started and not yet reaped. ``env``: the
    environment of new processes (default: this one's, at each start)."""

    def __init__(self, env: dict[str, str] | None = None) -> None:
        self.closing = False                     # stop_all began: start no more
        self._env = env
        self._procs: set[Process] = set()       # every process not yet reaped
        self._unreaped: set[Child] = set()      # the same, as Child (pidfds)
        _live.add(self)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._procs]

    async def spawn(self, numba_threads: int) -> Child:
        """Start one pool process and wait for its "ready" (kernels loaded).
        Raises ``StartFailed`` when it dies first or says something else."""
        env = dict(os.environ if self._env is None else self._env)
        env["NUMBA_NUM_THREADS"] = str(numba_threads)
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            env.setdefault(var, str(numba_threads))
        env["OPTIMIZER_WORKER_PARENT_PID"] = str(os.getpid())
        # Own session: a signal to the daemon's process group (Ctrl-C, kill -TERM
        # -pgid) reaches the daemon only, which then closes the pool in order.
        proc = await anyio.open_process([sys.executable, "-m", "worker._pool.child"],
                                        stdin=-1, stdout=-1, stderr=None, env=env,
                                        start_new_session=True)
        self._procs.add(proc)
        child = Child(proc)
        self._unreaped.add(child)
        if self.closing:
            await self.reap(child, kill=True)
            raise StartFailed("the pool is closing")
        try:
            hello = await child.read_frame()
        except DEATH_ERRORS:
            rc = await self.reap(child)
            raise StartFailed(f"pool process {child.pid} exited before it was ready "
                              f"({exit_text(rc)}); see its log above") from None
        except BaseException:  # cancelled while it started
            await self.reap(child, kill=True)
            raise
        if not isinstance(hello, dict) or hello.get("op") != "ready":
            await self.reap(child, kill=True)
            raise StartFailed(f"pool process {child.pid} sent {hello!r} instead of ready")
        child.ready = True
        log.info("pool process %d ready (kernels loaded in %.2f s, %s numba threads)",
                 child.pid, hello.get("warm_s", float("nan")), hello.get("numba_threads"))
        return child

    async def reap(self, child: Child, kill: bool = False) -> int | None:
        """Wait for a dead (or killed) process, so no zombie stays behind."""
        with anyio.CancelScope(shield=True):
            if kill:
                send_signal(child.proc, signal.SIGKILL)
            with anyio.move_on_after(_STOP_GRACE):
                await child.proc.wait()
            if child.proc.returncode is None:
                send_signal(child.proc, signal.SIGKILL)
                await child.proc.wait()
            self._procs.discard(child.proc)
            self._unreaped.discard(child)
            child.close_streams()
            child.close_pidfd()
            with anyio.move_on_after(0.1):
                await child.proc.aclose()
        return child.proc.returncode

    async def stop_all(self) -> None:
        """Stop every process (EOF, grace, SIGTERM, SIGKILL) and reap it; no
        process starts after this began. Call it shielded from cancellation."""
        self.closing = True
        procs = list(self._procs)
        for proc in procs:
            try:
                await proc.stdin.aclose()  # type: ignore[union-attr]
            except Exception:
                pass
        await self._wait(_STOP_GRACE)
        for proc in list(self._procs):
            send_signal(proc, signal.SIGTERM)
        await self._wait(_TERM_GRACE)
        for proc in list(self._procs):
            send_signal(proc, signal.SIGKILL)
        await self._wait(None)
        for proc in procs:  # close the pipes (no ResourceWarning)
            with anyio.move_on_after(0.5):
                try:
                    await proc.aclose()
                except Exception:
                    pass
        _live.discard(self)

    async def _wait(self, timeout: float | None) -> None:
        with anyio.move_on_after(timeout):
            for proc in list(self._procs):
                await proc.wait()
                self._procs.discard(proc)

    def kill_all(self) -> None:
        """SIGKILL every process not yet reaped, synchronously (atexit)."""
        for child in list(self._unreaped):
            try:
                if child.pidfd is not None:  # immune to pid reuse
                    signal.pidfd_send_signal(child.pidfd, signal.SIGKILL)
                elif child.proc.returncode is None:
                    os.kill(child.pid, signal.SIGKILL)
            except OSError:
                pass
