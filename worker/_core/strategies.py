"""SPEC 13's strategies: the built-ins' parameters, the strategy grid, and
one run of a strategy on one symbol's bars at one timeframe.

``strategy_sets`` validates a ``strategy_grid`` and expands it into the
parameter sets in grid order (the object's keys as sent, the last key
innermost); ``is_rejected`` tells the sets a strategy cannot run (counted,
not errors); ``run_strategy`` runs a built-in kernel (``indicators``) or a
plug-in (``plugins``, "package.module:function").

Decisions where SPEC 13 is silent:
- an integer parameter takes JSON integers only: ``2.0`` is invalid (as
  msgspec treats the other grids' integers), ``true`` is not an integer;
  a float parameter takes integers too. Integers are at most ``INT_MAX``
  (2**31 - 1) so a kernel's index arithmetic cannot overflow.
- ``direction`` not given is ``"both"``, added after the keys as sent.
- a plug-in's grid takes any JSON scalars (no schema is known), each list
  non-empty, without duplicates (``1`` and ``1.0`` are the same number,
  ``true`` is not ``1``); no ``direction`` is added. ``strategy_sets``
  loads the plug-in, so an unloadable one fails before any bars are read.
- ``run_strategy`` on a rejected set raises InvalidParams: the engine
  leaves such sets out, and ``simulate`` cannot run one.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._errors import InvalidParams, ResourceLimit
from .indicators import (
    BOTH,
    LONG_ONLY,
    SHORT_ONLY,
    Signals,
    donchian_breakout_nb,
    rsi_nb,
    rsi_reversion_nb,
    rsi_reversion_of_nb,
    sma_cross_nb,
    sma_cross_of_nb,
    sma_nb,
    sweep_bos_nb,
)
from .plugins import load_plugin, plugin_spec, run_plugin

__all__ = [
    "BUILTINS", "DIRECTIONS", "INT_MAX", "ParamDef", "Signals", "StrategyDef", "check_params",
    "donchian_breakout_nb", "is_plugin", "is_rejected", "rsi_reversion_nb", "run_strategy",
    "sma_cross_nb", "strategy_sets", "sweep_bos_nb",
]

INT_MAX = 2**31 - 1
DIRECTIONS = {"both": BOTH, "long": LONG_ONLY, "short": SHORT_ONLY}


@dataclass(frozen=True, kw_only=True)
class ParamDef:
    """One parameter: ``kind`` int or float, within ``[lo, hi]``."""

    name: str
    kind: type
    lo: float
    hi: float


@dataclass(frozen=True, kw_only=True)
class StrategyDef:
    """A built-in: its required parameters (``direction`` is implied), the
    rule for sets it cannot run, and its kernel call on one symbol's bars."""

    name: str
    params: tuple[ParamDef, ...]
    rejected: Callable[[dict], bool]
    rejected_rule: str
    run: Callable[[Any, dict, int, dict | None], tuple]  # (bars, params, direction, memo)


def _int(name: str) -> ParamDef:
    return ParamDef(name=name, kind=int, lo=1, hi=INT_MAX)


def _f64(bars: Any, name: str) -> np.ndarray:
    return np.ascontiguousarray(getattr(bars, name), dtype=np.float64)


def _memo(memo: dict | None, key: tuple, make: Callable[[], np.ndarray]) -> np.ndarray:
    """An indicator series of one symbol's bars at one timeframe, made once
    per ``memo`` (a search's: many parameter sets share an average)."""
    if memo is None:
        return make()
    hit = memo.get(key)
    if hit is None:
        hit = memo[key] = make()
    return hit


def _sma_cross(b: Any, p: dict, d: int, memo: dict | None) -> tuple:
    close = _f64(b, "close")
    f, s = (_memo(memo, ("sma", n), lambda n=n: sma_nb(close, n)) for n in (p["fast"], p["slow"]))
    return sma_cross_of_nb(f, s, p["fast"], p["slow"], d)


def _rsi_reversion(b: Any, p: dict, d: int, memo: dict | None) -> tuple:
    r = _memo(memo, ("rsi", p["period"]), lambda: rsi_nb(_f64(b, "close"), p["period"]))
    return rsi_reversion_of_nb(r, p["period"], p["lower"], p["upper"], d)


BUILTINS: dict[str, StrategyDef] = {
    "sma_cross": StrategyDef(
        name="sma_cross", params=(_int("fast"), _int("slow")),
        rejected=lambda p: p["fast"] >= p["slow"], rejected_rule="fast >= slow",
        run=_sma_cross),
    "donchian_breakout": StrategyDef(
        name="donchian_breakout", params=(_int("lookback"),),
        rejected=lambda p: False, rejected_rule="",
        run=lambda b, p, d, memo: donchian_breakout_nb(
            _f64(b, "high"), _f64(b, "low"), _f64(b, "close"), p["lookback"], d)),
    "rsi_reversion": StrategyDef(
        name="rsi_reversion",
        params=(_int("period"), ParamDef(name="lower", kind=float, lo=0.0, hi=100.0),
                ParamDef(name="upper", kind=float, lo=0.0, hi=100.0)),
        rejected=lambda p: p["lower"] >= p["upper"], rejected_rule="lower >= upper",
        run=_rsi_reversion),
    "sweep_bos": StrategyDef(
        name="sweep_bos", params=(_int("swing"), _int("window")),
        rejected=lambda p: False, rejected_rule="",
        run=lambda b, p, d, memo: sweep_bos_nb(_f64(b, "high"), _f64(b, "low"),
                                               _f64(b, "close"), p["swing"], p["window"], d)),
}


def is_plugin(strategy: Any) -> bool:
    """"package.module:function" names a plug-in; anything else a built-in."""
    return isinstance(strategy, str) and ":" in strategy


def check_strategy_name(strategy: Any, path: str = "$.strategy") -> None:
    """A built-in's name or a plug-in's spelling (nothing imported), else
    InvalidParams."""
    if is_plugin(strategy):
        plugin_spec(strategy, path)
    else:
        builtin(strategy, path)


def builtin(strategy: Any, path: str = "$.strategy") -> StrategyDef:
    """The built-in named ``strategy``, else InvalidParams listing them."""
    if isinstance(strategy, str) and strategy in BUILTINS:
        return BUILTINS[strategy]
    raise InvalidParams(f"unknown strategy {strategy!r:.60}; one of {', '.join(BUILTINS)} "
                        "or a plug-in 'package.module:function'", path=path)


def _value(spec: ParamDef | None, v: Any, path: str) -> Any:
    """One grid value checked against its parameter (``None``: ``direction``)."""
    if spec is None:
        if isinstance(v, str) and v in DIRECTIONS:
            return v
        raise InvalidParams(f"direction must be one of long, short, both; got {v!r:.40}",
                            path=path)
    is_int = isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))
    if spec.kind is int and not is_int:
        raise InvalidParams(f"{spec.name} must be an integer, got {v!r:.40}", path=path)
    if not is_int and not (isinstance(v, (float, np.floating)) and math.isfinite(v)):
        raise InvalidParams(f"{spec.name} must be a finite number, got {v!r:.40}", path=path)
    v = spec.kind(v)
    if not spec.lo <= v <= spec.hi:
        raise InvalidParams(f"{spec.name} must be within [{spec.lo:g}, {spec.hi:g}], got {v}",
                            path=path)
    return v


def _plugin_value(v: Any, path: str) -> Any:
    if v is None or isinstance(v, (bool, int, str)):
        return v
    if isinstance(v, float) and math.isfinite(v):
        return v
    raise InvalidParams(f"a plug-in's grid value must be a JSON scalar (a finite number, a "
                        f"string, true, false or null), got {type(v).__name__}", path=path)


def _dup_key(v: Any) -> Any:
    """Values equal as JSON: ``1 == 1.0``, but ``true`` is not ``1``."""
    return (type(v),) if v is None else (isinstance(v, bool), v)


def _values(check: Callable[[Any, str], Any], values: Any, path: str) -> list:
    """A grid dimension: a non-empty list of distinct valid values."""
    if not isinstance(values, (list, tuple)):
        raise InvalidParams(f"must be a list of values, got {type(values).__name__}", path=path)
    if not values:
        raise InvalidParams("must be a non-empty list", path=path)
    out: list = []
    seen: dict[Any, int] = {}
    for i, raw in enumerate(values):
        v = check(raw, f"{path}[{i}]")
        key = _dup_key(v)
        if key in seen:
            raise InvalidParams(f"duplicate value {v!r:.40} (first at index {seen[key]})",
                                path=f"{path}[{i}]")
        seen[key] = i
        out.append(v)
    return out


def _grid_dims(strategy: str, grid: dict, path: str) -> dict[str, list]:
    """Each key's checked values, in the key order as sent."""
    if is_plugin(strategy):
        return {str(k): _values(_plugin_value, v, f"{path}.{k}") for k, v in grid.items()}
    sdef = builtin(strategy)
    specs: dict[str, ParamDef | None] = {p.name: p for p in sdef.params}
    specs["direction"] = None
    dims: dict[str, list] = {}
    for key, values in grid.items():
        if key not in specs:
            raise InvalidParams(f"unknown parameter {key!r:.40} of {sdef.name}; its "
                                f"parameters: {', '.join(specs)}", path=f"{path}.{key}")
        spec = specs[key]
        dims[key] = _values(lambda v, p, s=spec: _value(s, v, p), values, f"{path}.{key}")
    missing = [p.name for p in sdef.params if p.name not in dims]
    if missing:
        raise InvalidParams(f"{sdef.name} needs {', '.join(missing)}", path=path)
    dims.setdefault("direction", ["both"])
    return dims


def strategy_sets(strategy: str, strategy_grid: dict | None,
                  path: str = "$.strategy_grid", *, max_points: int | None = None,
                  points_per_set: int = 1) -> list[dict]:
    """Every parameter set of the grid, in grid order (the product over the
    keys as sent, the last key innermost), each holding every parameter
    (``direction`` included for built-ins). Rejected sets are included:
    filter them with ``is_rejected``. ``max_points``: ResourceLimit when
    the sets times ``points_per_set`` exceed it, before the grid is expanded."""
    # An unknown or unloadable strategy is $.strategy's error, not the grid's,
    # and is found before any bars are read.
    if is_plugin(strategy):
        load_plugin(strategy)
    else:
        builtin(strategy)
    if strategy_grid is None:
        strategy_grid = {}
    if not isinstance(strategy_grid, dict):
        raise InvalidParams("must be an object of parameter lists", path=path)
    dims = _grid_dims(strategy, strategy_grid, path)
    n_points = math.prod(len(x) for x in dims.values()) * points_per_set
    if max_points is not None and n_points > max_points:
        raise ResourceLimit(f"{n_points:,} grid points, over the limit of {max_points:,}",
                            data={"path": path})
    keys = list(dims)
    return [dict(zip(keys, combo, strict=True))
            for combo in itertools.product(*dims.values())]


def check_params(strategy: str, params: dict, path: str = "$.params") -> dict:
    """One flat set of a built-in's parameters (scalars, not lists),
    validated as ``strategy_sets`` does, with ``direction`` defaulted."""
    if not isinstance(params, dict):
        raise InvalidParams("must be an object of parameters", path=path)
    grid = {k: [v] for k, v in params.items()}
    try:
        return strategy_sets(strategy, grid, path)[0]
    except InvalidParams as exc:
        # Point at the scalar, not at its place in the one-value list.
        sub = exc.path.removesuffix("[0]")
        raise InvalidParams(exc.message.rsplit(" (at ", 1)[0], path=sub) from None


def is_rejected(strategy: str, params: dict) -> bool:
    """A set the strategy cannot run (``fast >= slow``, ``lower >= upper``):
    left out of the grid and counted, not an error. Plug-ins: never."""
    if is_plugin(strategy):
        return False
    return builtin(strategy).rejected(params)


def run_strategy(strategy: str, bars: Any, params: dict, memo: dict | None = None) -> Signals:
    """The signals of ``strategy`` on one symbol's bars at one timeframe
    (``bars`` has numpy ``ts_ms, open, high, low, close, volume``).
    ``memo``: a dict kept for these bars across parameter sets, where
    built-ins keep the indicator series they share (SMAs, RSIs).

    A plug-in's exception or bad output raises ``plugins.SignalError``."""
    if is_plugin(strategy):
        return run_plugin(load_plugin(strategy), bars, params)
    sdef = builtin(strategy)
    p = check_params(strategy, params)
    if sdef.rejected(p):
        raise InvalidParams(f"{sdef.name} cannot run a set with {sdef.rejected_rule}",
                            path="$.params")
    return Signals(*sdef.run(bars, p, DIRECTIONS[p["direction"]], memo))
