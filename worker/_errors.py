"""Every error the worker raises on purpose, each carrying its JSON-RPC code:
the one registry of the codes of SPEC section 7 (the TypeScript client's
``ErrorCode`` in ``protocol/typescript/src/errors.ts`` repeats them).

The daemon turns a ``WorkerError`` into an error response with ``code``,
``message`` and ``data``; the batch CLI prints ``message``. Anything else
escaping a handler is a bug and becomes -32603 (internal error). The
dispatcher answers with the codes of ``ParseError``, ``InvalidRequest``,
``MethodNotFound`` and ``RequestCancelled`` itself (``worker._daemon.dispatch``).

``split_msgspec_error`` is the one reader of the JSON path msgspec puts at
the end of a ``ValidationError``'s message.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "WorkerError",
    "ParseError",
    "InvalidRequest",
    "MethodNotFound",
    "InvalidParams",
    "InternalError",
    "UnknownDataset",
    "InvalidDataset",
    "ResourceLimit",
    "CheckpointMismatch",
    "RequestCancelled",
    "StartupError",
    "split_msgspec_error",
]


class WorkerError(Exception):
    """Base class: ``code`` is the JSON-RPC error code, ``data`` extra detail."""

    code: int = -32603

    def __init__(self, message: str, *, data: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.data = data


class ParseError(WorkerError):
    code = -32700


class InvalidRequest(WorkerError):
    code = -32600


class MethodNotFound(WorkerError):
    code = -32601


class InvalidParams(WorkerError, ValueError):
    """Bad parameters; ``path`` is the JSON path of the offending field."""

    code = -32602

    def __init__(self, message: str, *, path: str = "$") -> None:
        super().__init__(f"{message} (at {path})", data={"path": path})
        self.path = path


class InternalError(WorkerError):
    code = -32603


class UnknownDataset(WorkerError):
    code = -32001


class InvalidDataset(WorkerError):
    """A dataset breaks a rule of SPEC section 1.

    ``data`` names the series or call (``key``), the candle ``index`` and the
    ``rule`` broken, so a caller can point at the exact bad row.
    """

    code = -32002

    def __init__(
        self,
        message: str,
        *,
        key: str | None = None,
        index: int | None = None,
        rule: str | None = None,
    ) -> None:
        super().__init__(message, data={"key": key, "index": index, "rule": rule})
        self.key = key
        self.index = index
        self.rule = rule


class ResourceLimit(WorkerError):
    code = -32003


class CheckpointMismatch(WorkerError):
    code = -32004


class RequestCancelled(WorkerError):
    code = -32800


class StartupError(WorkerError):
    """The daemon cannot start as asked: never a response, but exit code 2
    and the message on stderr (``worker._daemon.server.serve``)."""


def split_msgspec_error(exc: BaseException | str) -> tuple[str, str]:
    """A msgspec ``ValidationError`` (or its message) as ``(message, path)``:
    msgspec ends the message with `` - at `$.a.b[2]` `` for an error below the
    root; the path is ``"$"`` when there is none."""
    text = str(exc)
    head, sep, tail = text.rpartition(" - at `")
    if sep and tail.startswith("$") and tail.endswith("`") and "`" not in tail[:-1]:
        return head, tail[:-1]
    return text, "$"
