"""Every array layout that kernels and their wrappers share, named once.

Kernels take and return plain arrays; this module says what their rows and
columns mean. Everything else (metric names in results, journal columns,
report columns, array widths and dtypes) derives from the names here, so a
new metric, exit reason or config field is added in one place.

Kernel inputs (built in ``engine``):

- ``calls``: float64 ``[N_CALL_ROWS, n]``, one column per call in sweep
  order, rows ``CALL_*`` (times as float64: exact below 2**53);
- ``cfg``: float64 ``[N_CFG]``, the config's real numbers by ``CFG_FIELDS``
  (read through ``CFG_*``; ``max_open`` travels as an int64 of its own);
- ``points``: int64 ``[P, N_POINT_LEVELS]``, a grid point's level indices,
  columns ``POINT_*``;
- ``hits``: the arrays ``exit_levels_nb`` returns, in ``HITS`` order
  (``HIT_*``), each level-major ``[levels, n]``.

Kernel outputs: per-call records ``rec``, float64 ``[n, N_REC_FIELDS]``,
columns ``REC_*`` (status: ``ENTERED`` or the skip reason code), and the
result arrays of a grid job (``Results``), one row per work item
(``g * n_points + p``: caller group ``g``, grid point ``p``):

- ``metrics``: float64 ``[items, N_METRICS]``, columns ``CAPITAL_METRICS``
  (``CAP_*``) or ``PER_TRADE_METRICS`` (``PT_*``) by mode (one width), then
  ``MOMENTS`` (``M_*``);
- ``exits``: int64 ``[items, N_EXITS]``, counts by ``EXIT_REASONS``;
- ``skipped``: int64 ``[items, N_SKIPS]``, counts by ``SKIP_REASONS``.

The int constants are compile-time constants of the Numba kernels that use
them. Numba's on-disk cache checks only a kernel's own source file (by
content), so ``kernels.py`` and ``sweeps.py`` carry a digest of this file
(``DEPENDS_ON_DIGEST``): after an edit here, ``tests/test_layouts.py`` fails
and names the new digest to put there, and the kernels recompile.
"""

from __future__ import annotations

import numpy as np

# ---------------------------------------------------------------- reasons

# Exit reasons and skip reasons, as the column order of the count arrays and
# the codes kernels write into per-call records.
TAKE_PROFIT, STOP_LOSS, TIME_EXIT, END_OF_DATA, BREAKEVEN, TRAILING_STOP = range(6)
EXIT_REASONS = ("take_profit", "stop_loss", "time_exit", "end_of_data", "breakeven",
                "trailing_stop")
MAX_POSITIONS, NO_ENTRY, NO_FILL, BELOW_MIN_SIZE, BAD_STOP = range(5)
SKIP_REASONS = ("max_positions", "no_entry", "no_fill", "below_min_size", "bad_stop")
ENTERED = -1  # record status of a call that opened a position
# The skip reasons a mode reports: per-trade mode has no account, so only
# the entry can fail (SPEC 3; ``no_fill``: a limit order, SPEC 11). Calls
# never have ``bad_stop`` (a strategy signal's stop on the wrong side, SPEC
# 13): only strategy results report it.
MODE_SKIP_REASONS = {"capital": SKIP_REASONS[:BAD_STOP], "per_trade": ("no_entry", "no_fill")}
STRATEGY_SKIP_REASONS = {"capital": SKIP_REASONS,
                         "per_trade": ("no_entry", "no_fill", "bad_stop")}
# Trade records' ``entry_kind`` (SPEC 11), by "is it a limit order".
ENTRY_KINDS = ("market", "limit")

# ---------------------------------------------------------------- metrics

# Column order of the metric matrices the grid kernels return.
CAPITAL_METRICS = (
    "final_capital", "total_return", "trades_executed", "wins", "losses",
    "win_rate", "trades_skipped", "fees_paid", "profit_factor",
    "max_drawdown", "avg_hold_min", "sharpe",
)
PER_TRADE_METRICS = (
    "trades", "wins", "losses", "win_rate", "avg_return", "median_return",
    "total_return", "profit_factor", "avg_r", "total_r", "avg_hold_min", "sharpe",
)
METRICS = {"capital": CAPITAL_METRICS, "per_trade": PER_TRADE_METRICS}
# Metrics that are counts (integers in results and reports).
COUNT_METRICS = frozenset({"trades_executed", "wins", "losses", "trades_skipped", "trades"})
# The metric that counts a run's trades, by mode.
TRADES_METRIC = {"capital": "trades_executed", "per_trade": "trades"}
DEFAULT_OBJECTIVE = {"capital": "final_capital", "per_trade": "avg_return"}

# Column indices, for the kernels: ``CAP_<NAME>`` / ``PT_<NAME>`` is the
# column of metric ``<name>`` (checked against the tuples below).
(CAP_FINAL_CAPITAL, CAP_TOTAL_RETURN, CAP_TRADES_EXECUTED, CAP_WINS, CAP_LOSSES,
 CAP_WIN_RATE, CAP_TRADES_SKIPPED, CAP_FEES_PAID, CAP_PROFIT_FACTOR,
 CAP_MAX_DRAWDOWN, CAP_AVG_HOLD_MIN, CAP_SHARPE) = range(len(CAPITAL_METRICS))
(PT_TRADES, PT_WINS, PT_LOSSES, PT_WIN_RATE, PT_AVG_RETURN, PT_MEDIAN_RETURN,
 PT_TOTAL_RETURN, PT_PROFIT_FACTOR, PT_AVG_R, PT_TOTAL_R,
 PT_AVG_HOLD_MIN, PT_SHARPE) = range(len(PER_TRADE_METRICS))

N_REPORTED = len(CAPITAL_METRICS)
# Columns the kernels add after the reported metrics, for SPEC 12's deflated
# Sharpe ratio of the best point: the population central moments m2, m3, m4
# of the run's trade returns (NaN below 2 trades). Never a metric of an answer.
MOMENTS = ("ret_m2", "ret_m3", "ret_m4")
M_RET_M2, M_RET_M3, M_RET_M4 = range(N_REPORTED, N_REPORTED + len(MOMENTS))
N_METRICS = N_REPORTED + len(MOMENTS)
N_EXITS = len(EXIT_REASONS)
N_SKIPS = len(SKIP_REASONS)

# ---------------------------------------------------------------- kernel inputs

# Rows of ``calls`` (one column per call, sweep order; one such matrix per
# entry configuration): alert time, entry price (> 0 entered; ``NO_ENTRY_PX``:
# no entry; ``NO_FILL_PX``: a limit order that never filled), entry time,
# end-of-data time and close (the series' last candle), and an unfilled
# order's expiry (when its cash and slot come back, SPEC 11).
CALL_ROWS = ("alert_ts", "entry_px", "entry_ts", "eod_ts", "eod_px", "expiry_ts")
(CALL_ALERT_TS, CALL_ENTRY_PX, CALL_ENTRY_TS, CALL_EOD_TS, CALL_EOD_PX,
 CALL_EXPIRY_TS) = range(len(CALL_ROWS))
N_CALL_ROWS = len(CALL_ROWS)
NO_ENTRY_PX, NO_FILL_PX = 0.0, -1.0

# ``cfg``: the simulator config's real numbers, by field name.
CFG_FIELDS = (
    "initial_capital", "max_allocation_pct", "max_risk_per_trade",
    "min_executable_size", "taker_fee_bps", "slippage_bps",
)
(CFG_INITIAL_CAPITAL, CFG_MAX_ALLOCATION_PCT, CFG_MAX_RISK_PER_TRADE,
 CFG_MIN_EXECUTABLE_SIZE, CFG_TAKER_FEE_BPS, CFG_SLIPPAGE_BPS) = range(len(CFG_FIELDS))
N_CFG = len(CFG_FIELDS)

# Columns of ``points``: indices into the ascending TP levels, the
# descending SL levels, the ascending hold levels, the trailing-stop and
# breakeven configurations (``NO_LEVEL``: that exit is off) and the entry
# configurations (SPEC 11; ``engine.GridLevels`` says how each is sorted).
POINT_LEVELS = ("tp", "sl", "hold", "trail", "be", "entry")
POINT_TP, POINT_SL, POINT_HOLD, POINT_TRAIL, POINT_BE, POINT_ENTRY = range(len(POINT_LEVELS))
N_POINT_LEVELS = len(POINT_LEVELS)
NO_LEVEL = -1

# What ``exit_levels_nb`` returns, in order, each ``[entry configs, levels,
# calls]``: first-hit times of the TP, SL and hold levels, the close of the
# hold candle, first-hit times of the trailing stops and their level there,
# first-hit times of the breakevens; with ``gap_fill: "open"``, the open of
# the candle each TP, SL, trail and breakeven level is first hit on (else
# zero-length: never read).
HITS = ("tp_ts", "sl_ts", "hold_ts", "hold_px", "trail_ts", "trail_px", "be_ts",
        "tp_open", "sl_open", "trail_open", "be_open")
(HIT_TP_TS, HIT_SL_TS, HIT_HOLD_TS, HIT_HOLD_PX, HIT_TRAIL_TS, HIT_TRAIL_PX, HIT_BE_TS,
 HIT_TP_OPEN, HIT_SL_OPEN, HIT_TRAIL_OPEN, HIT_BE_OPEN) = range(len(HITS))
# A SPEC 2 grid's sweep reads only the first four (up to ``hold_px``).
N_SPEC2_HITS = HIT_HOLD_PX + 1

# ---------------------------------------------------------------- per-call records

# Columns of ``rec``: status (ENTERED or a skip reason code), size (1 in
# per-trade mode), pnl (the return in per-trade mode), exit time, exit price
# and exit reason code; only the status is written for a skipped call.
REC_FIELDS = ("status", "size", "pnl", "exit_ts", "exit_px", "exit_reason")
REC_STATUS, REC_SIZE, REC_PNL, REC_EXIT_TS, REC_EXIT_PX, REC_EXIT_REASON = range(len(REC_FIELDS))
N_REC_FIELDS = len(REC_FIELDS)

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
    return tuple(np.concatenate([p[i] for p in parts]) for i in range(len(RESULT_NAMES)))  # type: ignore[return-value]


# ---------------------------------------------------------------- self-check

# Prefix of the index constants -> the names they index (reason codes: no prefix).
NAMED_INDICES = {"CAP_": CAPITAL_METRICS, "PT_": PER_TRADE_METRICS, "CALL_": CALL_ROWS,
                 "CFG_": CFG_FIELDS, "POINT_": POINT_LEVELS, "HIT_": HITS, "REC_": REC_FIELDS}


def _check() -> None:
    """Every ``<PREFIX><NAME>`` constant is the position of ``<name>`` in its
    tuple: a name added to one and not the other fails at import."""
    g = globals()
    for prefix, names in NAMED_INDICES.items():
        for i, name in enumerate(names):
            if g.get(prefix + name.upper()) != i:  # pragma: no cover - a layout edit gone wrong
                raise ImportError(f"layouts: {prefix}{name.upper()} is not {i}")
    if len(PER_TRADE_METRICS) != N_REPORTED:  # pragma: no cover
        raise ImportError("capital and per-trade metric rows must have one width")
    for names in (EXIT_REASONS, SKIP_REASONS):
        for i, name in enumerate(names):
            if g.get(name.upper()) != i:  # pragma: no cover
                raise ImportError(f"layouts: {name.upper()} is not {i}")
    for mode, names in METRICS.items():
        if (TRADES_METRIC[mode] not in names or DEFAULT_OBJECTIVE[mode] not in names
                or not set(MODE_SKIP_REASONS[mode]) <= set(SKIP_REASONS)):  # pragma: no cover
            raise ImportError(f"layouts: {mode} names out of step")
    if not COUNT_METRICS <= set(CAPITAL_METRICS) | set(PER_TRADE_METRICS):  # pragma: no cover
        raise ImportError("layouts: a count metric that no mode has")


_check()
