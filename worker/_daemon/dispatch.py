"""JSON-RPC 2.0 dispatch over one newline-delimited connection (SPEC section 7).

``Dispatcher.serve`` reads lines and runs every request in its own task and
cancel scope, so a long ``optimize`` never delays a ``ping`` on the same
connection. Each response line is written as soon as it is ready, under a lock
so lines never interleave. Params are decoded by one reusable typed msgspec
decoder per method, built from ``protocol._messages.METHODS``, and not checked
again downstream (``worker._core.validate.DECODED``). Messages as bytes are
``worker._daemon.wire``, the error codes ``worker._errors``; this module holds
the connections and the dispatch.

Error rules are the JSON-RPC 2.0 specification's: -32700 for invalid JSON,
-32600 for anything that is not a Request object (and for a line over
``max_message_bytes``), -32601 for an unknown method, -32602 for params that
do not decode (``error.data.path`` is the JSON path of the offending field) or
are given by position. Notifications are never answered, even on error. An id
already in flight on the connection is refused (-32600), so ``cancel`` is
never ambiguous.

``cancel {id}`` and the ``$/cancelRequest {id}`` notification are built in:
they cancel a request in flight on the same connection, which is answered
-32800 at once, whatever its handler still has to wind down.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

import anyio
import anyio.lowlevel
import msgspec
import structlog
from anyio.abc import ByteReceiveStream, ByteSendStream, TaskGroup

from protocol._messages import METHODS, CancelParams, CancelResult

from .._core.validate import DECODED
from .._errors import (InternalError, InvalidParams, InvalidRequest, MethodNotFound, ParseError,
                       RequestCancelled, WorkerError, split_msgspec_error)
from .framing import LineReader, LineTooLong
from .wire import (NOT_JSON, Rejection, Request, decode_message, encode_error,
                   encode_notification, encode_result, first_byte, shown)

__all__ = ["Dispatcher", "Handler", "RequestContext"]

CANCEL_METHODS = ("cancel", "$/cancelRequest")

Handler = Callable[[Any, "RequestContext"], Awaitable[Any]]
Callback = Callable[[], None]

_PEER_GONE = (anyio.BrokenResourceError, anyio.ClosedResourceError)


# --- connection state -----------------------------------------------------------

class _Outcome(NamedTuple):
    response: bytes  # empty for a notification
    outcome: str  # "ok" | "error" | "cancelled"
    code: int | None = None
    exc: BaseException | None = None


@dataclass(eq=False)
class _InFlight:
    """A request in flight: what ``cancel`` needs to stop and answer it, and
    the ``RequestContext`` its handler is given."""

    request: Request
    conn: _Connection
    sink: _Sink
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    cancelled: bool = False
    answered: bool = False
    after_response: list[Callback] = field(default_factory=list)
    id: str | int | None = field(init=False)  # None for a notification
    method: str = field(init=False)
    conn_id: str = field(init=False)

    def __post_init__(self) -> None:
        self.id = None if self.request.is_notification else self.request.id
        self.method, self.conn_id = self.request.method, self.conn.conn_id

    async def notify(self, method: str, params: Any) -> None:
        if not self.answered:  # nothing about a request may follow its response
            await self.conn.write(encode_notification(method, params) + b"\n")

    def call_after_response(self, callback: Callback) -> None:
        self.after_response.append(callback)

    def cancel(self) -> None:
        self.cancelled = True
        self.scope.cancel()

    def outcome(self, code: int, message: str, data: Any = None, *,
                exc: BaseException | None = None) -> _Outcome:
        """This request's error outcome (-32800 counts as cancelled)."""
        response = b"" if self.request.is_notification else encode_error(
            self.request.id, code, message, data)
        kind = "cancelled" if code == RequestCancelled.code else "error"
        return _Outcome(response, kind, code, exc)

    async def answer(self, response: bytes) -> None:
        """Send this request's one response, unless already sent or a notification.
        A notification has none, but what was to follow it (``shutdown``'s
        stop) still follows: JSON-RPC carries notifications out all the same."""
        if self.answered:
            return
        self.answered = True
        if self.request.is_notification:
            self.sink.run_after(self.after_response)
            return
        await self.sink.put(response, self.after_response)


class _Connection:
    def __init__(self, send: ByteSendStream, conn_id: str, tg: TaskGroup) -> None:
        self.conn_id = conn_id
        self.tg = tg
        self.closed = False
        self.in_flight: set[_InFlight] = set()
        self.by_id: dict[Any, _InFlight] = {}  # the requests ``cancel`` can name
        self._send = send
        self._lock = anyio.Lock()

    async def write(self, line: bytes) -> None:
        """Write one line. A peer that is gone is no error: it ends the connection."""
        if self.closed:
            return
        async with self._lock:
            try:
                await self._send.send(line)
            except _PEER_GONE:
                self.close()

    def close(self) -> None:
        """Stop every request of this connection; no further line is written."""
        self.closed = True
        for req in self.in_flight:
            req.cancel()
        self.tg.cancel_scope.cancel()

    async def cancel(self, id_: Any) -> bool:
        req = self.by_id.get(id_)
        if req is None or req.request.method in CANCEL_METHODS:
            return False  # a cancel cancelling itself would never be answered
        del self.by_id[id_]
        req.cancel()
        # Answer now: the handler may need a while to notice (a thread it is
        # waiting for), and the client should not wait for that.
        await req.answer(encode_error(id_, RequestCancelled.code, "request cancelled"))
        return True


class _Sink:
    """Where the responses of one input line go: a line of their own, or for a
    batch one array line, written once the last expected response is in."""

    def __init__(self, conn: _Connection, batch_size: int | None = None) -> None:
        self._conn = conn
        self._batch_size = batch_size
        self._parts: list[bytes] = []
        self._after: list[Callback] = []

    def run_after(self, callbacks: list[Callback]) -> None:
        """For a notification (no response of its own): run ``callbacks`` once
        this sink's line is out, so a batch is answered before a ``shutdown``
        in it stops the server; at once when no line is still to come."""
        if self._batch_size is None or len(self._parts) == self._batch_size:
            for callback in callbacks:
                callback()
        else:
            self._after.extend(callbacks)

    async def put(self, response: bytes, after: list[Callback]) -> None:
        self._parts.append(response)
        self._after.extend(after)
        if self._batch_size is None:
            await self._conn.write(response + b"\n")
        elif len(self._parts) == self._batch_size:
            await self._conn.write(b"[" + b",".join(self._parts) + b"]\n")
        else:
            return
        for callback in self._after:
            callback()


class RequestContext(Protocol):
    """What a handler knows about its request, and how it talks back: the
    type of the ``ctx`` every handler is given (``async handler(params, ctx)``).

    ``id`` is None for a notification (or a null id). ``cancelled`` turns true
    when the request is cancelled (``cancel``, ``$/cancelRequest``, the peer
    going away); a plain attribute read, so a thread the handler started may
    poll it. The handler's own awaits are cancelled by anyio at the same moment.
    """

    id: str | int | None
    method: str
    conn_id: str
    cancelled: bool

    async def notify(self, method: str, params: Any) -> None:
        """Send a notification (e.g. ``$/progress``) on this connection.
        Dropped once the request is answered (a cancel answers at once):
        nothing about a request may follow its response."""

    def call_after_response(self, callback: Callback) -> None:
        """Run ``callback()`` once the response line is written (or dropped, the
        peer being gone; at once when the handler returns, for a notification):
        how ``shutdown`` stops the server after its ``{}``."""


# --- the dispatcher -------------------------------------------------------------

class _Method(NamedTuple):
    handler: Handler
    decoder: msgspec.json.Decoder


class Dispatcher:
    """The method table, and ``serve`` for each connection (the table and the
    in-flight count are shared by every connection)."""

    def __init__(self) -> None:
        self._running = 0
        cancel = _Method(_cancel_handler, msgspec.json.Decoder(CancelParams))
        self._methods: dict[str, _Method] = {name: cancel for name in CANCEL_METHODS}

    def register(self, name: str, handler: Handler, *, params_type: Any = None) -> None:
        """Route ``name`` to ``async handler(params, ctx)``. Params are decoded
        to ``METHODS[name][0]`` unless ``params_type`` is given."""
        if name in CANCEL_METHODS:
            raise ValueError(f"method {name!r} is built into the dispatcher; it cannot be registered")
        if params_type is None:
            if name not in METHODS:
                raise ValueError(f"method {name!r} is not in protocol._messages.METHODS; "
                                 f"pass params_type to register it")
            params_type = METHODS[name][0] or dict[str, Any]
        self._methods[name] = _Method(handler, msgspec.json.Decoder(params_type))

    def in_flight_count(self) -> int:
        """Requests being handled now on every connection (the asker included)."""
        return self._running

    async def serve(self, receive: ByteReceiveStream, send: ByteSendStream, *, conn_id: str,
                    max_message_bytes: int, drain_on_eof: bool = False) -> None:
        """Serve one connection until ``receive`` ends.

        At the end of ``receive`` every request still in flight is cancelled
        and left unanswered (the peer is gone), unless ``drain_on_eof``: then
        they run to the end and are answered first (a client that writes its
        requests to a pipe and closes it). A peer that stops reading ends the
        connection the same way. Neither stream is closed here.
        """
        reader = LineReader(receive, max_message_bytes)
        async with anyio.create_task_group() as tg:
            conn = _Connection(send, conn_id, tg)
            try:
                while True:
                    self._accept(conn, await reader.receive_line())
                    # Let the requests just started run even when the next
                    # lines are already buffered.
                    await anyio.lowlevel.checkpoint()
            except (anyio.EndOfStream, *_PEER_GONE):
                if not drain_on_eof:
                    conn.close()

    # Reading side: runs in the serving loop, so a request is tracked (and
    # can be cancelled) before the next line is read.

    def _accept(self, conn: _Connection, line: bytearray | LineTooLong) -> None:
        if isinstance(line, LineTooLong):
            self._reject(conn, _Sink(conn), Rejection(
                None, f"invalid request: message of {line.length} bytes exceeds "
                      f"max_message_bytes ({line.limit})"),
                data={"length": line.length, "limit": line.limit})
            return
        try:
            message = decode_message(line)
        except NOT_JSON as exc:
            self._reject(conn, _Sink(conn), Rejection(None, f"parse error: {exc}"),
                         code=ParseError.code)
            return
        if not isinstance(message, list):
            self._admit(conn, _Sink(conn), message)
        elif not message:
            self._reject(conn, _Sink(conn), Rejection(None, "invalid request: empty batch"))
        else:
            answered = sum(not (isinstance(e, Request) and e.is_notification) for e in message)
            sink = _Sink(conn, batch_size=answered)
            for entry in message:
                self._admit(conn, sink, entry)

    def _admit(self, conn: _Connection, sink: _Sink, request: Request | Rejection) -> None:
        if isinstance(request, Rejection):
            self._reject(conn, sink, request)
        elif request.id is not None and not request.is_notification and request.id in conn.by_id:
            self._reject(conn, sink, Rejection(
                request.id, f"invalid request: id {shown(request.id)} is already used by a "
                            f"request in flight on this connection"))
        else:
            req = _InFlight(request, conn, sink)
            conn.in_flight.add(req)
            if request.id is not None and not request.is_notification:
                conn.by_id[request.id] = req
            conn.tg.start_soon(self._run, req)

    def _reject(self, conn: _Connection, sink: _Sink, rejection: Rejection, *,
                code: int = InvalidRequest.code, data: Any = None) -> None:
        self._log.info("request", id=rejection.id, method=None, conn_id=conn.conn_id,
                       duration_ms=0.0, outcome="error", code=code)
        conn.tg.start_soon(sink.put, encode_error(rejection.id, code, rejection.message, data), [])

    # Handling side: one task per request.

    async def _run(self, req: _InFlight) -> None:
        started = time.perf_counter()
        self._running += 1
        result: _Outcome | None = None
        try:
            result = await self._execute(req)
        finally:
            self._running -= 1
            req.conn.in_flight.discard(req)
            if req.conn.by_id.get(req.request.id) is req:
                del req.conn.by_id[req.request.id]
            self._log_request(req, started, result)
        await req.answer(result.response)

    async def _execute(self, req: _InFlight) -> _Outcome:
        request = req.request
        method = self._methods.get(request.method)
        if req.cancelled:  # cancelled before its task started: do not start the handler
            return req.outcome(RequestCancelled.code, "request cancelled")
        if method is None:
            return req.outcome(MethodNotFound.code, f"method not found: {shown(request.method)}")
        if request.params is not None and first_byte(request.params) == b"[":
            return req.outcome(InvalidParams.code, "params must be an object (named parameters); "
                                                   "this worker takes no positional params")
        try:
            params = method.decoder.decode(b"{}" if request.params is None else request.params)
        except msgspec.ValidationError as exc:
            message, path = split_msgspec_error(exc)
            return req.outcome(InvalidParams.code, message, {"path": path})
        except NOT_JSON as exc:  # e.g. invalid UTF-8 inside a params string
            return req.outcome(InvalidParams.code, f"params are not valid JSON: {exc}",
                               {"path": "$"})
        if isinstance(params, msgspec.Struct):  # checked now: not again (validate.DECODED)
            DECODED.set(tuple(v for v in msgspec.structs.astuple(params)
                              if isinstance(v, (msgspec.Struct, dict, list))))
        # The raw params keep the whole input line alive (maybe hundreds of MB):
        # let it go while the handler runs.
        req.request = request = request._replace(params=None)
        with req.scope:
            try:
                result = await method.handler(params, req)
                # A notification's result is dropped unencoded.
                return _Outcome(b"" if request.is_notification
                                else encode_result(request.id, result), "ok")
            except WorkerError as exc:
                return req.outcome(exc.code, exc.message, exc.data)
            except Exception as exc:  # a bug in a handler: answer, log, keep serving
                return req.outcome(InternalError.code,
                                   f"internal error: {type(exc).__name__}: {exc}", exc=exc)
        # Reached only when the scope caught its own cancellation.
        return req.outcome(RequestCancelled.code, "request cancelled")

    def _log_request(self, req: _InFlight, started: float, result: _Outcome | None) -> None:
        if req.cancelled or result is None:  # None: the connection was torn down
            result = _Outcome(b"", "cancelled", RequestCancelled.code)
        fields = dict(id=req.id, method=req.method, conn_id=req.conn_id, outcome=result.outcome,
                      code=result.code, duration_ms=round((time.perf_counter() - started) * 1e3, 3))
        if result.exc is not None:
            self._log.error("request", exc_info=result.exc, **fields)
        else:
            self._log.info("request", **fields)

    @property
    def _log(self) -> Any:
        if structlog.is_configured():
            return structlog.get_logger()
        # structlog's default prints to stdout, which carries the responses of
        # the stdio transport: log to stderr until the server configures it.
        return structlog.wrap_logger(structlog.PrintLogger(sys.stderr))


async def _cancel_handler(params: CancelParams, ctx: _InFlight) -> CancelResult:
    return CancelResult(cancelled=await ctx.conn.cancel(params.id))
