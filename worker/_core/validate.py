"""Validation at the edge: every rule broken raises ``InvalidParams`` naming
the JSON path of the field (``$.param_grid.sl_mults[2]``).

A Struct built in Python skips msgspec's decode-time checks, so values are
round-tripped through ``msgspec.convert`` (not what the daemon's decoder has
just checked, ``DECODED``): the ``Meta`` bounds in ``protocol`` stay the
single statement of the range rules. What a schema
cannot say (finite numbers, duplicate grid values, the objective's name) is
checked here.
"""

from __future__ import annotations

import math
from contextvars import ContextVar
from typing import Any, TypeVar

import msgspec

from protocol import (
    EXTENDED_DEFAULTS,
    Constraints,
    ParamGrid,
    Params,
    Plateau,
    SimulatorConfig,
    StressLane,
)

from .._errors import InvalidParams, ResourceLimit, split_msgspec_error
from .layouts import DEFAULT_OBJECTIVE, METRICS
from .robust import STRESS_PRESETS, Lane

T = TypeVar("T")

# The params' fields msgspec validated while decoding the current daemon
# request (set by worker._daemon.dispatch): taken as they are by ``convert``
# and by the row loader (worker._data.loaders).
DECODED: ContextVar[tuple[Any, ...]] = ContextVar("DECODED", default=())

OBJECTIVES = METRICS  # any metric of the mode; DEFAULT_OBJECTIVE when none is given
# ParamGrid's dimensions in grid order (SPEC 5, then SPEC 11's).
GRID_DIMENSIONS = ("tp_mults", "sl_mults", "max_hold_hrs", *EXTENDED_DEFAULTS)


def join_path(base: str, sub: str) -> str:
    """``join_path("$.param_grid", "$.tp_mults[0]")`` -> ``$.param_grid.tp_mults[0]``."""
    return base + sub[1:] if sub.startswith("$") else f"{base}.{sub}"


def convert(value: Any, typ: type[T], path: str) -> T:
    """``value`` (a dict, or already a ``typ``) as a validated ``typ``."""
    if value is None:
        value = {}
    if type(value) is typ and any(value is s for s in DECODED.get()):
        return value  # decoded from JSON: checked, and JSON has no NaN or inf
    raw = msgspec.to_builtins(value) if isinstance(value, msgspec.Struct) else value
    try:
        obj = msgspec.convert(raw, typ)
    except msgspec.ValidationError as exc:
        message, sub = split_msgspec_error(exc)
        raise InvalidParams(message, path=join_path(path, sub)) from None
    _check_finite(raw, path)
    return obj


def _check_finite(raw: Any, path: str) -> None:
    if isinstance(raw, float) and not math.isfinite(raw):
        raise InvalidParams(f"must be a finite number, got {raw}", path=path)
    if isinstance(raw, dict):
        for key, item in raw.items():
            _check_finite(item, f"{path}.{key}")
    elif isinstance(raw, (list, tuple)):
        for i, item in enumerate(raw):
            _check_finite(item, f"{path}[{i}]")


def config(value: Any, path: str = "$.simulator_config") -> SimulatorConfig:
    return convert(value, SimulatorConfig, path)


def params(value: Any, path: str = "$.params") -> Params:
    obj = convert(value, Params, path)
    _check_breakeven(obj.breakeven_trigger, obj.breakeven_offset, f"{path}.breakeven_offset")
    return obj


def _check_breakeven(trigger: float | None, offset: float, path: str) -> None:
    """SPEC 11: the breakeven stop lies below its trigger (``offset <
    trigger - 1``); with breakeven off the offset plays no part."""
    if trigger is not None and not offset < trigger - 1:
        raise InvalidParams(f"breakeven_offset {offset} must be < breakeven_trigger - 1 "
                            f"(trigger {trigger})", path=path)


def constraints(value: Any, mode: str, path: str = "$.constraints") -> Constraints:
    obj = convert(value, Constraints, path)
    if mode == "per_trade" and obj.max_drawdown is not None:
        raise InvalidParams("max_drawdown is a capital-mode metric; per_trade mode has none",
                            path=f"{path}.max_drawdown")
    return obj


def grid(value: Any, path: str = "$.param_grid", max_points: int | None = None) -> ParamGrid:
    obj = convert(value, ParamGrid, path)
    for name in GRID_DIMENSIONS:
        values = getattr(obj, name) or ()
        seen: dict[Any, int] = {}
        for i, v in enumerate(values):
            if v in seen:
                raise InvalidParams(f"duplicate value {v} (first at index {seen[v]})",
                                    path=f"{path}.{name}[{i}]")
            seen[v] = i
    for i, off in enumerate(obj.breakeven_offset or ()):
        for trigger in obj.breakeven_trigger or ():
            # Decision: a grid is a product, so every pair must be valid; an
            # offset that would sit at or above one of the triggers is an error.
            _check_breakeven(trigger, off, f"{path}.breakeven_offset[{i}]")
    n = grid_size(obj)
    if max_points is not None and n > max_points:
        raise ResourceLimit(f"grid has {n} points, over the limit of {max_points}",
                            data={"path": path, "points": n, "limit": max_points})
    return obj


def mode(value: Any, path: str = "$.mode") -> str:
    if value is None:
        return "capital"
    if value not in OBJECTIVES:
        raise InvalidParams(f"unknown mode {value!r}; expected 'capital' or 'per_trade'", path=path)
    return value


def objective(value: Any, mode_: str, path: str = "$.objective") -> str:
    if value is None:
        return DEFAULT_OBJECTIVE[mode_]
    if value not in OBJECTIVES[mode_]:
        names = ", ".join(OBJECTIVES[mode_])
        raise InvalidParams(f"unknown objective {value!r} for {mode_} mode; one of: {names}",
                            path=path)
    return value


def grid_size(g: ParamGrid) -> int:
    """Grid points: the product of every dimension's length (one left out
    has one value: the config's hold, a SPEC 11 default)."""
    return math.prod(len(getattr(g, name) or (0,)) for name in GRID_DIMENSIONS)


def flag(value: Any, path: str) -> bool:
    """A JSON boolean: a string like "false" must not read as true."""
    if not isinstance(value, bool):
        raise InvalidParams(f"must be true or false, got {value!r:.40}", path=path)
    return value


def plateau(value: Any, rank_by_: str, path: str = "$.plateau") -> Plateau | None:
    """SPEC 12's plateau spec; ``rank_by: "plateau"`` without one uses the
    defaults (radius 1, mean)."""
    if value is None:
        return Plateau() if rank_by_ == "plateau" else None
    return convert(value, Plateau, path)


def stress(value: Any, path: str = "$.stress") -> tuple[Lane, ...] | None:
    """A preset name or a list of lanes (SPEC 12), as ``robust.Lane``s;
    lane names must be unique (they key each point's ``lanes``)."""
    if value is None:
        return None
    if isinstance(value, str):
        if value not in STRESS_PRESETS:
            raise InvalidParams(f"unknown stress preset {value!r:.40}; one of "
                                f"{', '.join(STRESS_PRESETS)}", path=path)
        return STRESS_PRESETS[value]
    if not isinstance(value, (list, tuple)) or not value:
        raise InvalidParams("must be a preset name or a non-empty list of lanes", path=path)
    lanes, seen = [], {}
    for i, item in enumerate(value):
        lane = convert(item, StressLane, f"{path}[{i}]")
        if lane.name in seen:
            raise InvalidParams(f"duplicate lane name {lane.name!r:.40} (first at index "
                                f"{seen[lane.name]})", path=f"{path}[{i}].name")
        seen[lane.name] = i
        lanes.append(Lane(lane.name, lane.taker_fee_bps, lane.slippage_bps,
                          lane.entry_delay_candles or 0, lane.gap_fill))
    return tuple(lanes)


def rank_by(value: Any, has_stress: bool, path: str = "$.rank_by") -> str:
    if value is None:
        return "objective"
    if value not in ("objective", "plateau", "maximin"):
        raise InvalidParams(f"unknown rank_by {value!r:.40}; one of objective, plateau, maximin",
                            path=path)
    if value == "maximin" and not has_stress:
        raise InvalidParams("rank_by maximin needs stress lanes (give stress)", path=path)
    return value

