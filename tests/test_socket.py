"""End to end over a Unix socket (SPEC 7): ``optimizer-worker serve --socket
PATH``. The socket lives in a private directory, has mode 0600 and refuses
peers of another uid; a stale socket file is replaced, a live worker's never
taken; several clients at once share the dataset cache, each with its own
ids; a client that disconnects has its work cancelled; ``shutdown`` leaves
nothing behind.

Synchronization is on the daemon's own output, never on time: its JSON log
lines on stderr ("ready", "connection refused", the "request" line written
once a request has finished or been cancelled), responses and progress
notifications. Long work is LONG_GRID on a dataset loaded from Parquet with
``--local-evaluations 0``, so it runs on the pool and stays in flight until
cancelled."""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import threading

import msgspec
import pytest

import worker
from tests._daemon import TIMEOUT, connect, hang_up, pid_alive, worker_env
from tests.test_daemon import GRID, cli_payload
from tests.test_daemon_pool import LONG_GRID, first_report

NOBODY = 65534


class SocketDaemon:
    """``python -m worker serve --socket PATH ARGS`` as a subprocess.

    Like ``tests._daemon.Daemon``, but its stderr is a pipe read by a thread
    that files every JSON log line, so a test can wait for what the daemon
    says it did ("ready", "connection refused", ...) instead of sleeping or
    probing the socket. stdin and stdout are unused in socket mode."""

    def __init__(self, path, *args: str) -> None:
        self.path = str(path)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "worker", "serve", "--socket", self.path, *args],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            env=worker_env())
        self._cond = threading.Condition()
        self.lines: list[str] = []
        self.events: list[dict] = []
        self.stderr_closed = False
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        for raw in iter(self.proc.stderr.readline, b""):
            line = raw.decode(errors="replace")
            try:
                event = json.loads(line)
            except ValueError:
                event = None  # e.g. a library warning: kept in ``lines`` only
            with self._cond:
                self.lines.append(line)
                if isinstance(event, dict):
                    self.events.append(event)
                self._cond.notify_all()
        with self._cond:
            self.stderr_closed = True
            self._cond.notify_all()

    def wait_event(self, match, what: str, *, since: int = 0, timeout: float = TIMEOUT) -> dict:
        """The first log event from index ``since`` on for which ``match`` is true."""

        def found():
            return next((e for e in self.events[since:] if match(e)), None)

        with self._cond:
            if not self._cond.wait_for(lambda: found() or self.stderr_closed, timeout):
                raise TimeoutError(f"timed out waiting for {what}; stderr so far:\n{self.stderr()}")
            event = found()
            if event is None:
                raise EOFError(f"daemon exited before {what}; stderr:\n{self.stderr()}")
            return event

    def wait_ready(self) -> dict:
        return self.wait_event(lambda e: e.get("event") == "ready", "the ready event")

    def startup_failure(self) -> dict:
        """The "startup failed" event, and exit code 2. Fails at once (not
        after a timeout) when the daemon starts serving instead."""
        first = self.wait_event(lambda e: e.get("event") in ("ready", "startup failed"),
                                "ready or startup failed")
        assert first["event"] == "startup failed", f"the daemon started: {first}"
        assert self.wait() == 2
        return first

    def mark(self) -> int:
        with self._cond:
            return len(self.events)

    def stderr(self) -> str:
        with self._cond:
            return "".join(self.lines)

    def wait(self, timeout: float = TIMEOUT) -> int:
        code = self.proc.wait(timeout)
        self._thread.join(timeout)  # every stderr line is in
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._thread.join(TIMEOUT)
        self.proc.stderr.close()


def request_line(method: str, params=None, *, id) -> bytes:
    msg = {"jsonrpc": "2.0", "id": id, "method": method}
    if params is not None:
        msg["params"] = params
    return json.dumps(msg).encode() + b"\n"


def mode_of(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


# --- fixtures ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def payload():
    return cli_payload()


@pytest.fixture(scope="module")
def served(tmp_path_factory, files):
    """One daemon for the module: pool of 1, every evaluation on the pool. Its
    socket directory does not exist before; the daemon makes it. The modes
    are recorded as soon as it is ready (no test changes them anyway)."""
    run_dir = tmp_path_factory.mktemp("sock") / "run"
    assert not run_dir.exists()
    d = SocketDaemon(run_dir / "worker.sock", "--pool-size", "1", "--local-evaluations", "0")
    try:
        d.ready = d.wait_ready()
        d.run_dir = run_dir
        d.modes = {"dir": os.stat(run_dir), "socket": os.lstat(d.path)}
        # The big dataset, loaded on a connection that is then closed: the
        # cache is the daemon's, not the connection's.
        c, s = connect(d.path)
        try:
            assert c.result("loadDataset", {"dataset_id": "big", **files})["calls"] == 2_000
        finally:
            hang_up(s)
        yield d
    finally:
        d.kill()


# --- the socket itself ------------------------------------------------------------

def test_socket_in_a_private_directory_with_mode_0600(served):
    assert served.ready["transport"] == "socket" and served.ready["socket"] == served.path
    dir_st, sock_st = served.modes["dir"], served.modes["socket"]
    assert stat.S_ISDIR(dir_st.st_mode) and stat.S_IMODE(dir_st.st_mode) == 0o700
    assert dir_st.st_uid == os.getuid()
    assert stat.S_ISSOCK(sock_st.st_mode) and stat.S_IMODE(sock_st.st_mode) == 0o600
    assert sock_st.st_uid == os.getuid()
    c, s = connect(served.path)
    try:
        assert c.result("ping") == {}
    finally:
        hang_up(s)


@pytest.mark.parametrize("mode", [0o755, 0o710, 0o701], ids=oct)
def test_a_socket_directory_others_can_enter_is_refused(tmp_path, mode):
    d = tmp_path / "open"
    d.mkdir()
    os.chmod(d, mode)
    daemon = SocketDaemon(d / "w.sock", "--pool-size", "0")
    try:
        err = daemon.startup_failure()
        assert str(d) in err["error"] and "must" in err["error"] and "private" in err["error"]
        assert not os.path.lexists(d / "w.sock")
        assert mode_of(d) == mode  # left as it was
    finally:
        daemon.kill()


@pytest.mark.skipif(os.getuid() != 0, reason="chown to another user needs root")
def test_a_socket_directory_of_another_owner_is_refused(tmp_path):
    d = tmp_path / "theirs"
    d.mkdir(mode=0o700)
    os.chown(d, NOBODY, NOBODY)
    daemon = SocketDaemon(d / "w.sock", "--pool-size", "0")
    try:
        err = daemon.startup_failure()
        assert str(d) in err["error"] and "belong to you" in err["error"]
        assert not os.path.lexists(d / "w.sock")
    finally:
        daemon.kill()


def test_a_stale_socket_file_is_replaced(tmp_path):
    d = tmp_path / "run"
    d.mkdir(mode=0o700)
    path = str(d / "w.sock")
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(path)
    dead.close()  # not unlinked: what a killed worker leaves behind
    os.chmod(path, 0o644)
    assert stat.S_ISSOCK(os.lstat(path).st_mode)
    with pytest.raises(ConnectionRefusedError):
        connect(path)
    daemon = SocketDaemon(path, "--pool-size", "0")
    try:
        daemon.wait_ready()
        assert stat.S_ISSOCK(os.lstat(path).st_mode) and mode_of(path) == 0o600
        c, s = connect(path)
        try:
            assert c.result("ping") == {}
        finally:
            hang_up(s)
    finally:
        daemon.kill()


def test_a_file_that_is_not_a_socket_is_never_replaced(tmp_path):
    d = tmp_path / "run"
    d.mkdir(mode=0o700)
    path = d / "w.sock"
    path.write_text("keep me")
    daemon = SocketDaemon(path, "--pool-size", "0")
    try:
        err = daemon.startup_failure()
        assert str(path) in err["error"] and "not a socket" in err["error"]
        assert path.read_text() == "keep me"
    finally:
        daemon.kill()


def test_a_live_workers_socket_is_never_stolen(served):
    ino = os.lstat(served.path).st_ino
    second = SocketDaemon(served.path, "--pool-size", "0")
    try:
        err = second.startup_failure()
        assert "another worker is listening" in err["error"] and served.path in err["error"]
    finally:
        second.kill()
    # Still the first daemon's socket, and the first daemon answers on it.
    assert served.proc.poll() is None
    assert os.lstat(served.path).st_ino == ino and mode_of(served.path) == 0o600
    c, s = connect(served.path)
    try:
        assert c.result("ping") == {}
        assert c.result("stats")["pool_size"] == 1
    finally:
        hang_up(s)


def _try_ping(path: str) -> dict:
    """Connect, send a ping, read until EOF, an answer, a reset or a timeout."""
    out: dict = {"uid": os.getuid()}
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(TIMEOUT)
    try:
        s.connect(path)
    except OSError as exc:
        out["connect_error"] = type(exc).__name__
        return out
    out["connected"] = True
    data = b""
    try:
        s.sendall(request_line("ping", id=1))
        while b"\n" not in data:
            chunk = s.recv(65536)
            if not chunk:
                out["end"] = "eof"
                break
            data += chunk
        else:
            out["end"] = "answered"
    except (ConnectionResetError, BrokenPipeError) as exc:
        out["end"] = type(exc).__name__
    except socket.timeout:
        out["end"] = "timeout"
    finally:
        hang_up(s)
    out["received"] = data.decode(errors="replace")
    return out


def as_other_user(path: str, uid: int = NOBODY) -> dict:
    """``_try_ping`` from a forked child that has dropped to ``uid``; its
    report comes back over a pipe. (A fork, not ``subprocess.run(user=...)``:
    the test interpreter may live where that user cannot execute it.)"""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: no pytest, no threads; report and _exit
        code = 0
        try:
            os.close(r)
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            report = _try_ping(path)
        except BaseException as exc:
            report, code = {"child_error": repr(exc)}, 1
        try:
            os.write(w, json.dumps(report).encode())
        finally:
            os._exit(code)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    os.waitpid(pid, 0)
    return json.loads(data)


@pytest.mark.skipif(os.getuid() != 0, reason="connecting as another user needs root")
def test_a_peer_of_another_uid_is_refused():
    # Under /tmp, not pytest's tmp_path: its parents are private to root, and
    # the other user must be able to reach the socket for this to test anything.
    base = tempfile.mkdtemp(prefix="ow-", dir="/tmp")
    os.chmod(base, 0o755)
    run_dir = os.path.join(base, "run")
    path = os.path.join(run_dir, "w.sock")
    daemon = SocketDaemon(path, "--pool-size", "0")
    try:
        daemon.wait_ready()
        # As made, the directory keeps the other user out entirely.
        assert as_other_user(path) == {"uid": NOBODY, "connect_error": "PermissionError"}
        # Let the filesystem allow it: the daemon must still refuse by uid.
        os.chmod(run_dir, 0o755)
        os.chmod(path, 0o666)
        mark = daemon.mark()
        report = as_other_user(path)
        assert report["uid"] == NOBODY and report.get("connected") is True, report
        assert report["end"] in ("eof", "ConnectionResetError", "BrokenPipeError"), report
        assert report["received"] == ""
        refused = daemon.wait_event(lambda e: e.get("event") == "connection refused",
                                    "the refusal log line", since=mark)
        assert refused["peer_uid"] == NOBODY
        # Our own uid is still served, and the daemon is still up.
        c, s = connect(path)
        try:
            assert c.result("ping") == {}
        finally:
            hang_up(s)
        assert daemon.proc.poll() is None
    finally:
        daemon.kill()
        shutil.rmtree(base, ignore_errors=True)


# --- several clients at once ------------------------------------------------------

def test_two_clients_share_the_cache_and_each_has_its_own_ids(served, payload):
    a, sa = connect(served.path)
    b, sb = connect(served.path)
    try:
        load = a.call("loadDataset", {"dataset_id": "shared", **payload}, id="load")["result"]
        assert load["dataset_id"] == "shared"
        # A's id 1: long pool work, in flight until cancelled.
        a.send("optimize", {"dataset_id": "big", "param_grid": LONG_GRID,
                            "progress_token": "a-long"}, id=1)
        first_report(a, "a-long")
        # B's id 1 (the same id, on its own connection) on A's dataset, and
        # B's stats, in one write: both are read before either can finish.
        request = {"dataset_id": "shared", "param_grid": GRID, "top_k": 3, "include_all": True}
        b.send_raw(request_line("optimize", request, id=1) + request_line("stats", id=2))
        stats = b.response(2)["result"]
        assert stats["requests_in_flight"] == 3  # A's 1, B's 1 (queued for the pool), B's 2
        assert stats["datasets"] == 2
        # A asks the same as B, then cancels its id 1, which frees the pool.
        a.send("optimize", request, id=2)
        assert a.call("cancel", {"id": 1}, id=3)["result"] == {"cancelled": True}
        assert a.response(1)["error"]["code"] == -32800
        got_a, got_b = a.response(2), b.response(1)
        assert "result" in got_a and "result" in got_b, (got_a, got_b)
        ds = worker.dataset_from_rows(payload["calls"], payload["candles_by_call_id"])
        want = json.loads(msgspec.json.encode(worker.optimize(ds, GRID, top_k=3, include_all=True)))
        assert got_a["result"] == got_b["result"] == want
        # Each connection got exactly its own answers.
        assert sorted(map(str, a.responses)) == ["1", "2", "3", "load"]
        assert sorted(b.responses) == [1, 2]
        assert all(n["params"]["token"] == "a-long" for n in a.notifications)
        assert b.notifications == []
    finally:
        hang_up(sa)
        hang_up(sb)


@pytest.mark.parametrize("progress", [True, False], ids=["with-progress", "silent"])
def test_a_client_that_disconnects_has_its_work_cancelled(served, progress):
    """With progress the daemon also learns of the hang-up from a failed
    write; without, only the end of the stream can tell it."""
    a, sa = connect(served.path)
    b, sb = connect(served.path)
    try:
        params = {"dataset_id": "big", "param_grid": LONG_GRID}
        if progress:
            a.send("optimizePerCaller", {**params, "progress_token": "gone"}, id=1)
            first_report(a, "gone")
        else:
            a.send("optimizePerCaller", params, id=1)
            # Lines of a connection are taken in order: once this ping is
            # answered, request 1 has been admitted and is running.
            assert a.call("ping", id=2)["result"] == {}
            assert 1 not in a.responses
        assert b.result("stats")["requests_in_flight"] == 2  # A's, and this one
        mark = served.mark()
        hang_up(sa)
        # The daemon logs a request's line once it is no longer in flight
        # (after the count is decremented): wait for that, not for time.
        gone = served.wait_event(
            lambda e: e.get("event") == "request" and e.get("method") == "optimizePerCaller",
            "the disconnected request's log line", since=mark)
        assert gone["outcome"] == "cancelled" and gone["code"] == -32800
        stats = b.result("stats")
        assert stats["requests_in_flight"] == 1  # only this stats call
        assert stats["pool_alive"] == 1 and stats["pool_restarts"] == 0
        # The pool (one process, every evaluation on it) is free again.
        small = b.result("optimize", {"dataset_id": "big",
                                      "param_grid": {"tp_mults": [2], "sl_mults": [0.9]}})
        assert small["params_evaluated"] == 1
        assert served.proc.poll() is None
    finally:
        hang_up(sa)
        hang_up(sb)


# --- stopping ---------------------------------------------------------------------

def test_shutdown_over_the_socket_removes_it_and_the_pool(tmp_path):
    path = tmp_path / "run" / "w.sock"
    daemon = SocketDaemon(path, "--pool-size", "1")
    try:
        daemon.wait_ready()
        a, sa = connect(str(path))
        b, sb = connect(str(path))
        try:
            assert b.result("ping") == {}  # B is being served too
            pids = a.result("stats")["pool_pids"]
            assert len(pids) == 1 and all(pid_alive(p) for p in pids)
            assert a.result("shutdown") == {}
            assert daemon.wait() == 0
            b.wait_closed()  # the other client's connection is closed too
            assert not os.path.lexists(path)
            assert not any(pid_alive(p) for p in pids)
            assert any(e.get("event") == "stopped" for e in daemon.events)
        finally:
            hang_up(sa)
            hang_up(sb)
    finally:
        daemon.kill()
