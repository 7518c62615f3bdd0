"""SPEC section 9, every figure, on data sets A and B, through the daemon.

Builds A (the demo generator, ``worker._data.synthetic``, seed 1) and B
(``bench/gen_b.py``, seed 1), writes each as Parquet twice (as ``demo
--write-files`` writes it, and with pyarrow's default writer options), then
for each starts the real daemon (``python -m worker serve``, stdio), loads the
data set once from Parquet and measures, each figure next to its baseline
taken in this same run:

- default grid (30 points, capital mode) against one numpy pass over the
  ``high`` and ``low`` columns (``high.max()``, ``low.min()``, as
  ``bench_core.py``), in this process, on the same arrays: <= 1.5x;
- a 20 x 20 x 10 grid (4,000 points): call x grid-point evaluations/s, >= 40 M/s;
- memory: what the daemon and its pool hold for the data set, counted once,
  against its raw int64/float64 column bytes (6 candle columns + call times):
  <= 1.3x; and what a 4,000-point grid run adds at its peak;
- ``loadDataset`` of both files against ``pq.read_table`` of the same files
  (<= 1.5x) and against ``worker.dataset_from_files`` in this process (<= 1.2x).

Then, on a fresh daemon with a 100-call data set (as ``bench_daemon.py``):
warm ``ping`` (< 0.3 ms; baseline: a Python echo process over the same
pipes), a 100-call 30-point ``optimize`` (< 2 ms; baseline: ``worker.optimize``
in this process) and the first ``optimize`` after start (no compile).

Memory is counted from ``/proc/PID/smaps`` of the daemon and of its pool
processes: the shared dataset files (``optimizer-worker-*``) once each, at
their full size, mapped or not (a tmpfs page not yet touched through a
mapping still holds memory), plus the Pss of every other mapping that is not
a file on disk (heap, allocator arenas, stacks, other tmpfs or memfd memory:
pool processes are fresh interpreters, so these pages are private and Pss
counts them once). Libraries and input files mapped from disk are left out:
they are page cache, alike before and after the load, and their Pss moves
with unrelated processes mapping the same libraries. "Held" is the total
after the load and a pool grid run minus the total before the load.

    python bench/bench_spec9.py [--quick] [--runs N] [--calls 10000]

Exit code 0 whatever the figures say (FAIL lines are results); 1 on errors.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass

import numpy as np
import pyarrow.parquet as pq

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

import worker  # noqa: E402
from bench_core import BIG_GRID  # noqa: E402
from bench_core import median_seconds as median_time  # noqa: E402
from bench_daemon import StdioClient  # noqa: E402
from gen_b import gen_b_dataset, write_parquet  # noqa: E402
from worker._data.synthetic import synthetic_dataset  # noqa: E402

MiB = 2**20
LEVELS = sum(len(v) for v in BIG_GRID.values())     # distinct levels of the 4,000-point grid
ECHO = "import sys\nfor line in sys.stdin.buffer:\n    sys.stdout.buffer.write(line); sys.stdout.buffer.flush()"


@dataclass
class Figure:
    key: str            # "A default grid", ...
    value: float
    unit: str
    baseline: str
    ratio: float | None
    target: str
    ok: bool | None     # None: information only

    def line(self) -> str:
        ratio = f"{self.ratio:7.2f}x" if self.ratio is not None else "      -"
        verdict = "-" if self.ok is None else ("PASS" if self.ok else "FAIL")
        return (f"{self.key:<36} {self.value:9.3f} {self.unit:<4} | {self.baseline:<42} | "
                f"{ratio} | {self.target:<17} | {verdict}")


def emit(figs: list[Figure], f: Figure) -> None:
    figs.append(f)
    print(f.line(), flush=True)


# --- the daemon and its memory ---------------------------------------------

class Daemon:
    """The real daemon over stdio; ``root``: run the ``worker`` package of
    another source tree (a baseline revision, ``bench_spec11.py``)."""

    def __init__(self, tmp: str, tag: str, root: str | None = None) -> None:
        self.log_path = os.path.join(tmp, f"daemon-{tag}.log")
        self.log = open(self.log_path, "wb")
        self.t0 = time.perf_counter()
        env = None if root is None else {**os.environ, "PYTHONPATH": root}
        self.proc = subprocess.Popen([sys.executable, "-m", "worker", "serve", "--log-level", "warning"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log,
                                     cwd=root, env=env)
        self.client = StdioClient(self.proc)

    def call(self, method: str, params: dict | None = None) -> dict:
        return self.client.call(method, params)

    def timed(self, method: str, params: dict | None = None) -> float:
        return self.client.timed(method, params)

    def pids(self) -> list[int]:
        pids = {self.proc.pid, *self.call("stats")["pool_pids"]}
        for task in os.listdir(f"/proc/{self.proc.pid}/task"):
            with open(f"/proc/{self.proc.pid}/task/{task}/children") as f:
                pids.update(int(p) for p in f.read().split())
        return sorted(pids)

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.call("shutdown")
                self.proc.wait(30)
            except Exception:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def held_bytes(pids: list[int]) -> tuple[int, int, dict[int, int]]:
    """(total, of which shared dataset files, the rest by pid) over ``pids``:
    each dataset file's size once, plus the Pss of every mapping that is not
    a file on disk (module doc)."""
    by_pid, files = {}, {}
    for pid in pids:
        other = 0
        try:
            with open(f"/proc/{pid}/smaps") as f:
                path, size = "", 0
                for line in f:
                    head = line.split(None, 6)
                    if "-" in head[0] and head[0][0] in "0123456789abcdef":
                        lo, hi = head[0].split("-")
                        path, size = (head[5] if len(head) > 5 else ""), int(hi, 16) - int(lo, 16)
                    elif head[0] == "Pss:":
                        if "optimizer-worker-" in path:
                            files[path] = max(files.get(path, 0), size)
                        elif not path.startswith("/") or path.startswith(("/dev/shm", "/memfd:")):
                            other += int(head[1]) * 1024
        except FileNotFoundError:
            pass
        by_pid[pid] = other
    shared = sum(files.values())
    return sum(by_pid.values()) + shared, shared, by_pid


def peak_during(fn, pids: list[int]) -> tuple[int, float]:
    """Run ``fn`` while sampling ``held_bytes`` every ~20 ms: (peak, seconds)."""
    peak, done = [0], threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], held_bytes(pids)[0])
            done.wait(0.02)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    t0 = time.perf_counter()
    try:
        fn()
    finally:
        done.set()
        t.join()
    return peak[0], time.perf_counter() - t0


# --- one data set -------------------------------------------------------------

@dataclass
class DataSet:
    name: str
    n_calls: int
    n_candles: int
    high: np.ndarray
    low: np.ndarray
    files: dict             # style -> (calls_path, candles_path)

    @property
    def raw_bytes(self) -> int:
        return self.n_candles * 6 * 8 + self.n_calls * 8


def prepare(name: str, ds, tmp: str) -> DataSet:
    files = {}
    for style in ("worker", "pyarrow"):
        paths = (os.path.join(tmp, f"{name}-{style}-calls.parquet"),
                 os.path.join(tmp, f"{name}-{style}-candles.parquet"))
        write_parquet(ds, *paths, style=style)
        files[style] = paths
    return DataSet(name, ds.n_calls, ds.n_candles, ds.high.copy(), ds.low.copy(), files)


def bench_dataset(d: DataSet, tmp: str, args, figs: list[Figure]) -> None:
    n = d.name
    daemon = Daemon(tmp, n)
    try:
        daemon.call("ping")
        pids = daemon.pids()
        before, _, before_by = held_bytes(pids)
        calls, candles = d.files["worker"]
        daemon.call("loadDataset", {"dataset_id": "d", "calls_path": calls, "candles_path": candles})

        floor = median_time(lambda: (d.high.max(), d.low.min()), args.reps)
        default = median_time(lambda: daemon.call("optimize", {"dataset_id": "d"}), args.reps)
        emit(figs, Figure(f"{n} default grid (30 pts)", default * 1e3, "ms",
                          f"numpy pass {floor * 1e3:.2f} ms", default / floor, "<= 1.5x",
                          default / floor <= 1.5))

        pts = daemon.call("optimize", {"dataset_id": "d", "include_all": True})["all_results"]
        trades = statistics.median(p["metrics"]["trades_executed"] for p in pts)
        full = sum(p["metrics"]["skipped"]["max_positions"] > 0 for p in pts)
        emit(figs, Figure(f"{n} workload: default-grid trades", trades, "med",
                          f"of {d.n_calls:,} calls; account full at {full}/{len(pts)} pts",
                          None, "info", None))
        big_params = {"dataset_id": "d", "param_grid": BIG_GRID}
        big = median_time(lambda: daemon.call("optimize", big_params), args.big_reps)
        rate = d.n_calls * 4_000 / big / 1e6
        emit(figs, Figure(f"{n} 4,000-pt grid", rate, "M/s",
                          f"{big * 1e3:.0f} ms = {big / floor:.0f} numpy passes", rate / 40,
                          ">= 40 M/s", rate >= 40))

        pids = daemon.pids()
        held, shared, by = held_bytes(pids)
        mem = held - before
        grew = {p: (by[p] - before_by.get(p, 0)) / MiB for p in pids}
        pool = sum(v for p, v in grew.items() if p != daemon.proc.pid)
        emit(figs, Figure(f"{n} memory: dataset held", mem / MiB, "MiB",
                          f"raw {d.raw_bytes / MiB:.0f} MiB (shm {shared / MiB:.0f}, daemon "
                          f"{grew[daemon.proc.pid]:+.0f}, pool {pool:+.0f})",
                          mem / d.raw_bytes, "<= 1.3x", mem / d.raw_bytes <= 1.3))
        peak, _ = peak_during(lambda: daemon.call("optimize", big_params), pids)
        table = d.n_calls * LEVELS * 8
        added = max(0, peak - held)
        emit(figs, Figure(f"{n} memory: 4,000-pt grid adds", added / MiB, "MiB",
                          f"{len(pids)} procs x calls x {LEVELS} lv x 8 B", added / (len(pids) * table),
                          "<= 2x", added <= 2 * len(pids) * table))

        for style in ("worker", "pyarrow"):
            bench_load(daemon, d, style, args, figs)
    except Exception:
        daemon.proc.kill()
        daemon.proc.wait()
        sys.stderr.write(open(daemon.log_path, errors="replace").read()[-4000:])
        raise
    finally:
        daemon.close()


def bench_load(daemon: Daemon, d: DataSet, style: str, args, figs: list[Figure]) -> None:
    calls, candles = d.files[style]
    params = {"dataset_id": "tmp", "calls_path": calls, "candles_path": candles}
    t_read, t_lib, t_daemon = [], [], []
    for rep in range(args.load_reps + 1):     # rep 0 warms the page cache and the code
        t = time.perf_counter()
        tables = (pq.read_table(calls), pq.read_table(candles))
        t_read.append(time.perf_counter() - t)
        del tables
        t = time.perf_counter()
        ds = worker.dataset_from_files(calls, candles)
        t_lib.append(time.perf_counter() - t)
        del ds
        gc.collect()
        t_daemon.append(daemon.timed("loadDataset", params))
        daemon.call("dropDataset", {"dataset_id": "tmp"})
    read, lib, dmn = (statistics.median(x[1:]) for x in (t_read, t_lib, t_daemon))
    label = "demo --write-files" if style == "worker" else "pyarrow defaults"
    emit(figs, Figure(f"{d.name} loadDataset ({label})", dmn * 1e3, "ms",
                      f"pq.read_table {read * 1e3:.0f} ms", dmn / read, "<= 1.5x", dmn / read <= 1.5))
    emit(figs, Figure(f"{d.name} load vs in-process ({style})", dmn * 1e3, "ms",
                      f"dataset_from_files {lib * 1e3:.0f} ms", dmn / lib, "<= 1.2x", dmn / lib <= 1.2))


# --- latency ------------------------------------------------------------------

def bench_latency(small: tuple[str, str], small_ds, tmp: str, args, figs: list[Figure]) -> None:
    echo = subprocess.Popen([sys.executable, "-c", ECHO], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    msg = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "ping"}).encode() + b"\n"

    def echo_once() -> None:
        echo.stdin.write(msg)
        echo.stdin.flush()
        json.loads(echo.stdout.readline())

    echo_s = median_time(echo_once, args.pings, warm=20)
    echo.stdin.close()
    echo.wait()

    daemon = Daemon(tmp, "latency")
    try:
        daemon.call("ping")
        ready = time.perf_counter() - daemon.t0
        daemon.call("loadDataset", {"dataset_id": "s", "calls_path": small[0], "candles_path": small[1]})
        first = daemon.timed("optimize", {"dataset_id": "s"})
        ping = median_time(lambda: daemon.call("ping"), args.pings, warm=20)
        opt = median_time(lambda: daemon.call("optimize", {"dataset_id": "s"}), args.optimizes, warm=5)
        lib = median_time(lambda: worker.optimize(small_ds), args.optimizes, warm=5)
    finally:
        daemon.close()
    emit(figs, Figure("ping over stdio", ping * 1e3, "ms", f"echo process {echo_s * 1e3:.3f} ms",
                      ping / echo_s, "< 0.3 ms", ping < 0.3e-3))
    emit(figs, Figure("optimize 100 calls x 30 pts", opt * 1e3, "ms",
                      f"worker.optimize in-process {lib * 1e3:.3f} ms", opt / lib, "< 2 ms", opt < 2e-3))
    emit(figs, Figure("first optimize after start", first * 1e3, "ms",
                      f"warm median {opt * 1e3:.3f} ms", first / opt, "< 100 ms (no JIT)", first < 0.1))
    emit(figs, Figure("start to first answer", ready * 1e3, "ms", "(pool started, kernels loaded)",
                      None, "info", None))


# --- main -----------------------------------------------------------------------

def spread(all_figs: list[list[Figure]]) -> None:
    print(f"\nspread over {len(all_figs)} runs (value: min / median / max; ratio: median; PASS runs)")
    for i, f in enumerate(all_figs[0]):
        vals = [run[i].value for run in all_figs]
        ratios = [run[i].ratio for run in all_figs if run[i].ratio is not None]
        passes = sum(bool(run[i].ok) for run in all_figs)
        ratio = f"{statistics.median(ratios):7.2f}x" if ratios else "      -"
        verdict = "-" if f.ok is None else f"{passes}/{len(all_figs)} PASS"
        print(f"{f.key:<36} {min(vals):9.3f} / {statistics.median(vals):9.3f} / {max(vals):9.3f} "
              f"{f.unit:<4} | {ratio} | {f.target:<17} | {verdict}", flush=True)


def repeat_runs(runs: int, one_run) -> None:
    """``one_run(figs)`` ``runs`` times, then the spread when more than once."""
    all_figs = []
    for run in range(runs):
        print(f"-- run {run + 1} of {runs} (load average {os.getloadavg()[0]:.1f})", flush=True)
        figs: list[Figure] = []
        one_run(figs)
        all_figs.append(figs)
    if runs > 1:
        spread(all_figs)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="2,000 calls, fewer repetitions (< 1 min)")
    ap.add_argument("--runs", type=int, default=1, help="repeat the whole measurement N times")
    ap.add_argument("--calls", type=int, default=None, help="calls per data set (default 10,000)")
    ap.add_argument("--candles", type=int, default=2_880)
    args = ap.parse_args()
    q = args.quick
    args.calls = args.calls or (2_000 if q else 10_000)
    args.reps, args.big_reps, args.load_reps = (5, 2, 2) if q else (11, 5, 5)
    args.pings, args.optimizes = (500, 100) if q else (2_000, 300)
    span = 60.0 * args.calls / 10_000        # B keeps its density (calls per day)

    with tempfile.TemporaryDirectory(prefix="bench-spec9-") as tmp:
        t = time.perf_counter()
        a = prepare("A", synthetic_dataset(n_calls=args.calls, n_candles=args.candles, seed=1), tmp)
        ta = time.perf_counter() - t
        t = time.perf_counter()
        b = prepare("B", gen_b_dataset(args.calls, args.candles, seed=1, span_days=span), tmp)
        tb = time.perf_counter() - t
        gc.collect()
        small_ds = synthetic_dataset(n_calls=100, n_candles=2_880, n_callers=10, seed=2)
        small = (os.path.join(tmp, "s-calls.parquet"), os.path.join(tmp, "s-candles.parquet"))
        write_parquet(small_ds, *small)
        print(f"A: {args.calls:,} calls x {args.candles:,} candles, demo generator seed 1 "
              f"(built and written in {ta:.1f} s)")
        print(f"B: {args.calls:,} calls x {args.candles:,} candles, bench/gen_b.py seed 1, alerts over "
              f"{span:g} days (built and written in {tb:.1f} s)")
        all_figs = []
        for run in range(args.runs):
            print(f"-- run {run + 1} of {args.runs} (load average {os.getloadavg()[0]:.1f} on "
                  f"{os.cpu_count()} CPUs: other processes slow every figure)", flush=True)
            print(f"{'figure':<36} {'value':>9} {'unit':<4} | {'baseline (same run)':<42} | "
                  f"{'ratio':>8} | {'target':<17} | verdict", flush=True)
            figs: list[Figure] = []
            bench_latency(small, small_ds, tmp, args, figs)
            for d in (a, b):
                bench_dataset(d, tmp, args, figs)
            all_figs.append(figs)
        if args.runs > 1:
            spread(all_figs)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception:
        traceback.print_exc()
        sys.exit(1)
