"""SPEC 12's time windows: the base candle interval, walk-forward folds
(rolling, anchored, cpcv), the purge/embargo masks of a fold's calls, and
the CSCV blocks of the probability of backtest overfitting.

Pure numpy and Python integers: windows are ``[start, end)`` in ms, built
with exact integer arithmetic (no float boundaries). The statistics that
use them live in ``worker._core.robust``.
"""

from __future__ import annotations

import itertools
import math
from typing import Any, NamedTuple

import numpy as np

from .._errors import InvalidParams

__all__ = [
    "DAY_MS", "HOUR_MS", "MINUTE_MS", "SCHEMES", "Fold",
    "base_interval_ms", "days_ms", "hours_ms", "group_edges", "block_edges",
    "fold_windows", "window_days", "default_embargo_ms", "embargo_ms", "fold_masks",
]

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
MINUTE_MS = 60_000
SCHEMES = ("rolling", "anchored", "cpcv")

Window = list[int]  # [start_ms, end_ms)


class Fold(NamedTuple):
    """One fold's windows; unpacks as ``(train_windows, test_windows)``."""

    train_windows: list[Window]
    test_windows: list[Window]


def base_interval_ms(ts_ms: np.ndarray, series_offsets: np.ndarray) -> int:
    """SPEC 12 "I the dataset's base interval (the most common gap between
    consecutive candles of a series, the smallest such gap on a tie)".

    Gaps are taken within each series only (series ``i`` is rows
    ``offsets[i]:offsets[i+1]``), never across two series.

    Decision (SPEC is silent): with no gap at all (no series has two
    candles) the interval is 0, so the embargo's ``(D + 1) * I`` term adds
    nothing.
    """
    ts = np.asarray(ts_ms, np.int64)
    off = np.asarray(series_offsets, np.int64)
    if ts.size < 2:
        return 0
    gaps = np.diff(ts)
    # gaps[j] = ts[j+1] - ts[j] crosses a boundary when row j+1 starts a series
    starts = off[(off > 0) & (off < ts.size)]
    keep = np.ones(gaps.size, bool)
    keep[starts - 1] = False
    gaps = gaps[keep]
    if gaps.size == 0:
        return 0
    # Candles are nearly always evenly spaced: guess the mode from a sample and
    # keep it only if it is a strict majority, which makes it the one mode
    # (exact); otherwise the full sort below. A sort of 28.8M gaps costs
    # ~0.6 s, the guess and its check ~40 ms.
    sample = gaps[::max(1, gaps.size // 4096)]
    values, counts = np.unique(sample, return_counts=True)
    guess = values[np.argmax(counts)]
    if 2 * int(np.count_nonzero(gaps == guess)) > gaps.size:
        return int(guess)
    values, counts = np.unique(gaps, return_counts=True)  # ascending values
    return int(values[np.argmax(counts)])  # argmax: the first (smallest) on a tie


def _positive(value: Any, path: str, *, integer: bool = False) -> Any:
    ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok_type or not math.isfinite(value) or value <= 0:
        kind = "a positive integer" if integer else "a positive number"
        raise InvalidParams(f"must be {kind}, got {value!r}", path=path)
    return value


def days_ms(days: float) -> int:
    """SPEC 12: ``int(days * 86_400_000)``."""
    return int(days * DAY_MS)


def hours_ms(hrs: float) -> int:
    """SPEC 12: ``int(hrs * 3_600_000)``."""
    return int(hrs * HOUR_MS)


def group_edges(t0: int, t1: int, n: int) -> list[int]:
    """SPEC 12 cpcv/pbo: boundaries ``T0 + floor(g * (T1 - T0) / n)``,
    ``g = 0..n`` (exact integer arithmetic; the last is ``T1``)."""
    t0, t1 = int(t0), int(t1)
    return [t0 + (g * (t1 - t0)) // n for g in range(n + 1)]


def block_edges(t0: int, t1: int, blocks: int, path: str = "$.pbo.blocks") -> list[int]:
    """SPEC 12 pbo: ``S`` (even) time blocks of ``[T0, T1)``, boundaries as
    for cpcv. Block ``b`` is ``[edges[b], edges[b+1])``."""
    _positive(blocks, path, integer=True)
    if blocks % 2:
        raise InvalidParams(f"must be an even integer >= 2, got {blocks}", path=path)
    return group_edges(t0, t1, blocks)


def fold_windows(t0: int, t1: int, scheme: str, train_days: float | None = None,
                 test_days: float | None = None, step_days: float | None = None,
                 n_groups: int | None = None, n_test_groups: int | None = None,
                 path: str = "$.folds") -> list[Fold]:
    """SPEC 12 **Folds**.

    - rolling: "Fold k: train [T0 + k*step, T0 + k*step + train), test is the
      next test_days; folds exist while the test window ends at or before T1."
    - anchored: "the same, but every train window starts at T0."
    - cpcv: "n_groups (default 6) time spans ... boundaries T0 + floor(g *
      (T1 - T0) / n_groups); every choice of n_test_groups (default 2) of
      them, in lexicographic order, is one fold's test set, the other groups
      its train set." Adjacent groups are reported as one window (as
      ``tests/reference/robust.py`` does); the purge is the same either way,
      since a merged-away boundary's zone lies inside a test group or inside
      the zone of the span's first start / last end.

    Decisions (SPEC is silent): days must be positive finite numbers and
    ``n_groups``/``n_test_groups`` integers with ``1 <= n_test_groups <
    n_groups``; ``T1 > T0`` is required. A rolling/anchored spec whose first
    fold does not fit (``train + test > T1 - T0``) is an error at
    ``$.folds.train_days``; so is a day count that truncates to 0 ms.
    """
    t0, t1 = int(t0), int(t1)
    if t1 <= t0:
        raise InvalidParams("there are no calls to split into folds", path=path)
    if scheme not in SCHEMES:
        raise InvalidParams(f"must be one of {', '.join(SCHEMES)}, got {scheme!r}",
                            path=f"{path}.scheme")
    if scheme == "cpcv":
        g = 6 if n_groups is None else _positive(n_groups, f"{path}.n_groups", integer=True)
        k = 2 if n_test_groups is None else _positive(
            n_test_groups, f"{path}.n_test_groups", integer=True)
        if g < 2:
            raise InvalidParams(f"must be at least 2, got {g}", path=f"{path}.n_groups")
        if k >= g:
            raise InvalidParams(f"must be less than n_groups ({g}), got {k}",
                                path=f"{path}.n_test_groups")
        edges = group_edges(t0, t1, g)
        spans = [[edges[i], edges[i + 1]] for i in range(g)]
        folds = []
        for test in _combinations(g, k):
            chosen = set(test)
            folds.append(Fold(_merged([spans[i] for i in range(g) if i not in chosen]),
                              _merged([spans[i] for i in test])))
        return folds
    train = _length_ms(train_days, f"{path}.train_days")
    test = _length_ms(test_days, f"{path}.test_days")
    step = test if step_days is None else _length_ms(step_days, f"{path}.step_days")
    if train + test > t1 - t0:
        raise InvalidParams(
            f"no fold fits: train ({train} ms) + test ({test} ms) is longer than the "
            f"data ({t1 - t0} ms)", path=f"{path}.train_days")
    folds = []
    k = 0
    while t0 + k * step + train + test <= t1:
        start = t0 + k * step
        split = start + train
        folds.append(Fold([[t0 if scheme == "anchored" else start, split]],
                          [[split, split + test]]))
        k += 1
    return folds


def _combinations(n: int, k: int) -> list[tuple[int, ...]]:
    return list(itertools.combinations(range(n), k))


def _merged(spans: list[Window]) -> list[Window]:
    """Ascending ``[start, end)`` spans with touching neighbours joined."""
    out: list[Window] = []
    for s, e in spans:
        if out and out[-1][1] == s:
            out[-1][1] = e
        else:
            out.append([s, e])
    return out


def _length_ms(days: Any, path: str) -> int:
    if days is None:
        raise InvalidParams("is required for the rolling and anchored schemes", path=path)
    ms = days_ms(_positive(days, path))
    if ms <= 0:
        raise InvalidParams(f"is shorter than 1 ms, got {days!r}", path=path)
    return ms


def window_days(windows: list[Window]) -> float:
    """SPEC 12 efficiency: "a window's days being its total length in ms /
    86,400,000" (summed over a fold's windows)."""
    return sum(int(e) - int(s) for s, e in windows) / DAY_MS


def default_embargo_ms(max_hold_hrs: float, max_wait_min: float, max_delay_candles: int,
                       interval_ms: int) -> int:
    """SPEC 12: "by default E = int(H * 3_600_000) + int(W * 60_000) + (D + 1) *
    I" (``W`` is 0 without limit entries)."""
    return (int(max_hold_hrs * HOUR_MS) + int(max_wait_min * MINUTE_MS)
            + (int(max_delay_candles) + 1) * int(interval_ms))


def embargo_ms(embargo_hrs: float | None, default_ms: int,
               path: str = "$.folds.embargo_hrs") -> int:
    """SPEC 12: "E = int(embargo_hrs * 3_600_000) when embargo_hrs is given",
    else ``default_ms``. Decision: ``embargo_hrs`` must be a finite number
    >= 0 (0 turns the purge off)."""
    if embargo_hrs is None:
        return int(default_ms)
    if (isinstance(embargo_hrs, bool) or not isinstance(embargo_hrs, (int, float))
            or not math.isfinite(embargo_hrs) or embargo_hrs < 0):
        raise InvalidParams(f"must be a number >= 0, got {embargo_hrs!r}", path=path)
    return hours_ms(embargo_hrs)


def _in_windows(ts: np.ndarray, windows: list[Window]) -> np.ndarray:
    mask = np.zeros(ts.shape, bool)
    for s, e in windows:
        mask |= (ts >= s) & (ts < e)
    return mask


def fold_masks(call_ts: np.ndarray, train_windows: list[Window], test_windows: list[Window],
               embargo: int, cpcv: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """SPEC 12 **Purge and embargo**: "a train call is purged from its fold
    when start - E <= ts_ms < start for the start of any test span of the
    fold, or (cpcv only) end <= ts_ms < end + E for the end of one".

    Returns boolean masks over the calls: (train after the purge, test,
    purged). ``purged`` is a subset of the train windows' calls.
    """
    ts = np.asarray(call_ts, np.int64)
    in_train = _in_windows(ts, train_windows)
    test = _in_windows(ts, test_windows)
    zone = np.zeros(ts.shape, bool)
    e = int(embargo)
    for s, end in test_windows:
        zone |= (ts >= s - e) & (ts < s)
        if cpcv:
            zone |= (ts >= end) & (ts < end + e)
    purged = in_train & zone
    return in_train & ~zone, test, purged
