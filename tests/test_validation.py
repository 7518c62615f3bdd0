"""Bad inputs raise explicit errors naming the field (SPEC 2, 5, 7).

Every case checks the exception class, its JSON-RPC ``code`` and the exact
JSON path in ``exc.data["path"]``. Invalid params are -32602 and also
``ValueError``; a grid over ``max_points`` is a resource limit (-32003).
"""

from __future__ import annotations

import math

import msgspec
import pytest

import protocol
import worker
from worker import InvalidParams, ResourceLimit
from worker._core import validate

NAN, INF = math.nan, math.inf
P = {"tp_mult": 2.0, "sl_mult": 0.9, "max_hold_hrs": 1.0}
G = {"tp_mults": [1.5, 2.0], "sl_mults": [0.9, 0.8]}


@pytest.fixture(scope="module")
def ds():
    t0 = 1_700_000_000  # seconds, as the CLI's candle rows
    calls = [{"id": "a", "caller": "amy", "mint": "", "ts_ms": t0 * 1000},
             {"id": "b", "caller": "bob", "mint": "", "ts_ms": t0 * 1000}]
    rows = [{"timestamp": t0 + 60 * i, "open": c, "high": c, "low": c, "close": c}
            for i, c in enumerate([1.0, 1.5, 2.0, 0.7])]
    return worker.dataset_from_rows(calls, {"a": rows, "b": rows[:2]})


def assert_invalid(excinfo: pytest.ExceptionInfo, path: str) -> None:
    exc = excinfo.value
    assert type(exc) is InvalidParams
    assert isinstance(exc, ValueError)
    assert exc.code == -32602
    assert exc.data == {"path": path}
    assert exc.path == path
    assert path in str(exc)


# ---------------------------------------------------------------- entry points

def sim(params=None, **kw):
    """``simulate`` with ``P`` updated by ``params`` (None values removed)."""
    p = {k: v for k, v in {**P, **(params or {})}.items() if v is not None}
    return lambda ds: worker.simulate(ds, p, **kw)


def opt(grid=None, **kw):
    """``optimize`` with ``G`` updated by ``grid``."""
    return lambda ds: worker.optimize(ds, {**G, **(grid or {})}, **kw)


# (id, call, expected path)
CASES = [
    # params (SPEC 2): tp > 1, 0 < sl < 1, hold > 0
    ("tp_mult=1", sim({"tp_mult": 1.0}), "$.params.tp_mult"),
    ("tp_mult<1", sim({"tp_mult": 0.5}), "$.params.tp_mult"),
    ("sl_mult=1", sim({"sl_mult": 1.0}), "$.params.sl_mult"),
    ("sl_mult>1", sim({"sl_mult": 1.2}), "$.params.sl_mult"),
    ("sl_mult=0", sim({"sl_mult": 0.0}), "$.params.sl_mult"),
    ("sl_mult<0", sim({"sl_mult": -0.1}), "$.params.sl_mult"),
    ("hold=0", sim({"max_hold_hrs": 0}), "$.params.max_hold_hrs"),
    ("hold<0", sim({"max_hold_hrs": -1.0}), "$.params.max_hold_hrs"),
    ("tp_mult=nan", sim({"tp_mult": NAN}), "$.params.tp_mult"),
    ("tp_mult=inf", sim({"tp_mult": INF}), "$.params.tp_mult"),
    ("sl_mult=nan", sim({"sl_mult": NAN}), "$.params.sl_mult"),
    ("hold=inf", sim({"max_hold_hrs": INF}), "$.params.max_hold_hrs"),
    ("hold=nan", sim({"max_hold_hrs": NAN}), "$.params.max_hold_hrs"),
    ("tp_mult=str", sim({"tp_mult": "2.0"}), "$.params.tp_mult"),
    ("sl_mult=bool", sim({"sl_mult": True}), "$.params.sl_mult"),
    ("params typo", sim({"tp_mutls": 3.0}), "$.params"),
    ("params missing tp", sim({"tp_mult": None}), "$.params"),
    # grid (SPEC 5)
    ("grid tp<=1", opt({"tp_mults": [2.0, 1.0]}), "$.param_grid.tp_mults[1]"),
    ("grid sl>=1", opt({"sl_mults": [0.9, 1.0]}), "$.param_grid.sl_mults[1]"),
    ("grid hold<=0", opt({"max_hold_hrs": [0.0]}), "$.param_grid.max_hold_hrs[0]"),
    ("grid tp nan", opt({"tp_mults": [2.0, NAN]}), "$.param_grid.tp_mults[1]"),
    ("grid tp inf", opt({"tp_mults": [2.0, INF]}), "$.param_grid.tp_mults[1]"),
    ("grid sl nan", opt({"sl_mults": [0.9, 0.8, NAN]}), "$.param_grid.sl_mults[2]"),
    ("grid hold inf", opt({"max_hold_hrs": [1.0, INF]}), "$.param_grid.max_hold_hrs[1]"),
    ("grid empty tp", opt({"tp_mults": []}), "$.param_grid.tp_mults"),
    ("grid empty sl", opt({"sl_mults": []}), "$.param_grid.sl_mults"),
    ("grid empty hold", opt({"max_hold_hrs": []}), "$.param_grid.max_hold_hrs"),
    ("grid dup sl", opt({"sl_mults": [0.8, 0.9, 0.8]}), "$.param_grid.sl_mults[2]"),
    ("grid dup tp int/float", opt({"tp_mults": [2, 3.0, 2.0]}), "$.param_grid.tp_mults[2]"),
    ("grid dup hold", opt({"max_hold_hrs": [1.0, 2.0, 4.0, 2.0]}), "$.param_grid.max_hold_hrs[3]"),
    ("grid typo", opt({"tp_mutls": [2.0]}), "$.param_grid"),
    ("grid str value", opt({"tp_mults": ["2.0"]}), "$.param_grid.tp_mults[0]"),
    ("grid scalar", opt({"tp_mults": 2.0}), "$.param_grid.tp_mults"),
    # SPEC 11: params, grid dimensions, the breakeven cross-field rule, gap_fill
    ("trail_pct=0", sim({"trail_pct": 0.0}), "$.params.trail_pct"),
    ("trail_pct=1", sim({"trail_pct": 1.0}), "$.params.trail_pct"),
    ("trail_activation<1", sim({"trail_activation": 0.99}), "$.params.trail_activation"),
    ("breakeven_trigger=1", sim({"breakeven_trigger": 1.0}), "$.params.breakeven_trigger"),
    ("breakeven_offset<0", sim({"breakeven_offset": -0.01}), "$.params.breakeven_offset"),
    ("breakeven_offset>=trigger-1", sim({"breakeven_trigger": 1.2, "breakeven_offset": 0.2}),
     "$.params.breakeven_offset"),
    ("entry_delay<0", sim({"entry_delay_candles": -1}), "$.params.entry_delay_candles"),
    ("entry_delay float", sim({"entry_delay_candles": 1.5}), "$.params.entry_delay_candles"),
    ("entry_delay huge", sim({"entry_delay_candles": 2**63}), "$.params.entry_delay_candles"),
    ("entry_dip=1", sim({"entry_dip_pct": 1.0}), "$.params.entry_dip_pct"),
    ("entry_dip<0", sim({"entry_dip_pct": -0.1}), "$.params.entry_dip_pct"),
    ("entry_wait=0", sim({"entry_max_wait_min": 0}), "$.params.entry_max_wait_min"),
    ("entry_wait=inf", sim({"entry_max_wait_min": INF}), "$.params.entry_max_wait_min"),
    ("grid trail_pct>=1", opt({"trail_pct": [None, 1.5]}), "$.param_grid.trail_pct[1]"),
    ("grid trail dup null", opt({"trail_pct": [None, 0.1, None]}), "$.param_grid.trail_pct[2]"),
    ("grid activation null", opt({"trail_activation": [None]}),
     "$.param_grid.trail_activation[0]"),
    ("grid breakeven pair", opt({"breakeven_trigger": [1.5, 1.1], "breakeven_offset": [0, 0.2]}),
     "$.param_grid.breakeven_offset[1]"),
    ("grid delay float", opt({"entry_delay_candles": [0, 2.5]}),
     "$.param_grid.entry_delay_candles[1]"),
    ("grid wait empty", opt({"entry_max_wait_min": []}), "$.param_grid.entry_max_wait_min"),
    ("gap_fill unknown", opt(config={"gap_fill": "close"}), "$.simulator_config.gap_fill"),
    # simulator_config (SPEC 2)
    ("capital=0", opt(config={"initial_capital": 0}), "$.simulator_config.initial_capital"),
    ("capital<0", sim(config={"initial_capital": -1.0}), "$.simulator_config.initial_capital"),
    ("capital=inf", opt(config={"initial_capital": INF}), "$.simulator_config.initial_capital"),
    ("capital=str", opt(config={"initial_capital": "10000"}), "$.simulator_config.initial_capital"),
    ("allocation>1", opt(config={"max_allocation_pct": 1.5}), "$.simulator_config.max_allocation_pct"),
    ("allocation=0", opt(config={"max_allocation_pct": 0}), "$.simulator_config.max_allocation_pct"),
    ("risk=0", opt(config={"max_risk_per_trade": 0}), "$.simulator_config.max_risk_per_trade"),
    ("positions=0", opt(config={"max_concurrent_positions": 0}),
     "$.simulator_config.max_concurrent_positions"),
    ("positions=2.5", opt(config={"max_concurrent_positions": 2.5}),
     "$.simulator_config.max_concurrent_positions"),
    ("horizon=0", sim(config={"max_trade_horizon_hrs": 0}), "$.simulator_config.max_trade_horizon_hrs"),
    ("min size<0", opt(config={"min_executable_size": -1}), "$.simulator_config.min_executable_size"),
    ("fee<0", opt(config={"taker_fee_bps": -1}), "$.simulator_config.taker_fee_bps"),
    ("slippage<0", sim(config={"slippage_bps": -0.5}), "$.simulator_config.slippage_bps"),
    ("fee=nan", sim(config={"taker_fee_bps": NAN}), "$.simulator_config.taker_fee_bps"),
    ("intrabar both", opt(config={"intrabar": "both"}), "$.simulator_config.intrabar"),
    ("config typo", opt(config={"intial_capital": 5000}), "$.simulator_config"),
    ("config not object", opt(config=[1]), "$.simulator_config"),
    # constraints (SPEC 5)
    ("min_win_rate>1", opt(constraints={"min_win_rate": 1.5}), "$.constraints.min_win_rate"),
    ("min_win_rate<0", opt(constraints={"min_win_rate": -0.1}), "$.constraints.min_win_rate"),
    ("min_trades<0", opt(constraints={"min_trades": -1}), "$.constraints.min_trades"),
    ("min_trades float", opt(constraints={"min_trades": 1.5}), "$.constraints.min_trades"),
    ("max_drawdown<0", opt(constraints={"max_drawdown": -0.1}), "$.constraints.max_drawdown"),
    ("max_drawdown inf", opt(constraints={"max_drawdown": INF}), "$.constraints.max_drawdown"),
    ("max_drawdown per_trade", opt(mode="per_trade", constraints={"max_drawdown": 0.5}),
     "$.constraints.max_drawdown"),
    ("constraints typo", opt(constraints={"min_trade": 1}), "$.constraints"),
    # mode, objective, top_k, grouped_params, thresholds
    ("mode unknown", opt(mode="both"), "$.mode"),
    ("mode unknown simulate", sim(mode="pertrade"), "$.mode"),
    ("objective capital-only", opt(mode="per_trade", objective="final_capital"), "$.objective"),
    ("objective per_trade-only", opt(objective="avg_r"), "$.objective"),
    ("objective unknown", opt(objective="sortino"), "$.objective"),
    # SPEC 12 on optimize: plateau, stress lanes, rank_by
    ("plateau radius<0", opt(plateau={"radius": -1}), "$.plateau.radius"),
    ("plateau stat", opt(plateau={"stat": "median"}), "$.plateau.stat"),
    ("stress preset", opt(stress="brutal"), "$.stress"),
    ("stress empty", opt(stress=[]), "$.stress"),
    ("stress lane fee<0", opt(stress=[{"name": "a", "taker_fee_bps": -1}]),
     "$.stress[0].taker_fee_bps"),
    ("stress lane no name", opt(stress=[{"slippage_bps": 5}]), "$.stress[0]"),
    ("stress lane dup", opt(stress=[{"name": "a"}, {"name": "a", "gap_fill": "open"}]),
     "$.stress[1].name"),
    ("stress lane delay<0", opt(stress=[{"name": "a", "entry_delay_candles": -1}]),
     "$.stress[0].entry_delay_candles"),
    ("rank_by unknown", opt(rank_by="sharpe"), "$.rank_by"),
    ("rank_by maximin without stress", opt(rank_by="maximin"), "$.rank_by"),
    ("per-caller rank_by maximin", lambda ds: worker.optimize_per_caller(ds, G, rank_by="maximin"),
     "$.rank_by"),
    ("top_k<0", opt(top_k=-1), "$.top_k"),
    ("top_k float", opt(top_k=2.5), "$.top_k"),
    ("top_k bool", opt(top_k=True), "$.top_k"),
    ("grouped_params", lambda ds: worker.grouped_eval(ds, G, grouped_params="median"),
     "$.grouped_params"),
    ("extreme_sl_below str", lambda ds: worker.optimize_per_caller(ds, G, extreme_sl_below="x"),
     "$.extreme_sl_below"),
    ("extreme_tp_above nan", lambda ds: worker.grouped_eval(ds, G, extreme_tp_above=NAN),
     "$.extreme_tp_above"),
    # caller_groups (SPEC 5)
    ("caller_groups str", opt(caller_groups="amy"), "$.caller_groups"),
    ("caller_groups member", opt(caller_groups=["amy", 3]), "$.caller_groups[1]"),
    ("caller_groups None member", sim(caller_groups=[None]), "$.caller_groups[0]"),
    # booleans: a string "false" must not read as true
    ("minimize str", opt(minimize="false"), "$.minimize"),
    ("include_all str", opt(include_all="no"), "$.include_all"),
    ("include_trades str", sim(include_trades="no"), "$.include_trades"),
    ("filter_collapsed str", lambda ds: worker.grouped_eval(ds, G, filter_collapsed="false"),
     "$.filter_collapsed"),
    ("filter_extreme int", lambda ds: worker.grouped_eval(ds, G, filter_extreme=0),
     "$.filter_extreme"),
]


@pytest.mark.parametrize("call, path", [pytest.param(c, p, id=i) for i, c, p in CASES])
def test_invalid_input_names_the_field(ds, call, path):
    with pytest.raises(InvalidParams) as excinfo:
        call(ds)
    assert_invalid(excinfo, path)


def test_unknown_objective_lists_the_valid_names_for_the_mode(ds):
    with pytest.raises(InvalidParams) as excinfo:
        worker.optimize(ds, G, mode="per_trade", objective="final_capital")
    msg = str(excinfo.value)
    names = msg.split("one of:")[1]
    for name in ("avg_return", "median_return", "avg_r", "total_r", "trades", "win_rate"):
        assert name in names
    assert "final_capital" not in names and "max_drawdown" not in names
    with pytest.raises(InvalidParams) as excinfo:
        worker.optimize(ds, G, objective="avg_r")
    names = str(excinfo.value).split("one of:")[1]
    assert "final_capital" in names and "max_drawdown" in names and "avg_r" not in names


ENTRY_POINTS = {
    "simulate": lambda ds, **kw: worker.simulate(ds, P, **kw),
    "optimize": lambda ds, **kw: worker.optimize(ds, G, **kw),
    "optimize_per_caller": lambda ds, **kw: worker.optimize_per_caller(ds, G, **kw),
    "grouped_eval": lambda ds, **kw: worker.grouped_eval(ds, G, **kw),
}


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
@pytest.mark.parametrize("kw, path", [
    ({"config": {"max_allocation_pct": 2.0}}, "$.simulator_config.max_allocation_pct"),
    ({"mode": "Capital"}, "$.mode"),
    ({"caller_groups": ("amy", b"bob")}, "$.caller_groups[1]"),
], ids=["config", "mode", "caller_groups"])
def test_every_entry_point_validates_shared_fields(ds, entry, kw, path):
    with pytest.raises(InvalidParams) as excinfo:
        ENTRY_POINTS[entry](ds, **kw)
    assert_invalid(excinfo, path)


def test_spec11_dimensions_multiply_the_grid_size(ds):
    grid = {"tp_mults": [1.5, 2.0], "sl_mults": [0.9, 0.8], "max_hold_hrs": [1, 2],
            "trail_pct": [None, 0.1, 0.2], "entry_dip_pct": [0, 0.05]}
    with pytest.raises(ResourceLimit) as excinfo:
        worker.optimize(ds, grid, max_points=47)
    assert (excinfo.value.data["points"], excinfo.value.data["limit"]) == (48, 47)
    assert worker.optimize(ds, grid, max_points=48).params_evaluated == 48


@pytest.mark.parametrize("entry", ["optimize", "optimize_per_caller", "grouped_eval"])
def test_grid_checked_by_every_grid_entry_point(ds, entry):
    fn = getattr(worker, entry)
    with pytest.raises(InvalidParams) as excinfo:
        fn(ds, {"tp_mults": [2.0], "sl_mults": [0.9, 0.95, 0.9]})
    assert_invalid(excinfo, "$.param_grid.sl_mults[2]")


# ---------------------------------------------------------------- Structs built in Python

@pytest.mark.parametrize("call, path", [
    pytest.param(lambda ds: worker.simulate(ds, protocol.Params(tp_mult=0.5, sl_mult=0.9)),
                 "$.params.tp_mult", id="Params tp<1"),
    pytest.param(lambda ds: worker.simulate(ds, protocol.Params(tp_mult=2.0, sl_mult=1.5)),
                 "$.params.sl_mult", id="Params sl>1"),
    pytest.param(lambda ds: worker.simulate(
        ds, protocol.Params(tp_mult=2.0, sl_mult=0.9, max_hold_hrs=NAN)),
        "$.params.max_hold_hrs", id="Params hold nan"),
    pytest.param(lambda ds: worker.optimize(
        ds, protocol.ParamGrid(tp_mults=[2.0, 2.0], sl_mults=[0.9])),
        "$.param_grid.tp_mults[1]", id="ParamGrid dup"),
    pytest.param(lambda ds: worker.optimize(ds, protocol.ParamGrid(sl_mults=[])),
                 "$.param_grid.sl_mults", id="ParamGrid empty"),
    pytest.param(lambda ds: worker.optimize(ds, protocol.ParamGrid(tp_mults=[2.0, INF])),
                 "$.param_grid.tp_mults[1]", id="ParamGrid inf"),
    pytest.param(lambda ds: worker.simulate(
        ds, P, config=protocol.SimulatorConfig(initial_capital=-5.0)),
        "$.simulator_config.initial_capital", id="SimulatorConfig capital<0"),
    pytest.param(lambda ds: worker.optimize(
        ds, G, config=protocol.SimulatorConfig(intrabar="both")),
        "$.simulator_config.intrabar", id="SimulatorConfig intrabar"),
    pytest.param(lambda ds: worker.optimize(
        ds, G, constraints=protocol.Constraints(min_win_rate=1.5)),
        "$.constraints.min_win_rate", id="Constraints win rate>1"),
    pytest.param(lambda ds: worker.optimize(
        ds, G, mode="per_trade", constraints=protocol.Constraints(max_drawdown=0.2)),
        "$.constraints.max_drawdown", id="Constraints drawdown per_trade"),
])
def test_struct_built_in_python_is_still_validated(ds, call, path):
    with pytest.raises(InvalidParams) as excinfo:
        call(ds)
    assert_invalid(excinfo, path)


def test_what_the_daemon_decoded_is_validated_once():
    """A Struct the dispatcher's decoder made (``validate.DECODED``) is taken
    as it is; an equal one built in Python, or the same one outside that
    request, is converted (checked) again."""
    grid, dup = (msgspec.json.decode(raw, type=protocol.ParamGrid) for raw in (
        b'{"tp_mults": [2.0, 3.0], "sl_mults": [0.9]}',
        b'{"tp_mults": [2.0, 2.0], "sl_mults": [0.9]}'))
    token = validate.DECODED.set((grid, dup))
    try:
        assert validate.grid(grid) is grid
        same = protocol.ParamGrid(tp_mults=[2.0, 3.0], sl_mults=[0.9])
        assert validate.grid(same) is not same and validate.grid(same) == grid
        with pytest.raises(InvalidParams) as excinfo:  # never trusted: checked
            validate.grid(protocol.ParamGrid(tp_mults=[2.0, 0.5], sl_mults=[0.9]))
        assert_invalid(excinfo, "$.param_grid.tp_mults[1]")
        with pytest.raises(InvalidParams) as excinfo:  # the rules msgspec cannot say still hold
            validate.grid(dup)
        assert_invalid(excinfo, "$.param_grid.tp_mults[1]")
    finally:
        validate.DECODED.reset(token)
    assert validate.grid(grid) is not grid


def test_valid_structs_are_accepted_like_dicts(ds):
    as_struct = worker.simulate(ds, protocol.Params(tp_mult=2.0, sl_mult=0.9, max_hold_hrs=1.0),
                                config=protocol.SimulatorConfig(initial_capital=5000.0))
    as_dict = worker.simulate(ds, P, config={"initial_capital": 5000})
    assert as_struct == as_dict


# ---------------------------------------------------------------- boundaries accepted

@pytest.mark.parametrize("kw", [
    {"config": {"max_allocation_pct": 1, "min_executable_size": 0, "taker_fee_bps": 0,
                "slippage_bps": 0, "max_concurrent_positions": 1, "intrabar": "sl_first"}},
    {"constraints": {"min_win_rate": 0, "min_trades": 0, "max_drawdown": 0}},
    {"constraints": {"min_win_rate": 1}},
    {"mode": "per_trade", "objective": "avg_r", "constraints": {"min_trades": 1}},
    {"caller_groups": []},
    {"top_k": 0},
], ids=["config edges", "constraints zero", "win rate one", "per_trade", "no callers", "top_k 0"])
def test_boundary_values_are_valid(ds, kw):
    res = worker.optimize(ds, {"tp_mults": [1.0001, 2], "sl_mults": [0.9999, 1e-9]}, **kw)
    assert res.params_evaluated == 4


# ---------------------------------------------------------------- resource limit

def test_grid_over_max_points_is_a_resource_limit(ds):
    grid = {"tp_mults": [1.5, 2.0], "sl_mults": [0.9, 0.8], "max_hold_hrs": [1, 2]}
    with pytest.raises(ResourceLimit) as excinfo:
        worker.optimize(ds, grid, max_points=7)
    exc = excinfo.value
    assert not isinstance(exc, InvalidParams)
    assert exc.code == -32003
    assert exc.data["path"] == "$.param_grid"
    assert (exc.data["points"], exc.data["limit"]) == (8, 7)
    assert worker.optimize(ds, grid, max_points=8).params_evaluated == 8


@pytest.mark.parametrize("entry", ["optimize", "optimize_per_caller", "grouped_eval"])
def test_default_grid_counts_against_max_points(ds, entry):
    with pytest.raises(ResourceLimit) as excinfo:
        getattr(worker, entry)(ds, None, max_points=29)
    assert excinfo.value.code == -32003
    assert excinfo.value.data == {"path": "$.param_grid", "points": 30, "limit": 29}
