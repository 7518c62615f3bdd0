"""End to end with the process pool: progress, cancel, a pool process killed
or stopped mid-request (its span retried elsewhere), and every way of
stopping (EOF, SIGTERM, shutdown) leaving no process behind. Long work is
a large grid on a dataset loaded from Parquet; assertions are about order
and outcome, never about elapsed time."""

from __future__ import annotations

import os
import signal

import pytest

from tests._daemon import Daemon, pid_alive

# About 200 million call x grid-point evaluations: seconds of pool work.
LONG_GRID = {"tp_mults": [round(1.1 + 0.1 * i, 2) for i in range(50)],
             "sl_mults": [round(0.5 + 0.01 * i, 2) for i in range(40)],
             "max_hold_hrs": list(range(1, 51))}


def start(files, *extra: str) -> Daemon:
    d = Daemon("--pool-size", "2", "--local-evaluations", "0", *extra)
    d.client.result("loadDataset", {"dataset_id": "big", **files})
    return d


def first_report(client, token):
    return client.wait_for(
        lambda: next((n for n in client.notifications if n["method"] == "$/progress"
                      and n["params"]["token"] == token and n["params"]["value"]["kind"] == "report"
                      and n["params"]["value"]["done"] > 0), None), "a progress report")


@pytest.fixture(scope="module")
def daemon(files):
    d = start(files)
    yield d
    d.kill()


def test_progress_begin_reports_end_then_response(daemon):
    c = daemon.client
    rid = c.send("optimize", {"dataset_id": "big", "param_grid": {"tp_mults": [1.5, 2, 3],
                              "sl_mults": [0.8, 0.9], "max_hold_hrs": list(range(1, 200))},
                              "progress_token": "p1"})
    c.response(rid)
    events = [n["params"]["value"] for n in c.notifications if n["params"].get("token") == "p1"]
    kinds = [e["kind"] for e in events]
    assert kinds[0] == "begin" and kinds[-1] == "end" and set(kinds[1:-1]) <= {"report"}
    assert events[-1]["done"] == events[-1]["total"] == 3 * 2 * 199
    done = [e["done"] for e in events]
    assert done == sorted(done)
    # The end notification arrives before the response.
    assert c.order.index("n:$/progress") < c.order.index(rid)
    last_end = max(i for i, x in enumerate(c.order) if x == "n:$/progress")
    assert last_end < c.order.index(rid)
    reports = [e["elapsed_ms"] for e in events if e["kind"] == "report"]
    assert all(b - a >= 90 for a, b in zip(reports, reports[1:]))  # ~10 a second at most


def test_ping_is_answered_while_a_long_grid_runs_and_cancel_stops_it(daemon):
    c = daemon.client
    rid = c.send("optimize", {"dataset_id": "big", "param_grid": LONG_GRID, "progress_token": "long"})
    first_report(c, "long")
    ping = c.send("ping")
    c.response(ping)
    cancel = c.call("cancel", {"id": rid})
    assert cancel["result"] == {"cancelled": True}
    err = c.response(rid)["error"]
    assert err["code"] == -32800
    assert c.order.index(ping) < c.order.index(rid)  # ping did not wait for the grid
    # The pool is free again: a small request goes through at once.
    small = c.result("optimize", {"dataset_id": "big", "param_grid": {"tp_mults": [2], "sl_mults": [0.9]}})
    assert small["params_evaluated"] == 1
    assert c.call("cancel", {"id": rid})["result"] == {"cancelled": False}


def test_cancel_request_notification(daemon):
    c = daemon.client
    rid = c.send("optimizePerCaller", {"dataset_id": "big", "param_grid": LONG_GRID,
                                       "progress_token": "pc"})
    first_report(c, "pc")
    c.send("$/cancelRequest", {"id": rid}, notify=True)
    assert c.response(rid)["error"]["code"] == -32800


def test_killed_pool_process_is_replaced_and_its_span_retried(daemon):
    """A pool process killed mid-request: its span is retried on another
    process and the request succeeds, whole (no point silently missing)."""
    c = daemon.client
    before = c.result("stats")
    pids = before["pool_pids"]
    assert len(pids) == 2
    rid = c.send("optimize", {"dataset_id": "big", "param_grid": LONG_GRID, "progress_token": "k"})
    first_report(c, "k")
    os.kill(pids[0], signal.SIGKILL)  # seconds of work left: it is serving a span
    result = c.response(rid)["result"]
    assert result["params_evaluated"] == 50 * 40 * 50 and result["best_params"] is not None
    events = [n["params"]["value"] for n in c.notifications if n["params"].get("token") == "k"]
    assert events[-1]["done"] == events[-1]["total"] == 50 * 40 * 50
    stats = c.result("stats")
    assert stats["pool_restarts"] == before["pool_restarts"] + 1
    assert pids[0] not in stats["pool_pids"] and not pid_alive(pids[0])
    assert c.result("ping") == {}


def test_stopped_pool_process_is_replaced_after_the_stall_timeout(files):
    """SIGSTOP a pool process mid-request: after ``--stall-timeout`` (short
    here) it is killed, reaped and replaced, its span retried; stats counts
    the stall and the request completes."""
    d = start(files, "--stall-timeout", "5")
    stopped = None
    try:
        c = d.client
        pids = c.result("stats")["pool_pids"]
        assert c.result("stats")["pool_stalled"] == 0
        rid = c.send("optimize", {"dataset_id": "big", "param_grid": LONG_GRID,
                                  "progress_token": "s"})
        first_report(c, "s")
        stopped = pids[0]
        os.kill(stopped, signal.SIGSTOP)
        result = c.response(rid)["result"]
        assert result["params_evaluated"] == 50 * 40 * 50
        stats = c.result("stats")
        assert stats["pool_stalled"] == 1 and stats["pool_span_retries"] == 1
        assert stats["pool_restarts"] == 1 and stopped not in stats["pool_pids"]
        assert not pid_alive(stopped)  # killed and reaped, not left stopped
        others = stats["pool_pids"]
        assert c.result("shutdown") == {}
        assert d.wait() == 0
        assert not any(pid_alive(p) for p in [*pids, *others])
    finally:
        if stopped is not None and pid_alive(stopped):
            os.kill(stopped, signal.SIGKILL)
        d.kill()


@pytest.mark.parametrize("how", ["eof", "sigterm", "shutdown"])
def test_every_way_of_stopping_exits_0_with_no_orphans(files, how):
    d = start(files)
    try:
        c = d.client
        pids = c.result("stats")["pool_pids"]
        assert pids and all(pid_alive(p) for p in pids)
        if how == "eof":
            d.close_stdin()
        elif how == "sigterm":
            c.send("optimize", {"dataset_id": "big", "param_grid": LONG_GRID, "progress_token": "t"})
            first_report(c, "t")
            d.proc.send_signal(signal.SIGTERM)
        else:
            assert c.result("shutdown") == {}
        assert d.wait() == 0
        assert not any(pid_alive(p) for p in pids)
        assert not [f for f in os.listdir("/dev/shm") if f.startswith(f"optimizer-worker-{d.proc.pid}-")]
    finally:
        d.kill()


def test_without_a_pool_large_work_runs_in_spans_and_cancels(files):
    d = Daemon("--pool-size", "0")
    try:
        c = d.client
        c.result("loadDataset", {"dataset_id": "big", **files})
        rid = c.send("optimize", {"dataset_id": "big", "param_grid": LONG_GRID,
                                  "progress_token": "local"})
        first_report(c, "local")  # spans report progress: it runs in pieces
        assert c.call("cancel", {"id": rid})["result"] == {"cancelled": True}
        assert c.response(rid)["error"]["code"] == -32800
        small = c.result("optimize", {"dataset_id": "big", "param_grid": {"tp_mults": [2],
                                                                         "sl_mults": [0.9]}})
        assert small["params_evaluated"] == 1
        # Nothing about the cancelled request follows its -32800.
        after = c.order[c.order.index(rid) + 1:]
        assert "n:$/progress" not in after
    finally:
        d.kill()


def test_walk_forward_and_stress_lanes_on_the_pool_equal_the_library(daemon, files, tmp_path):
    """SPEC 12 through the pool: walkForward (every fold's train and test set,
    the PBO blocks and the full data as the groups of one job) and optimize
    with stress lanes and a plateau answer exactly what the library does
    in-process."""
    import json

    import msgspec

    import worker

    ds = worker.dataset_from_files(files["calls_path"], files["candles_path"])
    grid = {"tp_mults": [1.5, 2, 3], "sl_mults": [0.8, 0.9], "trail_pct": [None, 0.2]}
    wf = {"param_grid": grid, "folds": {"scheme": "cpcv", "n_groups": 4},
          "pbo": {"blocks": 4}, "rank_by": "plateau", "include_all": True}
    got = daemon.client.result("walkForward", {"dataset_id": "big", **wf})
    want = worker.walk_forward(ds, grid, folds=wf["folds"], pbo=wf["pbo"], rank_by="plateau",
                               include_all=True)
    assert got == json.loads(msgspec.json.encode(want))
    assert len(got["folds"]) == 6 and got["pbo"] is not None and got["stitched"] is None
    assert all(f["n_train"] + f["n_test"] + f["n_purged"] == 2_000 for f in got["folds"])

    # Stress lanes choose each fold's point (rank_by maximin on its train
    # calls); a checkpointed request ends with the walk-forward run directory.
    run_dir = tmp_path / "ckpt" / "wf"
    wf = {"param_grid": grid, "folds": {"scheme": "rolling", "train_days": 10,
                                        "test_days": 5},
          "stress": "basic", "rank_by": "maximin", "run_id": "wf",
          "checkpoint_dir": str(tmp_path / "ckpt")}
    got = daemon.client.result("walkForward", {"dataset_id": "big", **wf})
    want = worker.walk_forward(ds, grid, folds=wf["folds"], stress="basic", rank_by="maximin")
    assert got == json.loads(msgspec.json.encode(want))
    assert got["stitched"] is not None and set(got["full"]["top"][0]["lanes"]) == {
        "baseline", "worse"}
    assert json.loads((run_dir / "result.json").read_text()) == got
    assert (run_dir / "folds.csv").read_text().count("\n") == len(got["folds"]) + 1
    assert "Robustness" in (run_dir / "summary.md").read_text()

    stressed = {"param_grid": grid, "stress": "full", "rank_by": "maximin", "top_k": 3}
    got = daemon.client.result("optimize", {"dataset_id": "big", **stressed})
    want = worker.optimize(ds, grid, stress="full", rank_by="maximin", top_k=3)
    assert got == json.loads(msgspec.json.encode(want))
    assert set(got["top"][0]["lanes"]) == {"baseline", "worse", "ugly", "latency_1", "gaps"}


def test_strategy_searches_on_the_pool_equal_the_library(daemon, tmp_path):
    """SPEC 13 through the pool: a strategy's exit grid travels to the pool
    processes as its own kind of levels (``rengine.StrategyLevels``, rebuilt
    by ``kind``), with folds, a stress lane and per-symbol results, and the
    answer is the library's in-process one."""
    import json

    import msgspec

    import worker
    from tests.test_daemon_strategy import write_bars

    bars_dir = write_bars(tmp_path / "bars", n=1500)
    daemon.client.result("loadBars", {"bars_path": bars_dir, "dataset_id": "pool-bars"})
    search = {"strategy": "donchian_breakout", "strategy_grid": {"lookback": [3, 6, 12]},
              "timeframes": ["15m", "1h"],
              "param_grid": {"tp_r": [1, 2, 3], "sl_pct": [0.01, 0.02], "trail_r": [None, 1.5],
                             "entry_delay_candles": [0, 1]},
              "per_symbol": True, "stress": "basic", "rank_by": "maximin", "include_all": True,
              "folds": {"scheme": "rolling", "train_days": 6, "test_days": 3}}
    got = daemon.client.result("optimizeStrategy", {"dataset_id": "pool-bars", **search})
    lib = {("grid" if k == "param_grid" else k): v for k, v in search.items()}
    want = worker.optimize_strategy(worker.load_bars(bars_dir), **lib)
    assert got == json.loads(msgspec.json.encode(want))
    assert got["params_evaluated"] == 2 * 3 * 24 and got["folds"] and got["stitched"] is not None
    assert set(got["per_symbol_results"]) == {"BTC", "ETH", "SOL"}
