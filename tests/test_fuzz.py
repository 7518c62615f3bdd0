"""Protocol fuzz (issue 9c): one real daemon over stdio gets ``N_LINES``
seeded lines (malformed and truncated JSON, invalid UTF-8, every params field
of every method set to a wrong value, odd ids, deep nesting, batches,
notifications, over-long lines), with a ``ping`` every ``PING_EVERY`` lines.
``expected`` works out from each line alone, by the JSON-RPC 2.0 rules (SPEC
7), what it must get: one answer per request id, none for a notification, one
array per batch with an answer per entry that is not a notification. That is
compared, as multisets, with every line the daemon wrote; each is a JSON-RPC
message, none is -32603, every ping is answered while the lines flow, and the
daemon still answers at the end (then exits 0 on EOF).
"""

from __future__ import annotations

import codecs
import copy
import json
import random
import sys
from collections import Counter
from typing import Any

import msgspec
import pytest

from protocol._messages import METHODS
from tests._daemon import Daemon
from worker._data.synthetic import synthetic_columns

N_LINES = 5_000
SEED = 9_2026
PING_EVERY = 10
WINDOW = 60  # lines sent before waiting for the last ping's answer
MAX_MESSAGE_BYTES = 1_000_000
INTERNAL_ERROR = -32603

# --- inputs ----------------------------------------------------------------


class Raw(bytes):
    """A JSON fragment written as is (it may be invalid on purpose)."""


def deep(n: int) -> Raw:
    return Raw(b"[" * n + b"]" * n)


BIG = b"1" + b"0" * 400  # 1e400 in digits
# Values for any field, by how they fail: valid JSON numbers at every edge
# (these reach the checks after decoding), other valid JSON, JSON that is
# not JSON, invalid UTF-8 inside a string, nesting deep and too deep.
NUMBERS = [Raw(v) for v in [
    b"1e400", b"-1e400", BIG, b"-" + BIG, b"1" + b"0" * 5000, b"1e308", b"-1e308", b"1.7e308",
    b"1e30", b"-1e30", b"1e15", b"1e16", b"4e-324", b"1e-400", b"-0", b"-0.0", b"0", b"-1",
    b"1", b"0.5", b"2", b"0.999999999999", b"1.0000000000000002", b"9007199254740993",
    b"18446744073709551616", b"-9223372036854775809", b"9223372036854775807",
    b"9223372036854775808", b"4611686018427387904", b"-4611686018427387904"]]
OTHERS = [Raw(v) for v in [
    b'"x"', b'""', rb'"\u0000"', b'"NaN"', b'"-Infinity"', b'"\xc3\xa9\xf0\x9f\x98\x80"', b'"."',
    b'"ckpt"', b'"a/b"', b'"tmp"', b'"capital"', b'"per_trade"', b'"mint"', b'"drop"',
    b'"final_capital"', b"true", b"false", b"null", b"[]", b"{}", b"[[[]]]", b"[1e400]",
    b"[null]", b'["a"]', b"[-0, 0.5, 2]", b"[1e308, 4e-324]", b'{"a":{"b":[1]}}', b'[{"a":1}]']]
NOT_JSON = [Raw(v) for v in [
    rb'"\ud800"', rb'"\udc00x"', b"NaN", b"Infinity", b"-Infinity", b"'x'", b"01", b"1.",
    b".5", b"+1", b"0x10", b"[1,]", b'{"a":1,}', b"tru"]]
BAD_UTF8 = [Raw(b'"\xff"'), Raw(b'"a\xc3"'), Raw(b'"\xed\xa0\x80"'), Raw(b'"\xc0\xaf"')]
DEEP = [deep(50), deep(300), deep(2_000)]
VALUES = [NUMBERS, OTHERS, NOT_JSON, BAD_UTF8, DEEP]
VALUE_WEIGHTS = [60, 25, 6, 6, 3]
BAD_VALUES = [v for group in VALUES for v in group]


def dataset() -> tuple[dict, dict]:
    """A tiny dataset as the CLI sends it: rows, and the same as columns."""
    c = synthetic_columns(n_calls=3, n_candles=12, n_callers=2, seed=3)
    calls = [{"id": i, "caller": k, "mint": m, "ts_ms": int(t)}
             for i, k, m, t in zip(c["ids"], c["callers"], c["mints"], c["ts_ms"].tolist())]
    cols = {f: c[f].tolist() for f in ("open", "high", "low", "close", "volume")}
    rows = {i: [] for i in c["ids"]}
    keys = [c["key_names"][k] for k in c["keys"].tolist()]
    for j, (key, t) in enumerate(zip(keys, c["candle_ts"].tolist())):
        rows[key].append({"timestamp": t / 1000, **{f: v[j] for f, v in cols.items()}})
    columnar = {"key": keys, "ts_ms": c["candle_ts"].tolist(), **cols}
    return {"calls": calls, "candles_by_call_id": rows}, {"calls": calls,
                                                          "candles_columnar": columnar}


ROWS, COLUMNS = dataset()
GRID = {"tp_mults": [1.5, 2.0], "sl_mults": [0.9], "max_hold_hrs": [6.0]}
RUN = {"run_id": "r1", "checkpoint_dir": "ckpt"}
BASES: dict[str, list[dict]] = {
    "initialize": [{"client": {"name": "fuzz"}}],
    "ping": [{}], "listDatasets": [{}], "stats": [{}],
    "loadDataset": [{"dataset_id": "tmp", **ROWS}, {"dataset_id": "tmp", **COLUMNS}],
    "dropDataset": [{"dataset_id": "tmp"}, {"dataset_id": "nope"}],
    "simulate": [{"dataset_id": "fz", "params": {"tp_mult": 2.0, "sl_mult": 0.9},
                  "include_trades": False}, {**ROWS, "params": {"tp_mult": 1.5, "sl_mult": 0.8}}],
    "optimize": [{"dataset_id": "fz", "param_grid": GRID, "top_k": 2},
                 {**COLUMNS, "param_grid": GRID, "progress_token": "p"},
                 {"dataset_id": "fz", "param_grid": GRID, **RUN}],
    "optimizePerCaller": [{"dataset_id": "fz", "param_grid": GRID}],
    "groupedEval": [{"dataset_id": "fz", "param_grid": GRID, "grouped_params": "optimize"}],
    "cancel": [{"id": 1}], "$/cancelRequest": [{"id": 1}], "shutdown": [{}],
}
WEIGHTS = {"simulate": 4, "optimize": 4, "optimizePerCaller": 3, "groupedEval": 3,
           "loadDataset": 3}  # the methods with the most fields (others: 1)
KEY = "<key>"  # a path step: some key of a dict field
SOURCE_FIELDS = {"calls", "candles_by_call_id", "candles_columnar", "calls_path", "candles_path"}
_NUMERIC = (msgspec.inspect.IntType, msgspec.inspect.FloatType)


def field_paths(info: Any, prefix: tuple = (), depth: int = 0) -> set[tuple]:
    """(path, numeric) for every field of a params type, nested structs, list
    items and dict values included; ``numeric`` when the field takes a number."""
    types = [t.type if isinstance(t, msgspec.inspect.Metadata) else t for t in (
        info.types if isinstance(info, msgspec.inspect.UnionType) else (info,))]
    if len(types) == 1 and isinstance(types[0], msgspec.inspect.UnionType):
        return field_paths(types[0], prefix, depth)  # Annotated[A | B, ...]
    found = {(prefix, any(isinstance(t, _NUMERIC) for t in types))} if prefix else set()
    for t in types:
        if depth >= 4:
            break
        if isinstance(t, msgspec.inspect.StructType):
            for f in t.fields:
                found |= field_paths(f.type, prefix + (f.name,), depth + 1)
        elif isinstance(t, msgspec.inspect.ListType):
            found |= field_paths(t.item_type, prefix + (0,), depth + 1)
        elif isinstance(t, msgspec.inspect.DictType):
            found |= field_paths(t.value_type, prefix + (KEY,), depth + 1)
    return found


PATHS = {name: sorted(field_paths(msgspec.inspect.type_info(METHODS.get(name, METHODS[
    "cancel"])[0])), key=repr) for name in BASES}


def put(obj: Any, path: tuple, value: Any) -> Any:
    """``obj`` with the value at ``path`` replaced (containers made as needed)."""
    if not path:
        return value
    head, rest = path[0], path[1:]
    if head == 0:
        items = list(obj) if isinstance(obj, list) and obj else [{}]
        items[0] = put(items[0], rest, value)
        return items
    d = dict(obj) if isinstance(obj, dict) else {}
    key = next(iter(d), "call-000000") if head == KEY else head
    d[key] = put(d.get(key, {}), rest, value)
    return d


def encode(obj: Any) -> bytes:
    if isinstance(obj, Raw):
        return bytes(obj)
    if isinstance(obj, dict):
        return b"{" + b",".join(encode(k) + b":" + encode(v) for k, v in obj.items()) + b"}"
    if isinstance(obj, list):
        return b"[" + b",".join(encode(v) for v in obj) + b"]"
    return json.dumps(obj, ensure_ascii=False).encode()


class Gen:
    """The seeded line generator."""

    def __init__(self, seed: int, checkpoint_dir: str) -> None:
        self.r = random.Random(seed)
        self.n = 0
        self.checkpoint_dir = checkpoint_dir  # absolute, in the test's tmp_path

    def new_id(self) -> Any:
        self.n += 1
        n, r = self.n, self.r
        return r.choice([
            1_000_000 + n, 1_000_000 + n, f"f{n}", -n, f"\u00e9\U0001f642{n}", f"\x00 {n}",
            " " * (n % 7) + str(n), "x" * 300 + str(n), 2**64 + n, 10**300 + n, -(10**300) - n,
            int(1.7e308) + n, None])

    def params(self, method: str) -> Any:
        r = self.r
        base = copy.deepcopy(r.choice(BASES[method]))
        if "checkpoint_dir" in base:
            base["checkpoint_dir"] = self.checkpoint_dir
        if method in ("cancel", "$/cancelRequest"):
            base["id"] = r.choice([1_000_000 + max(1, self.n - r.randrange(4)), f"f{self.n}", 7])
        if method == "shutdown":  # always invalid: a valid one would end the run
            return put(base, ("zz_unknown",), 1)
        if r.random() < 0.2:
            return base
        for _ in range(r.choice([1, 1, 1, 1, 2])):
            if r.random() < 0.1:
                base = put(base, (Raw(r.choice(BAD_UTF8 + [b'"zz"'])),), 1)
            else:
                paths = PATHS[method] or [(("zz",), False)]
                if "dataset_id" in base and r.random() < 0.8:  # not into another source
                    paths = [p for p in paths if p[0][0] not in SOURCE_FIELDS] or paths
                path, numeric = r.choice(paths)
                group = NUMBERS if numeric and r.random() < 0.8 else r.choices(
                    VALUES, VALUE_WEIGHTS)[0]
                base = put(base, path, r.choice(group))
        return base

    def request(self, *, notify: bool = False) -> dict:
        r = self.r
        method = r.choices(list(BASES), [WEIGHTS.get(m, 1) for m in BASES])[0]
        msg = {"jsonrpc": "2.0", "method": method}
        if r.random() < 0.9:
            msg["params"] = self.params(method)
        if not notify:
            msg["id"] = self.new_id()
        if r.random() < 0.15:  # break the envelope
            member = r.choice(["jsonrpc", "id", "method", "params" * (method != "shutdown")])
            msg[member] = r.choice(BAD_VALUES + [Raw(b'"1.0"'), Raw(b'"nope"'), Raw(b'"rpc.x"')])
        if r.random() < 0.1:
            msg.pop(r.choice(["jsonrpc", "method"]))
        if msg.get("method") == "shutdown" and "params" not in msg:
            msg["method"] = "shutdown-not"  # a valid shutdown would end the run
        return msg

    def line(self) -> bytes:
        r = self.r
        kind = r.choices(["request", "notification", "batch", "truncated", "garbage", "deep",
                          "blank", "long"], [55, 10, 14, 8, 6, 3, 3, 0.1])[0]
        if kind in ("request", "notification"):
            line = encode(self.request(notify=kind == "notification"))
        elif kind == "batch":
            entries = [self.entry() for _ in range(r.choice([0, 1, 2, 3, 5, 8]))]
            line = encode([entries] if r.random() < 0.1 else entries)
        elif kind == "truncated":
            whole = encode(self.request() if r.random() < 0.7 else [self.entry(), self.entry()])
            line = whole[:r.randrange(1, len(whole))]
        elif kind == "garbage":
            line = bytes(r.choice(b'{}[]",:0123456789.eE+-tfnul \t\\x\xff\xc3') for _ in range(
                r.randrange(1, 40)))
        elif kind == "deep":
            line = encode(r.choice([deep(r.choice([10, 500, 100_000])), {
                "jsonrpc": "2.0", "id": self.new_id(), "method": "initialize",
                "params": {"client": {"a": deep(r.choice([100, 500, 5_000]))}}}]))
        elif kind == "blank":
            line = r.choice([b" ", b"\t", b"\r", b"", b"  \r"])
        else:
            line = encode({"jsonrpc": "2.0", "id": self.new_id(), "method": "dropDataset",
                           "params": {"dataset_id": "y" * MAX_MESSAGE_BYTES}})
        return line + b"\r" if r.random() < 0.05 else line

    def entry(self) -> Any:
        r = self.r
        kind = r.choice(["request", "request", "notification", "value", "array"])
        if kind in ("request", "notification"):
            return self.request(notify=kind == "notification")
        return r.choice(BAD_VALUES) if kind == "value" else r.choice([Raw(b"[]"), Raw(b"[{}]")])


# --- what each line must get back -------------------------------------------

NULL = ("null",)


class Num(str):  # a JSON number as written
    pass


codecs.register_error("fuzzmark", lambda e: ("".join(
    chr(0x10FF00 + b) for b in e.object[e.start:e.end]), e.end))


def has(v: Any, lo: int, hi: int) -> bool:
    """Whether a string (or key) in ``v`` holds a character in [lo, hi]."""
    stack = [v]  # a loop, not recursion: ``v`` may be nested 500 deep
    while stack:
        v = stack.pop()
        if isinstance(v, dict):
            stack += [*v.keys(), *v.values()]
        elif isinstance(v, list):
            stack += v
        elif isinstance(v, str) and not isinstance(v, Num) and any(lo <= ord(c) <= hi for c in v):
            return True
    return False


def id_key(v: Any) -> tuple | None:
    """The id's identity, or None when it is not a valid id."""
    if v is None:
        return NULL
    if isinstance(v, Num):
        digits = v.lstrip("-")
        if not digits.isdigit() or len(digits) > 400 or abs(int(v)) > sys.float_info.max:
            return None
        return ("i", int(v))
    return ("s", v) if isinstance(v, str) else None


def entry_key(e: Any) -> tuple | None:
    """What a message gets: NULL, ("i"|"s", id), or None (nothing: a notification)."""
    if not isinstance(e, dict):
        return NULL
    if any(has(e[m], 0x10FF00, 0x10FFFF) for m in ("jsonrpc", "id", "method") if m in e):
        return NULL  # invalid UTF-8 inside an envelope member
    key = id_key(e["id"]) if "id" in e else NULL
    if (key is None or type(e.get("jsonrpc")) is not str or e["jsonrpc"] != "2.0"
            or type(e.get("method")) is not str or type(e.get("params", {})) not in (dict, list)):
        return key or NULL
    return key if "id" in e else None


def expected(line: bytes) -> list[tuple]:
    """The answers a line must get: ("single", key) or ("batch", sorted keys)."""
    if len(line) > MAX_MESSAGE_BYTES:
        return [("single", NULL)]
    body = line[:-1] if line.endswith(b"\r") else line
    if not body:
        return []
    try:
        msg = json.loads(body.decode("utf-8", "fuzzmark"), parse_int=Num, parse_float=Num,
                         parse_constant=lambda c: 1 / 0)
    except (ValueError, ZeroDivisionError, RecursionError):
        return [("single", NULL)]
    if has(msg, 0xD800, 0xDFFF) or msg == []:  # a lone surrogate escape (not JSON), no batch
        return [("single", NULL)]
    if not isinstance(msg, list):
        key = entry_key(msg) if isinstance(msg, dict) else NULL
        return [] if key is None else [("single", key)]
    keys = [k for k in map(entry_key, msg) if k is not None]
    return [("batch", tuple(sorted(keys)))] if keys else []


def response_key(r: Any, problems: list) -> tuple:
    ok_shape = (isinstance(r, dict) and r.get("jsonrpc") == "2.0" and "id" in r
                and ("result" in r) != ("error" in r) and type(r["id"]) in (str, int, type(None))
                and ("result" in r or type(r["error"].get("code")) is int
                     and isinstance(r["error"].get("message"), str)))
    if not ok_shape:
        problems.append(f"not a JSON-RPC response: {r!r:.300}")
        return ("bad", repr(r))
    return NULL if r["id"] is None else ("s" if isinstance(r["id"], str) else "i", r["id"])


def excerpt(line: bytes, key: tuple) -> bytes:
    """The part of ``line`` around the request with this id (a batch may be long)."""
    at = line.find(b'"id":' + encode(key[-1])) if key != NULL else -1
    start = max(0, line.rfind(b'{"jsonrpc"', 0, at) if at > 0 else 0)
    return line[start:start + 600]


# --- the test ----------------------------------------------------------------


@pytest.fixture
def daemon(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # relative paths fuzzed (checkpoint_dir, ...) land here
    d = Daemon("--pool-size", "1", "--max-grid-points", "400",
               "--max-message-bytes", str(MAX_MESSAGE_BYTES), stderr_path=str(tmp_path / "err"))
    yield d
    d.kill()


def test_fuzzed_lines_get_exactly_their_answers_and_never_an_internal_error(daemon, tmp_path):
    c = daemon.client
    assert c.result("loadDataset", {"dataset_id": "fz", **ROWS})["calls"] == 3
    start = len(c.raw_lines)
    gen, sent, pings = Gen(SEED, str(tmp_path / "ckpt")), [], []
    for i in range(N_LINES):
        if i % PING_EVERY == 0:
            pings.append(f"ping-{i}")
            sent.append(encode({"jsonrpc": "2.0", "id": pings[-1], "method": "ping"}))
            c.send_raw(sent[-1] + b"\n")
        sent.append(gen.line())
        c.send_raw(sent[-1] + b"\n")
        if i % WINDOW == WINDOW - 1:
            assert c.response(pings[-1])["result"] == {}
    assert c.call("ping", id="final-ping")["result"] == {}  # alive and answering at the end
    stats = c.call("stats", id="final-stats")["result"]
    assert stats["pool_alive"] == 1 and stats["datasets"] >= 1
    daemon.close_stdin()
    assert daemon.wait() == 0
    c.wait_closed()

    want_single = Counter({("s", "final-ping"): 1, ("s", "final-stats"): 1})
    want_batch, line_of = Counter(), {}
    for line in sent:
        for kind, key in expected(line):
            (want_single if kind == "single" else want_batch)[key] += 1
            for k in (key if kind == "batch" else [key]):
                line_of.setdefault(k, line)
    got_single, got_batch, problems, internal = Counter(), Counter(), [], []
    for raw in c.raw_lines[start:]:
        msg = msgspec.json.decode(raw)  # strict: every stdout line is JSON
        if isinstance(msg, dict) and "method" in msg:  # $/progress, $/checkpoint
            assert msg["jsonrpc"] == "2.0" and msg["method"] in ("$/progress", "$/checkpoint")
            continue
        responses = msg if isinstance(msg, list) else [msg]
        keys = [response_key(r, problems) for r in responses]
        internal += [(r["error"], line_of.get(k, b""), k) for r, k in zip(responses, keys)
                     if k[0] != "bad" and r.get("error", {}).get("code") == INTERNAL_ERROR]
        if isinstance(msg, list):
            got_batch[tuple(sorted(keys))] += 1
        else:
            got_single[keys[0]] += 1
    assert not problems, problems[:5]
    assert not internal, [f"{error} <- {excerpt(line, key)!r}" for error, line, key in internal[:10]]
    assert all(got_single[("s", p)] == 1 for p in pings)
    wrong = [(k, want_single[k], got_single[k], excerpt(line_of.get(k, b""), k))
             for k in want_single.keys() | got_single.keys() if want_single[k] != got_single[k]]
    assert not wrong, wrong[:10]
    assert got_batch == want_batch, (list((want_batch - got_batch).items())[:5],
                                     list((got_batch - want_batch).items())[:5])
