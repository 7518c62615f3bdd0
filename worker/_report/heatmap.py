"""Objective heatmaps of the run directory: by default ``objective`` over tp x
sl, one per hold (``plots/heatmap_hold_<h>h.png``); or, when the config
chooses pairs of dimensions (``report.heatmaps``), one per pair
(``plots/heatmap_<x>_x_<y>.png``, ``x`` across, ``y`` up).

A cell is the best objective over the grid points it holds, i.e. over every
dimension not on the axes; the title names those dimensions. A point's own
figure is its objective when feasible (one group), or its mean over the
callers for which it is feasible (per-caller tables). Without SPEC 11
dimensions a per-hold heatmap has one point per cell, drawn as it always was.
"""

from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from .figures import save_png, tick_format
from .report import (
    MONEY,
    PERCENT,
    SIGNED,
    fmt_dim,
    param_columns,
    point_means,
    table_columns,
)

ANNOTATE_MAX = 12     # annotate cell values when the grid is at most this wide and tall
MAX_TICKS = 20        # label at most this many values on an axis
_HATCH = dict(facecolor="#e6e6e6", edgecolor="#a0a0a0", hatch="///", linewidth=0)
DEFAULT_AXES = ("tp_mult", "sl_mult")
AXIS_LABELS = {
    "tp_mult": "take-profit multiple", "sl_mult": "stop-loss multiple",
    "max_hold_hrs": "maximum hold, hours", "trail_pct": "trailing stop distance",
    "trail_activation": "trail arms at entry x", "breakeven_trigger": "breakeven at entry x",
    "breakeven_offset": "breakeven stop at entry x (1 + this)",
    "entry_delay_candles": "entry latency, candles", "entry_dip_pct": "limit buy below close",
    "entry_max_wait_min": "limit buy wait, minutes",
}


def hold_label(hours: float) -> str:
    """48.0 -> "48", 0.5 -> "0.5": shortest exact decimal, never exponent form."""
    return np.format_float_positional(float(hours), trim="-")


def pair_file_name(x: str, y: str) -> str:
    return f"heatmap_{x}_x_{y}.png"


def heatmaps(table: pa.Table, objective: str, run_dir: Path, *, minimize: bool = False,
             pairs: list | None = None) -> list[Path]:
    """The default per-hold heatmaps (``pairs`` None), else one per chosen
    pair; a pair naming a column the table lacks is skipped (nothing to draw:
    the config check at load refuses it, so only an edited run.json has one)."""
    points = _grid_points(table_columns(table), objective, minimize)
    plots = Path(run_dir) / "plots"
    if pairs is None:
        return _per_hold(points, objective, plots, minimize)
    return [_pair(points, objective, plots, minimize, x, y) for x, y in pairs
            if x in points.coords and y in points.coords]


@dataclass(frozen=True)
class _Points:
    """One entry per grid point (by ``index``)."""

    coords: dict[str, np.ndarray]   # each dimension's value; NaN: off
    value: np.ndarray               # its feasible figure, NaN when it has none
    raw: np.ndarray                 # one group: an infeasible point's own figure
    failed: np.ndarray              # every row of the point failed
    best: int | None                # the best point's index
    per_caller: bool


def _grid_points(cols: dict, objective: str, minimize: bool) -> _Points:
    idx = cols["index"].astype(np.int64)
    n = int(idx.max()) + 1 if idx.size else 0
    _, first = np.unique(idx, return_index=True)      # a row of each point
    rows_failed = np.bincount(idx, weights=cols["failed"].astype(bool), minlength=n)
    failed = (rows_failed == np.bincount(idx, minlength=n)) & (rows_failed > 0)
    coords = {d: cols[d][first].astype(np.float64) for d in param_columns(cols)}
    per_caller = "caller" in cols
    if per_caller:
        # There is no single figure for an infeasible point: none is shown.
        value, counts = point_means(cols, objective)
        raw = np.full(n, np.nan)
        best = (int(np.nanargmin(value) if minimize else np.nanargmax(value))
                if counts.any() else None)
    else:
        obj = cols[objective].astype(np.float64)[first]
        feasible = cols["feasible"].astype(bool)[first] & ~failed
        value = np.where(feasible & np.isfinite(obj), obj, np.nan)
        raw = np.where(~feasible & ~failed, obj, np.nan)
        hit = np.flatnonzero(feasible & (cols["rank"][first] == 1))
        best = int(hit[0]) if hit.size else None
    return _Points(coords, value, raw, failed, best, per_caller)


def _varied(points: _Points, axes: tuple[str, ...]) -> list[str]:
    """The dimensions off the axes with more than one value ("off" is one)."""
    return [d for d, v in points.coords.items()
            if d not in axes and np.unique(np.nan_to_num(v, nan=-np.inf)).size > 1]


def _what(points: _Points, others: list[str], scope: str) -> str:
    each = "mean over the callers where feasible" if points.per_caller else "one run"
    if not others:
        # The wording of heatmaps drawn before SPEC 11 (one point per cell).
        each = each if points.per_caller else "one run per grid point"
        return f"{each}; colour range: {scope}"
    return "\n".join([*textwrap.wrap(f"cell: the best over {', '.join(others)}", 80),
                      f"each point: {each}; colour range: {scope}"])


def _per_hold(points: _Points, objective: str, plots: Path, minimize: bool) -> list[Path]:
    holds = points.coords["max_hold_hrs"]
    what = _what(points, _varied(points, (*DEFAULT_AXES, "max_hold_hrs")), "this hold")
    paths = []
    for hold in np.unique(holds[np.isfinite(holds)]).tolist():
        # Colours span this hold's values only: a shared scale washes out
        # the structure of every hold but the best one (values are labelled).
        cells = _cells(points, *DEFAULT_AXES, holds == hold, minimize)
        fig = _figure(cells, objective, f"{objective}, max_hold_hrs = {hold_label(hold)}",
                      what, DEFAULT_AXES, minimize)
        paths.append(save_png(fig, plots / f"heatmap_hold_{hold_label(hold)}h.png"))
    return paths


def _pair(points: _Points, objective: str, plots: Path, minimize: bool, x: str,
          y: str) -> Path:
    cells = _cells(points, x, y, np.ones(points.value.size, bool), minimize)
    fig = _figure(cells, objective, f"{objective} over {x} x {y}",
                  _what(points, _varied(points, (x, y)), "this plot"), (x, y), minimize)
    return save_png(fig, plots / pair_file_name(x, y))


def _axis(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """An axis's levels ("off", NaN, first) and each point's position on it."""
    off = np.isnan(values)
    finite = np.unique(values[~off])
    shift = int(off.any())
    levels = np.concatenate([[np.nan], finite]) if shift else finite
    at = np.searchsorted(finite, np.where(off, finite[0] if finite.size else 0, values))
    return levels, np.where(off, 0, at + shift)


def _cells(points: _Points, x: str, y: str, mask: np.ndarray, minimize: bool) -> dict:
    """Per cell: the best value of its points, the best raw figure (shown
    when no point is feasible), whether all its points failed, and where
    the best point is (None: not among these points)."""
    xs, ix = _axis(points.coords[x][mask])
    ys, iy = _axis(points.coords[y][mask])
    shape = (ys.size, xs.size)
    best_of = np.fmin if minimize else np.fmax     # fmax/fmin skip NaN
    value, raw = np.full(shape, np.nan), np.full(shape, np.nan)
    best_of.at(value, (iy, ix), points.value[mask])
    best_of.at(raw, (iy, ix), points.raw[mask])
    n_points, n_failed = np.zeros(shape), np.zeros(shape)
    np.add.at(n_points, (iy, ix), 1)
    np.add.at(n_failed, (iy, ix), points.failed[mask])
    where = np.flatnonzero(mask)
    k = np.flatnonzero(where == points.best) if points.best is not None else []
    best = (int(ix[k[0]]), int(iy[k[0]])) if len(k) else None
    return dict(xs=xs, ys=ys, value=value, raw=raw, best=best,
                failed=(n_failed == n_points) & (n_points > 0))


def compact(name: str, value: float) -> str:
    """A cell annotation: short enough for a 0.6-inch cell."""
    if not math.isfinite(value):
        return "n/a"
    if name in PERCENT:
        return f"{value * 100:+.1f}%" if name in SIGNED else f"{value * 100:.1f}%"
    if name in MONEY and abs(value) >= 1e6:
        return f"{value / 1e6:,.2f}M"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def _figure(cells: dict, objective: str, head: str, what: str, axes: tuple[str, str],
            minimize: bool) -> Figure:
    xs, ys, value = cells["xs"], cells["ys"], cells["value"]
    nx, ny = xs.size, ys.size
    # Wide enough for the title at any grid size; cells ~0.75 x 0.5 inch.
    fig = Figure(figsize=(min(16.0, max(6.4, 3.2 + 0.75 * nx)),
                          min(12.0, 2.9 + 0.5 * ny + 0.15 * what.count("\n"))),
                 layout="constrained")
    ax = fig.add_subplot()
    # Brighter is better either way: the colour scale flips when minimizing.
    cmap = colormaps["viridis_r" if minimize else "viridis"].with_extremes(bad=(0, 0, 0, 0))
    finite = value[np.isfinite(value)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    image = ax.imshow(np.ma.masked_invalid(value), cmap=cmap, vmin=lo, vmax=hi,
                      origin="lower", aspect="auto", interpolation="nearest",
                      extent=(-0.5, nx - 0.5, -0.5, ny - 0.5), zorder=1)
    # One hatched patch behind the whole grid shows through the masked cells.
    ax.add_patch(Rectangle((-0.5, -0.5), nx, ny, zorder=0, **_HATCH))
    if nx <= ANNOTATE_MAX and ny <= ANNOTATE_MAX:
        _annotate(ax, cells, objective, image)
    if cells["best"] is not None:
        bx, by = cells["best"]
        ax.add_patch(Rectangle((bx - 0.46, by - 0.46), 0.92, 0.92, fill=False,
                               edgecolor="#d62728", linewidth=2.5, zorder=3))
    _ticks(ax.set_xticks, ax.set_xticklabels, axes[0], xs, rotate=nx > 10)
    _ticks(ax.set_yticks, ax.set_yticklabels, axes[1], ys, rotate=False)
    ax.set_xlabel(f"{axes[0]} ({AXIS_LABELS[axes[0]]})")
    ax.set_ylabel(f"{axes[1]} ({AXIS_LABELS[axes[1]]})")
    ax.set_title(f"{head}\n{what}\nhatched: infeasible or failed; red box: best point",
                 fontsize=9.5)
    bar = fig.colorbar(image, ax=ax, shrink=0.9)
    percent = objective in PERCENT
    bar.formatter = tick_format(hi - lo, scale=100 if percent else 1, suffix="%" if percent else "")
    bar.set_label(f"{objective} ({'lower' if minimize else 'higher'} is better)")
    return fig


def _ticks(set_ticks, set_labels, name: str, values: np.ndarray, rotate: bool) -> None:
    step = max(1, math.ceil(values.size / MAX_TICKS))
    at = np.arange(0, values.size, step)
    set_ticks(at)
    set_labels([fmt_dim(name, float(values[i])) for i in at], rotation=45 if rotate else 0)


def _annotate(ax, cells: dict, objective: str, image) -> None:
    value, raw = cells["value"], cells["raw"]
    for y in range(value.shape[0]):
        for x in range(value.shape[1]):
            v = value[y, x]
            if np.isfinite(v):
                r, g, b, _ = image.cmap(image.norm(v))
                dark = 0.299 * r + 0.587 * g + 0.114 * b < 0.55
                ax.text(x, y, compact(objective, v), ha="center", va="center", fontsize=8,
                        color="white" if dark else "black")
            elif cells["failed"][y, x]:
                ax.text(x, y, "failed", ha="center", va="center", fontsize=7, color="#b00000")
            elif np.isfinite(raw[y, x]):
                ax.text(x, y, compact(objective, raw[y, x]), ha="center", va="center",
                        fontsize=7, color="#555555", style="italic")
