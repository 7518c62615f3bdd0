"""Soak test: many mixed requests to one daemon, watching its memory.

Starts the real daemon (``optimizer-worker serve``, stdio), loads a small
dataset, then sends ``--requests`` mixed requests pipelined with a bounded
window: ping, simulate, optimize on small grids (some small enough to stay in
the daemon, some sent to the pool), per-caller and grouped runs, listDatasets,
stats, bad requests (not JSON, unknown method, invalid params, bad ids, an
unknown dataset, an empty batch), ``cancel`` of finished ids, small batches,
``$/cancelRequest`` notifications and a few loadDataset/dropDataset cycles
with inline data. Every ``--sample-every`` requests it reads VmRSS from
/proc of the daemon and of its pool processes (its children), and at the end
prints the samples and the growth: the median of the last quarter of the
samples against the median of the first quarter, in MiB and %.

Exits 1 if any request got no answer (or an answer came for no request, or
an input got -32603), and 2 if the daemon died or did not exit 0 on
``shutdown``.

    python bench/soak.py [--requests 10000] [--quick] [--window 16] [--seed 1]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, deque

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from worker._data.synthetic import synthetic_columns  # noqa: E402

STALL_S = 120.0  # no answer at all for this long: stop waiting, report what is missing


def cli_payload(n_calls: int, n_candles: int, seed: int) -> dict:
    """calls + candles_by_call_id, as the TypeScript CLI sends them."""
    c = synthetic_columns(n_calls=n_calls, n_candles=n_candles, n_callers=5, seed=seed)
    calls = [{"id": i, "caller": k, "mint": m, "ts_ms": t}
             for i, k, m, t in zip(c["ids"], c["callers"], c["mints"], c["ts_ms"].tolist())]
    cols = [c[f].tolist() for f in ("candle_ts", "open", "high", "low", "close", "volume")]
    candles: dict[str, list] = {i: [] for i in c["ids"]}
    for key, t, o, h, lo, cl, v in zip(c["keys"].tolist(), *cols):
        candles[c["key_names"][key]].append(
            {"timestamp": t / 1000, "open": o, "high": h, "low": lo, "close": cl, "volume": v})
    return {"calls": calls, "candles_by_call_id": candles}


# --- memory ----------------------------------------------------------------

def rss_mib(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0.0


def children(pid: int) -> list[int]:
    found: set[int] = set()
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                found.update(int(p) for p in f.read().split())
    except FileNotFoundError:
        pass
    return sorted(found)


# --- the client ------------------------------------------------------------

class Soak:
    """Writes requests, a reader thread files the answers; ``window`` bounds
    the answers outstanding."""

    def __init__(self, proc: subprocess.Popen, window: int) -> None:
        self.proc = proc
        self.window = window
        self.cond = threading.Condition()
        self.pending: dict[object, str] = {}  # id -> kind, until answered
        self.null_expected = self.null_got = 0
        self.outstanding = 0
        self.sent = self.answered = self.notifications = 0
        self.finished: deque = deque(maxlen=500)  # answered ids, for cancel
        self.codes: Counter = Counter()
        self.anomalies: list[str] = []
        self.closed = False
        self.last_answer = time.monotonic()
        self._ids = iter(range(1, 1 << 62))
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for raw in iter(self.proc.stdout.readline, b""):
            msg = json.loads(raw)
            with self.cond:
                for r in msg if isinstance(msg, list) else [msg]:
                    if "id" not in r:
                        continue  # a notification ($/progress)
                    code = r["error"]["code"] if "error" in r else "ok"
                    if r["id"] is None:
                        self.null_got += 1
                        kind = "bad request (id null)"
                    else:
                        kind = self.pending.pop(r["id"], None)
                        if kind is None:
                            self.anomalies.append(f"answer for no request: {raw[:200]!r}")
                            continue
                        self.finished.append(r["id"])
                        if kind == "cancel" and r.get("result", {}).get("cancelled"):
                            self.anomalies.append(f"cancel of a finished id cancelled: {r}")
                    self.codes[(kind, code)] += 1
                    self.outstanding -= 1
                    self.answered += 1
                self.last_answer = time.monotonic()
                self.cond.notify_all()
        with self.cond:
            self.closed = True
            self.cond.notify_all()

    def next_id(self) -> int:
        return next(self._ids)

    def send(self, line: bytes, ids: dict[object, str], nulls: int = 0) -> None:
        """Send one line, expecting answers for ``ids`` (id -> kind) and
        ``nulls`` answers with a null id; waits while the window is full."""
        with self.cond:
            self.cond.wait_for(lambda: self.outstanding < self.window or self.closed)
            if self.closed:
                raise SystemExit("the daemon closed its stdout")
            self.pending.update(ids)
            self.null_expected += nulls
            self.outstanding += len(ids) + nulls
        self.proc.stdin.write(line + b"\n")
        self.proc.stdin.flush()

    def request(self, kind: str, method: str, params: dict | None = None) -> int:
        id_ = self.next_id()
        self.send(message(method, params, id_), {id_: kind})
        return id_

    def drain(self) -> bool:
        """Wait for every answer; False if they stopped coming."""
        with self.cond:
            while self.outstanding > 0 and not self.closed:
                self.cond.wait(timeout=5)
                if time.monotonic() - self.last_answer > STALL_S:
                    return False
            return self.outstanding == 0


def message(method: str, params: dict | None, id_: object = None) -> bytes:
    msg: dict = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        msg["params"] = params
    if id_ is not None:
        msg["id"] = id_
    return json.dumps(msg).encode()


# --- the mix -----------------------------------------------------------------

def grid(rng: random.Random, points: int) -> dict:
    tps = rng.sample([1.2, 1.5, 2.0, 2.5, 3.0, 4.0], min(points, 3))
    sls = rng.sample([0.7, 0.8, 0.85, 0.9], max(1, points // len(tps)))
    return {"tp_mults": tps, "sl_mults": sls, "max_hold_hrs": [rng.choice([6.0, 24.0, 48.0])]}


def send_one(s: Soak, rng: random.Random, kind: str) -> int:
    """Send one request of ``kind``; returns how many requests it counts as."""
    ds = {"dataset_id": "soak"}
    if kind in ("ping", "listDatasets", "stats"):
        s.request(kind, kind)
    elif kind == "simulate":
        s.request(kind, "simulate", {**ds, "include_trades": rng.random() < 0.3, "params": {
            "tp_mult": rng.choice([1.5, 2.0, 3.0]), "sl_mult": rng.choice([0.8, 0.9]),
            "max_hold_hrs": rng.choice([6.0, 24.0])}})
    elif kind in ("optimize", "optimize (pool)"):  # 1-2 points stay local, 6-9 go to the pool
        points = rng.choice([1, 2]) if kind == "optimize" else rng.choice([6, 9])
        s.request(kind, "optimize", {**ds, "param_grid": grid(rng, points), "top_k": 3})
    elif kind in ("optimizePerCaller", "groupedEval"):
        s.request(kind, kind, {**ds, "param_grid": grid(rng, 4)})
    elif kind == "cancel":
        s.request(kind, "cancel", {"id": rng.choice(s.finished) if s.finished else 0})
    elif kind == "notification":
        s.send(message("$/cancelRequest", {"id": rng.choice(s.finished) if s.finished else 0}), {})
        s.notifications += 1
    elif kind == "batch":
        ids = [s.next_id() for _ in range(3)]
        line = b"[" + b",".join([message("ping", None, ids[0]), message("stats", None, ids[1]),
                                 message("noSuchMethod", None, ids[2])]) + b"]"
        s.send(line, dict(zip(ids, ["batch ping", "batch stats", "batch bad"])))
        return 3
    else:
        bad = rng.randrange(7)
        id_ = s.next_id()
        if bad == 0:
            s.send(b'{"jsonrpc": "2.0", "method": "ping", "id": ', {}, nulls=1)  # not JSON
        elif bad == 1:
            s.send(message("noSuchMethod", {}, id_), {id_: "bad: unknown method"})
        elif bad == 2:
            s.send(message("simulate", {**ds, "params": {"tp_mult": 2.0, "sl_mult": 1.5}}, id_),
                   {id_: "bad: invalid params"})
        elif bad == 3:
            s.send(b'{"jsonrpc": "2.0", "method": "ping", "id": 1.5}', {}, nulls=1)
        elif bad == 4:
            s.send(b'{"jsonrpc": "1.0", "method": "ping", "id": %d}' % id_, {id_: "bad: jsonrpc"})
        elif bad == 5:
            s.send(message("simulate", {"dataset_id": "nope", "params": {
                "tp_mult": 2.0, "sl_mult": 0.9}}, id_), {id_: "bad: unknown dataset"})
        else:
            s.send(b"[]", {}, nulls=1)
    return 1


MIX = {"ping": 28, "simulate": 14, "optimize": 10, "optimize (pool)": 4, "optimizePerCaller": 2,
       "groupedEval": 2, "listDatasets": 7, "stats": 7, "cancel": 7, "notification": 2,
       "batch": 3, "bad": 12}


# --- main ------------------------------------------------------------------

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, help="requests to send (default 10,000)")
    ap.add_argument("--quick", action="store_true", help="1,500 requests (unless --requests)")
    ap.add_argument("--window", type=int, default=16, help="answers outstanding at most")
    ap.add_argument("--sample-every", type=int, help="requests between RSS samples "
                                                    "(default: requests / 20)")
    ap.add_argument("--cycles", type=int, default=5, help="loadDataset/dropDataset cycles")
    ap.add_argument("--pool-size", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    n = args.requests or (1_500 if args.quick else 10_000)
    every = args.sample_every or max(1, n // 20)
    rng = random.Random(args.seed)

    small = cli_payload(50, 600, seed=3)
    cycle = cli_payload(20, 300, seed=4)
    log = tempfile.NamedTemporaryFile(prefix="soak-", suffix=".log", delete=False)
    proc = subprocess.Popen(
        [sys.executable, "-m", "worker", "serve", "--pool-size", str(args.pool_size),
         "--local-evaluations", "200"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": ROOT})
    s = Soak(proc, args.window)
    s.request("loadDataset", "loadDataset", {"dataset_id": "soak", **small})
    if not s.drain() or s.codes[("loadDataset", "ok")] != 1:
        print(f"loading the dataset failed: {s.codes}; log: {log.name}")
        return 2
    s.sent = 1
    print(f"soak: {n:,} requests, window {args.window}, pool {args.pool_size}, dataset 50 calls "
          f"x 600 candles, {args.cycles} load/drop cycles of 20 x 300 (inline), seed {args.seed}")
    print(f"{'sent':>7} {'answered':>9} {'daemon MiB':>11} {'pool MiB':>9} {'procs':>5} "
          f"{'total MiB':>10}")

    samples: list[tuple[float, float]] = []

    def sample() -> None:
        pool = children(proc.pid)
        d, p = rss_mib(proc.pid), sum(rss_mib(c) for c in pool)
        samples.append((d, p))
        print(f"{s.sent:7d} {s.answered:9d} {d:11.1f} {p:9.1f} {len(pool):5d} {d + p:10.1f}",
              flush=True)

    kinds, weights = list(MIX), list(MIX.values())
    # Each cycle loads a dataset; the next one (or the end) drops it.
    cycles = [n * (k + 1) // (args.cycles + 1) for k in range(args.cycles)]
    loaded: str | None = None
    started = time.monotonic()
    sample()
    while s.sent < n:
        before = s.sent
        if cycles and s.sent >= cycles[0]:
            cycles.pop(0)
            if loaded:
                s.request("dropDataset", "dropDataset", {"dataset_id": loaded})
                s.sent += 1
            loaded = f"cycle-{args.cycles - len(cycles) - 1}"
            s.request("loadDataset", "loadDataset", {"dataset_id": loaded, **cycle})
            s.sent += 1
        else:
            s.sent += send_one(s, rng, rng.choices(kinds, weights)[0])
        if s.sent // every != before // every:
            sample()
    if loaded:
        s.request("dropDataset", "dropDataset", {"dataset_id": loaded})
        s.sent += 1
    complete = s.drain()
    elapsed = time.monotonic() - started
    sample()

    quarter = max(1, len(samples) // 4)
    print(f"\ngrowth, median of the last {quarter} samples vs the first {quarter}:")
    for name, values in (("daemon", [d for d, _ in samples]), ("pool", [p for _, p in samples]),
                         ("total", [d + p for d, p in samples])):
        first, last = statistics.median(values[:quarter]), statistics.median(values[-quarter:])
        pct = 100 * (last - first) / first if first else 0.0
        print(f"  {name:6s} {first:8.1f} -> {last:8.1f} MiB  ({last - first:+.1f} MiB, {pct:+.1f}%)")

    missing = list(s.pending.items())
    internal = sum(v for (_, code), v in s.codes.items() if code == -32603)
    print(f"\n{s.answered:,} answers to {s.sent:,} requests ({s.notifications} of them "
          f"notifications, never answered) in {elapsed:.1f} s ({s.sent / elapsed:,.0f} "
          f"requests/s); answers with a null id: {s.null_got} of {s.null_expected} expected")
    for (kind, code), count in sorted(s.codes.items(), key=lambda kv: (kv[0][0], str(kv[0][1]))):
        print(f"  {kind:24s} {str(code):>7s} {count:7,d}")
    for note in s.anomalies[:10]:
        print("anomaly:", note)
    failed = bool(missing) or not complete or s.null_got != s.null_expected or bool(
        s.anomalies) or internal > 0
    if missing:
        print(f"NO ANSWER for {len(missing)} requests, e.g. {missing[:5]}")

    pool = children(proc.pid)
    s.request("shutdown", "shutdown")
    try:
        code = proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        code = None
    left = [p for p in pool if os.path.exists(f"/proc/{p}") and rss_mib(p) > 0]
    print(f"shutdown: exit code {code}, pool processes left: {left or 'none'}")
    if code != 0 or left or failed:
        print(f"daemon log: {log.name}")
        return 2 if code != 0 or left else 1
    os.unlink(log.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
