"""Simulation inputs shared by every method: config, parameters, grid.

``msgspec.Meta`` bounds put the rules in the JSON Schema and reject bad
values at decode time; ``worker._core.validate`` checks the same rules again for
values built in Python (a Struct built directly is not validated) and adds
the rules a schema cannot say (duplicate grid values).
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

# Every number that reaches a kernel is bounded here, at the edge, so no sum
# of a run can overflow to inf (an answer of ``final_capital: null``): money
# up to 10**15 (a quadrillion, in the account's currency), costs up to
# 10,000 bps (100 %) each side. Parameters without an upper bound are exact
# whatever their size (a take-profit never reached never triggers; a hold
# longer than any dataset is capped exactly, worker._core.engine.HOLD_NEVER_MS).
MAX_MONEY = 1e15
MAX_BPS = 10_000.0
Money = Annotated[float, msgspec.Meta(gt=0, le=MAX_MONEY)]
MoneyOrZero = Annotated[float, msgspec.Meta(ge=0, le=MAX_MONEY)]
Bps = Annotated[float, msgspec.Meta(ge=0, le=MAX_BPS)]
TpMult = Annotated[float, msgspec.Meta(gt=1, description="take-profit multiple of entry, > 1")]
SlMult = Annotated[float, msgspec.Meta(gt=0, lt=1, description="stop-loss multiple of entry, in (0, 1)")]
HoldHrs = Annotated[float, msgspec.Meta(gt=0, description="maximum hold in hours, > 0")]
# SPEC 11. A delay is a candle count: any count past a series' end is the
# same run (no entry), so 2**53 bounds it without changing a meaning.
TrailPct = Annotated[float, msgspec.Meta(
    gt=0, lt=1, description="trailing stop distance below the running peak, in (0, 1)")]
TrailActivation = Annotated[float, msgspec.Meta(
    ge=1, description="the trail arms once the peak reaches entry x this, >= 1")]
BreakevenTrigger = Annotated[float, msgspec.Meta(
    gt=1, description="the stop moves to breakeven once the peak reaches entry x this, > 1")]
BreakevenOffset = Annotated[float, msgspec.Meta(
    ge=0, description="breakeven stop at entry x (1 + this), >= 0 and < breakeven_trigger - 1")]
EntryDelay = Annotated[int, msgspec.Meta(
    ge=0, le=2**53, description="enter this many candles after the entry candle")]
EntryDip = Annotated[float, msgspec.Meta(
    ge=0, lt=1, description="limit buy this fraction below the entry candle's close; 0: market")]
EntryWait = Annotated[float, msgspec.Meta(
    gt=0, description="minutes a limit buy waits after the call, > 0")]

Mode = Literal["capital", "per_trade"]
Intrabar = Literal["tp_first", "sl_first"]
GapFill = Literal["level", "open"]

DEFAULT_TP_MULTS = (1.5, 2.0, 2.5, 3.0, 4.0, 5.0)
DEFAULT_SL_MULTS = (0.85, 0.88, 0.9, 0.92, 0.95)
DEFAULT_HOLD_HRS = (48.0,)


# A checkpointed run (SPEC 7/8): its directory is checkpoint_dir/run_id.
RunId = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", max_length=200,
                                    description="checkpointed run: the run directory is "
                                                "checkpoint_dir/run_id")]
CheckpointDir = Annotated[str, msgspec.Meta(
    description="absolute path of the directory that holds run directories")]


class SimulatorConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """SPEC section 2 config, with its defaults."""

    initial_capital: Money = 10_000.0
    max_allocation_pct: Annotated[float, msgspec.Meta(gt=0, le=1)] = 0.04
    max_risk_per_trade: Money = 200.0
    # Reaches the kernels as an exact int64 (any value >= the calls is the same run).
    max_concurrent_positions: Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)] = 25
    max_trade_horizon_hrs: HoldHrs = 48.0
    min_executable_size: MoneyOrZero = 10.0
    taker_fee_bps: Bps = 30.0
    slippage_bps: Bps = 10.0
    intrabar: Intrabar = "tp_first"
    # SPEC 11: "open" settles a candle that opens beyond a level at its open.
    gap_fill: GapFill = "level"


# SPEC 11's parameters with their defaults: each default leaves SPEC 2 as it is.
EXTENDED_DEFAULTS = {
    "trail_pct": None, "trail_activation": 1.0, "breakeven_trigger": None,
    "breakeven_offset": 0.0, "entry_delay_candles": 0, "entry_dip_pct": 0.0,
    "entry_max_wait_min": 60.0,
}


class Params(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True,
             omit_defaults=True):
    """One parameter set; ``max_hold_hrs`` None means the config's horizon.
    SPEC 11's fields are optional; a field at its default (off) is left out
    of answers, so a SPEC 2 parameter set reads as it always has."""

    tp_mult: TpMult
    sl_mult: SlMult
    max_hold_hrs: HoldHrs | None = None
    trail_pct: TrailPct | None = None
    trail_activation: TrailActivation = 1.0
    breakeven_trigger: BreakevenTrigger | None = None
    breakeven_offset: BreakevenOffset = 0.0
    entry_delay_candles: EntryDelay = 0
    entry_dip_pct: EntryDip = 0.0
    entry_max_wait_min: EntryWait = 60.0


def _dim(item):
    return Annotated[list[item], msgspec.Meta(min_length=1)] | None


class ParamGrid(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The grid ``tp_mults x sl_mults x max_hold_hrs`` (SPEC 5) x SPEC 11's
    dimensions, in grid order (``tp_mults`` outermost, ``entry_max_wait_min``
    innermost).

    ``max_hold_hrs`` None means the one value of the config's horizon; a
    SPEC 11 dimension left out is its one default; ``null`` in the list of
    ``trail_pct`` or ``breakeven_trigger`` is that exit switched off.
    """

    tp_mults: Annotated[list[TpMult], msgspec.Meta(min_length=1)] = msgspec.field(
        default_factory=lambda: list(DEFAULT_TP_MULTS))
    sl_mults: Annotated[list[SlMult], msgspec.Meta(min_length=1)] = msgspec.field(
        default_factory=lambda: list(DEFAULT_SL_MULTS))
    max_hold_hrs: Annotated[list[HoldHrs], msgspec.Meta(min_length=1)] | None = None
    trail_pct: _dim(TrailPct | None) = None
    trail_activation: _dim(TrailActivation) = None
    breakeven_trigger: _dim(BreakevenTrigger | None) = None
    breakeven_offset: _dim(BreakevenOffset) = None
    entry_delay_candles: _dim(EntryDelay) = None
    entry_dip_pct: _dim(EntryDip) = None
    entry_max_wait_min: _dim(EntryWait) = None


class Constraints(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Feasibility rules (SPEC 5); a point breaking one is never ``best``."""

    min_trades: Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)] | None = None
    max_drawdown: Annotated[float, msgspec.Meta(ge=0)] | None = None
    min_win_rate: Annotated[float, msgspec.Meta(ge=0, le=1)] | None = None


class Plateau(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """SPEC 12: a point's objective aggregated over its grid neighbours
    (index along every dimension within ``radius``)."""

    radius: Annotated[int, msgspec.Meta(ge=0, le=1_000)] = 1
    stat: Literal["mean", "min"] = "mean"


class StressLane(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """SPEC 12: a named variation of costs and fills. Fees, slippage and
    ``gap_fill`` replace the request's; ``entry_delay_candles`` is added to
    each point's own."""

    name: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    taker_fee_bps: Bps | None = None
    slippage_bps: Bps | None = None
    entry_delay_candles: EntryDelay | None = None
    gap_fill: GapFill | None = None


StressPreset = Literal["basic", "full", "adversarial"]
RankBy = Literal["objective", "plateau", "maximin"]


class FoldsSpec(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """SPEC 12 folds: ``rolling`` and ``anchored`` take ``train_days``,
    ``test_days`` (and ``step_days``, default ``test_days``); ``cpcv`` takes
    ``n_groups`` (default 6) and ``n_test_groups`` (default 2). The embargo
    defaults to the longest hold + wait + (delay + 1) base intervals."""

    scheme: Literal["rolling", "anchored", "cpcv"]
    train_days: Annotated[float, msgspec.Meta(gt=0)] | None = None
    test_days: Annotated[float, msgspec.Meta(gt=0)] | None = None
    step_days: Annotated[float, msgspec.Meta(gt=0)] | None = None
    # C(16, 8) = 12,870 folds at most: every fold is a train and a test run.
    n_groups: Annotated[int, msgspec.Meta(ge=2, le=16)] | None = None
    n_test_groups: Annotated[int, msgspec.Meta(ge=1, le=15)] | None = None
    embargo_hrs: Annotated[float, msgspec.Meta(ge=0)] | None = None


class PboSpec(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """SPEC 12's probability of backtest overfitting: ``blocks`` (even) time
    blocks, every half of them in-sample once (C(20, 10) = 184,756 splits at most)."""

    # Odd counts are refused by folds.block_edges (with the path).
    blocks: Annotated[int, msgspec.Meta(ge=2, le=20, description="even")] = 16

