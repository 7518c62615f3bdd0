"""End to end for SPEC 13 through the real daemon (a subprocess, over stdio):
``loadBars``, ``optimizeStrategy``, ``simulate`` with a strategy: answers
equal the library's, errors name their path, progress and cancel work as
for every long request."""

from __future__ import annotations

import contextvars
import json

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

from protocol import SimulateStrategyParams
from protocol._messages import SimulateParams
from tests._daemon import Daemon
from tests.test_daemon import cli_payload
from worker._daemon.strategy_methods import decode_simulate as _decode_simulate
from worker._errors import InvalidParams

SYMBOLS = ("BTC", "ETH", "SOL")
BASE_MS = 15 * 60_000
T0 = 1_700_000_000_000 - 1_700_000_000_000 % 86_400_000


def bar_table(n: int, seed: int) -> pa.Table:
    """``n`` seeded 15-minute bars: a random walk with wicks."""
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.004, n)))
    open_ = np.concatenate([[100.0], close[:-1]])
    high = np.maximum(open_, close) * (1 + rng.uniform(0, 0.003, n))
    low = np.minimum(open_, close) * (1 - rng.uniform(0, 0.003, n))
    return pa.table({"ts_ms": T0 + BASE_MS * np.arange(n, dtype=np.int64), "open": open_,
                     "high": high, "low": low, "close": close,
                     "volume": rng.uniform(1, 10, n)})


def write_bars(directory, n: int = 1500, bad: tuple[str, int] | None = None) -> str:
    """One ``<SYMBOL>.csv`` per symbol; ``bad``: (symbol, bar) whose high is
    made lower than its low."""
    directory.mkdir(parents=True, exist_ok=True)
    for k, symbol in enumerate(SYMBOLS):
        table = bar_table(n, seed=100 + k)
        if bad is not None and bad[0] == symbol:
            high = table.column("high").to_numpy().copy()
            high[bad[1]] = table.column("low").to_numpy()[bad[1]] * 0.5
            table = table.set_column(table.schema.get_field_index("high"), "high", pa.array(high))
        pacsv.write_csv(table, str(directory / f"{symbol}.csv"))
    return str(directory)


SMALL = {"strategy": "sma_cross", "strategy_grid": {"fast": [3, 5], "slow": [12, 20]},
         "timeframes": ["1h", "4h"],
         "param_grid": {"tp_r": [1.5, 3], "sl_pct": [0.01, 0.02], "max_hold_hrs": [24]}}


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    d = Daemon("--pool-size", "0", "--max-grid-points", "1000000",
               stderr_path=str(tmp_path_factory.mktemp("logs") / "stderr.log"))
    yield d
    d.kill()


@pytest.fixture(scope="module")
def bars_dir(tmp_path_factory):
    return write_bars(tmp_path_factory.mktemp("bars") / "ok")


@pytest.fixture(scope="module")
def bars(daemon, bars_dir):
    return daemon.client.result("loadBars", {"bars_path": bars_dir, "dataset_id": "bars"})


def error(daemon, method, params):
    resp = daemon.client.call(method, params)
    assert "error" in resp, resp
    return resp["error"]


# ------------------------------------------------------------ without the engine

def test_initialize_lists_the_strategy_methods(daemon):
    methods = daemon.client.result("initialize", {})["methods"]
    assert {"loadBars", "optimizeStrategy", "simulate"} <= set(methods)


BAD = [
    ({**SMALL, "timeframes": ["1h", "1x"]}, "$.timeframes[1]"),
    ({**SMALL, "timeframes": ["1h", "0m"]}, "$.timeframes[1]"),
    ({**SMALL, "timeframes": []}, "$.timeframes"),
    ({**SMALL, "param_grid": {"sl_pct": [0.02, 1.0]}}, "$.param_grid.sl_pct[1]"),
    ({**SMALL, "param_grid": {"tp_r": [0]}}, "$.param_grid.tp_r[0]"),
    ({**SMALL, "param_grid": {"trail_r": [None, -1]}}, "$.param_grid.trail_r[1]"),
    ({**SMALL, "param_grid": {"tp_mults": [2]}}, "$.param_grid"),
    ({**SMALL, "simulator_config": {"gap_fill": "close"}}, "$.simulator_config.gap_fill"),
    ({**SMALL, "strategy": ""}, "$.strategy"),
    ({**SMALL, "bars_path": ""}, "$.bars_path"),
    ({**SMALL, "folds": {"scheme": "rollin"}}, "$.folds.scheme"),
    ({**SMALL, "run_id": "r1"}, "$.checkpoint_dir"),
    ({k: v for k, v in SMALL.items() if k != "timeframes"}, "$"),
]


@pytest.mark.parametrize("params, path", BAD)
def test_bad_optimize_strategy_params_name_their_path(daemon, params, path):
    err = error(daemon, "optimizeStrategy", {"dataset_id": "nope", **params})
    assert err["code"] == -32602, err
    assert err["data"]["path"] == path, err
    assert daemon.client.result("ping") == {}


def test_folds_on_a_strategy_search(daemon, bars):
    """SPEC 12 on a strategy search: the answer gains walkForward's folds,
    aggregate and stitched run; folds that do not fit the bars name $.folds."""
    got = daemon.client.result("optimizeStrategy", {
        "dataset_id": "bars", **SMALL, "folds": {"scheme": "rolling", "train_days": 6,
                                                 "test_days": 3}})
    assert got["folds"] and {"median_test_objective", "efficiency"} <= set(got["aggregate"])
    assert all(f["test_windows"][0][0] == f["train_windows"][0][1] for f in got["folds"])
    err = error(daemon, "optimizeStrategy", {
        "dataset_id": "bars", **SMALL, "folds": {"scheme": "rolling", "train_days": 600,
                                                 "test_days": 300}})
    assert err["code"] == -32602 and err["data"]["path"].startswith("$.folds"), err


def test_no_bars_source_and_two_bars_sources(daemon, tmp_path):
    err = error(daemon, "optimizeStrategy", SMALL)
    assert (err["code"], err["data"]["path"]) == (-32602, "$.dataset_id")
    err = error(daemon, "optimizeStrategy", {**SMALL, "dataset_id": "a", "bars_path": str(tmp_path)})
    assert (err["code"], err["data"]["path"]) == (-32602, "$.bars_path")
    err = error(daemon, "optimizeStrategy", {**SMALL, "dataset_id": "nope"})
    assert err["code"] == -32001


def test_relative_bars_path_is_invalid(daemon):
    err = error(daemon, "loadBars", {"bars_path": "relative/bars"})
    assert (err["code"], err["data"]["path"]) == (-32602, "$.bars_path")


def test_calls_dataset_where_bars_are_expected(daemon):
    daemon.client.result("loadDataset", {"dataset_id": "calls", **cli_payload(n_calls=10)})
    err = error(daemon, "optimizeStrategy", {"dataset_id": "calls", **SMALL})
    assert (err["code"], err["data"]["path"]) == (-32602, "$.dataset_id")
    assert "loadBars" in err["message"]
    listed = daemon.client.result("listDatasets")
    assert [d["dataset_id"] for d in listed["datasets"]] == ["calls"]
    assert "calls" not in [b["dataset_id"] for b in listed["bars"]]


def decode_simulate(raw: bytes):
    """The handler's decoder, in a context of its own as a request's task
    has (it records what it decoded in ``validate.DECODED``)."""
    return contextvars.copy_context().run(_decode_simulate, raw)


def test_decode_simulate_tells_calls_from_a_strategy():
    calls = decode_simulate(json.dumps({"dataset_id": "d", "params": {"tp_mult": 2, "sl_mult": 0.9}}).encode())
    assert isinstance(calls, SimulateParams)
    strat = decode_simulate(json.dumps({"dataset_id": "b", "strategy": "sma_cross", "timeframe": "1h",
                                        "params": {"fast": 3, "slow": 12, "tp_r": 2}}).encode())
    assert isinstance(strat, SimulateStrategyParams)
    assert strat.params == {"fast": 3, "slow": 12, "tp_r": 2}
    assert strat.simulator_config is None  # the engine's default config: gap_fill "open"
    for raw, path in [({"strategy": "sma_cross", "timeframe": "2x", "params": {}}, "$.timeframe"),
                      ({"strategy": 3, "params": {}}, "$.strategy"),
                      ({"strategy": "sma_cross", "params": {}, "caller_groups": ["a"]}, "$"),
                      ({"params": {"tp_mult": 0.5, "sl_mult": 0.9}}, "$.params.tp_mult")]:
        with pytest.raises(InvalidParams) as exc:
            decode_simulate(json.dumps(raw).encode())
        assert exc.value.data["path"] == path, (raw, exc.value)


def test_strategy_simulator_config_defaults_to_open_gaps():
    from protocol import SimulatorConfig, StrategySimulatorConfig

    assert StrategySimulatorConfig().gap_fill == "open"
    assert SimulatorConfig().gap_fill == "level"  # call requests compute what they did


# ------------------------------------------------------------ bars (worker._data.bars)

def test_load_bars_from_a_directory(daemon, bars):
    assert bars["dataset_id"] == "bars"
    assert bars["symbols"] == list(SYMBOLS)
    assert bars["bars"] == 3 * 1500 and bars["bars_by_symbol"] == {s: 1500 for s in SYMBOLS}
    assert bars["base_interval_ms"] == {s: BASE_MS for s in SYMBOLS}
    assert bars["first_ts_ms"] == T0 and bars["last_ts_ms"] == T0 + 1499 * BASE_MS
    assert bars["bytes"] > 0
    listed = daemon.client.result("listDatasets")
    assert bars in listed["bars"]
    assert all(d["dataset_id"] != "bars" for d in listed["datasets"])
    stats = daemon.client.result("stats")
    assert stats["datasets"] == len(listed["datasets"]) + len(listed["bars"])
    assert listed["bytes"] == stats["bytes"] >= bars["bytes"]


def test_bars_where_calls_are_expected(daemon, bars):
    for method, extra in [("optimize", {}), ("simulate", {"params": {"tp_mult": 2, "sl_mult": 0.9}})]:
        err = error(daemon, method, {"dataset_id": "bars", **extra})
        assert (err["code"], err["data"]["path"]) == (-32602, "$.dataset_id"), err
        assert "loadDataset" in err["message"]


def test_load_bars_selects_symbols_and_drops(daemon, bars_dir):
    c = daemon.client
    info = c.result("loadBars", {"bars_path": bars_dir, "symbols": ["SOL", "BTC"]})
    assert info["symbols"] == ["BTC", "SOL"] and info["dataset_id"].startswith("ds-")
    dropped = c.result("dropDataset", {"dataset_id": info["dataset_id"]})
    assert dropped == {"dataset_id": info["dataset_id"], "dropped": True, "bytes_freed": info["bytes"]}
    err = error(daemon, "loadBars", {"bars_path": bars_dir, "symbols": ["BTC", "DOGE"]})
    assert err["code"] == -32602 and "DOGE" in err["message"], err


def test_bad_bars_name_the_symbol_and_row(daemon, tmp_path):
    path = write_bars(tmp_path / "bad", n=50, bad=("ETH", 17))
    err = error(daemon, "loadBars", {"bars_path": path})
    assert err["code"] == -32002, err
    assert '"ETH"' in err["message"] and "17" in err["message"], err
    assert daemon.client.result("ping") == {}


# ------------------------------------------------------------ strategies (worker._core.strategy)

def test_optimize_strategy_equals_the_library(daemon, bars, bars_dir):
    import worker

    got = daemon.client.result("optimizeStrategy", {"dataset_id": "bars", **SMALL, "include_all": True})
    # The library names the exit grid ``grid`` and the config ``config``, as
    # worker.optimize does.
    wire = {"param_grid": "grid", "simulator_config": "config"}
    lib = worker.optimize_strategy(worker.load_bars(bars_dir),
                                   **{wire.get(k, k): v for k, v in SMALL.items()},
                                   include_all=True)
    assert got == json.loads(msgspec.json.encode(lib))
    assert got["params_evaluated"] == len(got["all_results"])
    assert list(got["best_params"]) [:1] == ["timeframe"]
    assert got["signal_sets"]["evaluated"] + got["signal_sets"]["rejected"] == 2 * 2 * 2
    # The same from the files, for this request alone.
    again = daemon.client.result("optimizeStrategy", {"bars_path": bars_dir, **SMALL, "include_all": True})
    assert again == got


def test_optimize_strategy_reports_progress_then_answers(daemon, bars):
    c = daemon.client
    rid = c.send("optimizeStrategy", {"dataset_id": "bars", **SMALL, "progress_token": "s1"})
    result = c.response(rid)["result"]
    events = [n["params"]["value"] for n in c.notifications
              if n["method"] == "$/progress" and n["params"]["token"] == "s1"]
    assert [events[0]["kind"], events[-1]["kind"]] == ["begin", "end"]
    assert events[-1]["done"] == events[-1]["total"] > 0
    last = max(i for i, x in enumerate(c.order) if x == "n:$/progress")
    assert last < c.order.index(rid)
    assert result["params_evaluated"] > 0


def test_optimize_strategy_bad_timeframe_for_the_bars(daemon, bars):
    # 20m is not a multiple of the 15-minute base interval.
    err = error(daemon, "optimizeStrategy", {"dataset_id": "bars", **SMALL, "timeframes": ["1h", "20m"]})
    assert (err["code"], err["data"]["path"]) == (-32602, "$.timeframes[1]"), err


LONG = {"strategy": "sma_cross",
        "strategy_grid": {"fast": list(range(2, 30)), "slow": list(range(31, 80))},
        "timeframes": ["15m", "30m", "1h"],
        "param_grid": {"tp_r": [1, 1.5, 2, 3, 4], "sl_pct": [0.005, 0.01, 0.02, 0.03],
                       "max_hold_hrs": [6, 12, 24, 48]}}


def test_cancel_while_signals_are_planned(daemon, bars):
    """Cancelled before any grid work (the 4,116 signal sets are still being
    made): the plan stops at its next set, the request answers -32800."""
    c = daemon.client
    rid = c.send("optimizeStrategy", {"dataset_id": "bars", **LONG})
    assert c.result("cancel", {"id": rid}) == {"cancelled": True}
    assert c.response(rid)["error"]["code"] == -32800
    assert c.result("ping") == {}


def test_cancel_stops_a_long_strategy_search(daemon, bars):
    c = daemon.client
    long = LONG
    rid = c.send("optimizeStrategy", {"dataset_id": "bars", **long, "progress_token": "long"})
    c.wait_for(lambda: next((n for n in c.notifications if n["method"] == "$/progress"
                             and n["params"]["token"] == "long"), None), "progress of the long search")
    assert c.result("cancel", {"id": rid}) == {"cancelled": True}
    assert c.response(rid)["error"]["code"] == -32800
    assert c.result("ping") == {}


def test_simulate_with_a_strategy_returns_its_trades(daemon, bars):
    params = {"dataset_id": "bars", "strategy": "sma_cross", "timeframe": "1h",
              "params": {"fast": 3, "slow": 12, "tp_r": 2, "sl_pct": 0.01, "max_hold_hrs": 24}}
    got = daemon.client.result("simulate", params)
    trades = got["completed_trades"]
    assert got["mode"] == "capital" and len(trades) == got["trades_executed"] > 0
    assert {t["direction"] for t in trades} <= {"long", "short"}
    assert all(t["symbol"] == t["caller"] and t["call_id"].startswith(f"{t['symbol']}:1h:")
               for t in trades)
    # A point's flat params (timeframe inside) work the same.
    flat = {**params, "params": {**params["params"], "timeframe": "1h"}}
    del flat["timeframe"]
    assert daemon.client.result("simulate", flat) == got
    err = error(daemon, "simulate", {**params, "params": {**params["params"], "timeframe": "4h"}})
    assert (err["code"], err["data"]["path"]) == (-32602, "$.params.timeframe")
    # Calls still simulate as before.
    daemon.client.result("loadDataset", {"dataset_id": "calls2", **cli_payload(n_calls=10)})
    calls = daemon.client.result("simulate", {"dataset_id": "calls2",
                                              "params": {"tp_mult": 2, "sl_mult": 0.9}})
    assert "completed_trades" in calls


def test_a_checkpointed_search_writes_its_run_directory(daemon, bars, tmp_path):
    """run_id + checkpoint_dir: the answer, then the run directory a batch
    strategy run writes (results table, best trades, summary); the same
    request again resumes from the journal with the same answer."""
    request = {"dataset_id": "bars", **SMALL, "run_id": "s1",
               "checkpoint_dir": str(tmp_path), "progress_token": "ck"}
    got = daemon.client.result("optimizeStrategy", request)
    run = tmp_path / "s1"
    assert json.loads((run / "result.json").read_text()) == got
    rows = (run / "results.csv").read_text().splitlines()
    assert len(rows) == 1 + got["params_evaluated"]
    trades = json.loads((run / "best_trades.json").read_text())
    assert len(trades) == got["best_metrics"]["trades_executed"]
    assert "sma_cross" in (run / "summary.md").read_text()
    assert daemon.client.result("optimizeStrategy", request) == got
