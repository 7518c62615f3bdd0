"""Test clients for the real daemon: a subprocess over stdio, or a Unix
socket connection. A reader thread files every incoming line: responses by
id, notifications in arrival order, and every raw line (to check that stdout
carries nothing but protocol). Waiting is on a condition variable with a
generous timeout, never a sleep."""

from __future__ import annotations

import itertools
import json
import os
import socket
import subprocess
import sys
import threading
from typing import Any

TIMEOUT = 120.0  # generous: a cold CI machine may still be loading kernels


class LineClient:
    """JSON-RPC client over a pair of byte streams (``read``: a file with
    ``readline``, ``write``: a callable taking bytes)."""

    def __init__(self, reader, write) -> None:
        self._write = write
        self._ids = itertools.count(1)
        self._cond = threading.Condition()
        self.responses: dict[Any, dict] = {}
        self.batches: list[list] = []
        self.notifications: list[dict] = []
        self.raw_lines: list[bytes] = []
        self.order: list[Any] = []  # ids (and "n:<method>") in arrival order
        self.closed = False
        self._thread = threading.Thread(target=self._read, args=(reader,), daemon=True)
        self._thread.start()

    def _read(self, reader) -> None:
        for line in iter(reader.readline, b""):
            msg = json.loads(line)
            with self._cond:
                self.raw_lines.append(line)
                if isinstance(msg, list):
                    self.batches.append(msg)
                elif "id" in msg and ("result" in msg or "error" in msg):
                    self.responses[msg["id"]] = msg
                    self.order.append(msg["id"])
                else:
                    self.notifications.append(msg)
                    self.order.append(f"n:{msg.get('method')}")
                self._cond.notify_all()
        with self._cond:
            self.closed = True
            self._cond.notify_all()

    def send_raw(self, data: bytes) -> None:
        self._write(data)

    def send(self, method: str, params: Any = None, *, id: Any = None, notify: bool = False) -> Any:
        msg: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            msg["params"] = params
        if not notify:
            msg["id"] = next(self._ids) if id is None else id
        self._write(json.dumps(msg).encode() + b"\n")
        return msg.get("id")

    def wait_for(self, predicate, what: str, timeout: float = TIMEOUT):
        with self._cond:
            if not self._cond.wait_for(lambda: predicate() or self.closed, timeout):
                raise TimeoutError(f"timed out waiting for {what}")
            value = predicate()
            if not value:
                raise EOFError(f"stream closed while waiting for {what}")
            return value

    def response(self, id: Any, timeout: float = TIMEOUT) -> dict:
        return self.wait_for(lambda: self.responses.get(id), f"response {id!r}", timeout)

    def call(self, method: str, params: Any = None, **kw) -> dict:
        return self.response(self.send(method, params, **kw))

    def result(self, method: str, params: Any = None) -> Any:
        resp = self.call(method, params)
        assert "result" in resp, f"{method} failed: {resp.get('error')}"
        return resp["result"]

    def wait_closed(self, timeout: float = TIMEOUT) -> None:
        self.wait_for(lambda: self.closed or None, "end of stream", timeout)


def worker_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


class Daemon:
    """``python -m worker serve ARGS`` as a subprocess; ``client`` talks stdio
    (when not serving a socket)."""

    def __init__(self, *args: str, stderr_path: str | None = None) -> None:
        self._stderr = open(stderr_path or os.devnull, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "worker", "serve", *args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr, env=worker_env())
        self.client = LineClient(self.proc.stdout, self._write)

    def _write(self, data: bytes) -> None:
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def close_stdin(self) -> None:
        self.proc.stdin.close()

    def wait(self, timeout: float = TIMEOUT) -> int:
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._stderr.close()


def connect(path: str) -> tuple[LineClient, socket.socket]:
    """A client on the socket at ``path``; end it with ``hang_up(sock)``."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    return LineClient(sock.makefile("rb"), sock.sendall), sock


def hang_up(sock: socket.socket) -> None:
    """Really close a ``connect()`` socket: its LineClient's ``makefile`` keeps
    the fd open through ``close()`` alone, so the daemon would see no EOF."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already disconnected by the daemon
    sock.close()


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); its state letter tells.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def wait_gone(pid: int, timeout: float = TIMEOUT) -> bool:
    """Wait until ``pid`` has exited (Linux pidfd: readable at exit, no
    polling loop); True when it is gone."""
    import select

    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        select.select([fd], [], [], timeout)
    finally:
        os.close(fd)
    return not pid_alive(pid)
