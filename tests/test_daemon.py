"""End to end: the real daemon as a subprocess, over stdio (SPEC 7)."""

from __future__ import annotations

import json
import subprocess
import sys

import msgspec
import numpy as np
import pytest

import worker
from tests._daemon import Daemon
from worker._data.synthetic import synthetic_dataset

GRID = {"tp_mults": [1.5, 2, 3], "sl_mults": [0.85, 0.9], "max_hold_hrs": [6, 48]}


def cli_payload(n_calls: int = 40, n_candles: int = 240, seed: int = 5) -> dict:
    """The earlier CLI's payload: calls + candles_by_call_id, timestamps in seconds."""
    ds = synthetic_dataset(n_calls=n_calls, n_candles=n_candles, n_callers=4, seed=seed)
    calls = [{"id": ds.call_ids[i], "caller": ds.caller_names[ds.call_caller[i]],
              "mint": ds.call_mints[i], "ts_ms": int(ds.call_ts_ms[i])} for i in range(ds.n_calls)]
    candles = {}
    for s, key in enumerate(ds.series_keys):
        lo, hi = ds.series_offsets[s], ds.series_offsets[s + 1]
        candles[key] = [{"timestamp": t / 1000, "open": o, "high": h, "low": lw, "close": c,
                         "volume": v} for t, o, h, lw, c, v in zip(
                             ds.ts_ms[lo:hi].tolist(), ds.open[lo:hi].tolist(),
                             ds.high[lo:hi].tolist(), ds.low[lo:hi].tolist(),
                             ds.close[lo:hi].tolist(), ds.volume[lo:hi].tolist())]
    return {"calls": calls, "candles_by_call_id": candles}


@pytest.fixture(scope="module")
def payload():
    return cli_payload()


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    d = Daemon("--pool-size", "1", "--max-message-bytes", "4000000", "--max-grid-points", "500",
               stderr_path=str(tmp_path_factory.mktemp("logs") / "stderr.log"))
    yield d
    d.kill()


@pytest.fixture(scope="module")
def loaded(daemon, payload):
    return daemon.client.result("loadDataset", {"dataset_id": "demo", **payload})


def test_initialize_and_ping(daemon):
    init = daemon.client.result("initialize", {"client": {"name": "tests"}})
    assert init["server"] == "optimizer-worker" and init["version"] == worker.__version__
    for method in ("ping", "loadDataset", "optimize", "optimizePerCaller", "groupedEval",
                   "cancel", "$/cancelRequest", "stats", "shutdown"):
        assert method in init["methods"]
    assert daemon.client.result("ping") == {}


def test_load_dataset_reports_counts(loaded, payload):
    assert loaded["dataset_id"] == "demo"
    assert loaded["calls"] == len(payload["calls"])
    assert loaded["candles"] == sum(len(v) for v in payload["candles_by_call_id"].values())
    assert loaded["dropped"] == {"count": 0, "keys": []}


def test_optimize_matches_the_library(daemon, loaded, payload):
    """The daemon's answer is the library's answer, field for field."""
    got = daemon.client.result("optimize", {"dataset_id": "demo", "param_grid": GRID,
                                            "top_k": 3, "include_all": True})
    ds = worker.dataset_from_rows(payload["calls"], payload["candles_by_call_id"])
    want = json.loads(msgspec.json.encode(worker.optimize(ds, GRID, top_k=3, include_all=True)))
    assert got == want


def test_earlier_cli_payload_works_unchanged(daemon, payload):
    """Inline data with the earlier scripts' field names, per caller and grouped."""
    req = {**payload, "param_grid": GRID, "simulator_config": {"initial_capital": 5000},
           "caller_groups": sorted({c["caller"] for c in payload["calls"]})[:3],
           "filter_collapsed": False, "filter_extreme": True}
    got = daemon.client.result("groupedEval", req)
    ds = worker.dataset_from_rows(payload["calls"], payload["candles_by_call_id"])
    want = worker.grouped_eval(ds, GRID, config={"initial_capital": 5000},
                               caller_groups=req["caller_groups"], filter_collapsed=False)
    assert got == json.loads(msgspec.json.encode(want))
    assert set(got) >= {"per_caller_results", "selected_callers", "grouped_params", "grouped_result"}


def test_small_work_reports_its_real_total(daemon, loaded):
    """Work small enough to run in one hop still says how much it did:
    begin, then end with done == total == the runs evaluated."""
    c = daemon.client
    rid = c.send("optimizePerCaller", {"dataset_id": "demo", "param_grid": GRID,
                                       "progress_token": "small"})
    per = c.response(rid)["result"]["per_caller_results"]
    events = [n["params"]["value"] for n in c.notifications if n["params"].get("token") == "small"]
    assert events[0]["kind"] == "begin" and events[-1]["kind"] == "end"
    assert events[-1]["done"] == events[-1]["total"] == len(per) * 12


def test_simulate_and_per_caller(daemon, loaded):
    sim = daemon.client.result("simulate", {"dataset_id": "demo",
                                            "params": {"tp_mult": 2, "sl_mult": 0.9}})
    assert sim["mode"] == "capital" and len(sim["completed_trades"]) == sim["trades_executed"]
    per = daemon.client.result("optimizePerCaller", {"dataset_id": "demo", "param_grid": GRID,
                                                     "mode": "per_trade"})
    assert sum(r["calls"] for r in per["per_caller_results"].values()) == loaded["calls"]


def test_list_stats_and_drop(daemon, payload):
    daemon.client.result("loadDataset", {"dataset_id": "tmp", **payload})
    listed = daemon.client.result("listDatasets")
    assert "tmp" in [d["dataset_id"] for d in listed["datasets"]]
    stats = daemon.client.result("stats")
    assert stats["datasets"] >= 1 and stats["pool_size"] == 1 and stats["requests_in_flight"] == 1
    dropped = daemon.client.result("dropDataset", {"dataset_id": "tmp"})
    assert dropped["dropped"] is True and dropped["bytes_freed"] > 0
    err = daemon.client.call("optimize", {"dataset_id": "tmp"})["error"]
    assert err["code"] == -32001 and "tmp" in err["message"]


BAD_REQUESTS = [
    # (params of optimize on the loaded dataset, code, path in error.data)
    ({"param_grid": {"sl_mults": [0.9, 1.0]}}, -32602, "$.param_grid.sl_mults[1]"),
    ({"param_grid": {"tp_mults": [1.0]}}, -32602, "$.param_grid.tp_mults[0]"),
    ({"param_grid": {"tp_mults": [2, 3, 2]}}, -32602, "$.param_grid.tp_mults[2]"),
    ({"param_grid": {"tp_mults": []}}, -32602, "$.param_grid.tp_mults"),
    ({"param_grid": {"tp_mults": "2"}}, -32602, "$.param_grid.tp_mults"),
    ({"paramgrid": {}}, -32602, "$"),
    ({"simulator_config": {"initial_capital": -1}}, -32602, "$.simulator_config.initial_capital"),
    ({"objective": "sortino"}, -32602, "$.objective"),
    ({"param_grid": {"tp_mults": list(np.arange(2, 30).tolist()),
                     "sl_mults": [0.5, 0.6, 0.7, 0.8, 0.9], "max_hold_hrs": [1, 2, 3, 4]}},
     -32003, "$.param_grid"),
]


@pytest.mark.parametrize("params, code, path", BAD_REQUESTS)
def test_bad_params_get_clear_errors(daemon, loaded, params, code, path):
    err = daemon.client.call("optimize", {"dataset_id": "demo", **params})["error"]
    assert err["code"] == code, err
    assert err["data"]["path"] == path, err
    assert daemon.client.result("ping") == {}  # still serving


def test_bad_data_names_the_series_index_and_rule(daemon, payload):
    bad = json.loads(json.dumps(payload))
    key = next(iter(bad["candles_by_call_id"]))
    bad["candles_by_call_id"][key][3]["low"] = -1.0
    err = daemon.client.call("loadDataset", bad)["error"]
    assert err["code"] == -32002
    assert err["data"]["key"] == key and err["data"]["index"] == 3
    bad["candles_by_call_id"][key][3]["low"] = bad["candles_by_call_id"][key][3]["close"]
    rows = bad["candles_by_call_id"][key]
    rows[4], rows[5] = rows[5], rows[4]  # unsorted candles
    err = daemon.client.call("loadDataset", bad)["error"]
    assert err["code"] == -32002 and err["data"]["rule"] == "strictly_increasing_ts"
    dup = {**payload, "calls": payload["calls"] + payload["calls"][:1]}
    err = daemon.client.call("loadDataset", dup)["error"]
    assert err["code"] == -32002 and payload["calls"][0]["id"] in err["message"]
    dropped = daemon.client.result("loadDataset", {**json.loads(json.dumps(payload)),
                                                   "candles_by_call_id": {**bad["candles_by_call_id"]},
                                                   "on_bad_series": "drop"})
    assert dropped["dropped"] == {"count": 1, "keys": [key]}


def test_json_rpc_errors_and_batches(daemon):
    c = daemon.client
    before = len(c.raw_lines)
    c.send_raw(b'{"jsonrpc": "2.0", "method": "ping", "id": 1\n')
    assert c.wait_for(lambda: any(json.loads(line).get("error", {}).get("code") == -32700
                                  for line in c.raw_lines[before:]), "parse error")
    assert c.call("nope", id="x")["error"]["code"] == -32601
    assert c.response(c.send("ping", id="str-id"))["id"] == "str-id"
    c.send("ping", notify=True)  # never answered
    n = len(c.batches)
    c.send_raw(json.dumps([{"jsonrpc": "2.0", "method": "ping", "id": "b1"},
                           {"jsonrpc": "2.0", "method": "ping"},
                           {"jsonrpc": "2.0", "method": "nope", "id": "b2"}, 1]).encode() + b"\n")
    batch = c.wait_for(lambda: c.batches[n] if len(c.batches) > n else None, "batch")
    by_id = {r["id"]: r for r in batch}
    assert by_id["b1"]["result"] == {} and by_id["b2"]["error"]["code"] == -32601
    assert by_id[None]["error"]["code"] == -32600 and len(batch) == 3
    c.send_raw(json.dumps([{"jsonrpc": "2.0", "method": "ping"}]).encode() + b"\n")
    assert c.result("ping") == {}  # an all-notification batch answered nothing before this
    assert len(c.batches) == n + 1


def test_line_over_the_limit_keeps_the_stream_usable(daemon):
    c = daemon.client
    big = json.dumps({"jsonrpc": "2.0", "method": "ping", "id": "big", "params": {"x": "y" * 5_000_000}})
    before = len(c.raw_lines)
    c.send_raw(big.encode() + b"\n")
    assert c.result("ping") == {}
    errors = [m for m in map(json.loads, c.raw_lines[before:]) if isinstance(m, dict)]
    too_long = [e for e in errors if e.get("error", {}).get("code") == -32600
                and e["error"]["data"]["limit"] == 4_000_000]
    assert too_long and too_long[0]["id"] is None


def test_stdout_carries_only_protocol(daemon, loaded):
    """Every line the daemon writes to stdout is a JSON-RPC message, and no
    other line is there: this test's own traffic (an answer, an error, a
    notification, progress and a run that logs a warning), whatever ran before."""
    c = daemon.client
    before = len(c.raw_lines)
    ids = [c.send("ping"), c.send("nope", {"x": 1}),
           c.send("optimize", {"dataset_id": "demo", "param_grid": GRID,
                               "caller_groups": ["nobody"], "progress_token": "stdout"})]
    c.send("ping", notify=True)
    for rid in ids:
        c.response(rid)
    last = c.call("ping")  # every line before its answer is in
    messages = [json.loads(line) for line in c.raw_lines[before:]]
    for m in messages:
        assert m["jsonrpc"] == "2.0" and ("id" in m or "method" in m)
    progress = [m["params"]["value"]["kind"] for m in messages if m.get("method") == "$/progress"]
    assert progress[0] == "begin" and progress[-1] == "end"
    answered = [m["id"] for m in messages if "method" not in m]
    assert sorted(answered) == sorted([*ids, last["id"]])
    assert len(messages) == len(answered) + len(progress)  # nothing else on stdout


def test_nan_price_is_rejected(daemon, payload):
    bad = json.loads(json.dumps(payload))
    key = next(iter(bad["candles_by_call_id"]))
    bad["candles_by_call_id"][key][2]["high"] = float("nan")  # json.dumps writes NaN
    line = json.dumps({"jsonrpc": "2.0", "id": "nan", "method": "loadDataset", "params": bad})
    c = daemon.client
    before = len(c.raw_lines)
    c.send_raw(line.encode() + b"\n")
    assert c.result("ping") == {}  # answered after the line before it
    # NaN is not JSON: the line is a parse error (a NaN that slipped through
    # another way would be a -32002 "finite_positive_price" from the loader).
    [err] = [m for m in map(json.loads, c.raw_lines[before:]) if "error" in m]
    assert err["id"] is None and err["error"]["code"] == -32700


def test_dataset_over_the_cache_budget_is_a_resource_limit(payload, tmp_path):
    d = Daemon("--pool-size", "0", "--cache-bytes", "1000")
    try:
        err = d.client.call("loadDataset", payload)["error"]
        assert err["code"] == -32003 and "budget" in err["message"]
        assert d.client.result("listDatasets")["datasets"] == []
    finally:
        d.kill()


def test_one_json_log_line_per_request_on_stderr(tmp_path, payload):
    log = tmp_path / "stderr.log"
    d = Daemon("--pool-size", "0", stderr_path=str(log))
    try:
        d.client.result("ping")
        d.client.call("optimize", {"dataset_id": "nope"})
        d.client.result("shutdown")
        assert d.wait() == 0
    finally:
        d.kill()
    events = [json.loads(line) for line in log.read_text().splitlines()]
    requests = [e for e in events if e.get("event") == "request"]
    assert [r["method"] for r in requests] == ["ping", "optimize", "shutdown"]
    assert requests[1]["outcome"] == "error" and requests[1]["code"] == -32001
    assert all("duration_ms" in r and "id" in r for r in requests)


def test_library_prints_cannot_reach_the_protocol_stream():
    """After claim_stdio, print() and raw writes to fd 1 land on stderr."""
    code = ("import os, sys\n"
            "from worker._daemon.transport import claim_stdio\n"
            "s = claim_stdio()\n"
            "print('noise from a library')\n"
            "os.write(1, b'raw fd 1 noise\\n')\n"
            "os.write(s._wfd, b'{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\\n')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, check=True)
    assert out.stdout == b'{"jsonrpc":"2.0","id":1,"result":{}}\n'
    assert b"noise from a library" in out.stderr and b"raw fd 1 noise" in out.stderr


def test_checkpoint_dir_that_cannot_be_used_is_invalid_params(daemon, loaded, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    err = daemon.client.call("optimize", {"dataset_id": "demo", "param_grid": GRID,
                                          "run_id": "r", "checkpoint_dir": str(blocker)})["error"]
    assert err["code"] == -32602 and err["data"]["path"] == "$.checkpoint_dir"
    err = daemon.client.call("optimize", {"dataset_id": "demo", "run_id": "r"})["error"]
    assert err["code"] == -32602 and err["data"]["path"] == "$.checkpoint_dir"


def test_unknown_caller_groups_names_are_logged(tmp_path, payload):
    log = tmp_path / "stderr.log"
    d = Daemon("--pool-size", "0", stderr_path=str(log))
    try:
        res = d.client.result("optimize", {**payload, "param_grid": GRID,
                                           "caller_groups": ["nobody"]})
        assert res["best_metrics"]["trades_executed"] == 0  # no calls take part
        d.client.result("shutdown")
        assert d.wait() == 0
    finally:
        d.kill()
    warnings = [json.loads(line) for line in log.read_text().splitlines()
                if "caller_groups" in line]
    assert warnings and warnings[0]["callers"] == ["nobody"] and warnings[0]["level"] == "warning"


@pytest.mark.parametrize("line", [
    b'{"jsonrpc":"2.0","id":"\xff","method":"ping"}',
    b'{"jsonrpc":"2.0","id":1,"method":"\xff"}',
    b'[{"jsonrpc":"2.0","id":"\xff","method":"ping"}]',
    b'{"jsonrpc":"2.0","id":"u","method":"dropDataset","params":{"dataset_id":"\xff"}}',
    b"[" * 100_000 + b"]" * 100_000,
    b'{"jsonrpc":"2.0","id":"deep","method":"ping","params":{"a":' + b"[" * 100_000
    + b"]" * 100_000 + b"}}",
], ids=["utf8-id", "utf8-method", "utf8-batch", "utf8-params", "deep", "deep-params"])
def test_hostile_lines_get_an_error_and_the_daemon_keeps_serving(daemon, line):
    c = daemon.client
    before = len(c.raw_lines)
    c.send_raw(line + b"\n")
    assert c.result("ping") == {}  # still alive, stream still usable
    replies = [json.loads(raw) for raw in c.raw_lines[before:]]
    errors = [r for r in replies if isinstance(r, dict) and "error" in r] + \
        [e for r in replies if isinstance(r, list) for e in r if "error" in e]
    assert errors and errors[0]["error"]["code"] in (-32700, -32600, -32602)
