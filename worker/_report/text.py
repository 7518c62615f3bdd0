"""Names and number formats of the run directory's report (``worker._report.report``,
``worker._report.summary``, ``worker._report.plots``): which metrics a mode has, which
are counts, percents or money, and how a figure, a parameter or a markdown
table cell is written. Pure functions; no I/O.
"""

from __future__ import annotations

import math
from typing import Any

from .._core.kernels import CAPITAL_METRICS, PER_TRADE_METRICS, SKIP_REASONS

__all__ = ["METRICS", "PARAMS", "COUNTS", "PERCENT", "SIGNED", "MONEY", "KEY_METRICS",
           "CORR_METRICS", "TOP_N", "FLAGS", "skip_reasons", "fmt_metric", "fmt_param",
           "fmt_params", "md_cell", "md_table"]

METRICS = {"capital": CAPITAL_METRICS, "per_trade": PER_TRADE_METRICS}
PARAMS = ("tp_mult", "sl_mult", "max_hold_hrs")
COUNTS = frozenset({"trades_executed", "wins", "losses", "trades_skipped", "trades"})
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
    return ("no_entry",) if mode == "per_trade" else SKIP_REASONS


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


def fmt_params(p: dict | None) -> str:
    if not p:
        return "none"
    return ", ".join(f"{k} {fmt_param(p.get(k))}" for k in PARAMS)


def md_cell(text: Any) -> str:
    """Pipes would end a table cell and newlines the row."""
    return " ".join(str(text).split()).replace("|", "\\|")


def md_table(header: list[str], rows: list[list[str]], align: str) -> list[str]:
    """``align``: one letter per column, ``l`` or ``r``."""
    sep = ["---:" if a == "r" else ":---" for a in align]
    return ["| " + " | ".join(md_cell(c) for c in line) + " |"
            for line in [header, sep, *rows]] + [""]

