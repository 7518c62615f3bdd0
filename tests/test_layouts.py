"""``worker._core.layouts`` names every layout kernels and wrappers share:
the kernels' arrays have the widths and dtypes it says (which also catches
a kernel loaded from a stale Numba cache after a layout edit), the metric
names are the protocol's, and everything that names a column (results,
validation, journal, report) derives from it."""

from __future__ import annotations

import typing

import msgspec
import numpy as np
import pytest

import worker._core.layouts as L
import worker._run.journal as J
from protocol import (
    EXTENDED_DEFAULTS,
    CapitalMetrics,
    ParamGrid,
    PerTradeMetrics,
    SimulatorConfig,
)
from tests.reference import optimizer as ref_optimizer
from worker import synthetic_dataset
from worker._core import kernels, validate
from worker._core.engine import config_array, grid_levels, prepare, run_grid, run_one
from worker._core.metrics import to_metrics, trade_records
from worker._errors import InvalidParams
from worker._report import text
from worker._report.report import results_table

GRID = msgspec.convert({"tp_mults": [1.5, 3.0], "sl_mults": [0.8, 0.9, 0.95],
                        "max_hold_hrs": [2.0, 24.0]}, ParamGrid)
CONFIG = SimulatorConfig(max_concurrent_positions=3)
MODES = ("capital", "per_trade")
STRUCTS = {"capital": CapitalMetrics, "per_trade": PerTradeMetrics}
NOT_METRICS = ("exits", "skipped", "completed_trades")


@pytest.fixture(scope="module")
def ds():
    return synthetic_dataset(n_calls=60, n_candles=200, n_callers=3, seed=5)


# SPEC 11's dimensions: two trails of one activation and one of another, a
# breakeven, a market delay and a limit entry, gap fills at the open.
EXTENDED_GRID = msgspec.convert({
    "tp_mults": [1.5, 3.0], "sl_mults": [0.8, 0.9], "trail_pct": [None, 0.1, 0.2],
    "trail_activation": [1.0, 1.1], "breakeven_trigger": [None, 1.2],
    "entry_delay_candles": [0, 2], "entry_dip_pct": [0.0, 0.05]}, ParamGrid)


@pytest.fixture(scope="module", params=["spec2", "spec11"])
def sweep(ds, request):
    if request.param == "spec2":
        return prepare(ds, grid_levels(GRID, CONFIG))
    return prepare(ds, grid_levels(EXTENDED_GRID, SimulatorConfig(gap_fill="open")))


# ------------------------------------------------------------ names and indices

@pytest.mark.parametrize("prefix", sorted(L.NAMED_INDICES))
def test_every_index_constant_is_the_position_of_its_name(prefix):
    names = L.NAMED_INDICES[prefix]
    assert len(set(names)) == len(names)
    consts = sorted(k for k in vars(L) if k.startswith(prefix) and k[len(prefix):].isupper()
                    and isinstance(getattr(L, k), int))
    assert consts == sorted(prefix + n.upper() for n in names)
    for i, name in enumerate(names):
        assert getattr(L, prefix + name.upper()) == i


def test_reason_codes_are_their_column_in_the_count_arrays():
    for names in (L.EXIT_REASONS, L.SKIP_REASONS):
        assert [getattr(L, n.upper()) for n in names] == list(range(len(names)))
    assert L.ENTERED not in range(L.N_SKIPS)     # a status is a skip code or ENTERED
    for mode in MODES:
        assert set(L.MODE_SKIP_REASONS[mode]) <= set(L.SKIP_REASONS)
    assert L.MODE_SKIP_REASONS["per_trade"] == ("no_entry", "no_fill")  # SPEC 3, 11


def test_widths_are_the_name_tuples():
    assert L.RESULT_WIDTHS == (len(L.CAPITAL_METRICS) + len(L.MOMENTS), len(L.EXIT_REASONS),
                               len(L.SKIP_REASONS))
    assert (L.M_RET_M2, L.M_RET_M4) == (L.N_REPORTED, L.N_METRICS - 1)
    assert len(L.PER_TRADE_METRICS) == L.N_REPORTED == L.N_METRICS - len(L.MOMENTS)
    assert (L.N_CALL_ROWS, L.N_CFG, L.N_POINT_LEVELS, L.N_REC_FIELDS) == (
        len(L.CALL_ROWS), len(L.CFG_FIELDS), len(L.POINT_LEVELS), len(L.REC_FIELDS))
    assert [np.dtype(d) for d in L.RESULT_DTYPES] == [np.float64, np.int64, np.int64]
    assert all(a.shape == (7, w) and a.dtype == d for a, w, d in
               zip(L.empty_results(7), L.RESULT_WIDTHS, L.RESULT_DTYPES, strict=True))


def test_kernels_module_does_not_re_export_layout_names():
    for name in ("CAPITAL_METRICS", "PER_TRADE_METRICS", "EXIT_REASONS", "SKIP_REASONS"):
        assert not hasattr(kernels, name)


# ------------------------------------------------------------ the protocol's metrics

@pytest.mark.parametrize("mode", MODES)
def test_metric_names_are_the_protocol_metrics_fields_in_order(mode):
    struct = STRUCTS[mode]
    fields = [f for f in struct.__struct_fields__ if f not in NOT_METRICS]
    assert tuple(fields) == L.METRICS[mode]
    hints = typing.get_type_hints(struct)
    for name in L.METRICS[mode]:
        assert (hints[name] is int) == (name in L.COUNT_METRICS), name
    assert L.TRADES_METRIC[mode] in L.COUNT_METRICS


def test_metric_names_agree_with_the_independent_reference():
    assert ref_optimizer.CAPITAL_OBJECTIVES == L.CAPITAL_METRICS
    assert ref_optimizer.PER_TRADE_OBJECTIVES == L.PER_TRADE_METRICS
    for mode in MODES:
        assert ref_optimizer.MODES[mode][2] == L.DEFAULT_OBJECTIVE[mode]
        assert ref_optimizer.MODES[mode][3] == L.TRADES_METRIC[mode]


def test_config_fields_are_simulator_config_fields():
    assert set(L.CFG_FIELDS) <= set(SimulatorConfig.__struct_fields__)
    cfg = config_array(CONFIG)
    assert cfg.shape == (L.N_CFG,) and cfg.dtype == np.float64
    for i, name in enumerate(L.CFG_FIELDS):
        assert cfg[i] == getattr(CONFIG, name)


# ------------------------------------------------------------ kernel arrays

def test_kernel_inputs_have_the_named_shapes(ds, sweep):
    lv = sweep.levels
    n_entries = lv.entry_delay.size
    assert sweep.calls.shape == (n_entries, L.N_CALL_ROWS, ds.n_calls)
    assert lv.points.shape == (len(lv.params), L.N_POINT_LEVELS) and lv.points.dtype == np.int64
    assert len(sweep.hits) == len(L.HITS)
    gap = ds.n_calls if lv.gap_open else 0
    n_levels = {L.HIT_TP_TS: lv.tp.size, L.HIT_SL_TS: lv.sl.size,
                L.HIT_HOLD_TS: lv.hold_ms.size, L.HIT_HOLD_PX: lv.hold_ms.size,
                L.HIT_TRAIL_TS: lv.trail_dist.size, L.HIT_TRAIL_PX: lv.trail_dist.size,
                L.HIT_BE_TS: lv.be_level.size}
    for k, size in n_levels.items():
        assert sweep.hits[k].shape == (n_entries, size, ds.n_calls)
    for k, size in {L.HIT_TP_OPEN: lv.tp.size, L.HIT_SL_OPEN: lv.sl.size,
                    L.HIT_TRAIL_OPEN: lv.trail_dist.size, L.HIT_BE_OPEN: lv.be_level.size}.items():
        assert sweep.hits[k].shape == (n_entries, size, gap)
    for p, params in zip(lv.points, lv.params, strict=True):
        assert lv.tp[p[L.POINT_TP]] == params.tp_mult
        assert lv.sl[p[L.POINT_SL]] == params.sl_mult
        a, b, c = p[L.POINT_TRAIL], p[L.POINT_BE], p[L.POINT_ENTRY]
        assert (a == L.NO_LEVEL) == (params.trail_pct is None)
        if a != L.NO_LEVEL:
            assert (lv.trail_dist[a], lv.trail_act[a]) == (params.trail_pct,
                                                           params.trail_activation)
        assert (b == L.NO_LEVEL) == (params.breakeven_trigger is None)
        if b != L.NO_LEVEL:
            assert lv.be_trig[b] == params.breakeven_trigger
            assert lv.be_level[b] == 1 + params.breakeven_offset
        assert (lv.entry_delay[c], lv.entry_dip[c]) == (params.entry_delay_candles,
                                                        params.entry_dip_pct)
    # Alert times are the calls' own, in sweep order; no entry: price 0.
    for c in range(n_entries):
        calls = sweep.calls[c]
        assert np.array_equal(calls[L.CALL_ALERT_TS], ds.call_ts_ms[sweep.positions])
        no_entry = ds.entry_idx[sweep.positions] < 0
        assert np.all(calls[L.CALL_ENTRY_PX, no_entry] == L.NO_ENTRY_PX)
        if lv.entry_delay[c] == 0 and lv.entry_dip[c] == 0:
            assert np.all(calls[L.CALL_ENTRY_PX, ~no_entry] > 0)


@pytest.mark.parametrize("mode", MODES)
def test_grid_kernel_outputs_have_the_result_widths(sweep, mode):
    out = run_grid(sweep, None, CONFIG, mode)
    assert len(out) == len(L.RESULT_NAMES)
    for a, w, d in zip(out, L.RESULT_WIDTHS, L.RESULT_DTYPES, strict=True):
        assert a.shape == (sweep.levels.n_points, w) and a.dtype == d
    metrics, exits, skipped = out
    m = dict(zip(L.METRICS[mode], metrics.T))
    trades = m[L.TRADES_METRIC[mode]]
    # Each figure sits in the column its name says.
    assert np.array_equal(trades, exits.sum(axis=1))
    assert np.array_equal(m["losses"], trades - m["wins"])
    assert np.all(m["win_rate"] == np.where(trades > 0, m["wins"] / np.maximum(trades, 1), 0))
    if mode == "capital":
        assert np.array_equal(m["trades_skipped"], skipped.sum(axis=1))
        assert np.allclose(m["total_return"], m["final_capital"] / CONFIG.initial_capital - 1)
        assert np.all((m["max_drawdown"] >= 0) & (m["max_drawdown"] < 1))
        assert np.all(m["fees_paid"] > 0)
    else:
        assert np.all(skipped[:, [L.MAX_POSITIONS, L.BELOW_MIN_SIZE]] == 0)
        assert np.allclose(m["avg_return"] * trades, m["total_return"])
    assert np.all(m["avg_hold_min"] > 0)


@pytest.mark.parametrize("mode", MODES)
def test_records_have_the_named_columns(ds, mode):
    one = msgspec.convert({"tp_mults": [2.0], "sl_mults": [0.9], "max_hold_hrs": [6.0]},
                          ParamGrid)
    sweep = prepare(ds, grid_levels(one, CONFIG))
    rows = np.arange(sweep.positions.size)
    metrics, exits, skipped, rec, calls = run_one(sweep, rows, CONFIG, mode)
    assert calls is sweep.calls[0] or np.array_equal(calls, sweep.calls[0])
    assert rec.shape == (rows.size, L.N_REC_FIELDS)
    assert (metrics.shape, exits.shape, skipped.shape) == ((L.N_METRICS,), (L.N_EXITS,),
                                                          (L.N_SKIPS,))
    status = rec[:, L.REC_STATUS]
    entered = status == L.ENTERED
    assert set(status[~entered].tolist()) <= set(range(L.N_SKIPS))
    assert np.array_equal(np.bincount(status[~entered].astype(int), minlength=L.N_SKIPS),
                          skipped)
    assert np.array_equal(np.bincount(rec[entered, L.REC_EXIT_REASON].astype(int),
                                      minlength=L.N_EXITS), exits)
    assert np.all(rec[entered, L.REC_EXIT_TS] >= calls[L.CALL_ENTRY_TS, entered])
    if mode == "per_trade":
        assert np.all(rec[entered, L.REC_SIZE] == 1.0)
    result = to_metrics(mode, metrics, exits, skipped,
                        trade_records(ds, sweep.positions, calls, rows, rec))
    assert list(result.exits) == list(L.EXIT_REASONS)
    assert list(result.skipped) == list(L.MODE_SKIP_REASONS[mode])
    trades = result.completed_trades
    assert len(trades) == int(entered.sum()) == getattr(result, L.TRADES_METRIC[mode])
    assert [t.pnl for t in trades] == rec[entered, L.REC_PNL].tolist()
    assert [t.exit_px for t in trades] == rec[entered, L.REC_EXIT_PX].tolist()


# ------------------------------------------------------------ what derives from the names

def test_objectives_are_the_mode_metrics():
    assert validate.OBJECTIVES == L.METRICS
    for mode in MODES:
        assert validate.objective(None, mode) == L.DEFAULT_OBJECTIVE[mode]
        for name in L.METRICS[mode]:
            assert validate.objective(name, mode) == name
    with pytest.raises(InvalidParams) as err:
        validate.objective("avg_r", "capital")
    assert ", ".join(L.CAPITAL_METRICS) in str(err.value)


def test_journal_chunk_fields_follow_the_result_arrays():
    assert len(J._KEYS) == len(L.RESULT_NAMES)
    assert tuple(J._Chunk.__struct_fields__[-len(J._KEYS):]) == J._KEYS
    for key, width, dtype in zip(J._KEYS, L.RESULT_WIDTHS, L.RESULT_DTYPES, strict=True):
        assert J._SHAPES[key][0] == width
        assert J._SHAPES[key][1].str == np.dtype(dtype).newbyteorder("<").str
    arrays = L.empty_results(2)
    for a in arrays:
        a[...] = np.arange(a.size).reshape(a.shape)
    line = msgspec.json.decode(J._encode(J.ChunkEntry(0, (4, 6), arrays)))
    assert [k for k in line if k in J._KEYS] == list(J._KEYS)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("per_caller", [False, True])
def test_report_columns_derive_from_the_names(sweep, mode, per_caller):
    n = sweep.levels.n_points
    callers = ["a", "b"] if per_caller else None
    rows = n * (2 if per_caller else 1)
    metrics, exits, skipped = (np.ones((rows, w)) for w in L.RESULT_WIDTHS)
    table = results_table(mode=mode, params=sweep.levels.params, metrics=metrics, exits=exits,
                          skipped=skipped, feasible=np.ones(rows, bool),
                          rank=np.ones(rows, np.int64), failed=np.zeros(rows, bool),
                          callers=callers)
    names = table.column_names
    # SPEC 11 columns: the dimensions some point sets off their default.
    extended = tuple(name for name, default in EXTENDED_DEFAULTS.items()
                     if any(getattr(p, name) != default for p in sweep.levels.params))
    assert names == text.table_column_names(mode, per_caller, extended)
    assert [c for c in names if c in L.METRICS[mode]] == list(L.METRICS[mode])
    assert [c for c in names if c.startswith("exits_")] == [f"exits_{r}" for r in L.EXIT_REASONS]
    assert [c for c in names if c.startswith("skipped_")] == [
        f"skipped_{r}" for r in L.MODE_SKIP_REASONS[mode]]
    for name in L.METRICS[mode]:
        want = "int64" if name in L.COUNT_METRICS else "double"
        assert str(table.schema.field(name).type) == want, name
    assert text.METRICS is L.METRICS and text.COUNTS == L.COUNT_METRICS
    for mode_ in MODES:
        assert set(text.KEY_METRICS[mode_]) <= set(L.METRICS[mode_])
        assert set(text.CORR_METRICS[mode_]) <= set(L.METRICS[mode_])
    assert text.MONEY | text.PERCENT <= set(L.CAPITAL_METRICS) | set(L.PER_TRADE_METRICS)


# The kernels' cache depends on files numba does not look at (worker/_core/kernels.py, sweeps.py).
_CACHE_DEPENDENCIES = {"kernels.py": ("layouts.py",), "moments.py": ("layouts.py",),
                       "exits.py": ("layouts.py", "kernels.py"),
                       "sweeps.py": ("layouts.py", "kernels.py", "book.py", "moments.py",
                                     "exits.py"),
                       "grid.py": ("layouts.py", "kernels.py", "book.py", "moments.py",
                                   "exits.py", "sweeps.py"),
                       "rkernels.py": ("layouts.py", "kernels.py", "book.py", "moments.py",
                                       "exits.py", "sweeps.py")}


@pytest.mark.parametrize("module", sorted(_CACHE_DEPENDENCIES))
def test_kernel_modules_carry_the_digest_of_what_they_compile_in(module):
    import hashlib
    import re
    from pathlib import Path

    core = Path(__file__).resolve().parents[1] / "worker" / "_core"
    h = hashlib.sha256()
    for dep in _CACHE_DEPENDENCIES[module]:
        h.update((core / dep).read_bytes())
    want = h.hexdigest()[:16]
    found = re.search(r'^DEPENDS_ON_DIGEST = "([0-9a-f]+)"$', (core / module).read_text(), re.M)
    assert found is not None, f"worker/_core/{module} has no DEPENDS_ON_DIGEST line"
    assert found.group(1) == want, (
        f"worker/_core/{module}: {', '.join(_CACHE_DEPENDENCIES[module])} changed; set "
        f'DEPENDS_ON_DIGEST = "{want}" so its cached kernels recompile'
        + (" (then the digests of the modules that import it)" if module != "grid.py" else ""))
