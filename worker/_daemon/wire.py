"""JSON-RPC 2.0 messages as bytes (``worker._daemon.dispatch``): one input line
decoded to requests or rejections, responses and notifications encoded. No
connection state, no event loop; the error codes live in ``worker._errors``.

A line is a Request object or a batch (an array of them). Every rule is
checked on its own, so a rejection still echoes a good ``id``; ``params``
stay raw (undecoded) until the method that types them is known. A rejection
names the member and says what it got: ``"id": 1e400`` (or the same integer
written out in digits) is out of range, and its answer has ``"id": null``.
"""

from __future__ import annotations

import sys
from typing import Any, NamedTuple

import msgspec

__all__ = ["Request", "Rejection", "decode_message", "encode_result", "encode_error",
           "encode_notification", "shown", "described", "first_byte", "ID_LIMIT", "NOT_JSON"]

_UNSET = msgspec.UNSET


class _Envelope(msgspec.Struct):
    """A message as read. Members stay raw and are decoded one by one, so each
    rule is checked on its own: a bad ``method`` (even ``1e400``, which no
    Python value holds) still lets a good ``id`` be echoed."""

    jsonrpc: msgspec.Raw | msgspec.UnsetType = _UNSET
    method: msgspec.Raw | msgspec.UnsetType = _UNSET
    id: msgspec.Raw | msgspec.UnsetType = _UNSET
    params: msgspec.Raw | msgspec.UnsetType = _UNSET


class _OutOfRange:
    """A member holding a number no Python value holds: ``1e400``, or an
    integer thousands of digits long."""

    def __repr__(self) -> str:
        return "<number out of range>"


OUT_OF_RANGE = _OutOfRange()

# An integer id may be as large as a JSON number is in practice (an IEEE
# double, RFC 8259 section 6): ``1e400`` is out of range written either way.
ID_LIMIT = sys.float_info.max

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
        return Rejection(None, f"invalid request: a batch entry must be an object, "
                               f"got {_raw_kind(raw)}")
    except NOT_JSON as exc:
        return Rejection(None, f"invalid request: a batch entry is not valid JSON ({exc})")


def _parse(env: _Envelope) -> Request | Rejection:
    """The envelope's rules, in order: ``jsonrpc``, ``id``, ``method``,
    ``params``. A rejection echoes the id unless the id is what is wrong.
    Raises one of ``NOT_JSON`` (invalid UTF-8 inside a member)."""
    version, id_, method = _value(env.jsonrpc), _value(env.id), _value(env.method)
    id_problem = _id_problem(id_)
    echo = None if id_problem or id_ is _UNSET else id_
    if version != "2.0":
        return Rejection(echo, f'invalid request: "jsonrpc" must be "2.0", got {described(version)}')
    if id_problem:
        return Rejection(None, f'invalid request: "id" {id_problem}')
    if not isinstance(method, str):
        return Rejection(echo, f'invalid request: "method" must be a string, got {described(method)}')
    params = None if env.params is _UNSET else env.params
    if params is not None and first_byte(params) not in (b"{", b"["):
        return Rejection(echo, f'invalid request: "params" must be an object or an array, '
                               f'got {_raw_kind(params)}')
    return Request(method, id_, params)


_VALUE_DECODER = msgspec.json.Decoder()


def _value(raw: msgspec.Raw | msgspec.UnsetType) -> Any:
    if raw is _UNSET:
        return _UNSET
    try:
        return _VALUE_DECODER.decode(raw)
    except msgspec.ValidationError:  # the one thing Any refuses: a number out of range
        return OUT_OF_RANGE


def _id_problem(id_: Any) -> str:
    """Why ``id`` is not a valid id ("" when it is)."""
    if id_ is _UNSET or id_ is None or isinstance(id_, str):
        return ""
    if isinstance(id_, int) and not isinstance(id_, bool):
        if abs(id_) <= ID_LIMIT:
            return ""
        return f"is out of range: got {described(id_)}"
    if id_ is OUT_OF_RANGE:
        return f"is out of range: got {described(id_)}"
    return f"must be a string, an integer or null, got {described(id_)}"


_BEYOND = "beyond 1.8e308 in magnitude (the largest IEEE double)"


def described(value: Any) -> str:
    """A member's value in an error message: what it is, and briefly which."""
    if value is _UNSET:
        return "nothing (the member is missing)"
    if value is OUT_OF_RANGE:
        return f"a number {_BEYOND}"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, int):
        if abs(value) > ID_LIMIT:
            return f"an integer {_BEYOND}"
        return f"the integer {shown(value)}"
    if isinstance(value, float):
        return f"the number {shown(value)}, not an integer (written with a fraction or an exponent)"
    if isinstance(value, str):
        return f"the string {shown(value)}"
    return "an object" if isinstance(value, dict) else "an array"


_RAW_KINDS = {b"{": "an object", b"[": "an array", b'"': "a string", b"t": "a boolean",
              b"f": "a boolean", b"n": "null"}


def _raw_kind(raw: msgspec.Raw) -> str:
    return _RAW_KINDS.get(first_byte(raw), "a number")


def shown(value: Any) -> str:
    """A bad member as an error message shows it: briefly (it may be huge)."""
    if isinstance(value, str):
        value = value[:41]  # not a repr of a whole 1 GB method name
    text = "nothing" if value is _UNSET else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def first_byte(raw: msgspec.Raw) -> bytes:
    """Tells an object from an array without decoding it (msgspec strips the
    whitespace around a Raw value)."""
    with memoryview(raw) as view:
        return bytes(view[:1])
