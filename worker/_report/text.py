"""Names and number formats of the run directory's report (``worker._report.report``,
``worker._report.summary``, ``worker._report.plots``): which metrics a mode has, which
are counts, percents or money, and how a figure, a parameter or a markdown
table cell is written, and the results table's columns. Metric and reason
names come from ``worker._core.layouts``. Pure functions; no I/O.
"""

from __future__ import annotations

import datetime as _dt
import math
from typing import Any

from protocol import EXTENDED_DEFAULTS

from .._core.layouts import COUNT_METRICS, EXIT_REASONS, METRICS, MODE_SKIP_REASONS

__all__ = ["METRICS", "PARAMS", "EXTENDED", "DIMENSIONS", "OFF_WHEN_NULL", "param_columns",
           "COUNTS", "PERCENT", "SIGNED", "MONEY", "KEY_METRICS",
           "CORR_METRICS", "TOP_N", "FLAGS", "skip_reasons", "exit_column", "skip_column",
           "table_column_names", "fmt_metric", "fmt_param", "fmt_dim", "fmt_params", "param_value",
           "md_cell", "md_table", "iso"]

PARAMS = ("tp_mult", "sl_mult", "max_hold_hrs")
# SPEC 11's parameters, in grid order (after max_hold_hrs). A results table
# has a column for each one its grid sets or varies; a run without them has
# exactly the three columns above, as before.
EXTENDED = tuple(EXTENDED_DEFAULTS)
DIMENSIONS = (*PARAMS, *EXTENDED)
# Their "off" (null) is a null cell in the table, NaN in numpy: no number
# would mean "off" (a trail of 0 is a stop at the peak, not no trail).
OFF_WHEN_NULL = frozenset(k for k, v in EXTENDED_DEFAULTS.items() if v is None)
COUNTS = COUNT_METRICS
PERCENT = frozenset({"total_return", "win_rate", "max_drawdown", "avg_return", "median_return"})
SIGNED = frozenset({"total_return", "avg_return", "median_return"})
MONEY = frozenset({"final_capital", "fees_paid"})
# The figures a reader looks at first, per mode: Top 10 columns; with the
# hold time, the correlation columns.
KEY_METRICS = {
    "capital": ("final_capital", "total_return", "trades_executed", "win_rate",
                "max_drawdown", "profit_factor"),
    "per_trade": ("avg_return", "median_return", "total_return", "trades", "win_rate",
                  "profit_factor", "avg_r"),
}
CORR_METRICS = {mode: (*names, "avg_hold_min") for mode, names in KEY_METRICS.items()}
TOP_N = 10
FLAGS = ("collapsed_capital", "requires_extreme_params")


def skip_reasons(mode: str) -> tuple[str, ...]:
    """Per-trade mode has no account, so ``no_entry`` is its only skip (SPEC 3)."""
    return MODE_SKIP_REASONS[mode]


def exit_column(reason: str) -> str:
    return f"exits_{reason}"


def skip_column(reason: str) -> str:
    return f"skipped_{reason}"


def param_columns(names) -> list[str]:
    """The grid dimensions among a table's column names, in grid order."""
    names = set(names)
    return [d for d in DIMENSIONS if d in names]


def table_column_names(mode: str, per_caller: bool = False,
                       extended: tuple[str, ...] = ()) -> list[str]:
    """The results table's columns, in order (``report.results_table``);
    ``extended``: the SPEC 11 dimensions the grid sets."""
    return [*(("caller",) if per_caller else ()), "index", *PARAMS,
            *(d for d in EXTENDED if d in extended), *METRICS[mode],
            *map(exit_column, EXIT_REASONS), *map(skip_column, skip_reasons(mode)),
            "feasible", "rank", "failed"]


def fmt_metric(name: str, value: Any) -> str:
    """A metric for a reader: percents, money with separators, counts."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if name in COUNTS:
        return f"{int(value):,}"
    if name in PERCENT:
        return f"{value:+.2%}" if name in SIGNED else f"{value:.2%}"
    if name in MONEY:
        return f"{value:,.2f}"
    if name == "avg_hold_min":
        return f"{value:,.1f}"
    return f"{value:,.3f}"


def fmt_param(value: Any) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) \
        else f"{value:.6g}"


def fmt_dim(name: str, value: Any) -> str:
    """A dimension's value: "off" for a null trail or breakeven."""
    missing = value is None or (isinstance(value, float) and math.isnan(value))
    return "off" if missing and name in OFF_WHEN_NULL else fmt_param(value)


def fmt_params(p: dict | None) -> str:
    """A parameter set (a ``Params`` as JSON); SPEC 11 parameters only when
    set to something else than their default (answers leave defaults out)."""
    if not p:
        return "none"
    extended = [k for k in EXTENDED if k in p and p[k] != EXTENDED_DEFAULTS[k]]
    return ", ".join([*(f"{k} {fmt_param(p.get(k))}" for k in PARAMS),
                      *(f"{k} {fmt_dim(k, p[k])}" for k in extended)])


def param_value(p: dict, name: str) -> Any:
    """A dimension's value in a ``Params`` as JSON: absent is its default."""
    return p.get(name, EXTENDED_DEFAULTS.get(name))


def iso(ms: int) -> str:
    """A time in ms for a reader (walk-forward windows): UTC, to the millisecond."""
    t = _dt.datetime.fromtimestamp(int(ms) / 1000, _dt.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(ms) % 1000:03d}Z"


def md_cell(text: Any) -> str:
    """Pipes would end a table cell and newlines the row."""
    return " ".join(str(text).split()).replace("|", "\\|")


def md_table(header: list[str], rows: list[list[str]], align: str) -> list[str]:
    """``align``: one letter per column, ``l`` or ``r``."""
    sep = ["---:" if a == "r" else ":---" for a in align]
    return ["| " + " | ".join(md_cell(c) for c in line) + " |"
            for line in [header, sep, *rows]] + [""]

