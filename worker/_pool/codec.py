"""The pool's wire format, both ways between the daemon and a pool process
(``worker._pool.child``): frames of a 4-byte big-endian length, then a
msgpack payload; numpy arrays travel as ``{dtype, shape, data}``.

Pure functions and one blocking reader (``read_frame``, the child's side;
the daemon reads frames asynchronously in ``worker._pool.proc``). Imports
nothing of the worker, so a pool process pays only for msgspec and numpy.
"""

from __future__ import annotations

import struct
from typing import Any, BinaryIO

import msgspec
import numpy as np

__all__ = ["HEADER", "MAX_FRAME", "decode_payload", "encode_frame", "pack_array",
           "read_frame", "unpack_array"]

HEADER = struct.Struct(">I")
MAX_FRAME = (1 << 32) - 1

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder()


def encode_frame(msg: Any) -> bytes:
    payload = _encoder.encode(msg)
    if len(payload) > MAX_FRAME:
        raise ValueError(f"pool frame of {len(payload)} bytes is too large")
    return HEADER.pack(len(payload)) + payload


def decode_payload(payload: bytes | bytearray | memoryview) -> Any:
    return _decoder.decode(payload)


def pack_array(a: np.ndarray) -> dict:
    a = np.ascontiguousarray(a)
    return {"dtype": a.dtype.str, "shape": list(a.shape),
            "data": memoryview(a.reshape(-1).view(np.uint8))}


def unpack_array(d: dict, *, writable: bool = True) -> np.ndarray:
    """``writable``: a copy (kernels were compiled for writable level arrays;
    a read-only one would be a new type and a new compile)."""
    a = np.frombuffer(d["data"], dtype=np.dtype(d["dtype"])).reshape(d["shape"])
    return a.copy() if writable else a


def read_frame(inp: BinaryIO) -> Any:
    """The next frame's message from a blocking stream, or None when the
    stream ends (also in the middle of a frame; no message is nil)."""
    head = _read_exactly(inp, HEADER.size)
    if head is None:
        return None
    (n,) = HEADER.unpack(head)
    payload = _read_exactly(inp, n)
    if payload is None:
        return None
    return decode_payload(payload)


def _read_exactly(inp: BinaryIO, n: int) -> bytes | None:
    data = inp.read(n)
    if data is None or len(data) < n:
        return None
    return data
