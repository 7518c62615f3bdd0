"""Transports: stdio (the protocol on the real stdout) and a Unix socket.

stdio: at start the real stdout is set aside for protocol lines and fd 1 is
pointed at stderr, so a library that prints can never corrupt the stream.

Unix socket: it lives in a directory only its owner can enter, has mode
0600, and every connection's peer uid (SO_PEERCRED) must be ours. A socket
file left by a dead worker is replaced; a live worker's is never taken.
"""

from __future__ import annotations

import errno
import os
import socket
import stat
import struct
import sys

import anyio
from anyio.abc import ByteStream, SocketStream

from .._errors import StartupError

_READ_SIZE = 1 << 20


class FdStream(ByteStream):
    """A byte stream over two pipe/tty file descriptors, on the event loop
    (no thread hop per line: ping latency is measured over this)."""

    def __init__(self, read_fd: int, write_fd: int) -> None:
        self._rfd, self._wfd = read_fd, write_fd
        for fd in (read_fd, write_fd):
            os.set_blocking(fd, False)

    async def receive(self, max_bytes: int = _READ_SIZE) -> bytes:
        while True:
            try:
                data = os.read(self._rfd, max_bytes)
            except BlockingIOError:
                await anyio.wait_readable(self._rfd)
                continue
            if not data:
                raise anyio.EndOfStream
            return data

    async def send(self, item: bytes) -> None:
        view = memoryview(item)
        while view:
            try:
                view = view[os.write(self._wfd, view):]
            except BlockingIOError:
                await anyio.wait_writable(self._wfd)
            except BrokenPipeError:
                raise anyio.BrokenResourceError from None

    async def send_eof(self) -> None:
        os.close(self._wfd)

    async def aclose(self) -> None:
        for fd in (self._rfd, self._wfd):
            try:
                os.close(fd)
            except OSError:
                pass


def claim_stdio() -> FdStream:
    """Protocol stream on stdin/stdout; fd 1 (and ``sys.stdout``) now go to stderr."""
    protocol_out = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return FdStream(os.dup(0), protocol_out)


def _check_private_dir(directory: str) -> None:
    try:
        st = os.stat(directory)
    except FileNotFoundError:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        os.chmod(directory, 0o700)
        return
    if not stat.S_ISDIR(st.st_mode):
        raise StartupError(f"socket directory {directory} is not a directory")
    if st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise StartupError(
            f"socket directory {directory} must belong to you and be private "
            f"(mode {stat.S_IMODE(st.st_mode):04o}, owner uid {st.st_uid}); "
            f"use e.g. $XDG_RUNTIME_DIR or a directory made with mode 0700")


def _clear_stale_socket(path: str) -> None:
    if not os.path.lexists(path):
        return
    if not stat.S_ISSOCK(os.lstat(path).st_mode):
        raise StartupError(f"{path} exists and is not a socket; not replacing it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except OSError as exc:
        if exc.errno not in (errno.ECONNREFUSED, errno.ENOENT):
            raise StartupError(f"cannot probe existing socket {path}: {exc}") from None
        os.unlink(path)  # nobody listens: a dead worker's leftover
    else:
        raise StartupError(f"another worker is listening on {path}; not taking its socket")
    finally:
        probe.close()


async def unix_listener(path: str) -> anyio.abc.SocketListener:
    path = os.path.abspath(path)
    _check_private_dir(os.path.dirname(path))
    _clear_stale_socket(path)
    return await anyio.create_unix_listener(path, mode=0o600)


def peer_uid(stream: SocketStream) -> int:
    raw = stream.extra(anyio.abc.SocketAttribute.raw_socket)
    creds = raw.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", creds)[1]
