"""JSON-RPC 2.0 messages as bytes (``worker._jsonrpc``): one input line
decoded to requests or rejections, responses and notifications encoded, and
the specification's error codes. No connection state, no event loop.

A line is a Request object or a batch (an array of them). Every rule is
checked on its own, so a rejection still echoes a good ``id``; ``params``
stay raw (undecoded) until the method that types them is known.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import msgspec

__all__ = ["PARSE_ERROR", "INVALID_REQUEST", "METHOD_NOT_FOUND", "INVALID_PARAMS",
           "INTERNAL_ERROR", "REQUEST_CANCELLED", "Request", "Rejection", "decode_message",
           "encode_result", "encode_error", "encode_notification", "shown", "first_byte",
           "split_path"]

PARSE_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND = -32700, -32600, -32601
INVALID_PARAMS, INTERNAL_ERROR, REQUEST_CANCELLED = -32602, -32603, -32800

_UNSET = msgspec.UNSET


class _Envelope(msgspec.Struct):
    """A message as read. Members are untyped so each rule is checked on its
    own: a bad ``method`` still lets a good ``id`` be echoed."""

    jsonrpc: Any = _UNSET
    method: Any = _UNSET
    id: Any = _UNSET
    params: msgspec.Raw | msgspec.UnsetType = _UNSET


_MESSAGE_DECODER = msgspec.json.Decoder(_Envelope | list[msgspec.Raw])
_ENTRY_DECODER = msgspec.json.Decoder(_Envelope)
_ENCODER = msgspec.json.Encoder()


def encode_result(id_: Any, result: Any) -> bytes:
    return _ENCODER.encode({"jsonrpc": "2.0", "id": id_, "result": result})


def encode_error(id_: Any, code: int, message: str, data: Any = None) -> bytes:
    error = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return _ENCODER.encode({"jsonrpc": "2.0", "id": id_, "error": error})


def encode_notification(method: str, params: Any) -> bytes:
    return _ENCODER.encode({"jsonrpc": "2.0", "method": method, "params": params})


class Request(NamedTuple):
    method: str
    id: Any  # msgspec.UNSET for a notification
    params: msgspec.Raw | None  # None when the member is absent

    @property
    def is_notification(self) -> bool:
        return self.id is _UNSET


class Rejection(NamedTuple):
    """A message that is not a valid Request object: always answered."""

    id: Any
    message: str


# What decoding untrusted JSON can raise besides a ValidationError: not JSON,
# invalid UTF-8 inside a string (UnicodeDecodeError), nesting too deep
# (RecursionError). Every one is the client's error, never the daemon's death.
NOT_JSON = (msgspec.DecodeError, UnicodeDecodeError, RecursionError)


def decode_message(line: bytes | bytearray) -> Request | Rejection | list[Request | Rejection]:
    """One input line: a request (or its rejection), or a batch of them (a
    list, maybe empty). Raises one of ``NOT_JSON`` when it is not JSON."""
    try:
        message = _MESSAGE_DECODER.decode(line)
    except msgspec.ValidationError:  # valid JSON, neither object nor array
        return Rejection(None, "invalid request: a message must be an object or an "
                               "array (a batch)")
    if isinstance(message, list):
        return [_parse_entry(raw) for raw in message]
    return _parse(message)


def _parse_entry(raw: msgspec.Raw) -> Request | Rejection:
    try:
        return _parse(_ENTRY_DECODER.decode(raw))
    except msgspec.ValidationError:
        return Rejection(None, "invalid request: a batch entry must be an object")
    except NOT_JSON as exc:
        return Rejection(None, f"invalid request: a batch entry is not valid JSON ({exc})")


def _parse(env: _Envelope) -> Request | Rejection:
    id_ = env.id
    id_ok = id_ is _UNSET or id_ is None or isinstance(id_, str) or (
        isinstance(id_, int) and not isinstance(id_, bool))
    echo = id_ if id_ok and id_ is not _UNSET else None
    if env.jsonrpc != "2.0":
        return Rejection(echo, f'invalid request: "jsonrpc" must be "2.0", got {shown(env.jsonrpc)}')
    if not id_ok:
        return Rejection(None, f'invalid request: "id" must be a string, an integer or null, '
                               f'got {type(id_).__name__}')
    if not isinstance(env.method, str):
        return Rejection(echo, f'invalid request: "method" must be a string, got {shown(env.method)}')
    params = None if env.params is _UNSET else env.params
    if params is not None and first_byte(params) not in (b"{", b"["):
        return Rejection(echo, 'invalid request: "params" must be an object or an array')
    return Request(env.method, id_, params)


def shown(value: Any) -> str:
    """A bad member as an error message shows it: briefly (it may be huge)."""
    text = "nothing" if value is _UNSET else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def first_byte(raw: msgspec.Raw) -> bytes:
    """Tells an object from an array without decoding it (msgspec strips the
    whitespace around a Raw value)."""
    with memoryview(raw) as view:
        return bytes(view[:1])


def split_path(message: str) -> tuple[str, str]:
    """msgspec ends a ValidationError with `` - at `$.a.b[2]` ``; split it off."""
    head, sep, tail = message.rpartition(" - at `")
    if sep and tail.endswith("`"):
        return head, tail[:-1]
    return message, "$"
