"""Plug-in strategies (SPEC 13): ``strategy: "package.module:function"``
names a callable ``fn(bars, params) -> {"index", "direction"[, "stop"]}``.

Only modules importable by the worker are loaded (``importlib`` on the
worker's own path: no file paths, no relative names). A plug-in is someone
else's code, so its output is checked rule by rule, and anything it does
wrong (raising included) becomes a ``SignalError`` that fails that one
(symbol, timeframe, params) signal set, not the request.

Decisions where SPEC 13 is silent:
- ``stop`` NaN is not "no stop": every given stop must be finite and > 0;
  a plug-in without stops leaves the key out (or sets it to None).
- keys other than index, direction, stop are errors (a typo like "stops"
  would otherwise drop every stop silently).
- an empty array of any numeric dtype is a valid empty column (``np.asarray([])``
  is float64); otherwise indices need an integer dtype, directions an integer
  or float dtype holding exactly +1 or -1.
- the bars are one read-only copy per ``PluginBars`` (build it once per
  symbol and timeframe with ``plugin_bars`` and reuse it across sets).
"""

from __future__ import annotations

import copy
import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._errors import InvalidParams
from .indicators import Signals

__all__ = ["PluginBars", "SignalError", "load_plugin", "plugin_bars", "run_plugin"]

BAR_FIELDS = ("ts_ms", "open", "high", "low", "close", "volume")
OUTPUT_KEYS = ("index", "direction", "stop")


class SignalError(Exception):
    """A plug-in's signal set is unusable: ``rule`` names the rule broken,
    ``position`` the offending signal's position in the output (or None)."""

    def __init__(self, message: str, *, rule: str, position: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.rule = rule
        self.position = position


@dataclass(frozen=True, kw_only=True, eq=False)
class PluginBars:
    """What a plug-in sees: one symbol's bars at one timeframe, read-only."""

    ts_ms: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray


def _frozen(a: Any, dtype: type) -> np.ndarray:
    out = np.array(a, dtype=dtype, copy=True)  # owned: the caller's arrays stay out of reach
    out.flags.writeable = False
    return out


def plugin_bars(bars: Any) -> PluginBars:
    """A read-only copy of ``bars`` (numpy ``ts_ms, open, high, low, close,
    volume``); a ``PluginBars`` is returned as it is."""
    if isinstance(bars, PluginBars):
        return bars
    return PluginBars(**{f: _frozen(getattr(bars, f), np.int64 if f == "ts_ms" else np.float64)
                         for f in BAR_FIELDS})


def _is_identifier_path(name: str) -> bool:
    return bool(name) and all(part.isidentifier() for part in name.split("."))


def plugin_spec(spec: Any, path: str = "$.strategy") -> tuple[str, str]:
    """(module, function) of ``"package.module:function"``, its spelling
    checked (nothing is imported); else InvalidParams."""
    if not isinstance(spec, str) or spec.count(":") != 1:
        raise InvalidParams(f"a plug-in strategy is 'package.module:function', got {spec!r:.80}",
                            path=path)
    module_name, attr = spec.split(":")
    if not _is_identifier_path(module_name) or not attr.isidentifier():
        raise InvalidParams(f"a plug-in strategy is 'package.module:function' with dotted "
                            f"Python names, got {spec!r:.80}", path=path)
    return module_name, attr


def load_plugin(spec: Any, path: str = "$.strategy") -> Callable:
    """The callable named by ``"package.module:function"``; InvalidParams
    naming what is missing (module, attribute) or wrong (not callable)."""
    module_name, attr = plugin_spec(spec, path)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        what = ("not found" if exc.name == module_name
                else f"cannot be imported: no module named {exc.name!r:.60}")
        raise InvalidParams(f"plug-in module {module_name!r:.80} {what}", path=path) from None
    except Exception as exc:  # noqa: BLE001  (its import fails: report the type, not the code)
        raise InvalidParams(f"plug-in module {module_name!r:.80} failed to import "
                            f"({type(exc).__name__})", path=path) from None
    fn = getattr(module, attr, None)
    if fn is None:
        raise InvalidParams(f"plug-in module {module_name!r:.80} has no attribute {attr!r:.60}",
                            path=path)
    if not callable(fn):
        raise InvalidParams(f"plug-in {spec!r:.80} is not callable "
                            f"(a {type(fn).__name__})", path=path)
    return fn


def run_plugin(fn: Callable, bars: Any, params: dict) -> Signals:
    """The plug-in's signals on one symbol's bars at one timeframe, checked;
    its exception or a bad output raises ``SignalError``."""
    view = plugin_bars(bars)
    try:
        return check_output(fn(view, copy.deepcopy(params)), len(view.close))
    except SignalError:
        raise
    # BaseException too: a plug-in's SystemExit, KeyboardInterrupt or
    # GeneratorExit (raised by it or by its output's methods while checked)
    # fails its set, never the caller (the daemon runs plug-ins on its threads).
    except BaseException as exc:  # noqa: BLE001
        try:
            text = str(exc).splitlines()[0][:120] if str(exc) else ""
        except BaseException:  # noqa: BLE001  (a hostile __str__)
            text = ""
        raise SignalError(f"plug-in raised {type(exc).__name__}: {text}" if text
                          else f"plug-in raised {type(exc).__name__}",
                          rule="exception") from exc


def _column(out: Mapping, key: str) -> np.ndarray:
    try:
        a = np.asarray(out[key])
    except Exception as exc:  # noqa: BLE001  (any object a plug-in returns)
        raise SignalError(f"{key} is not an array ({type(exc).__name__})",
                          rule="array") from None
    if a.ndim != 1:
        raise SignalError(f"{key} must be a 1-D array, got {a.ndim} dimensions", rule="array")
    if a.dtype.kind not in "iuf" or (a.size and key == "index" and a.dtype.kind == "f"):
        raise SignalError(f"{key} must hold {'integers' if key == 'index' else 'numbers'}, "
                          f"got dtype {a.dtype}", rule="dtype")
    return a


def _first(bad: np.ndarray) -> int:
    return int(np.flatnonzero(bad)[0])


def check_output(out: Any, n: int) -> Signals:
    """A plug-in's output as ``Signals``, each SPEC 13 rule checked: index
    in ``[0, n)`` and strictly increasing (so at most one signal per bar),
    direction exactly +1 or -1, stop finite and > 0, equal lengths."""
    if not isinstance(out, Mapping):
        raise SignalError(f"output must be a dict with index and direction, got "
                          f"{type(out).__name__}", rule="output")
    for key in out:
        if key not in OUTPUT_KEYS:
            raise SignalError(f"output has unknown key {str(key)!r:.40}; expected index, "
                              "direction, stop", rule="output")
    for key in OUTPUT_KEYS[:2]:
        if key not in out:
            raise SignalError(f"output has no {key}", rule="output")
    idx, d = _column(out, "index"), _column(out, "direction")
    stop = _column(out, "stop") if out.get("stop") is not None else None
    lengths = {len(idx), len(d), len(idx) if stop is None else len(stop)}
    if len(lengths) != 1:
        raise SignalError(f"index, direction{', stop' if stop is not None else ''} lengths "
                          f"differ: {len(idx)}, {len(d)}"
                          + (f", {len(stop)}" if stop is not None else ""), rule="length")
    bad = (idx < 0) | (idx >= n)
    if bad.any():
        k = _first(bad)
        raise SignalError(f"index at position {k} is {int(idx[k])}, outside [0, {n})",
                          rule="index_range", position=k)
    idx = idx.astype(np.int64)
    if idx.size > 1 and (np.diff(idx) <= 0).any():
        k = _first(np.diff(idx) <= 0) + 1
        raise SignalError(f"index must be strictly increasing (one signal per bar): position "
                          f"{k} is {int(idx[k])} after {int(idx[k - 1])}",
                          rule="index_order", position=k)
    bad = (d != 1) & (d != -1)
    if bad.any():
        raise SignalError(f"direction at position {_first(bad)} is not +1 or -1",
                          rule="direction", position=_first(bad))
    if stop is None:
        stop = np.full(idx.size, np.nan)
    else:
        bad = ~np.isfinite(stop) | (stop <= 0)
        if bad.any():
            raise SignalError(f"stop at position {_first(bad)} is not a finite price > 0",
                              rule="stop", position=_first(bad))
    return Signals(idx.copy(), d.astype(np.int64), stop.astype(np.float64))
