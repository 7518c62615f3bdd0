"""Every array layout that kernels and their wrappers share, named once.

Kernels take and return plain arrays; this module says what their rows and
columns mean. Everything else (metric names in results, journal columns,
report columns, array widths and dtypes) derives from the names here, so a
new metric, exit reason or config field is added in one place.

Result arrays of a grid job (``Results``): one row per work item
(``g * n_points + p``: caller group ``g``, grid point ``p``):

- ``metrics``: float64 ``[items, N_METRICS]``, columns ``CAPITAL_METRICS`` or
  ``PER_TRADE_METRICS`` by mode (one matrix serves both: same width);
- ``exits``: int64 ``[items, N_EXITS]``, counts by ``EXIT_REASONS``;
- ``skipped``: int64 ``[items, N_SKIPS]``, counts by ``SKIP_REASONS``.
"""

from __future__ import annotations

import numpy as np

# ---------------------------------------------------------------- reasons

# Exit reasons and skip reasons, as the column order of the count arrays and
# the codes kernels write into per-call records.
TAKE_PROFIT, STOP_LOSS, TIME_EXIT, END_OF_DATA = 0, 1, 2, 3
EXIT_REASONS = ("take_profit", "stop_loss", "time_exit", "end_of_data")
MAX_POSITIONS, NO_ENTRY, BELOW_MIN_SIZE = 0, 1, 2
SKIP_REASONS = ("max_positions", "no_entry", "below_min_size")
ENTERED = -1  # record status of a call that opened a position

# ---------------------------------------------------------------- metrics

# Column order of the metric matrices the grid kernels return.
CAPITAL_METRICS = (
    "final_capital", "total_return", "trades_executed", "wins", "losses",
    "win_rate", "trades_skipped", "fees_paid", "profit_factor",
    "max_drawdown", "avg_hold_min",
)
PER_TRADE_METRICS = (
    "trades", "wins", "losses", "win_rate", "avg_return", "median_return",
    "total_return", "profit_factor", "avg_r", "total_r", "avg_hold_min",
)
METRICS = {"capital": CAPITAL_METRICS, "per_trade": PER_TRADE_METRICS}

N_METRICS = len(CAPITAL_METRICS)
N_EXITS = len(EXIT_REASONS)
N_SKIPS = len(SKIP_REASONS)
if len(PER_TRADE_METRICS) != N_METRICS:  # pragma: no cover - a layout edit gone wrong
    raise ImportError("capital and per-trade metric rows must have one width")

# ---------------------------------------------------------------- result arrays

# (width, dtype) of the three result arrays, in the order kernels return them.
RESULT_WIDTHS = (N_METRICS, N_EXITS, N_SKIPS)
RESULT_DTYPES = (np.float64, np.int64, np.int64)
RESULT_NAMES = ("metrics", "exits", "skipped")


def empty_results(rows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Uninitialised result arrays for ``rows`` work items (filled span by span)."""
    return tuple(np.empty((rows, w), d) for w, d in zip(RESULT_WIDTHS, RESULT_DTYPES))  # type: ignore[return-value]


def concat_results(parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Result arrays of consecutive spans as one (no parts: zero rows)."""
    if not parts:
        return empty_results(0)
    return tuple(np.concatenate([p[i] for p in parts]) for i in range(3))  # type: ignore[return-value]
