"""Regressions for the faults hostile requests found (issue 9): numbers that
wrapped on their way to a kernel, holds that overflowed, times that wrapped,
unbounded costs, a FIFO that froze the event loop, relative checkpoint
directories, file contents quoted in errors, and a budget that inline data
escaped. Each test failed before its fix."""

from __future__ import annotations

import os
import signal

import pytest

import worker
from tests import reference
from tests._compare import plain
from tests._daemon import Daemon, wait_gone
from worker._daemon.cache import DatasetCache
from worker._data.loaders import dataset_from_columnar
from worker._data.synthetic import synthetic_dataset
from worker._errors import InvalidDataset, InvalidParams, ResourceLimit

T0 = 1_700_000_000_000
MIN = 60_000


@pytest.fixture(scope="module")
def ds():
    return synthetic_dataset(n_calls=60, n_candles=300, n_callers=3, seed=3)


def _reference_inputs(ds):
    calls = [{"id": ds.call_ids[i], "caller": ds.caller_names[ds.call_caller[i]],
              "mint": ds.call_mints[i], "ts_ms": int(ds.call_ts_ms[i])} for i in range(ds.n_calls)]
    series = {}
    for s, key in enumerate(ds.series_keys):
        lo, hi = ds.series_offsets[s], ds.series_offsets[s + 1]
        series[key] = list(zip(ds.ts_ms[lo:hi].tolist(), ds.open[lo:hi].tolist(),
                               ds.high[lo:hi].tolist(), ds.low[lo:hi].tolist(),
                               ds.close[lo:hi].tolist()))
    return calls, series


# ------------------------------------------------------------ max_concurrent_positions

@pytest.mark.parametrize("limit", [2**63 - 1, 2**63 - 512, 2**62, 2**53 + 1])
def test_huge_max_concurrent_positions_is_the_unlimited_run(ds, limit):
    # It used to travel as float64: 2**63-1 wrapped to INT64_MIN (an endless
    # loop), 2**53..2**62 skipped every call as max_positions.
    p = {"tp_mult": 2.0, "sl_mult": 0.8}
    got = worker.simulate(ds, p, config={"max_concurrent_positions": limit}, include_trades=False)
    want = worker.simulate(ds, p, config={"max_concurrent_positions": ds.n_calls},
                           include_trades=False)
    assert got.skipped["max_positions"] == 0
    assert plain(got) == plain(want)


def test_max_concurrent_positions_past_int64_is_invalid_params(ds):
    with pytest.raises(InvalidParams) as info:
        worker.simulate(ds, {"tp_mult": 2.0, "sl_mult": 0.8},
                        config={"max_concurrent_positions": 2**64 - 1})
    assert info.value.path == "$.simulator_config.max_concurrent_positions"


@pytest.mark.parametrize("field,value", [
    ("taker_fee_bps", 1e308), ("slippage_bps", 10_001.0), ("initial_capital", 1e300),
    ("max_risk_per_trade", 1e16), ("min_executable_size", 1e300)])
def test_costs_and_money_are_bounded(ds, field, value):
    # taker_fee_bps 1e308 used to answer final_capital null (inf).
    with pytest.raises(InvalidParams) as info:
        worker.simulate(ds, {"tp_mult": 2.0, "sl_mult": 0.8}, config={field: value})
    assert info.value.path == f"$.simulator_config.{field}"


def test_min_trades_past_int64_is_invalid_params(ds):
    # 10**400 used to reach a float comparison: -32603 OverflowError.
    with pytest.raises(InvalidParams) as info:
        worker.optimize(ds, {"tp_mults": [2.0], "sl_mults": [0.8]},
                        constraints={"min_trades": 10**400})
    assert info.value.path == "$.constraints.min_trades"


# ------------------------------------------------------------ holds

@pytest.mark.parametrize("hold", [2562047787890, 2.6e12, 1e300, 5e301, 1.7e308])
def test_a_hold_that_can_never_be_reached_never_triggers(ds, hold):
    # entry_ts + hold_ms wrapped int64 (time_exit instead of end_of_data), or
    # overflowed numpy's int64 (-32603 OverflowError).
    p = {"tp_mult": 3.0, "sl_mult": 0.5, "max_hold_hrs": hold}
    got = worker.simulate(ds, p)
    calls, series = _reference_inputs(ds)
    # The reference's int(h * 3_600_000) itself overflows past ~5e301 hours;
    # every hold past the data is the same run, so compare with 1e300's.
    want = reference.simulate_capital(calls, series, ds.series_key,
                                      {**p, "max_hold_hrs": min(hold, 1e300)}, {})
    assert got.exits["time_exit"] == 0 and got.exits["end_of_data"] > 0
    assert got.final_capital == pytest.approx(want["final_capital"], rel=1e-12)
    assert got.exits == want["exits"]


def test_a_huge_config_horizon_never_triggers(ds):
    got = worker.simulate(ds, {"tp_mult": 3.0, "sl_mult": 0.5},
                          config={"max_trade_horizon_hrs": 1e308})
    assert got.exits["time_exit"] == 0
    grid = worker.optimize(ds, {"tp_mults": [3.0], "sl_mults": [0.5],
                                "max_hold_hrs": [1e308, 2.6e12]})
    assert [p.metrics.final_capital for p in grid.top] == [got.final_capital] * 2


# ------------------------------------------------------------ times

CANDLE = {"open": [1.0], "high": [1.0], "low": [1.0], "close": [1.0]}


def test_columnar_ts_of_2_pow_63_is_refused_not_wrapped():
    calls = [{"id": "a", "caller": "c", "mint": "", "ts_ms": 0}]
    with pytest.raises(InvalidParams) as info:
        dataset_from_columnar(calls, {"key": ["a"], "ts_ms": [2**63], **CANDLE})
    assert info.value.path == "$.candles_columnar.ts_ms[0]"


@pytest.mark.parametrize("ts", [2**53 + 1, -(2**63), 2**62])
def test_candle_times_outside_2_pow_53_are_a_data_rule(ts):
    calls = [{"id": "a", "caller": "c", "mint": "", "ts_ms": 0}]
    with pytest.raises(InvalidDataset) as info:
        dataset_from_columnar(calls, {"key": ["a"], "ts_ms": [ts], **CANDLE})
    assert info.value.data["rule"] == "ts_in_range" and info.value.data["key"] == "a"
    dropped = dataset_from_columnar(calls, {"key": ["a"], "ts_ms": [ts], **CANDLE},
                                    on_bad_series="drop")
    assert dropped.dropped_keys == ("a",)


def test_call_times_outside_2_pow_53_are_refused():
    calls = [{"id": "a", "caller": "c", "mint": "", "ts_ms": 0},
             {"id": "b", "caller": "c", "mint": "", "ts_ms": -(2**63)}]
    with pytest.raises(InvalidDataset) as info:
        dataset_from_columnar(calls, {"key": ["a"], "ts_ms": [0], **CANDLE})
    assert info.value.data["rule"] == "ts_in_range" and info.value.data["index"] == 1


# ------------------------------------------------------------ files

def _write_files(tmp_path, ds):
    from worker._data.files import write_dataset_files
    calls, candles = str(tmp_path / "calls.parquet"), str(tmp_path / "candles.parquet")
    write_dataset_files(ds, calls, candles)
    return calls, candles


@pytest.mark.parametrize("which", ["calls_path", "candles_path"])
def test_a_fifo_is_refused_before_it_is_opened(tmp_path, ds, which):
    calls, candles = _write_files(tmp_path, ds)
    fifo = str(tmp_path / "x.parquet")
    os.mkfifo(fifo)
    paths = {"calls_path": calls, "candles_path": candles, which: fifo}
    # In-process: opening the FIFO would block this test for ever.
    with pytest.raises(InvalidParams) as info:
        worker.dataset_from_files(paths["calls_path"], paths["candles_path"])
    assert info.value.path == f"$.{which}" and "FIFO" in info.value.message


def test_a_fifo_never_blocks_the_daemon(tmp_path, ds):
    calls, candles = _write_files(tmp_path, ds)
    fifo = str(tmp_path / "x.parquet")
    os.mkfifo(fifo)
    d = Daemon("--pool-size", "0")
    try:
        c = d.client
        rid = c.send("loadDataset", {"calls_path": calls, "candles_path": fifo})
        assert c.result("ping") == {}
        err = c.response(rid)["error"]
        assert err["code"] == -32602 and err["data"]["path"] == "$.candles_path"
        # An inline file source on a compute method, too.
        err = c.call("simulate", {"calls_path": fifo, "candles_path": candles,
                                  "params": {"tp_mult": 2, "sl_mult": 0.8}})["error"]
        assert err["code"] == -32602 and err["data"]["path"] == "$.calls_path"
    finally:
        d.kill()


SECRET = "root-secret-line:do-not-echo:42"


@pytest.mark.parametrize("text", [
    f"{SECRET}\n",                                   # a one-column "header"
    f"id,caller,ts_ms\n{SECRET},x,y,z,w\n",          # a row of the wrong width
    f"id,caller,ts_ms\na,b,{SECRET}\n",              # a value of the wrong type
])
def test_errors_never_quote_a_files_contents(tmp_path, ds, text):
    secret = tmp_path / "system-file"
    secret.write_text(text)
    link = tmp_path / "calls.csv"
    link.symlink_to(secret)
    _, candles = _write_files(tmp_path, ds)
    with pytest.raises(InvalidParams) as info:
        worker.dataset_from_files(str(link), candles)
    assert info.value.path == "$.calls_path"
    # The message may name the file (its directory may hold a "42": pytest-42).
    message = info.value.message.replace(str(tmp_path), "<dir>")
    assert "secret" not in message and "42" not in message


# ------------------------------------------------------------ the cache budget

class _Shared:
    def __init__(self, nbytes):
        self.nbytes, self.closed = nbytes, False

    def close(self):
        self.closed = True


def test_inline_datasets_count_against_the_budget():
    closed = []
    cache = DatasetCache(1_000, lambda e: closed.append(e.dataset_id))
    cache.put("a", _Shared(400), {})
    cache.put("b", _Shared(400), {})
    with cache.reserve(500) as evicted:          # a request's own dataset
        assert evicted == ["a"] and cache.nbytes == 400 and cache.reserved_bytes == 500
        with pytest.raises(ResourceLimit):
            cache.put("c", _Shared(600), {})     # 500 are held by the request
        with pytest.raises(ResourceLimit):
            with cache.reserve(600):
                pass
    assert cache.reserved_bytes == 0
    cache.put("c", _Shared(600), {})


def test_a_candles_file_over_the_budget_is_refused_from_its_metadata(tmp_path, ds):
    calls, candles = _write_files(tmp_path, ds)
    d = Daemon("--pool-size", "0", "--cache-bytes", "10000")
    try:
        err = d.client.call("loadDataset", {"calls_path": calls, "candles_path": candles})["error"]
        assert err["code"] == -32003 and "candles file" in err["message"]
        err = d.client.call("simulate", {"calls_path": calls, "candles_path": candles,
                                         "params": {"tp_mult": 2, "sl_mult": 0.8}})["error"]
        assert err["code"] == -32003
    finally:
        d.kill()


# ------------------------------------------------------------ checkpoint_dir

@pytest.mark.parametrize("where", ["", "runs", "./runs"])
def test_checkpoint_dir_must_be_absolute(ds, where):
    d = Daemon("--pool-size", "0")
    try:
        d.client.result("loadDataset", {"dataset_id": "d", "calls": [
            {"id": "a", "caller": "c", "ts_ms": T0}], "candles_columnar": {
            "key": ["a"], "ts_ms": [T0], **CANDLE}})
        err = d.client.call("optimize", {"dataset_id": "d", "run_id": "r",
                                         "checkpoint_dir": where})["error"]
        assert err["code"] == -32602 and err["data"]["path"] == "$.checkpoint_dir"
        assert not os.path.exists(os.path.join(where or ".", "r"))
    finally:
        d.kill()


# ------------------------------------------------------------ stopping

# ~1.6e9 call x point evaluations on 2,000 calls: a minute or more of kernel
# time on one process, far past the stop deadline.
_ENDLESS_GRID = {"tp_mults": [round(1.01 + 0.01 * i, 2) for i in range(100)],
                 "sl_mults": [round(0.1 + 0.01 * i, 2) for i in range(80)],
                 "max_hold_hrs": list(range(1, 101))}


@pytest.mark.parametrize("how", ["sigterm", "shutdown"])
def test_stop_ends_the_daemon_whatever_its_threads_do(files, how):
    # A kernel on a thread cannot be cancelled; the orderly stop used to wait
    # for it (and for ever, when a kernel looped).
    d = Daemon("--pool-size", "0", "--local-evaluations", str(10**12),
               "--max-grid-points", str(10**6))
    try:
        c = d.client
        c.result("loadDataset", {"dataset_id": "big", **files})
        c.send("optimize", {"dataset_id": "big", "param_grid": _ENDLESS_GRID})
        assert c.result("ping") == {}  # the optimize was read and is running
        if how == "sigterm":
            d.proc.send_signal(signal.SIGTERM)
        else:
            c.send("shutdown")
        assert wait_gone(d.proc.pid, timeout=60), "the daemon did not stop"
        assert d.proc.wait() == 0
        leftovers = [n for n in os.listdir("/dev/shm")
                     if n.startswith(f"optimizer-worker-{d.proc.pid}-")]
        assert leftovers == []
    finally:
        d.kill()
