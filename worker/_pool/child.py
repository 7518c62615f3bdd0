"""One process of the daemon's pool: ``python -m worker._pool.child``.

A fresh interpreter, started by ``worker._pool.pool`` (nothing is forked, so no
Numba threading-layer or lock state is inherited: that *is* the start method).
It loads every kernel from Numba's on-disk cache (``warm_kernels``), says
"ready", then serves frames on stdin until EOF:

- ``{"op": "eval", "job": id, "span": [a, b], "spec": {...} | absent}``:
  metrics of items ``[a, b)`` of job ``id``; ``spec`` (the job and its dataset
  descriptor) comes with the first span of a job this process sees. The candle
  scan (``prepare``) runs once per job here and is kept until ``drop_job``
  (``id``: a request's own, or the pool's key of a ``GridJob`` kept across
  requests, a checkpointed run's chunks). Reply: ``{"ok": true, "m", "e",
  "s", "scan": 1 if this span ran the scan}`` (packed arrays) or
  ``{"ok": false, "error": message}``.
- ``{"op": "drop_job", "job": id}``, ``{"op": "forget", "key": dataset_key}``:
  no reply.

Frames both ways (``worker._pool.codec``): 4-byte big-endian length, then a
msgpack payload. fd 1 is moved away at start and pointed at stderr, so a
stray ``print`` can never corrupt a frame; logs go to stderr, which the
daemon shares.

``NUMBA_NUM_THREADS`` (set by the daemon, default 1) keeps N processes on N
cores from oversubscribing them.
"""

from __future__ import annotations

import os
import signal
import sys
import time
import traceback
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Any, BinaryIO

import msgspec

from .codec import encode_frame, pack_array, read_frame, unpack_array

_DATASETS_KEPT = 4
_FORGOTTEN_KEPT = 1024


def job_from_spec(spec: dict, array: Callable[[Any], Any] = unpack_array) -> Any:
    """The ``GridJob`` a job spec describes (``spans.job_spec``'s ``levels``,
    ``gap_open``, ``levels_kind``, ``positions``, ``group_codes``, ``groups``,
    ``config``, ``mode``; ``params`` and ``score`` do not travel). ``array``
    turns each of its arrays into a numpy array: a packed one here
    (``unpack_array``); ``worker._ray`` passes plain arrays and a copy."""
    from protocol import SimulatorConfig

    from .._core.engine import GridLevels
    from .._core.jobs import GridJob
    from .._core.rengine import StrategyLevels

    kind = StrategyLevels if spec.get("levels_kind") == "strategy" else GridLevels
    levels = kind(params=[], gap_open=spec["gap_open"],
                  **{k: array(a) for k, a in spec["levels"].items()})
    positions = array(spec["positions"])
    codes = None if spec["group_codes"] is None else array(spec["group_codes"])
    config = msgspec.convert(spec["config"], SimulatorConfig)
    groups = (None if spec.get("groups") is None
              else tuple(array(g) for g in spec["groups"]))
    return GridJob(levels, positions, codes, config, spec["mode"], groups=groups)


class _Job:
    __slots__ = ("sweep", "groups", "config", "mode")

    def __init__(self, sweep, groups, config, mode) -> None:
        self.sweep, self.groups, self.config, self.mode = sweep, groups, config, mode


class _Server:
    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        # path -> (dataset_key, Dataset), least recently used first
        self.datasets: OrderedDict[str, tuple[str, Any]] = OrderedDict()
        self.forgotten: deque[str] = deque(maxlen=_FORGOTTEN_KEPT)
        self.jobs: dict[int, _Job] = {}

    def send(self, msg: Any) -> None:
        self.out.write(encode_frame(msg))
        self.out.flush()

    def dataset(self, key: str, descriptor: Any):
        from .shm import SharedDescriptor, attach_dataset

        path = descriptor["path"]
        hit = self.datasets.get(path)
        if hit is not None:
            self.datasets.move_to_end(path)
            return hit[1]
        desc = msgspec.convert(descriptor, SharedDescriptor)
        ds = attach_dataset(desc)
        if desc.path not in self.forgotten:  # a forgotten one serves this job only
            self.datasets[desc.path] = (key, ds)
            while len(self.datasets) > _DATASETS_KEPT:
                self.datasets.popitem(last=False)
        return ds

    def add_job(self, job_id: int, spec: dict, keep: bool = True) -> _Job:
        from .._core.jobs import job_groups

        ds = self.dataset(spec["key"], spec["shared"])
        job = job_from_spec(spec)
        sweep = job.levels.prepare(ds, job.positions)
        job_ = _Job(sweep, job_groups(ds, job, sweep), job.config, job.mode)
        if keep:
            self.jobs[job_id] = job_
        return job_

    def eval(self, msg: dict) -> dict:
        job_id = msg["job"]
        spec = msg.get("spec")
        job = self.jobs.pop(job_id, None) if msg.get("last") else self.jobs.get(job_id)
        if job is None:
            if spec is None:
                return {"ok": False, "error": f"unknown job {job_id} (no spec was sent)"}
            job = self.add_job(job_id, spec, keep=not msg.get("last"))
            scanned = 1
        else:
            scanned = 0
        a, b = msg["span"]
        metrics, exits, skipped = job.sweep.run(job.groups, job.config, job.mode,
                                                (int(a), int(b)))
        return {"ok": True, "m": pack_array(metrics), "e": pack_array(exits),
                "s": pack_array(skipped), "scan": scanned}

    def handle(self, msg: dict) -> None:
        op = msg.get("op")
        if op == "eval":
            try:
                reply = self.eval(msg)
            except FileNotFoundError as e:
                # The dataset was dropped after this span was sent (its request
                # was cancelled or the daemon is stopping): expected, no trace.
                reply = {"ok": False, "error": f"dataset file is gone: {e.filename}"}
            except Exception as e:  # the request fails, this process carries on
                traceback.print_exc(file=sys.stderr)
                reply = {"ok": False, "error": f"{type(e).__name__}: {e}"}
            self.send(reply)
        elif op == "drop_job":
            self.jobs.pop(msg["job"], None)
        elif op == "forget":
            for path, (key, _) in list(self.datasets.items()):
                if key == msg["key"]:
                    del self.datasets[path]
                    self.forgotten.append(path)
        else:
            _log(f"unknown op {op!r} ignored")


def _log(text: str) -> None:
    sys.stderr.write(f"optimizer-worker pool process {os.getpid()}: {text}\n")
    sys.stderr.flush()


_NICENESS = 5


def _die_with_parent() -> None:
    """Linux: get SIGKILL when the daemon dies, even by SIGKILL (no orphans)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except Exception:  # pragma: no cover - best effort; EOF on stdin still ends us
        return
    if os.getppid() != int(os.environ.get("OPTIMIZER_WORKER_PARENT_PID", os.getppid())):
        os._exit(0)  # the parent died before prctl took effect


def main() -> int:
    # The daemon decides when we stop: Ctrl-C in a terminal goes to it, not us.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent()
    # Grid work yields the CPU to the daemon's own event loop: with every core
    # busy in the pool, ping and cancel must still be answered at once.
    os.nice(_NICENESS)
    # Frames get private fds; fd 1 becomes stderr and fd 0 /dev/null.
    out_fd, in_fd = os.dup(1), os.dup(0)
    os.dup2(2, 1)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    out = os.fdopen(out_fd, "wb")
    inp = os.fdopen(in_fd, "rb")

    from .._run.warm import warm_kernels

    t = time.perf_counter()
    warm_s = warm_kernels()
    import numba

    server = _Server(out)
    try:
        server.send({"op": "ready", "pid": os.getpid(), "warm_s": warm_s,
                     "start_s": time.perf_counter() - t,
                     "numba_threads": int(numba.config.NUMBA_NUM_THREADS)})
        while True:
            msg = read_frame(inp)
            if msg is None:
                return 0  # EOF: the daemon closed the pool (or died)
            server.handle(msg)
    except BrokenPipeError:
        return 0  # the daemon is gone


if __name__ == "__main__":
    sys.exit(main())
