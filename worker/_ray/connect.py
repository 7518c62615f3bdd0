"""This process's connection to a Ray cluster.

Ray allows one connection (``ray.init``) per process: the first request for
a cluster makes it, later ones reuse it; a request for another address
disconnects and connects there (one cluster at a time). Before every
request the cluster's address is checked with a plain TCP connect, so an
unreachable cluster fails in seconds with ``InternalError`` (-32603) naming
the address (``ray.init`` on its own retries for minutes), and a cluster
that went away is connected again once it is back.

Every function here blocks: call them on a worker thread.
"""

from __future__ import annotations

import logging
import socket
import threading
from typing import Any

from .._errors import InternalError

__all__ = ["CONNECT_TIMEOUT", "connect", "import_ray", "reachable"]

CONNECT_TIMEOUT = 5.0          # seconds for the TCP check of the address
# Each Ray worker process runs one span at a time on one core, as a pool
# process does: one Numba thread.
RUNTIME_ENV = {"env_vars": {"NUMBA_NUM_THREADS": "1"}}

_lock = threading.Lock()
_address: str | None = None    # the address this process is connected to


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise InternalError("the Ray executor needs the ray extra: "
                            "pip install 'optimizer-worker[ray]'") from None
    return ray


def _host_port(address: str) -> tuple[str, int] | None:
    """``host:port`` of a GCS or Ray Client address (``ray://host:port``);
    None for ``auto`` and other forms Ray resolves itself."""
    text = address.removeprefix("ray://")
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        return None
    return host.strip("[]"), int(port)


def reachable(address: str, timeout: float = CONNECT_TIMEOUT) -> str | None:
    """None when something listens at ``address``, else why not (a phrase)."""
    hp = _host_port(address)
    if hp is None:
        return None
    try:
        with socket.create_connection(hp, timeout=timeout):
            return None
    except OSError as e:
        return e.strerror or type(e).__name__


def connect(address: str, timeout: float = CONNECT_TIMEOUT) -> Any:
    """The ``ray`` module, connected to the cluster at ``address`` (module doc).
    Raises ``InternalError`` naming the address when it cannot be reached."""
    global _address
    ray = import_ray()
    why = reachable(address, timeout)
    if why is not None:
        raise InternalError(f"the Ray cluster at {address} cannot be reached: {why}")
    with _lock:
        if ray.is_initialized() and _address == address:
            return ray
        if ray.is_initialized():
            ray.shutdown()
        _address = None
        try:
            ray.init(address=address, runtime_env=RUNTIME_ENV, log_to_driver=False,
                     logging_level=logging.WARNING, configure_logging=False)
        except Exception as e:
            try:
                ray.shutdown()
            except Exception:  # pragma: no cover - best effort
                pass
            raise InternalError(f"the Ray cluster at {address} cannot be reached: "
                                f"{type(e).__name__}: {e}") from None
        _address = address
        return ray


def disconnect() -> None:
    """Leave the cluster (tests; the next ``connect`` connects again)."""
    global _address
    with _lock:
        ray = import_ray()
        if ray.is_initialized():
            ray.shutdown()
        _address = None
