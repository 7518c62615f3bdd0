"""JSON-RPC 2.0 layer of the daemon (worker._daemon.dispatch), driven over in-memory
byte streams with small fake handlers: the specification's own worked
examples (www.jsonrpc.org/specification, section 7) adapted to this worker's
methods, then concurrency, cancellation, end of stream, and the error shapes
SPEC section 7 adds."""

from __future__ import annotations

import math
import socket
import threading
from contextlib import asynccontextmanager
from typing import Any

import anyio
import msgspec
import pytest
import structlog
from anyio.abc import ByteReceiveStream, ByteSendStream, SocketStream

from protocol._messages import ProgressParams, ProgressValue
from tests._daemon import Daemon, wait_gone
from worker._daemon.dispatch import Dispatcher, RequestContext
from worker._daemon.framing import LineReader
from worker._core import validate
from worker._errors import InvalidDataset

pytestmark = pytest.mark.anyio

TIMEOUT = 10  # seconds; only ever reached when a test is failing



# --- in-memory connection ----------------------------------------------------

class MemoryReceive(ByteReceiveStream):
    def __init__(self, objects) -> None:
        self._objects = objects

    async def receive(self, max_bytes: int = 65536) -> bytes:
        return await self._objects.receive()

    async def aclose(self) -> None:
        self._objects.close()


class MemorySend(ByteSendStream):
    """Records every line written, so a test can tell what was out when."""

    def __init__(self, objects) -> None:
        self._objects = objects
        self.sent: list[bytes] = []

    async def send(self, item: bytes) -> None:
        self.sent.append(bytes(item))
        await self._objects.send(bytes(item))

    async def send_eof(self) -> None:
        self._objects.close()

    async def aclose(self) -> None:
        self._objects.close()


class Peer:
    """The client end of one connection."""

    def __init__(self, to_server, from_server, server_send: MemorySend) -> None:
        self._to_server = to_server
        self._lines = LineReader(MemoryReceive(from_server), 1 << 26)
        self.server_send = server_send
        self.served = anyio.Event()

    async def send(self, message: Any) -> None:
        data = message if isinstance(message, bytes) else msgspec.json.encode(message)
        await self._to_server.send(data + b"\n")

    async def request(self, id_: Any, method: str, params: Any = None) -> None:
        message = {"jsonrpc": "2.0", "id": id_, "method": method}
        if params is not None:
            message["params"] = params
        await self.send(message)

    async def notify(self, method: str, params: Any) -> None:
        await self.send({"jsonrpc": "2.0", "method": method, "params": params})

    async def receive(self) -> Any:
        with anyio.fail_after(TIMEOUT):
            return msgspec.json.decode(await self._lines.receive_line())

    async def receive_all(self) -> list[Any]:
        """Every line still to come, up to the end of the connection."""
        out = []
        while True:
            try:
                out.append(await self.receive())
            except anyio.EndOfStream:
                return out

    async def close_and_wait(self) -> None:
        self._to_server.close()
        with anyio.fail_after(TIMEOUT):
            await self.served.wait()


@asynccontextmanager
async def connected(dispatcher: Dispatcher, *, max_message_bytes: int = 1 << 20,
                    drain_on_eof: bool = False):
    to_server, server_in = anyio.create_memory_object_stream[bytes](math.inf)
    server_out, from_server = anyio.create_memory_object_stream[bytes](math.inf)
    peer = Peer(to_server, from_server, MemorySend(server_out))

    async def serve() -> None:
        try:
            await dispatcher.serve(MemoryReceive(server_in), peer.server_send, conn_id="conn-1",
                                   max_message_bytes=max_message_bytes, drain_on_eof=drain_on_eof)
        finally:
            server_out.close()
            peer.served.set()

    with to_server, server_in, server_out, from_server:
        async with anyio.create_task_group() as tg:
            tg.start_soon(serve)
            yield peer
            await peer.close_and_wait()


async def exchange(dispatcher: Dispatcher, *lines: Any) -> list[Any]:
    """Send ``lines``, close the input, let every request finish, and return
    every line the worker ever wrote."""
    async with connected(dispatcher, drain_on_eof=True) as peer:
        for line in lines:
            await peer.send(line)
        await peer.close_and_wait()
        return await peer.receive_all()


# --- fake handlers -----------------------------------------------------------

class Fakes:
    """Handlers standing in for the real ones. ``optimize`` waits on
    ``release`` and records whether it saw its cancellation; ``groupedEval``
    blocks a worker thread until ``thread_gate`` is set."""

    def __init__(self) -> None:
        self.started = anyio.Event()
        self.release = anyio.Event()
        self.saw_cancel = anyio.Event()
        self.ctx_cancelled_seen: bool | None = None
        self.thread_gate = threading.Event()
        self.thread_saw_cancel: bool | None = None
        self.server_sent: list[bytes] = []  # the test points this at MemorySend.sent
        self.after_response: list[int] = []
        self.pings: list[Any] = []  # ctx.id of every ping handled
        self.dispatcher = Dispatcher()
        d = self.dispatcher
        d.register("ping", self.ping)
        d.register("optimize", self.slow)
        d.register("dropDataset", self.echo_context)
        d.register("loadDataset", self.invalid_dataset)
        d.register("stats", self.crash)
        d.register("listDatasets", self.unencodable)
        d.register("simulate", self.with_progress)
        d.register("shutdown", self.shutdown)
        d.register("groupedEval", self.in_thread)

    async def ping(self, params, ctx: RequestContext):
        self.pings.append(ctx.id)
        return {}

    async def slow(self, params, ctx: RequestContext):
        self.started.set()
        try:
            await self.release.wait()
        except anyio.get_cancelled_exc_class():
            self.ctx_cancelled_seen = ctx.cancelled
            self.saw_cancel.set()
            raise
        return {"objective": params.objective, "top_k": params.top_k}

    async def echo_context(self, params, ctx: RequestContext):
        return {"id": ctx.id, "method": ctx.method, "conn_id": ctx.conn_id,
                "dataset_id": params.dataset_id}

    async def invalid_dataset(self, params, ctx: RequestContext):
        raise InvalidDataset("series 'c1' candle 3: low > high", key="c1", index=3, rule="low<=high")

    async def crash(self, params, ctx: RequestContext):
        raise RuntimeError("boom")

    async def unencodable(self, params, ctx: RequestContext):
        return {"datasets": object()}

    async def with_progress(self, params, ctx: RequestContext):
        value = ProgressValue(kind="end", done=3, total=3, unit="points", elapsed_ms=1.5)
        await ctx.notify("$/progress", ProgressParams(token="tok", value=value))
        return {"mode": params.mode}

    async def in_thread(self, params, ctx: RequestContext):
        def work() -> None:
            self.thread_gate.wait(TIMEOUT)
            self.thread_saw_cancel = ctx.cancelled

        # Not abandoned on cancel: the await lasts until the thread is done.
        self.started.set()
        await anyio.to_thread.run_sync(work)
        return {}

    async def shutdown(self, params, ctx: RequestContext):
        ctx.call_after_response(lambda: self.after_response.append(len(self.server_sent)))
        return {}


@pytest.fixture
async def fakes() -> Fakes:
    return Fakes()  # async: anyio events are made inside the event loop


def ok(id_: Any, result: Any) -> dict:
    return {"jsonrpc": "2.0", "id": id_, "result": result}


def err(id_: Any, code: int) -> dict:
    """The parts of an error response that never change wording."""
    return {"jsonrpc": "2.0", "id": id_, "code": code}


def shape(response: dict) -> dict:
    return {"jsonrpc": response["jsonrpc"], "id": response["id"], "code": response["error"]["code"]}


def by_id(responses: list[dict]) -> dict:
    return {r["id"]: r for r in responses}


# --- the specification's examples --------------------------------------------

async def test_spec_positional_params_are_invalid_params_here(fakes):
    [response] = await exchange(fakes.dispatcher,
                                b'{"jsonrpc": "2.0", "method": "ping", "params": [42, 23], "id": 1}')
    assert shape(response) == err(1, -32602)
    assert "named parameters" in response["error"]["message"]


async def test_spec_named_params(fakes):
    responses = await exchange(
        fakes.dispatcher,
        b'{"jsonrpc": "2.0", "method": "dropDataset", "params": {"dataset_id": "d1"}, "id": 3}',
        b'{"jsonrpc": "2.0", "method": "dropDataset", "id": 4, "params": {"dataset_id": "d2"}}')
    assert by_id(responses) == {
        3: ok(3, {"id": 3, "method": "dropDataset", "conn_id": "conn-1", "dataset_id": "d1"}),
        4: ok(4, {"id": 4, "method": "dropDataset", "conn_id": "conn-1", "dataset_id": "d2"}),
    }


async def test_spec_notifications_are_not_answered(fakes):
    """Not answered, but run: the handler gets both, with no id."""
    responses = await exchange(fakes.dispatcher,
                               b'{"jsonrpc": "2.0", "method": "ping", "params": {}}',
                               b'{"jsonrpc": "2.0", "method": "ping"}')
    assert responses == []
    assert fakes.pings == [None, None]


async def test_spec_non_existent_method(fakes):
    [response] = await exchange(fakes.dispatcher, b'{"jsonrpc": "2.0", "method": "foobar", "id": "1"}')
    assert shape(response) == err("1", -32601)
    assert "foobar" in response["error"]["message"]


async def test_spec_invalid_json(fakes):
    [response] = await exchange(fakes.dispatcher,
                                b'{"jsonrpc": "2.0", "method": "foobar, "params": "bar", "baz]')
    assert shape(response) == err(None, -32700)


async def test_spec_invalid_request_object(fakes):
    [response] = await exchange(fakes.dispatcher, b'{"jsonrpc": "2.0", "method": 1, "params": "bar"}')
    assert shape(response) == err(None, -32600)


async def test_spec_batch_invalid_json(fakes):
    responses = await exchange(fakes.dispatcher, b'[{"jsonrpc": "2.0", "method": "ping", "id": "1"},'
                                                 b'{"jsonrpc": "2.0", "method"]')
    assert [shape(r) for r in responses] == [err(None, -32700)]


async def test_spec_empty_array(fakes):
    responses = await exchange(fakes.dispatcher, b"[]")
    assert [shape(r) for r in responses] == [err(None, -32600)]


async def test_spec_invalid_batch_of_one(fakes):
    [batch] = await exchange(fakes.dispatcher, b"[1]")
    assert [shape(r) for r in batch] == [err(None, -32600)]


async def test_spec_invalid_batch_of_three(fakes):
    [batch] = await exchange(fakes.dispatcher, b"[1,2,3]")
    assert [shape(r) for r in batch] == [err(None, -32600)] * 3


async def test_spec_mixed_batch(fakes):
    [batch] = await exchange(fakes.dispatcher, b"""[
        {"jsonrpc": "2.0", "method": "ping", "params": {}, "id": "1"},
        {"jsonrpc": "2.0", "method": "ping"},
        {"jsonrpc": "2.0", "method": "dropDataset", "params": {"dataset_id": "d"}, "id": "2"},
        {"foo": "boo"},
        {"jsonrpc": "2.0", "method": "foo.get", "params": {"name": "myself"}, "id": "5"},
        {"jsonrpc": "2.0", "method": "loadDataset", "params": {"dataset_id": "x"}, "id": "9"}
    ]""".replace(b"\n", b" "))  # one message, one line
    assert len(batch) == 5
    answers = by_id([r for r in batch if r["id"] is not None])
    assert answers["1"] == ok("1", {})
    assert answers["2"]["result"]["dataset_id"] == "d"
    assert shape(answers["5"]) == err("5", -32601)
    assert shape(answers["9"]) == err("9", -32002)
    assert [shape(r) for r in batch if r["id"] is None] == [err(None, -32600)]


async def test_spec_all_notification_batch_is_not_answered(fakes):
    responses = await exchange(fakes.dispatcher, b'[{"jsonrpc": "2.0", "method": "ping"},'
                                                 b'{"jsonrpc": "2.0", "method": "nope", "params": [7]}]')
    assert responses == []
    assert fakes.pings == [None]  # run all the same


# --- request-object rules ---------------------------------------------------

@pytest.mark.parametrize("bad_id", [b'{"a": 1}', b"[1]", b"1.5", b"true"])
async def test_id_of_a_wrong_type_is_an_invalid_request(fakes, bad_id):
    [response] = await exchange(fakes.dispatcher,
                                b'{"jsonrpc": "2.0", "method": "ping", "id": ' + bad_id + b"}")
    assert shape(response) == err(None, -32600)
    assert '"id"' in response["error"]["message"]


@pytest.mark.parametrize("id_", ["abc", 7, 0, -12, None, 2**70])
async def test_ids_are_echoed(fakes, id_):
    responses = await exchange(fakes.dispatcher, {"jsonrpc": "2.0", "method": "ping", "id": id_})
    assert responses == [ok(id_, {})]


@pytest.mark.parametrize("message, id_", [
    (b'{"jsonrpc": "1.0", "method": "ping", "id": 7}', 7),
    (b'{"method": "ping", "id": "x"}', "x"),
    (b'{"jsonrpc": "2.0", "id": 8}', 8),
    (b'{"jsonrpc": "2.0", "method": "ping", "params": "bar", "id": 9}', 9),
    (b'{"jsonrpc": "2.0", "method": "ping", "params": null, "id": 10}', 10),
    (b'"just a string"', None),
])
async def test_invalid_requests_echo_a_readable_id(fakes, message, id_):
    [response] = await exchange(fakes.dispatcher, message)
    assert shape(response) == err(id_, -32600)


_BIG = b"1" + b"0" * 400  # 1e400 written out in digits
_HUGE = b"1" + b"0" * 5000  # longer than any integer msgspec reads


def _envelope(member: str, raw: bytes) -> bytes:
    members = {"jsonrpc": b'"2.0"', "id": b"7", "method": b'"ping"', member: raw}
    return b"{" + b",".join(b'"%s":%s' % (k.encode(), v) for k, v in members.items()) + b"}"


# (member, raw value, id in the answer, words the message must hold)
_BAD_MEMBERS = [
    ("id", b"1e400", None, ['"id"', "out of range", "1.8e308"]),
    ("id", b"-1e400", None, ['"id"', "out of range", "1.8e308"]),
    ("id", _BIG, None, ['"id"', "out of range", "integer", "1.8e308"]),
    ("id", b"-" + _BIG, None, ['"id"', "out of range", "integer", "1.8e308"]),
    ("id", _HUGE, None, ['"id"', "out of range", "1.8e308"]),
    ("id", b"1.5", None, ['"id"', "a string, an integer or null", "1.5", "not an integer"]),
    ("id", b"-0.0", None, ['"id"', "a string, an integer or null", "-0.0", "not an integer"]),
    ("id", b"2e3", None, ['"id"', "a string, an integer or null", "not an integer"]),
    ("id", b'{"a": 1}', None, ['"id"', "a string, an integer or null", "an object"]),
    ("id", b"[1, 2]", None, ['"id"', "a string, an integer or null", "an array"]),
    ("id", b"true", None, ['"id"', "a string, an integer or null", "boolean true"]),
    ("id", b"false", None, ['"id"', "a string, an integer or null", "boolean false"]),
    ("jsonrpc", b'"1.0"', 7, ['"jsonrpc"', '"2.0"', "'1.0'"]),
    ("jsonrpc", b"2.0", 7, ['"jsonrpc"', '"2.0"', "the number 2.0"]),
    ("jsonrpc", b"1e400", 7, ['"jsonrpc"', '"2.0"', "1.8e308"]),
    ("jsonrpc", b"null", 7, ['"jsonrpc"', '"2.0"', "null"]),
    ("method", b"1e400", 7, ['"method"', "a string", "1.8e308"]),
    ("method", _BIG, 7, ['"method"', "a string", "integer", "1.8e308"]),
    ("method", b"5", 7, ['"method"', "a string", "the integer 5"]),
    ("method", b'["ping"]', 7, ['"method"', "a string", "an array"]),
    ("method", b"null", 7, ['"method"', "a string", "null"]),
    ("params", b"1e400", 7, ['"params"', "an object or an array", "a number"]),
    ("params", b'"x"', 7, ['"params"', "an object or an array", "a string"]),
    ("params", b"false", 7, ['"params"', "an object or an array", "a boolean"]),
    ("params", b"null", 7, ['"params"', "an object or an array", "null"]),
]


@pytest.mark.parametrize("member, raw, id_, words", _BAD_MEMBERS,
                         ids=[f"{m}={r[:12].decode()}" for m, r, _, _ in _BAD_MEMBERS])
async def test_a_bad_envelope_member_is_an_invalid_request_saying_which_and_why(fakes, member,
                                                                              raw, id_, words):
    line = _envelope(member, raw)
    # Alone, then as an entry of a batch next to a good request.
    [alone, batch] = await exchange(fakes.dispatcher, line,
                                    b"[" + line + b',{"jsonrpc":"2.0","id":"ok","method":"ping"}]')
    entry = next(r for r in batch if r["id"] != "ok")
    for response in (alone, entry):
        assert shape(response) == err(id_, -32600)
        message = response["error"]["message"]
        for word in words:
            assert word in message, (word, message)
    assert ok("ok", {}) in batch


async def test_an_id_as_large_as_a_double_is_still_echoed(fakes):
    big = int(1.7e308)
    responses = await exchange(fakes.dispatcher, {"jsonrpc": "2.0", "method": "ping", "id": big},
                               {"jsonrpc": "2.0", "method": "ping", "id": -big})
    assert sorted(r["id"] for r in responses) == [-big, big]
    assert all(r["result"] == {} for r in responses)


async def test_a_bad_batch_entry_says_what_it_got(fakes):
    [batch] = await exchange(fakes.dispatcher, b'[1, "x", null, [], true]')
    assert [r["error"]["message"].rsplit(", got ", 1)[1] for r in batch] == [
        "a number", "a string", "null", "an array", "a boolean"]


async def test_invalid_params_carry_the_json_path(fakes):
    params = {"dataset_id": "d", "param_grid": {"sl_mults": [0.9, 0.8, 1.5]}}
    [response] = await exchange(fakes.dispatcher,
                                {"jsonrpc": "2.0", "id": 1, "method": "optimize", "params": params})
    assert response["error"] == {"code": -32602, "message": "Expected `float` < 1.0",
                                 "data": {"path": "$.param_grid.sl_mults[2]"}}


async def test_unknown_field_is_invalid_params_at_the_root(fakes):
    [response] = await exchange(fakes.dispatcher, {"jsonrpc": "2.0", "id": 1, "method": "ping",
                                                   "params": {"zzz": 1}})
    assert response["error"] == {"code": -32602, "message": "Object contains unknown field `zzz`",
                                 "data": {"path": "$"}}


async def test_absent_params_decode_as_an_empty_object(fakes):
    fakes.release.set()  # let the slow optimize finish at once
    responses = await exchange(fakes.dispatcher,
                               {"jsonrpc": "2.0", "id": 1, "method": "optimize"},
                               {"jsonrpc": "2.0", "id": 2, "method": "dropDataset"})
    answers = by_id(responses)
    assert answers[1] == ok(1, {"objective": None, "top_k": 10})
    assert shape(answers[2]) == err(2, -32602)
    assert answers[2]["error"]["message"] == "Object missing required field `dataset_id`"


async def test_notification_errors_are_not_answered(fakes):
    with structlog.testing.capture_logs() as logs:
        responses = await exchange(
            fakes.dispatcher,
            {"jsonrpc": "2.0", "method": "ping", "params": {"zzz": 1}},
            {"jsonrpc": "2.0", "method": "nope"},
            {"jsonrpc": "2.0", "method": "stats"},
            {"jsonrpc": "2.0", "method": "ping", "params": [1]},
            {"jsonrpc": "2.0", "id": "last", "method": "ping"})
    assert responses == [ok("last", {})]
    # Each one was handled, and failed, all the same.
    assert sorted((e["id"], e["method"], e["code"]) for e in logs if e["id"] is None) == [
        (None, "nope", -32601), (None, "ping", -32602), (None, "ping", -32602),
        (None, "stats", -32603)]


# --- handler outcomes ---------------------------------------------------------

async def test_worker_error_keeps_its_code_message_and_data(fakes):
    [response] = await exchange(fakes.dispatcher, {"jsonrpc": "2.0", "id": 5, "method": "loadDataset",
                                                   "params": {"dataset_id": "x"}})
    assert response["error"] == {"code": -32002, "message": "series 'c1' candle 3: low > high",
                                 "data": {"key": "c1", "index": 3, "rule": "low<=high"}}


async def test_unexpected_exception_is_internal_error_and_logged(fakes):
    with structlog.testing.capture_logs() as logs:
        [response] = await exchange(fakes.dispatcher, {"jsonrpc": "2.0", "id": 6, "method": "stats"})
    assert response["error"] == {"code": -32603, "message": "internal error: RuntimeError: boom"}
    [entry] = [e for e in logs if e.get("method") == "stats"]
    assert entry["log_level"] == "error" and entry["outcome"] == "error" and entry["code"] == -32603
    assert isinstance(entry["exc_info"], RuntimeError)


async def test_result_that_cannot_be_encoded_is_internal_error(fakes):
    [response] = await exchange(fakes.dispatcher, {"jsonrpc": "2.0", "id": 7, "method": "listDatasets"})
    assert shape(response) == err(7, -32603)


async def test_logs_go_to_stderr_until_structlog_is_configured(fakes, capsys, monkeypatch):
    monkeypatch.setattr(structlog, "is_configured", lambda: False)
    assert await exchange(fakes.dispatcher, {"jsonrpc": "2.0", "id": 1, "method": "ping"}) == [
        ok(1, {})]
    out, err_text = capsys.readouterr()
    assert out == ""
    assert "request" in err_text and "method=ping" in err_text and "outcome=ok" in err_text


async def test_one_log_line_per_request(fakes):
    with structlog.testing.capture_logs() as logs:
        await exchange(fakes.dispatcher, {"jsonrpc": "2.0", "id": 1, "method": "ping"},
                       {"jsonrpc": "2.0", "id": 2, "method": "nope"}, b"{oops")
    assert [(e["event"], e["id"], e["method"], e["outcome"], e["code"]) for e in logs] == [
        ("request", 1, "ping", "ok", None),
        ("request", 2, "nope", "error", -32601),
        ("request", None, None, "error", -32700),
    ]
    assert all(e["duration_ms"] >= 0 and e["conn_id"] == "conn-1" for e in logs)


async def test_progress_notification_goes_out_before_the_response(fakes):
    responses = await exchange(fakes.dispatcher, {"jsonrpc": "2.0", "id": 1, "method": "simulate",
                                                  "params": {"dataset_id": "d", "params": {
                                                      "tp_mult": 2.0, "sl_mult": 0.9}}})
    assert responses == [
        {"jsonrpc": "2.0", "method": "$/progress", "params": {
            "token": "tok", "value": {"kind": "end", "done": 3, "total": 3, "unit": "points",
                                      "elapsed_ms": 1.5, "best": None}}},
        ok(1, {"mode": "capital"}),
    ]


async def test_after_response_callback_runs_once_the_response_is_written(fakes):
    async with connected(fakes.dispatcher) as peer:
        fakes.server_sent = peer.server_send.sent
        await peer.request(1, "shutdown")
        assert await peer.receive() == ok(1, {})
        assert fakes.after_response == [1]  # the one line was out when it ran


async def test_after_response_callback_of_a_notification_runs_though_nothing_is_sent(fakes):
    """``shutdown`` as a notification must still shut down (issue 9a)."""
    responses = await exchange(fakes.dispatcher, b'{"jsonrpc": "2.0", "method": "shutdown"}',
                               b'[{"jsonrpc": "2.0", "method": "shutdown"}]')
    assert responses == []
    assert len(fakes.after_response) == 2  # alone, and in a batch of notifications


async def test_a_notifications_after_response_callback_waits_for_its_batch(fakes):
    """A ``shutdown`` notification in a batch stops the server only once the
    batch is answered, as a ``shutdown`` request there would."""
    async with connected(fakes.dispatcher) as peer:
        fakes.server_sent = peer.server_send.sent
        await peer.send([{"jsonrpc": "2.0", "id": 1, "method": "optimize",
                          "params": {"dataset_id": "d"}},
                         {"jsonrpc": "2.0", "method": "shutdown"}])
        with anyio.fail_after(TIMEOUT):
            await fakes.started.wait()
        await peer.request(2, "ping")  # answered: the shutdown handler has returned too
        assert await peer.receive() == ok(2, {})
        assert fakes.after_response == []  # the batch is not answered yet
        fakes.release.set()
        [answer] = await peer.receive()
        assert answer["id"] == 1 and "result" in answer
        assert fakes.after_response == [2]  # ran once the batch line was out


def test_shutdown_notification_stops_the_real_daemon(tmp_path):
    """The real daemon exits 0 on a ``shutdown`` notification, its pool gone."""
    daemon = Daemon("--pool-size", "1", stderr_path=str(tmp_path / "stderr.log"))
    try:
        pool_pids = daemon.client.result("stats")["pool_pids"]
        assert len(pool_pids) == 1
        daemon.client.send("shutdown", notify=True)
        assert daemon.wait() == 0
        daemon.client.wait_closed()
        assert all(wait_gone(pid) for pid in pool_pids)
        assert len(daemon.client.raw_lines) == 1  # the notification got no answer
    finally:
        daemon.kill()


async def test_line_over_the_limit_is_answered_and_the_stream_stays_usable(fakes):
    async with connected(fakes.dispatcher, max_message_bytes=1000) as peer:
        await peer.request(1, "dropDataset", {"dataset_id": "x" * 5000})
        response = await peer.receive()
        assert shape(response) == err(None, -32600)
        length = response["error"]["data"]["length"]
        assert length > 5000 and response["error"]["data"]["limit"] == 1000
        assert f"{length} bytes" in response["error"]["message"]
        assert "max_message_bytes (1000)" in response["error"]["message"]
        await peer.request(2, "ping")
        assert await peer.receive() == ok(2, {})


# --- concurrency and cancellation --------------------------------------------

async def start_slow(peer: Peer, fakes: Fakes, id_: Any = 1) -> None:
    await peer.request(id_, "optimize", {"dataset_id": "d", "objective": "final_capital"})
    with anyio.fail_after(TIMEOUT):
        await fakes.started.wait()


async def test_ping_is_answered_while_a_slow_request_runs(fakes):
    async with connected(fakes.dispatcher) as peer:
        await start_slow(peer, fakes)
        assert fakes.dispatcher.in_flight_count() == 1
        await peer.request(2, "ping")
        assert await peer.receive() == ok(2, {})
        fakes.release.set()
        assert await peer.receive() == ok(1, {"objective": "final_capital", "top_k": 10})
    assert fakes.dispatcher.in_flight_count() == 0


async def test_cancel_answers_the_request_and_the_cancel(fakes):
    async with connected(fakes.dispatcher) as peer:
        await start_slow(peer, fakes, id_="job")
        await peer.request(2, "cancel", {"id": "job"})
        first, second = await peer.receive(), await peer.receive()
        assert first == {"jsonrpc": "2.0", "id": "job",
                         "error": {"code": -32800, "message": "request cancelled"}}
        assert second == ok(2, {"cancelled": True})
        with anyio.fail_after(TIMEOUT):
            await fakes.saw_cancel.wait()
        assert fakes.ctx_cancelled_seen is True
        # The cancelled request is gone: cancelling it again finds nothing.
        await peer.request(3, "cancel", {"id": "job"})
        assert await peer.receive() == ok(3, {"cancelled": False})


async def test_cancel_is_answered_while_the_handler_still_waits_for_a_thread(fakes):
    async with connected(fakes.dispatcher) as peer:
        await peer.request(1, "groupedEval", {"dataset_id": "d"})
        with anyio.fail_after(TIMEOUT):
            await fakes.started.wait()
        try:
            await peer.request(2, "cancel", {"id": 1})
            assert shape(await peer.receive()) == err(1, -32800)
            assert await peer.receive() == ok(2, {"cancelled": True})
            assert fakes.dispatcher.in_flight_count() == 1  # the thread is still running
        finally:
            fakes.thread_gate.set()
        await peer.request(3, "ping")
        assert await peer.receive() == ok(3, {})
    assert fakes.thread_saw_cancel is True
    assert fakes.dispatcher.in_flight_count() == 0


async def test_cancel_request_notification_cancels_without_an_answer(fakes):
    async with connected(fakes.dispatcher) as peer:
        await start_slow(peer, fakes, id_=41)
        await peer.notify("$/cancelRequest", {"id": 41})
        assert await peer.receive() == {"jsonrpc": "2.0", "id": 41,
                                        "error": {"code": -32800, "message": "request cancelled"}}
        with anyio.fail_after(TIMEOUT):
            await fakes.saw_cancel.wait()
        await peer.request(42, "ping")
        assert await peer.receive() == ok(42, {})


async def test_cancel_of_an_unknown_or_finished_id(fakes):
    async with connected(fakes.dispatcher) as peer:
        await peer.request(1, "ping")
        assert await peer.receive() == ok(1, {})
        await peer.request(2, "cancel", {"id": 1})
        assert await peer.receive() == ok(2, {"cancelled": False})
        await peer.request(3, "cancel", {"id": "never-sent"})
        assert await peer.receive() == ok(3, {"cancelled": False})


async def test_cancelled_batch_entry_is_answered_in_the_batch(fakes):
    async with connected(fakes.dispatcher) as peer:
        await peer.send([{"jsonrpc": "2.0", "id": 1, "method": "optimize", "params": {}},
                         {"jsonrpc": "2.0", "id": 2, "method": "ping"}])
        with anyio.fail_after(TIMEOUT):
            await fakes.started.wait()
        await peer.request(3, "cancel", {"id": 1})
        batch, cancel = await peer.receive(), await peer.receive()
        assert by_id(batch) == {1: {"jsonrpc": "2.0", "id": 1, "error": {
            "code": -32800, "message": "request cancelled"}}, 2: ok(2, {})}
        assert cancel == ok(3, {"cancelled": True})


async def test_end_of_stream_cancels_requests_in_flight(fakes):
    async with connected(fakes.dispatcher) as peer:
        await start_slow(peer, fakes)
        await peer.close_and_wait()
        assert fakes.saw_cancel.is_set() and fakes.ctx_cancelled_seen is True
        assert await peer.receive_all() == []
    assert fakes.dispatcher.in_flight_count() == 0


async def test_drain_on_eof_finishes_requests_in_flight(fakes):
    async with connected(fakes.dispatcher, drain_on_eof=True) as peer:
        await start_slow(peer, fakes)
        peer._to_server.close()
        fakes.release.set()
        assert await peer.receive() == ok(1, {"objective": "final_capital", "top_k": 10})
    assert not fakes.saw_cancel.is_set()


async def test_duplicate_id_in_flight_is_rejected(fakes):
    async with connected(fakes.dispatcher) as peer:
        await start_slow(peer, fakes, id_=9)
        await peer.request(9, "ping")
        response = await peer.receive()
        assert shape(response) == err(9, -32600)
        assert "already used" in response["error"]["message"]
        fakes.release.set()
        assert (await peer.receive())["result"]["top_k"] == 10


async def test_serves_a_real_socket(fakes):
    left, right = socket.socketpair()
    client = await SocketStream.from_socket(left)
    server = await SocketStream.from_socket(right)
    async with client, server, anyio.create_task_group() as tg:
        tg.start_soon(lambda: fakes.dispatcher.serve(server, server, conn_id="sock",
                                                     max_message_bytes=1 << 20))
        lines = LineReader(client, 1 << 20)
        big = msgspec.json.encode({"jsonrpc": "2.0", "id": 1, "method": "dropDataset",
                                   "params": {"dataset_id": "y" * 3_000_000}})
        await client.send(big + b"\n" + b'{"jsonrpc":"2.0","id":2,"method":"ping"}\n')
        with anyio.fail_after(TIMEOUT):
            too_long = msgspec.json.decode(await lines.receive_line())
            pong = msgspec.json.decode(await lines.receive_line())
        assert shape(too_long) == err(None, -32600)
        assert pong == ok(2, {})
        await client.send_eof()


# --- registration -----------------------------------------------------------

def test_builtins_cannot_be_replaced():
    with pytest.raises(ValueError, match="'cancel' is built into the dispatcher"):
        Dispatcher().register("cancel", Fakes.ping)


def test_unknown_method_needs_a_params_type():
    with pytest.raises(ValueError, match="'frobnicate' is not in protocol._messages.METHODS"):
        Dispatcher().register("frobnicate", Fakes.ping)


async def test_params_are_decoded_once_for_the_handler_and_its_threads():
    """What the typed decoder checked is not converted again downstream
    (``validate.DECODED``), in the handler and in the threads it starts; a
    later request's params are its own."""
    dispatcher = Dispatcher()

    async def optimize(params, ctx: RequestContext):
        grid, config = params.param_grid, params.simulator_config
        in_thread = await anyio.to_thread.run_sync(lambda: validate.grid(grid) is grid)
        return [validate.grid(grid) is grid, in_thread,
                validate.config(config) is config, len(validate.DECODED.get())]

    dispatcher.register("optimize", optimize)
    params = {"dataset_id": "d", "param_grid": {"tp_mults": [2.0], "sl_mults": [0.9]},
              "simulator_config": {"initial_capital": 500.0}}
    responses = await exchange(dispatcher, {"jsonrpc": "2.0", "id": 1, "method": "optimize",
                                            "params": params})
    assert responses == [ok(1, [True, True, True, 2])]
    assert validate.DECODED.get() == ()  # nothing leaks out of the request's task


async def test_explicit_params_type():
    dispatcher = Dispatcher()

    class Greet(msgspec.Struct, forbid_unknown_fields=True):
        name: str

    async def greet(params: Greet, ctx: RequestContext):
        return f"hello {params.name}"

    dispatcher.register("greet", greet, params_type=Greet)
    responses = await exchange(dispatcher, {"jsonrpc": "2.0", "id": 1, "method": "greet",
                                            "params": {"name": "ada"}})
    assert responses == [ok(1, "hello ada")]
